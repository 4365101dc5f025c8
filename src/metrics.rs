//! The tracker's and its emitters' figures through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`): any exporter works (Prometheus, StatsD, OpenTelemetry, …).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use snowplow_actix::{EmitterBuilder, Tracker};
//!
//! // Any recorder: this one is `metrics-exporter-prometheus`'s (its `handle.render()` is
//! // the Prometheus text to serve on `/metrics`). Installed *before* the tracker is built.
//! let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
//! let tracker = Tracker::builder("web")
//!     .emitter(EmitterBuilder::new("https://collector.example.com").name("primary"))
//!     .build()?;
//! // … later, on `GET /metrics`:
//! let text = handle.render();
//! # Ok(()) }
//! ```
//!
//! # The figures
//!
//! Per emitter, labelled `tracker` (the tracker's namespace) and `emitter` (its name):
//!
//! | name | type | more labels | what |
//! | --- | --- | --- | --- |
//! | `snowplow_emitter_events_sent_total` | counter | | events the collector accepted ([`EmitterStats::sent`](crate::EmitterStats::sent)) |
//! | `snowplow_emitter_events_dropped_total` | counter | `reason` | events dropped, by [`DropReason`](crate::DropReason): `capacity`, `rejected`, `oversize`, `attempts_exhausted`, `expired`, `shutdown`, `store` (`dropped`) |
//! | `snowplow_emitter_events_retried_total` | counter | | events put back for another attempt, once per failure (`retried`) |
//! | `snowplow_emitter_events_outcome_unknown_total` | counter | | events whose request awaited its answer when the emitter closed (`outcome_unknown`) |
//! | `snowplow_emitter_queue_events` | gauge | | events queued, those waiting for a retry included (`queued`) |
//! | `snowplow_emitter_queue_capacity_events` | gauge | | the most events its buffer holds, queued and in flight (`buffer_capacity`; absent for a store without a bound) |
//! | `snowplow_emitter_in_flight_requests` | gauge | | requests awaiting an answer (`in_flight_requests`) |
//! | `snowplow_emitter_concurrency_limit` | gauge | | requests it may have outstanding now, the adaptive limit (`concurrency_limit`) |
//! | `snowplow_emitter_request_duration_seconds` | histogram | `outcome` | from sending a request to its answer, by what it came to: `sent`, `retried`, `dropped`, `split` (see the request span's `outcome` in the crate docs' "Logging") |
//!
//! Per tracker, labelled `tracker`:
//!
//! | name | type | more labels | what |
//! | --- | --- | --- | --- |
//! | `snowplow_tracker_events_tracked_total` | counter | | events passed to `track` ([`TrackerStats::tracked`](crate::TrackerStats::tracked)) |
//! | `snowplow_tracker_events_refused_total` | counter | | of those, events refused because the fan-out had too many waiting (`refused`) |
//! | `snowplow_tracker_events_discarded_total` | counter | `reason` | events discarded on purpose before tracking: `sampling`, `policy` (`discarded`) |
//!
//! The counters are the stats themselves, not a second count: each is set to the figure of
//! [`EmitterStats`](crate::EmitterStats) or [`TrackerStats`](crate::TrackerStats) it names,
//! so the two never disagree. Once a flush has returned, what an exporter shows equals
//! what [`Tracker::stats`](crate::Tracker::stats) says (until events arrive again).
//!
//! # When they are published
//!
//! Nothing on the `track()` path touches a recorder. An emitter publishes its figures on
//! its own thread each time its delivery core has changed them (an event taken in, a
//! request sent or answered, a timer), before it answers a flush or a stats request, and
//! when it stops; the request histogram gets one sample per answer. Events an emitter's
//! full mailbox refuses (`capacity`) show when it next publishes. The tracker-wide counters
//! are published from the fan-out's thread each time it hands events over (before the
//! emitters get them, so `snowplow_tracker_events_tracked_total` is never below what an
//! emitter shows of them), before it answers a flush, a shutdown or a stats request, and
//! every [`PUBLISH_INTERVAL`] (what changes without it: refusals, discards). Publishing is a dozen atomic stores into
//! handles registered once; it is not rate-limited, since the delivery benchmark shows no
//! cost above its noise (`BENCHMARKS.md`). A recorder that panics is caught, logged once at
//! ERROR and no longer published to; nothing else changes.
//!
//! # Registration and the recorder
//!
//! The figures are registered when the tracker and its emitters are built (an emitter added
//! at run time: when it is added), with the recorder current on the building thread: the
//! global one (install it first), or a local one set there with
//! `metrics::set_default_local_recorder`: the tracker's threads publish to what was
//! registered there, as they log to the `tracing` subscriber current where the tracker was
//! built. A tracker built before any recorder is installed publishes nothing.
//!
//! # Labels
//!
//! `emitter` is the emitter's name ([`EmitterBuilder::name`](crate::EmitterBuilder::name),
//! by default its endpoint, with ` (GET)` for a GET emitter). A tracker keeps its emitters'
//! names unique, so that each has series of its own: an emitter added under a name already
//! taken (two unnamed emitters to one endpoint, for one) is renamed with `#2`, `#3`, … after
//! it, in its stats and logs too. `tracker` is the tracker's namespace: the names are unique
//! per tracker only, so it tells apart the emitters of two trackers in one process (give
//! them different namespaces); an emitter started without a tracker has `tracker=""`.

