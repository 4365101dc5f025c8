//! Request-outcome tracking in the middleware: decisions made on the response (status,
//! content type, latency, route pattern, error), the ready-made decisions, held events sent
//! with their outcome or dropped by a policy, and sampling; each pinned against what the
//! test collector receives, validated against the Iglu schemas (the shipped ones included).
#![cfg(feature = "web")]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::collector::{Faults, RecordedEvent, TestCollector};
use crate::common::iglu;
use crate::common::logs::Logs;
use crate::common::support::SOON;
use crate::web::{call, flushed, tracker_for};
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse};
use futures::future::LocalBoxFuture;
use futures::FutureExt as _;
use serde_json::{json, Value};
use snowplow_actix::web::{
    api_request, default_decision, html_page_view, Decision, HoldError, RequestTracker, SampleRate,
    SnowplowTracking, API_REQUEST_SCHEMA, IGLU_SCHEMAS, REQUEST_OUTCOME_SCHEMA,
};
use snowplow_actix::{Structured, Transaction, TransactionItem};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// How long the slow handler takes: the latency the middleware measures is at least this.
const SLOW: Duration = Duration::from_millis(40);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Holds a `shop/checkout` event (a transaction of two items with `?items`), then answers
/// with the status of `?status` (default 201). With `?condition=success`, the event is
/// held with its own condition: a 2xx response.
async fn checkout(tracking: RequestTracker, query: web::Query<CheckoutQuery>) -> HttpResponse {
    let held = if query.items {
        let order = Transaction::new("order-1", 30.0)
            .unwrap()
            .item(TransactionItem::new("sku-1", 10.0, 1).unwrap())
            .item(TransactionItem::new("sku-2", 20.0, 1).unwrap());
        tracking.track_held(order)
    } else {
        let event = Structured::new("shop", "checkout").unwrap().value(30.0);
        match query.condition.as_deref() {
            Some("success") => {
                tracking.track_held_if(event, |outcome| outcome.status().is_success())
            }
            Some("panic") => tracking.track_held_if(event, |_| panic!("a buggy condition")),
            _ => tracking.track_held(event),
        }
    };
    let status = StatusCode::from_u16(query.status.unwrap_or(201)).unwrap();
    match held {
        Ok(()) => HttpResponse::build(status).finish(),
        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct CheckoutQuery {
    status: Option<u16>,
    #[serde(default)]
    items: bool,
    condition: Option<String>,
}

async fn slow() -> HttpResponse {
    // The work whose time the middleware measures (not a wait of the test).
    actix_rt::time::sleep(SLOW).await;
    HttpResponse::Ok().json(json!({"slow": true}))
}

async fn failing() -> Result<HttpResponse, actix_web::Error> {
    Err(actix_web::error::ErrorBadGateway("the upstream is down"))
}

/// The routes below behind `tracking`, as a test service.
macro_rules! shop {
    ($tracking:expr) => {
        test::init_service(App::new().wrap($tracking).configure(routes)).await
    };
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/page", web::get().to(|| async { "page" }))
        .route(
            "/page/{n}",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body("<p>page</p>")
            }),
        )
        .route(
            "/html",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body("<p>hello</p>")
            }),
        )
        .route(
            "/html",
            web::post().to(|| async { HttpResponse::Ok().content_type("text/html").finish() }),
        )
        .route(
            "/gone",
            web::get().to(|| async { HttpResponse::NotFound().content_type("text/html").finish() }),
        )
        .route(
            "/api/orders/{id}",
            web::get().to(|| async { HttpResponse::Ok().json(json!({"id": 42})) }),
        )
        .route(
            "/api/orders/{id}",
            web::delete().to(HttpResponse::NoContent),
        )
        .route(
            "/api/orders",
            web::post().to(|| async { HttpResponse::Created().json(json!({"id": 43})) }),
        )
        .route("/api/slow", web::get().to(slow))
        .route("/api/failing", web::get().to(failing))
        .route("/checkout", web::post().to(checkout))
        .route("/checkout-then-fail", web::post().to(checkout));
}

/// A middleware inside the tracking one that makes the service fail with an `Err` for
/// `/refused` (before the app: nothing routed) and `/checkout-then-fail` (after the
/// handler, which held an event).
fn failing_service<S, B>(
    request: ServiceRequest,
    service: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    match request.path() {
        "/refused" => Box::pin(async { Err(actix_web::error::ErrorUnauthorized("who are you?")) }),
        "/checkout-then-fail" => {
            let response = service.call(request);
            Box::pin(async move {
                let _answered = response.await?;
                Err(actix_web::error::ErrorServiceUnavailable(
                    "the commit failed",
                ))
            })
        }
        _ => Box::pin(service.call(request)),
    }
}

