//! How each answer is classified: sent, retried, or dropped as `rejected`; custom retry codes,
//! connection errors and timeouts; GET events each decided by their own status.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{
    assert_delivered, assert_settled, closed_port, events, fixed_jitter, flush, labels,
    range_labels, record_failures, stats, track_all, BuilderExt, Failures, Seen,
};
use snowplow_actix::transport::TransportError;
use snowplow_actix::{
    emitter::{FailureReason, Flush, DEFAULT_NON_RETRYABLE_CODES},
    DropReason, EmitterBuilder, Method,
};

impl Seen {
    fn retried(eids: &[String], reason: FailureReason) -> Self {
        Seen {
            eids: eids.to_vec(),
            reason,
            will_retry: true,
            dropped: None,
        }
    }

    fn rejected(eids: &[String], reason: FailureReason) -> Self {
        Seen {
            eids: eids.to_vec(),
            reason,
            will_retry: false,
            dropped: Some(DropReason::Rejected),
        }
    }
}

/// An emitter builder with fast, deterministic retries (no jitter: retried at once) that
/// reports failures to the returned channel.
fn fast_builder(endpoint: String) -> (EmitterBuilder, Failures) {
    record_failures(EmitterBuilder::new(endpoint).retrying_fast(Duration::from_millis(50)))
}

#[actix_rt::test]
async fn rejected_codes_are_dropped_and_reported() {
    assert_eq!(DEFAULT_NON_RETRYABLE_CODES, [400, 401, 403, 410, 422]);
    for code in DEFAULT_NON_RETRYABLE_CODES {
        let collector = TestCollector::with_faults(Faults::statuses([code])).await;
        let (builder, mut failures) = fast_builder(collector.endpoint());
        let emitter = builder.started();
        let ids = track_all(&emitter, events(3));

        let report = flush(&emitter).await;

        assert_delivered(&report, 0);
        assert_eq!(
            (report.dropped.rejected, report.dropped.total()),
            (3, 3),
            "{code}"
        );
        assert_eq!(
            failures.reported(),
            [Seen::rejected(&ids, FailureReason::Status(code))]
        );
        assert_eq!(collector.statuses(), [code], "no second request for {code}");
        let after = stats(&emitter).await;
        assert_eq!(
            (
                after.dropped.rejected,
                after.retried,
                after.requests,
                after.queued
            ),
            (3, 0, 1, 0)
        );

        // The emitter goes on; the rejected events are not sent again.
        let next = track_all(&emitter, events(2));
        let report = flush(&emitter).await;
        assert_eq!(report.sent, 2);
        assert_eq!(collector.statuses(), [code, 200]);
        assert_eq!(collector.event_ids(), next);
        assert!(failures.reported().is_empty());
        let done = stats(&emitter).await;
        assert_eq!((done.sent, done.dropped.rejected, done.requests), (2, 3, 2));
    }
}

#[actix_rt::test]
async fn retryable_codes_are_retried_then_delivered() {
    for code in [500, 503, 404, 429, 408, 301] {
        let collector = TestCollector::with_faults(Faults::statuses([code, 200])).await;
        let (builder, mut failures) = fast_builder(collector.endpoint());
        let emitter = builder.started();
        let ids = track_all(&emitter, events(3));

        let report = flush(&emitter).await;

        assert_eq!(
            (report.sent, report.queued, report.timed_out),
            (3, 0, false),
            "{code}"
        );
        assert_eq!(report.dropped.total(), 0);
        assert_eq!(collector.statuses(), [code, 200]);
        let requests = collector.requests();
        assert_eq!(labels(&requests[0].events), range_labels(0..3));
        assert_eq!(labels(&requests[1].events), range_labels(0..3));
        assert_eq!(collector.event_ids(), ids, "delivered once, same eids");
        assert_eq!(
            failures.reported(),
            [Seen::retried(&ids, FailureReason::Status(code))]
        );
        let stats = stats(&emitter).await;
        assert_eq!(
            (
                stats.sent,
                stats.retried,
                stats.requests,
                stats.dropped.total()
            ),
            (3, 3, 2, 0)
        );
        assert_eq!(stats.consecutive_failures, 0);
    }
}

