//! Hardening: settings at their extremes and inputs nobody should send never end an
//! emitter or the tracker; each test names the finding it pins.

use std::time::Duration;

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{
    assert_balanced, events, flush, flush_within, stats, track_all, wait_requests, BuilderExt,
    TrackerBuilderExt, SOON,
};
use snowplow_actix::{
    emitter::{Flush, Shutdown},
    EmitterBuilder, Structured, Tracker,
};

fn structured() -> Structured {
    Structured::new("a", "b").unwrap()
}

/// `flush_with_timeout(Duration::MAX)`, `shutdown(Duration::MAX)` and `Flush { timeout:
/// MAX }` panicked ("overflow when adding duration to instant"): a deadline that far
/// means "no deadline".
#[actix_rt::test]
async fn finding_duration_max_deadlines_do_not_panic() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("hardening")
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .flushed_by_hand();
    tracker.track(structured()).unwrap();
    let report = tracker.flush_with_timeout(Duration::MAX).await.unwrap();
    assert_eq!((report.sent, report.timed_out), (1, false));

    let emitter = tracker.emitters()[0].addr().clone();
    let direct = flush_within(&emitter, Duration::MAX).await;
    assert!(!direct.timed_out);

    tracker.track(structured()).unwrap();
    let last = tracker.shutdown(Duration::MAX).await.unwrap();
    assert_eq!((last.sent, last.queued, last.timed_out), (1, 0, false));
    let stats = tracker.stats().await.unwrap();
    assert_eq!(stats.emitters[0].stats.as_ref().unwrap().sent, 2);
}

/// Every duration setting at `Duration::MAX` builds and delivers (a timer that far is
/// "never").
#[actix_rt::test]
async fn finding_duration_max_settings_do_not_panic() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("hardening")
        .emitter(
            EmitterBuilder::new(collector.endpoint())
                .request_timeout(Duration::MAX)
                .max_retry_delay(Duration::MAX)
                .max_event_age(Duration::MAX),
        )
        .emitter(
            EmitterBuilder::new(collector.endpoint())
                .name("split")
                .request_timeouts(Duration::MAX, Duration::MAX),
        )
        .flush_timer(Duration::MAX)
        .build()
        .unwrap();
    tracker.emitters()[0].set_flush_timer(Duration::MAX);
    tracker.set_flush_timer(Duration::MAX);
    tracker.track(structured()).unwrap();
    let report = tracker.flush().await.unwrap();
    assert_eq!((report.sent, report.timed_out), (2, false));
    let report = tracker.shutdown(SOON).await.unwrap();
    assert!(!report.timed_out);
}

/// `byte_limit(usize::MAX)` computed `limit + 1`: a panic with overflow checks, and
/// without them a limit of 0 that made every event oversize.
#[actix_rt::test]
async fn finding_byte_limit_usize_max_does_not_overflow() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .byte_limit(usize::MAX)
        .max_request_bytes(usize::MAX)
        .buffer_capacity(usize::MAX)
        .batch_size(usize::MAX)
        .max_request_events(usize::MAX)
        .started();
    track_all(&emitter, events(3));
    let report = flush(&emitter).await;
    assert_eq!((report.sent, report.dropped.total()), (3, 0));
    let now = stats(&emitter).await;
    assert_eq!(now.dropped.oversize, 0);
    emitter.send(Shutdown::with_timeout(SOON)).await.unwrap();
}

/// A collector that is down, a deadline of `Duration::MAX` on a standalone flush cut by a
/// shutdown: the flush resolves with the shutdown.
#[actix_rt::test]
async fn finding_a_flush_without_deadline_ends_with_the_shutdown() {
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_retry_delay(Duration::from_millis(50))
        .started();
    track_all(&emitter, events(2));
    let pending = emitter.send(Flush::with_timeout(Duration::MAX));
    let shutdown = emitter
        .send(Shutdown::with_timeout(Duration::from_millis(100)))
        .await
        .unwrap();
    let flush = tokio::time::timeout(SOON, pending).await.unwrap().unwrap();
    assert_eq!(shutdown.dropped.shutdown, 2);
    assert!(flush.timed_out);
}