/// The self-describing event's schema and data (`ue_px`).
fn unstruct(event: &RecordedEvent) -> (String, Value) {
    let envelope = iglu::decode_envelope("ue_px", event.get("ue_px").expect("ue_px")).unwrap();
    let inner = &envelope["data"];
    (
        inner["schema"].as_str().unwrap().to_owned(),
        inner["data"].clone(),
    )
}

/// The context entities (`cx`), as `(schema, data)`.
fn contexts(event: &RecordedEvent) -> Vec<(String, Value)> {
    let Some(cx) = event.get("cx") else {
        return Vec::new();
    };
    let envelope = iglu::decode_envelope("cx", cx).unwrap();
    envelope["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entity| {
            (
                entity["schema"].as_str().unwrap().to_owned(),
                entity["data"].clone(),
            )
        })
        .collect()
}

/// The one request-outcome entity of `event`.
fn outcome_entity(event: &RecordedEvent) -> Value {
    let entities = contexts(event);
    assert_eq!(entities.len(), 1, "{entities:?}");
    assert_eq!(entities[0].0, iglu::REQUEST_OUTCOME);
    entities[0].1.clone()
}

#[test]
fn the_shipped_schemas_are_the_validators_and_spelled_as_the_crate_spells_them() {
    assert_eq!(API_REQUEST_SCHEMA, iglu::API_REQUEST);
    assert_eq!(REQUEST_OUTCOME_SCHEMA, iglu::REQUEST_OUTCOME);
    assert!(iglu::has_schema(iglu::API_REQUEST));
    assert!(iglu::has_schema(iglu::REQUEST_OUTCOME));
    // What the crate embeds is what its package ships (and the validator loads).
    for (uri, text) in IGLU_SCHEMAS {
        let path = iglu::shipped_schema_dir().join(uri.trim_start_matches("iglu:"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{uri}");
    }
    // The validator checks the data, not only the envelope.
    let valid = json!({"method": "GET", "route": "/a/{id}", "status": 200, "latencyMs": 3});
    assert_eq!(iglu::validate(iglu::API_REQUEST, &valid), Ok(()));
    for invalid in [
        json!({"method": "GET", "status": 200}),
        json!({"method": "GET", "status": 200, "latencyMs": -1}),
        json!({"method": "GET", "status": 200, "latencyMs": 1, "path": "/a/42"}),
    ] {
        assert!(
            iglu::validate(iglu::API_REQUEST, &invalid).is_err(),
            "{invalid}"
        );
    }
    let entity = json!({"status": 503, "latencyMs": 0, "requestId": "r", "traceId": TRACE_ID});
    assert_eq!(iglu::validate(iglu::REQUEST_OUTCOME, &entity), Ok(()));
    let bad_trace = json!({"status": 503, "latencyMs": 0, "requestId": "r", "traceId": "x"});
    assert!(iglu::validate(iglu::REQUEST_OUTCOME, &bad_trace).is_err());
}

// ---------------------------------------------------------------------------------------------
// What the decision sees
// ---------------------------------------------------------------------------------------------

/// What a decision function saw of one request.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    route: Option<String>,
    status: u16,
    content_type: Option<String>,
    error: bool,
    service_failed: bool,
    has_request: bool,
}

#[actix_rt::test]
async fn the_decision_sees_the_status_content_type_latency_route_and_error_of_each_request() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let (record, record_latency) = (Arc::clone(&seen), Arc::clone(&latencies));
    let tracking = SnowplowTracking::new(tracker.clone()).decide(move |outcome| {
        record.lock().unwrap().push(Seen {
            method: outcome.method().to_string(),
            route: outcome.route().map(str::to_owned),
            status: outcome.status().as_u16(),
            content_type: outcome.content_type().map(str::to_owned),
            error: outcome.error().is_some(),
            service_failed: outcome.service_failed(),
            has_request: outcome.request().is_some(),
        });
        record_latency.lock().unwrap().push(outcome.latency());
        // One structured event per request, labelled with what the decision saw.
        Structured::new("outcome", outcome.method().as_str())
            .unwrap()
            .label(outcome.route().unwrap_or("none"))
            .property(outcome.status().as_str())
            .into()
    });
    let app = test::init_service(
        App::new()
            .wrap_fn(failing_service)
            .wrap(tracking)
            .configure(routes),
    )
    .await;

    for (request, status) in [
        (TestRequest::get().uri("/html"), 200),
        (TestRequest::get().uri("/api/orders/42"), 200),
        (TestRequest::get().uri("/api/slow"), 200),
        (TestRequest::get().uri("/api/failing"), 502),
        (TestRequest::get().uri("/nowhere/42"), 404),
    ] {
        assert_eq!(call(&app, request.to_request()).await.as_u16(), status);
    }
    // The service fails with an `Err`: actix-web makes the 401 after the middleware.
    let refused = app
        .call(TestRequest::get().uri("/refused").to_request())
        .await;
    assert_eq!(
        refused
            .err()
            .map(|error| error.as_response_error().status_code()),
        Some(StatusCode::UNAUTHORIZED)
    );

    let seen_of = |method: &str, route: Option<&str>, status, content_type: Option<&str>| Seen {
        method: method.into(),
        route: route.map(str::to_owned),
        status,
        content_type: content_type.map(str::to_owned),
        error: false,
        service_failed: false,
        has_request: true,
    };
    assert_eq!(
        *seen.lock().unwrap(),
        [
            seen_of("GET", Some("/html"), 200, Some("text/html")),
            seen_of(
                "GET",
                Some("/api/orders/{id}"),
                200,
                Some("application/json")
            ),
            seen_of("GET", Some("/api/slow"), 200, Some("application/json")),
            Seen {
                error: true,
                ..seen_of("GET", Some("/api/failing"), 502, Some("text/plain"))
            },
            seen_of("GET", None, 404, None),
            Seen {
                error: true,
                service_failed: true,
                has_request: false,
                ..seen_of("GET", None, 401, None)
            },
        ]
    );
    let latencies = latencies.lock().unwrap().clone();
    assert!(latencies[2] >= SLOW, "{latencies:?}");
    assert!(latencies[2] < SLOW + SOON, "{latencies:?}");

    let events = flushed(&tracker, &collector).await;
    let tracked: Vec<_> = events
        .iter()
        .map(|event| {
            (
                event.get("se_la").unwrap().to_owned(),
                event.get("se_pr").unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("/html", "200"),
        ("/api/orders/{id}", "200"),
        ("/api/slow", "200"),
        ("/api/failing", "502"),
        ("none", "404"),
        ("none", "401"),
    ];
    assert_eq!(
        tracked,
        expected.map(|(label, status)| (label.to_owned(), status.to_owned()))
    );
}

// ---------------------------------------------------------------------------------------------
// Ready-made decisions and exclusions
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn api_requests_are_one_event_each_with_method_route_status_and_latency_never_the_path() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let app = shop!(SnowplowTracking::new(tracker.clone()).decide(api_request));

    let requests = [
        (TestRequest::get().uri("/api/orders/4242"), 200),
        (TestRequest::delete().uri("/api/orders/4242"), 204),
        (TestRequest::post().uri("/api/orders"), 201),
        (TestRequest::get().uri("/api/slow"), 200),
        (TestRequest::get().uri("/api/failing"), 502),
        (TestRequest::get().uri("/api/nowhere/4242"), 404),
    ];
    for (request, status) in requests {
        assert_eq!(call(&app, request.to_request()).await.as_u16(), status);
    }

    let events = flushed(&tracker, &collector).await;
    assert_eq!(events.len(), 6, "{events:?}");
    let mut data = Vec::new();
    for event in &events {
        assert_eq!(event.get("e"), Some("ue"));
        let (schema, mut event_data) = unstruct(event);
        assert_eq!(schema, iglu::API_REQUEST);
        // Never the path with its ids, anywhere in the event.
        assert!(
            event.pairs.iter().all(|(_, value)| !value.contains("4242")),
            "{event:?}"
        );
        let latency = event_data["latencyMs"].take();
        assert!(latency.is_u64(), "{latency}");
        data.push((event_data, latency.as_u64().unwrap()));
    }
    let without_latency: Vec<Value> = data.iter().map(|(data, _)| data.clone()).collect();
    assert_eq!(
        without_latency,
        [
            json!({"method": "GET", "route": "/api/orders/{id}", "status": 200, "latencyMs": null}),
            json!({"method": "DELETE", "route": "/api/orders/{id}", "status": 204, "latencyMs": null}),
            json!({"method": "POST", "route": "/api/orders", "status": 201, "latencyMs": null}),
            json!({"method": "GET", "route": "/api/slow", "status": 200, "latencyMs": null}),
            json!({"method": "GET", "route": "/api/failing", "status": 502, "latencyMs": null}),
            json!({"method": "GET", "status": 404, "latencyMs": null}),
        ]
    );
    let slow_ms = data[3].1;
    assert!(slow_ms >= SLOW.as_millis() as u64, "{slow_ms}");
    assert!(slow_ms < (SLOW + SOON).as_millis() as u64, "{slow_ms}");
}

#[actix_rt::test]
async fn html_page_views_track_successful_gets_answered_in_html_only() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let app = shop!(SnowplowTracking::new(tracker.clone()).decide(html_page_view));

    for (request, status) in [
        (TestRequest::get().uri("/page"), 200),         // text/plain
        (TestRequest::get().uri("/api/orders/1"), 200), // JSON
        (TestRequest::post().uri("/html"), 200),        // not a GET
        (TestRequest::get().uri("/gone"), 404),         // HTML, not a success
        (TestRequest::get().uri("/html"), 200),         // the page view
    ] {
        let request = request.insert_header((header::HOST, "shop.example"));
        assert_eq!(call(&app, request.to_request()).await.as_u16(), status);
    }

    let events = flushed(&tracker, &collector).await;
    let urls: Vec<_> = events
        .iter()
        .map(|event| (event.get("e"), event.get("url")))
        .collect();
    assert_eq!(urls, [(Some("pv"), Some("http://shop.example/html"))]);
}

