//! What the crate writes to `tracing`: no payload contents at INFO or above (events may carry
//! personal data), one WARN per failed request with its status and event count, and drops
//! summarised once per burst rather than once per event.
//!
//! Each test captures its own lines ([`Logs::capture`]): a subscriber for its thread and
//! the trackers it builds, none for the process. Its lines are still looked up by its own
//! endpoints, names and markers, as they were when one global capture served every test.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::collector::{Faults, RawBehaviour, RawCollector, TestCollector};
use crate::common::logs::{Line, Logs};
use crate::common::support::{
    assert_balanced, closed_port, events, fixed_jitter, flush, flush_within, record_failures,
    stats, track_all, BuilderExt, TrackerBuilderExt,
};
use snowplow_actix::{
    emitter::GetStats, EmitterBuilder, Method, PageView, Structured, Subject, Tracker,
};
use tracing::Level;

/// The lines at `level` or above of the emitter called `name` (by default its endpoint).
fn lines_of(logs: &Logs, name: &str, level: Level) -> Vec<Line> {
    logs.matching(|line| line.level <= level && line.get("emitter") == Some(name))
}

/// (message, reason, events) of each WARN or ERROR line of `endpoint`.
fn warnings(logs: &Logs, endpoint: &str) -> Vec<(String, Option<String>, Option<String>)> {
    lines_of(logs, endpoint, Level::WARN)
        .into_iter()
        .map(|line| {
            let reason = line.get("reason").map(str::to_owned);
            let events = line.get("events").map(str::to_owned);
            (line.message, reason, events)
        })
        .collect()
}

fn warning(message: &str, reason: &str, events: usize) -> (String, Option<String>, Option<String>) {
    (
        message.to_owned(),
        Some(reason.to_owned()),
        Some(events.to_string()),
    )
}

const RETRIED: &str = "request failed";
const REJECTED: &str = "request failed and is not retried: events dropped";

#[actix_rt::test]
async fn no_payload_contents_are_logged_at_info_or_above() {
    let logs = Logs::capture();
    let marker = format!("personal-{}", uuid_like());
    // Every kind of failure the crate logs: statuses retried and rejected, a refused
    // connection, an answer that is not HTTP, panicking callbacks, a full buffer, shutdown
    // with events left; by POST and by GET.
    let statuses = TestCollector::with_faults(Faults::statuses([500, 400, 503])).await;
    let get_statuses = TestCollector::with_faults(Faults::statuses([500, 400, 503])).await;
    let garbage = RawCollector::start(RawBehaviour::Garbage).await;
    let closed = closed_port();
    let refused = closed.endpoint();
    let quick = |builder: EmitterBuilder| {
        let marker = marker.clone();
        builder
            .retrying_fast(Duration::from_millis(20))
            .request_timeout(Duration::from_millis(300))
            .on_failure(move |_| panic!("on_failure panics with {marker}"))
    };
    let tracker = Tracker::builder("logging")
        .subject(Subject::new().user_id(marker.as_str()))
        .emitter(quick(
            EmitterBuilder::new(statuses.endpoint())
                .batch_size(2)
                .max_request_events(2),
        ))
        .emitter(quick(
            EmitterBuilder::new(get_statuses.endpoint()).method(Method::Get),
        ))
        .emitter(quick(
            EmitterBuilder::new(garbage.endpoint()).method(Method::Get),
        ))
        .emitter(quick(
            EmitterBuilder::new(refused.as_str()).buffer_capacity(3),
        ))
        .flushed_by_hand();
    for idx in 0..6 {
        let url = format!("https://shop.example/{marker}/{idx}?email={marker}");
        tracker
            .track(PageView::new(url).unwrap().title(marker.as_str()))
            .unwrap();
        tracker
            .track(
                Structured::new("logging", marker.as_str())
                    .unwrap()
                    .label(marker.as_str()),
            )
            .unwrap();
    }

    let report = tracker
        .flush_with_timeout(Duration::from_millis(500))
        .await
        .unwrap();
    let counters = tracker.stats().await.unwrap();
    let left = tracker.shutdown(Duration::from_millis(50)).await.unwrap();

    // The scenario did fail in every way, and the failures were logged.
    assert!(report.timed_out, "{report:#?}");
    let dropped = |pick: fn(&snowplow_actix::DropCounts) -> u64| -> Vec<u64> {
        counters
            .emitters
            .iter()
            .map(|e| pick(&e.stats.as_ref().unwrap().dropped))
            .collect()
    };
    assert_eq!(dropped(|d| d.rejected), [2, 1, 0, 0]);
    assert_eq!(dropped(|d| d.capacity), [0, 0, 0, 9]);
    assert!(left.dropped.shutdown > 0, "{left:#?}");
    // Emitters are named after their endpoints (GET ones with " (GET)").
    for endpoint in [
        statuses.endpoint(),
        format!("{} (GET)", get_statuses.endpoint()),
        format!("{} (GET)", garbage.endpoint()),
        refused.clone(),
    ] {
        assert!(
            !warnings(&logs, &endpoint).is_empty(),
            "{endpoint}: nothing logged"
        );
    }
    // The search sees field values: a DEBUG line carrying the marker is found (and is not a
    // leak: DEBUG is below the bar).
    tracing::debug!(target: "snowplow_actix::test_probe", probe = %marker, "probe");
    assert!(logs
        .lines()
        .iter()
        .any(|line| line.level == Level::DEBUG && line.mentions(&marker)));
    let leaks: Vec<Line> =
        logs.matching(|line| line.level <= Level::INFO && line.mentions(&marker));
    assert!(leaks.is_empty(), "payload contents logged: {leaks:#?}");
}

