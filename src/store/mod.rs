//! Where an emitter keeps its events until they are sent or dropped.
//!
//! ```text
//!  add ──▶ [ queued … ] ──lease──▶ in flight ──acknowledge──▶ gone (sent or dropped)
//!             ▲                        │
//!             └──────── requeue ───────┘  (retryable failure: back to the front, in order)
//! ```
//!
//! The [`EventStore`] trait is synchronous and is only ever called from the emitter's own
//! arbiter, one call at a time: short synchronous I/O (a durable store) is acceptable there,
//! and never happens on the application's threads. [`InMemoryStore`] is the default.

mod guarded;
mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;

pub(crate) use guarded::Guarded;
pub use memory::{InMemoryStore, DEFAULT_BUFFER_CAPACITY};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;

use std::fmt;
use std::sync::Arc;

pub use crate::error::StoreError;
use crate::wire::StampedEvent;

/// An event in an emitter's store, with what the emitter needs to send and account for it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Order of reception by the emitter; a store keeps its queue in this order.
    pub seq: u64,
    /// The stamped event, shared with every other emitter that received it.
    pub event: Arc<StampedEvent>,
    /// The bytes this event adds to a request, as the emitter measures them for its method
    /// (POST: its object in the body plus a comma; GET: the request URL).
    pub cost: usize,
    /// Requests that carried this event so far.
    pub attempts: u32,
    /// When the emitter received it, in ms since the Unix epoch (for `max_event_age`).
    pub received_ms: u64,
}

/// Identifies a batch handed out by [`EventStore::lease`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub u64);

/// A batch of events handed out for one request.
#[derive(Debug)]
pub struct Lease {
    /// The lease, to acknowledge or requeue.
    pub id: LeaseId,
    /// The events, oldest first.
    pub events: Vec<StoredEvent>,
}

/// The outcome of [`EventStore::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The event is stored.
    Stored,
    /// The store is at capacity (queued plus leased): the event was not stored.
    Full,
}

/// An emitter's event buffer: a queue with leases.
///
/// # Contract
///
/// - Called only from the emitter's arbiter, never concurrently; a call must not block for
///   long (no network, no waiting on other actors).
/// - The queue is kept in `seq` order: [`requeue`](Self::requeue) puts events back at the
///   front in their order, so retried events go before newer ones.
/// - Capacity bounds queued plus leased events; [`add`](Self::add) refuses the newest event
///   when full (drop newest). Requeued events never count against capacity twice.
/// - A durable store persists an event when it is added and removes it only when it is
///   acknowledged; a lease that was never settled (a crash) is delivered again.
pub trait EventStore: Send + 'static {
    /// Adds an event at the back of the queue.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the backing storage fails; the event is then lost to this
    /// emitter and counted as dropped.
    fn add(&mut self, event: StoredEvent) -> Result<Added, StoreError>;

    /// Hands out the oldest queued events for one request: at most `max_events`, and at most
    /// `max_cost` summed [`cost`](StoredEvent::cost), except that a lone event costing more
    /// is handed out alone. Returns an empty lease when nothing is queued.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the backing storage fails.
    fn lease(&mut self, max_events: usize, max_cost: usize) -> Result<Lease, StoreError>;

    /// Removes a lease's events for good: sent, or dropped with a reason.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the backing storage fails.
    fn acknowledge(&mut self, lease: LeaseId) -> Result<(), StoreError>;

    /// Settles a lease by putting `retry` (a subset of its events, with updated attempts)
    /// back at the front of the queue in `seq` order; its other events are removed.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the backing storage fails.
    fn requeue(&mut self, lease: LeaseId, retry: Vec<StoredEvent>) -> Result<(), StoreError>;

    /// Queued events (not leased).
    fn len(&self) -> usize;

    /// Whether no event is queued.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events in unsettled leases.
    fn leased(&self) -> usize;

    /// The most events it holds, queued and leased together, when it has such a bound
    /// (health reports how full it is).
    fn capacity(&self) -> Option<usize> {
        None
    }

    /// The `seq` of the oldest queued event.
    fn oldest_seq(&self) -> Option<u64>;

    /// Whether events survive the process: a durable store keeps what is left at shutdown
    /// for the next start instead of dropping it.
    fn is_durable(&self) -> bool {
        false
    }

    /// The `seq` to give the next event: one more than the largest stored (0 for a store
    /// that starts empty).
    fn next_seq(&self) -> u64 {
        0
    }

    /// Events found in the store when it was opened (a durable store after a restart); they
    /// are queued and counted as `recovered`. Zero for a store that starts empty.
    fn recovered(&self) -> u64 {
        0
    }

    /// The summed [`cost`](StoredEvent::cost) of the [`recovered`](Self::recovered) events,
    /// as the emitter that stored them measured it: what an emitter starts its queued bytes
    /// from. Zero for a store that starts empty.
    fn recovered_cost(&self) -> u64 {
        0
    }

    /// Events found in the store when it was opened that could not be read back (a damaged
    /// row, a key outside the tracker protocol): they are not queued and not counted in
    /// [`recovered`](Self::recovered); an emitter counts them as found and dropped (`store`).
    /// Zero for a store that starts empty.
    fn unreadable(&self) -> u64 {
        0
    }
}

impl fmt::Debug for dyn EventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStore")
            .field("queued", &self.len())
            .field("leased", &self.leased())
            .finish()
    }
}

/// How many of the queued events, by their costs in order, go into the next request: at
/// most `max_events`, and at most `max_cost` summed, but at least one when any is queued
/// and `max_events` is not zero (a lone event over `max_cost` goes alone).
pub fn batch_len(
    costs: impl IntoIterator<Item = usize>,
    max_events: usize,
    max_cost: usize,
) -> usize {
    let mut count = 0;
    let mut total = 0usize;
    for cost in costs.into_iter().take(max_events) {
        if count > 0 && total.saturating_add(cost) > max_cost {
            break;
        }
        total = total.saturating_add(cost);
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::batch_len;

    #[test]
    fn batches_are_cut_by_count_and_cost() {
        let cases: [(&[usize], usize, usize, usize); 7] = [
            (&[], 10, 100, 0),
            (&[10, 10, 10], 2, 100, 2),
            (&[10, 10, 10], 10, 25, 2),
            (&[10, 10, 10], 10, 30, 3),
            (&[50, 10], 10, 20, 1), // a lone oversize event goes alone
            (&[10, 50], 10, 20, 1), // the oversize one waits for its own request
            (&[5; 100], usize::MAX, usize::MAX, 100),
        ];
        for (costs, max_events, max_cost, expected) in cases {
            assert_eq!(
                batch_len(costs.iter().copied(), max_events, max_cost),
                expected,
                "{costs:?} {max_events} {max_cost}"
            );
        }
    }
}
