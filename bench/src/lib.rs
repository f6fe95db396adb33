//! `hookgate-bench`, the load generator: it starts a real `hookgate serve` child process on a
//! fresh store and measures it from the outside. It is not part of the product binary.
//!
//! - [`load`]: the closed-loop load test against the baseline servers, and the admin query
//!   timings (`--query-rows`);
//! - [`durable`]: the durable baseline (verify, one group-committed row per event);
//! - [`growth`]: seeding a store with a history of events (`--seed-events`);
//! - [`abuse`]: the `slowloris` and `fairness` scenarios (paced deliveries, alone and under
//!   attack);
//! - [`delivery`]: outbound delivery to a fast local endpoint, alone and next to a slow and a
//!   dead one;
//! - [`args`]: the command line.

pub mod abuse;
pub mod args;
pub mod delivery;
pub mod durable;
pub mod growth;
pub mod load;

use anyhow::Context as _;

use crate::args::{BenchArgs, Scenario};

/// The `hookgate` binary to run: `--hookgate`, or the one next to this binary.
///
/// # Errors
/// Neither is there.
pub fn gateway_binary(args: &BenchArgs) -> anyhow::Result<std::path::PathBuf> {
    let path = match &args.hookgate {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("cannot find the hookgate-bench binary")?
            .with_file_name(format!("hookgate{}", std::env::consts::EXE_SUFFIX)),
    };
    anyhow::ensure!(
        path.is_file(),
        "no hookgate binary at {} (build it with `cargo build --release --workspace`, or name it with --hookgate)",
        path.display()
    );
    Ok(path)
}

/// Runs the benchmark the arguments ask for: the query timings (`--query-rows`), an abuse
/// scenario or the load test, and prints its report.
///
/// # Errors
/// The benchmark cannot run, or acknowledged deliveries are missing from the store.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(rows) = args.query_rows {
        let timings = load::query_test(&args, rows).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&timings)?);
        } else {
            println!("GET /admin/ingest with {rows} stored rows (200 requests each, half paging with the cursor):");
            for t in &timings {
                println!(
                    "  {:<58} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({} items)",
                    t.query, t.p50_ms, t.p99_ms, t.max_ms, t.items
                );
            }
        }
        return Ok(());
    }
    if args.scenario == Scenario::Delivery {
        let report = delivery::run(&args).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            delivery::print(&report);
        }
        let lost = report.alone.lost + report.with_slow_and_dead.lost;
        if lost > 0 {
            anyhow::bail!("{lost} events never reached the fast endpoint");
        }
        return Ok(());
    }
    if args.scenario != Scenario::Load {
        let report = abuse::run(&args).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            abuse::print(&report);
        }
        if report.missing > 0 {
            anyhow::bail!(
                "{} acknowledged deliveries are missing from the store",
                report.missing
            );
        }
        return Ok(());
    }
    let json = args.json;
    let report = load::run(args).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        load::print(&report);
    }
    let missing = report.missing + report.growth.as_ref().map_or(0, |g| g.missing);
    if missing > 0 {
        anyhow::bail!("{missing} acknowledged events are missing from the store");
    }
    Ok(())
}
