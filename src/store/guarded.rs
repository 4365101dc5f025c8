//! A panic in an event store becomes a [`StoreError`], where the emitter's core calls it.
//!
//! The core changes its counters around each store call; a panic unwinding through it
//! would leave them half changed. Caught at the call, it is an ordinary store failure:
//! logged, and counted as `store` drops where events are lost.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{Added, EventStore, Lease, LeaseId, StoredEvent};
use crate::error::{panic_message, StoreError};

/// The store an emitter's core calls: the configured one, panics caught.
pub(crate) struct Guarded(pub(crate) Box<dyn EventStore>);

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// `call`, or `fallback` (with one ERROR line) if it panicked.
fn guard<R>(what: &'static str, fallback: R, call: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        tracing::error!(
            call = what,
            panic = %panic_message(panic.as_ref()),
            "the event store panicked: treated as a store failure"
        );
        fallback
    })
}

/// `call`, or a [`StoreError`] if it panicked.
fn guard_result<R>(
    what: &'static str,
    call: impl FnOnce() -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    guard(
        what,
        Err(StoreError::Backend(format!(
            "the event store panicked in {what}"
        ))),
        call,
    )
}

impl EventStore for Guarded {
    fn add(&mut self, event: StoredEvent) -> Result<Added, StoreError> {
        guard_result("add", || self.0.add(event))
    }

    fn lease(&mut self, max_events: usize, max_cost: usize) -> Result<Lease, StoreError> {
        guard_result("lease", || self.0.lease(max_events, max_cost))
    }

    fn acknowledge(&mut self, lease: LeaseId) -> Result<(), StoreError> {
        guard_result("acknowledge", || self.0.acknowledge(lease))
    }

    fn requeue(&mut self, lease: LeaseId, retry: Vec<StoredEvent>) -> Result<(), StoreError> {
        guard_result("requeue", || self.0.requeue(lease, retry))
    }

    fn len(&self) -> usize {
        guard("len", 0, || self.0.len())
    }

    fn is_empty(&self) -> bool {
        guard("is_empty", true, || self.0.is_empty())
    }

    fn leased(&self) -> usize {
        guard("leased", 0, || self.0.leased())
    }

    fn capacity(&self) -> Option<usize> {
        guard("capacity", None, || self.0.capacity())
    }

    fn oldest_seq(&self) -> Option<u64> {
        guard("oldest_seq", None, || self.0.oldest_seq())
    }

    fn is_durable(&self) -> bool {
        guard("is_durable", false, || self.0.is_durable())
    }

    fn next_seq(&self) -> u64 {
        guard("next_seq", 0, || self.0.next_seq())
    }

    fn recovered(&self) -> u64 {
        guard("recovered", 0, || self.0.recovered())
    }

    fn recovered_cost(&self) -> u64 {
        guard("recovered_cost", 0, || self.0.recovered_cost())
    }

    fn unreadable(&self) -> u64 {
        guard("unreadable", 0, || self.0.unreadable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InMemoryStore;

    /// A store whose `add` panics.
    #[derive(Debug)]
    struct Panicking(InMemoryStore);

    impl EventStore for Panicking {
        fn add(&mut self, _: StoredEvent) -> Result<Added, StoreError> {
            panic!("disk on fire");
        }
        fn lease(&mut self, max_events: usize, max_cost: usize) -> Result<Lease, StoreError> {
            self.0.lease(max_events, max_cost)
        }
        fn acknowledge(&mut self, lease: LeaseId) -> Result<(), StoreError> {
            self.0.acknowledge(lease)
        }
        fn requeue(&mut self, lease: LeaseId, retry: Vec<StoredEvent>) -> Result<(), StoreError> {
            self.0.requeue(lease, retry)
        }
        fn len(&self) -> usize {
            panic!("cannot count");
        }
        fn leased(&self) -> usize {
            self.0.leased()
        }
        fn oldest_seq(&self) -> Option<u64> {
            self.0.oldest_seq()
        }
    }

    #[test]
    fn a_panicking_store_call_is_a_store_error_or_its_neutral_value() {
        let mut store = Guarded(Box::new(Panicking(InMemoryStore::new(10))));
        let settings = crate::wire::TrackerSettings::new("test").unwrap();
        let page = crate::PageView::new("https://shop.example/").unwrap();
        let event = StoredEvent {
            seq: 0,
            event: std::sync::Arc::new(settings.stamp(page).unwrap().remove(0)),
            cost: 10,
            attempts: 0,
            received_ms: 0,
        };

        let added = store.add(event);

        assert!(
            matches!(&added, Err(StoreError::Backend(text)) if text.contains("add")),
            "{added:?}"
        );
        assert_eq!(store.len(), 0);
        assert_eq!(store.lease(10, usize::MAX).unwrap().events.len(), 0);
    }
}