#[actix_rt::test]
async fn each_failed_post_request_is_one_warn_with_its_status_and_event_count() {
    let logs = Logs::capture();
    let collector = TestCollector::with_faults(Faults::statuses([500, 503, 200, 400])).await;
    let endpoint = collector.endpoint();
    let emitter = EmitterBuilder::new(endpoint.as_str())
        .retrying_fast(Duration::from_millis(20))
        .started();
    track_all(&emitter, events(3));
    let report = flush(&emitter).await;
    assert_eq!((report.sent, report.queued), (3, 0));
    track_all(&emitter, events(2));
    let report = flush(&emitter).await;
    assert_eq!((report.sent, report.dropped.rejected), (0, 2));

    assert_eq!(collector.statuses(), [500, 503, 200, 400]);
    assert_eq!(
        warnings(&logs, &endpoint),
        [
            warning(RETRIED, "status 500", 3),
            warning(RETRIED, "status 503", 3),
            warning(REJECTED, "status 400", 2),
        ]
    );
    let lines = lines_of(&logs, &endpoint, Level::WARN);
    assert!(lines.iter().all(|line| line.level == Level::WARN));
    assert_eq!(lines[0].get("retried"), Some("3"));
    assert_eq!(lines[2].get("dropped_as"), Some("rejected"));
    assert_eq!(stats(&emitter).await.requests, 4);
}

#[actix_rt::test]
async fn each_failed_get_request_is_one_warn_with_its_status_and_event_count() {
    let logs = Logs::capture();
    let collector = TestCollector::with_faults(Faults::statuses([500, 200, 422, 200])).await;
    let endpoint = collector.endpoint();
    let emitter = EmitterBuilder::new(endpoint.as_str())
        .name(endpoint.as_str())
        .method(Method::Get)
        .retrying_fast(Duration::from_millis(20))
        .started();
    track_all(&emitter, events(3));

    let report = flush(&emitter).await;

    assert_eq!(
        (report.sent, report.dropped.rejected, report.queued),
        (2, 1, 0)
    );
    assert_eq!(collector.statuses(), [500, 200, 422, 200]);
    assert_eq!(
        warnings(&logs, &endpoint),
        [
            warning(RETRIED, "status 500", 1),
            warning(REJECTED, "status 422", 1),
        ]
    );
}

