//! `on_success` and `on_failure`: what they receive, and that a panicking callback loses
//! nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{
    assert_delivered, assert_settled, closed_port, events, fixed_jitter, flush, record_failures,
    stats, track_all, BuilderExt, Failures, Seen,
};
use snowplow_actix::transport::TransportError;
use snowplow_actix::{
    emitter::{FailureReason, Flush},
    wire::StampedEvent,
    DropReason, EmitterBuilder,
};

fn eids(events: &[Arc<StampedEvent>]) -> Vec<String> {
    events.iter().map(|e| e.id().to_string()).collect()
}

/// Each successful request's eids, in the order the callback saw them.
type Successes = Arc<Mutex<Vec<Vec<String>>>>;

/// A builder retrying at once (no jitter, cap 50 ms) and recording both callbacks.
fn recording_builder(endpoint: String) -> (EmitterBuilder, Successes, Failures) {
    let successes = Successes::default();
    let recorded = successes.clone();
    let (builder, failures) = record_failures(
        EmitterBuilder::new(endpoint)
            .retrying_fast(Duration::from_millis(50))
            .on_success(move |events| recorded.lock().unwrap().push(eids(events))),
    );
    (builder, successes, failures)
}

/// The eids of each accepted request the collector recorded, in order.
fn accepted_requests(collector: &TestCollector) -> Vec<Vec<String>> {
    collector
        .requests()
        .iter()
        .filter(|r| r.accepted())
        .map(|r| {
            r.events
                .iter()
                .map(|e| e.eid().unwrap_or_default().to_owned())
                .collect()
        })
        .collect()
}

#[actix_rt::test]
async fn on_success_receives_exactly_the_events_of_each_successful_request() {
    // The second request fails once and is retried.
    let collector = TestCollector::with_faults(Faults::statuses([200, 500])).await;
    let (builder, successes, mut failures) = recording_builder(collector.endpoint());
    // Requests of one batch, one at a time: the requests below are fixed.
    let emitter = builder
        .batch_size(4)
        .max_request_events(4)
        .max_in_flight(1)
        .started();
    let ids = track_all(&emitter, events(10));

    let report = flush(&emitter).await;

    assert_delivered(&report, 10);
    assert_eq!(collector.statuses(), [200, 500, 200, 200]);
    let succeeded = successes.lock().unwrap().clone();
    assert_eq!(
        succeeded,
        [ids[0..4].to_vec(), ids[4..8].to_vec(), ids[8..10].to_vec()]
    );
    assert_eq!(succeeded, accepted_requests(&collector));
    assert_eq!(collector.event_ids(), ids);
    let failed = failures.reported();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].eids, ids[4..8]);
    let stats = stats(&emitter).await;
    assert_eq!(
        (stats.sent, stats.requests, stats.callback_panics),
        (10, 4, 0)
    );
}

#[actix_rt::test]
async fn on_failure_receives_the_status_the_events_and_whether_they_are_retried() {
    let collector = TestCollector::with_faults(Faults::statuses([500, 200, 400])).await;
    let (builder, successes, mut failures) = recording_builder(collector.endpoint());
    let emitter = builder.started();
    let first = track_all(&emitter, events(3));
    let report = flush(&emitter).await;
    assert_eq!(report.sent, 3);
    let second = track_all(&emitter, events(2));

    let report = flush(&emitter).await;

    assert_eq!((report.sent, report.dropped.rejected), (0, 2));
    assert_eq!(
        failures.reported(),
        [
            Seen {
                eids: first.clone(),
                reason: FailureReason::Status(500),
                will_retry: true,
                dropped: None,
            },
            Seen {
                eids: second,
                reason: FailureReason::Status(400),
                will_retry: false,
                dropped: Some(DropReason::Rejected),
            },
        ]
    );
    assert_eq!(*successes.lock().unwrap(), vec![first.clone()]);
    assert_eq!(collector.event_ids(), first);
    let stats = stats(&emitter).await;
    assert_eq!(
        (stats.sent, stats.retried, stats.dropped.rejected),
        (3, 3, 2)
    );
}