/// A mailbox larger than actix allows panicked the emitter at start (`buffer_capacity`
/// large enough sized it): the buffer no longer sizes it past `MAX_MAILBOX_CAPACITY`, and
/// asking for more is a typed error.
#[actix_rt::test]
async fn finding_a_huge_mailbox_is_a_build_error_not_a_panic() {
    use snowplow_actix::{emitter::MAX_MAILBOX_CAPACITY, BuildError};
    let too_large = BuildError::TooLarge {
        setting: "mailbox_capacity",
        max: MAX_MAILBOX_CAPACITY,
    };
    let emitter = EmitterBuilder::new("http://127.0.0.1:9")
        .mailbox_capacity(MAX_MAILBOX_CAPACITY + 1)
        .build();
    assert_eq!(emitter.err(), Some(too_large.clone()));
    let tracker = Tracker::builder("hardening")
        .emitter(EmitterBuilder::new("http://127.0.0.1:9"))
        .mailbox_capacity(usize::MAX)
        .build();
    assert_eq!(tracker.err(), Some(too_large));
    let sized = EmitterBuilder::new("http://127.0.0.1:9")
        .buffer_capacity(usize::MAX)
        .build()
        .unwrap();
    assert_eq!(sized.mailbox_capacity(), MAX_MAILBOX_CAPACITY);
}

/// Build errors echoed the whole endpoint, credentials and query included, into messages
/// that end up in logs.
#[test]
fn finding_build_errors_never_echo_an_endpoints_secrets() {
    for endpoint in [
        "https://user:s3cret@collector.example",
        "https://collector.example/?key=s3cret",
        "https://collector.example/#s3cret",
        "https://collector.example/s3cret path",
        "https://collector.example/s3cret\u{1}",
        "s3cret://collector.example",
        "s3cret-and-more-than-a-scheme://collector.example",
        "https://s3cret:99999",
        "https://collector.example/s3cret/com.snowplowanalytics.snowplow/tp2",
        "https://collector.example/s3cr\u{e9}t",
    ] {
        let error = EmitterBuilder::new(endpoint)
            .build()
            .expect_err(endpoint)
            .to_string();
        if endpoint.starts_with("s3cret://") {
            // A scheme alone is echoed: it is no secret to say `s3cret` is not http(s).
            assert!(error.contains("scheme"), "{endpoint}: {error}");
            continue;
        }
        assert!(!error.contains("s3cr"), "{endpoint}: {error}");
    }
}

/// Hardening finding: events in a request still awaiting its answer at the shutdown
/// deadline were reported as dropped, though the collector had stored them. Their outcome
/// is unknown, and the report says so.
#[actix_rt::test]
async fn finding_events_in_flight_at_the_deadline_are_outcome_unknown_not_dropped() {
    let collector =
        TestCollector::with_faults(Faults::none().with_delay(Duration::from_secs(3))).await;
    let tracker = Tracker::builder("hardening")
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .flushed_by_hand();
    for _ in 0..3 {
        tracker.track(structured()).unwrap();
    }
    tracker.request_flush();
    wait_requests(&collector, 1).await;

    let report = tracker.shutdown(Duration::from_millis(200)).await.unwrap();

    assert_eq!(
        (report.sent, report.dropped.total(), report.outcome_unknown),
        (0, 0, 3),
        "{report:#?}"
    );
    assert!(report.timed_out);
    let last = tracker.emitters()[0].final_stats().unwrap();
    assert_eq!((last.outcome_unknown, last.dropped.shutdown), (3, 0));
    assert_balanced(&last);
    // The collector did store them.
    assert_eq!(collector.event_ids().len(), 3);
}

