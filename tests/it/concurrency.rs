//! `max_in_flight`: adaptive concurrency against a real collector (a slow start up to the
//! bound), FIFO with one request at a time, exactly-once delivery with several, and
//! concurrent sync flushes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::collector::{Faults, RecordedRequest, TestCollector};
use crate::common::support::{
    assert_delivered, events, flush, labels, range_labels, sorted_accepted, stats, track_all,
    wait_requests, BuilderExt,
};
use futures::future::join_all;
use futures::FutureExt as _;
use snowplow_actix::{emitter::Flush, EmitterBuilder, FlushReport, Method};

/// When each answer reached the emitter (success or failure callback), in callback order.
type Answers = Arc<Mutex<Vec<Instant>>>;

/// `builder` with callbacks recording when each answer arrived.
fn recording_answers(builder: EmitterBuilder) -> (EmitterBuilder, Answers) {
    let answers = Answers::default();
    let on_success = answers.clone();
    let on_failure = answers.clone();
    let builder = builder
        .on_success(move |_| on_success.lock().unwrap().push(Instant::now()))
        .on_failure(move |_| on_failure.lock().unwrap().push(Instant::now()));
    (builder, answers)
}

fn answers(answers: &Answers) -> Vec<Instant> {
    answers.lock().unwrap().clone()
}

/// Events carried by requests that were not accepted (each retried once per failure).
fn events_in_failed_requests(requests: &[RecordedRequest]) -> u64 {
    requests
        .iter()
        .filter(|r| !r.accepted())
        .map(|r| r.events.len() as u64)
        .sum()
}

/// Requests grouped by arrival: a new group starts after a pause longer than `gap`.
fn waves(requests: &[RecordedRequest], gap: Duration) -> Vec<usize> {
    let mut waves: Vec<usize> = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        if i == 0 || request.at - requests[i - 1].at > gap {
            waves.push(0);
        }
        *waves.last_mut().unwrap() += 1;
    }
    waves
}

#[actix_rt::test]
async fn concurrency_starts_at_one_and_doubles_per_round_trip_up_to_max_in_flight() {
    let delay = Duration::from_millis(300);
    let collector = TestCollector::with_faults(Faults::none().with_delay(delay)).await;
    let (builder, answered) = recording_answers(
        EmitterBuilder::new(collector.endpoint())
            .max_in_flight(4)
            .batch_size(5)
            .max_request_events(5),
    );
    let emitter = builder.started();
    let mut ids = track_all(&emitter, events(60));

    let report = flush(&emitter).await;

    assert_delivered(&report, 60);
    let requests = collector.requests();
    assert_eq!(requests.len(), 12);
    assert!(requests.iter().all(|r| r.events.len() == 5 && r.accepted()));
    // A slow start, one round trip a wave: 1, 2, 4, then never more than the upper bound.
    assert_eq!(waves(&requests, delay / 2), [1, 2, 4, 4, 1]);
    let first_answer = *answers(&answered).iter().min().unwrap();
    assert!(
        requests[1].at > first_answer,
        "one request before the first answer"
    );
    ids.sort();
    assert_eq!(sorted_accepted(&collector), ids);
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.requests, stats.retried), (60, 12, 0));
    assert_eq!((stats.in_flight, stats.in_flight_requests), (0, 0));
    assert_eq!(stats.concurrency_limit, 4);
}

#[actix_rt::test]
async fn with_max_in_flight_one_requests_go_one_at_a_time_and_events_arrive_in_order() {
    let collector =
        TestCollector::with_faults(Faults::none().with_delay(Duration::from_millis(10))).await;
    let (builder, answered) = recording_answers(
        EmitterBuilder::new(collector.endpoint())
            .max_in_flight(1)
            .batch_size(5)
            .max_request_events(5),
    );
    let emitter = builder.started();
    let ids = track_all(&emitter, events(60));

    let report = flush(&emitter).await;

    assert_delivered(&report, 60);
    let requests = collector.requests();
    let answered = answers(&answered);
    assert_eq!(requests.len(), 12);
    assert_eq!(answered.len(), 12);
    for i in 1..requests.len() {
        assert!(
            requests[i].at > answered[i - 1],
            "request {i} left before the answer to request {}",
            i - 1
        );
    }
    assert_eq!(labels(&collector.events()), range_labels(0..60));
    assert_eq!(collector.event_ids(), ids);
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.requests), (60, 12));
}

#[actix_rt::test]
async fn with_max_in_flight_one_events_arrive_in_order_through_retries() {
    let collector = TestCollector::with_faults(Faults::failure_rate(0.3, 7, 503)).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_in_flight(1)
        .batch_size(5)
        .max_request_events(5)
        .retrying_fast(Duration::from_millis(10))
        .started();
    let ids = track_all(&emitter, events(100));

    let report = flush(&emitter).await;

    assert_delivered(&report, 100);
    let requests = collector.requests();
    let failed = events_in_failed_requests(&requests);
    assert!(failed > 0, "the seed produces failures");
    assert_eq!(labels(&collector.events()), range_labels(0..100));
    assert_eq!(collector.event_ids(), ids);
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.retried), (100, failed));
    assert_eq!(stats.requests, requests.len() as u64);
}

