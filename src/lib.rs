//! A Snowplow-compatible event tracker for actix and actix-web applications.
//!
//! Events are built and validated as plain values, stamped by a [`Tracker`], and delivered
//! to a Snowplow collector by emitters that are actix actors, each supervised on a thread
//! of its own (outside the application's actix `System`, so that they outlive its stop).
//!
//! ```text
//! Tracker::track ──▶ fan-out ──▶ emitter(s) ──HTTP──▶ collector(s)
//! Tracker::flush ──▶ fan-out ──▶ emitter(s)     ◀── FlushReport (request-reply)
//! ```
//!
//! # What is where
//!
//! - **Events**: [`PageView`], [`PagePing`], [`ScreenView`], [`Structured`],
//!   [`SelfDescribing`], [`LinkClick`], [`FormChange`], [`FormSubmit`] (of
//!   [`FormElement`]s), [`SiteSearch`], [`AddToCart`], [`RemoveFromCart`] and
//!   [`Transaction`] (of [`TransactionItem`]s). The [`Event`] trait gives any of them a
//!   [`Subject`] (with its [`Platform`]), context entities ([`SelfDescribingJson`]) and a
//!   true timestamp ([`EventOptions`]). Constructors check required fields at once; an
//!   invalid optional value is reported by `track` ([`EventError`]).
//! - **The tracker**: [`Tracker`], the `Clone + Send + Sync` handle whose `track` never
//!   waits, built by a [`TrackerBuilder`]; its counters in [`TrackerStats`]; its defaults
//!   and the handles of its emitters in [`tracker`].
//! - **Emitters**: [`EmitterBuilder`] sets GET or POST ([`Method`]), flush triggers by
//!   count and bytes, request caps, adaptive concurrency, retries with backoff, a brake for
//!   a collector that is down, 413 splits and `Retry-After`, timeouts, retry codes,
//!   callbacks, buffer capacity, store and transport. They report in [`FlushReport`],
//!   [`EmitterReport`] and [`EmitterStats`] ([`DropCounts`] by [`DropReason`]); whether
//!   they deliver, in [`health`]. Their defaults, the messages they take, the callbacks'
//!   arguments and the emitter actor itself are in [`emitter`]. With more than one request
//!   in flight delivery order is not kept; `max_in_flight(1)` delivers in order.
//! - **Errors**, one type per operation: [`BuildError`], [`EventError`], [`TrackError`],
//!   [`FlushError`], [`StatsError`], [`ShutdownError`], [`AddEmitterError`].
//! - **Extending**: custom emitters ([`tracker::CustomEmitter`], with the messages of
//!   [`emitter`]), transports ([`transport`]), event stores ([`store`]), and the wire format
//!   without a runtime ([`wire`]: stamping, POST bodies, no I/O).
//! - **actix-web** (feature `web`): the [`SnowplowTracking`] middleware, the
//!   [`RequestTracker`] extractor, and [`web::Serve`] for signals and deadlines.
//! - **Observability**: logs and one span per request to the collector ("Logging", below);
//!   with feature `metrics`, the figures of the stats through the `metrics` facade
//!   ([`metrics`]).
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use snowplow_actix::prelude::*;
//!
//! #[actix_rt::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let tracker = Tracker::builder("web")
//!         .app_id("shop")
//!         .emitter(EmitterBuilder::new("http://127.0.0.1:9090"))
//!         .build()?;
//!     tracker.track(PageView::new("https://shop.example/")?.title("Home"))?;
//!     let report = tracker.flush().await?;
//!     println!("{} sent", report.sent);
//!     tracker.shutdown(Duration::from_secs(5)).await?;
//!     Ok(())
//! }
//! ```
//!
//! The wire format, without a runtime:
//!
//! ```
//! use snowplow_actix::{wire, PageView, Structured, Subject, Tracker};
//!
//! let settings = Tracker::builder("web")
//!     .app_id("shop")
//!     .subject(Subject::new().user_id("user-42"))
//!     .settings()?;
//!
//! let mut events = settings.stamp(PageView::new("https://shop.example/")?.title("Home"))?;
//! events.extend(settings.stamp(Structured::new("shop", "add-to-basket")?.value(2.0))?);
//!
//! let body = wire::post_body(&events, wire::now_ms());
//! assert!(body.contains(r#""se_ca":"shop""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Running in production
//!
//! - **Signals and deadlines.** Servers are stopped with SIGTERM (Kubernetes, systemd,
//!   `docker stop`) and, by hand, Ctrl-C. Run the server with
//!   [`web::Serve`]: on the first signal the server finishes the
//!   requests it is serving, then the tracker delivers what they tracked, both within one
//!   budget ([`DEFAULT_SHUTDOWN_BUDGET`](crate::web::DEFAULT_SHUTDOWN_BUDGET), 25 s, under
//!   Kubernetes' default 30 s grace period; set it below yours); a second signal ends at
//!   once, and the report says what was dropped. Build the server with `disable_signals()`
//!   so that `Serve` owns them. Without `Serve`, awaiting `tracker.shutdown(..)` after
//!   `server.run().await` works too (the tracker's threads outlive the `System::stop` that
//!   actix-server does after a signal), but actix-server's own `shutdown_timeout` (30 s by
//!   default) then comes on top of the tracker's deadline: lower it so that both fit.
//! - **One tracker per process.** Build it once, before `HttpServer::new`, and move clones
//!   into the factory: a tracker built inside the factory is one per worker, each with its
//!   own buffer, lost when the worker stops. A tracker dropped without a shutdown logs one
//!   WARN with the events it loses.
//! - **Trusted proxies.** Behind a load balancer or reverse proxy, declare its addresses
//!   with [`SnowplowTracking::trusted_proxy`](crate::web::SnowplowTracking::trusted_proxy),
//!   and the header it writes with
//!   [`proxy_header`](crate::web::SnowplowTracking::proxy_header) (default
//!   `X-Forwarded-For`), or every event carries the proxy's IP; never trust addresses a
//!   client can reach directly, or clients choose their own IP.
//! - **Privacy.** By default the middleware's page URL and referrer keep only the
//!   attribution parameters of their query (`utm_*`, `gclid`, `fbclid`, …:
//!   [`UrlRedaction`](crate::web::UrlRedaction)), so `?email=bob@example.com` never reaches
//!   the collector; [`keep_param`](crate::web::UrlRedaction::keep_param) keeps more,
//!   [`UrlRedaction::raw`](crate::web::UrlRedaction::raw) sends queries as they come, and
//!   [`UrlRedaction::custom`](crate::web::UrlRedaction::custom) rewrites paths that carry
//!   ids. The client IP is sent whole by default:
//!   [`client_ip(ClientIp::Truncated)`](crate::web::SnowplowTracking::client_ip) sends its
//!   network part (IPv4 /24, IPv6 /48), `ClientIp::Omitted` none. Events a handler builds
//!   itself are sent as they are.
//! - **Readiness.** [`Tracker::health`] says whether the collector takes the events; show
//!   it on a status route and alert on it, but do not fail readiness on it (see
//!   [`health`]): the collector is shared, so when it is down every replica would be taken
//!   out of the load balancer at once, while the tracker keeps the events for later.
//! - **A durable store.** Events buffered in memory are lost if the process is killed
//!   (SIGKILL, out of memory, a node lost). The `sqlite` feature's
//!   [`SqliteStore`](crate::store::SqliteStore) keeps them on disk, on a volume that
//!   outlives the container, and a restarted emitter sends them.
//! - **Privacy.** [`EmitterBuilder::anonymous`] makes every request of an emitter carry
//!   `SP-Anonymous: *`, so the collector keeps neither the IP address, nor its cookie, nor
//!   a network user id. It does not change what the events carry: with the middleware each
//!   has the client's `ip` (and `tnuid` when a network user id cookie is named); leave out
//!   of the subject what must not be sent, `user_id` included. Logs never carry payload
//!   contents at INFO or above (see "Logging").
//! - **The endpoint** is the collector's base URL (`https://collector.example.com`): the
//!   emitter adds `/com.snowplowanalytics.snowplow/tp2` (POST) or `/i` (GET). Without a
//!   scheme it is https.
//!
//! # Logging
//!
//! The crate logs through [`tracing`](https://docs.rs/tracing), under targets starting
//! with `snowplow_actix` (`snowplow_actix::emitter::delivery` for requests, drops and the
//! brake, `snowplow_actix::tracker`, `snowplow_actix::fanout`, `snowplow_actix::web::…`,
//! `snowplow_actix::store::sqlite`). Nothing is printed until the application installs a
//! subscriber; with `tracing-subscriber` and its `env-filter` feature:
//!
//! ```no_run
//! use tracing_subscriber::EnvFilter;
//!
//! // RUST_LOG=snowplow_actix=debug shows every request; INFO and above otherwise.
//! tracing_subscriber::fmt()
//!     .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
//!     .init();
//! ```
//!
//! An application on the `log` crate sees the same lines through `tracing`'s `log`
//! feature (`tracing = { version = "0.1", features = ["log"] }` in its own manifest).
//!
//! Levels: **ERROR** for what needs a fix (the collector answers 404 — the first of each
//! burst —, the event store fails, a callback or the metrics recorder panics, a handler
//! extracts a `RequestTracker` without a tracker); **WARN** for each failed request
//! (retried or dropped), a burst of drops (once per burst, not per event), the brake
//! engaging, a shutdown or drop with events left; **INFO** for a stop signal, the brake
//! released, an emitter renamed because its tracker has another of that name, and the
//! tracker's shutdown report; **DEBUG** for each request (a span, below) and each accepted
//! one. No payload contents (URLs, user ids, event fields) are logged at INFO or above.
//!
//! Fields: every line of an emitter carries `emitter` (its name: given with
//! [`EmitterBuilder::name`], or its endpoint) and `method` (`GET`, `POST`); a failed
//! request's line carries `url` (the collector URL it went to, without a query), `reason`
//! (`status 503`, `timeout`, `connection error: …`), `events`, `retried` or `dropped_as`,
//! and a `hint` when the reason alone would not say what to check (a TLS endpoint
//! answered in plain HTTP). Tracker lines carry `namespace`; drop summaries `dropped`;
//! the drop warning `lost`.
//!
//! Spans: each request to a collector is one DEBUG span named `collector_request` (target
//! `snowplow_actix::emitter::delivery`), opened as the request is sent and closed once its
//! answer is handled, with no parent: a subscriber times deliveries with it (`tracing-subscriber`'s
//! `fmt().with_span_events(FmtSpan::CLOSE)` prints each with its duration). The transport's
//! work and the lines logged about the answer are inside it. It carries no payload
//! contents (no URL: a GET's holds the event). Its fields, whose names are stable:
//!
//! | field | when | value |
//! | --- | --- | --- |
//! | `emitter` | from the start | the emitter's name |
//! | `method` | from the start | `GET` or `POST` |
//! | `events` | from the start | events in the request |
//! | `bytes` | from the start | the POST body or the GET URL, as sent |
//! | `attempt` | from the start | 1 for a first attempt, 2 for the first retry, … |
//! | `outcome` | once settled | `sent` (2xx); `retried` (a retryable failure); `dropped` (not retried, or out of attempts or age); `split` (413 or 414 for several events: sent again in smaller requests); `unknown` (still awaiting its answer when the emitter shut down: the collector may have the events); `requeued` (awaiting its answer at a restart, or kept by a durable store at shutdown) |
//! | `status` | once answered | the HTTP status, when there was one |
//! | `reason` | once failed | why: `status 503`, `timeout`, `connection error: …` |
//! | `dropped_as` | once dropped | the [`DropReason`] of its events (`rejected`, `oversize`, …) |
//!
//! # Features
//!
//! - `web` (default): the actix-web middleware, request-scoped tracker and [`web::Serve`]
//!   ([`web`]).
//! - `sqlite`: a durable event store ([`store::SqliteStore`]).
//! - `metrics`: the tracker's and its emitters' figures through the `metrics` facade, for
//!   any exporter ([`metrics`], which lists them).
//!
//! # Minimum supported Rust version
//!
//! Rust 1.89.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod emitter;
mod error;
mod event;
mod fanout;
pub mod health;
mod mailbox;
mod messages;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
mod payload;
mod reclaim;
mod report;
mod runtime;
mod self_describing;
pub mod store;
mod subject;
mod sync;
mod timer;
pub mod tracker;
pub mod transport;
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(feature = "web")))]
pub mod web;
pub mod wire;

