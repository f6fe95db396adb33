//! A short run of the load generator (`hookgate-bench`, in-process, against the real `hookgate`
//! binary; a few seconds): zero loss and one fire per stored event. The test keeps the store
//! and counts its rows itself, so an event stored twice or missing is seen here, not only by
//! the benchmark's own tally. It checks correctness only; speed is for the real benchmark
//! (README).

use std::collections::HashSet;

use clap::Parser as _;
use hookgate::db::Db;
use hookgate_bench::args::Cli;
use hookgate_bench::load::Report;

use crate::support::Backend;

async fn run_bench(store: &str, provider: &str) -> Report {
    bench(&[
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--keep-store",
        "--provider",
        provider,
        "--store",
        store,
    ])
    .await
}

/// The load test with `options`, 8 connections, no baselines, unpinned, against the binary
/// built with this test.
async fn bench(options: &[&str]) -> Report {
    let cli = Cli::try_parse_from(
        [
            "hookgate-bench",
            "--connections",
            "8",
            "--no-baseline",
            "--server-cpu",
            "none",
        ]
        .iter()
        .chain(options),
    )
    .expect("bench arguments");
    let mut args = cli.bench;
    args.hookgate = Some(env!("CARGO_BIN_EXE_hookgate").into());
    hookgate_bench::load::run(args).await.expect("bench run")
}

/// The kept store, opened for the test's own counts.
async fn open_kept(report: &Report, server: Option<&str>) -> Db {
    let kept = report
        .kept_store
        .as_ref()
        .expect("--keep-store names the store");
    match (&kept.sqlite_path, &kept.postgres_schema, server) {
        (Some(path), _, _) => Db::connect(
            &format!("sqlite://{}", path.display()),
            hookgate::db::Durability::Full,
        )
        .await
        .expect("open the kept SQLite store"),
        (None, Some(schema), Some(server)) => Db::connect_postgres_schema(server, schema)
            .await
            .expect("open the kept schema"),
        _ => panic!("the kept store is neither a SQLite file nor a schema: {kept:?}"),
    }
}

/// Removes the kept store: the SQLite directory, or the PostgreSQL schema.
async fn remove_kept(report: &Report, server: Option<&str>) {
    use sqlx::Connection as _;
    let kept = report.kept_store.as_ref().expect("kept store");
    if let Some(dir) = kept.sqlite_path.as_ref().and_then(|p| p.parent()) {
        std::fs::remove_dir_all(dir).expect("remove the kept SQLite directory");
    }
    if let (Some(schema), Some(server)) = (&kept.postgres_schema, server) {
        let mut conn = sqlx::PgConnection::connect(server).await.expect("connect");
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut conn)
            .await
            .expect("drop the kept schema");
        conn.close().await.ok();
    }
}

async fn check(report: &Report, server: Option<&str>) {
    let acknowledged = usize::try_from(report.acknowledged).expect("count");
    assert!(acknowledged > 0, "{report:?}");
    assert_eq!(report.gateway.errors, 0, "{report:?}");
    assert!(
        report
            .gateway
            .statuses
            .keys()
            .all(|s| (200..300).contains(s)),
        "every request was acknowledged: {report:?}"
    );
    assert!(
        report.drain_secs.is_some(),
        "the backlog drained: {report:?}"
    );

    // The test's own count of the store: every request was acknowledged, so the stored events
    // must be exactly as many, each once, each processed, each with one fire.
    let db = open_kept(report, server).await;
    let ids = db.stored_event_ids("bench").await.expect("stored ids");
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an event is stored twice");
    assert_eq!(
        ids.len(),
        acknowledged,
        "stored events = acknowledged requests"
    );
    let counts = db.status_counts().await.expect("status counts");
    assert_eq!(
        counts,
        vec![(
            "processed".to_owned(),
            i64::try_from(acknowledged).expect("count")
        )],
        "every stored event processed"
    );
    assert_eq!(
        db.fire_count().await.expect("fires"),
        i64::try_from(acknowledged).expect("count"),
        "one fire per stored event"
    );
    db.close().await;
    remove_kept(report, server).await;
    // The benchmark's own tally agrees.
    assert_eq!(report.missing, 0, "{report:?}");
    assert_eq!(report.stored, report.acknowledged, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_sqlite() {
    check(&run_bench("sqlite", "stripe").await, None).await;
    check(&run_bench("sqlite", "clerk").await, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_postgres() {
    let Some(Backend::Postgres(url)) = Backend::postgres() else {
        return; // Not run, and said so (under CI, `Backend::postgres` fails instead).
    };
    check(&run_bench(&url, "stripe").await, Some(&url)).await;
}

/// `--seed-events`: the second run on a store seeded with a history loses nothing, makes one
/// fire per live event (the seeded fires apart), and the admin queries page through the
/// seeded rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_seeded() {
    let report = bench(&[
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--seed-events",
        "3000",
    ])
    .await;
    let growth = report.growth.as_ref().expect("a seeded run");
    assert_eq!(growth.seeded.events, 3000, "{growth:?}");
    assert!(
        growth.seeded.store_mib > 5.0,
        "2 KiB bodies were seeded: {growth:?}"
    );
    assert!(growth.acknowledged > 0, "{growth:?}");
    assert_eq!(growth.missing, 0, "{growth:?}");
    assert_eq!(growth.stored, growth.acknowledged, "{growth:?}");
    assert_eq!(
        growth.fires, growth.stored,
        "one fire per live event: {growth:?}"
    );
    let items = |query: &str| {
        growth
            .queries
            .iter()
            .find(|t| t.query.contains(query))
            .map(|t| t.items)
    };
    // 1 in 20 seeded rows is a rejected request; nothing matches an unknown type.
    assert_eq!(items("outcome=rejected"), Some(50), "{growth:?}");
    assert_eq!(items("status=ignored"), Some(50), "{growth:?}");
    assert_eq!(items("event_type=no.such.type"), Some(0), "{growth:?}");
    assert!(growth.ratio_to_empty > 0.0, "{growth:?}");
}
