//! Retries: retryable failures go back to the front of the queue and are retried after an
//! exponential backoff, capped, driven by the emitter's own timer; nothing is sent early.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::collector::{Faults, RecordedRequest, TestCollector};
use crate::common::support::{
    assert_delivered, assert_settled, closed_port, events, fixed_jitter, flush, labels,
    range_labels, record_failures, sorted_labels, stats, track_all, wait_events, wait_requests,
    BuilderExt,
};
use futures::channel::mpsc;
use futures::StreamExt as _;
use snowplow_actix::transport::TransportError;
use snowplow_actix::{
    emitter::{FailureReason, Flush},
    DropReason, EmitterBuilder,
};

fn gaps(requests: &[RecordedRequest]) -> Vec<Duration> {
    requests
        .windows(2)
        .map(|pair| pair[1].at.duration_since(pair[0].at))
        .collect()
}

#[actix_rt::test]
async fn retries_500_until_the_collector_recovers_with_backoff_growing_and_capped() {
    let collector = TestCollector::with_faults(Faults::fail_first(4, 500)).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_retry_delay(Duration::from_millis(400))
        .jitter(fixed_jitter(0.1))
        .started();
    let ids = track_all(&emitter, events(3));

    let report = flush(&emitter).await;

    assert_delivered(&report, 3);
    let requests = collector.requests();
    assert_eq!(collector.statuses(), [500, 500, 500, 500, 200]);
    // min(previous * 2 + 0.1 s, 0.4 s): 0.1, 0.3, 0.4 (capped), 0.4.
    let expected = [100, 300, 400, 400].map(Duration::from_millis);
    for (gap, delay) in gaps(&requests).into_iter().zip(expected) {
        assert!(
            gap >= delay,
            "gap {gap:?} shorter than the backoff {delay:?}"
        );
        assert!(
            gap <= delay * 5 + Duration::from_millis(250),
            "gap {gap:?} for {delay:?}"
        );
    }
    // The same events every time, in order, with a new stm per attempt.
    let mut stms = Vec::new();
    for request in &requests {
        let eids: Vec<_> = request
            .events
            .iter()
            .map(|e| e.eid().unwrap().to_owned())
            .collect();
        assert_eq!(eids, ids);
        stms.push(
            request.events[0]
                .get("stm")
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }
    assert!(
        stms.windows(2).all(|pair| pair[1] > pair[0]),
        "stm re-stamped: {stms:?}"
    );
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.retried, stats.requests), (3, 12, 5));
    assert_eq!((stats.consecutive_failures, stats.backoff_ms), (0, 0));
}

#[actix_rt::test]
async fn retries_connection_refused_until_the_collector_starts() {
    let closed = closed_port();
    let (failures_tx, mut failures) = mpsc::unbounded();
    let emitter = EmitterBuilder::new(closed.endpoint())
        .max_retry_delay(Duration::from_millis(200))
        .jitter(fixed_jitter(0.05))
        .on_failure(move |failure| {
            let _ = failures_tx.unbounded_send((failure.reason.clone(), failure.will_retry));
        })
        .started();
    track_all(&emitter, events(2));
    emitter.do_send(Flush::default());

    for _ in 0..2 {
        let (reason, will_retry) = failures.next().await.unwrap();
        assert!(
            matches!(
                reason,
                FailureReason::Transport(TransportError::Connection(_))
            ),
            "{reason:?}"
        );
        assert!(will_retry);
    }
    let collector = TestCollector::start_at(Faults::none(), closed.release()).await;

    let received = wait_events(&collector, 2).await;
    assert_eq!(labels(&received), range_labels(0..2));
    let report = flush(&emitter).await;
    assert_eq!(report.queued, 0);
    let stats = stats(&emitter).await;
    assert_eq!(stats.sent, 2);
    assert!(stats.retried >= 4, "{stats:?}");
}

