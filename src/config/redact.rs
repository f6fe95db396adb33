//! `Debug` for the configuration types that hold secrets as plain strings (the admin token, the
//! database URL, the secret key's text, connection secrets), and URL redaction. Each prints
//! every field, with secret values replaced, so a `{:?}` in a log or a panic shows the shape of
//! the settings and never their secrets.

use std::fmt;

use super::{FileConfig, GlobalArgs, ServeArgs};

const REDACTED: &str = "<redacted>";

/// Query parameters of a database URL whose value is a credential.
const SECRET_PARAMS: [&str; 2] = ["password", "sslpassword"];

/// See [`super::redact_url`].
pub fn url(url: &str) -> String {
    // Query parameters first, anywhere in the text (a value may hold `@` or `:`).
    let mut text = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(pos) = rest.find(['?', '&']) {
        text.push_str(&rest[..=pos]);
        rest = &rest[pos + 1..];
        let end = rest.find('&').unwrap_or(rest.len());
        match rest[..end].split_once('=') {
            Some((name, _)) if SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name)) => {
                text.push_str(name);
                text.push('=');
                text.push_str(REDACTED);
                rest = &rest[end..];
            }
            _ => {}
        }
    }
    text.push_str(rest);
    // Then the user-info: up to the last `@`, so a password holding `@` (or `?`) is hidden
    // whole. When a later `@` sits in the query this hides more than the password, never less.
    match (text.find("://"), text.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &text[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => {
                    format!(
                        "{}{user}:{REDACTED}{}",
                        &text[..scheme_end + 3],
                        &text[at..]
                    )
                }
                None => text,
            }
        }
        _ => text,
    }
}

fn secret<T>(value: Option<&T>) -> Option<&'static str> {
    value.map(|_| REDACTED)
}

impl fmt::Debug for GlobalArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalArgs")
            .field("config", &self.config)
            .field("database_url", &self.database_url.as_deref().map(url))
            .field("secret_key", &secret(self.secret_key.as_ref()))
            .field(
                "secret_key_previous",
                &secret(self.secret_key_previous.as_ref()),
            )
            .finish()
    }
}

impl fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeArgs")
            .field("listen", &self.listen)
            .field("admin_token", &secret(self.admin_token.as_ref()))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("rate_limit_per_sec", &self.rate_limit_per_sec)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("header_timeout_secs", &self.header_timeout_secs)
            .field("body_timeout_secs", &self.body_timeout_secs)
            .field("durability", &self.durability)
            .field("max_connections", &self.max_connections)
            .field("unknown_id_log_per_minute", &self.unknown_id_log_per_minute)
            .field("no_migrate", &self.no_migrate)
            .field("no_workers", &self.no_workers)
            .field("defer_processing", &self.defer_processing)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for FileConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileConfig")
            .field("listen", &self.listen)
            .field("database_url", &self.database_url.as_deref().map(url))
            .field("admin_token", &secret(self.admin_token.as_ref()))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("rate_limit_per_sec", &self.rate_limit_per_sec)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("header_timeout_secs", &self.header_timeout_secs)
            .field("body_timeout_secs", &self.body_timeout_secs)
            .field("durability", &self.durability)
            .field("defer_processing", &self.defer_processing)
            .field("secret_key", &secret(self.secret_key.as_ref()))
            .field(
                "secret_key_previous",
                &secret(self.secret_key_previous.as_ref()),
            )
            .field("max_connections", &self.max_connections)
            .field("unknown_id_log_per_minute", &self.unknown_id_log_per_minute)
            .field("retention", &self.retention)
            .field("connections", &self.connections)
            .field("drains", &self.drains)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted_wherever_they_are_written() {
        let cases = [
            (
                "postgres://u:pw@h/db",
                "postgres://u:<redacted>@h/db",
                "pw@",
            ),
            // A password holding `@` (unencoded) is hidden whole, not cut at its first `@`.
            (
                "postgres://u:p@ss@h:5432/db",
                "postgres://u:<redacted>@h:5432/db",
                "ss@",
            ),
            (
                "postgres://u@h/db?sslmode=require&password=hunter22",
                "postgres://u@h/db?sslmode=require&password=<redacted>",
                "hunter22",
            ),
            (
                "postgresql://h/db?PASSWORD=hunter22&sslpassword=keypass9",
                "postgresql://h/db?PASSWORD=<redacted>&sslpassword=<redacted>",
                "keypass9",
            ),
            (
                "postgres://u:a?b@h/db",
                "postgres://u:<redacted>@h/db",
                "a?b",
            ),
            (
                "postgres://u@h/db?application_name=a@b&password=p@ss:w",
                "postgres://u@h/db?application_name=a@b&password=<redacted>",
                "p@ss",
            ),
            ("sqlite://x.db", "sqlite://x.db", "\u{0}"),
            ("sqlite://x.db?mode=rwc", "sqlite://x.db?mode=rwc", "\u{0}"),
        ];
        for (input, expected, secret) in cases {
            let out = url(input);
            assert_eq!(out, expected, "{input}");
            assert!(!out.contains(secret), "{input}: {out}");
        }
    }

    #[test]
    fn debug_of_raw_settings_hides_every_secret() {
        let file: FileConfig = toml::from_str(
            r#"
database_url = "postgres://u:dbpass-1@h/db?password=dbpass-2"
admin_token = "admin-token-value-1"
secret_key = "key-text-value-1"
[[connections]]
id = "c"
provider = "brevo"
secrets = ["connection-secret-1"]
[[drains]]
id = "d"
kind = "http"
url = "https://logs.example.com"
headers = {"Authorization" = "drain-header-value-1"}
secret = "whsec_ZHJhaW4tc2VjcmV0LXZhbHVlLTEtMzItYnl0ZXM="
"#,
        )
        .expect("parses");
        let global = GlobalArgs {
            database_url: file.database_url.clone(),
            secret_key: file
                .secret_key
                .as_deref()
                .map(|k| k.parse().expect("infallible")),
            ..GlobalArgs::default()
        };
        let serve = ServeArgs {
            admin_token: file.admin_token.clone(),
            ..ServeArgs::default()
        };
        let text = format!(
            "{file:?} {file:#?} {global:?} {serve:?} {:?}",
            file.connections[0]
        );
        for secret in [
            "dbpass-1",
            "dbpass-2",
            "admin-token-value-1",
            "key-text-value-1",
            "connection-secret-1",
            "drain-header-value-1",
            "ZHJhaW4tc2VjcmV0LXZhbHVlLTEtMzItYnl0ZXM",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("<1 redacted>") && text.contains("<redacted>"),
            "{text}"
        );
    }
}
