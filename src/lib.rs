//! A Snowplow-compatible event tracker for actix and actix-web applications.
//!
//! Events are built and validated as plain values, stamped by a [`Tracker`], and delivered
//! to a Snowplow collector by emitters that are actix actors, each on its own supervised
//! arbiter.
//!
//! ```text
//! Tracker::track ─Track─▶ Fanout ─Track─▶ Emitter(s) ─HTTP─▶ collector(s)
//! Tracker::flush ─Flush─▶ Fanout ─Flush─▶ …  ◀── FlushReport (request-reply)
//! ```
//!
//! - [`Tracker`]: the `Clone + Send + Sync` handle; `track` never waits.
//! - [`EmitterBuilder`]: GET or POST, flush triggers by count and bytes, request caps
//!   ([`DEFAULT_MAX_REQUEST_EVENTS`], [`DEFAULT_MAX_REQUEST_BYTES`]), adaptive concurrency
//!   up to [`DEFAULT_MAX_IN_FLIGHT`], per-request retries with backoff, a brake for a
//!   collector that is down ([`BRAKE_AFTER`], [`BRAKE_MIN_QUIET`]), 413 splits and
//!   `Retry-After`, timeouts, retry codes, callbacks, buffer capacity, store and transport.
//!   With more than one request in flight delivery order is not kept; `max_in_flight(1)`
//!   delivers in order.
//! - Events: [`PageView`], [`PagePing`], [`Structured`], [`SelfDescribing`],
//!   [`ScreenView`], [`Transaction`], [`LinkClick`], [`FormChange`], [`FormSubmit`],
//!   [`SiteSearch`], [`AddToCart`], [`RemoveFromCart`]; [`Subject`] and context entities
//!   ([`SelfDescribingJson`]) on any of them.
//! - The pure core ([`Payload`], [`TrackerSettings`], [`wire`]) does no I/O and needs no
//!   runtime.
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
//! use snowplow_actix::{wire, PageView, Structured, Subject, TrackerSettings};
//!
//! let settings = TrackerSettings::new("web")?
//!     .app_id("shop")
//!     .subject(Subject::new().user_id("user-42"));
//!
//! let mut events = settings.stamp(PageView::new("https://shop.example/")?.title("Home"));
//! events.extend(settings.stamp(Structured::new("shop", "add-to-basket")?.value(2.0)?));
//!
//! let body = wire::post_body(&events, snowplow_actix::now_ms());
//! assert!(body.contains(r#""se_ca":"shop""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! - `web` (default): the actix-web middleware and request-scoped tracker ([`web`]).
//! - `sqlite`: a durable event store ([`store::SqliteStore`]).
//!
//! # Minimum supported Rust version
//!
//! Rust 1.89.

mod emitter;
mod error;
mod event;
mod fanout;
pub mod health;
mod mailbox;
mod messages;
mod payload;
mod runtime;
mod self_describing;
mod stamp;
pub mod store;
mod subject;
mod timer;
mod tracker;
pub mod transport;
#[cfg(feature = "web")]
pub mod web;
pub mod wire;

pub use emitter::{
    backoff, DropCounts, DropReason, Emitter, EmitterBuilder, EmitterConfig, EmitterStats,
    Endpoint, Failure, FailureCallback, FailureReason, FinalStats, FlushReport, Method, Protocol,
    RequestTimeout, SuccessCallback, BRAKE_AFTER, BRAKE_MIN_QUIET, DEFAULT_FLUSH_TIMEOUT,
    DEFAULT_GET_BATCH_SIZE, DEFAULT_MAILBOX_CAPACITY, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_REQUEST_EVENTS, DEFAULT_MAX_RETRY_DELAY,
    DEFAULT_NON_RETRYABLE_CODES, DEFAULT_POST_BATCH_SIZE, DEFAULT_REQUEST_TIMEOUT,
    HEADERS_TOO_LARGE, MIN_REQUEST_BYTES,
};
pub use error::{
    AddEmitterError, BuildError, EventError, FlushError, ShutdownError, StoreError, TrackError,
    TransportError,
};
pub use event::{
    AddToCart, Event, EventOptions, FormChange, FormElement, FormSubmit, LinkClick, PagePing,
    PageView, RemoveFromCart, ScreenView, SelfDescribing, SiteSearch, Structured, Transaction,
    TransactionItem,
};
pub use fanout::{EmitterReport, Fanout};
pub use messages::{Flush, GetStats, Shutdown, Track, TrackBatch};
pub use payload::Payload;
pub use self_describing::SelfDescribingJson;
pub use stamp::{
    now_ms, StampedEvent, TrackerSettings, DEFAULT_ENCODE_BASE64, DEFAULT_PLATFORM, TRACKER_VERSION,
};
pub use store::DEFAULT_BUFFER_CAPACITY;
pub use subject::{Platform, Subject};
pub use timer::{FlushTimer, SetFlushInterval};
pub use tracker::{
    CustomEmitter, EmitterHandle, Tracker, TrackerBuilder, TrackerStats, DEFAULT_FLUSH_INTERVAL,
};
#[cfg(feature = "web")]
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