#[actix_rt::test]
async fn a_burst_of_capacity_drops_is_one_warn_not_one_per_event() {
    let logs = Logs::capture();
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let endpoint = collector.endpoint();
    let emitter = EmitterBuilder::new(endpoint.as_str())
        .buffer_capacity(10)
        .retrying_fast(Duration::from_millis(20))
        .started();
    let full = |endpoint: &str| -> Vec<Line> {
        lines_of(&logs, endpoint, Level::WARN)
            .into_iter()
            .filter(|line| line.message.contains("buffer full"))
            .collect()
    };
    let room_again = |endpoint: &str| -> Vec<Line> {
        lines_of(&logs, endpoint, Level::WARN)
            .into_iter()
            .filter(|line| line.message.contains("has room again"))
            .collect()
    };

    // A burst of 100 drops: the buffer holds 10 while the collector fails.
    track_all(&emitter, events(110));
    let burst = stats(&emitter).await;
    assert_eq!(burst.dropped.capacity, 100);
    let logged = full(&endpoint);
    assert_eq!(logged.len(), 1, "{logged:#?}");
    let held: u64 = ["queued", "in_flight"]
        .iter()
        .map(|name| logged[0].get(name).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(held, 10);

    // The collector recovers, the buffer has room: one line with the burst's size.
    collector.clear_faults();
    let report = flush(&emitter).await;
    assert_eq!((report.sent, report.queued), (10, 0));
    track_all(&emitter, events(1));
    let _ = emitter.send(GetStats).await.unwrap();
    let logged = room_again(&endpoint);
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert_eq!(logged[0].get("dropped"), Some("100"));

    // A second burst of 50 is one more line.
    collector.set_faults(Faults::always(503));
    track_all(&emitter, events(9));
    track_all(&emitter, events(50));
    let second = stats(&emitter).await;
    assert_eq!(second.dropped.capacity, 150);
    assert_eq!(full(&endpoint).len(), 2);
    assert_eq!(room_again(&endpoint).len(), 1);
}

#[cfg(feature = "web")]
#[actix_rt::test]
async fn a_request_without_a_tracker_is_one_error_with_its_method_and_route() {
    use actix_web::http::StatusCode;
    use actix_web::test::{self as web_test, TestRequest};
    use actix_web::{web, App, HttpResponse};
    use snowplow_actix::web::RequestTracker;

    const ROUTE: &str = "/logging-orders/{order}";
    const OPTIONAL_ROUTE: &str = "/logging-optional/{order}";
    let logs = Logs::capture();
    let marker = format!("personal-{}", uuid_like());
    let app = web_test::init_service(
        App::new()
            .route(
                ROUTE,
                web::post().to(|_: RequestTracker| async { HttpResponse::Ok().finish() }),
            )
            .route(
                OPTIONAL_ROUTE,
                web::post().to(|tracking: Option<RequestTracker>| async move {
                    assert!(tracking.is_none());
                    HttpResponse::Ok().finish()
                }),
            ),
    )
    .await;
    let call = |path: &str| {
        TestRequest::post()
            .uri(&format!("{path}?email={marker}"))
            .to_request()
    };
    let extractor_lines =
        || -> Vec<Line> { logs.matching(|line| line.target == "snowplow_actix::web::extractor") };

    let failed = web_test::call_service(&app, call(&format!("/logging-orders/{marker}"))).await;
    let optional = web_test::call_service(&app, call(&format!("/logging-optional/{marker}"))).await;

    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(optional.status(), StatusCode::OK);
    // One line, for the failed extraction only; its route is the pattern, not the path.
    let logged = extractor_lines();
    assert_eq!(logged.len(), 1, "{logged:#?}");
    let line = &logged[0];
    assert_eq!(line.level, Level::ERROR);
    assert!(
        line.message
            .starts_with("no snowplow tracker for this request"),
        "{line:#?}"
    );
    assert_eq!(line.get("method"), Some("POST"));
    assert_eq!(line.get("route"), Some(ROUTE));
    assert!(!line.mentions(&marker), "path or query logged: {line:#?}");
}

#[actix_rt::test]
async fn every_line_of_an_emitter_names_it_and_a_failed_request_its_url() {
    let logs = Logs::capture();
    let posts = TestCollector::with_faults(Faults::statuses([500, 400])).await;
    let gets = TestCollector::with_faults(Faults::statuses([503, 422])).await;
    let quick = |builder: EmitterBuilder| {
        builder
            .retrying_fast(Duration::from_millis(20))
            .max_in_flight(1)
    };
    let tracker = Tracker::builder("logging")
        .emitter(quick(EmitterBuilder::new(posts.endpoint()).name("primary")))
        .emitter(quick(
            EmitterBuilder::new(gets.endpoint())
                .name("mirror")
                .method(Method::Get),
        ))
        .flushed_by_hand();
    let page = "/private/account?email=someone@example.com";
    tracker
        .track(PageView::new(format!("https://shop.example{page}")).unwrap())
        .unwrap();
    tracker.flush().await.unwrap();
    tracker.track(Structured::new("a", "b").unwrap()).unwrap();
    tracker.flush().await.unwrap();
    tracker.shutdown(Duration::from_secs(5)).await.unwrap();

    for (name, method, url) in [
        ("primary", "POST", posts.post_url()),
        ("mirror", "GET", gets.get_url()),
    ] {
        let all = lines_of(&logs, name, Level::TRACE);
        assert!(all.len() >= 3, "{name}: {all:#?}");
        assert!(
            all.iter().all(|line| line.get("method") == Some(method)),
            "{all:#?}"
        );
        let failed: Vec<&Line> = all
            .iter()
            .filter(|line| line.level == Level::WARN)
            .collect();
        assert_eq!(
            failed.len(),
            2,
            "a retried and a rejected request: {failed:#?}"
        );
        for line in failed {
            assert_eq!(line.get("url"), Some(url.as_str()), "{line:#?}");
            assert!(
                !line.mentions(page) && !line.mentions("someone"),
                "{line:#?}"
            );
        }
    }
    // Two emitters, two names: no line of either is anonymous.
    let anonymous: Vec<Line> = logs.matching(|line| {
        line.target.starts_with("snowplow_actix::emitter")
            && (line.mentions(&posts.endpoint()) || line.mentions(&gets.endpoint()))
            && line.get("emitter").is_none()
    });
    assert!(anonymous.is_empty(), "{anonymous:#?}");
}

#[actix_rt::test]
async fn a_tls_failure_against_a_plain_http_collector_hints_at_the_scheme() {
    let logs = Logs::capture();
    let collector = TestCollector::with_faults(Faults::none()).await;
    // `host:port` without a scheme is https; this collector speaks plain HTTP.
    let endpoint = collector.addr().to_string();
    let emitter = EmitterBuilder::new(endpoint.as_str())
        .name("scheme-hint")
        .retrying_fast(Duration::from_millis(20))
        .started();
    track_all(&emitter, events(1));

    let report = flush_within(&emitter, Duration::from_millis(300)).await;

    assert_eq!((report.sent, report.timed_out), (0, true));
    let failed: Vec<Line> = lines_of(&logs, "scheme-hint", Level::WARN)
        .into_iter()
        .filter(|line| line.message.starts_with("request failed"))
        .collect();
    assert!(!failed.is_empty());
    for line in &failed {
        let hint = line.get("hint").unwrap_or_default();
        assert!(hint.contains("http://"), "{line:#?}");
    }
    // A failure with nothing to hint carries no hint.
    let closed = closed_port();
    let refused = closed.endpoint();
    let plain = EmitterBuilder::new(refused.as_str())
        .jitter(fixed_jitter(0.01))
        .started();
    track_all(&plain, events(1));
    flush_within(&plain, Duration::from_millis(100)).await;
    let lines: Vec<Line> = lines_of(&logs, &refused, Level::WARN)
        .into_iter()
        .filter(|line| line.message.starts_with("request failed"))
        .collect();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().all(|line| line.get("hint").is_none()),
        "{lines:#?}"
    );
}

