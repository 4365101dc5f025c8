//! The emitter actor: carries out what the delivery core decides.
//!
//! Every message becomes a call on [`Delivery`] with the time; the actor then executes the
//! commands that come out (send a request on its transport, run a callback, reply to a
//! flush, restart) and arms one timer for the core's next wake-up.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use tracing::Instrument as _;

use super::config::{EmitterConfig, Failure, Owner, Settings};
use super::delivery::{Command, Delivery, Now, INTAKE_CHUNK};
use super::waiters::Waiter;
use crate::messages::{Flush, GetStats, Shutdown, Track, TrackBatch};
use crate::metrics::EmitterMetrics;
use crate::report::{EmitterStats, FinalStats, FlushReport};
use crate::runtime::Runtime;
use crate::store::StoredEvent;
use crate::transport::Transport;
use crate::wire::StampedEvent;

/// An emitter actor. Build one with [`EmitterBuilder`](crate::EmitterBuilder) and start it
/// with [`EmitterConfig::start`].
///
/// It owns its event store, its retry schedules and its counters. It handles
/// [`Track`](crate::emitter::Track) (buffer an event; a full batch starts a flush),
/// [`Flush`](crate::emitter::Flush) (send everything; reply when done or at the deadline),
/// [`Shutdown`](crate::emitter::Shutdown) and [`GetStats`](crate::emitter::GetStats).
pub struct Emitter {
    settings: Arc<Settings>,
    core: Delivery,
    transport: Option<Box<dyn Transport>>,
    /// Flushes waiting for the core's reply.
    replies: HashMap<u64, OneshotSender<FlushReport>>,
    /// A turn of the intake is scheduled.
    taking_in: bool,
    /// The wake-up the armed timer is for.
    armed: Option<Instant>,
    /// The thread the emitter owns, if it was started on one of its own.
    own_runtime: Option<Runtime>,
    /// Where the last stats go when the emitter stops or is dropped.
    final_stats: FinalStats,
    /// The tracker owning the emitter, if any (see [`Owner`]).
    owner: Option<Owner>,
    /// Where its figures are published (see [`crate::metrics`]).
    metrics: EmitterMetrics,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("settings", &self.settings)
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl Emitter {
    pub(crate) fn new(
        config: EmitterConfig,
        own_runtime: Option<Runtime>,
        metrics: EmitterMetrics,
    ) -> Self {
        let settings = config.settings;
        Self {
            core: Delivery::new(settings.clone(), config.store, Now::real()),
            settings,
            transport: None,
            replies: HashMap::new(),
            taking_in: false,
            armed: None,
            own_runtime,
            final_stats: config.final_stats,
            owner: config.owner,
            metrics,
        }
    }

    /// Runs `work`; a panic in it (the transport, the jitter source, a bug) is caught,
    /// logged and counted, and the emitter restarts under its supervisor with its queue,
    /// counters and backoff (requests in flight go back to the front of the queue).
    fn contained<R>(
        &mut self,
        ctx: &mut Context<Self>,
        work: impl FnOnce(&mut Self, &mut Context<Self>) -> R,
    ) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(|| work(self, ctx))) {
            Ok(result) => Some(result),
            Err(panic) => {
                self.core.count_panic();
                let message = crate::error::panic_message(panic.as_ref());
                tracing::error!(
                    emitter = %self.settings.name,
                    method = %self.settings.method,
                    panic = %message,
                    "the emitter panicked: restarting it with its queue"
                );
                ctx.stop();
                None
            }
        }
    }

    /// Publishes the figures the core changed, carries out its commands (after publishing:
    /// whoever gets a flush's reply sees the figures of that moment), then arms the timer for
    /// its next wake-up.
    fn execute(&mut self, ctx: &mut Context<Self>) {
        let commands = self.core.take_commands();
        self.publish();
        for command in commands {
            self.carry_out(command, ctx);
        }
        if let Some(owner) = &self.owner {
            owner.held.store(self.core.held(), Ordering::Relaxed);
        }
        self.arm(ctx);
    }

    fn carry_out(&mut self, command: Command, ctx: &mut Context<Self>) {
        match command {
            Command::Send { id, request, span } => {
                let Some(transport) = &self.transport else {
                    return;
                };
                // The transport's work runs in the request's span; the future lets go of
                // it before the answer is handled, where the span closes.
                let answer = span.in_scope(|| transport.send(request));
                let answer = async move { answer.instrument(span).await };
                ctx.spawn(answer.into_actor(self).map(move |result, act, ctx| {
                    act.contained(ctx, |act, ctx| {
                        if let Some(answered) = act.core.answer(id, result, Now::real()) {
                            act.metrics.answered(answered.outcome, answered.took);
                        }
                        act.execute(ctx);
                    });
                }));
            }
            Command::Sent(events) => {
                if let Some(callback) = self.settings.on_success.clone() {
                    let shared = shared(&events);
                    self.guarded("on_success", || callback(&shared));
                }
                let reclaimer = self.owner.as_ref().map(|owner| &owner.reclaimer);
                crate::reclaim::release(reclaimer, events);
            }
            Command::Failed {
                events,
                reason,
                will_retry,
                dropped,
            } => {
                if let Some(callback) = self.settings.on_failure.clone() {
                    let shared = shared(&events);
                    let failure = Failure {
                        events: &shared,
                        reason: &reason,
                        will_retry,
                        dropped,
                    };
                    self.guarded("on_failure", || callback(&failure));
                }
            }
            Command::Reply { waiter, report } => {
                if let Some(reply) = self.replies.remove(&waiter) {
                    // The asker may have stopped waiting.
                    let _ = reply.send(report);
                }
            }
            Command::Restart => ctx.stop(),
            Command::Closed => self.publish_final_stats(),
        }
    }

    /// One timer, for the earliest wake-up the core asks for.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some(at) = self.core.next_wake() else {
            return;
        };
        if self.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        self.armed = Some(at);
        ctx.run_later(
            at.saturating_duration_since(Instant::now()),
            move |act, ctx| {
                if act.armed == Some(at) {
                    act.armed = None;
                }
                act.contained(ctx, |act, ctx| {
                    act.core.wake(Now::real());
                    act.execute(ctx);
                });
            },
        );
    }

    /// Runs a user callback; a panic is caught, logged and counted.
    fn guarded(&mut self, name: &'static str, callback: impl FnOnce()) {
        if catch_unwind(AssertUnwindSafe(callback)).is_err() {
            self.core.count_callback_panic();
            tracing::error!(
                emitter = %self.settings.name, method = %self.settings.method,
                callback = name,
                "callback panicked; its events are accounted for as usual"
            );
        }
    }

    /// The counters, events the fan-out could not hand over included (as received and
    /// dropped for `capacity`: the tracker counts them once, here is where they show).
    fn stats(&self) -> EmitterStats {
        let mut stats = self.core.snapshot(Now::real());
        if let Some(owner) = &self.owner {
            let refused = owner.refused.load(Ordering::Relaxed);
            stats.received += refused;
            stats.dropped.capacity += refused;
        }
        stats
    }

    fn publish_final_stats(&self) {
        let stats = self.stats();
        self.metrics.publish(|| stats.clone());
        self.final_stats.set(stats);
    }

    /// Publishes the figures (see [`crate::metrics`]).
    fn publish(&self) {
        self.metrics.publish(|| self.stats());
    }

    /// Takes in the whole intake now (at most its bound, see [`INTAKE_EVENTS`](super::INTAKE_EVENTS)):
    /// a flush, a shutdown or a stats request covers every event received before it.
    fn take_in_all(&mut self, ctx: &mut Context<Self>) {
        if self.core.has_intake() {
            self.contained(ctx, |act, ctx| {
                act.core.take_in(usize::MAX, Now::real());
                act.execute(ctx);
            });
        }
    }

    /// Takes in a chunk of the intake on a later turn of the arbiter, after yielding to
    /// answers and timers, until the intake is empty.
    fn schedule_intake(&mut self, ctx: &mut Context<Self>) {
        if self.taking_in || !self.core.has_intake() {
            return;
        }
        self.taking_in = true;
        ctx.spawn(
            actix_rt::task::yield_now()
                .into_actor(self)
                .map(|(), act, ctx| {
                    act.taking_in = false;
                    act.contained(ctx, |act, ctx| {
                        // Chunks until the turn's time is up, then the arbiter's other work.
                        let start = Instant::now();
                        while act.core.take_in(INTAKE_CHUNK, Now::real())
                            && start.elapsed() < INTAKE_TURN
                        {}
                        act.execute(ctx);
                    });
                    act.schedule_intake(ctx);
                }),
        );
    }
}

