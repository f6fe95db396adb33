//! Writes seed inputs with real signatures into `corpus/provider_<id>/`, one per fixture, so the
//! fuzzer starts from requests that pass `verify` as well as from bare bodies.
//!
//! Run from `fuzz/`: `RUSTC_BOOTSTRAP=1 cargo run --example seeds`.

use std::path::Path;

use hookgate_providers::{testkit, AuthMode, ProviderId, Request, SignOptions, VerifyOptions};

fn main() -> std::io::Result<()> {
    for provider in ProviderId::ALL {
        let fixtures = Path::new("../fixtures").join(provider.as_str());
        let corpus = Path::new("corpus").join(format!("provider_{}", provider.as_str()));
        std::fs::create_dir_all(&corpus)?;
        let mut paths: Vec<_> = std::fs::read_dir(&fixtures)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let body = std::fs::read(&path)?;
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("seed");
            let options = SignOptions {
                auth: Some(AuthMode::Bearer),
                ..testkit::fixture_sign_options(provider, stem, hookgate_fuzz::NOW_MS)
            };
            let adapter = provider.adapter();
            let Ok(signed) = adapter.sign(&body, &hookgate_fuzz::secret(provider), &options) else {
                eprintln!("{provider}: cannot sign {}", path.display());
                continue;
            };
            let mut headers: Vec<(&str, &str)> = signed
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            if let Some(query) = &signed.query {
                headers.push((":query", query));
            }
            let input = hookgate_fuzz::encode(provider, 0, &headers, &body);
            // A seed that does not verify would not test what it is meant to.
            let decoded = hookgate_fuzz::decode(provider, &input);
            let request = Request {
                headers: &decoded.headers,
                body: decoded.body,
                query: decoded.query.as_deref(),
            };
            let verify = VerifyOptions {
                now_ms: decoded.now_ms,
                tolerance_secs: None,
                auth: None,
            };
            if let Err(error) =
                adapter.verify(&request, &[hookgate_fuzz::secret(provider)], &verify)
            {
                eprintln!(
                    "{provider}: signed seed for {} does not verify: {error}",
                    path.display()
                );
            }
            std::fs::write(corpus.join(format!("signed-{stem}")), input)?;
            std::fs::copy(&path, corpus.join(stem))?;
        }
    }
    Ok(())
}
