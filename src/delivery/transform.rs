//! Endpoint transforms: a jq program (run by the jaq engine) that turns the delivery body into
//! the JSON to send. `null` means "do not send" (the delivery is `skipped`).
//!
//! Programs are compiled when an endpoint is saved, so a typo is refused with the engine's
//! message instead of failing every delivery later. At run time a program gets a time budget and
//! an output size limit; it must produce exactly one value.
//!
//! jaq values are reference-counted and not `Send`, so a program is compiled and run on one
//! thread. A run that exceeds its time budget cannot be interrupted (jaq has no cancellation
//! hook): its thread is left to finish on its own and the delivery fails with a time-out. At
//! most [`MAX_RUNAWAY`] such threads may be outstanding; beyond that, transforms fail at once
//! until they finish, so a hostile program cannot take every core.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Native, RcIter};
use jaq_json::Val;

/// Time budget of one run.
pub const TIME_LIMIT: Duration = Duration::from_secs(1);
/// Largest output (serialized JSON) a run may produce.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Longest program accepted.
pub const MAX_PROGRAM_BYTES: usize = 16 * 1024;
/// Runs past their time budget that may still be running before new runs are refused.
pub const MAX_RUNAWAY: usize = 4;

/// Why a transform failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("transform does not compile: {0}")]
    Compile(String),
    #[error("transform failed: {0}")]
    Runtime(String),
    #[error("transform produced no value (return null to skip a delivery)")]
    NoValue,
    #[error("transform produced more than one value")]
    ManyValues,
    #[error("transform output is larger than {MAX_OUTPUT_BYTES} bytes")]
    TooLarge,
    #[error("transform did not finish within {} ms", TIME_LIMIT.as_millis())]
    TimedOut,
    #[error("transforms are refused until earlier runs that exceeded their time budget finish")]
    Busy,
}

type Filter = jaq_core::Filter<Native<Val>>;

fn compile_filter(program: &str) -> Result<Filter, TransformError> {
    if program.len() > MAX_PROGRAM_BYTES {
        return Err(TransformError::Compile(format!(
            "the program is longer than {MAX_PROGRAM_BYTES} bytes"
        )));
    }
    let loader = Loader::new(jaq_std::defs().chain(jaq_json::defs()));
    let arena = Arena::default();
    let file = File {
        code: program,
        path: (),
    };
    let modules = loader
        .load(&arena, file)
        .map_err(|errors| TransformError::Compile(load_message(&errors)))?;
    Compiler::default()
        .with_funs(jaq_std::funs().chain(jaq_json::funs()))
        .compile(modules)
        .map_err(|errors| {
            let mut parts = Vec::new();
            for (_, list) in &errors {
                for (name, kind) in list {
                    parts.push(format!("undefined {} `{name}`", kind.as_str()));
                }
            }
            TransformError::Compile(parts.join("; "))
        })
}

