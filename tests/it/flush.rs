//! Sync and async flushes: a sync flush replies once every event received before it is sent
//! or dropped, or at its deadline; it waits through backoff and never hot-loops.

use std::time::{Duration, Instant};

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{
    events, fixed_jitter, flush, flush_within, labels, range_labels, stats, track_all, wait_events,
    BuilderExt,
};
use snowplow_actix::{emitter::Flush, EmitterBuilder, FlushReport};

#[actix_rt::test]
async fn sync_flush_waits_through_backoff_and_reports_what_was_sent() {
    let collector = TestCollector::with_faults(Faults::statuses([500, 503, 200])).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_retry_delay(Duration::from_secs(1))
        .jitter(fixed_jitter(0.2))
        .started();
    // Before the first attempt, which may be answered before `track_all` returns.
    let started = Instant::now();
    track_all(&emitter, events(4));

    let report = flush(&emitter).await;

    // Backoff 0.2 s then 0.6 s before the third attempt.
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        report,
        FlushReport {
            sent: 4,
            queued: 0,
            timed_out: false,
            ..FlushReport::default()
        }
    );
    assert_eq!(collector.statuses(), [500, 503, 200]);
}

#[actix_rt::test]
async fn sync_flush_returns_at_its_deadline_while_the_collector_is_down_without_hot_looping() {
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_retry_delay(Duration::from_millis(200))
        .jitter(fixed_jitter(0.2))
        .started();
    track_all(&emitter, events(3));
    let started = Instant::now();

    let report = flush_within(&emitter, Duration::from_secs(1)).await;

    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(report.timed_out);
    assert_eq!((report.sent, report.queued), (0, 3));
    // One attempt, then one every 0.2 s: about 6 in a second; a hot loop makes hundreds.
    let requests = collector.request_count();
    assert!(
        (2..=12).contains(&requests),
        "{requests} requests in one second"
    );
    let stats = stats(&emitter).await;
    assert_eq!(stats.queued + stats.in_flight, 3);
}

#[actix_rt::test]
async fn async_flush_sends_a_partial_batch_without_waiting() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let emitter = EmitterBuilder::new(collector.endpoint()).started();
    track_all(&emitter, events(3));

    emitter.do_send(Flush::default());

    let received = wait_events(&collector, 3).await;
    assert_eq!(labels(&received), range_labels(0..3));
    assert_eq!(collector.request_count(), 1);
}

#[actix_rt::test]
async fn flush_with_nothing_buffered_replies_at_once_and_sends_nothing() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let emitter = EmitterBuilder::new(collector.endpoint()).started();

    let report = flush(&emitter).await;

    assert_eq!(report, FlushReport::default());
    assert_eq!(collector.request_count(), 0);
}

#[actix_rt::test]
async fn flush_covers_the_events_received_before_it_and_not_later_ones() {
    let collector =
        TestCollector::with_faults(Faults::none().with_delay(Duration::from_millis(200))).await;
    let emitter = EmitterBuilder::new(collector.endpoint()).started();
    let mut all = events(6).into_iter();
    track_all(&emitter, all.by_ref().take(3).collect());
    let first = emitter.send(Flush::default());
    track_all(&emitter, all.collect());

    let report = first.await.unwrap();

    assert_eq!(
        (report.sent, report.queued, report.timed_out),
        (3, 3, false)
    );
    let second = flush(&emitter).await;
    assert_eq!((second.sent, second.queued), (3, 0));
    assert_eq!(labels(&collector.events()), range_labels(0..6));
}
