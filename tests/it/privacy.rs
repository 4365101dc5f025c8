//! The middleware's privacy controls: what the page URL and referrer keep of their query,
//! and how much of the client IP events carry; pinned against what the test collector
//! receives, validated against the Iglu schemas.
#![cfg(feature = "web")]

use crate::common::collector::{Faults, RecordedEvent, TestCollector};
use actix_web::http::{header, StatusCode};
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse};
use snowplow_actix::web::{
    ClientIp, Decision, RequestTracker, SnowplowTracking, UrlRedaction, DEFAULT_CLIENT_IP,
};
use snowplow_actix::{PageView, Structured};

const EMAIL: &str = "bob@example.com";
const PAGE: &str = "/page?email=bob@example.com&utm_source=news&q=shoes&gclid=Cj0&token=s3cret";
const REFERRER: &str = "https://shop.example/account?email=bob@example.com&utm_medium=mail#reset";

use crate::web::{addr, call, flushed, tracker_for};

/// Tracks a structured event through the request-scoped tracker.
async fn buy(tracking: RequestTracker) -> HttpResponse {
    match tracking.track(Structured::new("shop", "buy").unwrap()) {
        Ok(_) => HttpResponse::Ok().finish(),
        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
    }
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/page", web::get().to(|| async { "page" }))
        .route("/users/{id}", web::get().to(|| async { "user" }))
        .route("/buy", web::post().to(buy));
}

/// Sends each request (answered 200) through a middleware set up by `configure`, and
/// returns the events the collector received, each valid against its schemas.
async fn tracked(
    configure: impl FnOnce(SnowplowTracking) -> SnowplowTracking,
    requests: impl IntoIterator<Item = TestRequest>,
) -> Vec<RecordedEvent> {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let tracking = configure(SnowplowTracking::new(tracker.clone()));
    let app = test::init_service(App::new().wrap(tracking).configure(routes)).await;
    for request in requests {
        assert_eq!(call(&app, request.to_request()).await, StatusCode::OK);
    }
    flushed(&tracker, &collector).await
}

fn page_request() -> TestRequest {
    TestRequest::get()
        .uri(PAGE)
        .insert_header((header::HOST, "shop.example"))
        .insert_header((header::REFERER, REFERRER))
}

fn url_and_referrer(event: &RecordedEvent) -> (Option<&str>, Option<&str>) {
    (event.get("url"), event.get("refr"))
}

// ---------------------------------------------------------------------------------------------
// Page URL and referrer
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn by_default_the_page_url_and_referrer_keep_only_the_attribution_parameters() {
    let events = tracked(|tracking| tracking, [page_request()]).await;

    assert_eq!(events.len(), 1);
    assert_eq!(
        url_and_referrer(&events[0]),
        (
            Some("http://shop.example/page?utm_source=news&gclid=Cj0"),
            Some("https://shop.example/account?utm_medium=mail")
        )
    );
    // The query's personal data reached the collector nowhere.
    assert!(
        events[0]
            .pairs
            .iter()
            .all(|(_, value)| !value.contains(EMAIL) && !value.contains("s3cret")),
        "{events:?}"
    );
}

