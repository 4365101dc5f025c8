//! The actix-web integration: the tracking middleware, the request-scoped tracker, and
//! what the collector receives from them.
#![cfg(feature = "web")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::collector::{Faults, RecordedEvent, TestCollector};
use crate::common::iglu;
use crate::common::support::{wait_events, wait_requests, TrackerBuilderExt, SOON};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse, HttpServer};
use snowplow_actix::web::{
    default_decision, Decision, IpRange, ProxyHeader, PublicOrigin, RequestTracker,
    SnowplowTracking, UrlRedaction,
};
use snowplow_actix::{EmitterBuilder, PageView, Structured, Tracker};

const CLIENT: &str = "203.0.113.9:51000";
const PROXY: &str = "10.0.0.1:443";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

pub(crate) fn tracker_for(collector: &TestCollector) -> Tracker {
    Tracker::builder("web")
        .app_id("shop")
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .flushed_by_hand()
}

pub(crate) fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Tracks a structured event `shop/buy` through the request-scoped tracker.
async fn buy(tracking: RequestTracker) -> HttpResponse {
    let event = Structured::new("shop", "buy").unwrap().label("red shoes");
    match tracking.track(event) {
        Ok(id) => HttpResponse::Ok().body(id.to_string()),
        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
    }
}

/// Sends a `shop/stamped` event as a `Track` message, stamped with the request's subject.
async fn stamped(tracking: RequestTracker) -> HttpResponse {
    let fanout = tracking.tracker().recipient();
    for track in tracking
        .stamp(Structured::new("shop", "stamped").unwrap())
        .expect("a valid event")
    {
        fanout.do_send(track);
    }
    HttpResponse::Ok().finish()
}

/// Sends a page view as a `Track` message with the tracker alone (no request subject).
async fn plain(tracker: web::Data<Tracker>) -> HttpResponse {
    let fanout = tracker.recipient();
    for track in tracker
        .stamp(PageView::new("https://shop.example/plain").unwrap())
        .expect("a valid event")
    {
        fanout.do_send(track);
    }
    HttpResponse::Ok().finish()
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/page", web::get().to(|| async { "page" }))
        .route("/page", web::post().to(HttpResponse::Ok))
        .route("/shoes", web::get().to(|| async { "shoes" }))
        .route("/health", web::get().to(HttpResponse::Ok))
        .route("/healthz", web::get().to(HttpResponse::Ok))
        .route("/static/{file}", web::get().to(HttpResponse::Ok))
        .route("/missing", web::get().to(HttpResponse::NotFound))
        .route("/error", web::get().to(HttpResponse::InternalServerError))
        .route(
            "/redirect",
            web::get().to(|| async {
                HttpResponse::Found()
                    .insert_header((header::LOCATION, "/page"))
                    .finish()
            }),
        )
        .route("/api/orders", web::post().to(HttpResponse::Created))
        .route("/buy", web::post().to(buy))
        .route("/stamped", web::post().to(stamped));
}

/// Sends `request` (a `TestRequest::to_request()`) to `app` and returns the response status.
pub(crate) async fn call<R>(
    app: &impl Service<R, Response = ServiceResponse, Error = actix_web::Error>,
    request: R,
) -> StatusCode {
    test::call_service(app, request).await.status()
}

/// The values of `names` in `event`, `None` where absent.
fn pick(event: &RecordedEvent, names: &[&str]) -> Vec<(String, Option<String>)> {
    names
        .iter()
        .map(|name| (name.to_string(), event.get(name).map(str::to_owned)))
        .collect()
}

fn expected(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.map(str::to_owned)))
        .collect()
}

fn urls(events: &[RecordedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| event.get("url").unwrap_or_default().to_owned())
        .collect()
}

