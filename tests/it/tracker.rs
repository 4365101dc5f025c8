//! The tracker: fan-out to several emitters, flush timers, runtime emitters, many threads.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{
    assert_balanced, assert_settled, labels, range_labels, wait_events, TrackerBuilderExt, SOON,
};
use actix::prelude::*;
use futures::channel::mpsc;
use futures::StreamExt as _;
use snowplow_actix::{
    emitter::{Flush, Track},
    tracker::CustomEmitter,
    EmitterBuilder, FlushReport, Method, PageView, Structured, Tracker, TrackerStats,
};

fn structured(idx: usize) -> Structured {
    Structured::new("test", "event")
        .unwrap()
        .label(idx.to_string())
}

fn track_range(tracker: &Tracker, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|idx| tracker.track(structured(idx)).unwrap().to_string())
        .collect()
}

async fn balanced_stats(tracker: &Tracker) -> TrackerStats {
    let stats = tracker.stats().await.unwrap();
    for emitter in &stats.emitters {
        let counters = emitter.stats.as_ref().unwrap();
        assert!(counters.is_balanced(), "{}: {counters:#?}", emitter.name);
    }
    stats
}

/// Events each built-in emitter has sent so far, in the order they were added (custom
/// emitters report no counters).
async fn sent_by_each(tracker: &Tracker) -> Vec<u64> {
    let stats = tracker.stats().await.unwrap();
    stats
        .emitters
        .iter()
        .filter_map(|emitter| emitter.stats.as_ref())
        .map(|counters| {
            assert_balanced(counters);
            counters.sent
        })
        .collect()
}

fn eid_set(events: &[crate::common::collector::RecordedEvent]) -> BTreeSet<String> {
    events.iter().map(|e| e.eid().unwrap().to_owned()).collect()
}

#[actix_rt::test]
async fn fanout_delivers_every_event_to_every_emitter() {
    let post = TestCollector::with_faults(Faults::none()).await;
    let get = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("test")
        .emitter(EmitterBuilder::new(post.endpoint()))
        .emitter(EmitterBuilder::new(get.endpoint()).method(Method::Get))
        .flushed_by_hand();
    let ids: BTreeSet<String> = track_range(&tracker, 0..23).into_iter().collect();

    let report = tracker.flush().await.unwrap();

    // The flush covers every event; full batches may have been sent before it began, so
    // the report's `sent` is at most the total and the counters hold the whole of it.
    assert_settled(&report);
    assert!(report.sent <= 46, "{report:?}");
    assert_eq!(sent_by_each(&tracker).await, [23, 23]);
    assert_eq!(eid_set(&post.events()), ids);
    assert_eq!(eid_set(&get.events()), ids);
    assert_eq!(labels(&post.events()), range_labels(0..23));
    let stats = balanced_stats(&tracker).await;
    assert_eq!(stats.tracked, 23);
    for emitter in &stats.emitters {
        let counters = emitter.stats.as_ref().unwrap();
        assert_eq!(
            (counters.received, counters.sent),
            (23, 23),
            "{}",
            emitter.name
        );
    }
}

#[actix_rt::test]
async fn one_emitter_down_does_not_slow_the_others() {
    let down = TestCollector::with_faults(Faults::always(503)).await;
    let healthy = TestCollector::with_faults(Faults::none()).await;
    let (failed, mut failures) = tokio::sync::mpsc::unbounded_channel();
    let tracker = Tracker::builder("test")
        .emitter(
            EmitterBuilder::new(down.endpoint())
                .max_retry_delay(Duration::from_secs(30))
                .on_failure(move |_| {
                    let _ = failed.send(());
                }),
        )
        // Every event is a full batch, so all 50 go without a flush however the emitter cuts
        // them (with batches of 10, a request cut when 46 had arrived left 4 waiting for a
        // flush); one request at a time keeps them in order.
        .emitter(
            EmitterBuilder::new(healthy.endpoint())
                .batch_size(1)
                .max_in_flight(1),
        )
        .flushed_by_hand();
    let started = Instant::now();

    track_range(&tracker, 0..50);

    let received = wait_events(&healthy, 50).await;
    assert_eq!(labels(&received), range_labels(0..50));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The healthy emitter settles at once; the one down keeps everything for later.
    let healthy_flush = tracker.emitters()[1].flush().await.unwrap();
    assert_eq!((healthy_flush.queued, healthy_flush.timed_out), (0, false));
    // The one down has had an answer (the healthy one may well have been faster).
    tokio::time::timeout(SOON, failures.recv())
        .await
        .expect("a failure within 10 s");
    let stats = balanced_stats(&tracker).await;
    let down_stats = stats.emitters[0].stats.as_ref().unwrap();
    assert_eq!(down_stats.sent, 0);
    assert_eq!(
        down_stats.queued + down_stats.in_flight,
        50,
        "{down_stats:#?}"
    );
    assert!(down_stats.consecutive_failures >= 1);
    let healthy_stats = stats.emitters[1].stats.as_ref().unwrap();
    assert_eq!(healthy_stats.sent, 50, "{healthy_stats:#?}");
}