#[actix_rt::test]
async fn excluded_statuses_track_nothing_automatically_but_held_events_still_settle() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let decisions = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&decisions);
    let tracking = SnowplowTracking::new(tracker.clone())
        .exclude_status(StatusCode::NOT_FOUND)
        .exclude_status(StatusCode::CREATED)
        .decide(move |outcome| {
            counted.fetch_add(1, Ordering::SeqCst);
            default_decision(outcome)
        });
    let app = shop!(tracking);

    for (uri, status) in [("/nowhere", 404), ("/gone", 404), ("/html", 200)] {
        let request = TestRequest::get()
            .uri(uri)
            .insert_header((header::HOST, "shop.example"));
        assert_eq!(call(&app, request.to_request()).await.as_u16(), status);
    }
    // 201, excluded: the held event is still sent.
    let checkout = TestRequest::post().uri("/checkout");
    assert_eq!(call(&app, checkout.to_request()).await, StatusCode::CREATED);

    assert_eq!(
        decisions.load(Ordering::SeqCst),
        1,
        "excluded statuses are not decided"
    );
    let events = flushed(&tracker, &collector).await;
    let seen: Vec<_> = events
        .iter()
        .map(|event| (event.get("e"), event.get("url"), event.get("se_ac")))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("pv"), Some("http://shop.example/html"), None),
            (Some("se"), None, Some("checkout")),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Held events
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_held_event_is_sent_after_the_response_with_its_status_latency_request_and_trace_ids() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let tracking = SnowplowTracking::new(tracker.clone())
        .request_id_header(header::HeaderName::from_static("x-correlation-id"));
    let app = shop!(tracking);

    let traced = TestRequest::post()
        .uri("/checkout?status=202")
        .insert_header(("x-correlation-id", "req-42"))
        .insert_header(("traceparent", TRACEPARENT))
        .insert_header((header::USER_AGENT, "held-test"));
    assert_eq!(call(&app, traced.to_request()).await, StatusCode::ACCEPTED);
    // No request id (the default header is not the one configured), an invalid traceparent.
    let untraced = TestRequest::post()
        .uri("/checkout")
        .insert_header(("x-request-id", "not-this-one"))
        .insert_header(("traceparent", "00-zz-00f067aa0ba902b7-01"));
    assert_eq!(call(&app, untraced.to_request()).await, StatusCode::CREATED);

    let events = flushed(&tracker, &collector).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].get("se_ac"), Some("checkout"));
    assert_eq!(
        events[0].get("ua"),
        Some("held-test"),
        "the request's subject"
    );
    let mut traced = outcome_entity(&events[0]);
    assert!(traced["latencyMs"].take().is_u64());
    assert_eq!(
        traced,
        json!({"status": 202, "latencyMs": null, "requestId": "req-42", "traceId": TRACE_ID})
    );
    let mut untraced = outcome_entity(&events[1]);
    let request_id = untraced["requestId"].take();
    assert!(
        uuid::Uuid::parse_str(request_id.as_str().unwrap()).is_ok(),
        "a generated request id: {request_id}"
    );
    assert!(untraced["latencyMs"].take().is_u64());
    assert_eq!(
        untraced,
        json!({"status": 201, "latencyMs": null, "requestId": null})
    );
}

