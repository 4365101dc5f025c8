//! Bad input never panics and loses nothing already accepted, as a table of cases:
//! endpoints that cannot be a collector are typed build errors; collectors that answer
//! garbage, cut their answer or never answer are failures, retried, with the events kept;
//! events above the byte limit go alone, once; callbacks that panic are counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::collector::{Faults, RawBehaviour, RawCollector, RecordedEvent, TestCollector};
use crate::common::support::{
    events, flush, labels, record_failures, stats, track_all, BuilderExt, Failures, Seen,
    TrackerBuilderExt,
};
use snowplow_actix::transport::TransportError;
use snowplow_actix::{
    emitter::{FailureReason, Flush, Protocol, Track},
    AddEmitterError, BuildError, DropReason, EmitterBuilder, Event as _, EventError, Method,
    Structured, Subject, TrackError, Tracker,
};

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

/// The error for `endpoint`: where its first whitespace or control character is.
fn whitespace(endpoint: &str) -> BuildError {
    let (at, _) = endpoint
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
        .unwrap();
    BuildError::EndpointWhitespace { at }
}

/// The error for an invalid endpoint: the reason, never the endpoint.
fn invalid(_endpoint: &str, reason: &'static str) -> BuildError {
    BuildError::InvalidEndpoint { reason }
}

/// Each endpoint and the exact error building an emitter for it gives.
fn bad_endpoints() -> Vec<(&'static str, BuildError)> {
    vec![
        ("", BuildError::EmptyEndpoint),
        (" ", whitespace(" ")),
        (
            "http://127.0.0.1:9090\r\n",
            whitespace("http://127.0.0.1:9090\r\n"),
        ),
        (
            "collector.example.com\r\nX-Injected: 1",
            whitespace("collector.example.com\r\nX-Injected: 1"),
        ),
        ("host\n", whitespace("host\n")),
        ("\thost", whitespace("\thost")),
        ("http://host name", whitespace("http://host name")),
        (
            "https://host/with space/",
            whitespace("https://host/with space/"),
        ),
        (" https://host", whitespace(" https://host")),
        ("host\u{0}", whitespace("host\u{0}")),
        ("host\u{7f}", whitespace("host\u{7f}")),
        ("host\u{a0}", whitespace("host\u{a0}")),
        ("ftp://host", BuildError::UnsupportedScheme("ftp".into())),
        ("ws://host", BuildError::UnsupportedScheme("ws".into())),
        (
            "file:///etc/passwd",
            BuildError::UnsupportedScheme("file".into()),
        ),
        ("://host", BuildError::UnsupportedScheme("".into())),
        ("http://", invalid("http://", "missing host")),
        ("https:///path", invalid("https:///path", "missing host")),
        ("http://:80", invalid("http://:80", "missing host")),
        ("host:", invalid("host:", "invalid port")),
        ("host:65536", invalid("host:65536", "invalid port")),
        ("host:-1", invalid("host:-1", "invalid port")),
        ("mailto:a", invalid("mailto:a", "invalid port")),
        ("host:0", invalid("host:0", "port 0")),
        (
            "http://host/?q=1",
            invalid("http://host/?q=1", "a query or fragment is not allowed"),
        ),
        (
            "http://host#top",
            invalid("http://host#top", "a query or fragment is not allowed"),
        ),
        (
            "http://user:pw@host",
            invalid(
                "http://user:pw@host",
                "credentials in the endpoint are not supported",
            ),
        ),
        ("ho%st", invalid("ho%st", "invalid host")),
        ("[::1", invalid("[::1", "invalid host")),
        (
            "http://[zz::1]:80",
            invalid("http://[zz::1]:80", "invalid host"),
        ),
        ("host\u{200b}", invalid("host\u{200b}", "invalid host")),
        (
            "https://c.example/com.snowplowanalytics.snowplow/tp2",
            BuildError::EndpointHasCollectorPath {
                path: snowplow_actix::wire::POST_PATH,
            },
        ),
        (
            "http://127.0.0.1:9090/I/",
            BuildError::EndpointHasCollectorPath {
                path: snowplow_actix::wire::GET_PATH,
            },
        ),
    ]
}

#[test]
fn endpoints_that_cannot_be_a_collector_are_exact_build_errors() {
    for (endpoint, expected) in bad_endpoints() {
        for method in [Method::Post, Method::Get] {
            for protocol in [Protocol::Http, Protocol::Https] {
                let error = EmitterBuilder::new(endpoint)
                    .method(method)
                    .protocol(protocol)
                    .build()
                    .map(|config| config.url().to_owned())
                    .unwrap_err();
                assert_eq!(error, expected, "{endpoint:?} {method:?} {protocol:?}");
            }
        }
    }
}

