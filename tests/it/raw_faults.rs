//! Broken collectors below HTTP (raw TCP): resets, garbage, answers cut off, silence. Each
//! failure is classified, retried, and accounted for exactly; the emitter stays alive.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::collector::{RawBehaviour, RawCollector};
use crate::common::support::{
    assert_delivered, events, flush, flush_within, stats, track_all, BuilderExt, SOON,
};
use snowplow_actix::transport::TransportError;
use snowplow_actix::{
    emitter::{FailureReason, Flush},
    EmitterBuilder,
};

/// What `on_failure` saw, once per call.
#[derive(Debug, Clone)]
struct SeenFailure {
    reason: FailureReason,
    will_retry: bool,
    eids: Vec<String>,
}

type Failures = Arc<Mutex<Vec<SeenFailure>>>;

/// The request timeout: only [`RawBehaviour::NeverAnswer`] waits for it.
const TIMEOUT: Duration = Duration::from_millis(150);

/// Attempts to wait for: the first failure and at least two retries.
const ATTEMPTS: usize = 3;

/// An emitter against `raw` that retries quickly: a fixed jitter of 10 ms, the backoff capped
/// at 20 ms. (A jitter of exactly 0 would make every backoff delay 0, since the delay grows as
/// `delay * 2 + jitter` from 0: an unbounded retry loop for the rest of the test binary.)
fn emitter_against(
    raw: &RawCollector,
) -> (actix::Addr<snowplow_actix::emitter::Emitter>, Failures) {
    let failures = Failures::default();
    let sink = failures.clone();
    let emitter = EmitterBuilder::new(raw.endpoint())
        .request_timeout(TIMEOUT)
        .retrying_fast(Duration::from_millis(20))
        .on_failure(move |failure| {
            sink.lock().unwrap().push(SeenFailure {
                reason: failure.reason.clone(),
                will_retry: failure.will_retry,
                eids: failure.events.iter().map(|e| e.id().to_string()).collect(),
            });
        })
        .started();
    (emitter, failures)
}

/// Tracks 3 events against a collector behaving as `behaviour`, flushes, waits for
/// [`ATTEMPTS`] connections and checks: every failure classified by `expected`, retried,
/// counted once, nothing lost; the emitter answers stats and flushes.
async fn failures_are_classified_retried_and_accounted(
    behaviour: RawBehaviour,
    expected: fn(&FailureReason) -> bool,
) {
    let raw = RawCollector::start(behaviour).await;
    let (emitter, failures) = emitter_against(&raw);
    let ids = track_all(&emitter, events(3));

    emitter.do_send(Flush::default());
    raw.wait_for_connections(ATTEMPTS, SOON).await.unwrap();

    // The callback runs on the emitter's thread: read it around the stats snapshot.
    let before = failures.lock().unwrap().len() as u64;
    let stats = stats(&emitter).await;
    let seen = failures.lock().unwrap().clone();
    let failed = stats.requests - stats.in_flight_requests;
    assert!(
        before <= failed && failed <= seen.len() as u64,
        "{behaviour:?}: each finished request reported once: {before} {} {stats:#?}",
        seen.len()
    );
    // Each attempt is one connection (a failed connection is never reused).
    assert!(failed >= ATTEMPTS as u64 - 1, "{behaviour:?}: {stats:#?}");
    for failure in &seen {
        assert!(expected(&failure.reason), "{behaviour:?}: {failure:?}");
        assert!(failure.will_retry, "{behaviour:?}: {failure:?}");
        assert_eq!(
            failure.eids, ids,
            "{behaviour:?}: the whole batch each time"
        );
    }
    assert_eq!(stats.received, 3);
    assert_eq!(stats.sent, 0);
    assert_eq!(stats.dropped.total(), 0, "{behaviour:?}: {stats:#?}");
    assert_eq!(
        stats.queued + stats.in_flight,
        3,
        "{behaviour:?}: still queued"
    );
    assert!(stats.retried > 0);
    assert_eq!(
        stats.retried,
        3 * failed,
        "{behaviour:?}: counted once per failure"
    );
    assert!(stats.consecutive_failures > 0);
    assert_eq!(
        stats.consecutive_failures, failed,
        "{behaviour:?}: no success"
    );
    assert_eq!(
        stats.restarts, 0,
        "{behaviour:?}: not a fatal transport error"
    );

    // Alive: a sync flush still answers, at its deadline, with the events kept.
    let report = flush_within(&emitter, Duration::from_millis(50)).await;
    assert!(report.timed_out, "{behaviour:?}: {report:?}");
    assert_eq!((report.sent, report.queued), (0, 3), "{behaviour:?}");
    let later = crate::common::support::stats(&emitter).await;
    assert!(later.requests >= stats.requests);
    assert_eq!(later.queued + later.in_flight, 3);
}

