//! A short run of `hookgate bench` (a few seconds): it must prove zero loss and one fire per
//! stored event. It checks correctness only; speed is for the real benchmark (README).

use std::process::Command;

use serde_json::Value;

use crate::support::Backend;

/// Runs `hookgate bench <args> --server-cpu none --json` and returns its JSON report.
pub fn bench_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("bench")
        .args(args)
        .args(["--server-cpu", "none", "--json"])
        .env_remove("HOOKGATE_DATABASE_URL")
        .env_remove("HOOKGATE_CONFIG")
        .output()
        .expect("run hookgate bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("bench printed no JSON report ({e}): {stdout}"))
}

fn run_bench(store: &str, provider: &str) -> Value {
    bench_json(&[
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--connections",
        "8",
        "--no-baseline",
        "--provider",
        provider,
        "--store",
        store,
    ])
}

fn check(report: &Value) {
    let acknowledged = report["acknowledged"].as_u64().expect("acknowledged");
    assert!(acknowledged > 0, "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    assert_eq!(report["stored"].as_u64(), Some(acknowledged), "{report}");
    assert_eq!(
        report["fires"], report["stored"],
        "one fire per stored event: {report}"
    );
    assert!(
        report["drain_secs"].is_number(),
        "the backlog drained: {report}"
    );
    assert_eq!(report["gateway"]["errors"], 0, "{report}");
}

#[test]
fn bench_smoke_sqlite() {
    check(&run_bench("sqlite", "stripe"));
    check(&run_bench("sqlite", "clerk"));
}

#[test]
fn bench_smoke_postgres() {
    let Some(Backend::Postgres(url)) = Backend::postgres() else {
        return; // Not run, and said so (under CI, `Backend::postgres` fails instead).
    };
    check(&run_bench(&url, "stripe"));
}
