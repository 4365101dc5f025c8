//! The delivery core: every rule that decides what an emitter sends, and when.
//!
//! **No actix, no awc, no timers, no network.** A plain state machine: events, answers,
//! flushes and wake-ups go in, each with the time ([`Now`]); [`Command`]s come out (send
//! this request, these events are settled, reply to this flush, restart the transport),
//! and [`Delivery::next_wake`] says when it wants to be called again. The emitter actor
//! carries the commands out; tests drive the core on a simulated clock. It calls the
//! injected, synchronous [`EventStore`] and draws jitter from the injected source.
//!
//! # The rules
//!
//! - **Triggers and caps.** A flush starts when `batch_size` events or `byte_limit` bytes
//!   are queued, when asked for, or when a retry is due; once started it sends until the
//!   queue is empty. Each POST takes as many queued events as fit `max_request_events` and
//!   the request byte cap (body bytes as sent; `max_request_bytes`, `byte_limit` when set,
//!   and lower after a 413). GET: one event per request. An event larger than the cap goes
//!   alone.
//! - **Concurrency** adapts between 1 and `max_in_flight` ([`super::limit`]); never more
//!   requests outstanding than the limit.
//! - **Answers.** 2xx: sent. 413 (414) for several events: they go back to the front of the
//!   queue, not counted as a failed attempt, and the byte cap drops to half the refused
//!   body. 413/414 for one event, or a request that cannot be built: dropped as
//!   `oversize`. Non-retryable statuses (400, 401, 403, 410, 422, 431 by default): dropped
//!   as `rejected`. Anything else is retried, unless `max_attempts` or `max_event_age`
//!   drop it.
//! - **Retries are per request** (`max_in_flight > 1`): a failed request keeps its events
//!   and waits its own backoff (doubling plus jitter from its own attempt count, capped by
//!   `max_retry_delay`) while other requests go on; a success cuts every waiting retry to
//!   the first step. Order is not kept.
//! - **One at a time** (`max_in_flight == 1`): a failed request's events go back to the
//!   front of the queue and the whole emitter waits the backoff: FIFO delivery.
//! - **The brake.** After [`BRAKE_AFTER`] failed answers in a row and no success for
//!   [`BRAKE_MIN_QUIET`], the collector is taken as unavailable: one request outstanding,
//!   attempts spaced by the emitter's backoff, until the first success, after which the
//!   concurrency starts again from a slow start.
//! - **Retry-After** on a 429 or 503 holds the whole emitter (capped by `max_retry_delay`).
//! - **Flushes** resolve when every event received before them is settled, or at their
//!   deadline; a shutdown then settles what is left as `shutdown` (a durable store keeps
//!   it). While a shutdown waits, a retry due after its deadline gets one last attempt.
//! - **Accounting**: at every moment
//!   `received + recovered = sent + Σ dropped + queued + in_flight`, where `queued`
//!   counts the events waiting for a retry.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::config::{Settings, MIN_REQUEST_BYTES};
use super::limit::Limiter;
use super::waiters::{Waiter, Waiters};
use crate::error::TransportError;
use crate::report::{millis, DropReason, EmitterStats, FailureReason, FlushReport, RequestOutcome};
use crate::store::{Added, EventStore, Guarded, LeaseId, StoredEvent};
use crate::sync::Burst;
use crate::transport::{Request, Response};
use crate::wire::Method;
use crate::wire::StampedEvent;
use crate::wire::{push_post_body, Stm, BODY_PREFIX, BODY_SUFFIX};
use tracing::field::{display, Empty};
use tracing::Span;

/// Failed answers in a row after which the emitter may brake.
pub const BRAKE_AFTER: u64 = 5;
/// How long no success must have come before the emitter brakes: long enough that a
/// collector failing a share of requests is not taken for one that is down, short enough
/// that a down collector is not sent more than a few dozen requests.
pub const BRAKE_MIN_QUIET: Duration = Duration::from_millis(250);

/// Events an emitter holds received but not yet offered to its store, at least: the bound
/// is its buffer's event capacity when that is larger. Beyond it new events are dropped as
/// `capacity`: it bounds what a slow store lets pile up in front of it.
pub(crate) const INTAKE_EVENTS: usize = 8_192;
/// Events offered to the store between two looks at the clock.
pub(crate) const INTAKE_CHUNK: usize = 64;

/// What a TLS client says when the server answers in plain HTTP.
const PLAIN_HTTP_SIGNS: [&str; 2] = ["InvalidContentType", "corrupt message"];
const PLAIN_HTTP_HINT: &str = "the collector answered in plain HTTP: use an http:// endpoint \
     (an endpoint without a scheme is https)";
const NOT_FOUND_HINT: &str = "give the collector's base URL as the endpoint: the emitter adds \
     /com.snowplowanalytics.snowplow/tp2 (POST) or /i (GET); check that a proxy in front \
     of the collector forwards these paths";

/// A moment, on both clocks the core needs: monotonic for schedules, wall-clock
/// milliseconds for event ages and `stm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    pub(crate) at: Instant,
    pub(crate) wall_ms: u64,
}

impl Now {
    /// The real time.
    pub(crate) fn real() -> Self {
        Self {
            at: Instant::now(),
            wall_ms: crate::wire::now_ms(),
        }
    }

    #[cfg(test)]
    pub(crate) fn plus(self, elapsed: Duration) -> Self {
        Self {
            at: self.at + elapsed,
            wall_ms: self.wall_ms + millis(elapsed),
        }
    }
}

/// What the core asks the actor to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send `request` and report its answer with [`Delivery::answer`] under `id`; `span`
    /// is the request's (see [`Delivery::send`]), for the transport's future.
    Send {
        id: u64,
        request: Request,
        span: Span,
    },
    /// These events were accepted by the collector: call `on_success`, then free them.
    Sent(Vec<StoredEvent>),
    /// A request failed: call `on_failure` (only emitted when one is set).
    Failed {
        events: Vec<StoredEvent>,
        reason: FailureReason,
        will_retry: bool,
        dropped: Option<DropReason>,
    },
    /// Answer the flush or shutdown registered under `waiter`.
    Reply { waiter: u64, report: FlushReport },
    /// The transport failed fatally: stop so that the supervisor restarts the emitter.
    Restart,
    /// The emitter is shut down: its final stats can be published.
    Closed,
}