#[actix_rt::test]
async fn every_2xx_status_counts_as_sent() {
    for code in [200, 201, 202, 204, 299] {
        let collector = TestCollector::with_faults(Faults::always(code)).await;
        let (builder, mut failures) = fast_builder(collector.endpoint());
        let emitter = builder.started();
        let ids = track_all(&emitter, events(3));

        let report = flush(&emitter).await;

        assert_eq!(
            (report.sent, report.queued, report.dropped.total()),
            (3, 0, 0),
            "{code}"
        );
        assert_eq!(collector.statuses(), [code]);
        assert_eq!(collector.event_ids(), ids);
        assert!(failures.reported().is_empty());
        let stats = stats(&emitter).await;
        assert_eq!((stats.sent, stats.retried, stats.requests), (3, 0, 1));
    }
}

#[actix_rt::test]
async fn custom_retry_code_false_drops_a_retryable_status_as_rejected() {
    let collector = TestCollector::with_faults(Faults::statuses([500])).await;
    let (builder, mut failures) = fast_builder(collector.endpoint());
    let emitter = builder.custom_retry_code(500, false).started();
    let ids = track_all(&emitter, events(2));

    let report = flush(&emitter).await;

    assert_eq!((report.sent, report.dropped.rejected), (0, 2));
    assert_eq!(collector.statuses(), [500]);
    assert_eq!(
        failures.reported(),
        [Seen::rejected(&ids, FailureReason::Status(500))]
    );
    let stats = stats(&emitter).await;
    assert_eq!((stats.retried, stats.requests), (0, 1));
}

#[actix_rt::test]
async fn custom_retry_code_true_retries_a_rejected_status_until_delivered() {
    let collector = TestCollector::with_faults(Faults::statuses([401, 401, 200])).await;
    let (builder, mut failures) = fast_builder(collector.endpoint());
    let emitter = builder.custom_retry_code(401, true).started();
    let ids = track_all(&emitter, events(2));

    let report = flush(&emitter).await;

    assert_eq!((report.sent, report.dropped.total()), (2, 0));
    assert_eq!(collector.statuses(), [401, 401, 200]);
    assert_eq!(collector.event_ids(), ids);
    let retried = Seen::retried(&ids, FailureReason::Status(401));
    assert_eq!(failures.reported(), [retried.clone(), retried]);
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.retried, stats.requests), (2, 4, 3));
}

#[actix_rt::test]
async fn connection_errors_are_dropped_as_rejected_when_not_retried() {
    let closed = closed_port();
    let (builder, mut failures) = fast_builder(closed.endpoint());
    let emitter = builder.retry_connection_errors(false).started();
    let ids = track_all(&emitter, events(2));

    let report = flush(&emitter).await;

    assert_delivered(&report, 0);
    assert_eq!((report.dropped.rejected, report.dropped.total()), (2, 2));
    let seen = failures.reported();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        matches!(
            seen[0].reason,
            FailureReason::Transport(TransportError::Connection(_))
        ),
        "{seen:?}"
    );
    assert_eq!(
        (seen[0].eids.as_slice(), seen[0].will_retry, seen[0].dropped),
        (ids.as_slice(), false, Some(DropReason::Rejected))
    );
    let stats = stats(&emitter).await;
    assert_eq!((stats.retried, stats.requests), (0, 1));
}

#[actix_rt::test]
async fn connection_errors_are_retried_until_the_collector_is_up() {
    let closed = closed_port();
    let (builder, mut failures) = fast_builder(closed.endpoint());
    // Retries every 10-50 ms while nothing listens.
    let emitter = builder.jitter(fixed_jitter(0.01)).started();
    let ids = track_all(&emitter, events(2));
    emitter.do_send(Flush::default());
    let first = failures.next().await;
    assert!(
        matches!(
            first.reason,
            FailureReason::Transport(TransportError::Connection(_))
        ),
        "{first:?}"
    );
    assert_eq!((first.eids, first.will_retry), (ids.clone(), true));

    let collector = TestCollector::start_at(Faults::none(), closed.release()).await;
    let report = flush(&emitter).await;

    assert_settled(&report);
    assert_eq!(collector.event_ids(), ids);
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.dropped.total()), (2, 0));
    assert!(stats.retried >= 2, "{stats:#?}");
}

#[actix_rt::test]
async fn timeouts_are_dropped_as_rejected_when_not_retried() {
    // The answer comes 2 s late; the emitter gives up after 200 ms. The status is 503 so
    // the collector does not keep the events of the request it answers late.
    let collector = TestCollector::with_faults(
        Faults::statuses([503]).with_delay_first(1, Duration::from_secs(2)),
    )
    .await;
    let (builder, mut failures) = fast_builder(collector.endpoint());
    let emitter = builder
        .request_timeout(Duration::from_millis(200))
        .retry_timeouts(false)
        .started();
    let ids = track_all(&emitter, events(2));

    let report = flush(&emitter).await;

    assert_eq!((report.sent, report.dropped.rejected), (0, 2));
    assert_eq!(
        failures.reported(),
        [Seen::rejected(
            &ids,
            FailureReason::Transport(TransportError::Timeout)
        )]
    );
    assert_eq!(collector.request_count(), 1);
    assert_eq!(stats(&emitter).await.requests, 1);
}