fn is_connection(reason: &FailureReason) -> bool {
    matches!(
        reason,
        FailureReason::Transport(TransportError::Connection(_))
    )
}

fn is_timeout(reason: &FailureReason) -> bool {
    *reason == FailureReason::Transport(TransportError::Timeout)
}

#[actix_rt::test]
async fn a_reset_connection_is_a_retried_connection_error() {
    failures_are_classified_retried_and_accounted(RawBehaviour::Reset, is_connection).await;
}

#[actix_rt::test]
async fn a_garbage_answer_is_a_retried_connection_error() {
    failures_are_classified_retried_and_accounted(RawBehaviour::Garbage, is_connection).await;
}

#[actix_rt::test]
async fn an_answer_cut_in_its_head_is_a_retried_connection_error() {
    failures_are_classified_retried_and_accounted(RawBehaviour::CloseMidHead, is_connection).await;
}

#[actix_rt::test]
async fn a_collector_that_never_answers_is_a_retried_timeout() {
    failures_are_classified_retried_and_accounted(RawBehaviour::NeverAnswer, is_timeout).await;
}

/// awc 3 reports a `200 OK` whose body is cut short (`Content-Length: 100`, 7 bytes, then
/// EOF) as a success, and the transport decides by the status alone: the emitter counts the
/// events as sent and does not retry them. Pinned here: the collector did send a 2xx status,
/// so this is the documented "the status decides" behaviour, not a loss the emitter could see.
#[actix_rt::test]
async fn an_answer_cut_in_its_body_after_a_200_counts_as_sent() {
    let raw = RawCollector::start(RawBehaviour::CloseMidBody).await;
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sink = sent.clone();
    let (emitter, failures) = {
        let failures = Failures::default();
        let fail_sink = failures.clone();
        let emitter = EmitterBuilder::new(raw.endpoint())
            .request_timeout(TIMEOUT)
            .retrying_fast(Duration::from_millis(20))
            .on_success(move |events| {
                sink.lock().unwrap().push(
                    events
                        .iter()
                        .map(|e| e.id().to_string())
                        .collect::<Vec<_>>(),
                );
            })
            .on_failure(move |failure| {
                fail_sink.lock().unwrap().push(SeenFailure {
                    reason: failure.reason.clone(),
                    will_retry: failure.will_retry,
                    eids: failure.events.iter().map(|e| e.id().to_string()).collect(),
                });
            })
            .started();
        (emitter, failures)
    };
    let ids = track_all(&emitter, events(3));

    let report = flush(&emitter).await;

    assert_delivered(&report, 3);
    assert_eq!(report.dropped.total(), 0);
    assert_eq!(raw.connections(), 1);
    assert!(failures.lock().unwrap().is_empty());
    assert_eq!(*sent.lock().unwrap(), [ids]);
    let stats = stats(&emitter).await;
    assert_eq!(
        (
            stats.sent,
            stats.retried,
            stats.requests,
            stats.consecutive_failures
        ),
        (3, 0, 1, 0)
    );

    // The next batch goes out too (on a new connection: the cut one is not reused).
    let later = track_all(&emitter, events(2));
    let report = flush(&emitter).await;
    assert_delivered(&report, 2);
    assert_eq!(sent.lock().unwrap().last(), Some(&later));
    assert_eq!(raw.connections(), 2);
    let after = crate::common::support::stats(&emitter).await;
    assert_eq!((after.received, after.sent, after.retried), (5, 5, 0));
}