/// A request awaiting its answer.
#[derive(Debug)]
struct Flight {
    lease: LeaseId,
    events: Vec<StoredEvent>,
    bytes: usize,
    sent_at: Instant,
    /// The limit was in use when it was sent (its success may raise the limit).
    at_limit: bool,
    /// The limiter's epoch when it was sent.
    epoch: u64,
    /// The backoff it waited before this attempt (zero for a first attempt).
    delay: Duration,
    /// It was sent while braked: the brake's attempt.
    braked: bool,
    /// Its tracing span, closed when it is settled (see [`Delivery::send`]).
    span: Span,
}

/// What an answered request came to, and how long its answer took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answered {
    pub(crate) outcome: RequestOutcome,
    pub(crate) took: Duration,
}

/// A failed request waiting for its own retry.
#[derive(Debug)]
struct Retry {
    lease: LeaseId,
    events: Vec<StoredEvent>,
    due: Instant,
    delay: Duration,
}

/// How an answer is handled.
enum Verdict {
    /// Too large as a batch: split and sent again.
    Split,
    Drop(DropReason),
    Retry {
        back_pressure: bool,
    },
}

/// The delivery state machine of one emitter. See the module docs for its rules.
pub(crate) struct Delivery {
    settings: Arc<Settings>,
    store: Box<dyn EventStore>,
    limiter: Limiter,
    /// The emitter-wide backoff: one-at-a-time retries and the brake's spacing.
    backoff: Backoff,
    /// Nothing is sent before this (backoff, brake spacing, `Retry-After`).
    hold_until: Option<Instant>,
    braked: bool,
    failed_in_row: u64,
    /// Answers of 404 in a row: the first is an ERROR, the rest of the burst one line at its
    /// end.
    not_found: Burst,
    last_success: Instant,
    /// The request byte cap, lowered by 413 answers.
    request_bytes: usize,
    /// Send partial batches until the queue is empty.
    draining: bool,
    /// A transport is there to send with.
    ready: bool,
    closed: bool,
    next_seq: u64,
    next_request: u64,
    next_waiter: u64,
    in_flight: HashMap<u64, Flight>,
    in_flight_events: u64,
    /// Bytes (costs) of the events in flight.
    in_flight_bytes: u64,
    retries: Vec<Retry>,
    retry_events: u64,
    /// Bytes of the events queued and waiting for a retry.
    queued_bytes: u64,
    waiters: Waiters,
    /// Events received and not yet offered to the store, oldest first (seq and cost set).
    intake: VecDeque<StoredEvent>,
    /// How many events of the intake each message brought, oldest first: the size
    /// triggers are checked once per message, as if it had been handled at once.
    intake_messages: VecDeque<usize>,
    /// The intake's share of `queued_bytes`.
    intake_bytes: u64,
    /// The most events the intake holds.
    intake_bound: usize,
    stats: EmitterStats,
    /// Events dropped for `capacity` since the buffer last took one (logged once per burst).
    capacity_burst: Burst,
    /// Events the store refused since it last took one (logged once per burst).
    store_burst: Burst,
    /// Events received after the shutdown (logged once).
    refused_after_close: Burst,
    commands: Vec<Command>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("stats", &self.stats)
            .field("limit", &self.limiter.current())
            .field("braked", &self.braked)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A core for `settings` over `store` (a durable store may hold recovered events,
    /// which go out at once).
    pub(crate) fn new(settings: Arc<Settings>, store: Box<dyn EventStore>, now: Now) -> Self {
        // A panic in the store becomes a store failure at the call: no counter is left
        // half changed.
        let store: Box<dyn EventStore> = Box::new(Guarded(store));
        let mut stats = EmitterStats {
            recovered: store.recovered() + store.unreadable(),
            ..EmitterStats::default()
        };
        stats.dropped.add(DropReason::Store, store.unreadable());
        Self {
            limiter: Limiter::new(settings.max_in_flight),
            backoff: Backoff::new(settings.max_retry_delay, settings.jitter.clone()),
            hold_until: None,
            braked: false,
            failed_in_row: 0,
            not_found: Burst::default(),
            last_success: now.at,
            request_bytes: settings.request_bytes,
            draining: store.recovered() > 0,
            ready: false,
            closed: false,
            next_seq: store.next_seq(),
            next_request: 0,
            next_waiter: 0,
            in_flight: HashMap::new(),
            in_flight_events: 0,
            in_flight_bytes: 0,
            retries: Vec::new(),
            retry_events: 0,
            queued_bytes: store.recovered_cost(),
            waiters: Waiters::default(),
            intake: VecDeque::new(),
            intake_messages: VecDeque::new(),
            intake_bytes: 0,
            intake_bound: store.capacity().unwrap_or(0).max(INTAKE_EVENTS),
            stats,
            capacity_burst: Burst::default(),
            store_burst: Burst::default(),
            refused_after_close: Burst::default(),
            commands: Vec::new(),
            settings,
            store,
        }
    }

    /// The commands produced since the last call.
    pub(crate) fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// When the core wants [`wake`](Self::wake) called: the earliest retry, hold end or
    /// flush deadline.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let deadlines = self.waiters.next_deadline();
        let sending = self.ready.then(|| {
            let retries = self.retries.iter().map(|r| r.due);
            // While held, the hold's end is what matters; otherwise the retries'.
            // Retries waiting for a free slot go when an answer frees one, not on a timer.
            match self.hold_until {
                Some(hold) => Some(hold),
                None if self.braked || self.in_flight.len() >= self.limit() => None,
                None => retries.min(),
            }
        });
        deadlines.into_iter().chain(sending.flatten()).min()
    }