#[actix_rt::test]
async fn a_tracker_refuses_bad_endpoints_at_build_and_when_adding_an_emitter() {
    for (endpoint, expected) in bad_endpoints() {
        let error = Tracker::builder("test")
            .emitter(EmitterBuilder::new("http://127.0.0.1:9"))
            .emitter(EmitterBuilder::new(endpoint))
            .no_flush_timer()
            .build()
            .unwrap_err();
        assert_eq!(error, expected, "{endpoint:?}");
    }
    let tracker = Tracker::builder("test")
        .emitter(EmitterBuilder::new("http://127.0.0.1:9"))
        .flushed_by_hand();
    for (endpoint, expected) in bad_endpoints() {
        let error = tracker
            .add_emitter(EmitterBuilder::new(endpoint))
            .unwrap_err();
        assert_eq!(error, AddEmitterError::Build(expected), "{endpoint:?}");
    }
    assert_eq!(tracker.emitters().len(), 1);
    tracker.shutdown(Duration::from_millis(10)).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Broken collectors
// ---------------------------------------------------------------------------------------------

/// The request timeout where a collector never answers.
const TIMEOUT: Duration = Duration::from_millis(150);

/// Whether a failure reason is of the expected kind.
type Classifier = fn(&FailureReason) -> bool;

/// An emitter retrying quickly (10 ms jitter, 20 ms cap) that reports every failure.
fn reporting_emitter(
    endpoint: String,
    method: Method,
) -> (actix::Addr<snowplow_actix::emitter::Emitter>, Failures) {
    // One request at a time: the failures come request by request, in order.
    let (builder, failures) = record_failures(
        EmitterBuilder::new(endpoint)
            .method(method)
            .max_in_flight(1)
            .request_timeout(TIMEOUT)
            .retrying_fast(Duration::from_millis(20)),
    );
    (builder.started(), failures)
}

/// A collector on the port `raw` listened on, once it is free again.
async fn collector_replacing(raw: RawCollector) -> TestCollector {
    let addr = raw.addr();
    raw.stop();
    drop(raw);
    // The aborted listener task releases its socket when the runtime next polls it.
    for _ in 0..1_000 {
        if let Ok(listener) = std::net::TcpListener::bind(addr) {
            drop(listener);
            return TestCollector::start_at(Faults::none(), addr).await;
        }
        actix_rt::task::yield_now().await;
    }
    panic!("{addr} not released");
}

#[actix_rt::test]
async fn broken_collectors_are_reported_failures_and_the_events_are_delivered_later() {
    let table: [(RawBehaviour, Classifier); 4] = [
        (RawBehaviour::Garbage, |r| {
            matches!(r, FailureReason::Transport(TransportError::Connection(_)))
        }),
        (RawBehaviour::CloseMidHead, |r| {
            matches!(r, FailureReason::Transport(TransportError::Connection(_)))
        }),
        (RawBehaviour::Reset, |r| {
            matches!(r, FailureReason::Transport(TransportError::Connection(_)))
        }),
        (RawBehaviour::NeverAnswer, |r| {
            *r == FailureReason::Transport(TransportError::Timeout)
        }),
    ];
    for (behaviour, expected) in table {
        for method in [Method::Post, Method::Get] {
            let case = format!("{behaviour:?} {method:?}");
            let raw = RawCollector::start(behaviour).await;
            let (emitter, mut failures) = reporting_emitter(raw.endpoint(), method);
            let ids = track_all(&emitter, events(2));
            emitter.do_send(Flush::default());

            // Two failed attempts of the first request: classified, retried, the same events.
            for _ in 0..2 {
                let Seen {
                    reason,
                    will_retry,
                    dropped,
                    eids,
                    ..
                } = failures.next().await;
                assert!(expected(&reason), "{case}: {reason:?}");
                assert_eq!((will_retry, dropped), (true, None), "{case}");
                let first = match method {
                    Method::Post => &ids[..],
                    Method::Get => &ids[..1],
                };
                assert_eq!(eids, first, "{case}");
            }
            let kept = stats(&emitter).await;
            assert_eq!((kept.received, kept.sent), (2, 0), "{case}");
            assert_eq!(kept.dropped.total(), 0, "{case}: {kept:#?}");
            assert_eq!(kept.queued + kept.in_flight, 2, "{case}");

            // The collector is fixed: everything is delivered, once.
            let collector = collector_replacing(raw).await;
            let report = flush(&emitter).await;
            assert_eq!(
                (report.sent, report.queued, report.timed_out),
                (2, 0, false),
                "{case}"
            );
            assert_eq!(collector.event_ids(), ids, "{case}");
            let done = stats(&emitter).await;
            assert_eq!(
                (
                    done.received,
                    done.sent,
                    done.dropped.total(),
                    done.restarts
                ),
                (2, 2, 0, 0),
                "{case}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events above the byte limit
// ---------------------------------------------------------------------------------------------

const BYTE_LIMIT: usize = 1_000;
/// A label that makes an event alone exceed [`BYTE_LIMIT`].
const BIG: usize = 2 * BYTE_LIMIT;

fn labelled(labels: &[String]) -> Vec<Track> {
    crate::common::support::labelled(labels)
        .into_iter()
        .map(Track::from)
        .collect()
}

fn is_big(event: &RecordedEvent) -> bool {
    event.get("se_la").is_some_and(|label| label.len() == BIG)
}

#[actix_rt::test]
async fn an_event_above_the_byte_limit_is_sent_alone_and_settled_by_its_answer() {
    // For each method, the first request carrying the large event is answered: 200 (sent),
    // 500 (retried like any other, then accepted), 413 (refused for its size: dropped as
    // `oversize`) or 400 (rejected like any other).
    for method in [Method::Post, Method::Get] {
        for status in [200u16, 500, 413, 400] {
            let case = format!("{method:?} answered {status}");
            let answered = Arc::new(Mutex::new(false));
            let collector = TestCollector::with_faults(Faults::decide(move |request| {
                if !request.events.iter().any(is_big) {
                    return None;
                }
                let mut answered = answered.lock().unwrap();
                let first = !*answered;
                *answered = true;
                first.then_some(status)
            }))
            .await;
            let (builder, mut failures) = record_failures(
                EmitterBuilder::new(collector.endpoint())
                    .method(method)
                    .batch_size(10)
                    .byte_limit(BYTE_LIMIT)
                    .retrying_fast(Duration::from_millis(20)),
            );
            let emitter = builder.started();
            let names: Vec<String> = vec!["0".into(), "1".into(), "x".repeat(BIG), "3".into()];
            let tracks = labelled(&names);
            let big_id = tracks[2].event().id().to_string();
            for track in tracks {
                emitter.do_send(track);
            }

            let report = flush(&emitter).await;

            let requests = collector.requests();
            let carrying_big: Vec<_> = requests
                .iter()
                .filter(|r| r.events.iter().any(is_big))
                .collect();
            let attempts = if status == 500 { 2 } else { 1 };
            assert_eq!(carrying_big.len(), attempts, "{case}");
            assert!(
                carrying_big.iter().all(|r| r.events.len() == 1),
                "{case}: alone"
            );
            assert!(carrying_big[0].body_len_or_query_len > BYTE_LIMIT, "{case}");
            for request in requests.iter().filter(|r| !r.events.iter().any(is_big)) {
                let size = match method {
                    Method::Post => request.body_len_or_query_len,
                    Method::Get => collector.get_url().len() + 1 + request.raw.len(),
                };
                assert!(size <= BYTE_LIMIT, "{case}: {size} bytes");
            }
            let (dropped_as, will_retry) = match status {
                413 => (Some(DropReason::Oversize), false),
                400 => (Some(DropReason::Rejected), false),
                _ => (None, true),
            };
            let lost = u64::from(dropped_as.is_some());
            assert_eq!(
                (
                    report.sent,
                    report.dropped.total(),
                    report.queued,
                    report.timed_out
                ),
                (4 - lost, lost, 0, false),
                "{case}"
            );
            if let Some(reason) = dropped_as {
                assert_eq!(report.dropped.get(reason), 1, "{case}");
            }
            assert_eq!(collector.events().len() as u64, 4 - lost, "{case}");
            if status != 200 {
                let failure = failures.next().await;
                assert_eq!(
                    (
                        failure.reason,
                        failure.will_retry,
                        failure.dropped,
                        failure.eids
                    ),
                    (
                        FailureReason::Status(status),
                        will_retry,
                        dropped_as,
                        vec![big_id]
                    ),
                    "{case}"
                );
            }
            let more = failures.reported();
            assert!(more.is_empty(), "{case}: one failure at most: {more:?}");
            let stats = stats(&emitter).await;
            assert_eq!(
                (stats.received, stats.sent, stats.retried),
                (4, 4 - lost, u64::from(status == 500)),
                "{case}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Panicking callbacks, hostile values
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn callbacks_that_panic_are_counted_and_nothing_is_lost() {
    // Batches of 4: the first fails twice then passes, the second is rejected, the third
    // passes at once.
    let collector = TestCollector::with_faults(Faults::statuses([500, 503, 200, 400, 200])).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(4)
        .max_request_events(4)
        .max_in_flight(1)
        .retrying_fast(Duration::from_millis(20))
        .on_success(|_| panic!("on_success panics on purpose"))
        .on_failure(|_| panic!("on_failure panics on purpose"))
        .started();
    let ids = track_all(&emitter, events(12));

    let report = flush(&emitter).await;

    assert_eq!(
        (
            report.sent,
            report.dropped.rejected,
            report.queued,
            report.timed_out
        ),
        (8, 4, 0, false)
    );
    assert_eq!(collector.statuses(), [500, 503, 200, 400, 200]);
    let delivered: Vec<String> = ids[..4].iter().chain(&ids[8..]).cloned().collect();
    assert_eq!(
        collector.event_ids(),
        delivered,
        "each delivered once, in order"
    );
    let stats = stats(&emitter).await;
    // Five requests, five callbacks, five panics.
    assert_eq!(
        (
            stats.received,
            stats.sent,
            stats.dropped.rejected,
            stats.retried,
            stats.requests,
            stats.callback_panics
        ),
        (12, 8, 4, 8, 5, 5)
    );
    assert_eq!(stats.restarts, 0);
}

#[actix_rt::test]
async fn hostile_values_arrive_unchanged_by_post_and_get() {
    let hostile: Vec<String> = [
        "line\r\nX-Injected: 1",
        "nul \u{0} del \u{7f} bell \u{7}",
        "quote \" backslash \\ slash / \u{2028}",
        "a&b=c+d%2F%ZZ?#",
        "ünïcödé 漢字 🎉 \u{fffd}",
        "   ",
    ]
    .map(String::from)
    .to_vec();
    for method in [Method::Post, Method::Get] {
        let collector = TestCollector::with_faults(Faults::none()).await;
        let emitter = EmitterBuilder::new(collector.endpoint())
            .method(method)
            .started();
        for track in labelled(&hostile) {
            emitter.do_send(track);
        }

        let report = flush(&emitter).await;

        assert_eq!((report.sent, report.queued), (6, 0), "{method:?}");
        assert!(
            collector.requests().iter().all(|r| r.valid),
            "{method:?}: {:?}",
            collector.requests()
        );
        // Several requests may be in flight: compare as sets.
        let mut received = labels(&collector.events());
        received.sort();
        let mut expected = hostile.clone();
        expected.sort();
        assert_eq!(received, expected, "{method:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Invalid values kept by setters, reported at the end of the chain
// ---------------------------------------------------------------------------------------------

/// A setter given an invalid value does not fail the chain: `track` reports the first one,
/// tracks nothing, and counts it; later valid events are tracked as usual.
#[actix_rt::test]
async fn an_invalid_optional_value_is_reported_by_track_counted_and_never_sent() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = Tracker::builder("invalid")
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .flushed_by_hand();
    let invalid = Structured::new("shop", "buy")
        .unwrap()
        .value(f64::NAN)
        .label("still applied")
        .subject(Subject::new().viewport(0, 600));

    assert_eq!(
        tracker.track(invalid),
        Err(TrackError::InvalidEvent(EventError::NonFiniteNumber {
            field: "value"
        }))
    );
    let bad_subject = Structured::new("shop", "buy")
        .unwrap()
        .subject(Subject::new().screen_resolution(1920, 0));
    assert_eq!(
        tracker.track_with_subject(bad_subject, &Subject::new().user_id("u")),
        Err(TrackError::InvalidEvent(EventError::ZeroDimension {
            field: "screen_resolution"
        }))
    );
    let valid = tracker
        .track(Structured::new("shop", "buy").unwrap().value(2.0))
        .unwrap();
    let report = tracker.flush().await.unwrap();

    assert_eq!(report.sent, 1);
    assert_eq!(collector.event_ids(), [valid.to_string()]);
    let stats = tracker.stats().await.unwrap();
    assert_eq!((stats.tracked, stats.invalid, stats.refused), (1, 2, 0));
    assert!(tracker
        .stamp(Structured::new("a", "b").unwrap().value(f64::INFINITY))
        .is_err());
}

/// A tracker subject with an invalid value is a build error, not a failure of every event.
#[test]
fn an_invalid_tracker_subject_is_a_build_error() {
    let error = Tracker::builder("invalid")
        .subject(Subject::new().user_id("u").viewport(1280, 0))
        .emitter(EmitterBuilder::new("http://127.0.0.1:9"))
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        BuildError::InvalidSubject(EventError::ZeroDimension { field: "viewport" })
    );
    assert_eq!(
        Tracker::builder("invalid")
            .subject(Subject::new().screen_resolution(0, 1))
            .settings()
            .unwrap_err(),
        BuildError::InvalidSubject(EventError::ZeroDimension {
            field: "screen_resolution"
        })
    );
}