#[actix_rt::test]
async fn tracker_timer_flushes_on_schedule_and_can_be_replaced_and_cancelled() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    // The timer starts with the tracker: its first tick comes at least 100 ms after this.
    let started = Instant::now();
    let tracker = Tracker::builder("test")
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .flush_timer(Duration::from_millis(100))
        .build()
        .unwrap();

    // Below a batch: only the timer sends them.
    track_range(&tracker, 0..3);
    wait_events(&collector, 3).await;
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "{:?}",
        started.elapsed()
    );

    tracker.set_flush_timer(Duration::from_millis(50));
    track_range(&tracker, 3..5);
    wait_events(&collector, 5).await;

    tracker.cancel_flush_timer();
    // A flush reply proves the cancel was handled before these events were tracked.
    tracker.flush().await.unwrap();
    track_range(&tracker, 5..7);
    let nothing = collector
        .wait_for_events(6, Duration::from_millis(500))
        .await;
    assert!(nothing.is_err(), "sent without a timer: {nothing:?}");
    assert_eq!(tracker.flush().await.unwrap().sent, 2);
    assert_eq!(labels(&collector.events()), range_labels(0..7));
}

#[actix_rt::test]
async fn an_empty_timer_tick_sends_nothing() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("test")
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .flush_timer(Duration::from_millis(20))
        .build()
        .unwrap();

    let requests = collector
        .wait_for_requests(1, Duration::from_millis(400))
        .await;

    assert!(requests.is_err(), "an empty tick sent {requests:?}");
    let stats = balanced_stats(&tracker).await;
    assert_eq!(stats.emitters[0].stats.as_ref().unwrap().requests, 0);
}

#[actix_rt::test]
async fn per_emitter_timer_flushes_only_its_emitter() {
    let timed = TestCollector::with_faults(Faults::none()).await;
    let untimed = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("test")
        .emitter(EmitterBuilder::new(timed.endpoint()))
        .emitter(EmitterBuilder::new(untimed.endpoint()))
        .flushed_by_hand();
    tracker.emitters()[0].set_flush_timer(Duration::from_millis(50));

    track_range(&tracker, 0..3);

    wait_events(&timed, 3).await;
    assert_eq!(untimed.request_count(), 0);
    tracker.emitters()[0].cancel_flush_timer();
    let report = tracker.flush().await.unwrap();
    assert_settled(&report);
    assert_eq!((timed.accepted_count(), untimed.accepted_count()), (3, 3));
}

#[actix_rt::test]
async fn an_emitter_added_at_run_time_gets_the_events_tracked_after() {
    let first = TestCollector::with_faults(Faults::none()).await;
    let second = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("test")
        .emitter(EmitterBuilder::new(first.endpoint()))
        .flushed_by_hand();
    track_range(&tracker, 0..5);

    tracker
        .add_emitter(EmitterBuilder::new(second.endpoint()))
        .unwrap();
    track_range(&tracker, 5..12);
    let report = tracker.flush().await.unwrap();

    assert_settled(&report);
    assert_eq!(sent_by_each(&tracker).await, [12, 7]);
    assert_eq!(labels(&first.events()), range_labels(0..12));
    assert_eq!(labels(&second.events()), range_labels(5..12));
    let stats = balanced_stats(&tracker).await;
    assert_eq!(stats.emitters[1].stats.as_ref().unwrap().received, 7);
}