#[actix_rt::test]
async fn several_requests_in_flight_deliver_every_event_exactly_once_through_failures() {
    let collector = TestCollector::with_faults(
        Faults::failure_rate(0.3, 11, 503).with_delay(Duration::from_millis(5)),
    )
    .await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_in_flight(4)
        .batch_size(5)
        .max_request_events(5)
        .retrying_fast(Duration::from_millis(10))
        .started();
    let mut ids = track_all(&emitter, events(200));

    let report = flush(&emitter).await;

    assert_delivered(&report, 200);
    assert_eq!(report.dropped.total(), 0);
    ids.sort();
    assert_eq!(sorted_accepted(&collector), ids, "each event exactly once");
    let requests = collector.requests();
    let failed = events_in_failed_requests(&requests);
    assert!(failed > 0, "the seed produces failures");
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.retried), (200, failed));
    assert_eq!(stats.requests, requests.len() as u64);
}

#[actix_rt::test]
async fn concurrent_sync_flushes_all_resolve_with_the_same_complete_report() {
    let collector =
        TestCollector::with_faults(Faults::none().with_delay(Duration::from_millis(100))).await;
    // Nothing goes out before the first flush: the batch is larger than what is tracked.
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(100)
        .started();
    track_all(&emitter, events(30));

    let reports = join_all((0..5).map(|_| emitter.send(Flush::default()))).await;

    let expected = FlushReport {
        sent: 30,
        queued: 0,
        timed_out: false,
        ..FlushReport::default()
    };
    for report in reports {
        assert_eq!(report.unwrap(), expected);
    }
    assert_eq!(collector.request_count(), 1);
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.queued), (30, 0));
}

#[actix_rt::test]
async fn concurrent_sync_flushes_interleaved_with_tracking_resolve_in_order_and_agree() {
    let collector =
        TestCollector::with_faults(Faults::none().with_delay(Duration::from_millis(20))).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(100)
        .started();
    // Track 10, flush, track 10, flush, track 10, flush: each flush covers what came before.
    let resolved = Arc::new(AtomicUsize::new(0));
    let mut flushes = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.extend(track_all(&emitter, events(10)));
        let order = resolved.clone();
        flushes.push(
            emitter
                .send(Flush::default())
                .map(move |report| (order.fetch_add(1, Ordering::SeqCst), report.unwrap())),
        );
    }

    let results = join_all(flushes).await;

    for (k, (order, report)) in results.iter().enumerate() {
        assert_eq!(*order, k, "flush {k} resolved in order: {results:?}");
        assert!(!report.timed_out, "{report:?}");
        assert_eq!(report.dropped.total(), 0);
        // Everything tracked before flush k is settled, so only later events may be left.
        let left_at_most = 30 - 10 * (k as u64 + 1);
        assert!(report.queued <= left_at_most, "flush {k}: {report:?}");
        assert!(report.sent + report.queued <= 30, "flush {k}: {report:?}");
    }
    // The first flush started with nothing sent and resolved when its 10 events were: its
    // request carried exactly those (only they were queued when it was handled).
    assert_eq!(results[0].1.sent, 10);
    assert_eq!(results[2].1.queued, 0);
    assert_eq!(collector.event_ids(), ids, "once each, in order");
    let stats = stats(&emitter).await;
    assert_eq!((stats.received, stats.sent, stats.queued), (30, 30, 0));
}

#[actix_rt::test]
async fn a_short_flush_deadline_does_not_end_a_concurrent_longer_flush() {
    let delay = Duration::from_millis(500);
    let collector = TestCollector::with_faults(Faults::none().with_delay(delay)).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(15)
        .started();
    track_all(&emitter, events(30));

    let short = emitter.send(Flush::with_timeout(delay / 10));
    let long = emitter.send(Flush::default());
    let (short, long) = futures::join!(short, long);

    let (short, long) = (short.unwrap(), long.unwrap());
    assert!(short.timed_out, "{short:?}");
    assert_eq!(
        (short.sent, short.queued),
        (0, 30),
        "no answer within its deadline"
    );
    assert!(!long.timed_out, "{long:?}");
    assert_eq!((long.sent, long.queued), (30, 0));
    assert_eq!(stats(&emitter).await.sent, 30);
}

#[actix_rt::test]
async fn get_with_max_in_flight_eight_delivers_every_event_exactly_once() {
    let delay = Duration::from_millis(200);
    let collector =
        TestCollector::with_faults(Faults::failure_rate(0.2, 3, 500).with_delay_first(8, delay))
            .await;
    let (builder, answered) = recording_answers(
        EmitterBuilder::new(collector.endpoint())
            .method(Method::Get)
            .max_in_flight(8)
            .retrying_fast(Duration::from_millis(10)),
    );
    let emitter = builder.started();
    let mut ids = track_all(&emitter, events(100));

    let report = flush(&emitter).await;

    assert_delivered(&report, 100);
    assert_eq!(report.dropped.total(), 0);
    ids.sort();
    assert_eq!(sorted_accepted(&collector), ids, "each event exactly once");
    let accepted: BTreeSet<_> = collector.event_ids().into_iter().collect();
    assert_eq!(accepted.len(), 100);
    let requests = wait_requests(&collector, 8).await;
    assert!(requests
        .iter()
        .all(|r| r.method == "GET" && r.events.len() == 1));
    // The concurrency grew from one request towards eight, and stayed within eight.
    let delayed: Vec<RecordedRequest> = requests.iter().take(8).cloned().collect();
    let grown = waves(&delayed, delay / 2);
    assert_eq!(grown[0], 1, "{grown:?}");
    assert!(grown.iter().any(|&wave| wave > 1), "{grown:?}");
    assert!(grown.iter().all(|&wave| wave <= 8), "{grown:?}");
    assert!(!answers(&answered).is_empty());
    let failed = events_in_failed_requests(&requests);
    assert!(failed > 0, "the seed produces failures");
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.retried), (100, failed));
    assert_eq!(stats.requests, requests.len() as u64);
}
