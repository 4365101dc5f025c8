//! Sync flushes and shutdown: waiting until the events received before are settled.
//!
//! A flush remembers the `seq` the next event would get; it is done when no event with a
//! smaller `seq` is queued or in flight. Each flush has its own deadline, armed on the
//! emitter's timer (and re-armed after a restart). A shutdown is a flush that, once done
//! or at its deadline, settles what is left as dropped (`shutdown`) and closes the emitter.

use std::time::Instant;

use actix::prelude::*;
use futures::channel::oneshot;

use super::actor::Emitter;
use super::stats::{DropCounts, DropReason, FlushReport};
use crate::messages::{Flush, Shutdown};

pub(super) struct FlushWaiter {
    pub(super) id: u64,
    /// Done when no event with a smaller `seq` is queued or in flight.
    pub(super) target: u64,
    pub(super) deadline: Instant,
    pub(super) start_sent: u64,
    pub(super) start_dropped: DropCounts,
    /// A shutdown closes the emitter when it resolves.
    pub(super) shutdown: bool,
    pub(super) reply: oneshot::Sender<FlushReport>,
}

impl Emitter {
    /// After anything that may settle events: resolve finished flushes, send more.
    pub(super) fn after_change(&mut self, ctx: &mut Context<Self>) {
        self.resolve_waiters(ctx);
        self.pump(ctx);
    }

    /// The smallest `seq` still queued or in flight.
    pub(super) fn oldest_outstanding(&self) -> Option<u64> {
        let in_flight = self
            .in_flight
            .values()
            .filter_map(|flight| flight.events.first().map(|e| e.seq))
            .min();
        match (self.store.oldest_seq(), in_flight) {
            (Some(queued), Some(flying)) => Some(queued.min(flying)),
            (queued, flying) => queued.or(flying),
        }
    }

    fn is_done(&self, waiter: &FlushWaiter) -> bool {
        self.oldest_outstanding()
            .is_none_or(|oldest| oldest >= waiter.target)
    }

    fn report_for(&self, waiter: &FlushWaiter, timed_out: bool) -> FlushReport {
        FlushReport {
            sent: self.stats.sent - waiter.start_sent,
            dropped: self.stats.dropped.since(&waiter.start_dropped),
            queued: self.queued() + self.in_flight_events,
            timed_out,
        }
    }

    /// Replies to the flushes that are done or past their deadline.
    pub(super) fn resolve_waiters(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let ready: Vec<u64> = self
            .waiters
            .iter()
            .filter(|waiter| now >= waiter.deadline || self.is_done(waiter))
            .map(|waiter| waiter.id)
            .collect();
        for id in ready {
            self.resolve(id, ctx);
        }
    }

    /// Replies to one flush; a shutdown first closes the emitter.
    fn resolve(&mut self, id: u64, ctx: &mut Context<Self>) {
        let Some(at) = self.waiters.iter().position(|w| w.id == id) else {
            return;
        };
        let waiter = self.waiters.remove(at);
        let done = self.is_done(&waiter);
        if !done {
            tracing::warn!(
                endpoint = %self.settings.endpoint,
                queued = self.queued() + self.in_flight_events,
                "flush deadline passed with events still unsent"
            );
        }
        if waiter.shutdown {
            self.close(ctx);
        }
        let report = self.report_for(&waiter, !done);
        let _ = waiter.reply.send(report);
    }

    pub(super) fn arm_deadline(&self, id: u64, deadline: Instant, ctx: &mut Context<Self>) {
        let wait = deadline.saturating_duration_since(Instant::now());
        ctx.run_later(wait, move |act, ctx| act.resolve(id, ctx));
    }

    /// Registers a flush and starts sending; the answer resolves with its report.
    fn flush(
        &mut self,
        flush: Flush,
        shutdown: bool,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<FlushReport> {
        let (reply, answer) = oneshot::channel();
        let id = self.next_waiter;
        self.next_waiter += 1;
        let deadline = Instant::now() + flush.timeout;
        self.waiters.push(FlushWaiter {
            id,
            target: self.next_seq,
            deadline,
            start_sent: self.stats.sent,
            start_dropped: self.stats.dropped,
            shutdown,
            reply,
        });
        self.draining = true;
        self.resolve_waiters(ctx);
        if self.waiters.iter().any(|w| w.id == id) {
            self.arm_deadline(id, deadline, ctx);
        }
        self.pump(ctx);
        Box::pin(async move {
            answer.await.unwrap_or(FlushReport {
                timed_out: true,
                ..FlushReport::default()
            })
        })
    }

    /// Settles everything left as dropped (`shutdown`) and refuses what comes next. A
    /// durable store keeps what is left for the next start instead.
    pub(super) fn close(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.retry_at = None;
        self.generation += 1;
        let left = self.settle_left_over();
        if left > 0 {
            tracing::warn!(
                endpoint = %self.settings.endpoint,
                dropped = left,
                "emitter shut down with events unsent: dropped as shutdown"
            );
        }
        self.publish_final_stats();
        // Flushes still waiting can only get what is now final.
        let others: Vec<u64> = self.waiters.iter().map(|w| w.id).collect();
        for id in others {
            self.resolve(id, ctx);
        }
    }

    /// Removes what is queued or in flight and counts it as dropped (`shutdown`); with a
    /// durable store the events stay stored and only the in-memory view is cleared.
    pub(super) fn settle_left_over(&mut self) -> u64 {
        let mut left = 0;
        for (_, flight) in self.in_flight.drain() {
            if self.store.is_durable() {
                // Kept for the next start: back in the queue, where `queued` counts them.
                self.queued_bytes += flight.events.iter().map(|e| e.cost as u64).sum::<u64>();
                if let Err(error) = self.store.requeue(flight.lease, flight.events) {
                    tracing::error!(endpoint = %self.settings.endpoint, %error, "event store failed to requeue in-flight events at shutdown");
                }
            } else {
                left += flight.events.len() as u64;
                if let Err(error) = self.store.acknowledge(flight.lease) {
                    tracing::error!(endpoint = %self.settings.endpoint, %error, "event store failed to remove events at shutdown");
                }
            }
        }
        self.in_flight_events = 0;
        if !self.store.is_durable() {
            loop {
                match self.store.lease(usize::MAX, usize::MAX) {
                    Ok(lease) if !lease.events.is_empty() => {
                        left += lease.events.len() as u64;
                        let _ = self.store.acknowledge(lease.id);
                    }
                    _ => break,
                }
            }
            self.queued_bytes = 0;
            self.drop_events(DropReason::Shutdown, left);
            left
        } else {
            0
        }
    }
}

impl Handler<Flush> for Emitter {
    type Result = ResponseFuture<FlushReport>;

    fn handle(&mut self, flush: Flush, ctx: &mut Self::Context) -> Self::Result {
        self.flush(flush, false, ctx)
    }
}

impl Handler<Shutdown> for Emitter {
    type Result = ResponseFuture<FlushReport>;

    fn handle(&mut self, shutdown: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        self.flush(Flush::with_timeout(shutdown.timeout), true, ctx)
    }
}