#[actix_rt::test]
async fn url_redaction_keeps_named_parameters_drops_the_query_sends_it_raw_or_rewrites_it() {
    let rules = [
        UrlRedaction::default().keep_param("q"),
        UrlRedaction::no_query(),
        UrlRedaction::raw(),
        // Ids out of the path, query dropped.
        UrlRedaction::custom(|url| {
            let url = url.split('?').next().unwrap_or_default();
            match url.rsplit_once("/users/") {
                Some((base, _id)) => format!("{base}/users/{{id}}"),
                None => url.to_owned(),
            }
        }),
    ];
    let mut seen = Vec::new();
    for rule in rules {
        let user = TestRequest::get()
            .uri("/users/4242?tab=orders")
            .insert_header((header::HOST, "shop.example"));
        let events = tracked(
            move |tracking| tracking.url_redaction(rule),
            [page_request(), user],
        )
        .await;
        seen.push(
            events
                .iter()
                .map(|event| {
                    let (url, referrer) = url_and_referrer(event);
                    (url.map(str::to_owned), referrer.map(str::to_owned))
                })
                .collect::<Vec<_>>(),
        );
    }

    let some = |text: &str| Some(text.to_owned());
    assert_eq!(
        seen,
        [
            vec![
                (
                    some("http://shop.example/page?utm_source=news&q=shoes&gclid=Cj0"),
                    some("https://shop.example/account?utm_medium=mail")
                ),
                (some("http://shop.example/users/4242"), None),
            ],
            vec![
                (
                    some("http://shop.example/page"),
                    some("https://shop.example/account")
                ),
                (some("http://shop.example/users/4242"), None),
            ],
            vec![
                (some(&format!("http://shop.example{PAGE}")), some(REFERRER)),
                (some("http://shop.example/users/4242?tab=orders"), None),
            ],
            vec![
                (
                    some("http://shop.example/page"),
                    some("https://shop.example/account")
                ),
                (some("http://shop.example/users/{id}"), None),
            ],
        ]
    );
}

#[actix_rt::test]
async fn a_custom_page_view_built_on_the_outcome_keeps_the_redaction() {
    let events = tracked(
        |tracking| {
            tracking.decide(|outcome| match outcome.page_url() {
                Some(url) => PageView::new(url).unwrap().title("Page").into(),
                None => Decision::Skip,
            })
        },
        [page_request()],
    )
    .await;

    assert_eq!(
        (
            events[0].get("url"),
            events[0].get("page"),
            events[0].get("refr")
        ),
        (
            Some("http://shop.example/page?utm_source=news&gclid=Cj0"),
            Some("Page"),
            None
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Client IP
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn the_client_ip_is_sent_whole_by_default_truncated_or_omitted() {
    const PROXY: &str = "10.0.0.1:443";
    let requests = || {
        [
            TestRequest::get()
                .uri("/page")
                .peer_addr(addr("203.0.113.9:51000")),
            TestRequest::get()
                .uri("/page")
                .peer_addr(addr("[2001:db8:85a3:8d3:1319:8a2e:370:7348]:51000")),
            // Behind a trusted proxy: the walk uses whole addresses (10.0.0.1 is trusted),
            // the subject carries the client's as the setting says.
            TestRequest::get()
                .uri("/page")
                .peer_addr(addr(PROXY))
                .insert_header(("x-forwarded-for", "198.51.100.7, 10.0.0.1")),
            // The handler's events carry the same subject.
            TestRequest::post()
                .uri("/buy")
                .peer_addr(addr("203.0.113.9:51000")),
        ]
    };
    assert_eq!(DEFAULT_CLIENT_IP, ClientIp::Full);
    let mut seen = Vec::new();
    for setting in [None, Some(ClientIp::Truncated), Some(ClientIp::Omitted)] {
        let events = tracked(
            move |tracking| {
                let tracking = tracking.trusted_proxy(
                    "10.0.0.0/8"
                        .parse::<snowplow_actix::web::IpRange>()
                        .unwrap(),
                );
                match setting {
                    Some(setting) => tracking.client_ip(setting),
                    None => tracking,
                }
            },
            requests(),
        )
        .await;
        let ips: Vec<(Option<String>, Option<String>)> = events
            .iter()
            .map(|event| {
                (
                    event.get("e").map(str::to_owned),
                    event.get("ip").map(str::to_owned),
                )
            })
            .collect();
        seen.push(ips);
    }

    let row = |ips: [Option<&str>; 4]| {
        let kinds = ["pv", "pv", "pv", "se"];
        kinds
            .iter()
            .zip(ips)
            .map(|(kind, ip)| (Some(kind.to_string()), ip.map(str::to_owned)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seen,
        [
            row([
                Some("203.0.113.9"),
                Some("2001:db8:85a3:8d3:1319:8a2e:370:7348"),
                Some("198.51.100.7"),
                Some("203.0.113.9"),
            ]),
            row([
                Some("203.0.113.0"),
                Some("2001:db8:85a3::"),
                Some("198.51.100.0"),
                Some("203.0.113.0"),
            ]),
            row([None, None, None, None]),
        ]
    );
}
