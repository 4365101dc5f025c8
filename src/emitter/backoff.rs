//! Exponential backoff with jitter, capped: the pure part of retry scheduling.
//!
//! **No I/O, no actix, no clock.** The emitter asks for the next delay after each retryable
//! failure and resets it after a success or a non-retryable answer. The formula is the
//! Snowplow Python tracker's: `delay = min(delay * 2 + jitter, cap)`, with `jitter`
//! uniform on `[0, 1)` seconds, so the delays grow roughly as `[0,1)`, `[1,3)`, `[3,7)`, …
//! up to the cap.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A source of jitter: each call returns a number in `[0, 1)`.
///
/// The default is a small pseudo-random generator; tests inject a fixed sequence so the
/// delays are exact.
pub(crate) type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Exponential backoff state.
#[derive(Clone)]
pub(crate) struct Backoff {
    delay: Duration,
    cap: Duration,
    jitter: Jitter,
}

impl Backoff {
    /// Backoff capped at `cap`, drawing jitter from `jitter`.
    pub(crate) fn new(cap: Duration, jitter: Jitter) -> Self {
        Self {
            delay: Duration::ZERO,
            cap,
            jitter,
        }
    }

    /// Advances after a retryable failure and returns the delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.delay = step(self.delay, self.draw(), self.cap);
        self.delay
    }

    /// One jitter value; a jitter source that panics gives half a second, logged (it is
    /// user code: it must not end the emitter in the middle of settling an answer).
    fn draw(&self) -> f64 {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.jitter)())).unwrap_or_else(
            |_| {
                tracing::warn!("the backoff's jitter source panicked: using 0.5 s");
                0.5
            },
        )
    }

    /// The delay that follows `previous` (zero: the first), drawing one jitter value: what
    /// a request retried on its own schedule waits after its next failure.
    pub(crate) fn delay_after(&self, previous: Duration) -> Duration {
        step(previous, self.draw(), self.cap)
    }

    /// The current delay (zero after a reset).
    #[cfg(test)]
    pub(crate) fn current(&self) -> Duration {
        self.delay
    }

    /// Back to zero, after a success or a non-retryable answer.
    pub(crate) fn reset(&mut self) {
        self.delay = Duration::ZERO;
    }
}

