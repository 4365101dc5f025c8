//! Shutdown: drains within its deadline, counts what is left as dropped, refuses what
//! comes after; a bare stop of an emitter's arbiter is a best-effort drain.

use std::time::{Duration, Instant};

use crate::common::collector::{Faults, TestCollector};
use crate::common::logs::Logs;
use crate::common::support::{
    assert_balanced, events, labels, range_labels, record_failures, track_all, wait_requests,
    BuilderExt, TrackerBuilderExt,
};
use actix::Arbiter;
use snowplow_actix::emitter::Flush;
use snowplow_actix::{EmitterBuilder, FlushError, ShutdownError, Structured, TrackError, Tracker};
use tracing::Level;

fn structured(idx: usize) -> Structured {
    Structured::new("test", "event")
        .unwrap()
        .label(idx.to_string())
}

#[actix_rt::test]
async fn shutdown_drains_every_emitter_and_reports() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("test")
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .flushed_by_hand();
    for idx in 0..25 {
        tracker.track(structured(idx)).unwrap();
    }

    let report = tracker.shutdown(Duration::from_secs(5)).await.unwrap();

    assert_eq!(
        (report.queued, report.timed_out, report.dropped.total()),
        (0, false, 0)
    );
    assert_eq!(labels(&collector.events()), range_labels(0..25));
    let last = tracker.emitters()[0].final_stats().unwrap();
    assert_eq!((last.received, last.sent), (25, 25));
    assert_balanced(&last);
}

#[actix_rt::test]
async fn shutdown_respects_its_deadline_while_the_collector_is_down_and_reports_the_dropped() {
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let tracker = Tracker::builder("test")
        .emitter(
            EmitterBuilder::new(collector.endpoint()).max_retry_delay(Duration::from_millis(100)),
        )
        .flushed_by_hand();
    for idx in 0..7 {
        tracker.track(structured(idx)).unwrap();
    }
    let started = Instant::now();

    let report = tracker.shutdown(Duration::from_millis(500)).await.unwrap();

    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2_500), "{elapsed:?}");
    assert!(report.timed_out);
    assert_eq!(
        (report.sent, report.dropped.shutdown, report.queued),
        (0, 7, 0)
    );
    let last = tracker.emitters()[0].final_stats().unwrap();
    assert_eq!((last.received, last.dropped.shutdown), (7, 7));
    assert_balanced(&last);
}

#[actix_rt::test]
async fn after_a_shutdown_tracking_flushing_and_a_second_shutdown_are_errors() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("test")
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .build()
        .unwrap();
    tracker.shutdown(Duration::from_secs(1)).await.unwrap();
    let started = Instant::now();

    let second = tracker.shutdown(Duration::from_secs(30)).await;

    assert_eq!(second, Err(ShutdownError::AlreadyShutDown));
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(tracker.track(structured(0)), Err(TrackError::ShutDown));
    assert_eq!(tracker.flush().await, Err(FlushError::ShutDown));
}

#[actix_rt::test]
async fn an_emitter_whose_last_address_is_dropped_stops_and_counts_what_it_held_as_shutdown() {
    let logs = Logs::capture();
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let (builder, mut failures) = record_failures(
        EmitterBuilder::new(collector.endpoint()).retrying_fast(Duration::from_millis(20)),
    );
    let config = builder.build().unwrap();
    let last_stats = config.final_stats();
    let emitter = config.start();
    track_all(&emitter, events(5));
    emitter.do_send(Flush::default());
    // Retrying every 20 ms or so, for ever, against a collector that always fails.
    wait_requests(&collector, 3).await;

    drop(emitter);
    // Its callback goes with it: the emitter has stopped.
    failures.closed().await;

    let last = last_stats
        .get()
        .expect("stats published when the emitter stopped");
    assert_eq!((last.received, last.sent), (5, 0));
    // A request awaiting its answer at the stop: outcome unknown.
    assert_eq!(last.dropped.shutdown + last.outcome_unknown, 5, "{last:#?}");
    assert_balanced(&last);
    let requests = collector.request_count();
    let more = collector
        .wait_for_requests(requests + 1, Duration::from_millis(500))
        .await;
    assert!(more.is_err(), "sent after its last address went: {more:?}");
    // One WARN with what was lost: dropped, or (all five awaiting their answer) unknown.
    let warned = logs.matching(|line| {
        line.level == Level::WARN
            && line.target.starts_with("snowplow_actix")
            && line
                .get("dropped")
                .or(line.get("outcome_unknown"))
                .is_some()
    });
    assert_eq!(warned.len(), 1, "{warned:#?}");
    let lost = warned[0]
        .get("dropped")
        .or(warned[0].get("outcome_unknown"));
    assert_eq!(lost, Some("5"), "{warned:#?}");
}

#[actix_rt::test]
async fn stopping_an_emitters_arbiter_counts_what_is_left_as_shutdown() {
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let config = EmitterBuilder::new(collector.endpoint())
        .max_retry_delay(Duration::from_secs(30))
        .build()
        .unwrap();
    let last_stats = config.final_stats();
    let arbiter = Arbiter::new();
    let emitter = config.start_in(&arbiter.handle());
    track_all(&emitter, events(12));
    // The first batch has been tried and the emitter is backing off with all 12 buffered.
    wait_requests(&collector, 1).await;
    assert!(last_stats.get().is_none());

    arbiter.stop();
    actix_rt::task::spawn_blocking(move || arbiter.join())
        .await
        .unwrap()
        .unwrap();

    let last = last_stats
        .get()
        .expect("stats published when the emitter was dropped");
    // Dropped as shutdown, but for a request still awaiting its answer at the stop (its
    // events' outcome is unknown: the collector may have stored them).
    assert_eq!((last.received, last.sent), (12, 0));
    assert_eq!(
        last.dropped.shutdown + last.outcome_unknown,
        12,
        "{last:#?}"
    );
    assert!(
        last.outcome_unknown == 0 || last.outcome_unknown == 10,
        "{last:#?}"
    );
    assert_eq!((last.queued, last.in_flight), (0, 0));
    assert_balanced(&last);
}
