//! `hookgate replay <id>`: runs normalization again for one stored event, in this process,
//! against the database directly: the same steps as `POST /admin/ingest/<id>/replay`. Fires are
//! unique by idempotency key, so a replay never fires twice; it re-applies contact fields (older
//! values never overwrite newer ones) and maps events that were `ignored` if they are mapped
//! now. A running gateway sees the result at its next poll.

use anyhow::bail;
use clap::Args;
use hookgate_providers::NormalizeContext;

use crate::config::GlobalArgs;
use crate::db::Known;
use crate::pipeline::plan_event;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The ingest record's id (from `hookgate logs`).
    pub id: String,
    /// Print the result as JSON (as the admin API answers) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `hookgate replay`.
///
/// # Errors
/// No such record, a record that is not a stored event, or a database error.
pub async fn run(global: &GlobalArgs, args: ReplayArgs) -> anyhow::Result<()> {
    let (db, _) = super::open_migrated(global).await?;
    let id = args.id;
    let Some(event) = db.load_event(&id).await? else {
        match db.get_ingest(&id).await? {
            Some(row) => bail!(
                "only stored (accepted or ignored) events can be replayed; {id} was {} (HTTP {})",
                row.summary.outcome,
                row.summary.http_status
            ),
            None => bail!("no ingest record {id:?} (ids are the first column of `hookgate logs`)"),
        }
    };
    // The connection's settings as stored (Supabase `email_path` and `user_id_column`); a
    // removed connection replays with the defaults.
    let connection = db.get_connection(&event.connection_id).await?;
    let context = NormalizeContext {
        email_path: connection.as_ref().and_then(|c| c.email_path.as_deref()),
        user_id_column: connection
            .as_ref()
            .and_then(|c| c.user_id_column.as_deref()),
    };
    let now = crate::now_ms();
    let plan = plan_event(&event, &context, None, now);
    let applied = db
        .apply_plans(std::slice::from_ref(&plan), &Known::default(), now)
        .await?;
    let Some(applied) = applied.into_iter().next() else {
        bail!("the store applied nothing for {id}");
    };
    let fires: Vec<String> = applied.fires.iter().map(ToString::to_string).collect();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "id": id,
                "status": applied.outcome.as_str(),
                "fires": fires,
            })
        );
    } else {
        println!(
            "replayed {id}: {}; fires {}",
            applied.outcome,
            if fires.is_empty() {
                "none".to_owned()
            } else {
                fires.join(", ")
            }
        );
    }
    Ok(())
}