#[actix_rt::test]
async fn a_404_is_one_error_with_the_url_and_a_hint_then_one_line_per_burst() {
    let logs = Logs::capture();
    let collector =
        TestCollector::with_faults(Faults::statuses([404, 404, 404, 200, 404, 200])).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .name("wrong-path")
        .retrying_fast(Duration::from_millis(20))
        .max_in_flight(1)
        .started();
    track_all(&emitter, events(2));
    let first = flush(&emitter).await;
    track_all(&emitter, events(2));
    let second = flush(&emitter).await;

    assert_eq!((first.sent, second.sent), (2, 2));
    assert_eq!(collector.statuses(), [404, 404, 404, 200, 404, 200]);
    let lines = lines_of(&logs, "wrong-path", Level::WARN);
    let errors: Vec<&Line> = lines
        .iter()
        .filter(|line| line.level == Level::ERROR)
        .collect();
    assert_eq!(errors.len(), 2, "one per burst: {lines:#?}");
    for error in &errors {
        assert_eq!(error.get("url"), Some(collector.post_url().as_str()));
        assert!(
            error.get("hint").unwrap().contains("base URL"),
            "{error:#?}"
        );
    }
    // No WARN per 404; one line at the end of each burst, with its size.
    let warnings: Vec<&Line> = lines
        .iter()
        .filter(|line| line.level == Level::WARN)
        .collect();
    let sizes: Vec<Option<&str>> = warnings.iter().map(|line| line.get("not_found")).collect();
    assert_eq!(sizes, [Some("3"), Some("1")], "{warnings:#?}");
}

