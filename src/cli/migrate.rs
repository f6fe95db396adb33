//! `hookgate migrate`: apply the database migrations and exit.

use crate::config::GlobalArgs;

/// Runs `hookgate migrate`.
///
/// # Errors
/// The database cannot be opened or a migration fails.
pub async fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let (db, _) = super::open_migrated(global).await?;
    println!("migrations applied to the {} database", db.backend_name());
    Ok(())
}
