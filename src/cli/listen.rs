//! `hookgate listen --forward-to <url>`: for local development (like `stripe listen`), follows a
//! running gateway's event stream and posts each event, signed the Standard Webhooks way, to a
//! local URL, printing one line per event with the answer's status.

use anyhow::{bail, Context as _};
use clap::Args;
use futures_util::StreamExt as _;
use serde_json::Value;

use crate::delivery::endpoint::glob_match;
use crate::delivery::sign;

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The local URL each event is posted to.
    #[arg(long)]
    pub forward_to: String,
    /// The running gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// A key with the `webhooks:read` scope (or the admin token).
    #[arg(long, env = "HOOKGATE_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Forward only events whose type matches this glob (`*` matches any characters).
    #[arg(long)]
    pub event_type: Option<String>,
    /// Signing secret (`whsec_...`); generated and printed when left out.
    #[arg(long, env = "HOOKGATE_LISTEN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

/// Runs until interrupted or the stream ends.
///
/// # Errors
/// The gateway cannot be reached or refuses the key.
pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let secret = match args.secret {
        Some(s) => {
            sign::check_secret(&s).map_err(|e| anyhow::anyhow!("--secret: {e}"))?;
            s
        }
        None => {
            let s = sign::generate_secret();
            println!("signing with {s} (verify deliveries with it)");
            s
        }
    };
    reqwest::Url::parse(&args.forward_to)
        .with_context(|| format!("--forward-to {:?} is not a URL", args.forward_to))?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let stream_url = format!("{}/v1/events/stream", args.gateway.trim_end_matches('/'));
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(&stream_url)
        .bearer_auth(&args.api_key)
        .send()
        .await
        .with_context(|| format!("cannot reach the gateway at {}", args.gateway))?;
    if !response.status().is_success() {
        bail!(
            "the gateway answered {} to {stream_url} (check --api-key)",
            response.status()
        );
    }
    println!("forwarding events to {}", args.forward_to);
    let mut stream = response.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk.context("the event stream broke")?);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&frame);
            for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
                let Ok(event) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                forward(
                    &client,
                    &args.forward_to,
                    args.event_type.as_deref(),
                    &secret,
                    &event,
                )
                .await;
            }
        }
    }
    Ok(())
}

async fn forward(
    client: &reqwest::Client,
    url: &str,
    filter: Option<&str>,
    secret: &str,
    event: &Value,
) {
    let event_type = event["eventType"].as_str().unwrap_or("");
    if filter.is_some_and(|g| !glob_match(g, event_type)) {
        return;
    }
    let msg_id = event["messageId"].as_str().unwrap_or("").to_owned();
    let body = serde_json::json!({
        "id": msg_id,
        "type": event_type,
        "timestamp": event["timestamp"],
        "workspace": event["workspace"],
        "data": event["payload"],
    })
    .to_string();
    let signed = sign::sign(
        &msg_id,
        crate::now_ms().div_euclid(1000),
        body.as_bytes(),
        &[secret.to_owned()],
    );
    let started = std::time::Instant::now();
    let result = signed
        .apply(
            client
                .post(url)
                .header(http::header::CONTENT_TYPE, "application/json"),
        )
        .body(body)
        .send()
        .await;
    let answer = match result {
        Ok(r) => r.status().as_u16().to_string(),
        Err(e) => format!("error: {}", crate::delivery::worker::describe(&e)),
    };
    println!(
        "{} {:<40} {} -> {} ({} ms)",
        event["timestamp"].as_str().unwrap_or(""),
        event_type,
        msg_id,
        answer,
        started.elapsed().as_millis()
    );
}
