//! The load generator of `examples/loadgen`, run against the test collector.

mod common;

#[path = "../examples/loadgen/run.rs"]
mod loadgen;

use common::collector::{CollectorConfig, TestCollector};
use serde_json::Value;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| arg.to_string()).collect()
}

#[actix_rt::test]
async fn loadgen_delivers_every_event_to_every_endpoint_and_reports_json() {
    let first = TestCollector::start(CollectorConfig::default()).await;
    let second = TestCollector::start(CollectorConfig::default()).await;
    let options = loadgen::Options::parse(&args(&[
        "--endpoint",
        &first.endpoint(),
        "--endpoint",
        &second.endpoint(),
        "--events",
        "3000",
        "--producers",
        "3",
        "--max-in-flight",
        "2",
        "--event",
        "page_view",
    ]))
    .unwrap();

    let line = loadgen::run(options).await.unwrap();

    let summary: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(summary["events"], 3000);
    assert_eq!(summary["accepted"], 6000);
    assert_eq!(summary["sent"], 6000);
    assert_eq!(summary["queued_at_exit"], 0);
    for reason in ["capacity", "rejected", "shutdown"] {
        assert_eq!(summary["dropped"][reason], 0, "{reason}");
    }
    assert!(summary["events_per_s"].as_f64().unwrap() > 0.0);
    assert!(summary["track_ns_p50"].as_u64().unwrap() <= summary["track_ns_p99"].as_u64().unwrap());
    let emitters = summary["emitters"].as_array().unwrap();
    assert_eq!(emitters.len(), 2);
    assert_eq!(emitters[0]["endpoint"], first.endpoint());
    assert_eq!(emitters[1]["sent"], 3000);
    assert_eq!(
        (first.accepted_count(), second.accepted_count()),
        (3000, 3000)
    );
}

#[test]
fn bad_arguments_are_clear_errors() {
    for (bad, expected) in [
        (vec![], "at least one --endpoint"),
        (
            vec!["--endpoint", "h", "--events", "x"],
            "--events takes a non-negative number",
        ),
        (
            vec!["--endpoint", "h", "--method", "put"],
            "--method must be post or get",
        ),
        (
            vec!["--endpoint", "h", "--retry-code", "500"],
            "--retry-code takes CODE=true|false",
        ),
        (
            vec!["--endpoint", "h", "--bogus"],
            "unknown argument --bogus",
        ),
        (vec!["--endpoint"], "--endpoint needs a value"),
    ] {
        let error = loadgen::Options::parse(&args(&bad)).unwrap_err();
        assert!(error.contains(expected), "{bad:?}: {error}");
    }
}

#[actix_rt::test]
async fn loadgen_reports_build_errors_instead_of_panicking() {
    let options = loadgen::Options::parse(&args(&["--endpoint", "ftp://h"])).unwrap();
    let error = loadgen::run(options).await.unwrap_err();
    assert!(error.contains("unsupported scheme"), "{error}");
}
