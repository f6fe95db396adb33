//! What an operator deploys and checks: `hookgate --version`.

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
