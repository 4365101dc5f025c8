//! A fault-matrix soak, bounded in time: tens of thousands of events through a tracker with
//! three emitters, against collectors that fail at random, answer too late, are down for a
//! while and reject a burst of requests. Everything is checked against the collectors'
//! request logs: the accounting identity exactly, no retryable event lost, every rejected
//! event reported, and duplicates only where a timed-out request had been accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::collector::{Faults, RecordedEvent, RecordedRequest, Request, TestCollector};
use crate::common::support::TrackerBuilderExt;
use snowplow_actix::{emitter::FailureReason, DropReason, EmitterBuilder, Structured, Tracker};

/// Events tracked.
const EVENTS: usize = 30_000;
/// Events per POST.
const BATCH: usize = 50;
/// Request timeout of the emitter whose collector answers slowly at first.
const SHORT_TIMEOUT: Duration = Duration::from_millis(500);
/// How late that collector answers its first requests: well beyond the timeout.
const SLOW_ANSWER: Duration = Duration::from_millis(1_200);
/// Requests answered late.
const SLOW_REQUESTS: usize = 6;
/// How long the third collector is down (503) from its start.
const DOWN_FOR: Duration = Duration::from_millis(1_500);
/// The whole run must finish within this (the flush's deadline).
const DEADLINE: Duration = Duration::from_secs(50);

/// The burst of 4xx: events labelled 12 000 to 12 499 whose label ends in 7 make their
/// request answered 400, on every collector.
fn rejects(event: &RecordedEvent) -> bool {
    event
        .get("se_la")
        .and_then(|label| label.parse::<usize>().ok())
        .is_some_and(|n| (12_000..12_500).contains(&n) && n % 10 == 7)
}

fn burst_of_400(request: &Request<'_>) -> Option<u16> {
    request.events.iter().any(rejects).then_some(400)
}

/// What `on_failure` saw, once per call.
#[derive(Debug, Clone)]
struct Reported {
    reason: FailureReason,
    will_retry: bool,
    dropped: Option<DropReason>,
    eids: Vec<String>,
}

type Reports = Arc<Mutex<Vec<Reported>>>;

struct Case {
    collector: TestCollector,
    timeout: Duration,
    reports: Reports,
}

fn emitter_for(case: &Case, max_in_flight: usize) -> EmitterBuilder {
    let sink = case.reports.clone();
    EmitterBuilder::new(case.collector.endpoint())
        .batch_size(BATCH)
        .buffer_capacity(EVENTS + 10_000)
        .max_in_flight(max_in_flight)
        .request_timeout(case.timeout)
        .jitter(|| 0.005)
        .max_retry_delay(Duration::from_millis(20))
        .on_failure(move |failure| {
            sink.lock().unwrap().push(Reported {
                reason: failure.reason.clone(),
                will_retry: failure.will_retry,
                dropped: failure.dropped,
                eids: failure.events.iter().map(|e| e.id().to_string()).collect(),
            });
        })
}

fn eids(requests: &[&RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.eid().unwrap().to_owned()))
        .collect()
}

fn events_in(requests: &[&RecordedRequest]) -> u64 {
    requests.iter().map(|r| r.events.len() as u64).sum()
}

