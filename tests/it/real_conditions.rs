//! Delivery where users run it, against a real collector on 127.0.0.1 with the library's
//! defaults: latency, body limits, `Retry-After`, an outage, and events that can never be
//! sent. (The same rules run exactly, on a simulated clock, in the delivery core's tests.)

use std::time::{Duration, Instant};

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{
    assert_delivered, assert_settled, events, flush, labels, settings, sorted, sorted_accepted,
    stats, track_all, wait_requests, BuilderExt,
};
use snowplow_actix::{
    emitter::{Track, DEFAULT_MAX_IN_FLIGHT},
    BuildError, EmitterBuilder, Method, Structured,
};

#[actix_rt::test]
async fn a_collector_100_ms_away_gets_a_backlog_in_few_large_requests() {
    let delay = Duration::from_millis(100);
    let collector = TestCollector::with_faults(Faults::none().with_delay(delay)).await;
    let emitter = EmitterBuilder::new(collector.endpoint()).started();
    let ids = track_all(&emitter, events(3_000));

    let report = flush(&emitter).await;

    assert_settled(&report);
    assert_eq!(sorted_accepted(&collector), sorted(ids), "each event once");
    let requests = collector.requests();
    // Batches of 10 at one request a round trip would take 300 round trips (30 s).
    assert!(requests.len() < 40, "{} requests", requests.len());
    assert!(requests.iter().any(|r| r.events.len() > 100));
    let stats = stats(&emitter).await;
    assert_eq!(stats.sent, 3_000);
    assert!((1..=DEFAULT_MAX_IN_FLIGHT as u64).contains(&stats.concurrency_limit));
}

#[actix_rt::test]
async fn a_collector_refusing_large_bodies_gets_everything_in_smaller_requests() {
    let max_body = 20_000;
    let collector = TestCollector::with_faults(Faults::max_body(max_body)).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(1_000)
        .started();
    let ids = track_all(&emitter, events(1_000));

    let report = flush(&emitter).await;

    assert_delivered(&report, 1_000);
    assert_eq!(report.dropped.total(), 0);
    assert_eq!(sorted_accepted(&collector), sorted(ids));
    let requests = collector.requests();
    let refused: Vec<_> = requests.iter().filter(|r| r.status == 413).collect();
    assert!(!refused.is_empty(), "the first request is over the limit");
    assert!(refused.iter().all(|r| r.body_len_or_query_len > max_body));
    let stats = stats(&emitter).await;
    assert!(stats.request_bytes_cap <= max_body as u64, "{stats:?}");
    assert_eq!(stats.retried, 0, "a split is not a failed attempt");
    // Once learnt, every request fits.
    let last_refused = requests.iter().rposition(|r| r.status == 413).unwrap();
    assert!(requests[last_refused + 1..]
        .iter()
        .all(|r| r.status == 200 && r.body_len_or_query_len <= max_body));
}

#[actix_rt::test]
async fn retry_after_holds_the_emitter_until_it_passes() {
    let collector =
        TestCollector::with_faults(Faults::fail_first(1, 503).with_retry_after("1")).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(2)
        .started();
    let mut all = events(6).into_iter();
    track_all(&emitter, all.by_ref().take(2).collect());
    wait_requests(&collector, 1).await;
    // More full batches and a flush while held: nothing goes before the second.
    track_all(&emitter, all.collect());

    let report = flush(&emitter).await;

    assert_settled(&report);
    assert_eq!(stats(&emitter).await.sent, 6);
    let requests = collector.requests();
    let held = requests[1].at.duration_since(requests[0].at);
    assert!(held >= Duration::from_secs(1), "held {held:?}");
    assert!(held < Duration::from_secs(5), "held {held:?}");
}

#[actix_rt::test]
async fn an_outage_is_braked_to_a_few_requests_and_loses_nothing() {
    let down = Duration::from_secs(1);
    let collector = TestCollector::with_faults(Faults::down_for(down)).await;
    let started = Instant::now();
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_retry_delay(Duration::from_millis(500))
        .started();
    // 2,000 events over 1.5 s: batches keep coming while the collector is down.
    let mut ids = Vec::new();
    let mut ticks = actix_rt::time::interval(Duration::from_millis(15));
    for _ in 0..100 {
        ticks.tick().await;
        ids.extend(track_all(&emitter, events(20)));
    }

    let report = flush(&emitter).await;

    assert_settled(&report);
    assert_eq!(sorted_accepted(&collector), sorted(ids));
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.dropped.total()), (2_000, 0));
    assert!(!stats.braked);
    let while_down = collector
        .requests()
        .iter()
        .filter(|r| r.at.duration_since(started) < down)
        .count();
    // Unbraked, a batch of 10 every 7.5 ms would make over a hundred.
    assert!(while_down < 60, "{while_down} requests while down");
}

#[actix_rt::test]
async fn a_get_whose_url_cannot_be_built_is_dropped_as_oversize_and_the_emitter_goes_on() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .method(Method::Get)
        .started();
    // A 70 KB label: the URL is over what awc (the http crate) can carry.
    let settings = settings();
    let huge = Structured::new("test", "event")
        .unwrap()
        .label("x".repeat(70_000));
    for event in settings.stamp(huge).expect("a valid event") {
        emitter.do_send(Track::from(event));
    }
    let after = track_all(&emitter, events(3));

    let report = flush(&emitter).await;

    assert_settled(&report);
    let stats = stats(&emitter).await;
    assert_eq!((stats.sent, stats.dropped.oversize), (3, 1), "{stats:?}");
    assert_eq!(stats.requests, 4, "never retried");
    assert_eq!(sorted_accepted(&collector), sorted(after));
    assert!(labels(&collector.events()).iter().all(|l| l.len() < 10));
}

#[test]
fn an_endpoint_that_is_not_a_uri_is_a_build_error() {
    let error = EmitterBuilder::new("http://127.0.0.1:1/späti")
        .build()
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(error, BuildError::InvalidEndpoint { .. }),
        "{error:?}"
    );
}

#[test]
fn request_caps_are_validated() {
    let build = |builder: EmitterBuilder| builder.build().map(|_| ()).unwrap_err();
    let new = || EmitterBuilder::new("http://127.0.0.1:1");
    assert_eq!(
        build(new().max_request_events(0)),
        BuildError::Zero("max_request_events")
    );
    assert_eq!(
        build(new().max_request_bytes(0)),
        BuildError::Zero("max_request_bytes")
    );
    assert_eq!(
        build(new().max_request_bytes(10)),
        BuildError::RequestCapTooSmall {
            bytes: 10,
            min: snowplow_actix::emitter::MIN_REQUEST_BYTES
        }
    );
    assert_eq!(
        build(new().byte_limit(20)),
        BuildError::RequestCapTooSmall {
            bytes: 20,
            min: snowplow_actix::emitter::MIN_REQUEST_BYTES
        }
    );
    // GET has no body: a small byte limit is only a trigger there.
    assert!(new().method(Method::Get).byte_limit(20).build().is_ok());
}
