//! The emitter actor: buffering, cutting requests, classifying answers, retries, flushes.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;

use super::backoff::Backoff;
use super::config::{EmitterConfig, Failure, Settings};
use super::endpoint::Method;
use super::stats::{millis, DropCounts, DropReason, EmitterStats, FailureReason, FlushReport};
use crate::error::TransportError;
use crate::messages::{Flush, GetStats, Track};
use crate::stamp::{now_ms, StampedEvent};
use crate::store::{Added, EventStore, LeaseId, StoredEvent};
use crate::transport::{Request, Response, Transport};
use crate::wire::{push_post_body, Stm, BODY_PREFIX, BODY_SUFFIX};

/// An emitter actor. Build one with [`EmitterBuilder`](crate::EmitterBuilder) and start it
/// with [`EmitterConfig::start`].
///
/// It owns its event store, its backoff and its counters. It handles [`Track`] (buffer an
/// event; send full batches), [`Flush`] (send everything; reply when done or at the
/// deadline) and [`GetStats`].
pub struct Emitter {
    settings: Arc<Settings>,
    store: Box<dyn EventStore>,
    transport: Option<Box<dyn Transport>>,
    backoff: Backoff,
    /// Backing off until then: nothing is sent before.
    retry_at: Option<Instant>,
    /// Send partial batches until the queue is empty (a flush or a retry is under way).
    draining: bool,
    next_seq: u64,
    next_request: u64,
    /// Bumped on restart: answers of requests from before are ignored.
    generation: u64,
    in_flight: HashMap<u64, InFlight>,
    in_flight_events: u64,
    queued_bytes: u64,
    stats: EmitterStats,
    waiters: Vec<FlushWaiter>,
    next_waiter: u64,
    /// Capacity drops since the buffer last accepted an event (logged once per burst).
    capacity_burst: u64,
    /// The arbiter the emitter owns, if it was started on one of its own.
    own_arbiter: Option<ArbiterHandle>,
}

struct InFlight {
    lease: LeaseId,
    events: Vec<StoredEvent>,
    oversize: bool,
}