    // ------------------------------------------------------------------------- inputs

    /// The transport is there (the actor started) or gone (it is restarting).
    pub(crate) fn set_ready(&mut self, ready: bool, now: Now) {
        self.ready = ready;
        if ready {
            self.pump(now);
        }
    }

    /// Receives one event into the intake, or drops it: after a shutdown (`shutdown`), or
    /// when the buffer's bytes or the intake's events are at their bound (`capacity`).
    fn receive(&mut self, event: Arc<StampedEvent>, now: Now) {
        self.stats.received += 1;
        if self.closed {
            self.stats.dropped.add(DropReason::Shutdown, 1);
            if self.refused_after_close.add(1) {
                tracing::warn!(emitter = %self.settings.name, method = %self.settings.method, "emitter is shut down: dropping events tracked after the shutdown");
            }
            return;
        }
        let cost = self.cost(&event);
        if self.queued_bytes + self.in_flight_bytes + cost as u64 > self.settings.buffer_bytes
            || self.intake.len() >= self.intake_bound
        {
            self.refuse_full();
            return;
        }
        self.queued_bytes += cost as u64;
        self.intake_bytes += cost as u64;
        self.intake.push_back(StoredEvent {
            seq: self.next_seq,
            event,
            cost,
            attempts: 0,
            received_ms: now.wall_ms,
        });
        self.next_seq += 1;
    }

    /// Offers one event of the intake to the store.
    fn admit(&mut self, stored: StoredEvent) {
        let cost = stored.cost as u64;
        match self.store.add(stored) {
            Ok(Added::Stored) => {
                if let Some(dropped) = self.store_burst.end() {
                    tracing::warn!(
                        emitter = %self.settings.name, method = %self.settings.method,
                        dropped,
                        "event store takes events again after refusing some"
                    );
                }
                if let Some(dropped) = self.capacity_burst.end() {
                    tracing::warn!(
                        emitter = %self.settings.name, method = %self.settings.method,
                        dropped,
                        "emitter buffer has room again after dropping events"
                    );
                }
            }
            Ok(Added::Full) => {
                self.queued_bytes -= cost;
                self.refuse_full();
            }
            Err(error) => {
                self.queued_bytes -= cost;
                self.stats.dropped.add(DropReason::Store, 1);
                if self.store_burst.add(1) {
                    tracing::error!(emitter = %self.settings.name, method = %self.settings.method, %error, "event store refused an event: dropping events as store until it takes them again");
                }
            }
        }
    }

    /// Drops a new event that does not fit the buffer (events or bytes): `capacity`, logged
    /// once per burst.
    fn refuse_full(&mut self) {
        self.stats.dropped.add(DropReason::Capacity, 1);
        if self.capacity_burst.add(1) {
            tracing::warn!(
                emitter = %self.settings.name, method = %self.settings.method,
                queued = self.store.len() as u64 + self.retry_events,
                in_flight = self.in_flight_events,
                queued_bytes = self.queued_bytes,
                in_flight_bytes = self.in_flight_bytes,
                "emitter buffer full: dropping new events until it has room"
            );
        }
    }

    /// Receives one message's events into the intake; [`take_in`](Self::take_in) offers
    /// them to the store.
    pub(crate) fn receive_all(
        &mut self,
        events: impl IntoIterator<Item = Arc<StampedEvent>>,
        now: Now,
    ) {
        let before = self.intake.len();
        for event in events {
            self.receive(event, now);
        }
        let brought = self.intake.len() - before;
        if brought > 0 {
            self.intake_messages.push_back(brought);
        }
    }

    /// Offers at most `max` events of the intake to the store, then sends what is due;
    /// `true` while the intake has more.
    pub(crate) fn take_in(&mut self, max: usize, now: Now) -> bool {
        for _ in 0..max {
            let Some(stored) = self.intake.pop_front() else {
                break;
            };
            self.intake_bytes -= stored.cost as u64;
            self.admit(stored);
            if let Some(left) = self.intake_messages.front_mut() {
                *left -= 1;
                if *left == 0 {
                    // The last event of its message: send what its message made due.
                    self.intake_messages.pop_front();
                    self.pump(now);
                }
            }
        }
        self.after_change(now);
        !self.intake.is_empty()
    }

    /// Whether events wait in the intake.
    pub(crate) fn has_intake(&self) -> bool {
        !self.intake.is_empty()
    }

    /// Receives events and takes them all in at once (the simulated clock's intake).
    #[cfg(test)]
    pub(crate) fn receive_and_take_in(
        &mut self,
        events: impl IntoIterator<Item = Arc<StampedEvent>>,
        now: Now,
    ) {
        self.receive_all(events, now);
        self.take_in(usize::MAX, now);
    }

    /// Timers: retries due, a hold ended, flush deadlines.
    pub(crate) fn wake(&mut self, now: Now) {
        self.after_change(now);
    }

    /// Registers a sync flush (`shutdown`: then closes the emitter) waiting until
    /// `deadline`; its [`Command::Reply`] comes under the returned id, possibly at once.
    #[cfg(test)]
    pub(crate) fn flush(&mut self, deadline: Instant, shutdown: bool, now: Now) -> u64 {
        let waiter = self.waiter(deadline, shutdown, now);
        self.register(waiter, now)
    }

    /// Starts sending everything received so far (an async flush: nothing waits for it).
    pub(crate) fn start_flush(&mut self, now: Now) {
        if self.closed {
            return;
        }
        self.draining = true;
        self.pump(now);
    }

    /// A flush waiting for everything received so far, not registered yet: its report
    /// counts from now.
    pub(crate) fn waiter(&mut self, deadline: Instant, shutdown: bool, now: Now) -> Waiter {
        let id = self.next_waiter;
        self.next_waiter += 1;
        Waiter {
            id,
            target: self.next_seq,
            deadline,
            since: now.at,
            start_sent: self.stats.sent,
            start_dropped: self.stats.dropped,
            start_unknown: self.stats.outcome_unknown,
            shutdown,
        }
    }

