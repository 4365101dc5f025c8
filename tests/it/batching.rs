//! When an emitter sends, and how it cuts its queue into requests: the batch-size and byte
//! triggers, per-request limits as sent (POST body, GET URL), and oversize events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::collector::{Faults, RecordedRequest, TestCollector};
use crate::common::support::{
    assert_delivered, assert_settled, events, flush, flush_within, labelled, labels, range_labels,
    stats, track_all, wait_events, wait_requests, BuilderExt, SOON,
};
use snowplow_actix::{
    emitter::FailureReason,
    wire::{self, StampedEvent},
    DropReason, EmitterBuilder, Method,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// Adds an `on_success` callback sending the eids of each successful request to a channel.
fn with_success_channel(
    builder: EmitterBuilder,
) -> (EmitterBuilder, UnboundedReceiver<Vec<String>>) {
    let (tx, rx) = unbounded_channel();
    let builder = builder.on_success(move |events: &[Arc<StampedEvent>]| {
        let _ = tx.send(events.iter().map(|e| e.id().to_string()).collect());
    });
    (builder, rx)
}

async fn next_success(rx: &mut UnboundedReceiver<Vec<String>>) -> Vec<String> {
    tokio::time::timeout(SOON, rx.recv())
        .await
        .expect("a successful request in time")
        .expect("callback channel open")
}

/// The labels of each recorded request.
fn request_labels(requests: &[RecordedRequest]) -> Vec<Vec<String>> {
    requests.iter().map(|r| labels(&r.events)).collect()
}

/// Cuts events of the given POST sizes into requests as the decisions require: in order, at
/// most `batch_size` events and a body of at most `byte_limit` bytes each (a lone event
/// larger than the limit goes alone). Returns the event count of each request.
fn expected_cuts(sizes: &[usize], batch_size: usize, byte_limit: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for &size in sizes {
        let mut with = current.clone();
        with.push(size);
        if !current.is_empty()
            && (current.len() == batch_size || wire::post_body_size(with) > byte_limit)
        {
            cuts.push(current.len());
            current.clear();
        }
        current.push(size);
    }
    if !current.is_empty() {
        cuts.push(current.len());
    }
    cuts
}

#[actix_rt::test]
async fn a_full_batch_is_sent_without_a_flush_and_a_partial_one_waits_for_a_flush() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let (builder, mut successes) =
        with_success_channel(EmitterBuilder::new(collector.endpoint()).batch_size(5));
    let emitter = builder.started();
    let all = events(9);
    let ids: Vec<String> = all.iter().map(|e| e.id().to_string()).collect();
    let mut all = all.into_iter();

    track_all(&emitter, all.by_ref().take(5).collect());

    // No flush was sent: the fifth event triggered the request.
    let received = wait_events(&collector, 5).await;
    assert_eq!(labels(&received), range_labels(0..5));
    assert_eq!(next_success(&mut successes).await, ids[..5]);
    let settled = stats(&emitter).await;
    assert_eq!(
        (
            settled.received,
            settled.sent,
            settled.queued,
            settled.requests
        ),
        (5, 5, 0, 1)
    );

    track_all(&emitter, all.collect());

    // Four events are below the batch size: they wait (stats are answered after the tracks).
    let waiting = stats(&emitter).await;
    assert_eq!(
        (
            waiting.received,
            waiting.sent,
            waiting.queued,
            waiting.in_flight,
            waiting.requests
        ),
        (9, 5, 4, 0, 1)
    );
    assert_eq!(collector.request_count(), 1);

    let report = flush(&emitter).await;

    assert_delivered(&report, 4);
    assert_eq!(next_success(&mut successes).await, ids[5..]);
    let requests = collector.requests();
    assert_eq!(
        request_labels(&requests),
        [range_labels(0..5), range_labels(5..9)]
    );
    assert_eq!(collector.event_ids(), ids);
    let done = stats(&emitter).await;
    assert_eq!((done.sent, done.queued, done.requests), (9, 0, 2));
}

