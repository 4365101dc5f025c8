//! Request timeouts against a real collector that answers late or never: classification,
//! retry, the at-least-once duplicate of a stored batch whose answer was lost, and the
//! deadline of a sync flush.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::collector::{Faults, RawBehaviour, RawCollector, RecordedEvent, TestCollector};
use crate::common::support::{
    assert_delivered, assert_settled, events, flush, flush_within, stats, track_all, wait_requests,
    BuilderExt, SOON,
};
use snowplow_actix::transport::TransportError;
use snowplow_actix::{emitter::FailureReason, DropReason, EmitterBuilder};

/// What `on_failure` saw, once per call.
#[derive(Debug, Clone)]
struct SeenFailure {
    at: Instant,
    reason: FailureReason,
    will_retry: bool,
    dropped: Option<DropReason>,
    eids: Vec<String>,
}

type Failures = Arc<Mutex<Vec<SeenFailure>>>;

/// `builder` with an `on_failure` that records every call.
fn recording_failures(builder: EmitterBuilder) -> (EmitterBuilder, Failures) {
    let failures = Failures::default();
    let sink = failures.clone();
    let builder = builder.on_failure(move |failure| {
        sink.lock().unwrap().push(SeenFailure {
            at: Instant::now(),
            reason: failure.reason.clone(),
            will_retry: failure.will_retry,
            dropped: failure.dropped,
            eids: failure.events.iter().map(|e| e.id().to_string()).collect(),
        });
    });
    (builder, failures)
}

fn seen(failures: &Failures) -> Vec<SeenFailure> {
    failures.lock().unwrap().clone()
}

fn eids(events: &[RecordedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.eid().unwrap_or_default().to_owned())
        .collect()
}

/// The pairs of an event without `stm`, which is re-stamped on every attempt.
fn without_stm(event: &RecordedEvent) -> Vec<(String, String)> {
    event
        .pairs
        .iter()
        .filter(|(name, _)| name != "stm")
        .cloned()
        .collect()
}

const TIMEOUT: Duration = Duration::from_millis(200);
const SLOW_ANSWER: Duration = Duration::from_secs(2);

#[actix_rt::test]
async fn a_timed_out_request_is_retried_and_the_stored_batch_arrives_twice_with_the_same_eids() {
    let collector =
        TestCollector::with_faults(Faults::none().with_delay_first(1, SLOW_ANSWER)).await;
    let (builder, failures) = recording_failures(
        EmitterBuilder::new(collector.endpoint())
            .request_timeout(TIMEOUT)
            .retrying_fast(Duration::from_millis(20)),
    );
    let emitter = builder.started();
    let ids = track_all(&emitter, events(3));

    let started = Instant::now();
    let report = flush(&emitter).await;

    assert_eq!(report.sent, 3);
    assert_eq!(report.dropped.total(), 0);
    assert_eq!(report.queued, 0);
    assert!(!report.timed_out);
    let failures = seen(&failures);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(
        failures[0].reason,
        FailureReason::Transport(TransportError::Timeout)
    );
    assert!(failures[0].will_retry);
    assert_eq!(failures[0].dropped, None);
    assert_eq!(failures[0].eids, ids);
    // The timeout fired, not the collector's answer: at 200 ms, bounded with 5x slack, well
    // before the 2 s delay ends.
    let reported_after = failures[0].at - started;
    assert!(reported_after >= TIMEOUT, "{reported_after:?}");
    assert!(reported_after < TIMEOUT * 5, "{reported_after:?}");

    // At-least-once: the collector stored the first batch (its answer was lost), then the
    // retry: the same events, same eids, in the same order, only `stm` re-stamped.
    let requests = wait_requests(&collector, 2).await;
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].delay, Some(SLOW_ANSWER));
    assert_eq!(requests[1].delay, None);
    assert!(requests.iter().all(|r| r.valid && r.status == 200));
    assert_eq!(eids(&requests[0].events), ids);
    assert_eq!(eids(&requests[1].events), ids);
    let first: Vec<_> = requests[0].events.iter().map(without_stm).collect();
    let retry: Vec<_> = requests[1].events.iter().map(without_stm).collect();
    assert_eq!(first, retry);
    let stored = collector.event_ids();
    assert_eq!(stored, [ids.clone(), ids].concat());

    let stats = stats(&emitter).await;
    assert_eq!(
        (stats.received, stats.sent, stats.retried, stats.requests),
        (3, 3, 3, 2)
    );
    assert_eq!((stats.queued, stats.in_flight), (0, 0));
    assert_eq!(stats.consecutive_failures, 0, "reset by the success");
}

#[actix_rt::test]
async fn split_connect_and_response_timeouts_also_time_out_a_slow_answer() {
    let collector =
        TestCollector::with_faults(Faults::none().with_delay_first(1, SLOW_ANSWER)).await;
    let connect = Duration::from_millis(100);
    let response = Duration::from_millis(100);
    let (builder, failures) = recording_failures(
        EmitterBuilder::new(collector.endpoint())
            .request_timeouts(connect, response)
            .retrying_fast(Duration::from_millis(20)),
    );
    let emitter = builder.started();
    let ids = track_all(&emitter, events(2));

    let started = Instant::now();
    let report = flush(&emitter).await;

    assert_delivered(&report, 2);
    let failures = seen(&failures);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(
        failures[0].reason,
        FailureReason::Transport(TransportError::Timeout)
    );
    assert!(failures[0].will_retry);
    assert_eq!(failures[0].eids, ids);
    let reported_after = failures[0].at - started;
    assert!(
        reported_after < (connect + response) * 5,
        "{reported_after:?}"
    );
    assert_eq!(collector.event_ids(), [ids.clone(), ids].concat());
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.retried, stats.requests), (2, 2, 2));
}