/// The `ip` and `url` of the page views that `requests` (each answered 200) make through
/// the middleware as `configure` sets it up, in order. URLs are sent raw: their queries
/// tell the requests apart.
async fn ips_and_urls(
    configure: impl FnOnce(SnowplowTracking) -> SnowplowTracking,
    requests: impl IntoIterator<Item = TestRequest>,
) -> Vec<Vec<(String, Option<String>)>> {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let tracking =
        configure(SnowplowTracking::new(tracker.clone()).url_redaction(UrlRedaction::raw()));
    let app = test::init_service(App::new().wrap(tracking).configure(routes)).await;
    for request in requests {
        assert_eq!(call(&app, request.to_request()).await, StatusCode::OK);
    }
    let events = flushed(&tracker, &collector).await;
    events
        .iter()
        .map(|event| pick(event, &["ip", "url"]))
        .collect()
}

/// Flushes, checks that nothing was dropped, and returns what the collector received,
/// each event valid against its schemas.
pub(crate) async fn flushed(tracker: &Tracker, collector: &TestCollector) -> Vec<RecordedEvent> {
    let report = tracker.flush().await.unwrap();
    assert_eq!(
        (report.queued, report.dropped.total(), report.timed_out),
        (0, 0, false)
    );
    let events = collector.events();
    for event in &events {
        let pairs = event.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if let Err(error) = iglu::validate_event(pairs) {
            panic!("{error}: {event:?}");
        }
    }
    events
}

const SUBJECT: &[&str] = &["e", "url", "refr", "ip", "ua", "lang", "uid", "tnuid"];

// ---------------------------------------------------------------------------------------------
// Page views and the request subject
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_successful_get_is_a_page_view_with_the_request_subject() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let app = test::init_service(
        App::new()
            .wrap(SnowplowTracking::new(tracker.clone()))
            .configure(routes),
    )
    .await;

    let response = test::call_service(
        &app,
        TestRequest::get()
            .uri("/shoes?colour=red&size=42")
            .peer_addr(addr(CLIENT))
            .insert_header((header::HOST, "shop.example"))
            .insert_header((header::USER_AGENT, BROWSER))
            .insert_header((header::ACCEPT_LANGUAGE, "en-GB,en;q=0.8,fr;q=0.5"))
            .insert_header((header::REFERER, "https://search.example/?q=shoes"))
            // No cookie name is configured: `tnuid` is not forwarded.
            .insert_header((header::COOKIE, "sp=d3b07384-d9a0-4c9b-8f3e-1d2a3b4c5d6e"))
            .to_request(),
    )
    .await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(test::read_body(response).await, "shoes");
    let events = flushed(&tracker, &collector).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        pick(&events[0], SUBJECT),
        expected(&[
            ("e", Some("pv")),
            // By default the queries keep their attribution parameters only: none here.
            ("url", Some("http://shop.example/shoes")),
            ("refr", Some("https://search.example/")),
            ("ip", Some("203.0.113.9")),
            ("ua", Some(BROWSER)),
            ("lang", Some("en-GB")),
            ("uid", None),
            ("tnuid", None),
        ])
    );
    assert_eq!(
        pick(&events[0], &["p", "tna", "aid"]),
        expected(&[
            ("p", Some("srv")),
            ("tna", Some("web")),
            ("aid", Some("shop"))
        ])
    );
}