#[actix_rt::test]
async fn reaching_the_byte_limit_sends_without_a_flush() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let all = events(5);
    let sizes: Vec<usize> = all.iter().map(|e| e.post_size()).collect();
    // Exactly three events fit in one request.
    let byte_limit = wire::post_body_size(sizes[..3].iter().copied());
    assert!(wire::post_body_size(sizes[..4].iter().copied()) > byte_limit);
    let (builder, mut successes) = with_success_channel(
        EmitterBuilder::new(collector.endpoint())
            .batch_size(100)
            .byte_limit(byte_limit),
    );
    let emitter = builder.started();
    let ids: Vec<String> = all.iter().map(|e| e.id().to_string()).collect();
    let mut all = all.into_iter();

    // Three queued events are fewer bytes than the limit (the envelope is not queued).
    track_all(&emitter, all.by_ref().take(3).collect());
    let below = stats(&emitter).await;
    assert_eq!((below.queued, below.requests), (3, 0));
    assert!(below.queued_bytes < byte_limit as u64, "{below:#?}");

    // The fourth reaches it: a request of the three that fit goes out, no flush sent.
    track_all(&emitter, all.by_ref().take(1).collect());
    assert_eq!(next_success(&mut successes).await, ids[..3]);
    let requests = wait_requests(&collector, 1).await;
    assert_eq!(request_labels(&requests[..1]), [range_labels(0..3)]);
    assert_eq!(requests[0].body_len_or_query_len, byte_limit);

    track_all(&emitter, all.collect());
    let report = flush(&emitter).await;

    assert_settled(&report);
    let requests = collector.requests();
    assert_eq!(request_labels(&requests[..1]), [range_labels(0..3)]);
    for request in &requests {
        assert!(request.body_len_or_query_len <= byte_limit);
    }
    assert_eq!(collector.event_ids(), ids);
    assert_eq!(stats(&emitter).await.sent, 5);
}

/// decisions.md: "A flush is triggered when [...] the buffered bytes reach `byte_limit`";
/// "A flush sends the buffer as several requests". So the event that did not fit in the
/// first request goes in a second one, without waiting for a later trigger or flush.
#[actix_rt::test]
async fn reaching_the_byte_limit_sends_the_whole_buffer_without_a_flush() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let all = events(4);
    let sizes: Vec<usize> = all.iter().map(|e| e.post_size()).collect();
    // Exactly three events fit in one request.
    let byte_limit = wire::post_body_size(sizes[..3].iter().copied());
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(100)
        .byte_limit(byte_limit)
        .started();
    let mut all = all.into_iter();
    let mut ids = track_all(&emitter, all.by_ref().take(3).collect());
    assert_eq!(stats(&emitter).await.requests, 0, "below the byte limit");

    // The fourth event reaches the limit: the buffer (four events) is flushed.
    ids.extend(track_all(&emitter, all.collect()));

    let received = wait_events(&collector, 4).await;
    assert_eq!(labels(&received), range_labels(0..4));
    assert_eq!(
        request_labels(&collector.requests()),
        [range_labels(0..3), range_labels(3..4)]
    );
    assert_eq!(collector.event_ids(), ids);
    // The second request may still await its answer: the flush settles it.
    let report = flush(&emitter).await;
    assert_eq!(report.queued, 0);
    assert_eq!(stats(&emitter).await.sent, 4);
}

/// With GET, one request per event: a batch-size trigger flushes the buffer, so every
/// event of the full batch goes, not only the first.
#[actix_rt::test]
async fn get_batch_size_trigger_sends_every_event_of_the_batch_without_a_flush() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .method(Method::Get)
        .batch_size(3)
        .started();
    let all = events(5);
    let ids: Vec<String> = all.iter().map(|e| e.id().to_string()).collect();
    let mut all = all.into_iter();

    track_all(&emitter, all.by_ref().take(2).collect());
    let below = stats(&emitter).await;
    assert_eq!(
        (below.queued, below.requests),
        (2, 0),
        "below the batch size"
    );
    track_all(&emitter, all.by_ref().take(1).collect());

    let received = wait_events(&collector, 3).await;
    assert_eq!(labels(&received), range_labels(0..3));
    assert_eq!(collector.request_count(), 3);

    // Two more wait for the next trigger or a flush.
    track_all(&emitter, all.collect());
    let report = flush(&emitter).await;
    assert_settled(&report);
    // The last two go in requests that may be in flight together: any order.
    assert_eq!(
        crate::common::support::sorted(collector.event_ids()),
        crate::common::support::sorted(ids)
    );
    assert_eq!(stats(&emitter).await.requests, 5);
}

