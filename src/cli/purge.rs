//! `hookgate purge [--dry-run]`: runs the retention steps once (what the gateway also does in
//! the background) and says what each removed.

use clap::Args;

use crate::config::GlobalArgs;
use crate::retention;

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Only count what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `hookgate purge`.
///
/// # Errors
/// The configuration is invalid or the database fails.
pub async fn run(global: &GlobalArgs, args: PurgeArgs) -> anyhow::Result<()> {
    let (db, config) = super::open_migrated(global).await?;
    let purged = retention::purge(&db, &config.retention, crate::now_ms(), args.dry_run).await?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for p in &purged {
        println!("{verb} {} {} older than {} days", p.rows, p.what, p.days);
    }
    db.close().await;
    Ok(())
}