#[actix_rt::test]
async fn on_failure_receives_connection_errors() {
    let closed = closed_port();
    let (builder, successes, mut failures) = recording_builder(closed.endpoint());
    // Retries every 10-50 ms while nothing listens.
    let emitter = builder.jitter(fixed_jitter(0.01)).started();
    let ids = track_all(&emitter, events(2));
    emitter.do_send(Flush::default());

    let failure = failures.next().await;

    assert!(
        matches!(
            failure.reason,
            FailureReason::Transport(TransportError::Connection(_))
        ),
        "{failure:?}"
    );
    assert_eq!(
        (failure.eids, failure.will_retry, failure.dropped),
        (ids.clone(), true, None)
    );
    assert!(successes.lock().unwrap().is_empty());

    let collector = TestCollector::start_at(Faults::none(), closed.release()).await;
    let report = flush(&emitter).await;
    assert_settled(&report);
    assert_eq!(*successes.lock().unwrap(), vec![ids.clone()]);
    assert_eq!(collector.event_ids(), ids);
    for failure in failures.reported() {
        assert!(
            matches!(
                failure.reason,
                FailureReason::Transport(TransportError::Connection(_))
            ) && failure.will_retry,
            "{failure:?}"
        );
    }
    assert_eq!(stats(&emitter).await.sent, 2);
}

#[actix_rt::test]
async fn on_failure_receives_timeouts() {
    // The first answer comes 2 s late; the emitter gives up after 200 ms and retries. The
    // late answer is a 503, so the collector does not keep that request's events.
    let collector = TestCollector::with_faults(
        Faults::statuses([503]).with_delay_first(1, Duration::from_secs(2)),
    )
    .await;
    let (builder, successes, mut failures) = recording_builder(collector.endpoint());
    let emitter = builder
        .request_timeout(Duration::from_millis(200))
        .started();
    let ids = track_all(&emitter, events(3));

    let report = flush(&emitter).await;

    assert_delivered(&report, 3);
    assert_eq!(
        failures.reported(),
        [Seen {
            eids: ids.clone(),
            reason: FailureReason::Transport(TransportError::Timeout),
            will_retry: true,
            dropped: None,
        }]
    );
    assert_eq!(*successes.lock().unwrap(), vec![ids.clone()]);
    assert_eq!(collector.statuses(), [503, 200]);
    assert_eq!(collector.event_ids(), ids);
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.retried, stats.requests), (3, 3, 2));
}

#[actix_rt::test]
async fn a_panicking_on_success_loses_nothing() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(4)
        .max_request_events(4)
        .max_in_flight(1)
        .on_success(|_| panic!("on_success panics on purpose"))
        .started();
    let mut ids = track_all(&emitter, events(10));

    let report = flush(&emitter).await;

    assert_delivered(&report, 10);
    assert_eq!(report.dropped.total(), 0);
    assert_eq!(
        collector.event_ids(),
        ids,
        "each event delivered exactly once"
    );
    let after = stats(&emitter).await;
    assert_eq!(
        (after.sent, after.requests, after.callback_panics),
        (10, 3, 3)
    );

    // The emitter keeps working.
    ids.extend(track_all(&emitter, events(3)));
    let report = flush(&emitter).await;
    assert_eq!(report.sent, 3);
    assert_eq!(collector.event_ids(), ids);
    let done = stats(&emitter).await;
    assert_eq!(
        (done.sent, done.requests, done.callback_panics, done.queued),
        (13, 4, 4, 0)
    );
}

#[actix_rt::test]
async fn a_panicking_on_failure_loses_nothing() {
    let collector = TestCollector::with_faults(Faults::statuses([500, 503, 200, 400])).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .retrying_fast(Duration::from_millis(50))
        .on_failure(|_| panic!("on_failure panics on purpose"))
        .started();
    let mut delivered = track_all(&emitter, events(3));

    // Two failures, each with a panic: the events are still retried and delivered once.
    let report = flush(&emitter).await;

    assert_delivered(&report, 3);
    assert_eq!(collector.statuses(), [500, 503, 200]);
    assert_eq!(collector.event_ids(), delivered);
    let after = stats(&emitter).await;
    assert_eq!(
        (after.sent, after.retried, after.callback_panics),
        (3, 6, 2)
    );

    // A rejected request: dropped and counted as usual, despite the panic.
    track_all(&emitter, events(2));
    let report = flush(&emitter).await;
    assert_eq!((report.sent, report.dropped.rejected), (0, 2));
    let after = stats(&emitter).await;
    assert_eq!((after.dropped.rejected, after.callback_panics), (2, 3));

    // And the emitter keeps working.
    delivered.extend(track_all(&emitter, events(2)));
    let report = flush(&emitter).await;
    assert_eq!(report.sent, 2);
    assert_eq!(collector.event_ids(), delivered);
    let done = stats(&emitter).await;
    assert_eq!(
        (
            done.received,
            done.sent,
            done.dropped.total(),
            done.queued,
            done.callback_panics
        ),
        (7, 5, 2, 0, 3)
    );
}