/// One step of the formula: `min(previous * 2 + jitter, cap)`, with `jitter` clamped to
/// `[0, 1]` seconds.
pub(crate) fn step(previous: Duration, jitter: f64, cap: Duration) -> Duration {
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    let grown = previous.as_secs_f64() * 2.0 + jitter;
    Duration::try_from_secs_f64(grown).unwrap_or(cap).min(cap)
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("delay", &self.delay)
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

/// The default jitter: a xorshift generator seeded from the clock and a counter, uniform
/// on `[0, 1)`. Statistical quality is irrelevant here; spreading retries is the point.
pub(crate) fn default_jitter() -> Jitter {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let seed = nanos ^ SEQUENCE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) | 1;
    let state = Arc::new(AtomicU64::new(seed));
    Arc::new(move || {
        let mut x = state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn fixed(values: &[f64]) -> Jitter {
        let values: Vec<f64> = values.to_vec();
        let values = Mutex::new(values.into_iter());
        Arc::new(move || values.lock().unwrap().next().unwrap_or(0.0))
    }

    fn secs(delays: &[Duration]) -> Vec<f64> {
        delays
            .iter()
            .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
            .collect()
    }

    #[test]
    fn a_step_doubles_adds_the_jitter_and_stops_at_the_cap() {
        let cap = Duration::from_secs(5);
        assert_eq!(step(Duration::ZERO, 0.5, cap), Duration::from_millis(500));
        assert_eq!(
            step(Duration::from_millis(500), 0.5, cap),
            Duration::from_millis(1500)
        );
        assert_eq!(step(Duration::from_secs(4), 0.0, cap), cap);
        assert_eq!(
            step(Duration::ZERO, f64::NAN, cap),
            Duration::ZERO,
            "NaN jitter is 0"
        );
        assert_eq!(
            step(Duration::ZERO, 7.0, cap),
            Duration::from_secs(1),
            "clamped to 1 s"
        );
    }

    #[test]
    fn delays_double_plus_jitter_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_secs(60), fixed(&[0.5; 8]));
        let delays: Vec<_> = (0..8).map(|_| backoff.next_delay()).collect();
        assert_eq!(secs(&delays), [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 60.0, 60.0]);
    }

    #[test]
    fn the_python_probe_with_cap_five() {
        let mut backoff = Backoff::new(Duration::from_secs(5), fixed(&[0.99, 0.71, 0.3, 0.9]));
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay()).collect();
        assert_eq!(secs(&delays), [0.99, 2.69, 5.0, 5.0]);
    }

    #[test]
    fn reset_starts_again_from_zero() {
        let mut backoff = Backoff::new(Duration::from_secs(60), fixed(&[0.0, 0.0, 0.25]));
        backoff.next_delay();
        backoff.next_delay();
        backoff.reset();
        assert_eq!(backoff.current(), Duration::ZERO);
        assert_eq!(backoff.next_delay(), Duration::from_millis(250));
    }

    #[test]
    fn default_jitter_stays_in_the_unit_interval() {
        let jitter = default_jitter();
        for _ in 0..10_000 {
            let value = jitter();
            assert!((0.0..1.0).contains(&value), "{value}");
        }
    }

    mod properties {
        use std::collections::VecDeque;

        use proptest::prelude::*;

        use super::*;

        /// A step of the emitter's use of its backoff.
        #[derive(Debug, Clone, Copy)]
        enum Step {
            /// A retryable failure: the next delay, drawing `jitter`.
            Fail(f64),
            /// A success or a non-retryable answer.
            Reset,
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                6 => (0.0f64..1.0).prop_map(Step::Fail),
                1 => Just(Step::Reset),
            ]
        }

        const NANO: Duration = Duration::from_nanos(1);

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1_000, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn backoff_delays_double_plus_jitter_never_exceed_the_cap_and_reset_to_zero(
                cap_ms in 1u64..200_000,
                steps in prop::collection::vec(step(), 1..60),
            ) {
                let cap = Duration::from_millis(cap_ms);
                let next: Arc<Mutex<VecDeque<f64>>> = Arc::default();
                let source = next.clone();
                let mut backoff = Backoff::new(
                    cap,
                    Arc::new(move || source.lock().unwrap().pop_front().expect("one jitter per delay")),
                );
                prop_assert_eq!(backoff.current(), Duration::ZERO);
                for step in steps {
                    let previous = backoff.current();
                    match step {
                        Step::Reset => {
                            backoff.reset();
                            prop_assert_eq!(backoff.current(), Duration::ZERO);
                        }
                        Step::Fail(jitter) => {
                            next.lock().unwrap().push_back(jitter);
                            let delay = backoff.next_delay();
                            prop_assert!(next.lock().unwrap().is_empty(), "one draw per delay");
                            prop_assert_eq!(delay, backoff.current());
                            prop_assert!(delay <= cap, "{:?} above the cap {:?}", delay, cap);
                            let low = previous * 2;
                            let exact = low.as_secs_f64() + jitter;
                            if exact < cap.as_secs_f64() {
                                // Below the cap: in [prev * 2, prev * 2 + 1 s), the jitter added.
                                prop_assert!(delay + NANO >= low, "{:?} below {:?}", delay, low);
                                prop_assert!(delay < low + Duration::from_secs(1), "{:?} from {:?}", delay, low);
                                let expected = Duration::from_secs_f64(exact);
                                prop_assert!(
                                    delay.abs_diff(expected) <= NANO * 2,
                                    "{:?} instead of {:?}", delay, expected
                                );
                            } else {
                                prop_assert_eq!(delay, cap);
                            }
                        }
                    }
                }
            }
        }
    }
}