#[actix_rt::test]
async fn a_tracker_dropped_without_a_shutdown_warns_once_with_what_it_loses() {
    let logs = Logs::capture();
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let namespace = format!("dropped-{}", uuid_like());
    let tracker = Tracker::builder(namespace.as_str())
        .emitter(EmitterBuilder::new(collector.endpoint()).name(namespace.as_str()))
        .flushed_by_hand();
    for _ in 0..4 {
        tracker.track(Structured::new("a", "b").unwrap()).unwrap();
    }
    // Every event has reached the emitter (what it holds is what the warning counts).
    let held = tracker.stats().await.unwrap().emitters[0]
        .stats
        .clone()
        .unwrap();
    assert_eq!(held.queued + held.in_flight, 4);
    let handle = tracker.emitters().remove(0);

    drop(tracker);

    let ours: Vec<Line> =
        logs.matching(|line| line.level <= Level::WARN && line.mentions(&namespace));
    assert_eq!(ours.len(), 1, "{ours:#?}");
    assert_eq!(ours[0].get("lost"), Some("4"), "{ours:#?}");
    assert!(ours[0].message.contains("shutdown"), "{ours:#?}");
    // The emitter stops and counts them, quietly: the tracker has said it. Its thread's
    // end gives nothing to await: look every 10 ms, for 2 s at most.
    let mut last = handle.stats().await;
    for _ in 0..200 {
        if last
            .as_ref()
            .is_some_and(|stats| stats.dropped.shutdown == 4)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        last = handle.stats().await;
    }
    let last = last.expect("the emitter left its stats");
    assert_eq!(last.dropped.shutdown, 4, "{last:#?}");
    assert_balanced(&last);
    let warned = logs
        .lines()
        .iter()
        .filter(|line| line.level <= Level::WARN && line.mentions(&namespace))
        .count();
    assert_eq!(warned, 1);
}

/// Hardening finding: store failures were logged once per event at ERROR (2,000 lines for
/// 2,000 events), not once per burst as documented.
#[actix_rt::test]
async fn finding_a_burst_of_store_failures_is_one_error_not_one_per_event() {
    let logs = Logs::capture();
    let collector = TestCollector::with_faults(Faults::none()).await;
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let emitter = EmitterBuilder::new(collector.endpoint())
        .name("flaky-store")
        .event_store({
            // Refuses every event while `failing` is set.
            let failing = failing.clone();
            crate::common::support::HookedStore::new(
                10_000,
                Box::new(move || {
                    failing.load(Ordering::Relaxed).then(|| {
                        Err(snowplow_actix::store::StoreError::Backend(
                            "disk full".into(),
                        ))
                    })
                }),
            )
        })
        .started();
    track_all(&emitter, events(200));
    let burst = stats(&emitter).await;
    assert_eq!(burst.dropped.store, 200);
    failing.store(false, Ordering::Relaxed);
    track_all(&emitter, events(3));
    let report = flush(&emitter).await;
    assert_eq!(report.sent, 3);

    let lines = lines_of(&logs, "flaky-store", Level::WARN);
    let errors = lines
        .iter()
        .filter(|line| line.level == Level::ERROR)
        .count();
    assert_eq!(errors, 1, "{lines:#?}");
    let again: Vec<&Line> = lines
        .iter()
        .filter(|line| line.message.contains("takes events again"))
        .collect();
    assert_eq!(again.len(), 1, "{lines:#?}");
    assert_eq!(again[0].get("dropped"), Some("200"));
}