    /// Registers `waiter` (a shutdown: then closes the emitter); its [`Command::Reply`]
    /// comes under the returned id, possibly at once.
    pub(crate) fn register(&mut self, waiter: Waiter, now: Now) -> u64 {
        let id = waiter.id;
        if waiter.shutdown && now.at < waiter.deadline && !self.closed {
            // A shutdown's last call: what would wait past its deadline goes now, once.
            for retry in &mut self.retries {
                if retry.due > waiter.deadline {
                    retry.due = now.at;
                }
            }
            if self.hold_until.is_some_and(|hold| hold > waiter.deadline) {
                self.hold_until = None;
            }
        }
        if self.closed {
            // A closed emitter sends nothing more: what it holds is final (kept by a
            // durable store for the next start), so the flush is answered now.
            let done = waiter.is_done(self.oldest_outstanding());
            self.waiters.add(waiter);
            self.resolve_as(id, Some(done));
            return id;
        }
        self.waiters.add(waiter);
        self.draining = true;
        self.resolve_waiters(now);
        self.pump(now);
        id
    }

    /// The answer to request `id` (unknown ids, from before a restart, are ignored): what
    /// it came to, and how long it took.
    ///
    /// The request's span records the outcome, the status and the reason of a failure, and
    /// is current while the answer is handled (so its WARN lines are inside it); it closes
    /// here, before anything waiting on the request hears of it.
    pub(crate) fn answer(
        &mut self,
        id: u64,
        result: Result<Response, TransportError>,
        now: Now,
    ) -> Option<Answered> {
        let mut flight = self.in_flight.remove(&id)?;
        self.in_flight_events -= flight.events.len() as u64;
        self.in_flight_bytes -= cost_of(&flight.events);
        let took = now.at.saturating_duration_since(flight.sent_at);
        let span = std::mem::replace(&mut flight.span, Span::none());
        let (reason, retry_after) = match result {
            Ok(response) if (200..300).contains(&response.status) => {
                span.record("status", response.status);
                span.record("outcome", RequestOutcome::Sent.as_str());
                span.in_scope(|| {
                    self.watch_not_found(None);
                    self.on_sent(flight, now);
                });
                drop(span);
                self.after_change(now);
                return Some(Answered {
                    outcome: RequestOutcome::Sent,
                    took,
                });
            }
            Ok(response) => (FailureReason::Status(response.status), response.retry_after),
            Err(error) => (FailureReason::Transport(error), None),
        };
        if let FailureReason::Status(status) = reason {
            span.record("status", status);
        }
        span.record("reason", display(&reason));
        let fatal = matches!(reason, FailureReason::Transport(TransportError::Fatal(_)));
        let outcome = span.in_scope(|| {
            self.watch_not_found(Some(&reason));
            let (outcome, dropped_as) = match self.verdict(&reason, flight.events.len()) {
                Verdict::Split => {
                    self.split(flight, &reason);
                    (RequestOutcome::Split, None)
                }
                Verdict::Drop(dropped_as) => {
                    self.drop_flight(flight, &reason, dropped_as);
                    (RequestOutcome::Dropped, Some(dropped_as))
                }
                Verdict::Retry { back_pressure } => {
                    match self.retry(flight, reason, back_pressure, retry_after, now) {
                        None => (RequestOutcome::Retried, None),
                        Some(dropped_as) => (RequestOutcome::Dropped, Some(dropped_as)),
                    }
                }
            };
            if fatal {
                tracing::error!(emitter = %self.settings.name, method = %self.settings.method, "transport failed fatally: restarting the emitter");
                self.commands.push(Command::Restart);
            }
            (outcome, dropped_as)
        });
        let (outcome, dropped_as) = outcome;
        if let Some(dropped_as) = dropped_as {
            span.record("dropped_as", display(dropped_as));
        }
        span.record("outcome", outcome.as_str());
        drop(span);
        self.after_change(now);
        Some(Answered { outcome, took })
    }

    /// The actor is restarting: requests in flight will not be answered; their events go
    /// back to the front of the queue (retries keep waiting).
    pub(crate) fn restart(&mut self) {
        self.ready = false;
        self.stats.restarts += 1;
        let mut flights: Vec<Flight> = self.in_flight.drain().map(|(_, flight)| flight).collect();
        flights.sort_by_key(|flight| std::cmp::Reverse(first_seq(&flight.events)));
        for flight in flights {
            flight
                .span
                .record("outcome", RequestOutcome::Requeued.as_str());
            self.in_flight_events -= flight.events.len() as u64;
            self.in_flight_bytes -= cost_of(&flight.events);
            self.queued_bytes += cost_of(&flight.events);
            if let Err(error) = self.store.requeue(flight.lease, flight.events) {
                tracing::error!(emitter = %self.settings.name, method = %self.settings.method, %error, "event store failed to requeue in-flight events");
            }
        }
        self.draining = true;
        tracing::warn!(emitter = %self.settings.name, method = %self.settings.method, "emitter restarting; in-flight events requeued");
    }

    /// A user callback panicked (caught by the actor).
    pub(crate) fn count_callback_panic(&mut self) {
        self.stats.callback_panics += 1;
    }

    pub(crate) fn count_panic(&mut self) {
        self.stats.panics += 1;
    }

    // ------------------------------------------------------------------------- reading

