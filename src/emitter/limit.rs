//! Adaptive request concurrency: how many requests an emitter may have outstanding.
//!
//! **No I/O, no actix, no clock.** The delivery core reports each answer (its round trip,
//! whether the limit was in use when it was sent, whether it signalled back-pressure) and
//! asks for the current limit. The rule is TCP's congestion control, applied to requests:
//!
//! - **Slow start**: from 1, each success of a request sent while the limit was in use adds
//!   one, so the limit doubles per round trip, until the first decrease.
//! - **Additive increase**: after that, `limit` such successes add one: one per round trip.
//! - **Multiplicative decrease**: back-pressure (a timeout, 429, 503, a connection error)
//!   multiplies the limit by [`BACK_PRESSURE_DECREASE`]; round trips rising above twice
//!   their long-term level by [`RTT_RISE_DECREASE`]. At most one decrease per round trip:
//!   answers to requests sent before the last decrease do not decrease it again.
//!
//! The limit stays within `1..=max`; `max = 1` keeps one request at a time.

use std::time::Duration;

/// The factor applied to the limit on back-pressure (TCP's halving).
pub(crate) const BACK_PRESSURE_DECREASE: f64 = 0.5;
/// The factor applied when round trips rise: a gentler signal than back-pressure, since a
/// larger body or a busy network also lengthens them.
pub(crate) const RTT_RISE_DECREASE: f64 = 0.9;
/// Round trips are rising when their recent average exceeds this multiple of the long-term
/// one…
pub(crate) const RTT_RISE_FACTOR: f64 = 2.0;
/// …and the difference is at least this (so that the noise of a collector answering in a
/// millisecond is not taken for congestion).
pub(crate) const RTT_RISE_MIN: Duration = Duration::from_millis(20);

/// Weight of a new round trip in the recent average.
const RECENT_WEIGHT: f64 = 0.25;
/// Weight of a new round trip in the long-term average (which follows a lower one at once).
const BASE_WEIGHT: f64 = 1.0 / 32.0;

/// The concurrency limit of one emitter.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    max: usize,
    limit: usize,
    /// Successes at the limit since it last grew, in additive increase.
    credit: usize,
    slow_start: bool,
    /// Bumped on every decrease; a request remembers the epoch it was sent in.
    epoch: u64,
    /// Long-term and recent round trips, in seconds.
    base_rtt: Option<f64>,
    recent_rtt: Option<f64>,
}

