//! The flushes an emitter's core waits to answer, indexed so that each is found in
//! logarithmic time: by deadline (the emitter arms one timer, for the earliest) and by
//! target (every flush whose events are all settled is done at once).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::report::DropCounts;

/// A sync flush or a shutdown waiting for the events received before it.
#[derive(Debug, Clone)]
pub(crate) struct Waiter {
    pub(crate) id: u64,
    /// Done when no event with a smaller `seq` is queued, waiting or in flight.
    pub(crate) target: u64,
    pub(crate) deadline: Instant,
    /// When it was made.
    pub(crate) since: Instant,
    pub(crate) start_sent: u64,
    pub(crate) start_dropped: DropCounts,
    pub(crate) start_unknown: u64,
    pub(crate) shutdown: bool,
}

impl Waiter {
    /// Whether its events are settled, given the smallest `seq` still outstanding.
    pub(crate) fn is_done(&self, oldest_outstanding: Option<u64>) -> bool {
        oldest_outstanding.is_none_or(|oldest| oldest >= self.target)
    }
}

/// The waiting flushes.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    waiting: HashMap<u64, Waiter>,
    by_deadline: BTreeSet<(Instant, u64)>,
    by_target: BTreeSet<(u64, u64)>,
    /// The shutdowns among them (rarely more than one).
    shutdowns: Vec<u64>,
}

impl Waiters {
    pub(crate) fn add(&mut self, waiter: Waiter) {
        self.by_deadline.insert((waiter.deadline, waiter.id));
        self.by_target.insert((waiter.target, waiter.id));
        if waiter.shutdown {
            self.shutdowns.push(waiter.id);
        }
        self.waiting.insert(waiter.id, waiter);
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<Waiter> {
        let waiter = self.waiting.remove(&id)?;
        self.by_deadline.remove(&(waiter.deadline, id));
        self.by_target.remove(&(waiter.target, id));
        self.shutdowns.retain(|&shutdown| shutdown != id);
        Some(waiter)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(deadline, _)| *deadline)
    }

    /// The flushes to answer now, oldest first: those past their deadline and those done.
    pub(crate) fn ready(&self, now: Instant, oldest_outstanding: Option<u64>) -> Vec<u64> {
        let late = self
            .by_deadline
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, id)| *id);
        let done = self
            .by_target
            .iter()
            .take_while(|(target, _)| oldest_outstanding.is_none_or(|oldest| oldest >= *target))
            .map(|(_, id)| *id);
        let mut ids: Vec<u64> = late.chain(done).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Every flush waiting, in no order.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Waiter> {
        self.waiting.values()
    }

    /// The shutdowns waiting.
    pub(crate) fn shutdowns(&self) -> impl Iterator<Item = &Waiter> {
        self.shutdowns.iter().filter_map(|id| self.waiting.get(id))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn waiter(id: u64, target: u64, deadline: Instant, shutdown: bool) -> Waiter {
        Waiter {
            id,
            target,
            deadline,
            since: deadline,
            start_sent: 0,
            start_dropped: DropCounts::default(),
            start_unknown: 0,
            shutdown,
        }
    }

    #[test]
    fn ready_finds_the_late_and_the_done_and_nothing_else() {
        let now = Instant::now();
        let mut waiters = Waiters::default();
        waiters.add(waiter(0, 10, now + Duration::from_secs(5), false));
        waiters.add(waiter(1, 20, now + Duration::from_secs(1), false));
        waiters.add(waiter(2, 30, now + Duration::from_secs(9), true));

        assert_eq!(waiters.next_deadline(), Some(now + Duration::from_secs(1)));
        // Event 15 is the oldest outstanding: the flush waiting for events before 10 is done.
        assert_eq!(waiters.ready(now, Some(15)), [0]);
        // Two seconds later the second is late too.
        assert_eq!(
            waiters.ready(now + Duration::from_secs(2), Some(15)),
            [0, 1]
        );
        // Nothing outstanding: every one is done.
        assert_eq!(waiters.ready(now, None), [0, 1, 2]);
        assert_eq!(waiters.shutdowns().map(|w| w.id).collect::<Vec<_>>(), [2]);

        assert_eq!(waiters.remove(1).map(|w| w.target), Some(20));
        assert_eq!(waiters.remove(1).map(|w| w.target), None);
        assert_eq!(waiters.next_deadline(), Some(now + Duration::from_secs(5)));
        assert_eq!(waiters.remove(2).map(|w| w.id), Some(2));
        assert_eq!(waiters.shutdowns().count(), 0);
        assert_eq!(waiters.all().count(), 1);
        assert!(!waiters.is_empty());
    }
}