    /// The counters now.
    pub(crate) fn snapshot(&self, now: Now) -> EmitterStats {
        EmitterStats {
            queued: self.queued(),
            in_flight: self.in_flight_events,
            queued_bytes: self.queued_bytes,
            in_flight_requests: self.in_flight.len() as u64,
            consecutive_failures: self.failed_in_row,
            backoff_ms: self
                .hold_until
                .map_or(0, |hold| millis(hold.saturating_duration_since(now.at))),
            concurrency_limit: self.limit() as u64,
            retry_requests: self.retries.len() as u64,
            braked: self.braked,
            request_bytes_cap: self.request_bytes as u64,
            buffer_capacity: self.store.capacity().map(|capacity| capacity as u64),
            in_flight_bytes: self.in_flight_bytes,
            buffer_bytes: self.settings.buffer_bytes,
            buffer_full: self
                .store
                .capacity()
                .is_some_and(|capacity| self.store.len() + self.store.leased() >= capacity),
            shut_down: self.closed,
            flushes_waiting: self.waiters.len() as u64,
            ..self.stats.clone()
        }
    }

    /// Whether the emitter has been shut down.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Events queued or in flight: what a stop without a shutdown loses.
    pub(crate) fn held(&self) -> u64 {
        self.queued() + self.in_flight_events
    }

    /// Queued events: in the intake, in the store and waiting for a retry.
    fn queued(&self) -> u64 {
        (self.intake.len() + self.store.len()) as u64 + self.retry_events
    }

