//! The integration suite: one binary, real stores, real HTTP over loopback.
//! Scenarios that touch a store run on SQLite and, with `HOOKGATE_TEST_POSTGRES_URL`, again on
//! PostgreSQL (see `support::backend_tests!`).

mod abuse;
mod admin;
mod bad_input;
mod bench_smoke;
mod cli;
mod cluster;
mod console;
mod crash;
mod custom;
mod delivery;
mod drains;
mod fidelity;
mod lingering;
mod openapi;
mod operations;
mod operator_cli;
mod outage;
mod pipeline;
mod secrets;
mod security;
mod support;
mod sw_verifier;
mod webhooks;