#[actix_rt::test]
async fn a_flush_cuts_requests_by_batch_size_and_by_bytes_as_sent() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    // Multi-byte characters and JSON escapes: sizes are UTF-8 bytes as sent, not characters.
    let large = [
        "x".repeat(400),
        "é".repeat(200),
        "日本".repeat(70),
        "🦀".repeat(50),
        "\"\\\n".repeat(60),
    ];
    let names: Vec<String> = [
        0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 4, 5, 0, 0, 0,
    ]
    .iter()
    .enumerate()
    .map(|(idx, &kind)| match kind {
        0 => format!("{idx:02}"),
        kind => format!("{idx:02}{}", large[kind - 1]),
    })
    .collect();
    let all = labelled(&names);
    let sizes: Vec<usize> = all.iter().map(|e| e.post_size()).collect();
    let batch_size = 4;
    // Five small events would fit by bytes: small ones are cut by count, large ones by bytes.
    let byte_limit = wire::post_body_size(std::iter::repeat_n(sizes[0], 5));
    let cuts = expected_cuts(&sizes, batch_size, byte_limit);
    assert!(sizes
        .iter()
        .all(|&size| wire::post_body_size([size]) <= byte_limit));
    assert!(cuts.contains(&batch_size), "a cut by count: {cuts:?}");
    assert!(
        cuts[..cuts.len() - 1].iter().any(|&len| len < batch_size),
        "a cut by bytes before the last: {cuts:?}"
    );
    // One request at a time, at most one batch each: the cuts are exactly predictable.
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(batch_size)
        .max_request_events(batch_size)
        .max_in_flight(1)
        .byte_limit(byte_limit)
        .started();
    let ids = track_all(&emitter, all);

    let report = flush(&emitter).await;

    assert_delivered(&report, 24);
    let requests = collector.requests();
    assert_eq!(
        requests.iter().map(|r| r.events.len()).collect::<Vec<_>>(),
        cuts
    );
    assert_eq!(labels(&collector.events()), names, "received as sent");
    let mut offset = 0;
    for request in &requests {
        assert!(request.valid, "{:?}", request.error);
        assert!(request.events.len() <= batch_size);
        assert!(
            request.body_len_or_query_len <= byte_limit,
            "request #{} is {} bytes, limit {byte_limit}",
            request.index,
            request.body_len_or_query_len
        );
        let its_sizes = &sizes[offset..offset + request.events.len()];
        assert_eq!(
            request.body_len_or_query_len,
            wire::post_body_size(its_sizes.iter().copied()),
            "request #{} size as computed",
            request.index
        );
        offset += request.events.len();
    }
    assert_eq!(collector.event_ids(), ids);
    let stats = stats(&emitter).await;
    assert_eq!(
        (stats.sent, stats.requests, stats.queued),
        (24, cuts.len() as u64, 0)
    );
}

