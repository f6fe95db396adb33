//! Records the git commit the binary is built from, for `hookgate --version`.
//!
//! `HOOKGATE_GIT_COMMIT` is `git rev-parse --short HEAD`, or `unknown` when git or the
//! repository is missing (a crate tarball, a container build without `.git`). The script runs
//! again when HEAD moves: a commit, a checkout, or a merge. It watches the files git changes then,
//! found through git itself so that it also works in a linked worktree, where `.git` is a file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn watch(path: &Path) {
    // Cargo reruns a script every build for a watched path that does not exist, so only
    // existing files are named.
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=HOOKGATE_GIT_COMMIT={commit}");
    let (Some(git_dir), Some(common_dir)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) else {
        return;
    };
    let git_dir = PathBuf::from(git_dir);
    let common_dir = PathBuf::from(common_dir);
    // HEAD names the branch (or is a detached commit); the branch's ref file or packed-refs
    // holds the commit it points at.
    watch(&git_dir.join("HEAD"));
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&common_dir.join(reference));
    }
    watch(&common_dir.join("packed-refs"));
}