#[actix_rt::test]
async fn user_id_function_and_network_user_id_cookie_fill_the_subject() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let tracking = SnowplowTracking::new(tracker.clone())
        .user_id(|request| {
            let user = request.headers().get("x-user")?.to_str().ok()?;
            Some(format!("user-{user}"))
        })
        .network_user_id_cookie("sp");
    let app = test::init_service(App::new().wrap(tracking).configure(routes)).await;

    let with_both = TestRequest::get()
        .uri("/page")
        .peer_addr(addr(CLIENT))
        .insert_header(("x-user", "42"))
        .insert_header((header::COOKIE, "theme=dark; sp=d3b07384-d9a0"));
    let with_neither = TestRequest::get().uri("/page").peer_addr(addr(CLIENT));
    assert_eq!(call(&app, with_both.to_request()).await, StatusCode::OK);
    assert_eq!(call(&app, with_neither.to_request()).await, StatusCode::OK);

    let events = flushed(&tracker, &collector).await;
    let ids: Vec<_> = events
        .iter()
        .map(|event| pick(event, &["uid", "tnuid", "ip"]))
        .collect();
    assert_eq!(
        ids,
        [
            expected(&[
                ("uid", Some("user-42")),
                ("tnuid", Some("d3b07384-d9a0")),
                ("ip", Some("203.0.113.9"))
            ]),
            expected(&[("uid", None), ("tnuid", None), ("ip", Some("203.0.113.9"))]),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Trusted proxies
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let tracking = SnowplowTracking::new(tracker.clone()).trusted_proxy(addr(PROXY).ip());
    let app = test::init_service(App::new().wrap(tracking).configure(routes)).await;

    let spoofed = TestRequest::get()
        .uri("/page")
        .peer_addr(addr(CLIENT))
        .insert_header((header::HOST, "shop.example"))
        .insert_header(("x-forwarded-for", "198.51.100.66"))
        .insert_header((
            header::FORWARDED,
            "for=198.51.100.77;proto=https;host=evil.example",
        ))
        .insert_header(("x-forwarded-host", "evil.example"))
        .insert_header(("x-forwarded-proto", "https"));
    assert_eq!(call(&app, spoofed.to_request()).await, StatusCode::OK);

    let events = flushed(&tracker, &collector).await;
    assert_eq!(
        pick(&events[0], &["ip", "url"]),
        expected(&[
            ("ip", Some("203.0.113.9")),
            ("url", Some("http://shop.example/page"))
        ])
    );
}

#[actix_rt::test]
async fn x_forwarded_for_from_a_trusted_proxy_gives_the_client_ip() {
    // The client prepended a spoofed address; the proxy appended the real one.
    let forwarded = TestRequest::get()
        .uri("/page?from=proxy")
        .peer_addr(addr(PROXY))
        .insert_header((header::HOST, "internal:8080"))
        .insert_header(("x-forwarded-for", "198.51.100.66, 198.51.100.7"))
        .insert_header(("x-forwarded-host", "shop.example"))
        .insert_header(("x-forwarded-proto", "https"));
    // The proxy itself, without a forwarding header.
    let direct = TestRequest::get()
        .uri("/page")
        .peer_addr(addr(PROXY))
        .insert_header((header::HOST, "internal:8080"));

    let seen = ips_and_urls(
        |tracking| tracking.trusted_proxy(addr(PROXY).ip()),
        [forwarded, direct],
    )
    .await;
    assert_eq!(
        seen,
        [
            expected(&[
                ("ip", Some("198.51.100.7")),
                ("url", Some("https://shop.example/page?from=proxy"))
            ]),
            expected(&[
                ("ip", Some("10.0.0.1")),
                ("url", Some("http://internal:8080/page"))
            ]),
        ]
    );
}

/// Hardening finding: with the peer trusted, a `Forwarded` header won over `X-Forwarded-For`
/// and the page URL's host and scheme came from the first forwarded values; nginx, AWS ALB,
/// HAProxy and Envoy append `X-Forwarded-For` and pass a client's own `Forwarded` through,
/// so a client chose its IP and the page URL.
#[actix_rt::test]
async fn finding_a_client_sent_forwarded_header_cannot_spoof_ip_or_host_behind_an_x_forwarded_for_proxy(
) {
    // The client sent `Forwarded`; the proxy appended the client's address to
    // `X-Forwarded-For` and passed `Forwarded` and `Host` on.
    let spoofed = TestRequest::get()
        .uri("/page")
        .peer_addr(addr(PROXY))
        .insert_header((header::HOST, "shop.example"))
        .insert_header((
            header::FORWARDED,
            "for=6.6.6.6;host=evil.example;proto=https",
        ))
        .insert_header(("x-forwarded-for", "203.0.113.50"));
    // Without `X-Forwarded-For`, `Forwarded` still counts for nothing.
    let forwarded_only = TestRequest::get()
        .uri("/page")
        .peer_addr(addr(PROXY))
        .insert_header((header::HOST, "shop.example"))
        .insert_header((header::FORWARDED, "for=6.6.6.6;host=evil.example"));

    let seen = ips_and_urls(
        |tracking| tracking.trusted_proxy(addr(PROXY).ip()),
        [spoofed, forwarded_only],
    )
    .await;
    assert_eq!(
        seen,
        [
            expected(&[
                ("ip", Some("203.0.113.50")),
                ("url", Some("http://shop.example/page"))
            ]),
            expected(&[
                ("ip", Some("10.0.0.1")),
                ("url", Some("http://shop.example/page"))
            ]),
        ]
    );
}

#[actix_rt::test]
async fn the_rightmost_forwarded_host_and_proto_from_a_trusted_proxy_make_the_page_url() {
    // The client sent its own values first; the proxy appended its own, on a second line
    // and after a comma.
    let appended = TestRequest::get()
        .uri("/page?n=1")
        .peer_addr(addr(PROXY))
        .insert_header((header::HOST, "internal:8080"))
        .append_header(("x-forwarded-for", "198.51.100.66"))
        .append_header(("x-forwarded-for", "198.51.100.7"))
        .append_header(("x-forwarded-host", "evil.example"))
        .append_header(("x-forwarded-host", "shop.example"))
        .insert_header(("x-forwarded-proto", "http, https"));
    // An invalid forwarded host or scheme: the request's own.
    let invalid = TestRequest::get()
        .uri("/page?n=2")
        .peer_addr(addr(PROXY))
        .insert_header((header::HOST, "internal:8080"))
        .insert_header(("x-forwarded-host", "evil.example/phish?"))
        .insert_header(("x-forwarded-proto", "javascript"));

    let seen = ips_and_urls(
        |tracking| tracking.trusted_proxy(addr(PROXY).ip()),
        [appended, invalid],
    )
    .await;
    assert_eq!(
        seen,
        [
            expected(&[
                ("ip", Some("198.51.100.7")),
                ("url", Some("https://shop.example/page?n=1"))
            ]),
            expected(&[
                ("ip", Some("10.0.0.1")),
                ("url", Some("http://internal:8080/page?n=2"))
            ]),
        ]
    );
}

#[actix_rt::test]
async fn forwarded_for_from_a_trusted_proxy_range_gives_the_client_ip() {
    // The nearest proxy (fd00::2) wrote the rightmost element, host and scheme included.
    let through_two_proxies = TestRequest::get()
        .uri("/page")
        .peer_addr(addr("[fd00::2]:443"))
        .insert_header((header::HOST, "internal:8080"))
        .insert_header((
            header::FORWARDED,
            r#"for="[2001:db8::7]:4711";proto=http;host=evil.example, for=10.20.30.40;proto=https;host=shop.example"#,
        ))
        .insert_header(("x-forwarded-for", "198.51.100.66"))
        .insert_header(("x-forwarded-host", "evil.example"));
    // `X-Forwarded-*` alone count for nothing once `Forwarded` is chosen.
    let x_forwarded_only = TestRequest::get()
        .uri("/page")
        .peer_addr(addr("10.0.0.3:443"))
        .insert_header((header::HOST, "internal:8080"))
        .insert_header(("x-forwarded-for", "198.51.100.66"))
        .insert_header(("x-forwarded-host", "evil.example"))
        .insert_header(("x-forwarded-proto", "https"));

    let seen = ips_and_urls(
        |tracking| {
            tracking
                .trusted_proxies(
                    ["10.0.0.0/8", "fd00::/8"].map(|range| range.parse::<IpRange>().unwrap()),
                )
                .proxy_header(ProxyHeader::Forwarded)
        },
        [through_two_proxies, x_forwarded_only],
    )
    .await;
    assert_eq!(
        seen,
        [
            expected(&[
                ("ip", Some("2001:db8::7")),
                ("url", Some("https://shop.example/page"))
            ]),
            expected(&[
                ("ip", Some("10.0.0.3")),
                ("url", Some("http://internal:8080/page"))
            ]),
        ]
    );
}

#[actix_rt::test]
async fn a_public_origin_makes_the_page_url_when_no_trusted_proxy_forwards_one() {
    let origin: PublicOrigin = "https://www.shop.example".parse().unwrap();

    let requests = [
        // A client straight in: neither its forwarding headers nor its `Host` count.
        TestRequest::get()
            .uri("/page?n=1")
            .peer_addr(addr(CLIENT))
            .insert_header((header::HOST, "evil.example"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .insert_header(("x-forwarded-proto", "http")),
        // The proxy forwards only the scheme (as AWS load balancers do).
        TestRequest::get()
            .uri("/page?n=2")
            .peer_addr(addr(PROXY))
            .insert_header((header::HOST, "internal:8080"))
            .insert_header(("x-forwarded-for", "198.51.100.7"))
            .insert_header(("x-forwarded-proto", "http")),
        // What the proxy forwards comes first.
        TestRequest::get()
            .uri("/page?n=3")
            .peer_addr(addr(PROXY))
            .insert_header((header::HOST, "internal:8080"))
            .insert_header(("x-forwarded-host", "shop.example")),
    ];

    let seen = ips_and_urls(
        |tracking| {
            tracking
                .trusted_proxy(addr(PROXY).ip())
                .public_origin(origin)
        },
        requests,
    )
    .await;
    assert_eq!(
        seen,
        [
            expected(&[
                ("ip", Some("203.0.113.9")),
                ("url", Some("https://www.shop.example/page?n=1"))
            ]),
            expected(&[
                ("ip", Some("198.51.100.7")),
                ("url", Some("http://www.shop.example/page?n=2"))
            ]),
            expected(&[
                ("ip", Some("10.0.0.1")),
                ("url", Some("https://shop.example/page?n=3"))
            ]),
        ]
    );
}

#[actix_rt::test]
async fn a_huge_x_forwarded_for_from_a_trusted_proxy_is_read_from_the_right() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let tracking = SnowplowTracking::new(tracker.clone())
        .trusted_proxy("10.0.0.0/8".parse::<IpRange>().unwrap());
    let app = test::init_service(App::new().wrap(tracking).configure(routes)).await;

    // 120 KB of client-written hops, then the client and 20 trusted proxies: past
    // MAX_PROXY_HOPS the leftmost trusted hop read stands for the client.
    let mut hops = vec!["6.6.6.6"; 12_000].join(", ");
    hops.push_str(", 198.51.100.7");
    let client_first = format!("{hops}, 10.0.0.9");
    for idx in 0..20 {
        hops.push_str(&format!(", 10.0.1.{idx}"));
    }
    for value in [client_first, hops] {
        let request = TestRequest::get()
            .uri("/page")
            .peer_addr(addr(PROXY))
            .insert_header(("x-forwarded-for", value));
        assert_eq!(call(&app, request.to_request()).await, StatusCode::OK);
    }

    let events = flushed(&tracker, &collector).await;
    let ips: Vec<_> = events.iter().map(|event| event.get("ip")).collect();
    assert_eq!(ips, [Some("198.51.100.7"), Some("10.0.1.4")]);
}

// ---------------------------------------------------------------------------------------------
// What is tracked
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn excluded_paths_and_prefixes_are_not_tracked() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let tracking = SnowplowTracking::new(tracker.clone())
        .exclude_path("/health")
        .exclude_prefix("/static/");
    let app = test::init_service(App::new().wrap(tracking).configure(routes)).await;

    for uri in [
        "/health",
        "/static/app.js",
        "/healthz",
        "/page",
        "/health?probe=1",
    ] {
        let request = TestRequest::get()
            .uri(uri)
            .peer_addr(addr(CLIENT))
            .insert_header((header::HOST, "shop.example"));
        assert_eq!(
            call(&app, request.to_request()).await,
            StatusCode::OK,
            "{uri}"
        );
    }

    let events = flushed(&tracker, &collector).await;
    // `/health` is excluded exactly (its query does not matter); `/healthz` is not.
    assert_eq!(
        urls(&events),
        ["http://shop.example/healthz", "http://shop.example/page"]
    );
}

#[actix_rt::test]
async fn only_successful_gets_are_tracked_by_default() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let app = test::init_service(
        App::new()
            .wrap(SnowplowTracking::new(tracker.clone()))
            .configure(routes),
    )
    .await;

    let requests = [
        (TestRequest::post().uri("/page"), StatusCode::OK),
        (TestRequest::get().uri("/missing"), StatusCode::NOT_FOUND),
        (TestRequest::get().uri("/nowhere"), StatusCode::NOT_FOUND),
        (
            TestRequest::get().uri("/error"),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (TestRequest::get().uri("/redirect"), StatusCode::FOUND),
        (TestRequest::post().uri("/api/orders"), StatusCode::CREATED),
        (TestRequest::get().uri("/page"), StatusCode::OK),
    ];
    for (request, status) in requests {
        let request = request
            .peer_addr(addr(CLIENT))
            .insert_header((header::HOST, "shop.example"));
        assert_eq!(call(&app, request.to_request()).await, status);
    }

    let events = flushed(&tracker, &collector).await;
    assert_eq!(urls(&events), ["http://shop.example/page"]);
    let stats = tracker.stats().await.unwrap();
    assert_eq!(stats.tracked, 1);
}

#[actix_rt::test]
async fn a_custom_decision_function_chooses_the_event() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let decisions = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&decisions);
    let tracking = SnowplowTracking::new(tracker.clone())
        .exclude_path("/health")
        .decide(move |outcome| {
            counted.fetch_add(1, Ordering::SeqCst);
            match (outcome.path(), outcome.status()) {
                ("/api/orders", StatusCode::CREATED) => Structured::new("api", "create-order")
                    .unwrap()
                    .property(outcome.method().as_str())
                    .into(),
                ("/shoes", _) => PageView::new("https://shop.example/shoes")
                    .unwrap()
                    .title("Shoes")
                    .into(),
                ("/missing", StatusCode::NOT_FOUND) => Decision::PageView,
                _ => default_decision(outcome),
            }
        });
    let app = test::init_service(App::new().wrap(tracking).configure(routes)).await;

    for request in [
        TestRequest::post().uri("/api/orders"),
        TestRequest::get().uri("/shoes?utm=1"),
        TestRequest::get().uri("/missing"),
        TestRequest::post().uri("/page"),
        TestRequest::get().uri("/health"),
    ] {
        let request = request
            .peer_addr(addr(CLIENT))
            .insert_header((header::HOST, "shop.example"));
        call(&app, request.to_request()).await;
    }

    // The excluded path never reached the decision function.
    assert_eq!(decisions.load(Ordering::SeqCst), 4);
    let events = flushed(&tracker, &collector).await;
    let seen: Vec<_> = events
        .iter()
        .map(|event| {
            pick(
                event,
                &["e", "se_ca", "se_ac", "se_pr", "url", "page", "ip"],
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            expected(&[
                ("e", Some("se")),
                ("se_ca", Some("api")),
                ("se_ac", Some("create-order")),
                ("se_pr", Some("POST")),
                ("url", None),
                ("page", None),
                ("ip", Some("203.0.113.9")),
            ]),
            expected(&[
                ("e", Some("pv")),
                ("se_ca", None),
                ("se_ac", None),
                ("se_pr", None),
                ("url", Some("https://shop.example/shoes")),
                ("page", Some("Shoes")),
                ("ip", Some("203.0.113.9")),
            ]),
            expected(&[
                ("e", Some("pv")),
                ("se_ca", None),
                ("se_ac", None),
                ("se_pr", None),
                ("url", Some("http://shop.example/missing")),
                ("page", None),
                ("ip", Some("203.0.113.9")),
            ]),
        ]
    );
}

