//! The integration tests: one test binary (`it`), one module per area, sharing the helpers
//! of [`common`] (the test collector, the Iglu validator, shortcuts), compiled once.
//!
//! Every test runs in this one process, beside others, so no test changes process-wide
//! state: each captures its own logs (`common::logs`), the TLS tests name their crypto
//! provider instead of installing one, and no test sets an environment variable (the crash
//! and signal tests hand theirs to the child process they start). Tests run as many at a
//! time as there are cores, heavy ones (the soak, the load generator, many threads tracking)
//! beside those with time bounds: none relies on running alone.
//!
//! Run one area or one test with a filter: `cargo test --all-features --test it -- retries::`.

// The helpers live in `tests/common/`, where `benches/emitter.rs` finds the test collector.
#[path = "../common/mod.rs"]
mod common;

mod anonymous;
mod architecture;
mod bad_input;
mod batching;
mod callbacks;
mod capacity;
mod collector_selftest;
mod concurrency;
mod crash;
mod delivery;
mod example_collector;
mod flush;
mod hardening;
mod health;
mod loadgen;
mod logging;
mod metrics;
mod outcome;
mod payload;
mod privacy;
mod properties;
mod raw_faults;
mod real_conditions;
mod retries;
mod shutdown;
mod signals;
mod soak;
mod sqlite_store;
mod status_codes;
mod supervision;
mod timeouts;
mod tls;
mod tracker;
mod web;