/// How long one turn of the intake offers events to the store before the emitter yields
/// to its answers, timers and messages.
const INTAKE_TURN: std::time::Duration = std::time::Duration::from_millis(1);

fn timed_out() -> FlushReport {
    FlushReport {
        timed_out: true,
        ..FlushReport::default()
    }
}

/// An emitter's answer to a [`Flush`] or a [`Shutdown`]: a flush starts sending at once,
/// and registers a waiter only when it was sent with `send(..).await` (`do_send` leaves
/// nothing behind); a shutdown is always registered.
#[derive(Debug)]
pub struct FlushResponse {
    /// `None` when making it panicked.
    waiter: Option<Waiter>,
}

impl FlushResponse {
    fn handle(self, ctx: &mut Context<Emitter>, reply: Option<OneshotSender<FlushReport>>) {
        let Some(waiter) = self.waiter else {
            if let Some(reply) = reply {
                let _ = reply.send(timed_out());
            }
            return;
        };
        if reply.is_none() && !waiter.shutdown {
            return;
        }
        // Registered on this turn, once the mailbox's messages are handled.
        ctx.spawn(
            actix::fut::ready(()).map(move |(), act: &mut Emitter, ctx| {
                let id = act.contained(ctx, |act, _| act.core.register(waiter, Now::real()));
                match (id, reply) {
                    (Some(id), Some(reply)) => {
                        act.replies.insert(id, reply);
                    }
                    (None, Some(reply)) => {
                        // Registering panicked: the emitter restarts.
                        let _ = reply.send(timed_out());
                    }
                    (_, None) => {}
                }
                act.contained(ctx, |act, ctx| act.execute(ctx));
            }),
        );
    }
}

