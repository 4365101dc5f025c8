//! The emitter actor: its state, lifecycle and message handlers.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::backoff::Backoff;
use super::config::{EmitterConfig, Settings};
use super::endpoint::Method;
use super::flush::FlushWaiter;
use super::stats::FinalStats;
use super::stats::{millis, DropReason, EmitterStats};
use crate::messages::{GetStats, Track, TrackBatch};
use crate::stamp::{now_ms, StampedEvent};
use crate::store::{Added, Disposal, EventStore, LeaseId, StoredEvent};
use crate::transport::Transport;
use crate::wire::{BODY_PREFIX, BODY_SUFFIX};

/// An emitter actor. Build one with [`EmitterBuilder`](crate::EmitterBuilder) and start it
/// with [`EmitterConfig::start`].
///
/// It owns its event store, its backoff and its counters. It handles
/// [`Track`](crate::Track) (buffer an event; a full batch starts a flush),
/// [`Flush`](crate::Flush) (send everything; reply when done or at the deadline),
/// [`Shutdown`](crate::Shutdown) and [`GetStats`](crate::GetStats).
pub struct Emitter {
    pub(super) settings: Arc<Settings>,
    pub(super) store: Box<dyn EventStore>,
    pub(super) transport: Option<Box<dyn Transport>>,
    pub(super) backoff: Backoff,
    /// Backing off until then: nothing is sent before.
    pub(super) retry_at: Option<Instant>,
    /// Send partial batches until the queue is empty (a flush or a retry is under way).
    pub(super) draining: bool,
    pub(super) next_seq: u64,
    pub(super) next_request: u64,
    /// Bumped on restart: answers of requests from before are ignored.
    pub(super) generation: u64,
    pub(super) in_flight: HashMap<u64, InFlight>,
    pub(super) in_flight_events: u64,
    pub(super) queued_bytes: u64,
    pub(super) stats: EmitterStats,
    pub(super) waiters: Vec<FlushWaiter>,
    pub(super) next_waiter: u64,
    /// Capacity drops since the buffer last accepted an event (logged once per burst).
    pub(super) capacity_burst: u64,
    /// The arbiter the emitter owns, if it was started on one of its own.
    pub(super) own_arbiter: Option<ArbiterHandle>,
    /// Shut down: events are refused (dropped as `shutdown`), nothing is sent.
    pub(super) closed: bool,
    /// Events refused after the shutdown (logged once).
    pub(super) refused_after_close: u64,
    /// Where the last stats go when the emitter stops or is dropped.
    pub(super) final_stats: FinalStats,
    /// Where sent events are freed (see [`EmitterConfig::release_to`]).
    pub(super) release: Option<Arc<Disposal>>,
}