/// Hardening finding: a standalone emitter with a durable store kept sending after its
/// `Shutdown`, and a flush sent to it afterwards waited for its whole deadline. A closed
/// emitter sends nothing and answers at once; what it kept waits for the next start.
#[cfg(feature = "sqlite")]
#[actix_rt::test]
async fn finding_a_shut_down_emitter_with_a_durable_store_sends_nothing_more() {
    use snowplow_actix::store::SqliteStore;
    let dir = std::env::temp_dir().join(format!("snowplow-hardening-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.db");
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(2)
        .max_retry_delay(Duration::from_millis(20))
        .event_store(SqliteStore::open(&path, 100).unwrap())
        .started();
    track_all(&emitter, events(4));
    wait_requests(&collector, 1).await;
    let report = tokio::time::timeout(
        SOON,
        emitter.send(Shutdown::with_timeout(Duration::from_millis(100))),
    )
    .await
    .expect("shutdown answers")
    .unwrap();
    assert_eq!(report.sent, 0);
    let requests_at_shutdown = collector.request_count();
    collector.clear_faults();
    // A flush and a stats request after the shutdown: answered, nothing sent.
    let after = tokio::time::timeout(SOON, emitter.send(Flush::default()))
        .await
        .expect("a flush after the shutdown answers")
        .unwrap();
    let now = stats(&emitter).await;
    assert_eq!(after.sent, 0);
    assert!(now.shut_down);
    assert_eq!(collector.request_count(), requests_at_shutdown);
    assert_eq!(collector.accepted_count(), 0);
    drop(emitter);
    // Kept for the next start.
    let reopened = SqliteStore::open(&path, 100).unwrap();
    use snowplow_actix::store::EventStore as _;
    assert_eq!(reopened.recovered(), 4);
    drop(reopened);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hardening finding: memory was bounded in events, not bytes (5,000 page views with a
/// 100 KB user agent took RSS from 7 MB to 966 MB with the collector down). Large events
/// tracked directly into a down collector stay within the byte capacity; the excess is
/// counted as `capacity`.
#[actix_rt::test]
async fn finding_large_events_are_bounded_by_the_buffers_byte_capacity() {
    const LIMIT: usize = 1_000_000;
    const EVENTS: u64 = 50;
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let tracker = Tracker::builder("hardening")
        .emitter(
            EmitterBuilder::new(collector.endpoint())
                .buffer_bytes(LIMIT)
                .max_retry_delay(Duration::from_secs(30)),
        )
        .flushed_by_hand();
    let large = "x".repeat(100_000);
    for _ in 0..EVENTS {
        tracker.track(structured().label(large.as_str())).unwrap();
    }

    let stats = tracker.stats().await.unwrap();
    let now = stats.emitters[0].stats.clone().unwrap();
    assert_eq!(now.received, EVENTS);
    assert!(
        now.queued_bytes + now.in_flight_bytes <= LIMIT as u64,
        "{now:#?}"
    );
    assert_eq!(now.buffer_bytes, LIMIT as u64);
    let held = now.queued + now.in_flight;
    assert!(
        (8..=10).contains(&held),
        "about 1 MB of 100 KB events: {now:#?}"
    );
    assert_eq!(now.dropped.capacity, EVENTS - held);
    assert_balanced(&now);
    let health = tracker.health().await;
    assert_eq!(
        health.status,
        snowplow_actix::health::HealthStatus::Degraded
    );
    tracker.shutdown(Duration::from_millis(10)).await.unwrap();
}

/// A custom emitter that takes flushes and never answers them.
struct Silent;

impl actix::Actor for Silent {
    type Context = actix::Context<Self>;
}

impl actix::Handler<snowplow_actix::emitter::Track> for Silent {
    type Result = ();

    fn handle(&mut self, _: snowplow_actix::emitter::Track, _: &mut Self::Context) {}
}

impl actix::Handler<Flush> for Silent {
    type Result = actix::ResponseFuture<snowplow_actix::FlushReport>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        Box::pin(std::future::pending())
    }
}

/// Hardening finding: the fan-out waited for a custom emitter's flush reply with no
/// timeout (`shutdown(1s)` still pending at 4 s). Its reply is awaited until the deadline
/// (and a second of grace), then the report says it timed out.
#[actix_rt::test]
async fn finding_a_custom_emitter_that_never_answers_does_not_hold_a_flush_or_shutdown() {
    use actix::Actor as _;
    let silent = Silent.start();
    let tracker = Tracker::builder("hardening")
        .custom_emitter(
            snowplow_actix::tracker::CustomEmitter::new("silent", silent.clone().recipient())
                .flush(silent.recipient()),
        )
        .flushed_by_hand();
    tracker.track(structured()).unwrap();

    let started = std::time::Instant::now();
    let flush = tokio::time::timeout(SOON, tracker.flush_with_timeout(Duration::from_millis(200)))
        .await
        .expect("the flush returns")
        .unwrap();
    let shutdown = tokio::time::timeout(SOON, tracker.shutdown(Duration::from_millis(200)))
        .await
        .expect("the shutdown returns")
        .unwrap();
    let took = started.elapsed();

    assert!(flush.timed_out && shutdown.timed_out);
    // Two deadlines of 200 ms, each with a second of grace: well under 10 s.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(took >= Duration::from_millis(400), "{took:?}");
}

/// A transport that panics on its `panic_at`-th request (counted across restarts), and
/// otherwise sends over HTTP.
struct PanickyTransport {
    inner: snowplow_actix::transport::AwcTransport,
    sends: std::sync::Arc<std::sync::atomic::AtomicU64>,
    panic_at: u64,
}

impl snowplow_actix::transport::Transport for PanickyTransport {
    fn send(
        &self,
        request: snowplow_actix::transport::Request,
    ) -> futures::future::LocalBoxFuture<
        'static,
        Result<snowplow_actix::transport::Response, snowplow_actix::transport::TransportError>,
    > {
        let n = self
            .sends
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if n == self.panic_at {
            panic!("a bug in the transport");
        }
        self.inner.send(request)
    }
}

/// Hardening finding: any panic inside an emitter ended it for good (its buffer counted
/// as `shutdown`, later events refused, its stats gone). A panic is contained: the emitter
/// restarts with its queue and counters, counts the panic, and delivers everything.
#[actix_rt::test]
async fn finding_a_panic_inside_an_emitter_restarts_it_without_losing_events() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let sends = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let factory_sends = sends.clone();
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(10)
        .max_request_events(10)
        .max_in_flight(1)
        .transport_factory(move || {
            Box::new(PanickyTransport {
                inner: snowplow_actix::transport::AwcTransport::new(
                    snowplow_actix::transport::default_client(SOON, 4),
                ),
                sends: factory_sends.clone(),
                panic_at: 2,
            })
        })
        .started();
    let ids = track_all(&emitter, events(30));

    let report = tokio::time::timeout(SOON, emitter.send(Flush::default()))
        .await
        .expect("the flush returns")
        .unwrap();
    // The flush in progress at the panic may be answered as timed out; a second one sees
    // everything delivered.
    let again = flush(&emitter).await;

    assert_eq!(again.queued, 0, "{report:#?} {again:#?}");
    let now = stats(&emitter).await;
    assert_eq!((now.panics, now.restarts), (1, 1), "{now:#?}");
    assert_eq!((now.received, now.sent, now.dropped.total()), (30, 30, 0));
    assert_balanced(&now);
    assert_eq!(
        crate::common::support::sorted(collector.event_ids()),
        crate::common::support::sorted(ids)
    );
    // It takes new events as before.
    track_all(&emitter, events(3));
    let last = flush(&emitter).await;
    assert_eq!(last.sent, 3);
}

/// A user-supplied jitter source that panicked ended the emitter while it settled an
/// answer; the panic is caught where the jitter is drawn (0.5 s is used instead).
#[actix_rt::test]
async fn finding_a_panicking_jitter_source_is_caught_where_it_is_drawn() {
    let collector = TestCollector::with_faults(Faults::fail_first(1, 500)).await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let jitter_calls = calls.clone();
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_retry_delay(Duration::from_millis(20))
        .jitter(move || {
            if jitter_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
                panic!("the jitter source panics");
            }
            0.001
        })
        .started();
    track_all(&emitter, events(5));

    let _ = tokio::time::timeout(SOON, emitter.send(Flush::default()))
        .await
        .expect("the flush returns");
    let again = flush(&emitter).await;

    assert_eq!(again.queued, 0);
    let now = stats(&emitter).await;
    assert_eq!((now.panics, now.restarts), (0, 0), "{now:#?}");
    assert_eq!((now.received, now.sent), (5, 5), "{now:#?}");
    assert_balanced(&now);
    assert_eq!(collector.accepted_count(), 5);
}