// The tracker and what it reports.
pub use report::{DropCounts, DropReason, EmitterReport, EmitterStats, FlushReport};
pub use tracker::{Tracker, TrackerBuilder, TrackerStats};
// Emitters (the rest of their settings, messages and extension points: [`emitter`]).
pub use emitter::EmitterBuilder;
pub use wire::Method;
// Events, their subject and context entities.
pub use event::{
    AddToCart, Event, EventOptions, FormChange, FormElement, FormSubmit, LinkClick, PagePing,
    PageView, RemoveFromCart, ScreenView, SelfDescribing, SiteSearch, Structured, Transaction,
    TransactionItem,
};
pub use self_describing::SelfDescribingJson;
pub use subject::{Platform, Subject};
// Errors.
pub use error::{
    AddEmitterError, BuildError, EventError, FlushError, ShutdownError, StatsError, TrackError,
};
// actix-web.
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(feature = "web")))]
pub use web::{RequestTracker, SnowplowTracking};

/// The names most programs need: `use snowplow_actix::prelude::*;` (it brings the [`Event`]
/// trait, whose methods set an event's subject, contexts and true timestamp).
pub mod prelude {
    pub use crate::{
        EmitterBuilder, Event, Method, PagePing, PageView, ScreenView, SelfDescribing,
        SelfDescribingJson, Structured, Subject, Tracker,
    };
}

/// Iglu schema URIs of the envelopes and events this crate builds.
pub mod schemas {
    pub use crate::event::{
        ADD_TO_CART_SCHEMA, CHANGE_FORM_SCHEMA, LINK_CLICK_SCHEMA, REMOVE_FROM_CART_SCHEMA,
        SCREEN_VIEW_SCHEMA, SITE_SEARCH_SCHEMA, SUBMIT_FORM_SCHEMA,
    };
    pub use crate::self_describing::{CONTEXTS_SCHEMA, UNSTRUCT_EVENT_SCHEMA};
    pub use crate::wire::PAYLOAD_DATA_SCHEMA;
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