struct FlushWaiter {
    id: u64,
    /// Done when no event with a smaller `seq` is queued or in flight.
    target: u64,
    deadline: Instant,
    start_sent: u64,
    start_dropped: DropCounts,
    reply: oneshot::Sender<FlushReport>,
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
        let stats = EmitterStats {
            recovered: store.recovered(),
            ..EmitterStats::default()
        };
        Self {
            backoff: Backoff::new(settings.max_retry_delay, settings.jitter.clone()),
            next_seq: store.next_seq(),
            settings,
            store,
            transport: None,
            retry_at: None,
            draining: false,
            next_request: 0,
            generation: 0,
            in_flight: HashMap::new(),
            in_flight_events: 0,
            queued_bytes: 0,
            stats,
            waiters: Vec::new(),
            next_waiter: 0,
            capacity_burst: 0,
            own_arbiter,
        }
    }

    /// The bytes `event` adds to a request of this emitter's method.
    fn cost(&self, event: &StampedEvent) -> usize {
        match self.settings.method {
            // Its object in the body plus the comma before the next one.
            Method::Post => event.post_size() + 1,
            // The whole URL: base, `?`, query.
            Method::Get => self.settings.url.len() + 1 + event.query_size(),
        }
    }

    /// Per-request limits for the store's lease: (events, summed costs).
    fn lease_limits(&self) -> (usize, usize) {
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

    fn queued(&self) -> u64 {
        self.store.len() as u64
    }

    fn snapshot(&self) -> EmitterStats {
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

    fn drop_events(&mut self, reason: DropReason, count: u64) {
        self.stats.dropped.add(reason, count);
    }

    fn accept(&mut self, event: Arc<StampedEvent>) {
        self.stats.received += 1;
        let cost = self.cost(&event);
        let stored = StoredEvent {
            seq: self.next_seq,
            event,
            cost,
            attempts: 0,
            received_ms: now_ms(),
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
    fn wants_to_send(&self) -> bool {
        let queued = self.store.len();
        queued > 0
            && (self.draining
                || !self.waiters.is_empty()
                || queued >= self.settings.batch_size
                || self
                    .settings
                    .byte_limit
                    .is_some_and(|limit| self.queued_bytes >= limit as u64))
    }

    /// Sends requests while allowed: not backing off, below `max_in_flight`, and a reason
    /// to send (a full batch, the byte limit, or a flush under way).
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.transport.is_none() || self.retry_at.is_some() {
            return;
        }
        while self.in_flight.len() < self.settings.max_in_flight && self.wants_to_send() {
            let (max_events, max_cost) = self.lease_limits();
            let lease = match self.store.lease(max_events, max_cost) {
                Ok(lease) if !lease.events.is_empty() => lease,
                Ok(_) => break,
                Err(error) => {
                    tracing::error!(endpoint = %self.settings.endpoint, %error, "event store failed to hand out a batch");
                    break;
                }
            };
            self.send(lease.id, lease.events, max_cost, ctx);
        }
        if self.store.is_empty() {
            self.draining = false;
        }
    }

    fn send(
        &mut self,
        lease: LeaseId,
        mut events: Vec<StoredEvent>,
        max_cost: usize,
        ctx: &mut Context<Self>,
    ) {
        let cost: u64 = events.iter().map(|e| e.cost as u64).sum();
        self.queued_bytes -= cost;
        let oversize =
            events.len() == 1 && self.settings.byte_limit.is_some() && events[0].cost > max_cost;
        for event in &mut events {
            event.attempts += 1;
        }
        let stm_ms = now_ms();
        let stm = Stm::new(stm_ms);
        let (url, body) = match self.settings.method {
            Method::Post => {
                let mut body = String::with_capacity(cost as usize + BODY_PREFIX.len() + 2);
                push_post_body(&mut body, events.iter().map(|e| &*e.event), stm_ms);
                (self.settings.url.clone(), body)
            }
            Method::Get => {
                let mut url = String::with_capacity(cost as usize);
                url.push_str(&self.settings.url);
                url.push('?');
                events[0].event.push_query(&mut url, &stm);
                (url, String::new())
            }
        };
        let request = Request {
            method: self.settings.method,
            url,
            body,
            timeout: self.settings.request_timeout.total(),
            events: events.len(),
        };
        tracing::debug!(
            endpoint = %self.settings.endpoint,
            method = ?request.method,
            events = request.events,
            bytes = request.body.len().max(request.url.len()),
            "sending request"
        );
        let id = self.next_request;
        self.next_request += 1;
        self.stats.requests += 1;
        self.in_flight_events += events.len() as u64;
        self.in_flight.insert(
            id,
            InFlight {
                lease,
                events,
                oversize,
            },
        );
        let generation = self.generation;
        let transport = self.transport.as_ref().expect("pump checks the transport");
        let answer = transport.send(request);
        ctx.spawn(answer.into_actor(self).map(move |result, act, ctx| {
            act.on_answer(id, generation, result, ctx);
        }));
    }

    fn on_answer(
        &mut self,
        id: u64,
        generation: u64,
        result: Result<Response, TransportError>,
        ctx: &mut Context<Self>,
    ) {
        if generation != self.generation {
            return;
        }
        let Some(flight) = self.in_flight.remove(&id) else {
            return;
        };
        self.in_flight_events -= flight.events.len() as u64;
        let reason = match result {
            Ok(Response { status }) if (200..300).contains(&status) => {
                self.on_success(flight);
                self.after_change(ctx);
                return;
            }
            Ok(Response { status }) => FailureReason::Status(status),
            Err(TransportError::Timeout) => FailureReason::Timeout,
            Err(TransportError::Connection(error)) => FailureReason::Connection(error),
            Err(TransportError::Fatal(error)) => FailureReason::Fatal(error),
        };
        let fatal = matches!(reason, FailureReason::Fatal(_));
        self.on_failure(flight, reason, ctx);
        if fatal {
            tracing::error!(endpoint = %self.settings.endpoint, "transport failed fatally: restarting the emitter");
            ctx.stop();
            return;
        }
        self.after_change(ctx);
    }

    fn on_success(&mut self, flight: InFlight) {
        let count = flight.events.len() as u64;
        if let Err(error) = self.store.acknowledge(flight.lease) {
            tracing::error!(endpoint = %self.settings.endpoint, %error, "event store failed to remove sent events");
        }
        self.stats.sent += count;
        self.stats.consecutive_failures = 0;
        self.backoff.reset();
        tracing::debug!(endpoint = %self.settings.endpoint, events = count, "request accepted");
        if let Some(callback) = self.settings.on_success.clone() {
            let events = shared(&flight.events);
            self.guarded("on_success", || callback(&events));
        }
    }

    fn on_failure(&mut self, flight: InFlight, reason: FailureReason, ctx: &mut Context<Self>) {
        let count = flight.events.len();
        let retryable = !flight.oversize && self.settings.retry.retries(&reason);
        if !retryable {
            let dropped_as = if flight.oversize {
                DropReason::Oversize
            } else {
                DropReason::Rejected
            };
            if let Err(error) = self.store.acknowledge(flight.lease) {
                tracing::error!(endpoint = %self.settings.endpoint, %error, "event store failed to remove dropped events");
            }
            self.drop_events(dropped_as, count as u64);
            self.stats.consecutive_failures = 0;
            self.backoff.reset();
            tracing::warn!(
                endpoint = %self.settings.endpoint,
                %reason,
                events = count,
                dropped_as = %dropped_as,
                "request failed and is not retried: events dropped"
            );
            self.report_failure(&flight.events, &reason, false, Some(dropped_as));
            return;
        }

        let now = now_ms();
        let mut retry = Vec::with_capacity(count);
        let mut exhausted = Vec::new();
        let mut expired = Vec::new();
        for event in flight.events {
            if self
                .settings
                .max_attempts
                .is_some_and(|max| event.attempts >= max)
            {
                exhausted.push(event);
            } else if self
                .settings
                .max_event_age
                .is_some_and(|age| now.saturating_sub(event.received_ms) > millis(age))
            {
                expired.push(event);
            } else {
                retry.push(event);
            }
        }
        self.queued_bytes += retry.iter().map(|e| e.cost as u64).sum::<u64>();
        self.stats.retried += retry.len() as u64;
        self.drop_events(DropReason::AttemptsExhausted, exhausted.len() as u64);
        self.drop_events(DropReason::Expired, expired.len() as u64);
        let retried = retry.clone();
        if let Err(error) = self.store.requeue(flight.lease, retry) {
            tracing::error!(endpoint = %self.settings.endpoint, %error, "event store failed to requeue events");
        }
        self.stats.consecutive_failures += 1;
        if self.retry_at.is_none() {
            let delay = self.backoff.next_delay();
            self.schedule_retry(delay, ctx);
        }
        tracing::warn!(
            endpoint = %self.settings.endpoint,
            %reason,
            events = count,
            retried = retried.len(),
            attempts_exhausted = exhausted.len(),
            expired = expired.len(),
            retry_in_ms = millis(self.backoff.current()),
            "request failed"
        );
        if !retried.is_empty() {
            self.report_failure(&retried, &reason, true, None);
        }
        if !exhausted.is_empty() {
            self.report_failure(
                &exhausted,
                &reason,
                false,
                Some(DropReason::AttemptsExhausted),
            );
        }
        if !expired.is_empty() {
            self.report_failure(&expired, &reason, false, Some(DropReason::Expired));
        }
    }

    fn report_failure(
        &mut self,
        events: &[StoredEvent],
        reason: &FailureReason,
        will_retry: bool,
        dropped: Option<DropReason>,
    ) {
        if let Some(callback) = self.settings.on_failure.clone() {
            let events = shared(events);
            let failure = Failure {
                sent: 0,
                events: &events,
                reason,
                will_retry,
                dropped,
            };
            self.guarded("on_failure", || callback(&failure));
        }
    }

    /// Runs a user callback; a panic is caught, logged and counted.
    fn guarded(&mut self, name: &'static str, callback: impl FnOnce()) {
        if catch_unwind(AssertUnwindSafe(callback)).is_err() {
            self.stats.callback_panics += 1;
            tracing::error!(
                endpoint = %self.settings.endpoint,
                callback = name,
                "callback panicked; its events are accounted for as usual"
            );
        }
    }

    fn schedule_retry(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        self.retry_at = Some(Instant::now() + delay);
        ctx.run_later(delay, |act, ctx| {
            act.retry_at = None;
            act.draining = true;
            act.pump(ctx);
        });
    }

    /// After anything that may settle events: resolve finished flushes, send more.
    fn after_change(&mut self, ctx: &mut Context<Self>) {
        self.resolve_waiters(false);
        self.pump(ctx);
    }

    /// The smallest `seq` still queued or in flight.
    fn oldest_outstanding(&self) -> Option<u64> {
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

    fn report_for(&self, waiter: &FlushWaiter, timed_out: bool) -> FlushReport {
        FlushReport {
            sent: self.stats.sent - waiter.start_sent,
            dropped: self.stats.dropped.since(&waiter.start_dropped),
            queued: self.queued() + self.in_flight_events,
            timed_out,
        }
    }

    /// Replies to the flushes that are done, or all of them when `expire_all`.
    fn resolve_waiters(&mut self, expire_all: bool) {
        if self.waiters.is_empty() {
            return;
        }
        let oldest = self.oldest_outstanding();
        let now = Instant::now();
        let waiters = std::mem::take(&mut self.waiters);
        for waiter in waiters {
            let done = oldest.is_none_or(|oldest| oldest >= waiter.target);
            if done || expire_all || now >= waiter.deadline {
                let report = self.report_for(&waiter, !done);
                let _ = waiter.reply.send(report);
            } else {
                self.waiters.push(waiter);
            }
        }
    }

    fn arm_deadline(&self, id: u64, deadline: Instant, ctx: &mut Context<Self>) {
        let wait = deadline.saturating_duration_since(Instant::now());
        ctx.run_later(wait, move |act, _| {
            if let Some(at) = act.waiters.iter().position(|w| w.id == id) {
                let waiter = act.waiters.remove(at);
                let done = act
                    .oldest_outstanding()
                    .is_none_or(|oldest| oldest >= waiter.target);
                let report = act.report_for(&waiter, !done);
                if !done {
                    tracing::warn!(
                        endpoint = %act.settings.endpoint,
                        queued = report.queued,
                        "flush deadline passed with events still unsent"
                    );
                }
                let _ = waiter.reply.send(report);
            }
        });
    }
}

fn shared(events: &[StoredEvent]) -> Vec<Arc<StampedEvent>> {
    events.iter().map(|e| e.event.clone()).collect()
}

impl Actor for Emitter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.mailbox_capacity);
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
        self.accept(event);
        self.pump(ctx);
    }
}

impl Handler<Flush> for Emitter {
    type Result = ResponseFuture<FlushReport>;

    fn handle(&mut self, flush: Flush, ctx: &mut Self::Context) -> Self::Result {
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
            reply,
        });
        self.draining = true;
        self.resolve_waiters(false);
        if !self.waiters.is_empty() {
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
}

impl Handler<GetStats> for Emitter {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.snapshot())
    }
}