/// Answers by the event's label: `0` and `1` fail with 500 once, `3` is rejected with 400,
/// anything else is accepted.
fn by_label() -> Faults {
    let failed_once = Arc::new(Mutex::new(HashSet::new()));
    Faults::decide(move |request| {
        let label = request.events.first()?.get("se_la")?.to_owned();
        match label.as_str() {
            "0" | "1" => failed_once.lock().unwrap().insert(label).then_some(500),
            "3" => Some(400),
            _ => None,
        }
    })
}

#[actix_rt::test]
async fn get_events_one_at_a_time_are_each_decided_by_their_own_status() {
    let collector = TestCollector::with_faults(by_label()).await;
    let (builder, mut failures) = fast_builder(collector.endpoint());
    let emitter = builder.method(Method::Get).max_in_flight(1).started();
    let ids = track_all(&emitter, events(4));

    let report = flush(&emitter).await;

    assert_delivered(&report, 3);
    assert_eq!((report.dropped.rejected, report.dropped.total()), (1, 1));
    // One request at a time, in order; a retried event goes back to the front.
    let requests = collector.requests();
    let answered: Vec<(String, u16)> = requests
        .iter()
        .map(|r| (labels(&r.events).concat(), r.status))
        .collect();
    let expected: Vec<(String, u16)> = [
        ("0", 500),
        ("0", 200),
        ("1", 500),
        ("1", 200),
        ("2", 200),
        ("3", 400),
    ]
    .iter()
    .map(|&(label, status)| (label.to_owned(), status))
    .collect();
    assert_eq!(answered, expected);
    assert_eq!(labels(&collector.events()), range_labels(0..3));
    assert_eq!(collector.event_ids(), ids[..3]);
    assert_eq!(
        failures.reported(),
        [
            Seen::retried(&ids[0..1], FailureReason::Status(500)),
            Seen::retried(&ids[1..2], FailureReason::Status(500)),
            Seen::rejected(&ids[3..4], FailureReason::Status(400)),
        ]
    );
    let stats = stats(&emitter).await;
    assert_eq!(
        (
            stats.sent,
            stats.retried,
            stats.dropped.rejected,
            stats.requests
        ),
        (3, 2, 1, 6)
    );
}

#[actix_rt::test]
async fn concurrent_get_events_are_each_decided_by_their_own_status() {
    let collector = TestCollector::with_faults(by_label()).await;
    let (builder, mut failures) = fast_builder(collector.endpoint());
    let emitter = builder.method(Method::Get).max_in_flight(4).started();
    let ids = track_all(&emitter, events(4));

    let report = flush(&emitter).await;

    assert_delivered(&report, 3);
    assert_eq!((report.dropped.rejected, report.dropped.total()), (1, 1));
    let mut answered: Vec<(String, u16)> = collector
        .requests()
        .iter()
        .map(|r| (labels(&r.events).concat(), r.status))
        .collect();
    answered.sort();
    let expected: Vec<(String, u16)> = [
        ("0", 200),
        ("0", 500),
        ("1", 200),
        ("1", 500),
        ("2", 200),
        ("3", 400),
    ]
    .iter()
    .map(|&(label, status)| (label.to_owned(), status))
    .collect();
    assert_eq!(answered, expected);
    let mut delivered = collector.event_ids();
    delivered.sort();
    let mut expected_ids = ids[..3].to_vec();
    expected_ids.sort();
    assert_eq!(delivered, expected_ids, "each accepted event exactly once");
    let mut seen = failures.reported();
    seen.sort_by(|a, b| a.eids.cmp(&b.eids));
    let mut expected_failures = vec![
        Seen::retried(&ids[0..1], FailureReason::Status(500)),
        Seen::retried(&ids[1..2], FailureReason::Status(500)),
        Seen::rejected(&ids[3..4], FailureReason::Status(400)),
    ];
    expected_failures.sort_by(|a, b| a.eids.cmp(&b.eids));
    assert_eq!(seen, expected_failures);
    let stats = stats(&emitter).await;
    assert_eq!(
        (
            stats.sent,
            stats.retried,
            stats.dropped.rejected,
            stats.requests
        ),
        (3, 2, 1, 6)
    );
}