#[actix_rt::test]
async fn get_byte_limit_bounds_the_whole_request_url() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let endpoint = format!("{}/sub", collector.endpoint());
    let at_limit = "a".repeat(50);
    let over_limit = "b".repeat(51);
    let small = "c".to_owned();
    let all = labelled(&[&at_limit, &over_limit, &small]);
    // The whole URL: `http://127.0.0.1:PORT/sub/i?` and the query with `stm`.
    let url_len = |event: &StampedEvent| endpoint.len() + "/i?".len() + event.query_size();
    let byte_limit = url_len(&all[0]);
    assert_eq!(url_len(&all[1]), byte_limit + 1);
    let small_url_len = url_len(&all[2]);
    assert!(small_url_len < byte_limit);
    // The event exactly at the limit fails once and is retried; the one a byte over is
    // retried too after a 500 (a large event is retried like any other) and dropped as
    // `oversize` once the collector refuses it for its size (414); the small one is
    // accepted.
    let failed_once = Arc::new(Mutex::new(false));
    let over_failed = Arc::new(Mutex::new(false));
    let decider_at_limit = at_limit.clone();
    let decider_over_limit = over_limit.clone();
    let faults = Faults::decide(move |request| {
        let label = request.events.first()?.get("se_la")?;
        if label == decider_over_limit {
            let mut failed = over_failed.lock().unwrap();
            let first = !*failed;
            *failed = true;
            Some(if first { 500 } else { 414 })
        } else if label == decider_at_limit {
            let mut failed = failed_once.lock().unwrap();
            let first = !*failed;
            *failed = true;
            first.then_some(500)
        } else {
            None
        }
    });
    collector.set_faults(faults);
    // One request at a time: the order of the requests below is fixed.
    let emitter = EmitterBuilder::new(&endpoint)
        .method(Method::Get)
        .max_in_flight(1)
        .byte_limit(byte_limit)
        .retrying_fast(Duration::from_millis(50))
        .started();
    let ids = track_all(&emitter, all);

    let report = flush(&emitter).await;

    assert_delivered(&report, 2);
    assert_eq!(report.dropped.oversize, 1);
    let requests = collector.requests();
    let seen: Vec<(String, u16)> = requests
        .iter()
        .map(|r| (labels(&r.events).concat(), r.status))
        .collect();
    assert_eq!(
        seen,
        [
            (at_limit.clone(), 500),
            (at_limit.clone(), 200),
            (over_limit.clone(), 500),
            (over_limit.clone(), 414),
            (small.clone(), 200),
        ]
    );
    // As received: scheme and authority, then the target (path and query).
    let sent_len: Vec<usize> = requests
        .iter()
        .map(|r| collector.endpoint().len() + r.target_len())
        .collect();
    assert_eq!(
        sent_len[..4],
        [byte_limit, byte_limit, byte_limit + 1, byte_limit + 1]
    );
    assert_eq!(sent_len[4], small_url_len);
    for request in &requests {
        assert_eq!(request.path, "/sub/i");
    }
    assert_eq!(collector.event_ids(), [ids[0].clone(), ids[2].clone()]);
    let stats = stats(&emitter).await;
    assert_eq!(
        (
            stats.sent,
            stats.dropped.oversize,
            stats.retried,
            stats.requests
        ),
        (2, 1, 2, 5)
    );
}

#[actix_rt::test]
async fn an_event_over_the_cap_goes_alone_is_retried_and_dropped_only_when_refused_for_its_size() {
    let big = "x".repeat(2_000);
    let names = ["0", "1", big.as_str(), "3", "4"];
    let all = labelled(&names);
    let sizes: Vec<usize> = all.iter().map(|e| e.post_size()).collect();
    let byte_limit = wire::post_body_size([sizes[0]; 3]);
    assert!(wire::post_body_size([sizes[2]]) > byte_limit);
    // The large event is answered 500 (retried), then 413 (dropped as `oversize`).
    let decider_big = big.clone();
    let big_failed = Arc::new(Mutex::new(false));
    let collector = TestCollector::with_faults(Faults::decide(move |request| {
        let has_big = request
            .events
            .iter()
            .any(|e| e.get("se_la") == Some(decider_big.as_str()));
        has_big.then(|| {
            let mut failed = big_failed.lock().unwrap();
            let first = !*failed;
            *failed = true;
            if first {
                500
            } else {
                413
            }
        })
    }))
    .await;
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = failures.clone();
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(10)
        .max_in_flight(1)
        .byte_limit(byte_limit)
        .retrying_fast(Duration::from_millis(50))
        .on_failure(move |failure| {
            seen.lock().unwrap().push((
                failure
                    .events
                    .iter()
                    .map(|e| e.id().to_string())
                    .collect::<Vec<_>>(),
                failure.reason.clone(),
                failure.will_retry,
                failure.dropped,
            ));
        })
        .started();
    let ids = track_all(&emitter, all);

    let report = flush_within(&emitter, Duration::from_secs(5)).await;

    assert_delivered(&report, 4);
    assert_eq!((report.dropped.oversize, report.dropped.total()), (1, 1));
    let requests = collector.requests();
    assert_eq!(
        request_labels(&requests),
        [
            vec!["0".to_owned(), "1".to_owned()],
            vec![big.clone()],
            vec![big.clone()],
            vec!["3".to_owned(), "4".to_owned()],
        ]
    );
    assert_eq!(collector.statuses(), [200, 500, 413, 200]);
    assert!(requests[1].body_len_or_query_len > byte_limit);
    assert!(requests[0].body_len_or_query_len <= byte_limit);
    assert!(requests[3].body_len_or_query_len <= byte_limit);
    assert_eq!(
        collector.event_ids(),
        [
            ids[0].clone(),
            ids[1].clone(),
            ids[3].clone(),
            ids[4].clone()
        ]
    );
    assert_eq!(
        *failures.lock().unwrap(),
        [
            (vec![ids[2].clone()], FailureReason::Status(500), true, None),
            (
                vec![ids[2].clone()],
                FailureReason::Status(413),
                false,
                Some(DropReason::Oversize)
            )
        ]
    );
    let stats = stats(&emitter).await;
    assert_eq!(
        (
            stats.sent,
            stats.dropped.oversize,
            stats.retried,
            stats.requests
        ),
        (4, 1, 1, 4)
    );
}