/// Hardening finding: one `TrackBatch` could carry any number of events and actix handles
/// every queued message before the actor's futures, so behind a store taking 50 µs per
/// event 290,000 events waited in a mailbox far past the buffer, answers starved and
/// `shutdown(1s)` returned after 14 s. The intake is bounded in events (the excess counted
/// as `capacity`) and taken in chunks: the shutdown holds its deadline, from the call.
#[actix_rt::test]
async fn finding_a_slow_store_cannot_hold_a_shutdown_past_its_deadline() {
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let tracker = Tracker::builder("hardening")
        .emitter(
            // Every `add` takes 50 µs (a slow disk), on the emitter's own arbiter.
            EmitterBuilder::new(collector.endpoint()).event_store(
                crate::common::support::HookedStore::new(
                    snowplow_actix::emitter::DEFAULT_BUFFER_CAPACITY,
                    Box::new(|| {
                        let start = std::time::Instant::now();
                        while start.elapsed() < Duration::from_micros(50) {
                            std::hint::spin_loop();
                        }
                        None
                    }),
                ),
            ),
        )
        .flushed_by_hand();
    let tracked = 100_000;
    let mut refused = 0u64;
    for _ in 0..tracked {
        if tracker.track(structured()).is_err() {
            refused += 1;
        }
    }

    let started = std::time::Instant::now();
    let report = tracker.shutdown(Duration::from_secs(1)).await.unwrap();
    let took = started.elapsed();

    // 1 s, the intake's last chunk and the reply grace, with room to spare on a busy
    // machine; 14 s before.
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    let stats = tracker.stats().await.unwrap();
    let emitter = stats.emitters[0].stats.clone().unwrap();
    assert_eq!(stats.tracked, tracked);
    assert_eq!(
        emitter.received + stats.refused - refused,
        tracked - refused
    );
    assert!(emitter.dropped.capacity > 0, "{emitter:#?}");
    assert_balanced(&emitter);
    assert_eq!((emitter.queued, emitter.in_flight), (0, 0), "{report:#?}");
}