#[actix_rt::test]
async fn tracking_failures_never_change_the_response() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let tracking = SnowplowTracking::new(tracker.clone()).decide(|outcome| {
        if outcome.path() == "/shoes" {
            panic!("a buggy decision function");
        }
        default_decision(outcome)
    });
    let app = test::init_service(App::new().wrap(tracking).configure(routes)).await;

    // A panicking decision function: the response is untouched, nothing is tracked.
    let response = test::call_service(&app, TestRequest::get().uri("/shoes").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(test::read_body(response).await, "shoes");
    // A shut-down tracker: tracking fails, the response is untouched.
    tracker.shutdown(SOON).await.unwrap();
    let response = test::call_service(&app, TestRequest::get().uri("/page").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(test::read_body(response).await, "page");

    assert_eq!(collector.request_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// The request-scoped tracker
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn the_extractor_tracks_handler_events_with_the_request_subject() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let tracking = SnowplowTracking::new(tracker.clone())
        .trusted_proxy(addr(PROXY).ip())
        .user_id(|_| Some("user-42".to_owned()));
    let app = test::init_service(App::new().wrap(tracking).configure(routes)).await;

    let response = test::call_service(
        &app,
        TestRequest::post()
            .uri("/buy")
            .peer_addr(addr(PROXY))
            .insert_header(("x-forwarded-for", "198.51.100.7"))
            .insert_header((header::USER_AGENT, BROWSER))
            .insert_header((header::ACCEPT_LANGUAGE, "de-CH, de;q=0.9"))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let event_id = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
    let stamped = TestRequest::post()
        .uri("/stamped")
        .peer_addr(addr(CLIENT))
        .insert_header((header::USER_AGENT, "curl/8.5"));
    assert_eq!(call(&app, stamped.to_request()).await, StatusCode::OK);

    let events = flushed(&tracker, &collector).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].eid(), Some(event_id.as_str()));
    assert_eq!(
        pick(
            &events[0],
            &["e", "se_ca", "se_ac", "se_la", "ip", "ua", "lang", "uid"]
        ),
        expected(&[
            ("e", Some("se")),
            ("se_ca", Some("shop")),
            ("se_ac", Some("buy")),
            ("se_la", Some("red shoes")),
            ("ip", Some("198.51.100.7")),
            ("ua", Some(BROWSER)),
            ("lang", Some("de-CH")),
            ("uid", Some("user-42")),
        ])
    );
    assert_eq!(
        pick(&events[1], &["e", "se_ac", "ip", "ua", "lang", "uid"]),
        expected(&[
            ("e", Some("se")),
            ("se_ac", Some("stamped")),
            ("ip", Some("203.0.113.9")),
            ("ua", Some("curl/8.5")),
            ("lang", None),
            ("uid", Some("user-42")),
        ])
    );
}

#[actix_rt::test]
async fn the_extractor_uses_app_data_without_the_middleware() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(tracker.clone()))
            .configure(routes)
            .route("/plain", web::post().to(plain)),
    )
    .await;

    // Without the middleware no proxy is trusted: the forwarded address is ignored.
    let buy = TestRequest::post()
        .uri("/buy")
        .peer_addr(addr(CLIENT))
        .insert_header(("x-forwarded-for", "198.51.100.66"))
        .insert_header((header::USER_AGENT, BROWSER));
    assert_eq!(call(&app, buy.to_request()).await, StatusCode::OK);
    let plain = TestRequest::post().uri("/plain").peer_addr(addr(CLIENT));
    assert_eq!(call(&app, plain.to_request()).await, StatusCode::OK);
    // No page view: there is no middleware.
    let page = TestRequest::get().uri("/page").peer_addr(addr(CLIENT));
    assert_eq!(call(&app, page.to_request()).await, StatusCode::OK);

    let events = flushed(&tracker, &collector).await;
    let seen: Vec<_> = events
        .iter()
        .map(|event| pick(event, &["e", "se_ac", "url", "ip", "ua"]))
        .collect();
    assert_eq!(
        seen,
        [
            expected(&[
                ("e", Some("se")),
                ("se_ac", Some("buy")),
                ("url", None),
                ("ip", Some("203.0.113.9")),
                ("ua", Some(BROWSER)),
            ]),
            // `Tracker::stamp` alone: no request subject.
            expected(&[
                ("e", Some("pv")),
                ("se_ac", None),
                ("url", Some("https://shop.example/plain")),
                ("ip", None),
                ("ua", None),
            ]),
        ]
    );
}

