//! `hookgate send`: sign a fixture the way its provider would and POST it to a running gateway.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use hookgate_providers::{AuthMode, ProviderId, Secret, SignOptions};

#[derive(Debug, Args)]
pub struct SendArgs {
    /// A fixture file: `fixtures/<provider>/<event>.json` (the provider is taken from the parent
    /// directory unless --provider is given).
    pub fixture: PathBuf,
    /// The receive URL, e.g. http://127.0.0.1:8080/integrations/stripe/webhook/stripe-live
    #[arg(long)]
    pub url: String,
    /// The connection's secret (or HOOKGATE_SEND_SECRET).
    #[arg(long, env = "HOOKGATE_SEND_SECRET", hide_env_values = true)]
    pub secret: String,
    #[arg(long)]
    pub provider: Option<ProviderId>,
    /// Shared-secret providers: how to present the secret: bearer (default) | basic |
    /// header:<Name> | query:<param>.
    #[arg(long)]
    pub auth: Option<AuthMode>,
    /// The delivery id to send (Svix `svix-id`, Shopify event id); default derived from the body.
    #[arg(long)]
    pub delivery_id: Option<String>,
    /// Shopify topic; default taken from the file name (`customers__create.json`).
    #[arg(long)]
    pub topic: Option<String>,
    /// Shift the signed timestamp by this many seconds (negative = in the past).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub skew_secs: i64,
}

/// The provider a fixture belongs to: `--provider`, else its parent directory's name.
fn fixture_provider(path: &Path, explicit: Option<ProviderId>) -> anyhow::Result<ProviderId> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let dir = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("");
    dir.parse().with_context(|| {
        format!("cannot tell the provider from the directory {dir:?}; pass --provider")
    })
}

/// A request as `send` posts it.
pub struct SignedRequest {
    pub url: String,
    pub headers: Vec<(http::HeaderName, String)>,
    pub body: Vec<u8>,
}

/// Builds the signed request `send` posts.
///
/// # Errors
/// Unreadable fixture, unknown provider, unusable secret.
pub fn signed_request(args: &SendArgs, now_ms: i64) -> anyhow::Result<SignedRequest> {
    let provider = fixture_provider(&args.fixture, args.provider)?;
    let body = std::fs::read(&args.fixture)
        .with_context(|| format!("cannot read fixture {}", args.fixture.display()))?;
    let topic = args.topic.clone().or_else(|| {
        (provider == ProviderId::Shopify).then(|| {
            args.fixture
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                // `__` stands for `/`; a `--<variant>` suffix names a second fixture of a topic.
                .split("--")
                .next()
                .unwrap_or("")
                .replace("__", "/")
        })
    });
    let options = SignOptions {
        now_ms: now_ms + args.skew_secs * 1000,
        delivery_id: args.delivery_id.clone(),
        event_type: topic,
        auth: args.auth.clone(),
    };
    let signed = provider
        .adapter()
        .sign(&body, &Secret::new(args.secret.clone()), &options)
        .map_err(|e| anyhow::anyhow!("cannot sign for {provider}: {e}"))?;
    let mut url = args.url.clone();
    if let Some(query) = signed.query {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query);
    }
    let mut headers = signed.headers;
    headers.push((http::header::CONTENT_TYPE, "application/json".into()));
    headers.push((
        http::header::USER_AGENT,
        format!("hookgate-send/{}", env!("CARGO_PKG_VERSION")),
    ));
    Ok(SignedRequest { url, headers, body })
}

/// Runs `hookgate send`: prints the status and the gateway's answer; fails on a non-2xx.
///
/// # Errors
/// The request could not be built or sent, or the gateway did not answer 2xx.
pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let SignedRequest { url, headers, body } = signed_request(&args, crate::now_ms())?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut request = client.post(&url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    // With `query:<param>` auth the URL carries the secret, and reqwest's errors quote the URL:
    // report the address without its query instead.
    let shown = url.split('?').next().unwrap_or_default().to_owned();
    let response = request
        .send()
        .await
        .map_err(reqwest::Error::without_url)
        .with_context(|| format!("cannot reach {shown}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    println!("{} {}", status.as_u16(), text);
    if !status.is_success() {
        bail!("the gateway answered {status}");
    }
    Ok(())
}