    /// Requests that may be outstanding now.
    fn limit(&self) -> usize {
        if self.braked {
            1
        } else {
            self.limiter.current()
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
                // The costs sum each event and a comma; the body has one comma fewer.
                let max_cost = self
                    .request_bytes
                    .saturating_add(1)
                    .saturating_sub(BODY_PREFIX.len() + BODY_SUFFIX.len());
                (self.settings.max_request_events, max_cost)
            }
            Method::Get => (1, usize::MAX),
        }
    }

    // ------------------------------------------------------------------------- sending

    /// Whether the queue reached a size trigger: `batch_size` events or `byte_limit` bytes.
    fn reached_limit(&self) -> bool {
        self.store.len() >= self.settings.batch_size
            || self
                .settings
                .byte_limit
                .is_some_and(|limit| self.queued_bytes - self.intake_bytes >= limit as u64)
    }

    /// Whether a new request should be cut from the queue.
    fn wants_to_send(&mut self) -> bool {
        if self.store.is_empty() {
            return false;
        }
        if !self.draining && self.reached_limit() {
            self.draining = true;
        }
        self.draining || !self.waiters.is_empty()
    }

    /// Sends what is allowed now: retries that are due first, then new requests from the
    /// queue, while fewer requests than the limit are outstanding and nothing holds.
    fn pump(&mut self, now: Now) {
        if !self.ready || self.closed {
            return;
        }
        if self.hold_until.is_some_and(|hold| hold > now.at) {
            return;
        }
        self.hold_until = None;
        while self.in_flight.len() < self.limit() {
            if let Some(at) = self.next_retry(now) {
                let retry = self.retries.swap_remove(at);
                self.retry_events -= retry.events.len() as u64;
                self.queued_bytes -= cost_of(&retry.events);
                self.send(retry.lease, retry.events, retry.delay, now);
            } else if self.braked && !self.in_flight.is_empty() {
                break;
            } else if self.wants_to_send() {
                let (max_events, max_cost) = self.lease_limits();
                let lease = match self.store.lease(max_events, max_cost) {
                    Ok(lease) if !lease.events.is_empty() => lease,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::error!(emitter = %self.settings.name, method = %self.settings.method, %error, "event store failed to hand out a batch");
                        break;
                    }
                };
                self.queued_bytes -= cost_of(&lease.events);
                self.send(lease.id, lease.events, Duration::ZERO, now);
            } else {
                break;
            }
            if self.braked {
                // One attempt per hold.
                break;
            }
        }
        if self.in_flight.len() >= self.limit() {
            // Every slot is taken: the limit is in use, and each of these answers may
            // raise it.
            for flight in self.in_flight.values_mut() {
                flight.at_limit = true;
            }
        }
        if self.store.is_empty() {
            // A flush takes in the intake first: what is still there came after it.
            self.draining = false;
        }
    }

    /// The retry to send next: the earliest due (braked: the earliest, due or not, since
    /// the hold spaces the attempts).
    fn next_retry(&self, now: Now) -> Option<usize> {
        let (at, retry) = self
            .retries
            .iter()
            .enumerate()
            .min_by_key(|(_, retry)| retry.due)?;
        (self.braked || retry.due <= now.at).then_some(at)
    }

    /// A shutdown's last call for a request sent before the shutdown began: a retry or a
    /// hold that would end after the shutdown's deadline ends now instead. The attempt it
    /// gets is sent after the shutdown began, so it gets no other.
    fn last_call(&self, sent_at: Instant, until: Instant, now: Now) -> Instant {
        let cut = self.waiters.shutdowns().any(|waiter| {
            waiter.since > sent_at && until > waiter.deadline && now.at < waiter.deadline
        });
        if cut {
            now.at
        } else {
            until
        }
    }

    /// Holds the whole emitter until `until` (or longer, if already held), short of a
    /// shutdown's last call for a request sent at `sent_at`.
    fn hold(&mut self, sent_at: Instant, until: Instant, now: Now) {
        let until = self.last_call(sent_at, until, now);
        let held = self.hold_until.map_or(until, |hold| hold.max(until));
        self.hold_until = (held > now.at).then_some(held);
    }

    fn send(&mut self, lease: LeaseId, mut events: Vec<StoredEvent>, delay: Duration, now: Now) {
        for event in &mut events {
            event.attempts += 1;
        }
        // Sized from the events themselves, never from costs a durable store read back.
        let cost: usize = events
            .iter()
            .map(|e| self.cost(&e.event))
            .fold(0, usize::saturating_add);
        let stm = Stm::new(now.wall_ms);
        let (url, body) = match self.settings.method {
            Method::Post => {
                let mut body = String::with_capacity(cost + BODY_PREFIX.len() + 2);
                push_post_body(&mut body, events.iter().map(|e| &e.event), now.wall_ms);
                (self.settings.url.clone(), body)
            }
            Method::Get => {
                let mut url = String::with_capacity(cost);
                url.push_str(&self.settings.url);
                url.push('?');
                events[0].event.push_query(&mut url, &stm);
                (url, String::new())
            }
        };
        let bytes = body.len().max(url.len());
        let request = Request {
            method: self.settings.method,
            url,
            body,
            timeout: self.settings.request_timeout.request(),
            events: events.len(),
            anonymous: self.settings.anonymous,
        };
        let attempt = events.iter().map(|e| e.attempts).max().unwrap_or(1);
        // One span per request, from sending to its settling, on no parent: a subscriber
        // times deliveries with it. The fields to come are recorded at the answer.
        let span = tracing::debug_span!(
            parent: None,
            "collector_request",
            emitter = %self.settings.name,
            method = %self.settings.method,
            events = request.events,
            bytes,
            attempt,
            outcome = Empty,
            status = Empty,
            reason = Empty,
            dropped_as = Empty,
        );
        span.in_scope(|| {
            tracing::debug!(
                emitter = %self.settings.name, method = %self.settings.method,
                events = request.events,
                bytes,
                "sending request"
            );
        });
        let id = self.next_request;
        self.next_request += 1;
        self.stats.requests += 1;
        self.in_flight_events += events.len() as u64;
        self.in_flight_bytes += cost_of(&events);
        self.in_flight.insert(
            id,
            Flight {
                lease,
                events,
                bytes,
                sent_at: now.at,
                at_limit: false,
                epoch: self.limiter.epoch(),
                delay,
                braked: self.braked,
                span: span.clone(),
            },
        );
        self.commands.push(Command::Send { id, request, span });
    }

    // ------------------------------------------------------------------------- answers

    /// A 404 says the endpoint is wrong, not that the collector is down: the first of a
    /// burst is an ERROR with the URL and what to check, the others are counted, and the
    /// burst's end (any other answer) is one line.
    fn watch_not_found(&mut self, reason: Option<&FailureReason>) {
        if reason == Some(&FailureReason::Status(404)) {
            if self.not_found.add(1) {
                tracing::error!(
                    emitter = %self.settings.name,
                    method = %self.settings.method,
                    url = %self.settings.url,
                    hint = NOT_FOUND_HINT,
                    "the collector answers 404 Not Found: the endpoint is probably wrong; the events are kept and retried"
                );
            }
        } else if let Some(not_found) = self.not_found.end() {
            tracing::warn!(
                emitter = %self.settings.name,
                method = %self.settings.method,
                url = %self.settings.url,
                not_found,
                "the collector answers something else than 404 again"
            );
        }
    }

    /// What to check for a failure whose message alone would not say it.
    fn hint(&self, reason: &FailureReason) -> Option<&'static str> {
        match reason {
            FailureReason::Transport(
                TransportError::Connection(error) | TransportError::Fatal(error),
            ) if self.settings.endpoint.is_https()
                && PLAIN_HTTP_SIGNS.iter().any(|sign| error.contains(sign)) =>
            {
                Some(PLAIN_HTTP_HINT)
            }
            _ => None,
        }
    }

    fn verdict(&self, reason: &FailureReason, events: usize) -> Verdict {
        let policy = &self.settings.retry;
        match reason {
            FailureReason::Transport(TransportError::Invalid(_)) => {
                Verdict::Drop(DropReason::Oversize)
            }
            FailureReason::Status(status @ (413 | 414)) if !policy.overrides(*status) => {
                if events > 1 {
                    Verdict::Split
                } else {
                    Verdict::Drop(DropReason::Oversize)
                }
            }
            _ if !policy.retries(reason) => Verdict::Drop(DropReason::Rejected),
            FailureReason::Status(status) => Verdict::Retry {
                back_pressure: matches!(status, 429 | 503),
            },
            FailureReason::Transport(_) => Verdict::Retry {
                back_pressure: true,
            },
        }
    }

    fn on_sent(&mut self, flight: Flight, now: Now) {
        let count = flight.events.len() as u64;
        if let Err(error) = self.store.acknowledge(flight.lease) {
            tracing::error!(emitter = %self.settings.name, method = %self.settings.method, %error, "event store failed to remove sent events");
        }
        self.stats.sent += count;
        self.failed_in_row = 0;
        self.last_success = now.at;
        self.backoff.reset();
        if self.braked {
            self.braked = false;
            self.hold_until = None;
            self.limiter.restart();
            tracing::info!(emitter = %self.settings.name, method = %self.settings.method, "collector answers again: brake released");
        } else {
            self.limiter.on_success(
                now.at.saturating_duration_since(flight.sent_at),
                flight.at_limit,
                flight.epoch,
            );
        }
        // The collector is answering: every waiting retry goes within the first step.
        if !self.retries.is_empty() {
            let first = self.backoff.delay_after(Duration::ZERO);
            for retry in &mut self.retries {
                if retry.delay > first {
                    retry.delay = first;
                    retry.due = retry.due.min(now.at + first);
                }
            }
        }
        tracing::debug!(emitter = %self.settings.name, method = %self.settings.method, events = count, "request accepted");
        self.commands.push(Command::Sent(flight.events));
    }

    /// 413 for several events: all back to the front of the queue, the attempt not
    /// counted, and the byte cap lowered to half the refused body, so that the next two
    /// requests cut from the front carry one half each.
    fn split(&mut self, flight: Flight, reason: &FailureReason) {
        let mut events = flight.events;
        for event in &mut events {
            event.attempts = event.attempts.saturating_sub(1);
        }
        let lowered = (flight.bytes / 2).max(MIN_REQUEST_BYTES);
        if lowered < self.request_bytes {
            self.request_bytes = lowered;
        }
        tracing::warn!(
            emitter = %self.settings.name, method = %self.settings.method,
            url = %self.settings.url,
            %reason,
            events = events.len(),
            bytes = flight.bytes,
            request_bytes_cap = self.request_bytes,
            "collector refused a request as too large: splitting it and lowering the request size cap"
        );
        self.queued_bytes += cost_of(&events);
        if let Err(error) = self.store.requeue(flight.lease, events) {
            tracing::error!(emitter = %self.settings.name, method = %self.settings.method, %error, "event store failed to requeue events");
        }
        self.draining = true;
    }

    fn drop_flight(&mut self, flight: Flight, reason: &FailureReason, dropped_as: DropReason) {
        let count = flight.events.len() as u64;
        if let Err(error) = self.store.acknowledge(flight.lease) {
            tracing::error!(emitter = %self.settings.name, method = %self.settings.method, %error, "event store failed to remove dropped events");
        }
        self.stats.dropped.add(dropped_as, count);
        self.failed_in_row = 0;
        tracing::warn!(
            emitter = %self.settings.name, method = %self.settings.method,
            url = %self.settings.url,
            %reason,
            hint = self.hint(reason),
            events = count,
            dropped_as = %dropped_as,
            "request failed and is not retried: events dropped"
        );
        self.report(flight.events, reason.clone(), false, Some(dropped_as));
    }

    /// Retries what may be retried of a failed request; `None` when some of its events
    /// are retried, otherwise the reason all of them are dropped with.
    fn retry(
        &mut self,
        flight: Flight,
        reason: FailureReason,
        back_pressure: bool,
        retry_after: Option<Duration>,
        now: Now,
    ) -> Option<DropReason> {
        let count = flight.events.len();
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
                .is_some_and(|age| now.wall_ms.saturating_sub(event.received_ms) > millis(age))
            {
                expired.push(event);
            } else {
                retry.push(event);
            }
        }
        self.failed_in_row += 1;
        self.stats.retried += retry.len() as u64;
        self.stats
            .dropped
            .add(DropReason::AttemptsExhausted, exhausted.len() as u64);
        self.stats
            .dropped
            .add(DropReason::Expired, expired.len() as u64);
        if back_pressure {
            self.limiter.on_back_pressure(flight.epoch);
        }
        if let Some(after) = retry_after.filter(|_| back_pressure) {
            self.hold(
                flight.sent_at,
                now.at + after.min(self.settings.max_retry_delay),
                now,
            );
        }
        let retried = retry.len();
        let all_dropped_as = if retried > 0 {
            None
        } else if !exhausted.is_empty() {
            Some(DropReason::AttemptsExhausted)
        } else {
            Some(DropReason::Expired)
        };
        let reported = (retried > 0 && self.settings.on_failure.is_some()).then(|| retry.clone());
        let one_at_a_time = self.settings.max_in_flight == 1;
        let quiet = now.at.saturating_duration_since(self.last_success);
        let engaged = !one_at_a_time
            && !self.braked
            && self.failed_in_row >= BRAKE_AFTER
            && quiet >= BRAKE_MIN_QUIET;
        if engaged {
            self.braked = true;
            tracing::warn!(
                emitter = %self.settings.name, method = %self.settings.method,
                failed_in_row = self.failed_in_row,
                quiet_ms = millis(quiet),
                "collector unavailable: braking to one request at a time until it answers"
            );
        }
        // Braked, only the brake's own attempt (or the failure that engages it) spaces the
        // next: the answers of requests sent before the brake do not grow the backoff.
        let retry_in = if one_at_a_time || engaged || (self.braked && flight.braked) {
            // The emitter waits as a whole: the Python tracker's rule.
            let delay = self.backoff.next_delay();
            self.hold(flight.sent_at, now.at + delay, now);
            delay
        } else {
            Duration::ZERO
        };
        if one_at_a_time {
            self.queued_bytes += cost_of(&retry);
            if let Err(error) = self.store.requeue(flight.lease, retry) {
                tracing::error!(emitter = %self.settings.name, method = %self.settings.method, %error, "event store failed to requeue events");
            }
            // Sent again once the hold ends, whatever the queue's length.
            self.draining = true;
        } else if retry.is_empty() {
            if let Err(error) = self.store.acknowledge(flight.lease) {
                tracing::error!(emitter = %self.settings.name, method = %self.settings.method, %error, "event store failed to remove dropped events");
            }
        } else {
            let delay = self.backoff.delay_after(flight.delay);
            let due = self.last_call(flight.sent_at, now.at + delay, now);
            self.queued_bytes += cost_of(&retry);
            self.retry_events += retry.len() as u64;
            self.retries.push(Retry {
                lease: flight.lease,
                events: retry,
                due,
                delay,
            });
        }
        if self.not_found.is_on() {
            // A 404: the first of its burst was an ERROR, the burst's end is one line.
            tracing::debug!(
                emitter = %self.settings.name, method = %self.settings.method,
                %reason, events = count, retried, "request failed"
            );
        } else {
            tracing::warn!(
                emitter = %self.settings.name, method = %self.settings.method,
                url = %self.settings.url,
                %reason,
                hint = self.hint(&reason),
                events = count,
                retried,
                attempts_exhausted = exhausted.len(),
                expired = expired.len(),
                hold_ms = millis(retry_in),
                "request failed"
            );
        }
        if let Some(reported) = reported {
            self.report(reported, reason.clone(), true, None);
        }
        if !exhausted.is_empty() {
            self.report(
                exhausted,
                reason.clone(),
                false,
                Some(DropReason::AttemptsExhausted),
            );
        }
        if !expired.is_empty() {
            self.report(expired, reason, false, Some(DropReason::Expired));
        }
        all_dropped_as
    }

    fn report(
        &mut self,
        events: Vec<StoredEvent>,
        reason: FailureReason,
        will_retry: bool,
        dropped: Option<DropReason>,
    ) {
        if self.settings.on_failure.is_some() {
            self.commands.push(Command::Failed {
                events,
                reason,
                will_retry,
                dropped,
            });
        }
    }

    // ------------------------------------------------------------------------- flushes

    /// After anything that may settle events: resolve finished flushes, send more.
    fn after_change(&mut self, now: Now) {
        self.resolve_waiters(now);
        self.pump(now);
    }

    /// The smallest `seq` still queued, waiting for a retry or in flight.
    fn oldest_outstanding(&self) -> Option<u64> {
        let in_flight = self.in_flight.values().filter_map(|f| first_seq(&f.events));
        let waiting = self.retries.iter().filter_map(|r| first_seq(&r.events));
        // The intake's events come after everything in the store.
        let received = self
            .store
            .oldest_seq()
            .or(self.intake.front().map(|e| e.seq));
        received.into_iter().chain(in_flight).chain(waiting).min()
    }

    /// Replies to the flushes that are done or past their deadline.
    fn resolve_waiters(&mut self, now: Now) {
        if self.waiters.is_empty() {
            return;
        }
        for id in self.waiters.ready(now.at, self.oldest_outstanding()) {
            self.resolve(id);
        }
    }

    /// Replies to one flush; a shutdown first closes the emitter.
    fn resolve(&mut self, id: u64) {
        self.resolve_as(id, None);
    }

    /// Replies to one flush: `done` when the closing emitter settled it, found out here
    /// otherwise.
    fn resolve_as(&mut self, id: u64, settled: Option<bool>) {
        let Some(waiter) = self.waiters.remove(id) else {
            return;
        };
        let done = settled.unwrap_or_else(|| waiter.is_done(self.oldest_outstanding()));
        if !done && settled.is_none() {
            tracing::warn!(
                emitter = %self.settings.name, method = %self.settings.method,
                queued = self.queued() + self.in_flight_events,
                "flush deadline passed with events still unsent"
            );
        }
        if waiter.shutdown {
            self.close();
        }
        let report = FlushReport {
            sent: self.stats.sent - waiter.start_sent,
            dropped: self.stats.dropped.since(&waiter.start_dropped),
            outcome_unknown: self.stats.outcome_unknown - waiter.start_unknown,
            queued: self.queued() + self.in_flight_events,
            timed_out: !done,
        };
        self.commands.push(Command::Reply { waiter: id, report });
    }

    /// Settles everything left as dropped (`shutdown`) and refuses what comes next. A
    /// durable store keeps what is left for the next start instead.
    fn close(&mut self) {
        if self.closed {
            return;
        }
        // Whether each flush still waiting got its events delivered, before what is left
        // is settled as dropped.
        let oldest = self.oldest_outstanding();
        let mut others: Vec<(u64, bool)> = self
            .waiters
            .all()
            .map(|waiter| (waiter.id, waiter.is_done(oldest)))
            .collect();
        others.sort_unstable();
        let left = self.settle_left_over();
        if left > 0 {
            tracing::warn!(
                emitter = %self.settings.name, method = %self.settings.method,
                dropped = left,
                "emitter shut down with events unsent: dropped as shutdown"
            );
        }
        self.commands.push(Command::Closed);
        // Flushes still waiting can only get what is now final.
        for (id, done) in others {
            self.resolve_as(id, Some(done));
        }
    }

    /// Closes the emitter: removes what is queued, waiting or in flight and counts it as
    /// dropped (`shutdown`); with a durable store the events stay stored and only the
    /// in-memory view is cleared. Returns how many were dropped.
    pub(crate) fn settle_left_over(&mut self) -> u64 {
        self.closed = true;
        self.hold_until = None;
        let durable = self.store.is_durable();
        let mut left = 0;
        let mut unknown = 0;
        // The intake first: a durable store keeps its events for the next start too.
        let intake = std::mem::take(&mut self.intake);
        self.intake_messages.clear();
        self.intake_bytes = 0;
        if durable {
            for stored in intake {
                self.admit(stored);
            }
        } else {
            left += intake.len() as u64;
        }
        let flights = self.in_flight.drain().map(|(_, f)| {
            // Not answered: the collector may have its events, or (a durable store) they
            // are sent again after the next start.
            let outcome = if durable {
                RequestOutcome::Requeued
            } else {
                RequestOutcome::Unknown
            };
            f.span.record("outcome", outcome.as_str());
            (f.lease, f.events, true)
        });
        let retries = self.retries.drain(..).map(|r| (r.lease, r.events, false));
        let mut leases: Vec<(LeaseId, Vec<StoredEvent>, bool)> = flights.chain(retries).collect();
        leases.sort_by_key(|(_, events, _)| std::cmp::Reverse(first_seq(events)));
        for (lease, events, awaiting_answer) in leases {
            if durable {
                // Kept for the next start: back in the queue, where `queued` counts them.
                self.queued_bytes += cost_of(&events);
                if let Err(error) = self.store.requeue(lease, events) {
                    tracing::error!(emitter = %self.settings.name, method = %self.settings.method, %error, "event store failed to requeue events at shutdown");
                }
            } else {
                // A request awaiting its answer may have been stored by the collector.
                if awaiting_answer {
                    unknown += events.len() as u64;
                } else {
                    left += events.len() as u64;
                }
                if let Err(error) = self.store.acknowledge(lease) {
                    tracing::error!(emitter = %self.settings.name, method = %self.settings.method, %error, "event store failed to remove events at shutdown");
                }
            }
        }
        self.in_flight_events = 0;
        self.in_flight_bytes = 0;
        self.retry_events = 0;
        if durable {
            // Only the retries' bytes moved back; the queue keeps its own.
            return 0;
        }
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
        self.stats.dropped.add(DropReason::Shutdown, left);
        self.stats.outcome_unknown += unknown;
        if unknown > 0 {
            tracing::warn!(
                emitter = %self.settings.name, method = %self.settings.method,
                url = %self.settings.url,
                outcome_unknown = unknown,
                "emitter closed with requests awaiting their answer: the collector may or may not have those events"
            );
        }
        left
    }
}

fn first_seq(events: &[StoredEvent]) -> Option<u64> {
    events.first().map(|e| e.seq)
}

fn cost_of(events: &[StoredEvent]) -> u64 {
    events.iter().map(|e| e.cost as u64).sum()
}

#[cfg(test)]
mod tests;