impl MessageResponse<Emitter, Flush> for FlushResponse {
    fn handle(self, ctx: &mut Context<Emitter>, reply: Option<OneshotSender<FlushReport>>) {
        FlushResponse::handle(self, ctx, reply);
    }
}

impl MessageResponse<Emitter, Shutdown> for FlushResponse {
    fn handle(self, ctx: &mut Context<Emitter>, reply: Option<OneshotSender<FlushReport>>) {
        FlushResponse::handle(self, ctx, reply);
    }
}

fn shared(events: &[StoredEvent]) -> Vec<Arc<StampedEvent>> {
    events.iter().map(|e| e.event.clone()).collect()
}

impl Actor for Emitter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::debug!(emitter = %self.settings.name, method = %self.settings.method, "emitter started");
        self.contained(ctx, |act, ctx| {
            act.transport = Some((act.settings.transport)());
            act.core.set_ready(true, Now::real());
            act.execute(ctx);
        });
        self.schedule_intake(ctx);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        // With addresses still connected the supervisor restarts the emitter; without, it
        // is gone for good and so is the thread it owns.
        if !ctx.connected() {
            if let Some(runtime) = self.own_runtime.take() {
                runtime.stop();
            }
        }
    }
}

impl actix::Supervised for Emitter {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // The context drops its timers and requests: the core forgets them too.
        self.transport = None;
        self.armed = None;
        self.taking_in = false;
        self.core.restart();
    }
}

impl Handler<Track> for Emitter {
    type Result = ();

    fn handle(&mut self, Track(event): Track, ctx: &mut Self::Context) {
        self.contained(ctx, |act, _| act.core.receive_all([event], Now::real()));
        self.schedule_intake(ctx);
        if !self.core.has_intake() {
            // All refused (a closed emitter): no intake turn will publish it.
            self.publish();
        }
    }
}

impl Handler<TrackBatch> for Emitter {
    type Result = ();

    fn handle(&mut self, TrackBatch(events): TrackBatch, ctx: &mut Self::Context) {
        self.contained(ctx, |act, _| act.core.receive_all(events, Now::real()));
        self.schedule_intake(ctx);
        if !self.core.has_intake() {
            // All refused (a closed emitter): no intake turn will publish it.
            self.publish();
        }
    }
}

impl Handler<Flush> for Emitter {
    type Result = FlushResponse;

    fn handle(&mut self, flush: Flush, ctx: &mut Self::Context) -> Self::Result {
        self.take_in_all(ctx);
        let waiter = self.contained(ctx, |act, ctx| {
            let now = Now::real();
            act.core.start_flush(now);
            let waiter = act.core.waiter(flush.deadline(), false, now);
            act.execute(ctx);
            waiter
        });
        FlushResponse { waiter }
    }
}

impl Handler<Shutdown> for Emitter {
    type Result = FlushResponse;

    fn handle(&mut self, shutdown: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        self.take_in_all(ctx);
        let waiter = self.contained(ctx, |act, _| {
            act.core.waiter(shutdown.deadline(), true, Now::real())
        });
        FlushResponse { waiter }
    }
}

/// The counters once every event received before the request is taken in (so that they
/// count its drops).
impl Handler<GetStats> for Emitter {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, ctx: &mut Self::Context) -> Self::Result {
        self.take_in_all(ctx);
        let stats = self.stats();
        self.metrics.publish(|| stats.clone());
        MessageResult(stats)
    }
}

/// A bare stop (the arbiter or the system stopping) drops the actor without a shutdown:
/// as a best effort, what is left is counted as dropped (`shutdown`), logged once, and the
/// final stats are published.
impl Drop for Emitter {
    fn drop(&mut self) {
        if !self.core.is_closed() {
            let left = self.core.settle_left_over();
            let reported = self
                .owner
                .as_ref()
                .is_some_and(|owner| owner.loss_reported.load(Ordering::Acquire));
            if left > 0 && reported {
                tracing::debug!(
                    emitter = %self.settings.name,
                    method = %self.settings.method,
                    dropped = left,
                    "emitter stopped with its tracker: unsent events dropped as shutdown"
                );
            } else if left > 0 {
                tracing::warn!(
                    emitter = %self.settings.name,
                    method = %self.settings.method,
                    dropped = left,
                    "emitter stopped without a shutdown: unsent events dropped as shutdown"
                );
            }
        }
        self.publish_final_stats();
    }
}