/// `request_timeouts(connect, response)`: `response` bounds each request from the moment it is
/// sent to its answer, and `connect` only caps establishing a connection. So an answer that
/// never comes is a timeout after about `response`, however large `connect` is (a limit of
/// `connect + response` would wait 2.2 s here instead of 200 ms).
#[actix_rt::test]
async fn split_response_timeout_bounds_the_wait_for_the_answer_whatever_the_connect_timeout() {
    let collector =
        TestCollector::with_faults(Faults::none().with_delay_first(1, Duration::from_secs(4)))
            .await;
    let connect = Duration::from_secs(2);
    let response = Duration::from_millis(200);
    let (builder, failures) = recording_failures(
        EmitterBuilder::new(collector.endpoint())
            .request_timeouts(connect, response)
            .retrying_fast(Duration::from_millis(20)),
    );
    let emitter = builder.started();
    track_all(&emitter, events(1));

    let started = Instant::now();
    let report = flush(&emitter).await;

    assert_eq!((report.sent, report.timed_out), (1, false));
    let failures = seen(&failures);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(
        failures[0].reason,
        FailureReason::Transport(TransportError::Timeout)
    );
    let reported_after = failures[0].at - started;
    assert!(
        reported_after < response * 5,
        "the answer was awaited {reported_after:?} with a response timeout of {response:?} \
         (connect timeout {connect:?})"
    );
}

#[actix_rt::test]
async fn with_retry_timeouts_off_a_timed_out_batch_is_dropped_as_rejected() {
    let collector =
        TestCollector::with_faults(Faults::none().with_delay_first(1, SLOW_ANSWER)).await;
    let (builder, failures) = recording_failures(
        EmitterBuilder::new(collector.endpoint())
            .request_timeout(TIMEOUT)
            .retry_timeouts(false),
    );
    let emitter = builder.started();
    let ids = track_all(&emitter, events(3));

    let report = flush(&emitter).await;

    assert_eq!(report.sent, 0);
    assert_eq!(report.dropped.rejected, 3);
    assert_eq!(report.dropped.total(), 3);
    assert_settled(&report);
    let failures = seen(&failures);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(
        failures[0].reason,
        FailureReason::Transport(TransportError::Timeout)
    );
    assert!(!failures[0].will_retry);
    assert_eq!(failures[0].dropped, Some(DropReason::Rejected));
    assert_eq!(failures[0].eids, ids);
    let first = stats(&emitter).await;
    assert_eq!((first.sent, first.retried, first.requests), (0, 0, 1));
    assert_eq!(first.dropped.get(DropReason::Rejected), 3);
    assert_eq!(
        first.consecutive_failures, 0,
        "a non-retried failure resets"
    );
    // The collector did store them: dropped by the emitter, not lost on the wire.
    assert_eq!(collector.event_ids(), ids);

    // The emitter goes on: the next batch is answered at once and delivered.
    let later = track_all(&emitter, events(2));
    let report = flush(&emitter).await;
    assert_eq!((report.sent, report.dropped.total()), (2, 0));
    assert_eq!(collector.event_ids(), [ids, later].concat());
    let after = stats(&emitter).await;
    assert_eq!((after.received, after.sent, after.queued), (5, 2, 0));
}

#[actix_rt::test]
async fn a_never_answering_collector_yields_timeouts_and_a_sync_flush_returns_at_its_deadline() {
    let raw = RawCollector::start(RawBehaviour::NeverAnswer).await;
    let timeout = Duration::from_millis(100);
    let (builder, failures) = recording_failures(
        EmitterBuilder::new(raw.endpoint())
            .request_timeout(timeout)
            .retrying_fast(Duration::from_millis(20)),
    );
    let emitter = builder.started();
    let ids = track_all(&emitter, events(3));
    let deadline = Duration::from_millis(600);

    let started = Instant::now();
    let report = flush_within(&emitter, deadline).await;
    let waited = started.elapsed();

    assert!(report.timed_out);
    assert_eq!(report.sent, 0);
    assert_eq!(report.dropped.total(), 0);
    assert_eq!(report.queued, 3, "queued or in flight, none lost");
    assert!(waited >= deadline, "{waited:?}");
    assert!(waited < deadline * 5, "{waited:?}");

    // Requests keep failing and new ones keep going out after the flush: none hangs. (With
    // one request at a time, a new connection means the previous request has finished.)
    let connections = raw.connections() + 2;
    raw.wait_for_connections(connections, SOON).await.unwrap();
    // The callback runs on the emitter's thread: read it around the stats snapshot.
    let before = seen(&failures).len() as u64;
    let stats = stats(&emitter).await;
    let failures = seen(&failures);
    let failed = stats.requests - stats.in_flight_requests;
    assert!(
        before <= failed && failed <= failures.len() as u64,
        "every request but the outstanding one has failed: {before} {} {stats:#?}",
        failures.len()
    );
    assert!(failures.len() >= connections - 1, "{failures:#?}");
    for failure in &failures {
        assert_eq!(
            failure.reason,
            FailureReason::Transport(TransportError::Timeout)
        );
        assert!(failure.will_retry);
        assert_eq!(failure.eids, ids);
    }
    assert_eq!(
        (stats.received, stats.sent, stats.dropped.total()),
        (3, 0, 0)
    );
    assert_eq!(stats.queued + stats.in_flight, 3);
    assert_eq!(stats.retried, 3 * failed);
    assert_eq!(stats.consecutive_failures, failed);
}
