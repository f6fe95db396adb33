//! What an operator deploys and checks: `hookgate --version`, and the example configuration
//! under `deploy/` read by the real loader.

use std::process::Command;

/// `git rev-parse --short HEAD` of this checkout, or `unknown` without git.
fn head_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|commit| !commit.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("--version")
        .output()
        .expect("run hookgate");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim_end(),
        format!(
            "hookgate {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            head_commit()
        )
    );
    // Subcommands say the same.
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["logs", "--version"])
        .output()
        .expect("run hookgate");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&head_commit()),
        "{out:?}"
    );
}

const STRIPE_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BREVO_TOKEN: &str = "brevo-token-for-the-example";

/// `hookgate --config <file> print-config` with the secrets the example names in its
/// environment, as the unit's EnvironmentFile would provide them.
fn print_config(file: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("--config")
        .arg(file)
        .arg("print-config")
        .env_clear()
        .env("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
        .env("BREVO_WEBHOOK_TOKEN", BREVO_TOKEN)
        .output()
        .expect("run hookgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The example configuration is read by the real loader as shipped, and again with every
/// optional setting it shows (`#key = value`) switched on.
#[test]
fn example_config_loads() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/hookgate.example.toml");
    let (ok, stdout, stderr) = print_config(&example);
    assert!(ok, "{stderr}");
    for expected in [
        "listen: 127.0.0.1:8080",
        "database_url: \"sqlite:///var/lib/hookgate/hookgate.db\"",
        "127.0.0.1/32",
        "::1/128",
        "id: \"stripe-live\"",
        "id: \"brevo-marketing\"",
        "\"@brevo\"",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains(STRIPE_SECRET) && !stdout.contains(BREVO_TOKEN),
        "a secret is printed:\n{stdout}"
    );

    let text = std::fs::read_to_string(&example).expect("read example");
    let mut optional = 0;
    let all_on: String = text
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => {
                optional += 1;
                format!("{rest}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect();
    assert!(optional >= 8, "only {optional} optional settings found");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("all-on.toml");
    std::fs::write(&path, all_on).expect("write");
    let (ok, stdout, stderr) = print_config(&path);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("rate_limit_burst: 2000"), "{stdout}");
}
