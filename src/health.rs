//! Health: whether a tracker's emitters deliver, for a status route and monitoring.
//!
//! Each emitter is **healthy**, **degraded** (it keeps every event but delivery is failing
//! or falling behind: failed requests, the brake, a queue above
//! [`DEGRADED_QUEUE_PERCENT`] of its buffer) or **down** (events are being lost or cannot
//! be taken: a full buffer, an emitter stopped or shut down). A tracker is as healthy as
//! its least healthy emitter.
//!
//! Use it to alert and to show on a status page, **not to fail an app's readiness**: the
//! collector is usually shared by every replica, so a readiness check failing on its
//! health would take every replica out of the load balancer at once when it is down,
//! while the tracker would have kept the events and delivered them later.
//!
//! ```
//! use snowplow_actix::health::{EmitterHealth, HealthReason, HealthStatus};
//! use snowplow_actix::EmitterStats;
//!
//! let stats = EmitterStats {
//!     queued: 800,
//!     buffer_capacity: Some(1_000),
//!     consecutive_failures: 3,
//!     ..EmitterStats::default()
//! };
//! let health = EmitterHealth::from_stats("primary", &stats);
//! assert_eq!(health.status, HealthStatus::Degraded);
//! assert_eq!(health.reasons, [HealthReason::FailingRequests, HealthReason::QueueHigh]);
//! ```

use serde::Serialize;

use crate::report::EmitterStats;

/// A queue holding at least this share (in percent) of its buffer is degraded: at this
/// pace the buffer fills and events are dropped.
pub const DEGRADED_QUEUE_PERCENT: u64 = 50;

/// Healthy, degraded or down, in that order of worsening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Delivering.
    Healthy,
    /// Keeping every event, but delivery is failing or falling behind.
    Degraded,
    /// Losing events, or unable to take them.
    Down,
}

/// Why an emitter or tracker is not healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthReason {
    /// The last answers were retryable failures (`consecutive_failures` > 0): degraded.
    FailingRequests,
    /// The emitter takes the collector as unavailable (the brake): degraded.
    Braked,
    /// Queued and in-flight events hold at least [`DEGRADED_QUEUE_PERCENT`] of the
    /// buffer, in events or in bytes: degraded.
    QueueHigh,
    /// The buffer is full: new events are dropped (`capacity`): down.
    BufferFull,
    /// The emitter does not answer (stopped): down.
    Stopped,
    /// Shut down: it takes no more events: down.
    ShutDown,
}

impl HealthReason {
    /// What this reason makes of the status.
    pub fn status(self) -> HealthStatus {
        match self {
            Self::FailingRequests | Self::Braked | Self::QueueHigh => HealthStatus::Degraded,
            Self::BufferFull | Self::Stopped | Self::ShutDown => HealthStatus::Down,
        }
    }
}

/// The worst status of `reasons`.
fn status_of(reasons: &[HealthReason]) -> HealthStatus {
    reasons
        .iter()
        .map(|reason| reason.status())
        .max()
        .unwrap_or(HealthStatus::Healthy)
}

/// One emitter's health, with the figures behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EmitterHealth {
    /// The emitter's name.
    pub name: String,
    /// Its status: the worst of its reasons.
    pub status: HealthStatus,
    /// Why it is not healthy (empty when it is).
    pub reasons: Vec<HealthReason>,
    /// Events queued, including those waiting for a retry.
    pub queued: u64,
    /// Events in requests awaiting an answer.
    pub in_flight: u64,
    /// The most events its buffer holds (`None` without a bound).
    pub buffer_capacity: Option<u64>,
    /// Retryable failed answers in a row.
    pub consecutive_failures: u64,
    /// How long, in ms, the emitter as a whole waits before it sends again.
    pub backoff_ms: u64,
}

impl EmitterHealth {
    /// The health `stats` describe.
    pub fn from_stats(name: impl Into<String>, stats: &EmitterStats) -> Self {
        let held = stats.queued + stats.in_flight;
        let mut reasons = Vec::new();
        if stats.shut_down {
            reasons.push(HealthReason::ShutDown);
        }
        if stats.consecutive_failures > 0 {
            reasons.push(HealthReason::FailingRequests);
        }
        if stats.braked {
            reasons.push(HealthReason::Braked);
        }
        if stats.buffer_full {
            reasons.push(HealthReason::BufferFull);
        } else if stats.buffer_capacity.is_some_and(|capacity| {
            held.saturating_mul(100) >= capacity.saturating_mul(DEGRADED_QUEUE_PERCENT)
        }) || (stats.buffer_bytes > 0
            && (stats.queued_bytes + stats.in_flight_bytes).saturating_mul(100)
                >= stats.buffer_bytes.saturating_mul(DEGRADED_QUEUE_PERCENT))
        {
            reasons.push(HealthReason::QueueHigh);
        }
        Self {
            name: name.into(),
            status: status_of(&reasons),
            reasons,
            queued: stats.queued,
            in_flight: stats.in_flight,
            buffer_capacity: stats.buffer_capacity,
            consecutive_failures: stats.consecutive_failures,
            backoff_ms: stats.backoff_ms,
        }
    }