#[actix_rt::test]
async fn invalid_settings_are_build_errors() {
    use snowplow_actix::BuildError;
    assert_eq!(
        Tracker::builder("")
            .emitter(EmitterBuilder::new("h"))
            .build()
            .unwrap_err(),
        BuildError::EmptyNamespace
    );
    assert_eq!(
        Tracker::builder("t").build().unwrap_err(),
        BuildError::NoEmitter
    );
    assert_eq!(
        Tracker::builder("t")
            .emitter(EmitterBuilder::new("ftp://h"))
            .build()
            .unwrap_err(),
        BuildError::UnsupportedScheme("ftp".into())
    );
    assert_eq!(
        Tracker::builder("t")
            .emitter(EmitterBuilder::new("h"))
            .flush_timer(Duration::ZERO)
            .build()
            .unwrap_err(),
        BuildError::Zero("flush_timer")
    );
}

#[actix_rt::test]
async fn tracking_from_many_threads_loses_nothing() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("test")
        .emitter(EmitterBuilder::new(collector.endpoint()).batch_size(50))
        .flushed_by_hand();
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let tracker = tracker.clone();
            std::thread::spawn(move || {
                (0..2_500)
                    .map(|idx| {
                        let page = format!("https://example.com/{thread}/{idx}");
                        tracker
                            .track(PageView::new(page).unwrap())
                            .unwrap()
                            .to_string()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: BTreeSet<String> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();

    let report = tracker.flush().await.unwrap();

    // Full batches went out while tracking; the flush sent the rest.
    assert_eq!((report.queued, report.dropped.total()), (0, 0));
    assert_eq!(ids.len(), 10_000);
    let received = eid_set(&collector.events());
    assert_eq!(
        (
            received.len(),
            received.difference(&ids).count(),
            collector.accepted_count()
        ),
        (10_000, 0, 10_000)
    );
    let stats = balanced_stats(&tracker).await;
    assert_eq!((stats.tracked, stats.refused), (10_000, 0));
}

/// A custom emitter: collects the events it receives and answers flushes.
struct Collecting {
    events: mpsc::UnboundedSender<String>,
    received: u64,
}

impl Actor for Collecting {
    type Context = Context<Self>;
}

impl Handler<Track> for Collecting {
    type Result = ();

    fn handle(&mut self, track: Track, _: &mut Self::Context) {
        self.received += 1;
        let _ = self.events.unbounded_send(track.event().id().to_string());
    }
}

impl Handler<Flush> for Collecting {
    type Result = MessageResult<Flush>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        MessageResult(FlushReport {
            sent: self.received,
            ..FlushReport::default()
        })
    }
}

#[actix_rt::test]
async fn a_custom_emitter_receives_every_event_of_a_burst_and_flushes() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let (events_tx, mut events) = mpsc::unbounded();
    // Started with a full-size mailbox: a burst beyond actix's initial 16 places is kept.
    let custom = CustomEmitter::start(Collecting {
        events: events_tx,
        received: 0,
    });
    let tracker = Tracker::builder("test")
        .emitter(EmitterBuilder::new(collector.endpoint()).name("http"))
        .custom_emitter(
            CustomEmitter::new("collecting", custom.clone().recipient()).flush(custom.recipient()),
        )
        .flushed_by_hand();
    let ids = track_range(&tracker, 0..200);

    let report = tracker.flush().await.unwrap();

    // The custom emitter's reply counts every event it received before the flush: all 200
    // (the built-in emitter may have sent full batches before the flush began).
    assert!((200..=400).contains(&report.sent), "{report:?}");
    assert_settled(&report);
    assert_eq!(sent_by_each(&tracker).await, [200]);
    let received: Vec<String> = (&mut events).take(200).collect().await;
    assert_eq!(received, ids);
    let stats = tracker.stats().await.unwrap();
    assert_eq!(stats.emitters[0].name, "http");
    assert_eq!(
        (stats.emitters[1].name.as_str(), stats.emitters[1].refused),
        ("collecting", 0)
    );
    assert_eq!(stats.emitters[1].stats, None);
}

/// Events an emitter's full mailbox refuses are counted once, where the fan-out hands them
/// over, and the emitter reports them itself (as received and dropped for `capacity`): its
/// own handle's stats and the tracker's agree and balance.
#[actix_rt::test]
async fn refusals_at_a_full_mailbox_are_counted_once_and_reported_by_the_emitter() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    let collector = TestCollector::with_faults(Faults::none()).await;
    // The emitter's first store call waits for the test: its mailbox fills meanwhile.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Mutex::new(held);
    let first = AtomicBool::new(true);
    let store = crate::common::support::HookedStore::new(
        1_000,
        Box::new(move || {
            if first.swap(false, Ordering::SeqCst) {
                let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(30));
            }
            None
        }),
    );
    let (seen_tx, mut seen) = mpsc::unbounded();
    let witness = CustomEmitter::start(Collecting {
        events: seen_tx,
        received: 0,
    });
    let tracker = Tracker::builder("refusals")
        .emitter(
            EmitterBuilder::new(collector.endpoint())
                .name("blocked")
                .buffer_capacity(1_000)
                .mailbox_capacity(16)
                .event_store(store),
        )
        .custom_emitter(CustomEmitter::new("witness", witness.recipient()))
        .flushed_by_hand();
    // One hand-over per message: 500 batches of one event for a mailbox of 16.
    let fanout = tracker.recipient();
    for idx in 0..500 {
        for track in tracker.stamp(structured(idx)).unwrap() {
            fanout.do_send(track);
        }
    }
    // The witness comes after the blocked emitter in each hand-over: once it has all 500,
    // every hand-over to the blocked one was tried.
    let _: Vec<String> = (&mut seen).take(500).collect().await;
    release.send(()).unwrap();
    let report = tracker.flush().await.unwrap();

    let handle = tracker.emitters().remove(0);
    let own = handle.stats().await.unwrap();
    let stats = tracker.stats().await.unwrap();
    let refused = stats.emitters[0].refused;
    assert!(refused >= 400, "{:#?}", stats.emitters[0]);
    assert_eq!(stats.emitters[0].stats.as_ref(), Some(&own));
    assert_eq!(own.received, 500, "{own:#?}");
    assert_eq!(own.dropped.capacity, refused, "{own:#?}");
    assert_eq!(own.sent, 500 - refused, "{own:#?}");
    assert_balanced(&own);
    assert_eq!(collector.accepted_count() as u64, 500 - refused);
    assert_eq!(report.queued, 0, "{report:#?}");
}