// Without the feature the module is crate-private: the figures' names go unused.
#![cfg_attr(not(feature = "metrics"), allow(dead_code, unreachable_pub))]

use std::time::Duration;

/// The counter of events the collector accepted, per emitter.
pub const EMITTER_EVENTS_SENT: &str = "snowplow_emitter_events_sent_total";
/// The counter of events dropped, per emitter and `reason`.
pub const EMITTER_EVENTS_DROPPED: &str = "snowplow_emitter_events_dropped_total";
/// The counter of events put back for another attempt, per emitter.
pub const EMITTER_EVENTS_RETRIED: &str = "snowplow_emitter_events_retried_total";
/// The counter of events of unknown outcome (awaiting an answer at shutdown), per emitter.
pub const EMITTER_EVENTS_OUTCOME_UNKNOWN: &str = "snowplow_emitter_events_outcome_unknown_total";
/// The gauge of queued events, per emitter.
pub const EMITTER_QUEUE_EVENTS: &str = "snowplow_emitter_queue_events";
/// The gauge of the buffer's capacity in events, per emitter.
pub const EMITTER_QUEUE_CAPACITY_EVENTS: &str = "snowplow_emitter_queue_capacity_events";
/// The gauge of requests awaiting an answer, per emitter.
pub const EMITTER_IN_FLIGHT_REQUESTS: &str = "snowplow_emitter_in_flight_requests";
/// The gauge of the adaptive concurrency limit, per emitter.
pub const EMITTER_CONCURRENCY_LIMIT: &str = "snowplow_emitter_concurrency_limit";
/// The histogram of request durations in seconds, per emitter and `outcome`.
pub const EMITTER_REQUEST_DURATION_SECONDS: &str = "snowplow_emitter_request_duration_seconds";
/// The counter of events passed to `track`, per tracker.
pub const TRACKER_EVENTS_TRACKED: &str = "snowplow_tracker_events_tracked_total";
/// The counter of events `track` refused (the fan-out's queue full), per tracker.
pub const TRACKER_EVENTS_REFUSED: &str = "snowplow_tracker_events_refused_total";
/// The counter of events discarded on purpose, per tracker and `reason`.
pub const TRACKER_EVENTS_DISCARDED: &str = "snowplow_tracker_events_discarded_total";