fn load_message(errors: &jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error;
    let mut parts = Vec::new();
    for (_, error) in errors {
        match error {
            Error::Io(list) => {
                for (path, message) in list {
                    parts.push(format!("cannot load module `{path}`: {message}"));
                }
            }
            Error::Lex(list) => {
                for (expect, at) in list {
                    parts.push(format!("expected {} at `{}`", expect.as_str(), snippet(at)));
                }
            }
            Error::Parse(list) => {
                for (expect, at) in list {
                    let at = if at.is_empty() {
                        "the end of the program".to_owned()
                    } else {
                        format!("`{}`", snippet(at))
                    };
                    parts.push(format!("expected {} at {at}", expect.as_str()));
                }
            }
        }
    }
    if parts.is_empty() {
        "the program is not valid jq".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The start of the unparsed rest of a program, for error messages.
fn snippet(rest: &str) -> String {
    rest.chars().take(24).collect()
}

/// Checks that `program` compiles (done when an endpoint is saved).
///
/// # Errors
/// The engine's description of the first problems.
pub fn check(program: &str) -> Result<(), TransformError> {
    compile_filter(program).map(|_| ())
}

/// Runs the program in the calling thread (no time budget; see [`run`]).
fn run_here(program: &str, input: serde_json::Value) -> Result<Option<Vec<u8>>, TransformError> {
    let filter = compile_filter(program)?;
    let inputs = RcIter::new(core::iter::empty());
    let mut out = filter.run((Ctx::new([], &inputs), Val::from(input)));
    let first = match out.next() {
        None => return Err(TransformError::NoValue),
        Some(Err(e)) => return Err(TransformError::Runtime(e.to_string())),
        Some(Ok(v)) => v,
    };
    if out.next().is_some() {
        return Err(TransformError::ManyValues);
    }
    if first == Val::Null {
        return Ok(None);
    }
    let text = first.to_string();
    if text.len() > MAX_OUTPUT_BYTES {
        return Err(TransformError::TooLarge);
    }
    // jaq prints JSON; reading it back guarantees the bytes sent are valid, compact JSON.
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| TransformError::Runtime(format!("output is not JSON: {e}")))?;
    Ok(Some(value.to_string().into_bytes()))
}

/// Transforms `input`: `Ok(None)` means skip, `Ok(Some(bytes))` the body to send.
///
/// # Errors
/// The program fails, yields no or several values, its output is too large, or it runs past
/// [`TIME_LIMIT`].
pub async fn run(
    program: &str,
    input: serde_json::Value,
) -> Result<Option<Vec<u8>>, TransformError> {
    static RUNAWAY: AtomicUsize = AtomicUsize::new(0);
    if RUNAWAY.load(Ordering::Relaxed) >= MAX_RUNAWAY {
        return Err(TransformError::Busy);
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let program = program.to_owned();
    let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&timed_out);
    std::thread::Builder::new()
        .name("hookgate-transform".into())
        .stack_size(64 * 1024 * 1024)
        .spawn(move || {
            let result = run_here(&program, input);
            if flag.load(Ordering::SeqCst) {
                RUNAWAY.fetch_sub(1, Ordering::SeqCst);
            }
            let _ = tx.send(result);
        })
        .map_err(|e| TransformError::Runtime(format!("cannot start a transform thread: {e}")))?;
    match tokio::time::timeout(TIME_LIMIT, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(TransformError::Runtime(
            "the transform thread panicked".into(),
        )),
        Err(_) => {
            // Count the thread as runaway unless it finished in the meantime.
            if !timed_out.swap(true, Ordering::SeqCst) {
                RUNAWAY.fetch_add(1, Ordering::SeqCst);
            }
            Err(TransformError::TimedOut)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> serde_json::Value {
        json!({"id": "msg_1", "type": "stripe.invoice.paid", "workspace": "acme",
               "timestamp": "2026-12-01T00:00:00Z", "data": {"email": "a@example.com", "amount": 12}})
    }

    #[tokio::test]
    async fn reshapes_the_body() {
        let out = run("{email: .data.email, kind: .type}", body())
            .await
            .expect("runs")
            .expect("a value");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).expect("json"),
            json!({"email": "a@example.com", "kind": "stripe.invoice.paid"})
        );
    }

    #[tokio::test]
    async fn null_skips() {
        let program = r#"if .type | startswith("stripe.") then null else . end"#;
        assert_eq!(run(program, body()).await, Ok(None));
    }

    #[test]
    fn compile_errors_name_the_problem() {
        let err = check("{email: .data.email").expect_err("unclosed");
        assert!(
            err.to_string().starts_with("transform does not compile"),
            "{err}"
        );
        assert!(err.to_string().contains("expected"), "{err}");
        let err = check("nosuchfunction(.)").expect_err("undefined");
        assert!(err.to_string().contains("nosuchfunction"), "{err}");
        check(".data | del(.amount)").expect("compiles");
    }

    #[tokio::test]
    async fn runtime_errors_and_value_counts() {
        assert!(matches!(
            run(r#"error("boom")"#, body()).await,
            Err(TransformError::Runtime(m)) if m.contains("boom")
        ));
        assert_eq!(run("empty", body()).await, Err(TransformError::NoValue));
        assert_eq!(run(".a, .b", body()).await, Err(TransformError::ManyValues));
    }

    #[tokio::test]
    async fn output_and_time_are_bounded() {
        // A string of 2 MiB: over the output limit.
        assert_eq!(
            run(r#"[range(0; 21)] | map("x" * 100000) | join("")"#, body()).await,
            Err(TransformError::TooLarge)
        );
        // A program that never ends is cut off at the time limit.
        let started = std::time::Instant::now();
        assert_eq!(
            run("last(range(0; infinite))", body()).await.err(),
            Some(TransformError::TimedOut)
        );
        assert!(started.elapsed() < TIME_LIMIT * 3);
    }
}