#[actix_rt::test]
async fn a_held_event_whose_response_was_a_5xx_is_dropped_by_the_policy_and_counted() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let tracking = SnowplowTracking::new(tracker.clone())
        .held_policy(|outcome| !outcome.status().is_server_error());
    let app = test::init_service(
        App::new()
            .wrap_fn(failing_service)
            .wrap(tracking)
            .configure(routes),
    )
    .await;

    let requests = [
        // Dropped by the policy: 1 event.
        ("/checkout?status=503", 503),
        // Sent (a 4xx is not a server error).
        ("/checkout?status=409", 409),
        // A transaction of two items, dropped: 3 events (`tr` and two `ti`).
        ("/checkout?status=500&items=true", 500),
        // Its own condition wins over the policy: a 409 is not a success, dropped.
        ("/checkout?status=409&condition=success", 409),
        // Its own condition: a 201, sent.
        ("/checkout?condition=success", 201),
        // A panicking condition drops it.
        ("/checkout?condition=panic", 201),
    ];
    for (uri, status) in requests {
        let request = TestRequest::post().uri(uri);
        assert_eq!(
            call(&app, request.to_request()).await.as_u16(),
            status,
            "{uri}"
        );
    }
    // The handler held its event, then the service failed with a 503 `Err`: dropped.
    let failed = app
        .call(TestRequest::post().uri("/checkout-then-fail").to_request())
        .await;
    assert_eq!(
        failed
            .err()
            .map(|error| error.as_response_error().status_code()),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );

    let events = flushed(&tracker, &collector).await;
    let statuses: Vec<_> = events
        .iter()
        .map(|event| outcome_entity(event)["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(409), json!(201)]);
    let stats = tracker.stats().await.unwrap();
    assert_eq!(stats.discarded.policy, 1 + 3 + 1 + 1 + 1, "{stats:#?}");
    assert_eq!(stats.discarded.sampling, 0);
    assert_eq!(stats.tracked, 2, "discarded events are never tracked");
}

#[test]
fn the_request_tracker_stays_send_and_sync_with_its_held_events() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<RequestTracker>();
}