/// Hardening finding: the middleware logged the request path at WARN when the decision
/// function panicked (paths carry ids and personal data); it logs the route pattern.
#[cfg(feature = "web")]
#[actix_rt::test]
async fn finding_a_panicking_decision_logs_the_route_not_the_path() {
    use actix_web::test::{self as web_test, TestRequest};
    use actix_web::{web, App, HttpResponse};
    use snowplow_actix::web::SnowplowTracking;

    const ROUTE: &str = "/logging-decide/{user}";
    let logs = Logs::capture();
    let marker = format!("personal-{}", uuid_like());
    let tracker = Tracker::builder("logging")
        .emitter(EmitterBuilder::new("http://127.0.0.1:9"))
        .flushed_by_hand();
    let tracking =
        SnowplowTracking::new(tracker.clone()).decide(|_| panic!("the decision function panics"));
    let app = web_test::init_service(
        App::new()
            .wrap(tracking)
            .route(ROUTE, web::get().to(HttpResponse::Ok)),
    )
    .await;

    let response = web_test::call_service(
        &app,
        TestRequest::get()
            .uri(&format!("/logging-decide/{marker}?email={marker}"))
            .to_request(),
    )
    .await;

    assert!(response.status().is_success());
    let logged: Vec<Line> = logs.matching(|line| {
        line.message.contains("decision function panicked") && line.get("route") == Some(ROUTE)
    });
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert!(!logged[0].mentions(&marker), "{logged:#?}");
    assert!(logs
        .lines()
        .iter()
        .filter(|line| line.level <= Level::WARN)
        .all(|line| !line.mentions(&marker)));
    tracker.shutdown(Duration::from_millis(10)).await.unwrap();
}

/// A marker unique to this run, without a UUID dependency in the test.
fn uuid_like() -> String {
    let settings = crate::common::support::settings();
    let stamped = settings
        .stamp(PageView::new("https://x/").unwrap())
        .expect("a valid event");
    stamped[0].id().simple().to_string()
}

/// Captures are per test: a tracker built under another capture, on another thread, logs
/// there and not here, and each capture sees its own tracker's threads.
#[actix_rt::test]
async fn a_capture_sees_the_lines_of_its_own_trackers_only() {
    /// Builds a tracker named `name` against a port nothing listens on, tracks one event and
    /// gives it a short flush (failed requests log WARN lines), then shuts it down.
    async fn fail_once(name: &str) {
        let closed = closed_port();
        let tracker = Tracker::builder(name)
            .emitter(
                EmitterBuilder::new(closed.endpoint())
                    .name(name)
                    .retrying_fast(Duration::from_millis(20)),
            )
            .flushed_by_hand();
        tracker.track(Structured::new("a", "b").unwrap()).unwrap();
        let report = tracker
            .flush_with_timeout(Duration::from_millis(200))
            .await
            .unwrap();
        assert!(report.timed_out, "{report:#?}");
        tracker.shutdown(Duration::from_millis(10)).await.unwrap();
    }
    let logs = Logs::capture();
    let other = std::thread::spawn(|| {
        let logs = Logs::capture();
        actix_rt::System::new().block_on(fail_once("other-capture"));
        logs.lines()
    });

    fail_once("this-capture").await;
    let theirs = other.join().expect("the other capture's thread");

    let named = |lines: &[Line], name: &str| {
        lines
            .iter()
            .filter(|line| line.get("emitter") == Some(name))
            .count()
    };
    let ours = logs.lines();
    assert!(named(&ours, "this-capture") > 0, "{ours:#?}");
    assert!(named(&theirs, "other-capture") > 0, "{theirs:#?}");
    assert_eq!(named(&ours, "other-capture"), 0, "{ours:#?}");
    assert_eq!(named(&theirs, "this-capture"), 0, "{theirs:#?}");
}

