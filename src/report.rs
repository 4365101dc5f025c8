//! What an emitter counts and reports: stats, flush reports, drop and failure reasons.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::error::TransportError;
use crate::sync::lock;

/// Why events were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The buffer (or the emitter's mailbox) was full: the newest event was refused.
    Capacity,
    /// The collector answered a non-retryable status (400, 401, 403, 410, 422 by default).
    Rejected,
    /// The collector refused an event sent alone as too large (413, 414), or its request
    /// could not be built (a GET URL over 64 KiB).
    Oversize,
    /// `max_attempts` was reached.
    AttemptsExhausted,
    /// `max_event_age` was exceeded.
    Expired,
    /// Still buffered when the emitter shut down.
    Shutdown,
    /// The event store failed to keep the event.
    Store,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Capacity => "capacity",
            Self::Rejected => "rejected",
            Self::Oversize => "oversize",
            Self::AttemptsExhausted => "attempts_exhausted",
            Self::Expired => "expired",
            Self::Shutdown => "shutdown",
            Self::Store => "store",
        })
    }
}

/// Dropped events by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DropCounts {
    /// See [`DropReason::Capacity`].
    pub capacity: u64,
    /// See [`DropReason::Rejected`].
    pub rejected: u64,
    /// See [`DropReason::Oversize`].
    pub oversize: u64,
    /// See [`DropReason::AttemptsExhausted`].
    pub attempts_exhausted: u64,
    /// See [`DropReason::Expired`].
    pub expired: u64,
    /// See [`DropReason::Shutdown`].
    pub shutdown: u64,
    /// See [`DropReason::Store`].
    pub store: u64,
}

impl DropReason {
    /// Every reason, in the order of [`DropCounts`]' fields.
    pub const ALL: [DropReason; 7] = [
        DropReason::Capacity,
        DropReason::Rejected,
        DropReason::Oversize,
        DropReason::AttemptsExhausted,
        DropReason::Expired,
        DropReason::Shutdown,
        DropReason::Store,
    ];
}

impl DropCounts {
    fn counter_mut(&mut self, reason: DropReason) -> &mut u64 {
        match reason {
            DropReason::Capacity => &mut self.capacity,
            DropReason::Rejected => &mut self.rejected,
            DropReason::Oversize => &mut self.oversize,
            DropReason::AttemptsExhausted => &mut self.attempts_exhausted,
            DropReason::Expired => &mut self.expired,
            DropReason::Shutdown => &mut self.shutdown,
            DropReason::Store => &mut self.store,
        }
    }

    /// The counter of `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        let mut counts = *self;
        *counts.counter_mut(reason)
    }

    /// All dropped events.
    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|&reason| self.get(reason)).sum()
    }

    pub(crate) fn add(&mut self, reason: DropReason, count: u64) {
        *self.counter_mut(reason) += count;
    }

    /// Counts since `earlier`.
    pub fn since(&self, earlier: &DropCounts) -> DropCounts {
        self.combine(earlier, |now, then| now - then)
    }

    /// Sums two sets of counts.
    pub fn plus(&self, other: &DropCounts) -> DropCounts {
        self.combine(other, |one, two| one + two)
    }

    fn combine(&self, other: &DropCounts, op: impl Fn(u64, u64) -> u64) -> DropCounts {
        let mut out = DropCounts::default();
        for reason in DropReason::ALL {
            *out.counter_mut(reason) = op(self.get(reason), other.get(reason));
        }
        out
    }
}

/// What became of one request to the collector: the `outcome` of its tracing span and the
/// label of the request-duration histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RequestOutcome {
    /// Answered 2xx: its events are sent.
    Sent,
    /// A retryable failure: (some of) its events wait for another attempt.
    Retried,
    /// A failure not retried, or retries used up: its events are dropped.
    Dropped,
    /// 413 or 414 for several events: they go back to the queue in smaller requests.
    Split,
    /// Still awaiting its answer when the emitter closed: the collector may have the events.
    Unknown,
    /// Still awaiting its answer when the emitter restarted (or a durable store kept it at
    /// shutdown): its events went back to the queue.
    Requeued,
}

impl RequestOutcome {
    /// The outcomes of an answered request, the histogram's label values.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const ANSWERED: [RequestOutcome; 4] = [
        RequestOutcome::Sent,
        RequestOutcome::Retried,
        RequestOutcome::Dropped,
        RequestOutcome::Split,
    ];

    /// Its name in spans and labels.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Retried => "retried",
            Self::Dropped => "dropped",
            Self::Split => "split",
            Self::Unknown => "unknown",
            Self::Requeued => "requeued",
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// The collector answered this non-2xx status.
    Status(u16),
    /// No status: the transport failed (connection, timeout, a request that could not be
    /// built, a broken client).
    Transport(TransportError),
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "status {status}"),
            Self::Transport(error) => error.fmt(f),
        }
    }
}