impl Limiter {
    /// A limit that starts at 1 and may grow to `max` (at least 1).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            limit: 1,
            credit: 0,
            slow_start: true,
            epoch: 0,
            base_rtt: None,
            recent_rtt: None,
        }
    }

    /// Requests that may be outstanding now.
    pub(crate) fn current(&self) -> usize {
        self.limit
    }

    /// The epoch a request sent now belongs to.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the limit is still doubling per round trip.
    #[cfg(test)]
    pub(crate) fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// A success after `rtt`, of a request sent in `epoch`, when `at_limit` requests were
    /// outstanding (the limit was in use).
    pub(crate) fn on_success(&mut self, rtt: Duration, at_limit: bool, epoch: u64) {
        let sample = rtt.as_secs_f64();
        let recent = self
            .recent_rtt
            .map_or(sample, |recent| recent + RECENT_WEIGHT * (sample - recent));
        self.recent_rtt = Some(recent);
        let base = match self.base_rtt {
            Some(base) if sample >= base => base + BASE_WEIGHT * (sample - base),
            _ => sample,
        };
        self.base_rtt = Some(base);
        let rising = recent > base * RTT_RISE_FACTOR && recent - base >= RTT_RISE_MIN.as_secs_f64();
        if rising && epoch == self.epoch {
            self.decrease(RTT_RISE_DECREASE);
            // Judge the next round trips against the new level.
            self.recent_rtt = Some(base);
            return;
        }
        if at_limit && !rising {
            if self.slow_start {
                self.limit += 1;
            } else {
                self.credit += 1;
                if self.credit >= self.limit {
                    self.credit = 0;
                    self.limit += 1;
                }
            }
            self.limit = self.limit.min(self.max);
        }
    }

    /// Back-pressure from a request sent in `epoch`.
    pub(crate) fn on_back_pressure(&mut self, epoch: u64) {
        if epoch == self.epoch {
            self.decrease(BACK_PRESSURE_DECREASE);
        }
    }

    /// Back to one request and a slow start (after the collector was unavailable).
    pub(crate) fn restart(&mut self) {
        self.limit = 1;
        self.credit = 0;
        self.slow_start = true;
        self.epoch += 1;
    }

    fn decrease(&mut self, factor: f64) {
        self.limit = ((self.limit as f64 * factor).floor() as usize).max(1);
        self.credit = 0;
        self.slow_start = false;
        self.epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(100);

    /// One round trip with every slot used: `current()` successes.
    fn round_trip(limiter: &mut Limiter, rtt: Duration) {
        for _ in 0..limiter.current() {
            limiter.on_success(rtt, true, limiter.epoch());
        }
    }

    #[test]
    fn slow_start_doubles_per_round_trip_up_to_the_max() {
        let mut limiter = Limiter::new(16);
        let mut limits = vec![limiter.current()];
        for _ in 0..6 {
            round_trip(&mut limiter, RTT);
            limits.push(limiter.current());
        }
        assert_eq!(limits, [1, 2, 4, 8, 16, 16, 16]);
    }

    #[test]
    fn an_unused_limit_does_not_grow() {
        let mut limiter = Limiter::new(16);
        for _ in 0..10 {
            limiter.on_success(RTT, false, limiter.epoch());
        }
        assert_eq!(limiter.current(), 1);
    }

    #[test]
    fn back_pressure_halves_once_per_round_trip_then_growth_is_additive() {
        let mut limiter = Limiter::new(64);
        for _ in 0..4 {
            round_trip(&mut limiter, RTT);
        }
        assert_eq!(limiter.current(), 16);
        let sent_before = limiter.epoch();
        limiter.on_back_pressure(sent_before);
        // Three more answers of the same round trip: no further decrease.
        for _ in 0..3 {
            limiter.on_back_pressure(sent_before);
        }
        assert_eq!(limiter.current(), 8);
        assert!(!limiter.in_slow_start());
        round_trip(&mut limiter, RTT);
        assert_eq!(limiter.current(), 9, "one per round trip");
        round_trip(&mut limiter, RTT);
        assert_eq!(limiter.current(), 10);
    }

    #[test]
    fn the_limit_never_leaves_one_to_max() {
        let mut limiter = Limiter::new(3);
        for _ in 0..10 {
            limiter.on_back_pressure(limiter.epoch());
        }
        assert_eq!(limiter.current(), 1);
        for _ in 0..10 {
            round_trip(&mut limiter, RTT);
        }
        assert_eq!(limiter.current(), 3);
        let mut single = Limiter::new(1);
        round_trip(&mut single, RTT);
        assert_eq!(single.current(), 1);
    }

    #[test]
    fn rising_round_trips_decrease_the_limit() {
        let mut limiter = Limiter::new(64);
        for _ in 0..4 {
            round_trip(&mut limiter, RTT);
        }
        assert_eq!(limiter.current(), 16);
        // The collector slows down to 400 ms: the recent average passes 200 ms + 20 ms.
        for _ in 0..8 {
            limiter.on_success(Duration::from_millis(400), true, limiter.epoch());
        }
        assert!(limiter.current() < 16, "{}", limiter.current());
        assert!(!limiter.in_slow_start());
    }

    #[test]
    fn localhost_noise_is_not_congestion() {
        let mut limiter = Limiter::new(64);
        for round in 0..6 {
            let rtt = Duration::from_micros(if round % 2 == 0 { 200 } else { 3_000 });
            round_trip(&mut limiter, rtt);
        }
        assert_eq!(limiter.current(), 64);
    }

    #[test]
    fn restart_goes_back_to_a_slow_start_from_one() {
        let mut limiter = Limiter::new(16);
        round_trip(&mut limiter, RTT);
        limiter.on_back_pressure(limiter.epoch());
        limiter.restart();
        assert_eq!(limiter.current(), 1);
        assert!(limiter.in_slow_start());
        round_trip(&mut limiter, RTT);
        assert_eq!(limiter.current(), 2);
    }
}
