//! actix-web integration: a tracking middleware and a request-scoped tracker.
//!
//! ```text
//! request ─▶ SnowplowTracking ─▶ app ─▶ handler(RequestTracker) ──track──▶ Tracker ─▶ Fanout ─▶ …
//!                    │                                                       ▲
//!                    └── response ready: decide ── PageView + request subject ┘ (stamp, try_send)
//! ```
//!
//! * [`SnowplowTracking`], the middleware, builds each request's [`Subject`](crate::Subject)
//!   (client IP with a trusted-proxy rule, user agent, language, optional user ids), and once
//!   the response is ready tracks what its decision function says: by default a page view of
//!   every successful `GET` outside the excluded paths.
//! * [`RequestTracker`], an extractor, tracks a handler's events with the request's subject.
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

mod extractor;
mod middleware;
mod proxy;
mod request;
mod serve;

pub use extractor::{RequestTracker, RequestTrackerError};
pub use middleware::{default_decision, Decision, SnowplowTracking, SnowplowTrackingMiddleware};
pub use proxy::{
    InvalidIpRange, InvalidPublicOrigin, IpRange, ProxyHeader, PublicOrigin, MAX_PROXY_HOPS,
};
pub use request::{MAX_LANG_LEN, MAX_NETWORK_USER_ID_LEN, MAX_URL_LEN, MAX_USERAGENT_LEN};
pub use serve::{
    Serve, ServeError, ServeReport, StopSignal, DEFAULT_SERVER_DRAIN, DEFAULT_SHUTDOWN_BUDGET,
};