#[actix_rt::test]
async fn holding_needs_the_middleware_and_a_response_not_yet_known() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let kept: Arc<Mutex<Option<RequestTracker>>> = Arc::default();
    let keep = Arc::clone(&kept);
    let app = test::init_service(
        App::new()
            .wrap(SnowplowTracking::new(tracker.clone()))
            .route(
                "/keep",
                web::post().to(move |tracking: RequestTracker| {
                    *keep.lock().unwrap() = Some(tracking);
                    async { HttpResponse::Ok().finish() }
                }),
            ),
    )
    .await;
    assert_eq!(
        call(&app, TestRequest::post().uri("/keep").to_request()).await,
        StatusCode::OK
    );
    // Kept past the handler: the response is known, its held events settled.
    let late = kept.lock().unwrap().take().unwrap();
    let event = Structured::new("shop", "late").unwrap();
    assert_eq!(late.track_held(event.clone()), Err(HoldError::Settled));
    // It still tracks directly.
    assert!(late.track(event).is_ok());

    // Without the middleware (the tracker from the app data) nothing can hold events.
    let bare = test::init_service(
        App::new()
            .app_data(web::Data::new(tracker.clone()))
            .route("/checkout", web::post().to(checkout)),
    )
    .await;
    let response =
        test::call_service(&bare, TestRequest::post().uri("/checkout").to_request()).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        test::read_body(response).await,
        HoldError::NoMiddleware.to_string()
    );
    // An invalid event is refused at once.
    let invalid = Structured::new("shop", "buy").unwrap().value(f64::NAN);
    assert!(matches!(
        late.track_held(invalid),
        Err(HoldError::InvalidEvent(_))
    ));

    let events = flushed(&tracker, &collector).await;
    let actions: Vec<_> = events.iter().map(|event| event.get("se_ac")).collect();
    assert_eq!(actions, [Some("late")]);
}

