//! Health against the test collector's faults: healthy while it accepts, degraded while
//! requests fail, the brake holds or the queue fills, down once the buffer is full or the
//! tracker has shut down.

use std::time::Duration;

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{BuilderExt, TrackerBuilderExt, SOON};
use snowplow_actix::health::{HealthReason, HealthStatus};
use snowplow_actix::{EmitterBuilder, Structured, Tracker};
use tokio::sync::mpsc;

fn track(tracker: &Tracker, n: usize) {
    for _ in 0..n {
        tracker.track(Structured::new("a", "b").unwrap()).unwrap();
    }
}

#[actix_rt::test]
async fn a_collector_that_accepts_is_healthy() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("health")
        .emitter(EmitterBuilder::new(collector.endpoint()).name("primary"))
        .build()
        .unwrap();
    track(&tracker, 5);
    tracker.flush().await.unwrap();

    let health = tracker.health().await;

    assert_eq!(health.status, HealthStatus::Healthy, "{health:#?}");
    assert!(health.reasons.is_empty());
    assert_eq!(health.emitters.len(), 1);
    assert_eq!(health.emitters[0].name, "primary");
    assert_eq!(health.emitters[0].buffer_capacity, Some(10_000));
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["status"], "healthy");
    assert_eq!(json["emitters"][0]["reasons"], serde_json::json!([]));
}

async fn next_failure(failures: &mut mpsc::UnboundedReceiver<()>) {
    tokio::time::timeout(SOON, failures.recv())
        .await
        .expect("a failure within 10 s");
}

#[actix_rt::test]
async fn failing_requests_then_the_brake_degrade_and_a_success_heals() {
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let (failed, mut failures) = mpsc::unbounded_channel();
    let tracker = Tracker::builder("health")
        .emitter(
            EmitterBuilder::new(collector.endpoint())
                .retrying_fast(Duration::from_millis(20))
                .on_failure(move |_| {
                    let _ = failed.send(());
                }),
        )
        .flushed_by_hand();
    track(&tracker, 1);
    tracker.request_flush();
    next_failure(&mut failures).await;

    let failing = tracker.health().await;
    assert_eq!(failing.status, HealthStatus::Degraded, "{failing:#?}");
    assert!(failing.emitters[0]
        .reasons
        .contains(&HealthReason::FailingRequests));
    assert!(failing.emitters[0].consecutive_failures >= 1);

    // Failures go on until the brake holds (5 in a row and 250 ms without a success).
    let mut braked = failing;
    for _ in 0..1_000 {
        if braked.emitters[0].reasons.contains(&HealthReason::Braked) {
            break;
        }
        next_failure(&mut failures).await;
        braked = tracker.health().await;
    }
    assert_eq!(braked.status, HealthStatus::Degraded);
    assert!(
        braked.emitters[0].reasons.contains(&HealthReason::Braked),
        "{braked:#?}"
    );

    collector.clear_faults();
    let report = tracker.flush().await.unwrap();
    assert_eq!(report.queued, 0);
    assert_eq!(tracker.health().await.status, HealthStatus::Healthy);
}

#[actix_rt::test]
async fn a_filling_buffer_is_degraded_and_a_full_one_down() {
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let tracker = Tracker::builder("health")
        .emitter(
            EmitterBuilder::new(collector.endpoint())
                .buffer_capacity(10)
                .max_retry_delay(Duration::from_secs(30)),
        )
        .flushed_by_hand();
    track(&tracker, 6);
    let filling = tracker.health().await;
    assert!(
        filling.emitters[0]
            .reasons
            .contains(&HealthReason::QueueHigh),
        "{filling:#?}"
    );
    assert_eq!(filling.status, HealthStatus::Degraded);

    track(&tracker, 5);
    let full = tracker.health().await;
    assert_eq!(full.status, HealthStatus::Down, "{full:#?}");
    assert!(full.emitters[0].reasons.contains(&HealthReason::BufferFull));
    assert_eq!(full.emitters[0].queued + full.emitters[0].in_flight, 10);
}

#[actix_rt::test]
async fn a_shut_down_tracker_and_its_emitters_are_down() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("health")
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .build()
        .unwrap();
    track(&tracker, 3);
    tracker.shutdown(Duration::from_secs(5)).await.unwrap();

    let health = tracker.health().await;
    assert_eq!(health.status, HealthStatus::Down);
    assert_eq!(health.reasons, [HealthReason::ShutDown]);
    let emitter = tracker.emitters()[0].health().await;
    assert_eq!(emitter.status, HealthStatus::Down);
    assert_eq!(emitter.reasons, [HealthReason::ShutDown]);
    // Its final figures are still there: everything was sent.
    let stats = tracker.stats().await.unwrap();
    let last = stats.emitters[0].stats.as_ref().unwrap();
    assert_eq!((stats.tracked, last.sent, last.queued), (3, 3, 0));
    assert!(last.shut_down && last.is_balanced(), "{last:#?}");
}
