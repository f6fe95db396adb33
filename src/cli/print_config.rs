//! `hookgate print-config`: the effective configuration with secrets redacted.

use crate::config::{Config, GlobalArgs, ServeArgs};

/// Runs `hookgate print-config`.
///
/// # Errors
/// The configuration is invalid (the message names the key).
pub fn run(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(global, args)?;
    println!("{config:#?}");
    Ok(())
}
