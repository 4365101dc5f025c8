//! The load generator of `examples/loadgen`, run against the test collector.

#[path = "../../examples/loadgen/run.rs"]
mod run;

use std::time::Duration;

use crate::common::collector::{Faults, TestCollector};
use serde_json::Value;
use snowplow_actix::emitter::{DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_REQUEST_BYTES};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| arg.to_string()).collect()
}

#[actix_rt::test]
async fn loadgen_delivers_every_event_to_every_endpoint_and_reports_json() {
    let first = TestCollector::with_faults(Faults::none()).await;
    let second = TestCollector::with_faults(Faults::none()).await;
    let options = run::Options::parse(&args(&[
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

    let line = run::run(options).await.unwrap();

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
        let error = run::Options::parse(&args(&bad)).unwrap_err();
        assert!(error.contains(expected), "{bad:?}: {error}");
    }
}

#[test]
fn flags_not_given_leave_the_library_defaults() {
    let options = run::Options::parse(&args(&["--endpoint", "h"])).unwrap();
    assert_eq!(options.max_in_flight, None);
    assert_eq!(options.buffer_capacity, None);
    assert_eq!(options.max_retry_delay, None);
    assert_eq!(options.request_timeout, None);
    assert_eq!(options.max_request_events, None);
    assert_eq!(options.max_request_bytes, None);
    assert_eq!(options.batch_size, None);
    assert_eq!(options.byte_limit, None);

    let options = run::Options::parse(&args(&[
        "--endpoint",
        "h",
        "--max-in-flight",
        "4",
        "--buffer-capacity",
        "50",
        "--max-retry-delay-ms",
        "250",
        "--request-timeout-ms",
        "1500",
        "--max-request-events",
        "7",
        "--max-request-bytes",
        "4096",
    ]))
    .unwrap();
    assert_eq!(options.max_in_flight, Some(4));
    assert_eq!(options.buffer_capacity, Some(50));
    assert_eq!(options.max_retry_delay, Some(Duration::from_millis(250)));
    assert_eq!(options.request_timeout, Some(Duration::from_millis(1500)));
    assert_eq!(options.max_request_events, Some(7));
    assert_eq!(options.max_request_bytes, Some(4096));
}

#[actix_rt::test]
async fn max_request_events_caps_every_request() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let options = run::Options::parse(&args(&[
        "--endpoint",
        &collector.endpoint(),
        "--events",
        "1000",
        "--max-request-events",
        "7",
    ]))
    .unwrap();

    let summary: Value = serde_json::from_str(&run::run(options).await.unwrap()).unwrap();

    assert_eq!(summary["sent"], 1000);
    assert_eq!(collector.accepted_count(), 1000);
    let requests = collector.requests();
    let most = requests.iter().map(|r| r.events.len()).max().unwrap();
    // A flush starts at 10 queued events (the default batch size): its first request is
    // cut at 7.
    assert_eq!(most, 7, "largest request");
    assert!(requests.len() >= 1000 / 7, "{} requests", requests.len());
}

#[actix_rt::test]
async fn max_request_bytes_caps_every_body_and_is_reported() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let options = run::Options::parse(&args(&[
        "--endpoint",
        &collector.endpoint(),
        "--events",
        "500",
        "--max-request-bytes",
        "3000",
    ]))
    .unwrap();

    let summary: Value = serde_json::from_str(&run::run(options).await.unwrap()).unwrap();

    assert_eq!(summary["sent"], 500);
    assert_eq!(collector.accepted_count(), 500);
    let requests = collector.requests();
    assert!(requests.iter().all(|r| r.body_len_or_query_len <= 3000));
    assert!(requests.iter().any(|r| r.events.len() > 1));
    assert_eq!(summary["emitters"][0]["request_bytes_cap"], 3000);
}

#[actix_rt::test]
async fn the_report_carries_the_concurrency_limit() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    // Without --max-in-flight: the library's bound.
    let options = run::Options::parse(&args(&[
        "--endpoint",
        &collector.endpoint(),
        "--events",
        "2000",
    ]))
    .unwrap();
    let summary: Value = serde_json::from_str(&run::run(options).await.unwrap()).unwrap();
    let emitter = &summary["emitters"][0];
    let limit = emitter["concurrency_limit"]
        .as_u64()
        .expect("concurrency_limit");
    assert!(
        (1..=DEFAULT_MAX_IN_FLIGHT as u64).contains(&limit),
        "{limit}"
    );
    assert_eq!(
        emitter["request_bytes_cap"],
        DEFAULT_MAX_REQUEST_BYTES as u64
    );
    for field in ["retry_requests", "braked"] {
        assert!(emitter.get(field).is_some(), "{field} in {emitter}");
    }

    // --max-in-flight 1: one request at a time, a limit of 1.
    let options = run::Options::parse(&args(&[
        "--endpoint",
        &collector.endpoint(),
        "--events",
        "2000",
        "--max-in-flight",
        "1",
    ]))
    .unwrap();
    let summary: Value = serde_json::from_str(&run::run(options).await.unwrap()).unwrap();
    assert_eq!(summary["emitters"][0]["concurrency_limit"], 1);
    assert_eq!(summary["sent"], 2000);
    assert_eq!(collector.accepted_count(), 4000);
}

#[actix_rt::test]
async fn settings_the_library_refuses_are_bad_arguments() {
    for (bad, expected) in [
        (vec!["--endpoint", "ftp://h"], "is not supported"),
        (
            vec!["--endpoint", "http://127.0.0.1:9", "--batch-size", "0"],
            "batch_size must be greater than zero",
        ),
        (
            vec![
                "--endpoint",
                "http://127.0.0.1:9",
                "--max-request-events",
                "0",
            ],
            "max_request_events must be greater than zero",
        ),
        (
            vec!["--endpoint", "http://127.0.0.1:9", "--max-in-flight", "0"],
            "max_in_flight must be greater than zero",
        ),
        (
            vec![
                "--endpoint",
                "http://127.0.0.1:9",
                "--max-request-bytes",
                "10",
            ],
            "cannot hold one event",
        ),
    ] {
        let options = run::Options::parse(&args(&bad)).unwrap();
        let error = run::run(options).await.unwrap_err();
        assert!(
            matches!(error, run::RunError::Settings(_)),
            "{bad:?}: {error:?}"
        );
        assert_eq!(error.exit_code(), 2, "{bad:?}");
        assert!(error.to_string().contains(expected), "{bad:?}: {error}");
    }
}
