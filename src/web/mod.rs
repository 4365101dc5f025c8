//! actix-web integration: a tracking middleware and a request-scoped tracker.
//!
//! ```text
//! request ─▶ SnowplowTracking ─▶ app ─▶ handler(RequestTracker) ─── track ────────────▶ Tracker ─▶ Fanout ─▶ …
//!                    │                         └─ track_held ─▶ held                    ▲
//!                    │                                           │                      │
//!                    └── response ready: RequestOutcome ─┬─▶ held events: sent with ────┤ (stamp, try_send)
//!                                                        │   the outcome, or dropped    │
//!                                                        └─▶ decide: page view, API ────┘
//!                                                            request, … (or sampled out)
//! ```
//!
//! * [`SnowplowTracking`], the middleware, builds each request's [`Subject`](crate::Subject)
//!   (client IP with a trusted-proxy rule — whole, [truncated](ClientIp) or left out —, user
//!   agent, language, optional user ids) and page URL (its query [redacted](UrlRedaction) to
//!   attribution parameters by default), and once the response is ready tracks what its
//!   decision function says of the request's [`RequestOutcome`] (status, content type,
//!   latency, route pattern, error): by default a page view of every successful `GET`
//!   outside the excluded paths; [`html_page_view`] and [`api_request`] are the other
//!   ready-made decisions, and any decision can be [sampled](Decision::sampled).
//! * [`RequestTracker`], an extractor, tracks a handler's events with the request's subject,
//!   at once or [held](RequestTracker::track_held) until the response is known.
//! * [`IGLU_SCHEMAS`]: the schemas of the API request event and of the held events' context
//!   entity, to host in your Iglu registry.
//!
//! **Nothing here waits on the network or blocks a worker**: tracking stamps an event and
//! hands it to the tracker's fan-out ([`Tracker::track_with_subject`](crate::Tracker)); the
//! emitters deliver it from their own arbiters. A slow or absent collector changes no
//! response, and tracking never changes a response either.
//!
//! Enabled by the `web` feature (on by default).
//!
//! # Using it in actix-web
//!
//! ```no_run
//! use actix_web::{web, App, HttpResponse, HttpServer};
//! use snowplow_actix::web::{RequestTracker, Serve, SnowplowTracking};
//! use snowplow_actix::{EmitterBuilder, Structured, Tracker};
//!
//! async fn buy(tracking: RequestTracker) -> HttpResponse {
//!     if let Ok(event) = Structured::new("shop", "buy") {
//!         let _ = tracking.track(event);
//!     }
//!     HttpResponse::Ok().finish()
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Once, outside the factory: every worker shares it.
//!     let tracker = Tracker::builder("web")
//!         .app_id("shop")
//!         .emitter(EmitterBuilder::new("https://collector.example.com"))
//!         .build()?;
//!     let tracking = SnowplowTracking::new(tracker.clone()).exclude_path("/health");
//!
//!     let server = HttpServer::new(move || {
//!         App::new()
//!             .wrap(tracking.clone())
//!             .route("/", web::get().to(HttpResponse::Ok))
//!             .route("/buy", web::post().to(buy))
//!             .route("/health", web::get().to(HttpResponse::Ok))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .disable_signals()
//!     .run();
//!
//!     // Until SIGTERM or Ctrl-C; then the server and the tracker drain in one budget.
//!     Serve::new(tracker).run(server).await?;
//!     Ok(())
//! }
//! ```
//!
//! See the crate's "Running in production" section for the deadlines, proxies and
//! readiness.

mod decision;
mod extractor;
mod held;
mod iglu;
mod middleware;
mod outcome;
mod privacy;
mod proxy;
mod request;
mod serve;

pub use decision::{
    api_request, api_request_event, default_decision, html_page_view, Decision, InvalidSampleRate,
    SampleRate,
};
pub use extractor::{RequestTracker, RequestTrackerError};
pub use held::HoldError;
pub use iglu::{
    API_REQUEST_SCHEMA, DEFAULT_REQUEST_ID_HEADER, IGLU_SCHEMAS, REQUEST_OUTCOME_SCHEMA,
};
pub use middleware::{SnowplowTracking, SnowplowTrackingMiddleware};
pub use outcome::RequestOutcome;
pub use privacy::{
    ClientIp, UrlRedaction, ATTRIBUTION_PARAMS, ATTRIBUTION_PREFIX, DEFAULT_CLIENT_IP,
};
pub use proxy::{
    InvalidIpRange, InvalidPublicOrigin, IpRange, ProxyHeader, PublicOrigin, MAX_PROXY_HOPS,
};
pub use request::{MAX_LANG_LEN, MAX_NETWORK_USER_ID_LEN, MAX_URL_LEN, MAX_USERAGENT_LEN};
pub use serve::{
    Serve, ServeError, ServeReport, StopSignal, DEFAULT_SERVER_DRAIN, DEFAULT_SHUTDOWN_BUDGET,
};
