//! `buffer_capacity` bounds queued plus in-flight events: the newest events that do not fit
//! are dropped as `capacity`; requeued events do not count twice; what was accepted is
//! delivered once the collector is back.

use std::time::Duration;

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{
    assert_delivered, events, flush, record_failures, stats, track_all, BuilderExt, Failures,
};
use snowplow_actix::{emitter::FailureReason, EmitterBuilder};

/// A collector that answers 503 to everything until its faults are cleared.
async fn down_collector() -> TestCollector {
    TestCollector::with_faults(Faults::always(503)).await
}

/// An emitter builder retrying every 10 to 50 ms, reporting each failed request.
fn retrying_builder(endpoint: String) -> (EmitterBuilder, Failures) {
    record_failures(EmitterBuilder::new(endpoint).retrying_fast(Duration::from_millis(50)))
}

/// The reason of the next failed request, and whether it is retried.
async fn next_failure(failures: &mut Failures) -> (FailureReason, bool) {
    let failure = failures.next().await;
    (failure.reason, failure.will_retry)
}

#[actix_rt::test]
async fn a_full_buffer_drops_the_newest_events_as_capacity() {
    let collector = down_collector().await;
    let (builder, mut failures) = retrying_builder(collector.endpoint());
    let emitter = builder.buffer_capacity(5).started();
    let all = events(8);
    let ids: Vec<String> = all.iter().map(|e| e.id().to_string()).collect();

    track_all(&emitter, all);

    let full = stats(&emitter).await;
    assert_eq!(full.received, 8);
    assert_eq!(full.dropped.capacity, 3);
    assert_eq!(full.dropped.total(), 3);
    assert_eq!(full.accepted(), 5);
    assert_eq!(full.accepted(), full.received - full.dropped.capacity);
    assert_eq!(full.queued + full.in_flight, 5);
    assert_eq!(full.sent, 0);

    // Still full while the collector stays down and requests keep failing.
    assert_eq!(
        next_failure(&mut failures).await,
        (FailureReason::Status(503), true)
    );
    let still = stats(&emitter).await;
    assert_eq!(
        (still.queued + still.in_flight, still.dropped.capacity),
        (5, 3)
    );

    collector.clear_faults();
    let report = flush(&emitter).await;

    assert_delivered(&report, 5);
    assert_eq!(
        collector.event_ids(),
        ids[..5],
        "the accepted events, in order"
    );
    let done = stats(&emitter).await;
    assert_eq!((done.sent, done.dropped.capacity, done.queued), (5, 3, 0));

    // Delivered events free the buffer: five more fit.
    let more = track_all(&emitter, events(5));
    let report = flush(&emitter).await;
    assert_eq!(report.sent, 5);
    assert_eq!(collector.event_ids()[5..], more);
    let done = stats(&emitter).await;
    assert_eq!(
        (done.received, done.sent, done.dropped.capacity),
        (13, 10, 3)
    );
}

#[actix_rt::test]
async fn exactly_capacity_events_survive_a_failed_request() {
    let collector = down_collector().await;
    let (builder, mut failures) = retrying_builder(collector.endpoint());
    let emitter = builder.buffer_capacity(5).started();

    // The fifth event fills the batch (clamped to the capacity): a request goes out and fails.
    let ids = track_all(&emitter, events(5));
    assert_eq!(
        next_failure(&mut failures).await,
        (FailureReason::Status(503), true)
    );

    let requeued = stats(&emitter).await;
    assert_eq!(requeued.dropped.total(), 0, "{requeued:#?}");
    assert_eq!(requeued.queued + requeued.in_flight, 5);
    assert!(requeued.retried >= 5);

    collector.clear_faults();
    let report = flush(&emitter).await;

    assert_delivered(&report, 5);
    assert_eq!(report.dropped.total(), 0);
    assert_eq!(collector.event_ids(), ids);
    let done = stats(&emitter).await;
    assert_eq!((done.received, done.sent, done.dropped.total()), (5, 5, 0));
}

#[actix_rt::test]
async fn requeued_events_do_not_count_against_capacity_twice() {
    let collector = down_collector().await;
    let (builder, mut failures) = retrying_builder(collector.endpoint());
    let emitter = builder.buffer_capacity(6).batch_size(4).started();
    let all = events(7);
    let ids: Vec<String> = all.iter().map(|e| e.id().to_string()).collect();
    let mut all = all.into_iter();

    // Four events go out as a batch and come back to the queue.
    track_all(&emitter, all.by_ref().take(4).collect());
    assert_eq!(
        next_failure(&mut failures).await,
        (FailureReason::Status(503), true)
    );
    let requeued = stats(&emitter).await;
    assert_eq!(requeued.dropped.total(), 0);
    assert_eq!(requeued.queued + requeued.in_flight, 4);

    // Two more fit (4 + 2 = 6); the seventh does not.
    track_all(&emitter, all.by_ref().take(2).collect());
    let filled = stats(&emitter).await;
    assert_eq!(filled.dropped.total(), 0, "{filled:#?}");
    assert_eq!(filled.queued + filled.in_flight, 6);
    track_all(&emitter, all.collect());
    let full = stats(&emitter).await;
    assert_eq!((full.received, full.dropped.capacity), (7, 1));
    assert_eq!(full.accepted(), 6);
    assert_eq!(full.queued + full.in_flight, 6);

    collector.clear_faults();
    let report = flush(&emitter).await;

    assert_delivered(&report, 6);
    // The four wait for their own retry while the two go in a request of their own: the
    // order is not kept, every event arrives once.
    let mut received = collector.event_ids();
    received.sort();
    let mut expected = ids[..6].to_vec();
    expected.sort();
    assert_eq!(received, expected);
    let done = stats(&emitter).await;
    assert_eq!(
        (done.sent, done.dropped.capacity, done.dropped.total()),
        (6, 1, 1)
    );
}