#[actix_rt::test]
async fn held_events_of_a_request_that_ends_without_a_response_are_dropped_and_counted() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let app = test::init_service(
        App::new()
            .wrap(SnowplowTracking::new(tracker.clone()))
            .route(
                "/hang",
                web::post().to(|tracking: RequestTracker| async move {
                    let event = Structured::new("shop", "checkout").unwrap();
                    tracking.track_held(event).unwrap();
                    futures::future::pending::<()>().await;
                    HttpResponse::Ok().finish()
                }),
            ),
    )
    .await;

    // Polled once: the handler holds its event and waits; then the client goes away and
    // the request's future is dropped, with no response ever.
    let request = app.call(TestRequest::post().uri("/hang").to_request());
    assert!(request.now_or_never().is_none());

    let stats = tracker.stats().await.unwrap();
    assert_eq!((stats.tracked, stats.discarded.policy), (0, 1));
    assert_eq!(flushed(&tracker, &collector).await, []);
}

// ---------------------------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------------------------

/// A sampling source giving `draws` in order (then 0.999), counting its calls.
fn fixed_draws(draws: &[f64]) -> (impl Fn() -> f64 + Send + Sync + 'static, Arc<AtomicUsize>) {
    let draws = Mutex::new(draws.iter().copied().collect::<VecDeque<f64>>());
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let draw = move || {
        counted.fetch_add(1, Ordering::SeqCst);
        draws.lock().unwrap().pop_front().unwrap_or(0.999)
    };
    (draw, calls)
}

#[actix_rt::test]
async fn sampling_keeps_the_draws_below_the_rate_and_counts_the_rest() {
    let logs = Logs::capture();
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let (draw, calls) = fixed_draws(&[0.05, 0.5, 0.25, 0.9, 0.0, 0.3]);
    let quarter = SampleRate::new(0.25).unwrap();
    let tracking = SnowplowTracking::new(tracker.clone())
        .sampling_source(draw)
        .decide(move |outcome| default_decision(outcome).sampled(quarter));
    let app = shop!(tracking);

    for n in 0..6 {
        let request = TestRequest::get()
            .uri(&format!("/page/{n}"))
            .insert_header((header::HOST, "shop.example"));
        assert_eq!(call(&app, request.to_request()).await, StatusCode::OK);
        // A skipped request is not sampled: it draws nothing.
        let post = TestRequest::post().uri("/html");
        assert_eq!(call(&app, post.to_request()).await, StatusCode::OK);
    }

    assert_eq!(calls.load(Ordering::SeqCst), 6);
    let events = flushed(&tracker, &collector).await;
    let urls: Vec<_> = events.iter().map(|event| event.get("url")).collect();
    assert_eq!(
        urls,
        [
            Some("http://shop.example/page/0"),
            Some("http://shop.example/page/4")
        ]
    );
    let stats = tracker.stats().await.unwrap();
    assert_eq!(
        (
            stats.tracked,
            stats.discarded.sampling,
            stats.discarded.policy
        ),
        (2, 4, 0)
    );
    // Discards are logged once per burst: at its start, and with its count when an event is
    // kept again (0.5, 0.25 and 0.9, ended by 0.0); 0.3 starts a burst that has not ended.
    let lines = logs.lines();
    let starts: Vec<_> = lines
        .iter()
        .filter(|line| line.message.contains("discarding events on purpose"))
        .map(|line| line.get("reason").map(str::to_owned))
        .collect();
    assert_eq!(
        starts,
        [Some("sampling".to_owned()), Some("sampling".to_owned())]
    );
    let ends: Vec<_> = lines
        .iter()
        .filter(|line| line.message.contains("until this one was kept"))
        .map(|line| line.get("discarded").map(str::to_owned))
        .collect();
    assert_eq!(ends, [Some("3".to_owned())]);
}

#[actix_rt::test]
async fn rates_of_one_and_zero_keep_all_and_none_without_drawing() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = tracker_for(&collector);
    let (draw, calls) = fixed_draws(&[]);
    let tracking = SnowplowTracking::new(tracker.clone())
        .sampling_source(draw)
        .decide(|outcome| match outcome.path() {
            "/html" => Decision::PageView.sampled(SampleRate::ALL),
            _ => Decision::PageView.sampled(SampleRate::NONE),
        });
    let app = shop!(tracking);

    for uri in ["/html", "/page", "/html", "/page"] {
        let request = TestRequest::get()
            .uri(uri)
            .insert_header((header::HOST, "shop.example"));
        assert_eq!(call(&app, request.to_request()).await, StatusCode::OK);
    }

    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let events = flushed(&tracker, &collector).await;
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|event| event.get("url") == Some("http://shop.example/html")));
    assert_eq!(tracker.stats().await.unwrap().discarded.sampling, 2);
}