#[actix_rt::test]
async fn with_max_in_flight_one_nothing_is_sent_early_while_backing_off() {
    let collector = TestCollector::with_faults(Faults::fail_first(1, 500)).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_in_flight(1)
        .batch_size(2)
        .max_request_events(2)
        .max_retry_delay(Duration::from_secs(5))
        .jitter(fixed_jitter(0.9))
        .started();
    let mut all = events(5).into_iter();
    // A full batch goes at once and fails: 0.9 s of backoff starts.
    track_all(&emitter, all.by_ref().take(2).collect());
    wait_requests(&collector, 1).await;
    // Full batches and an async flush arrive during the backoff: none of them sends.
    track_all(&emitter, all.collect());
    emitter.do_send(Flush::default());

    let report = flush(&emitter).await;

    assert_eq!((report.sent, report.timed_out), (5, false));
    let requests = collector.requests();
    let gap = requests[1].at.duration_since(requests[0].at);
    assert!(
        gap >= Duration::from_millis(900),
        "sent {gap:?} after the failure"
    );
    assert_eq!(
        requests.iter().map(|r| r.events.len()).collect::<Vec<_>>(),
        [2, 2, 2, 1]
    );
    // The retried events go first, then the newer ones, in order.
    assert_eq!(labels(&collector.events()), range_labels(0..5));
}

#[actix_rt::test]
async fn by_default_a_failed_request_waits_its_own_backoff_while_newer_events_go() {
    let collector = TestCollector::with_faults(Faults::fail_first(1, 500)).await;
    let (builder, mut failures) = record_failures(
        EmitterBuilder::new(collector.endpoint())
            .batch_size(2)
            .max_retry_delay(Duration::from_secs(5))
            .jitter(fixed_jitter(0.9)),
    );
    let emitter = builder.started();
    let mut all = events(5).into_iter();
    // A full batch goes at once and fails: its own 0.9 s of backoff starts.
    track_all(&emitter, all.by_ref().take(2).collect());
    assert!(failures.next().await.will_retry);
    let waiting = stats(&emitter).await;
    assert_eq!((waiting.retry_requests, waiting.queued), (1, 2));
    assert_eq!(waiting.backoff_ms, 0, "the emitter as a whole is not held");
    // Newer events go at once, while the failed request waits.
    track_all(&emitter, all.collect());
    wait_requests(&collector, 2).await;

    let report = flush(&emitter).await;

    // A report counts what settled while it ran: the totals come from the counters.
    assert_settled(&report);
    assert_eq!(stats(&emitter).await.sent, 5);
    let requests = collector.requests();
    let labels_of = |r: &RecordedRequest| labels(&r.events);
    assert_eq!(labels_of(&requests[0]), ["0", "1"]);
    let retry = requests
        .iter()
        .rposition(|r| labels_of(r) == ["0", "1"])
        .unwrap();
    assert!(
        retry > 1,
        "newer events went before the retry: {requests:?}"
    );
    assert!(requests[1].at.duration_since(requests[0].at) < Duration::from_millis(900));
    let gap = requests[retry].at.duration_since(requests[0].at);
    assert!(
        gap >= Duration::from_millis(900),
        "retried {gap:?} after the failure"
    );
    assert_eq!(sorted_labels(&collector.events()), range_labels(0..5));
}

#[actix_rt::test]
async fn max_attempts_drops_events_as_attempts_exhausted() {
    let collector = TestCollector::with_faults(Faults::always(500)).await;
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let seen = dropped.clone();
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_attempts(3)
        .retrying_fast(Duration::from_millis(50))
        .on_failure(move |failure| {
            if let Some(reason) = failure.dropped {
                seen.lock().unwrap().push((reason, failure.events.len()));
            }
        })
        .started();
    track_all(&emitter, events(2));

    let report = flush(&emitter).await;

    assert_eq!(report.dropped.attempts_exhausted, 2);
    assert_delivered(&report, 0);
    assert_eq!(collector.request_count(), 3);
    assert_eq!(
        *dropped.lock().unwrap(),
        [(DropReason::AttemptsExhausted, 2)]
    );
    let stats = stats(&emitter).await;
    assert_eq!((stats.retried, stats.dropped.attempts_exhausted), (4, 2));
}

#[actix_rt::test]
async fn max_event_age_drops_old_events_as_expired_when_their_request_fails() {
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_event_age(Duration::from_millis(150))
        .max_retry_delay(Duration::from_millis(60))
        .jitter(fixed_jitter(0.06))
        .started();
    track_all(&emitter, events(3));

    let report = flush(&emitter).await;

    assert_eq!(report.dropped.expired, 3);
    assert_eq!((report.sent, report.queued), (0, 0));
    let requests = collector.request_count();
    assert!(
        (3..=10).contains(&requests),
        "{requests} attempts within the age"
    );
    assert_eq!(stats(&emitter).await.dropped.expired, 3);
}