#[actix_rt::test]
async fn a_fault_matrix_soak_loses_no_retryable_event_and_accounts_for_every_drop() {
    let started = Instant::now();
    let cases = [
        // Random 500s.
        Case {
            collector: TestCollector::with_faults(
                Faults::decide(burst_of_400).or(Faults::failure_rate(0.15, 7, 500)),
            )
            .await,
            timeout: snowplow_actix::emitter::DEFAULT_REQUEST_TIMEOUT,
            reports: Reports::default(),
        },
        // Answers beyond the request timeout (the client drops those connections), and some
        // random 500s.
        Case {
            collector: TestCollector::with_faults(
                Faults::decide(burst_of_400)
                    .or(Faults::failure_rate(0.1, 11, 500))
                    .with_delay_first(SLOW_REQUESTS, SLOW_ANSWER),
            )
            .await,
            timeout: SHORT_TIMEOUT,
            reports: Reports::default(),
        },
        // Down for a while, then random 503s; two requests in flight.
        Case {
            collector: TestCollector::with_faults(
                Faults::down_for(DOWN_FOR)
                    .or(Faults::decide(burst_of_400))
                    .or(Faults::failure_rate(0.1, 13, 503)),
            )
            .await,
            timeout: snowplow_actix::emitter::DEFAULT_REQUEST_TIMEOUT,
            reports: Reports::default(),
        },
    ];
    let tracker = Tracker::builder("soak")
        .emitter(emitter_for(&cases[0], 1))
        .emitter(emitter_for(&cases[1], 1))
        .emitter(emitter_for(&cases[2], 2))
        .flushed_by_hand();

    let ids: Vec<String> = (0..EVENTS)
        .map(|n| {
            let event = Structured::new("soak", "event")
                .unwrap()
                .label(n.to_string());
            tracker.track(event).unwrap().to_string()
        })
        .collect();
    let report = tracker.flush_with_timeout(DEADLINE).await.unwrap();

    assert!(!report.timed_out, "{report:#?}");
    assert_eq!(report.queued, 0);
    let stats = tracker.stats().await.unwrap();
    assert_eq!((stats.tracked, stats.refused), (EVENTS as u64, 0));
    assert_eq!(stats.emitters.len(), 3);
    let mut total_sent = 0;
    let mut total_rejected = 0;
    for (case, emitter) in cases.iter().zip(&stats.emitters) {
        let name = case.collector.endpoint();
        assert_eq!(emitter.name, name);
        assert_eq!(emitter.refused, 0, "{name}");
        let counters = emitter.stats.clone().unwrap();
        let requests = case.collector.requests();
        assert!(requests.iter().all(|r| r.valid), "{name}");

        // The collector's log, as the emitter saw it: answered in time or timed out.
        let timed_out: Vec<&RecordedRequest> = requests
            .iter()
            .filter(|r| r.delay.is_some_and(|delay| delay > case.timeout))
            .collect();
        let answered: Vec<&RecordedRequest> = requests
            .iter()
            .filter(|r| r.delay.is_none_or(|delay| delay <= case.timeout))
            .collect();
        let accepted: Vec<&RecordedRequest> =
            answered.iter().copied().filter(|r| r.accepted()).collect();
        let answered_400: Vec<&RecordedRequest> = answered
            .iter()
            .copied()
            .filter(|r| r.status == 400)
            .collect();
        let failed: Vec<&RecordedRequest> = answered
            .iter()
            .copied()
            .filter(|r| !r.accepted() && r.status != 400)
            .collect();
        assert!(
            failed.iter().all(|r| [500, 503].contains(&r.status)),
            "{name}"
        );

        // The accounting identity, exactly, and every counter from the log.
        assert!(counters.is_balanced(), "{name}: {counters:#?}");
        let rejected = eids(&answered_400);
        assert_eq!(
            (
                counters.received,
                counters.sent,
                counters.dropped.rejected,
                counters.dropped.total(),
                counters.queued,
                counters.in_flight,
            ),
            (
                EVENTS as u64,
                events_in(&accepted),
                rejected.len() as u64,
                rejected.len() as u64,
                0,
                0
            ),
            "{name}: {counters:#?}"
        );
        assert_eq!(counters.accepted(), EVENTS as u64);
        assert_eq!(
            counters.retried,
            events_in(&failed) + events_in(&timed_out),
            "{name}"
        );
        assert_eq!(counters.requests, requests.len() as u64, "{name}");
        assert_eq!(
            (
                counters.consecutive_failures,
                counters.backoff_ms,
                counters.restarts
            ),
            (0, 0, 0),
            "{name}"
        );

        // Every rejected event reported once, as rejected: exactly what was answered 400.
        let reports = case.reports.lock().unwrap().clone();
        let mut reported_rejected: Vec<String> = Vec::new();
        for report in &reports {
            match report.dropped {
                Some(reason) => {
                    assert_eq!(reason, DropReason::Rejected, "{name}: {report:?}");
                    assert_eq!(report.reason, FailureReason::Status(400), "{name}");
                    assert!(!report.will_retry, "{name}");
                    reported_rejected.extend(report.eids.iter().cloned());
                }
                None => assert!(report.will_retry, "{name}: {report:?}"),
            }
        }
        let rejected_set: BTreeSet<String> = rejected.iter().cloned().collect();
        assert_eq!(rejected_set.len(), rejected.len(), "{name}: rejected once");
        assert_eq!(reported_rejected, rejected, "{name}");
        assert!(!rejected.is_empty(), "{name}: the burst happened");
        let burst: Vec<&RecordedEvent> = answered_400
            .iter()
            .flat_map(|r| r.events.iter())
            .filter(|e| rejects(e))
            .collect();
        assert_eq!(burst.len(), 50, "{name}: every burst event answered 400");
        assert_eq!(
            reports.iter().filter(|r| r.will_retry).count(),
            failed.len() + timed_out.len(),
            "{name}: one report per failed request"
        );

        // Zero loss: every event not rejected arrived, once, plus once more for each
        // timed-out request carrying it that the collector had accepted (its answer lost):
        // the only duplicates.
        let mut arrivals: BTreeMap<String, usize> = BTreeMap::new();
        for eid in case.collector.event_ids() {
            *arrivals.entry(eid).or_default() += 1;
        }
        let mut lost_answers: BTreeMap<String, usize> = BTreeMap::new();
        for request in timed_out.iter().filter(|r| r.accepted()) {
            for event in &request.events {
                *lost_answers
                    .entry(event.eid().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        for id in &ids {
            let count = arrivals.get(id).copied().unwrap_or(0);
            let extra = lost_answers.get(id).copied().unwrap_or(0);
            let expected = extra + usize::from(!rejected_set.contains(id));
            assert_eq!(count, expected, "{name}: {id} arrived {count} times");
        }
        let tracked: BTreeSet<&String> = ids.iter().collect();
        assert!(
            arrivals.keys().all(|eid| tracked.contains(eid)),
            "{name}: nothing but tracked events arrived"
        );
        let duplicated = arrivals.values().filter(|&&count| count > 1).count();
        eprintln!(
            "{name}: {} requests ({} failed, {} timed out, {} rejected), {} sent, {} retried, \
             {} rejected, {duplicated} events duplicated",
            requests.len(),
            failed.len(),
            timed_out.len(),
            answered_400.len(),
            counters.sent,
            counters.retried,
            counters.dropped.rejected,
        );
        total_sent += counters.sent;
        total_rejected += counters.dropped.rejected;
    }
    // The flush reports what was settled while it ran; full batches may have gone before it
    // started, so its figures are at most the emitters' totals, and its only drops are 400s.
    assert!(report.sent <= total_sent, "{report:?} vs {total_sent} sent");
    assert!(report.dropped.rejected <= total_rejected, "{report:?}");
    assert_eq!(
        report.dropped.total(),
        report.dropped.rejected,
        "{report:?}"
    );
    // The faults did happen.
    let slow = cases[1].collector.requests();
    let late: Vec<&RecordedRequest> = slow.iter().filter(|r| r.delay.is_some()).collect();
    assert_eq!(late.len(), SLOW_REQUESTS);
    assert!(
        late.iter().any(|r| r.accepted()),
        "a timed-out request was accepted: duplicates were possible"
    );
    let down = cases[2].collector.requests();
    assert!(down.iter().any(|r| r.status == 503) && down.iter().any(|r| r.accepted()));

    let last = tracker.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!((last.sent, last.dropped.total(), last.queued), (0, 0, 0));
    eprintln!(
        "soak: {EVENTS} events x 3 emitters in {:?}",
        started.elapsed()
    );
}
