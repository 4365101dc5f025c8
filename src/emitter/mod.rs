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
//! The delivery rules live in one plain state machine, `delivery.rs` (with the adaptive
//! concurrency limit in `limit.rs` and the backoff formula in [`backoff`]); the actor
//! (`actor.rs`) only feeds it messages, answers and the time, and carries out its commands.

mod actor;
pub mod backoff;
mod config;
mod delivery;
mod endpoint;
mod limit;
mod stats;
mod waiters;

pub use actor::Emitter;
pub(crate) use config::Owner;
pub use config::{
    EmitterBuilder, EmitterConfig, Failure, FailureCallback, RequestTimeout, SuccessCallback,
    DEFAULT_BUFFER_BYTES, DEFAULT_FLUSH_TIMEOUT, DEFAULT_GET_BATCH_SIZE, DEFAULT_MAILBOX_CAPACITY,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_REQUEST_EVENTS,
    DEFAULT_MAX_RETRY_DELAY, DEFAULT_NON_RETRYABLE_CODES, DEFAULT_POST_BATCH_SIZE,
    DEFAULT_REQUEST_TIMEOUT, HEADERS_TOO_LARGE, MAX_MAILBOX_CAPACITY, MIN_REQUEST_BYTES,
};
pub(crate) use delivery::far_future;
pub use delivery::{BRAKE_AFTER, BRAKE_MIN_QUIET, INTAKE_EVENTS};
pub use endpoint::{Endpoint, Method, Protocol};
pub use stats::{DropCounts, DropReason, EmitterStats, FailureReason, FinalStats, FlushReport};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::dev::ContextFut;
use actix::{Addr, ArbiterHandle, Context};

use crate::runtime::Runtime;

impl EmitterConfig {
    /// Starts the emitter on a thread of its own, under a supervisor.
    ///
    /// The thread runs an actix `System` of its own, so the emitter outlives the
    /// application's (`System::stop`, as actix-server calls after a signal): a
    /// [`Shutdown`](crate::Shutdown) sent once the server has stopped still delivers. It
    /// stops once shut down and no address to it remains.
    ///
    /// # Panics
    ///
    /// When the operating system cannot start a thread.
    pub fn start(self) -> Addr<Emitter> {
        let runtime = Runtime::start("snowplow-emitter").expect("start the emitter's thread");
        let arbiter = runtime.arbiter().clone();
        self.start_on(&arbiter, Some(runtime))
    }

    /// Starts the emitter on `arbiter`, under a supervisor (several emitters may share one).
    pub fn start_in(self, arbiter: &ArbiterHandle) -> Addr<Emitter> {
        self.start_on(arbiter, None)
    }

    /// What `actix::Supervisor::start_in_arbiter` does, but with the mailbox at its full
    /// capacity from the first message (see [`crate::mailbox`]).
    fn start_on(self, arbiter: &ArbiterHandle, own: Option<Runtime>) -> Addr<Emitter> {
        let (addr, mailbox) = crate::mailbox::sized(self.settings.mailbox_capacity);
        arbiter.spawn_fn(move || {
            let ctx = mailbox.into_context();
            let emitter = Emitter::new(self, own);
            actix_rt::spawn(Supervised(ctx.into_future(emitter)));
        });
        addr
    }
}

/// Runs an emitter and restarts it when it stops while addresses to it remain: the
/// supervision of `actix::Supervisor` (`Supervised::restarting`, then `started` again).
struct Supervised(ContextFut<Emitter, Context<Emitter>>);

impl Future for Supervised {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        loop {
            match Pin::new(&mut self.0).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    if !self.0.restart() {
                        return Poll::Ready(());
                    }
                }
            }
        }
    }
}
