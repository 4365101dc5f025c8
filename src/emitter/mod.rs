//! The emitter: an actix actor that buffers events and delivers them to a collector.
//!
//! ```text
//!  Track ──▶ ┌──────────── Emitter (its own arbiter, supervised) ─────────────┐
//!  Flush ──▶ │ EventStore ──lease──▶ Request ──Transport──▶ collector          │
//! GetStats ─▶│     ▲                                │                          │
//!            │     └── requeue (front) ◀── retryable failure ── Backoff timer  │
//!            └──────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The actor owns its store, backoff and counters; handlers are thin and translate messages
//! into calls on the pure parts ([`backoff`], [`crate::store`], [`crate::wire`]).

mod actor;
pub mod backoff;
mod config;
mod endpoint;
mod flush;
mod send;
mod stats;

pub use actor::Emitter;
pub use config::{
    EmitterBuilder, EmitterConfig, Failure, FailureCallback, RequestTimeout, SuccessCallback,
    DEFAULT_FLUSH_TIMEOUT, DEFAULT_GET_BATCH_SIZE, DEFAULT_MAILBOX_CAPACITY, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_RETRY_DELAY, DEFAULT_NON_RETRYABLE_CODES, DEFAULT_POST_BATCH_SIZE,
    DEFAULT_REQUEST_TIMEOUT,
};
pub use endpoint::{Endpoint, Method, Protocol};
pub use stats::{DropCounts, DropReason, EmitterStats, FailureReason, FinalStats, FlushReport};

use actix::{Addr, Arbiter, ArbiterHandle, Supervisor};

impl EmitterConfig {
    /// Starts the emitter on a new arbiter of its own, under a supervisor.
    ///
    /// Must be called inside a running actix `System` (an actix-web app, `#[actix_rt::main]`).
    pub fn start(self) -> Addr<Emitter> {
        let arbiter = Arbiter::new();
        let handle = arbiter.handle();
        self.start_on(&handle, Some(handle.clone()))
    }

    /// Starts the emitter on `arbiter`, under a supervisor (several emitters may share one).
    pub fn start_in(self, arbiter: &ArbiterHandle) -> Addr<Emitter> {
        self.start_on(arbiter, None)
    }

    fn start_on(self, arbiter: &ArbiterHandle, own: Option<ArbiterHandle>) -> Addr<Emitter> {
        Supervisor::start_in_arbiter(arbiter, move |_| Emitter::new(self, own))
    }
}