#[actix_rt::test]
async fn the_extractor_fails_with_a_plain_500_without_a_tracker() {
    let app = test::init_service(App::new().configure(routes)).await;

    let response = test::call_service(&app, TestRequest::post().uri("/buy").to_request()).await;

    // The explanation is for the app's developers (it is logged): the client sees none.
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = test::read_body(response).await;
    assert!(body.is_empty(), "{body:?}");
    assert!(
        !String::from_utf8_lossy(&body).contains("SnowplowTracking"),
        "{body:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Latency and shutdown
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_slow_collector_does_not_delay_responses() {
    const SLOW: Duration = Duration::from_secs(2);
    const BOUND: Duration = Duration::from_millis(400);
    let collector = TestCollector::with_faults(Faults::none().with_delay(SLOW)).await;
    // Every event is sent at once, in its own request, each answered 2 s later.
    let tracker = Tracker::builder("web")
        .emitter(
            EmitterBuilder::new(collector.endpoint())
                .batch_size(1)
                .max_in_flight(16),
        )
        .flushed_by_hand();
    let app = test::init_service(
        App::new()
            .wrap(SnowplowTracking::new(tracker.clone()))
            .configure(routes),
    )
    .await;
    let page = || TestRequest::get().uri("/page").peer_addr(addr(CLIENT));

    assert_eq!(call(&app, page().to_request()).await, StatusCode::OK);
    // The collector now holds the first event's request for 2 s.
    wait_requests(&collector, 1).await;
    let started = Instant::now();
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let sent = Instant::now();
        assert_eq!(call(&app, page().to_request()).await, StatusCode::OK);
        latencies.push(sent.elapsed());
    }
    let elapsed = started.elapsed();

    assert!(
        latencies.iter().all(|latency| *latency < BOUND),
        "{latencies:?}"
    );
    assert!(elapsed < SLOW, "{elapsed:?}");
    // Every page view did leave for the collector.
    let events = wait_events(&collector, 6).await;
    assert_eq!(events.len(), 6);
    assert_eq!(collector.requests()[0].delay, Some(SLOW));
}

#[actix_rt::test]
async fn stopping_the_server_then_shutting_down_the_tracker_drains_every_page_view() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    // No flush timer and batches of 10: 7 page views stay buffered until the shutdown.
    let tracker = tracker_for(&collector);
    // Raw URLs: their queries tell the page views apart.
    let tracking = SnowplowTracking::new(tracker.clone()).url_redaction(UrlRedaction::raw());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || App::new().wrap(tracking.clone()).configure(routes))
        .workers(2)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
    let handle = server.handle();
    let server = actix_rt::spawn(server);
    let client = awc::Client::default();

    for idx in 0..7 {
        let response = client
            .get(format!("http://{server_addr}/page?n={idx}"))
            .insert_header((header::USER_AGENT, "awc-test"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(collector.request_count(), 0);
    handle.stop(true).await;
    server.await.unwrap().unwrap();
    let report = tracker.shutdown(SOON).await.unwrap();

    assert_eq!(
        (
            report.sent,
            report.dropped.total(),
            report.queued,
            report.timed_out
        ),
        (7, 0, 0, false)
    );
    let events = collector.events();
    let expected_urls: Vec<String> = (0..7)
        .map(|idx| format!("http://{server_addr}/page?n={idx}"))
        .collect();
    assert_eq!(urls(&events), expected_urls);
    assert!(
        events.iter().all(|event| {
            event.get("e") == Some("pv")
                && event.get("ip") == Some("127.0.0.1")
                && event.get("ua") == Some("awc-test")
        }),
        "{events:?}"
    );
}