    /// An emitter that did not answer.
    pub(crate) fn stopped(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: HealthStatus::Down,
            reasons: vec![HealthReason::Stopped],
            queued: 0,
            in_flight: 0,
            buffer_capacity: None,
            consecutive_failures: 0,
            backoff_ms: 0,
        }
    }
}

/// A tracker's health: the worst of its emitters', and each of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// The worst status of the tracker and its emitters.
    pub status: HealthStatus,
    /// Why the tracker itself is not healthy (shut down, its actors gone).
    pub reasons: Vec<HealthReason>,
    /// Each built-in emitter, in the order they were added (custom emitters report no
    /// stats and are left out).
    pub emitters: Vec<EmitterHealth>,
}

impl Health {
    pub(crate) fn new(reasons: Vec<HealthReason>, emitters: Vec<EmitterHealth>) -> Self {
        let status = emitters
            .iter()
            .map(|emitter| emitter.status)
            .chain([status_of(&reasons)])
            .max()
            .unwrap_or(HealthStatus::Healthy);
        Self {
            status,
            reasons,
            emitters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(queued: u64, in_flight: u64) -> EmitterStats {
        EmitterStats {
            queued,
            in_flight,
            buffer_capacity: Some(100),
            ..EmitterStats::default()
        }
    }

    #[test]
    fn an_emitter_is_healthy_until_its_figures_say_otherwise() {
        let health = EmitterHealth::from_stats("e", &stats(49, 0));
        assert_eq!(
            (health.status, health.reasons),
            (HealthStatus::Healthy, vec![])
        );
    }

    #[test]
    fn a_queue_at_the_named_share_of_its_buffer_is_degraded_and_a_full_one_down() {
        let high = EmitterHealth::from_stats("e", &stats(30, 20));
        assert_eq!(
            (high.status, high.reasons),
            (HealthStatus::Degraded, vec![HealthReason::QueueHigh])
        );
        let full = EmitterStats {
            buffer_full: true,
            ..stats(90, 10)
        };
        let full = EmitterHealth::from_stats("e", &full);
        assert_eq!(
            (full.status, full.reasons),
            (HealthStatus::Down, vec![HealthReason::BufferFull])
        );
        // Without a bound the queue alone says nothing.
        let unbounded = EmitterStats {
            buffer_capacity: None,
            ..stats(1_000_000, 0)
        };
        assert_eq!(
            EmitterHealth::from_stats("e", &unbounded).status,
            HealthStatus::Healthy
        );
    }

    #[test]
    fn failures_and_the_brake_degrade_and_a_shutdown_is_down() {
        let failing = EmitterStats {
            consecutive_failures: 5,
            braked: true,
            ..stats(1, 0)
        };
        let failing = EmitterHealth::from_stats("e", &failing);
        assert_eq!(
            (failing.status, failing.reasons),
            (
                HealthStatus::Degraded,
                vec![HealthReason::FailingRequests, HealthReason::Braked]
            )
        );
        let closed = EmitterStats {
            shut_down: true,
            ..stats(0, 0)
        };
        assert_eq!(
            EmitterHealth::from_stats("e", &closed).status,
            HealthStatus::Down
        );
    }

    #[test]
    fn a_tracker_is_as_healthy_as_its_least_healthy_emitter() {
        let healthy = EmitterHealth::from_stats("a", &stats(0, 0));
        let degraded = EmitterHealth::from_stats("b", &stats(60, 0));
        let health = Health::new(Vec::new(), vec![healthy.clone(), degraded]);
        assert_eq!(health.status, HealthStatus::Degraded);
        let health = Health::new(Vec::new(), vec![healthy.clone()]);
        assert_eq!(health.status, HealthStatus::Healthy);
        let health = Health::new(vec![HealthReason::ShutDown], vec![healthy]);
        assert_eq!(health.status, HealthStatus::Down);
        assert_eq!(
            serde_json::to_value(&health).unwrap()["reasons"],
            serde_json::json!(["shut_down"])
        );
    }
}
