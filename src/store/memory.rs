//! The default store: a bounded in-memory queue.

use std::collections::{HashMap, VecDeque};

use super::{batch_len, Added, EventStore, Lease, LeaseId, StoredEvent};
use crate::error::StoreError;

/// The default number of events an emitter buffers (queued plus in flight).
pub const DEFAULT_BUFFER_CAPACITY: usize = 10_000;

/// A bounded in-memory [`EventStore`]: drop newest when full, nothing survives the process.
///
/// # Examples
///
/// ```
/// use snowplow_actix::store::{EventStore, InMemoryStore};
///
/// let store = InMemoryStore::new(5_000);
/// assert_eq!(store.capacity(), 5_000);
/// assert!(store.is_empty());
/// ```
#[derive(Debug)]
pub struct InMemoryStore {
    capacity: usize,
    queue: VecDeque<StoredEvent>,
    leases: HashMap<LeaseId, usize>,
    leased: usize,
    next_lease: u64,
}

impl InMemoryStore {
    /// A store holding at most `capacity` events, queued and leased together.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            queue: VecDeque::new(),
            leases: HashMap::new(),
            leased: 0,
            // 0 stays free: a durable store marks unleased rows with it.
            next_lease: 1,
        }
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether queued plus leased events fill the capacity.
    pub(crate) fn is_full(&self) -> bool {
        self.queue.len() + self.leased >= self.capacity
    }

    /// Queues an event found in a durable store at open, whatever the capacity: it was
    /// accepted once and is not refused now.
    #[cfg(feature = "sqlite")]
    pub(crate) fn recover(&mut self, event: StoredEvent) {
        self.queue.push_back(event);
    }

    fn settle(&mut self, lease: LeaseId) {
        if let Some(count) = self.leases.remove(&lease) {
            self.leased -= count;
        }
    }
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new(DEFAULT_BUFFER_CAPACITY)
    }
}

impl EventStore for InMemoryStore {
    fn capacity(&self) -> Option<usize> {
        Some(self.capacity)
    }

    fn add(&mut self, event: StoredEvent) -> Result<Added, StoreError> {
        if self.is_full() {
            return Ok(Added::Full);
        }
        self.queue.push_back(event);
        Ok(Added::Stored)
    }

    fn lease(&mut self, max_events: usize, max_cost: usize) -> Result<Lease, StoreError> {
        let count = batch_len(self.queue.iter().map(|e| e.cost), max_events, max_cost);
        let events: Vec<StoredEvent> = self.queue.drain(..count).collect();
        let id = LeaseId(self.next_lease);
        self.next_lease += 1;
        if count > 0 {
            self.leases.insert(id, count);
            self.leased += count;
        }
        Ok(Lease { id, events })
    }

    fn acknowledge(&mut self, lease: LeaseId) -> Result<(), StoreError> {
        self.settle(lease);
        Ok(())
    }

    fn requeue(&mut self, lease: LeaseId, retry: Vec<StoredEvent>) -> Result<(), StoreError> {
        self.settle(lease);
        // Usually older than everything queued, each lands at the front; with several
        // requests in flight an older lease may come back after a newer one, and the search
        // keeps the queue in `seq` order either way.
        for event in retry.into_iter().rev() {
            let at = self.queue.partition_point(|queued| queued.seq < event.seq);
            self.queue.insert(at, event);
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn leased(&self) -> usize {
        self.leased
    }

    fn oldest_seq(&self) -> Option<u64> {
        self.queue.front().map(|event| event.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{wire::TrackerSettings, PageView};
    use std::sync::Arc;

    fn event(seq: u64, cost: usize) -> StoredEvent {
        let settings = TrackerSettings::new("test").unwrap();
        let stamped = settings
            .stamp(PageView::new("https://x/").unwrap())
            .unwrap()
            .remove(0);
        StoredEvent {
            seq,
            event: Arc::new(stamped),
            cost,
            attempts: 0,
            received_ms: 0,
        }
    }

    fn seqs(events: &[StoredEvent]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn capacity_counts_queued_and_leased_and_drops_newest() {
        let mut store = InMemoryStore::new(3);
        for seq in 0..3 {
            assert_eq!(store.add(event(seq, 1)).unwrap(), Added::Stored);
        }
        let lease = store.lease(2, usize::MAX).unwrap();
        assert_eq!(seqs(&lease.events), [0, 1]);
        assert_eq!(store.add(event(3, 1)).unwrap(), Added::Full);
        store.acknowledge(lease.id).unwrap();
        assert_eq!(store.add(event(4, 1)).unwrap(), Added::Stored);
        assert_eq!((store.len(), store.leased()), (2, 0));
    }

    #[test]
    fn requeued_events_go_back_in_order_without_counting_twice() {
        let mut store = InMemoryStore::new(4);
        for seq in 0..4 {
            store.add(event(seq, 1)).unwrap();
        }
        let first = store.lease(2, usize::MAX).unwrap();
        let second = store.lease(1, usize::MAX).unwrap();
        // The newer lease fails first, then the older one, keeping one of its two events.
        store.requeue(second.id, second.events).unwrap();
        store
            .requeue(first.id, vec![first.events[1].clone()])
            .unwrap();
        assert_eq!((store.len(), store.leased()), (3, 0));
        let all = store.lease(10, usize::MAX).unwrap();
        assert_eq!(seqs(&all.events), [1, 2, 3]);
    }

    #[test]
    fn lease_respects_cost_and_sends_a_lone_oversize_event() {
        let mut store = InMemoryStore::new(10);
        store.add(event(0, 100)).unwrap();
        store.add(event(1, 10)).unwrap();
        store.add(event(2, 10)).unwrap();
        assert_eq!(seqs(&store.lease(10, 50).unwrap().events), [0]);
        assert_eq!(seqs(&store.lease(10, 50).unwrap().events), [1, 2]);
        assert!(store.lease(10, 50).unwrap().events.is_empty());
        assert_eq!(store.oldest_seq(), None);
    }
}