#[actix_rt::test]
async fn an_oversize_event_that_is_accepted_is_sent_alone_once() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let big = "y".repeat(2_000);
    let names = ["0", big.as_str(), "2"];
    let all = labelled(&names);
    let byte_limit = wire::post_body_size([all[0].post_size(); 3]);
    let emitter = EmitterBuilder::new(collector.endpoint())
        .byte_limit(byte_limit)
        .started();
    let ids = track_all(&emitter, all);

    let report = flush(&emitter).await;

    assert_delivered(&report, 3);
    assert_eq!(
        request_labels(&collector.requests()),
        [
            vec!["0".to_owned()],
            vec![big.clone()],
            vec!["2".to_owned()]
        ]
    );
    assert_eq!(collector.event_ids(), ids);
    let stats = stats(&emitter).await;
    assert_eq!(
        (stats.sent, stats.dropped.total(), stats.requests),
        (3, 0, 3)
    );
}

#[actix_rt::test]
async fn a_post_body_exactly_at_the_byte_limit_is_not_oversize() {
    let at_limit = "a".repeat(50);
    let over_limit = "b".repeat(51);
    let all = labelled(&[&at_limit, &over_limit]);
    let byte_limit = wire::post_body_size([all[0].post_size()]);
    assert_eq!(wire::post_body_size([all[1].post_size()]), byte_limit + 1);
    // The event at the limit fails once (retried), the one a byte over goes alone and is
    // refused for its size (413: oversize, never retried).
    let failed_once = Arc::new(Mutex::new(false));
    let decider_at_limit = at_limit.clone();
    let decider_over_limit = over_limit.clone();
    let collector = TestCollector::with_faults(Faults::decide(move |request| {
        let label = request.events.first()?.get("se_la")?;
        if label == decider_over_limit {
            Some(413)
        } else if label == decider_at_limit {
            let mut failed = failed_once.lock().unwrap();
            let first = !*failed;
            *failed = true;
            first.then_some(500)
        } else {
            None
        }
    }))
    .await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_in_flight(1)
        .byte_limit(byte_limit)
        .retrying_fast(Duration::from_millis(50))
        .started();
    let ids = track_all(&emitter, all);

    let report = flush_within(&emitter, Duration::from_secs(5)).await;

    assert_delivered(&report, 1);
    assert_eq!((report.dropped.oversize, report.dropped.total()), (1, 1));
    let requests = collector.requests();
    let seen: Vec<(String, u16, usize)> = requests
        .iter()
        .map(|r| {
            (
                labels(&r.events).concat(),
                r.status,
                r.body_len_or_query_len,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (at_limit.clone(), 500, byte_limit),
            (at_limit.clone(), 200, byte_limit),
            (over_limit.clone(), 413, byte_limit + 1),
        ]
    );
    assert_eq!(collector.event_ids(), ids[..1]);
    let stats = stats(&emitter).await;
    assert_eq!(
        (
            stats.sent,
            stats.retried,
            stats.dropped.oversize,
            stats.requests
        ),
        (1, 1, 1, 3)
    );
}
