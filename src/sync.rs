//! Two small tools every actor and handle shares: a lock that survives a panic elsewhere,
//! and the counter behind "logged once per burst".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, also after a thread panicked while holding it: every value kept behind
/// these locks stays consistent between statements (counters, lists), so a panic elsewhere
/// must not make it unreachable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts the events of one kind of refusal or drop while they last, so that a burst of
/// them is logged twice whatever its length: where it starts and where it ends.
///
/// ```text
/// add(n) → true   (the burst starts: log its first line)
/// add(n) → false  (counted, not logged)
/// end()  → Some(total)  (it ended: log how many it counted); None when there was none
/// ```
///
/// Shared by reference: the tracker's `track` runs on many threads at once.
#[derive(Debug, Default)]
pub(crate) struct Burst(AtomicU64);

impl Burst {
    /// Counts `count` more; `true` when they start a burst.
    pub(crate) fn add(&self, count: u64) -> bool {
        self.0.fetch_add(count, Ordering::Relaxed) == 0
    }

    /// Whether a burst is going on.
    pub(crate) fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }

    /// Ends the burst: how many it counted, or `None` when none was going on (one relaxed
    /// load on the common path).
    pub(crate) fn end(&self) -> Option<u64> {
        if self.0.load(Ordering::Relaxed) == 0 {
            return None;
        }
        Some(self.0.swap(0, Ordering::Relaxed)).filter(|&count| count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_starts_once_counts_everything_and_ends_once() {
        let burst = Burst::default();
        assert_eq!(burst.end(), None, "no burst yet");
        assert!(burst.add(3), "the first refusal starts it");
        assert!(burst.is_on());
        assert!(!burst.add(2));
        assert_eq!(burst.end(), Some(5));
        assert_eq!(burst.end(), None, "ended once");
        assert!(!burst.is_on());
        assert!(burst.add(1), "the next refusal starts a new one");
    }

    #[test]
    fn a_poisoned_lock_is_still_taken() {
        let mutex = std::sync::Arc::new(Mutex::new(1));
        let held = mutex.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(mutex.is_poisoned());
        *lock(&mutex) += 1;
        assert_eq!(*lock(&mutex), 2);
    }
}