/// An emitter's counters, in events unless named otherwise.
///
/// At every moment `received + recovered = sent + dropped.total() + queued + in_flight +
/// outcome_unknown`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EmitterStats {
    /// Events handed to this emitter.
    pub received: u64,
    /// Events found in a durable store at start.
    pub recovered: u64,
    /// Events the collector accepted (2xx).
    pub sent: u64,
    /// Events put back in the queue after a retryable failure (once per failure).
    pub retried: u64,
    /// Events dropped, by reason.
    pub dropped: DropCounts,
    /// Events waiting in the queue, including those in requests waiting for a retry.
    pub queued: u64,
    /// Events in requests awaiting an answer.
    pub in_flight: u64,
    /// Events whose request was still awaiting its answer when the emitter shut down or
    /// stopped: the collector may have stored them or not. Neither sent nor dropped.
    pub outcome_unknown: u64,
    /// Bytes of the queued events as they will be sent.
    pub queued_bytes: u64,
    /// Requests awaiting an answer.
    pub in_flight_requests: u64,
    /// Retryable failed answers in a row, since the last success or non-retryable answer
    /// (what the brake watches).
    pub consecutive_failures: u64,
    /// How long, in ms, the emitter as a whole waits before it sends again: the backoff of
    /// a one-at-a-time emitter, the spacing of the brake, or a `Retry-After`; 0 when it is
    /// not held. Requests retried on their own schedule do not hold the emitter.
    pub backoff_ms: u64,
    /// Requests that may be outstanding now: the adaptive concurrency limit, between 1 and
    /// `max_in_flight` (1 while braked).
    pub concurrency_limit: u64,
    /// Failed requests waiting for their own retry (their events count as `queued`).
    pub retry_requests: u64,
    /// Whether the emitter takes the collector as unavailable: one request at a time,
    /// spaced by the backoff, until a success.
    pub braked: bool,
    /// The current byte cap of a POST body (lowered by 413 answers).
    pub request_bytes_cap: u64,
    /// Requests sent so far.
    pub requests: u64,
    /// Callbacks that panicked (caught; nothing was lost).
    pub callback_panics: u64,
    /// Panics inside the emitter itself (its transport, its jitter source, a bug), each
    /// caught and followed by a restart that keeps its queue, counters and backoff.
    pub panics: u64,
    /// Times the emitter was restarted by its supervisor.
    pub restarts: u64,
    /// The most events its buffer holds, queued and in flight (`None` for a store without
    /// a bound).
    pub buffer_capacity: Option<u64>,
    /// Bytes (as sent) of the events in flight.
    pub in_flight_bytes: u64,
    /// The most bytes its buffer holds, queued and in flight (`queued_bytes +
    /// in_flight_bytes`).
    pub buffer_bytes: u64,
    /// Whether the buffer is full: a new event would be dropped (`capacity`).
    pub buffer_full: bool,
    /// Whether it has shut down (it takes no more events).
    pub shut_down: bool,
    /// Sync flushes and shutdowns waiting for their reply (an async flush waits for
    /// nothing and is not counted).
    pub flushes_waiting: u64,
}

impl EmitterStats {
    /// Events accepted into the buffer: `received − dropped.capacity`.
    pub fn accepted(&self) -> u64 {
        self.received - self.dropped.capacity
    }

    /// Whether `received + recovered = sent + Σ dropped + queued + in_flight +
    /// outcome_unknown` holds.
    pub fn is_balanced(&self) -> bool {
        self.received + self.recovered
            == self.sent
                + self.dropped.total()
                + self.queued
                + self.in_flight
                + self.outcome_unknown
    }
}

/// The outcome of a sync flush.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlushReport {
    /// Events sent while the flush ran.
    pub sent: u64,
    /// Events dropped while the flush ran, by reason.
    pub dropped: DropCounts,
    /// Events still queued or in flight when it returned.
    pub queued: u64,
    /// Events whose request was still awaiting its answer when a shutdown ended: the
    /// collector may have stored them (see [`EmitterStats::outcome_unknown`]).
    pub outcome_unknown: u64,
    /// Whether it returned at its deadline with events tracked before it still unsent.
    pub timed_out: bool,
}

impl FlushReport {
    /// Adds another emitter's report (a tracker aggregates them).
    pub fn merge(&mut self, other: &FlushReport) {
        self.sent += other.sent;
        self.dropped = self.dropped.plus(&other.dropped);
        self.queued += other.queued;
        self.outcome_unknown += other.outcome_unknown;
        self.timed_out |= other.timed_out;
    }
}

/// The stats an emitter leaves when it stops: set at shutdown and when the actor is dropped
/// (its arbiter or the system stopping), readable from any thread afterwards. For an emitter
/// started on its own ([`EmitterConfig::final_stats`](crate::emitter::EmitterConfig::final_stats));
/// a tracker's emitters have [`EmitterHandle::final_stats`](crate::tracker::EmitterHandle::final_stats).
#[derive(Debug, Clone, Default)]
pub struct FinalStats(Arc<Mutex<Option<EmitterStats>>>);

impl FinalStats {
    /// The last stats, once the emitter has shut down or stopped.
    pub fn get(&self) -> Option<EmitterStats> {
        lock(&self.0).clone()
    }

    pub(crate) fn set(&self, stats: EmitterStats) {
        *lock(&self.0) = Some(stats);
    }
}

/// Converts a duration to whole milliseconds for the stats.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// One emitter's counters as the tracker reports them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EmitterReport {
    /// The emitter's name: its endpoint, or the name given to a custom emitter.
    pub name: String,
    /// Its counters, events its mailbox refused included (as received and dropped for
    /// `capacity`); `None` for a custom emitter that does not answer [`GetStats`](crate::emitter::GetStats).
    pub stats: Option<EmitterStats>,
    /// Events the fan-out could not hand to it (mailbox full or stopped).
    pub refused: u64,
}