pub(super) struct InFlight {
    pub(super) lease: LeaseId,
    pub(super) events: Vec<StoredEvent>,
    pub(super) oversize: bool,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("settings", &self.settings)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Emitter {
    pub(crate) fn new(config: EmitterConfig, own_arbiter: Option<ArbiterHandle>) -> Self {
        let settings = config.settings;
        let store = config.store;
        let final_stats = config.final_stats;
        let release = config.release;
        // Events found in a durable store: the readable ones are queued, the unreadable
        // ones are dropped (`store`) at once.
        let mut stats = EmitterStats {
            recovered: store.recovered() + store.unreadable(),
            ..EmitterStats::default()
        };
        stats.dropped.add(DropReason::Store, store.unreadable());
        let draining = store.recovered() > 0;
        let queued_bytes = store.recovered_cost();
        Self {
            backoff: Backoff::new(settings.max_retry_delay, settings.jitter.clone()),
            next_seq: store.next_seq(),
            settings,
            store,
            transport: None,
            retry_at: None,
            // Recovered events go out at start, without waiting for a flush.
            draining,
            next_request: 0,
            generation: 0,
            in_flight: HashMap::new(),
            in_flight_events: 0,
            queued_bytes,
            stats,
            waiters: Vec::new(),
            next_waiter: 0,
            capacity_burst: 0,
            own_arbiter,
            closed: false,
            refused_after_close: 0,
            final_stats,
            release,
        }
    }

    /// The bytes `event` adds to a request of this emitter's method.
    pub(super) fn cost(&self, event: &StampedEvent) -> usize {
        match self.settings.method {
            // Its object in the body plus the comma before the next one.
            Method::Post => event.post_size() + 1,
            // The whole URL: base, `?`, query.
            Method::Get => self.settings.url.len() + 1 + event.query_size(),
        }
    }

    /// Per-request limits for the store's lease: (events, summed costs).
    pub(super) fn lease_limits(&self) -> (usize, usize) {
        match self.settings.method {
            Method::Post => {
                let max_cost = self.settings.byte_limit.map_or(usize::MAX, |limit| {
                    // cost sums each event + 1 comma; the body has one comma fewer.
                    (limit + 1).saturating_sub(BODY_PREFIX.len() + BODY_SUFFIX.len())
                });
                (self.settings.batch_size, max_cost)
            }
            Method::Get => (1, self.settings.byte_limit.unwrap_or(usize::MAX)),
        }
    }

    pub(super) fn queued(&self) -> u64 {
        self.store.len() as u64
    }

    pub(super) fn snapshot(&self) -> EmitterStats {
        EmitterStats {
            queued: self.queued(),
            in_flight: self.in_flight_events,
            queued_bytes: self.queued_bytes,
            in_flight_requests: self.in_flight.len() as u64,
            backoff_ms: if self.retry_at.is_some() {
                millis(self.backoff.current())
            } else {
                0
            },
            ..self.stats.clone()
        }
    }

    pub(super) fn drop_events(&mut self, reason: DropReason, count: u64) {
        self.stats.dropped.add(reason, count);
    }

    /// Frees settled events: through the disposal given for it, or here.
    pub(super) fn release(&self, events: Vec<StoredEvent>) {
        if let Some(disposal) = &self.release {
            // Handed back when too many wait: freed here then.
            let _ = disposal.put(events);
        }
    }

    /// Buffers `event`, received at `now_ms`.
    pub(super) fn accept(&mut self, event: Arc<StampedEvent>, now_ms: u64) {
        self.stats.received += 1;
        if self.closed {
            self.drop_events(DropReason::Shutdown, 1);
            if self.refused_after_close == 0 {
                tracing::warn!(endpoint = %self.settings.endpoint, "emitter is shut down: dropping events tracked after the shutdown");
            }
            self.refused_after_close += 1;
            return;
        }
        let cost = self.cost(&event);
        let stored = StoredEvent {
            seq: self.next_seq,
            event,
            cost,
            attempts: 0,
            received_ms: now_ms,
        };
        self.next_seq += 1;
        match self.store.add(stored) {
            Ok(Added::Stored) => {
                self.queued_bytes += cost as u64;
                if self.capacity_burst > 0 {
                    tracing::warn!(
                        endpoint = %self.settings.endpoint,
                        dropped = self.capacity_burst,
                        "emitter buffer has room again after dropping events"
                    );
                    self.capacity_burst = 0;
                }
            }
            Ok(Added::Full) => {
                self.drop_events(DropReason::Capacity, 1);
                if self.capacity_burst == 0 {
                    tracing::warn!(
                        endpoint = %self.settings.endpoint,
                        queued = self.queued(),
                        in_flight = self.in_flight_events,
                        "emitter buffer full: dropping new events until it has room"
                    );
                }
                self.capacity_burst += 1;
            }
            Err(error) => {
                self.drop_events(DropReason::Store, 1);
                tracing::error!(endpoint = %self.settings.endpoint, %error, "event store refused an event");
            }
        }
    }

    /// Whether a request should go out now.
    /// Runs a user callback; a panic is caught, logged and counted.
    pub(super) fn guarded(&mut self, name: &'static str, callback: impl FnOnce()) {
        if catch_unwind(AssertUnwindSafe(callback)).is_err() {
            self.stats.callback_panics += 1;
            tracing::error!(
                endpoint = %self.settings.endpoint,
                callback = name,
                "callback panicked; its events are accounted for as usual"
            );
        }
    }
}

impl Actor for Emitter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.transport = Some((self.settings.transport)());
        if let Some(at) = self.retry_at {
            self.schedule_retry(at.saturating_duration_since(Instant::now()), ctx);
        }
        let deadlines: Vec<_> = self.waiters.iter().map(|w| (w.id, w.deadline)).collect();
        for (id, deadline) in deadlines {
            self.arm_deadline(id, deadline, ctx);
        }
        tracing::debug!(endpoint = %self.settings.endpoint, "emitter started");
        self.pump(ctx);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        // With addresses still connected the supervisor restarts the emitter; without, it
        // is gone for good and so is the arbiter it owns.
        if !ctx.connected() {
            if let Some(arbiter) = self.own_arbiter.take() {
                arbiter.stop();
            }
        }
    }
}

impl Supervised for Emitter {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.generation += 1;
        self.stats.restarts += 1;
        self.transport = None;
        let mut flights: Vec<InFlight> = self.in_flight.drain().map(|(_, flight)| flight).collect();
        flights.sort_by_key(|flight| std::cmp::Reverse(flight.events.first().map(|e| e.seq)));
        for flight in flights {
            self.in_flight_events -= flight.events.len() as u64;
            self.queued_bytes += flight.events.iter().map(|e| e.cost as u64).sum::<u64>();
            if let Err(error) = self.store.requeue(flight.lease, flight.events) {
                tracing::error!(endpoint = %self.settings.endpoint, %error, "event store failed to requeue in-flight events");
            }
        }
        self.draining = true;
        tracing::warn!(endpoint = %self.settings.endpoint, "emitter restarting; in-flight events requeued");
    }
}

impl Handler<Track> for Emitter {
    type Result = ();

    fn handle(&mut self, Track(event): Track, ctx: &mut Self::Context) {
        self.accept(event, now_ms());
        self.pump(ctx);
    }
}

impl Handler<TrackBatch> for Emitter {
    type Result = ();

    fn handle(&mut self, TrackBatch(events): TrackBatch, ctx: &mut Self::Context) {
        let now = now_ms();
        for event in events {
            self.accept(event, now);
        }
        self.pump(ctx);
    }
}

impl Emitter {
    pub(super) fn publish_final_stats(&self) {
        self.final_stats.set(self.snapshot());
    }
}

/// A bare stop (the arbiter or the system stopping) drops the actor without a shutdown:
/// as a best effort, what is left is counted as dropped (`shutdown`), logged once, and the
/// final stats are published.
impl Drop for Emitter {
    fn drop(&mut self) {
        if !self.closed {
            self.closed = true;
            let left = self.settle_left_over();
            if left > 0 {
                tracing::warn!(
                    endpoint = %self.settings.endpoint,
                    dropped = left,
                    "emitter stopped without a shutdown: unsent events dropped as shutdown"
                );
            }
        }
        self.publish_final_stats();
    }
}

impl Handler<GetStats> for Emitter {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.snapshot())
    }
}