/// The label naming the tracker: its namespace.
pub const LABEL_TRACKER: &str = "tracker";
/// The label naming the emitter.
pub const LABEL_EMITTER: &str = "emitter";
/// The label of a drop's or a discard's reason.
pub const LABEL_REASON: &str = "reason";
/// The label of a request's outcome.
pub const LABEL_OUTCOME: &str = "outcome";

/// Bucket bounds, in seconds, that suit the request-duration histogram for an exporter that
/// needs them (Prometheus: `PrometheusBuilder::set_buckets_for_metric`): from a collector
/// on the same host to one timing out at the default 10 s.
pub const REQUEST_DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How often the fan-out publishes the tracker-wide counters when nothing else made it.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) use publish::{EmitterMetrics, TrackerMetrics};

/// The discard reasons' label values, in the order of the tracker's counts.
const DISCARD_REASONS: [&str; 2] = ["sampling", "policy"];

#[cfg(feature = "metrics")]
mod publish {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use ::metrics::{Counter, Gauge, Histogram, Label};

    use super::*;
    use crate::report::{DropReason, EmitterStats, RequestOutcome};

    /// An emitter's handles, registered once on the thread that starts it.
    #[derive(Debug, Default)]
    pub(crate) struct EmitterMetrics(Option<Box<EmitterHandles>>);

    #[derive(Debug)]
    struct EmitterHandles {
        sent: Counter,
        retried: Counter,
        outcome_unknown: Counter,
        /// In the order of [`DropReason::ALL`].
        dropped: [Counter; 7],
        queue: Gauge,
        capacity: Option<Gauge>,
        in_flight: Gauge,
        limit: Gauge,
        /// In the order of [`RequestOutcome::ANSWERED`].
        durations: [Histogram; 4],
        /// The recorder panicked once (see [`guarded`]).
        broken: AtomicBool,
    }

    /// Runs `publish` unless the recorder has panicked before (`broken`); a panic in it (the
    /// recorder is the application's code) is caught and logged once, and nothing more is
    /// published to it: the emitter or the fan-out goes on.
    fn guarded(broken: &AtomicBool, publish: impl FnOnce()) {
        if broken.load(Ordering::Relaxed) {
            return;
        }
        if catch_unwind(AssertUnwindSafe(publish)).is_err() {
            broken.store(true, Ordering::Relaxed);
            tracing::error!("the metrics recorder panicked: no more figures are published to it");
        }
    }

