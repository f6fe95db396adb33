//! `hookgate backup <file>`: a consistent copy of the SQLite database, made with `VACUUM INTO`
//! while the gateway keeps running. Copying the database file itself is not a backup: with the
//! write-ahead log, committed events may still be only in `hookgate.db-wal`, and a copy taken
//! during a checkpoint can be torn. `VACUUM INTO` reads one snapshot inside a read transaction
//! (writers carry on) and writes a compact, self-contained file with no WAL of its own.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;

use crate::config::GlobalArgs;
use crate::db::Db;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new file to write; it must not exist yet.
    pub file: PathBuf,
}

/// Runs `hookgate backup`.
///
/// # Errors
/// The store is PostgreSQL, the file exists, or SQLite cannot write it.
pub async fn run(global: &GlobalArgs, args: BackupArgs) -> anyhow::Result<()> {
    if args.file.exists() {
        bail!(
            "{} exists; give a new file name (a backup never overwrites)",
            args.file.display()
        );
    }
    let (db, _) = super::open_store(global).await?;
    let Db::Sqlite { readers, .. } = &db else {
        bail!("backup copies a SQLite database; for PostgreSQL use pg_dump (or the server's own backups)");
    };
    let target = args
        .file
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", args.file.display()))?;
    // An empty file made first, mode 0600: `VACUUM INTO` accepts an empty target and keeps its
    // mode, so the copy is as private as the database.
    crate::db::sqlite::create_private(&args.file)
        .with_context(|| format!("cannot create {}", args.file.display()))?;
    let started = std::time::Instant::now();
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(readers)
        .await
        .with_context(|| format!("cannot write the backup to {}", args.file.display()))?;
    let size = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up to {} ({size} bytes, {} ms)",
        args.file.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}