/// Hardening finding: each async flush (`request_flush`, `do_send(Flush)`) registered a
/// waiter and a timer that every later flush rescanned: 40,000 of them with the collector
/// down made the next `stats()` take 9.9 s. An async flush starts sending and leaves
/// nothing behind; a sync flush is the only kind that waits.
#[actix_rt::test]
async fn finding_async_flushes_leave_no_waiter_behind() {
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let tracker = Tracker::builder("hardening")
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .flushed_by_hand();
    for _ in 0..10 {
        tracker.track(structured()).unwrap();
    }
    let emitter = tracker.emitters()[0].clone();

    for _ in 0..40_000 {
        tracker.request_flush();
    }
    let sync = tracker.flush_with_timeout(Duration::from_secs(30));
    futures::pin_mut!(sync);
    // The sync flush is registered once the emitter has handled every async one.
    let waiting = loop {
        let now = emitter.stats().await.unwrap();
        if now.flushes_waiting > 0 {
            break now;
        }
        assert!(
            futures::poll!(&mut sync).is_pending(),
            "the sync flush waits for the collector"
        );
    };

    assert_eq!(waiting.flushes_waiting, 1, "{waiting:#?}");
    assert!(waiting.requests > 0, "async flushes started sending");
    tracker.cut_shutdown();
    let _ = tracker.shutdown(Duration::ZERO).await;
}

/// The deadline of a flush or a shutdown is fixed when the message is made, not when the
/// emitter gets to it: one whose deadline passed while it waited in mailboxes is answered
/// at once, as timed out, with what is left still queued.
#[actix_rt::test]
async fn finding_a_flush_deadline_runs_from_when_it_was_made() {
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(5)
        .max_retry_delay(Duration::from_secs(30))
        .started();
    track_all(&emitter, events(5));
    let made = Flush::with_timeout(Duration::from_millis(200));
    wait_requests(&collector, 1).await;
    // The flush waits (as in a busy mailbox) until its deadline has passed.
    tokio::time::sleep_until(tokio::time::Instant::from_std(made.deadline())).await;

    let started = std::time::Instant::now();
    let report = emitter.send(made).await.unwrap();

    assert!(made.remaining().is_zero());
    // At once, not 200 ms from now.
    assert!(started.elapsed() < Duration::from_millis(150));
    assert_eq!((report.timed_out, report.queued), (true, 5), "{report:#?}");
}