/// `tracing` caches whether a call site is wanted when it is first reached; a capture must
/// still see a call site first reached on a thread that captures nothing (see
/// `common::logs`): here one only this test reaches, first from a thread without a capture.
#[test]
fn a_call_site_first_reached_outside_any_capture_is_still_captured() {
    fn probe(marker: &str) {
        tracing::warn!(target: "snowplow_actix::test_probe", marker, "first reached elsewhere");
    }
    let logs = Logs::capture();
    std::thread::spawn(|| probe("elsewhere"))
        .join()
        .expect("the thread without a capture");

    probe("here");

    let seen: Vec<Option<String>> = logs
        .lines()
        .iter()
        .filter(|line| line.message == "first reached elsewhere")
        .map(|line| line.get("marker").map(str::to_owned))
        .collect();
    assert_eq!(seen, [Some("here".to_owned())]);
}

/// Invalid events refused by `track` are one WARN where the burst starts (what is wrong, not
/// the rejected text, which may be a client's) and one where it ends (how many).
#[actix_rt::test]
async fn a_burst_of_invalid_events_is_one_warn_without_the_rejected_text_then_one_at_its_end() {
    let logs = Logs::capture();
    let collector = TestCollector::with_faults(Faults::none()).await;
    let namespace = format!("invalid-{}", uuid_like());
    let secret = format!("secret-{}", uuid_like());
    let tracker = Tracker::builder(namespace.as_str())
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .flushed_by_hand();
    for _ in 0..5 {
        let invalid = snowplow_actix::ScreenView::with_random_id("home")
            .unwrap()
            .previous_id(secret.as_str());
        assert!(tracker.track(invalid).is_err());
    }
    tracker.track(Structured::new("a", "b").unwrap()).unwrap();

    let ours: Vec<Line> = logs
        .matching(|line| line.level <= Level::WARN && line.get("namespace") == Some(&namespace));
    assert_eq!(ours.len(), 2, "{ours:#?}");
    assert_eq!(
        ours[0].get("error"),
        Some("previous_id must be a UUID"),
        "{ours:#?}"
    );
    assert_eq!(ours[1].get("invalid"), Some("5"), "{ours:#?}");
    assert!(
        logs.lines().iter().all(|line| !line.mentions(&secret)),
        "the rejected text is not logged"
    );
}

/// A handler's `?` on an event constructor answers 500 with an empty body (the reason is
/// the app's bug, not the client's business) and logs one ERROR without the rejected text.
#[cfg(feature = "web")]
#[actix_rt::test]
async fn an_event_error_in_a_handler_is_a_500_with_an_empty_body_and_one_error() {
    use actix_web::http::StatusCode;
    use actix_web::test::{self as web_test, TestRequest};
    use actix_web::{web, App, HttpResponse};
    use snowplow_actix::{EventError, SelfDescribingJson};

    let logs = Logs::capture();
    let marker = format!("iglu:com.acme/personal-{}", uuid_like());
    let schema = marker.clone();
    let app = web_test::init_service(App::new().route(
        "/signup",
        web::post().to(move || {
            let schema = schema.clone();
            async move {
                SelfDescribingJson::new(schema, serde_json::json!({}))?;
                Ok::<_, EventError>(HttpResponse::Ok().finish())
            }
        }),
    ))
    .await;

    let response =
        web_test::call_service(&app, TestRequest::post().uri("/signup").to_request()).await;

    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = web_test::read_body(response).await;
    assert!(body.is_empty(), "{body:?}");
    let errors: Vec<Line> = logs.matching(|line| {
        line.level == Level::ERROR && line.message.contains("could not build an event")
    });
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        errors[0].get("error"),
        Some("invalid schema URI"),
        "{errors:#?}"
    );
    assert!(
        logs.lines()
            .iter()
            .filter(|line| line.level <= Level::INFO)
            .all(|line| !line.mentions(&marker)),
        "the rejected text is not logged at INFO or above"
    );
}

/// The fields of a request span a test pins: method, events, bytes, attempt, outcome,
/// status, reason, dropped_as.
type SpanFields = [Option<String>; 8];

