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
//! Here: the [`Emitter`] actor, its settings ([`EmitterBuilder`], whose defaults are the
//! `DEFAULT_*` constants, and the validated [`EmitterConfig`], to start an emitter without
//! a tracker), the messages it takes ([`Track`], [`Flush`], [`Shutdown`], [`GetStats`]) and
//! what its callbacks receive ([`Failure`], [`FailureReason`]). A custom emitter handles the
//! same messages (see [`CustomEmitter`](crate::tracker::CustomEmitter)).
//!
//! Inside, the delivery rules live in one plain state machine, `delivery.rs` (with the
//! adaptive concurrency limit in `limit.rs` and the backoff formula in `backoff.rs`); the
//! actor (`actor.rs`) only feeds it messages, answers and the time, and carries out its
//! commands.

mod actor;
pub(crate) mod backoff;
mod config;
mod delivery;
mod endpoint;
mod limit;
mod waiters;

pub use crate::messages::{Flush, GetStats, Shutdown, Track, DEFAULT_FLUSH_TIMEOUT};
pub use crate::report::{FailureReason, FinalStats};
pub use crate::store::DEFAULT_BUFFER_CAPACITY;
pub use actor::Emitter;
pub(crate) use config::Owner;
pub use config::{
    EmitterBuilder, EmitterConfig, Failure, FailureCallback, RequestTimeout, SuccessCallback,
    DEFAULT_ANONYMOUS, DEFAULT_BUFFER_BYTES, DEFAULT_GET_BATCH_SIZE, DEFAULT_MAILBOX_CAPACITY,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_REQUEST_EVENTS,
    DEFAULT_MAX_RETRY_DELAY, DEFAULT_NON_RETRYABLE_CODES, DEFAULT_POST_BATCH_SIZE,
    DEFAULT_REQUEST_TIMEOUT, MAX_MAILBOX_CAPACITY, MIN_REQUEST_BYTES,
};
pub use delivery::{BRAKE_AFTER, BRAKE_MIN_QUIET};
pub use endpoint::{Endpoint, Protocol};

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::dev::ContextFut;
use actix::{ActorContext, ActorState, Addr, ArbiterHandle, Context};

use crate::metrics::EmitterMetrics;
use crate::runtime::Runtime;

impl EmitterConfig {
    /// Starts the emitter on a thread of its own, under a supervisor.
    ///
    /// The thread runs an actix `System` of its own, so the emitter outlives the
    /// application's (`System::stop`, as actix-server calls after a signal): a
    /// [`Shutdown`](crate::emitter::Shutdown) sent once the server has stopped still delivers.
    ///
    /// The emitter and its thread stop when the last address to it is dropped, as a tracker
    /// does when dropped: send it a `Shutdown` first to deliver what it holds. What is left
    /// then is dropped (counted as `shutdown`, or as outcome unknown for a request awaiting
    /// its answer, in [`EmitterConfig::final_stats`]) and logged in one WARN.
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
    /// It stops when the last address to it is dropped, as [`start`](Self::start) says.
    pub fn start_in(self, arbiter: &ArbiterHandle) -> Addr<Emitter> {
        self.start_on(arbiter, None)
    }

    /// What `actix::Supervisor::start_in_arbiter` does, but with the mailbox at its full
    /// capacity from the first message (see [`crate::mailbox`]).
    ///
    /// Its figures are registered here, with the recorder current on the calling thread.
    fn start_on(self, arbiter: &ArbiterHandle, own: Option<Runtime>) -> Addr<Emitter> {
        let (addr, mailbox) = crate::mailbox::sized(self.settings.mailbox_capacity);
        let tracker = self
            .owner
            .as_ref()
            .map_or("", |owner| owner.namespace.as_str());
        // The store is the application's code: a panic here means no capacity to show.
        let bounded = catch_unwind(AssertUnwindSafe(|| self.store.capacity()))
            .ok()
            .flatten()
            .is_some();
        let metrics = EmitterMetrics::register(tracker, &self.settings.name, bounded);
        arbiter.spawn_fn(move || {
            let ctx = mailbox.into_context();
            let emitter = Emitter::new(self, own, metrics);
            actix_rt::spawn(Supervised(ctx.into_future(emitter)));
        });
        addr
    }
}

/// Runs an emitter and restarts it when it stops while addresses to it remain: the
/// supervision of `actix::Supervisor` (`Supervised::restarting`, then `started` again).
///
/// It also stops an emitter nobody can reach any more. actix keeps an actor running while
/// it has timers or futures of its own, whether or not an address to it remains; an emitter
/// always has some (its retries, a flush's deadline), so left to actix one whose last
/// address is dropped would go on retrying for ever, on a thread nobody can stop, and could
/// never be flushed or shut down. Dropping the last address wakes this future: the emitter
/// then stops as a dropped tracker does, what it still holds dropped as `shutdown` in one
/// WARN (see the emitter's `Drop`).
struct Supervised(ContextFut<Emitter, Context<Emitter>>);

impl Future for Supervised {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        loop {
            match Pin::new(&mut self.0).poll(cx) {
                Poll::Pending => {
                    let ctx = self.0.ctx();
                    if ctx.connected() || ctx.state() != ActorState::Running {
                        return Poll::Pending;
                    }
                    ctx.stop();
                }
                Poll::Ready(()) => {
                    if !self.0.restart() {
                        return Poll::Ready(());
                    }
                }
            }
        }
    }
}