    fn labels(pairs: &[(&'static str, &str)]) -> Vec<Label> {
        pairs
            .iter()
            .map(|&(key, value)| Label::new(key, value.to_owned()))
            .collect()
    }

    fn describe() {
        use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
        describe_counter!(
            EMITTER_EVENTS_SENT,
            Unit::Count,
            "Events the collector accepted."
        );
        describe_counter!(
            EMITTER_EVENTS_DROPPED,
            Unit::Count,
            "Events dropped, by reason."
        );
        describe_counter!(
            EMITTER_EVENTS_RETRIED,
            Unit::Count,
            "Events put back for another attempt, once per failure."
        );
        describe_counter!(
            EMITTER_EVENTS_OUTCOME_UNKNOWN,
            Unit::Count,
            "Events whose request awaited its answer when the emitter closed."
        );
        describe_gauge!(
            EMITTER_QUEUE_EVENTS,
            Unit::Count,
            "Events queued, those waiting for a retry included."
        );
        describe_gauge!(
            EMITTER_QUEUE_CAPACITY_EVENTS,
            Unit::Count,
            "The most events the emitter's buffer holds, queued and in flight."
        );
        describe_gauge!(
            EMITTER_IN_FLIGHT_REQUESTS,
            Unit::Count,
            "Requests awaiting an answer."
        );
        describe_gauge!(
            EMITTER_CONCURRENCY_LIMIT,
            Unit::Count,
            "Requests the emitter may have outstanding now (adaptive)."
        );
        describe_histogram!(
            EMITTER_REQUEST_DURATION_SECONDS,
            Unit::Seconds,
            "From sending a request to the collector to its answer, by outcome."
        );
        describe_counter!(
            TRACKER_EVENTS_TRACKED,
            Unit::Count,
            "Events passed to track."
        );
        describe_counter!(
            TRACKER_EVENTS_REFUSED,
            Unit::Count,
            "Events track refused because the fan-out had too many waiting."
        );
        describe_counter!(
            TRACKER_EVENTS_DISCARDED,
            Unit::Count,
            "Events discarded on purpose before tracking, by reason."
        );
    }

    impl EmitterMetrics {
        /// Registers the figures of the emitter `emitter` of the tracker `tracker` with the
        /// recorder current on this thread; `capacity`: its buffer's, if bounded.
        pub(crate) fn register(tracker: &str, emitter: &str, capacity: bool) -> Self {
            describe();
            let base = [(LABEL_TRACKER, tracker), (LABEL_EMITTER, emitter)];
            let with = |key: &'static str, value: &str| {
                let mut pairs = base.to_vec();
                pairs.push((key, value));
                labels(&pairs)
            };
            let counter = |name: &'static str| ::metrics::counter!(name, labels(&base));
            let gauge = |name: &'static str| ::metrics::gauge!(name, labels(&base));
            Self(Some(Box::new(EmitterHandles {
                sent: counter(EMITTER_EVENTS_SENT),
                retried: counter(EMITTER_EVENTS_RETRIED),
                outcome_unknown: counter(EMITTER_EVENTS_OUTCOME_UNKNOWN),
                dropped: DropReason::ALL.map(|reason| {
                    ::metrics::counter!(
                        EMITTER_EVENTS_DROPPED,
                        with(LABEL_REASON, &reason.to_string())
                    )
                }),
                queue: gauge(EMITTER_QUEUE_EVENTS),
                capacity: capacity.then(|| gauge(EMITTER_QUEUE_CAPACITY_EVENTS)),
                in_flight: gauge(EMITTER_IN_FLIGHT_REQUESTS),
                limit: gauge(EMITTER_CONCURRENCY_LIMIT),
                durations: RequestOutcome::ANSWERED.map(|outcome| {
                    ::metrics::histogram!(
                        EMITTER_REQUEST_DURATION_SECONDS,
                        with(LABEL_OUTCOME, outcome.as_str())
                    )
                }),
                broken: AtomicBool::new(false),
            })))
        }

        /// Sets every figure from the emitter's stats (`stats` is called only when there
        /// is somewhere to publish).
        pub(crate) fn publish(&self, stats: impl FnOnce() -> EmitterStats) {
            let Some(handles) = &self.0 else {
                return;
            };
            let stats = stats();
            guarded(&handles.broken, || {
                handles.sent.absolute(stats.sent);
                handles.retried.absolute(stats.retried);
                handles.outcome_unknown.absolute(stats.outcome_unknown);
                for (counter, reason) in handles.dropped.iter().zip(DropReason::ALL) {
                    counter.absolute(stats.dropped.get(reason));
                }
                handles.queue.set(stats.queued as f64);
                if let (Some(gauge), Some(capacity)) = (&handles.capacity, stats.buffer_capacity) {
                    gauge.set(capacity as f64);
                }
                handles.in_flight.set(stats.in_flight_requests as f64);
                handles.limit.set(stats.concurrency_limit as f64);
            });
        }

        /// One answered request: `outcome` after `took`.
        pub(crate) fn answered(&self, outcome: RequestOutcome, took: Duration) {
            let Some(handles) = &self.0 else {
                return;
            };
            if let Some(at) = RequestOutcome::ANSWERED.iter().position(|o| *o == outcome) {
                guarded(&handles.broken, || {
                    handles.durations[at].record(took.as_secs_f64());
                });
            }
        }
    }

    /// The tracker-wide counters, read where the tracker counts them and published from
    /// the fan-out's thread.
    #[derive(Debug)]
    pub(crate) struct TrackerMetrics(Option<Box<TrackerHandles>>);

    #[derive(Debug)]
    struct TrackerHandles {
        counts: TrackerCounts,
        tracked: Counter,
        refused: Counter,
        discarded: [Counter; 2],
        /// The recorder panicked once (see [`guarded`]).
        broken: AtomicBool,
    }

    /// Where the tracker counts (shared with it).
    #[derive(Debug)]
    struct TrackerCounts {
        tracked: Arc<AtomicU64>,
        refused: Arc<AtomicU64>,
        discarded: Arc<[AtomicU64; 2]>,
    }

    impl TrackerMetrics {
        /// Nowhere to publish (a fan-out without a tracker, in tests).
        #[cfg_attr(not(test), allow(dead_code))]
        pub(crate) fn none() -> Self {
            Self(None)
        }

        /// Registers the counters of the tracker `namespace` with the recorder current on
        /// this thread, reading its counts from `tracked`, `refused` and `discarded` (in
        /// the order sampling, policy).
        pub(crate) fn register(
            namespace: &str,
            tracked: &Arc<AtomicU64>,
            refused: &Arc<AtomicU64>,
            discarded: &Arc<[AtomicU64; 2]>,
        ) -> Self {
            describe();
            let base = [(LABEL_TRACKER, namespace)];
            Self(Some(Box::new(TrackerHandles {
                counts: TrackerCounts {
                    tracked: tracked.clone(),
                    refused: refused.clone(),
                    discarded: discarded.clone(),
                },
                tracked: ::metrics::counter!(TRACKER_EVENTS_TRACKED, labels(&base)),
                refused: ::metrics::counter!(TRACKER_EVENTS_REFUSED, labels(&base)),
                discarded: DISCARD_REASONS.map(|reason| {
                    ::metrics::counter!(
                        TRACKER_EVENTS_DISCARDED,
                        labels(&[(LABEL_TRACKER, namespace), (LABEL_REASON, reason)])
                    )
                }),
                broken: AtomicBool::new(false),
            })))
        }

        /// Whether there is anything to publish to.
        pub(crate) fn enabled(&self) -> bool {
            self.0.is_some()
        }

        /// Sets the counters from the tracker's counts.
        pub(crate) fn publish(&self) {
            let Some(handles) = &self.0 else {
                return;
            };
            let counts = &handles.counts;
            guarded(&handles.broken, || {
                handles
                    .tracked
                    .absolute(counts.tracked.load(Ordering::Relaxed));
                handles
                    .refused
                    .absolute(counts.refused.load(Ordering::Relaxed));
                for (counter, count) in handles.discarded.iter().zip(counts.discarded.iter()) {
                    counter.absolute(count.load(Ordering::Relaxed));
                }
            });
        }
    }
}

/// Without the `metrics` feature: the same calls, with nowhere to publish.
#[cfg(not(feature = "metrics"))]
mod publish {
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::report::{EmitterStats, RequestOutcome};

    #[derive(Debug, Default)]
    pub(crate) struct EmitterMetrics;

    impl EmitterMetrics {
        pub(crate) fn register(_: &str, _: &str, _: bool) -> Self {
            Self
        }

        pub(crate) fn publish(&self, _: impl FnOnce() -> EmitterStats) {}

        pub(crate) fn answered(&self, _: RequestOutcome, _: Duration) {}
    }

    #[derive(Debug)]
    pub(crate) struct TrackerMetrics;

    impl TrackerMetrics {
        pub(crate) fn none() -> Self {
            Self
        }

        pub(crate) fn register(
            _: &str,
            _: &Arc<AtomicU64>,
            _: &Arc<AtomicU64>,
            _: &Arc<[AtomicU64; 2]>,
        ) -> Self {
            Self
        }

        pub(crate) fn enabled(&self) -> bool {
            false
        }

        pub(crate) fn publish(&self) {}
    }
}