/// Each emitter of a tracker has a name of its own: one added under a name already taken
/// (two unnamed emitters to one endpoint, a custom emitter named like a built-in one) is
/// renamed `#2`, `#3`, … after it, in its stats and its handle, and the first keeps its
/// name; each report is its own emitter's.
#[actix_rt::test]
async fn emitters_sharing_a_name_are_told_apart_by_a_suffix() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let other = TestCollector::with_faults(Faults::none()).await;
    let endpoint = collector.endpoint();
    let tracker = Tracker::builder("names")
        .emitter(EmitterBuilder::new(endpoint.as_str()))
        .emitter(EmitterBuilder::new(endpoint.as_str()).batch_size(3))
        .emitter(EmitterBuilder::new(other.endpoint()).name(format!("{endpoint}#2")))
        .flushed_by_hand();
    let (events, _received) = mpsc::unbounded();
    let custom = CustomEmitter::start(Collecting {
        events,
        received: 0,
    });
    tracker.add_custom_emitter(CustomEmitter::new(endpoint.as_str(), custom.recipient()));
    tracker
        .add_emitter(EmitterBuilder::new(endpoint.as_str()).method(Method::Get))
        .unwrap();
    let late = tracker
        .add_emitter(EmitterBuilder::new(endpoint.as_str()))
        .unwrap();
    track_range(&tracker, 0..2);
    tracker.flush().await.unwrap();

    let stats = tracker.stats().await.unwrap();
    let names: Vec<&str> = stats.emitters.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            endpoint.clone(),
            format!("{endpoint}#2"),
            format!("{endpoint}#2#2"),
            format!("{endpoint}#3"),
            format!("{endpoint} (GET)"),
            format!("{endpoint}#4"),
        ]
    );
    assert_eq!(late.name(), format!("{endpoint}#4"));
    let handles: Vec<String> = tracker
        .emitters()
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_eq!(
        handles,
        [0, 1, 2, 4, 5].map(|at| names[at].to_owned()),
        "the handles' names are the reports'"
    );
    // Each report is its own emitter's: the renamed third emitter sends to `other`.
    assert_eq!(other.accepted_count(), 2);
    let sent: Vec<Option<u64>> = stats
        .emitters
        .iter()
        .map(|e| e.stats.as_ref().map(|s| s.sent))
        .collect();
    assert_eq!(sent, [Some(2), Some(2), Some(2), None, Some(2), Some(2)]);
    assert_eq!(collector.accepted_count(), 8);
}