fn span_fields(span: &Line) -> SpanFields {
    [
        "method",
        "events",
        "bytes",
        "attempt",
        "outcome",
        "status",
        "reason",
        "dropped_as",
    ]
    .map(|name| span.get(name).map(str::to_owned))
}

fn some(values: [&str; 8]) -> SpanFields {
    values.map(|value| (!value.is_empty()).then(|| value.to_owned()))
}

/// The request spans of the emitter called `name`, in the order they were opened.
fn request_spans(logs: &Logs, name: &str) -> Vec<Line> {
    logs.spans("collector_request")
        .into_iter()
        .filter(|span| span.get("emitter") == Some(name))
        .collect()
}

/// Each request to the collector is one DEBUG span, from sending to its answer, so that a
/// subscriber can time deliveries: the emitter, method, events and bytes (as the collector
/// received them) from the start, then the outcome, the status and why it failed. It is
/// closed once answered, before the flush waiting on it returns.
#[actix_rt::test]
async fn each_request_is_one_debug_span_closed_at_its_answer_with_its_outcome_and_status() {
    let logs = Logs::capture();
    let collector = TestCollector::with_faults(Faults::statuses([503, 200, 400])).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .name("spans-post")
        .max_in_flight(1)
        .retrying_fast(Duration::from_millis(20))
        .started();
    track_all(&emitter, events(2));
    let first = flush(&emitter).await;
    track_all(&emitter, events(1));
    let second = flush(&emitter).await;

    assert_eq!((first.sent, second.dropped.rejected), (2, 1));
    let bytes: Vec<String> = collector
        .requests()
        .iter()
        .map(|request| request.body_len_or_query_len.to_string())
        .collect();
    let spans = request_spans(&logs, "spans-post");
    assert_eq!(
        spans.iter().map(span_fields).collect::<Vec<_>>(),
        [
            some([
                "POST",
                "2",
                &bytes[0],
                "1",
                "retried",
                "503",
                "status 503",
                ""
            ]),
            some(["POST", "2", &bytes[1], "2", "sent", "200", "", ""]),
            some([
                "POST",
                "1",
                &bytes[2],
                "1",
                "dropped",
                "400",
                "status 400",
                "rejected"
            ]),
        ]
    );
    for span in &spans {
        assert_eq!(span.level, Level::DEBUG, "{span:#?}");
        assert_eq!(span.target, "snowplow_actix::emitter::delivery");
        assert!(
            span.closed,
            "still open after the flush returned: {span:#?}"
        );
    }
}

/// A request that fails without a status (a refused connection) is a span with the reason
/// and no status (a GET here; the POST spans above have the same fields).
#[actix_rt::test]
async fn a_request_failing_without_an_answer_is_a_span_with_its_reason_and_no_status() {
    let logs = Logs::capture();
    let closed = closed_port();
    let refused = closed.endpoint();
    let (builder, mut failures) = record_failures(
        EmitterBuilder::new(refused.as_str())
            .name("spans-refused")
            .method(Method::Get)
            .retrying_fast(Duration::from_secs(10)),
    );
    let emitter = builder.started();
    track_all(&emitter, events(1));

    // `on_failure` runs once the answer is handled, after its span closed.
    let failure = failures.next().await;
    let spans = request_spans(&logs, "spans-refused");

    assert!(failure.will_retry, "{failure:#?}");
    let first = &spans[0];
    let [method, events, bytes, attempt, outcome, status, reason, dropped_as] = span_fields(first);
    assert_eq!(
        (method.as_deref(), events.as_deref(), attempt.as_deref()),
        (Some("GET"), Some("1"), Some("1"))
    );
    assert!(bytes.unwrap().parse::<usize>().unwrap() > refused.len());
    assert_eq!(
        (outcome.as_deref(), status, dropped_as),
        (Some("retried"), None, None)
    );
    assert_eq!(reason.as_deref(), Some(failure.reason.to_string().as_str()));
    assert!(
        reason.unwrap().starts_with("connection error"),
        "{first:#?}"
    );
    assert!(first.closed, "{first:#?}");
}
