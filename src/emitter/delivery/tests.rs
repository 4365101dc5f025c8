//! The delivery core on a simulated clock: a collector model answers each request after its
//! latency, and a minute of traffic runs in milliseconds of test time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::{Command, Delivery, Now, BRAKE_AFTER};
use crate::emitter::EmitterBuilder;
use crate::error::TransportError;
use crate::report::{EmitterStats, FlushReport};
use crate::transport::{Request, Response};
use crate::wire::Method;
use crate::wire::{StampedEvent, TrackerSettings};
use crate::{DropReason, PageView};

const MS: Duration = Duration::from_millis(1);

/// What the collector model answers, and after how long.
type Answer = (Duration, Result<Response, TransportError>);

/// The collector model: the request, when it arrives, the seeded generator.
type Model = Box<dyn FnMut(&Request, Duration, &mut Rng) -> Answer>;

/// A seeded generator for failure rates (SplitMix64).
struct Rng(u64);

impl Rng {
    fn chance(&mut self, p: f64) -> bool {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// One request as the collector model saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Duration,
    events: usize,
    bytes: usize,
    status: Option<u16>,
}

/// A simulated emitter and collector.
struct Sim {
    core: Delivery,
    start: Now,
    now: Now,
    collector: Model,
    rng: Rng,
    /// Answers due: (time, request id) → answer.
    pending: BTreeMap<(Duration, u64), Result<Response, TransportError>>,
    seen: Vec<Seen>,
    /// When each event (by seq) was first delivered.
    delivered: HashMap<u64, Duration>,
    duplicates: usize,
    replies: HashMap<u64, FlushReport>,
    max_outstanding: usize,
    tracked: u64,
    event: Arc<StampedEvent>,
}

fn event() -> Arc<StampedEvent> {
    let settings = TrackerSettings::new("sim").unwrap();
    let page = PageView::new("https://shop.example/products/shoes")
        .unwrap()
        .title("Shoes");
    let mut stamped = Arc::new(settings.stamp(page).unwrap().remove(0));
    StampedEvent::encode(&mut stamped, true, true);
    stamped
}

impl Sim {
    fn new(
        builder: EmitterBuilder,
        collector: impl FnMut(&Request, Duration, &mut Rng) -> Answer + 'static,
    ) -> Self {
        let config = builder.jitter(|| 0.5).build().unwrap();
        let start = Now::real();
        let mut core = Delivery::new(config.settings, config.store, start);
        core.set_ready(true, start);
        Self {
            core,
            start,
            now: start,
            collector: Box::new(collector),
            rng: Rng(7),
            pending: BTreeMap::new(),
            seen: Vec::new(),
            delivered: HashMap::new(),
            duplicates: 0,
            replies: HashMap::new(),
            max_outstanding: 0,
            tracked: 0,
            event: event(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.now.at - self.start.at
    }

    fn stats(&self) -> EmitterStats {
        self.core.snapshot(self.now)
    }

    /// Carries out the core's commands as the actor would.
    fn execute(&mut self) {
        for command in self.core.take_commands() {
            match command {
                Command::Send { id, request, .. } => {
                    let at = self.elapsed();
                    let (latency, answer) = (self.collector)(&request, at, &mut self.rng);
                    self.seen.push(Seen {
                        at,
                        events: request.events,
                        bytes: request.body.len().max(request.url.len()),
                        status: answer.as_ref().ok().map(|r| r.status),
                    });
                    self.pending.insert((at + latency, id), answer);
                    self.max_outstanding = self.max_outstanding.max(self.pending.len());
                    let limit = self.core.snapshot(self.now).concurrency_limit as usize;
                    assert!(
                        self.pending.len() <= limit,
                        "more outstanding than the limit"
                    );
                }
                Command::Sent(events) => {
                    for event in events {
                        if self.delivered.insert(event.seq, self.elapsed()).is_some() {
                            self.duplicates += 1;
                        }
                    }
                }
                Command::Failed { .. } => {}
                Command::Reply { waiter, report } => {
                    self.replies.insert(waiter, report);
                }
                Command::Restart | Command::Closed => {}
            }
        }
        assert!(self.stats().is_balanced(), "{:?}", self.stats());
        assert!(
            self.core.next_wake().is_none_or(|wake| wake > self.now.at),
            "the core asks to be woken at once: a hot loop"
        );
    }

    /// Tracks `count` events now.
    fn track(&mut self, count: u64) {
        let events = (0..count).map(|_| self.event.clone());
        self.core.receive_and_take_in(events, self.now);
        self.tracked += count;
        self.execute();
    }

    /// Advances the clock by one millisecond: answers due, then the core's wake-up.
    fn tick(&mut self) {
        self.now = self.now.plus(MS);
        let now = self.elapsed();
        while let Some((&(at, id), _)) = self.pending.first_key_value() {
            if at > now {
                break;
            }
            let answer = self.pending.remove(&(at, id)).unwrap();
            self.core.answer(id, answer, self.now);
            self.execute();
        }
        if self
            .core
            .next_wake()
            .is_some_and(|wake| wake <= self.now.at)
        {
            self.core.wake(self.now);
            self.execute();
        }
    }

    /// Tracks `rate` events per second for `duration`, a millisecond at a time.
    fn paced(&mut self, rate: u64, duration: Duration) {
        let ticks = duration.as_millis() as u64;
        let mut owed = 0u64;
        for tick in 0..ticks {
            let due = rate * (tick + 1) / 1000;
            self.track(due - owed);
            owed = due;
            self.tick();
        }
    }

    /// Runs without tracking until everything tracked is delivered or `limit` passes,
    /// after a flush (as the tracker's flush timer would).
    fn drain(&mut self, limit: Duration) -> Duration {
        let end = self.elapsed() + limit;
        self.core.flush(self.now.at + limit, false, self.now);
        self.execute();
        while (self.delivered.len() as u64) < self.tracked - self.stats().dropped.total()
            && self.elapsed() < end
        {
            self.tick();
        }
        self.elapsed()
    }

    /// Share of the tracked events delivered by `at`.
    fn delivered_by(&self, at: Duration) -> f64 {
        let count = self.delivered.values().filter(|&&when| when <= at).count();
        count as f64 / self.tracked as f64
    }

    fn requests_between(&self, from: Duration, to: Duration) -> usize {
        self.seen
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .count()
    }
}

fn ok(latency: Duration) -> Answer {
    (latency, Ok(Response::new(200)))
}

fn status(latency: Duration, code: u16) -> Answer {
    (latency, Ok(Response::new(code)))
}

fn defaults() -> EmitterBuilder {
    EmitterBuilder::new("http://127.0.0.1:1")
}

#[test]
fn a_collector_100_ms_away_takes_20_000_events_per_second_with_32_requests_at_most() {
    let mut sim = Sim::new(defaults(), |_, _, _| ok(100 * MS));
    sim.paced(20_000, Duration::from_secs(3));
    let last_track = sim.elapsed();
    sim.drain(Duration::from_secs(10));
    let stats = sim.stats();
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    assert_eq!(sim.delivered.len() as u64, sim.tracked);
    assert_eq!(sim.duplicates, 0);
    assert!(sim.delivered_by(last_track + Duration::from_secs(2)) >= 0.95);
    assert!(sim.max_outstanding <= 32, "{}", sim.max_outstanding);
    // Requests grew with the backlog, up to the caps.
    let largest = sim.seen.iter().map(|s| s.events).max().unwrap();
    assert!(largest > 100, "largest request {largest}");
    assert!(sim
        .seen
        .iter()
        .all(|s| s.bytes <= 200_000 && s.events <= 500));
}

#[test]
fn slow_start_doubles_the_limit_while_it_is_in_use() {
    let mut sim = Sim::new(defaults().max_request_events(10), |_, _, _| ok(100 * MS));
    // 2,000 events at once: 200 requests of 10, far more than the limit.
    sim.track(2_000);
    sim.core
        .flush(sim.now.at + Duration::from_secs(60), false, sim.now);
    sim.execute();
    let mut limits = Vec::new();
    for _ in 0..5 {
        limits.push(sim.stats().concurrency_limit);
        for _ in 0..100 {
            sim.tick();
        }
    }
    assert_eq!(limits, [1, 2, 4, 8, 16]);
}

#[test]
fn get_sends_one_event_per_request_and_keeps_up_with_200_per_second_100_ms_away() {
    let mut sim = Sim::new(defaults().method(Method::Get), |_, _, _| ok(100 * MS));
    sim.paced(200, Duration::from_secs(10));
    let last_track = sim.elapsed();
    sim.drain(Duration::from_secs(5));
    assert_eq!(sim.delivered.len() as u64, sim.tracked);
    assert!(sim.seen.iter().all(|s| s.events == 1));
    assert!(sim.delivered_by(last_track + Duration::from_secs(2)) >= 0.95);
}

#[test]
fn thirty_percent_500s_for_a_minute_lose_nothing_and_never_brake() {
    let mut sim = Sim::new(defaults(), |_, _, rng| {
        if rng.chance(0.3) {
            status(100 * MS, 500)
        } else {
            ok(100 * MS)
        }
    });
    let mut braked = false;
    for _ in 0..60 {
        sim.paced(2_000, Duration::from_secs(1));
        braked |= sim.stats().braked;
    }
    let last_track = sim.elapsed();
    sim.drain(Duration::from_secs(30));
    let stats = sim.stats();
    assert_eq!(stats.dropped.total(), 0);
    assert_eq!(sim.delivered.len() as u64, sim.tracked);
    assert_eq!(sim.duplicates, 0);
    assert!(
        !braked,
        "a collector failing one request in three is not down"
    );
    assert!(stats.retried > 0);
    assert!(sim.delivered_by(last_track + Duration::from_secs(3)) >= 0.9);
}

#[test]
fn resets_of_a_fifth_of_connections_at_5_000_per_second_lose_nothing() {
    let mut sim = Sim::new(defaults(), |_, _, rng| {
        if rng.chance(0.2) {
            (MS, Err(TransportError::Connection("reset".into())))
        } else {
            ok(MS)
        }
    });
    sim.paced(5_000, Duration::from_secs(10));
    let last_track = sim.elapsed();
    sim.drain(Duration::from_secs(30));
    assert_eq!(sim.delivered.len() as u64, sim.tracked);
    assert!(sim.delivered_by(last_track + Duration::from_secs(3)) >= 0.9);
}

#[test]
fn a_3_s_outage_brakes_to_few_requests_and_loses_nothing() {
    let down = Duration::from_secs(3);
    let mut sim = Sim::new(
        defaults().max_retry_delay(Duration::from_secs(1)),
        move |_, at, _| {
            if at < down {
                status(MS, 503)
            } else {
                ok(MS)
            }
        },
    );
    let mut braked = false;
    for _ in 0..6_000 {
        sim.paced(2_000, MS);
        braked |= sim.stats().braked;
    }
    sim.drain(Duration::from_secs(10));
    assert!(braked);
    assert!(!sim.stats().braked, "released by the first success");
    assert_eq!(sim.delivered.len() as u64, sim.tracked);
    let while_down = sim.requests_between(Duration::ZERO, down);
    assert!(while_down < 100, "{while_down} requests while down");
    assert_eq!(sim.stats().dropped.total(), 0);
}

#[test]
fn an_outage_in_the_middle_of_a_stream_with_many_requests_in_flight() {
    let (from, to) = (Duration::from_secs(2), Duration::from_secs(4));
    let mut sim = Sim::new(defaults(), move |_, at, _| {
        if at >= from && at < to {
            (100 * MS, Err(TransportError::Connection("refused".into())))
        } else {
            ok(100 * MS)
        }
    });
    sim.paced(20_000, Duration::from_secs(2));
    let before = sim.max_outstanding;
    assert!(before > 1, "several requests in flight before the outage");
    // 4,000 events tracked while down fit the default buffer of 10,000.
    sim.paced(2_000, Duration::from_secs(4));
    sim.drain(Duration::from_secs(20));
    assert_eq!(sim.delivered.len() as u64, sim.tracked, "{:?}", sim.stats());
    assert_eq!(sim.duplicates, 0);
    // No storm after it: the first second after recovery starts from one request.
    let after: Vec<&Seen> = sim.seen.iter().filter(|s| s.at >= to).collect();
    let first = after.first().unwrap().at;
    let burst = after.iter().filter(|s| s.at < first + 50 * MS).count();
    assert!(
        burst <= 2,
        "{burst} requests in the first 50 ms after the outage"
    );
    let during = sim.requests_between(from + Duration::from_secs(1), to);
    assert!(
        during < 10,
        "{during} requests in the last second of the outage"
    );
}

#[test]
fn a_collector_refusing_bodies_over_20_000_bytes_gets_everything() {
    let mut sim = Sim::new(defaults(), |request, _, _| {
        if request.body.len() > 20_000 {
            status(MS, 413)
        } else {
            ok(MS)
        }
    });
    // A burst: requests as large as the default caps, refused; then paced traffic.
    sim.track(5_000);
    sim.drain(Duration::from_secs(5));
    sim.paced(5_000, Duration::from_secs(2));
    sim.drain(Duration::from_secs(10));
    let stats = sim.stats();
    assert_eq!(sim.delivered.len() as u64, sim.tracked);
    assert_eq!(stats.dropped.total(), 0);
    assert!(
        stats.request_bytes_cap <= 20_000,
        "{}",
        stats.request_bytes_cap
    );
    let refused = sim.seen.iter().filter(|s| s.status == Some(413)).count();
    assert!(refused > 0);
    assert!(
        refused <= 10,
        "the cap is learnt in a few answers: {refused}"
    );
    assert!(sim
        .seen
        .iter()
        .all(|s| s.status != Some(413) || s.bytes > 20_000));
    assert_eq!(stats.retried, 0, "a split is not a failed attempt");
}

#[test]
fn a_single_event_refused_as_too_large_is_dropped_as_oversize() {
    for (code, reason) in [
        (413, DropReason::Oversize),
        (414, DropReason::Oversize),
        (431, DropReason::Rejected),
    ] {
        let mut sim = Sim::new(defaults().method(Method::Get), move |_, _, _| {
            status(MS, code)
        });
        sim.track(1);
        sim.tick();
        sim.tick();
        let stats = sim.stats();
        assert_eq!(stats.dropped.get(reason), 1, "{code}");
        assert_eq!(stats.requests, 1, "{code}: never retried");
    }
}

#[test]
fn a_request_that_cannot_be_built_is_dropped_as_oversize_and_not_retried() {
    let mut sim = Sim::new(defaults(), |_, _, _| {
        (MS, Err(TransportError::Invalid("uri too long".into())))
    });
    sim.track(10);
    for _ in 0..10 {
        sim.tick();
    }
    let stats = sim.stats();
    assert_eq!(stats.dropped.oversize, 10);
    assert_eq!(stats.requests, 1);
    // The emitter goes on.
    assert_eq!(stats.queued + stats.in_flight, 0);
}

#[test]
fn retry_after_holds_the_whole_emitter_bounded_by_the_max_retry_delay() {
    for (after, max_delay, expected) in [(2, 60, 2), (120, 1, 1)] {
        let mut answered = false;
        let mut sim = Sim::new(
            defaults().max_retry_delay(Duration::from_secs(max_delay)),
            move |_, _, _| {
                if answered {
                    ok(MS)
                } else {
                    answered = true;
                    (
                        MS,
                        Ok(Response::new(503).with_retry_after(Duration::from_secs(after))),
                    )
                }
            },
        );
        sim.track(10);
        sim.tick();
        sim.tick();
        assert!(sim.stats().backoff_ms > 0);
        // More events, and a flush: nothing goes before the hold ends.
        sim.track(30);
        sim.core
            .flush(sim.now.at + Duration::from_secs(60), false, sim.now);
        sim.execute();
        sim.drain(Duration::from_secs(10));
        let second = sim.seen[1].at;
        let hold = Duration::from_secs(expected);
        assert!(second >= hold && second < hold + 10 * MS, "{second:?}");
        assert_eq!(sim.delivered.len(), 40);
    }
}

#[test]
fn a_failed_request_waits_its_own_backoff_while_others_go_on() {
    // The first request fails; the next ones succeed.
    let mut sim = Sim::new(defaults().max_request_events(10), |_, at, _| {
        if at.is_zero() {
            status(50 * MS, 500)
        } else {
            ok(50 * MS)
        }
    });
    sim.track(10);
    sim.tick();
    for _ in 0..20 {
        sim.paced(1_000, 10 * MS);
    }
    sim.drain(Duration::from_secs(5));
    // The retry went 0.5 s (jitter 0.5) after its failure at 50 ms, and others went
    // meanwhile.
    let retry = sim
        .seen
        .iter()
        .position(|s| s.at >= 550 * MS)
        .expect("the retry");
    assert!(
        retry > 5,
        "others went during its backoff: {:?}",
        &sim.seen[..retry]
    );
    assert_eq!(sim.delivered.len() as u64, sim.tracked);
}

#[test]
fn a_success_cuts_every_waiting_retry_to_the_first_step() {
    // Request 0 fails three times in a row (backoffs 0.5, 1.5, 3.5 s); then another
    // request succeeds, and the retry waits at most the first step (0.5 s) from then.
    let mut fails = 0;
    let mut sim = Sim::new(defaults().max_request_events(10), move |request, _, _| {
        if request.events == 10 && fails < 3 {
            fails += 1;
            status(MS, 500)
        } else {
            ok(MS)
        }
    });
    sim.track(10);
    // 0.5 + 1.5 s: the third failure comes at about 2 s; its retry would wait 3.5 s.
    sim.drain(Duration::from_millis(2_100));
    assert_eq!(sim.seen.len(), 3);
    assert_eq!(sim.stats().retry_requests, 1);
    let success_at = sim.elapsed();
    sim.track(1);
    sim.core
        .flush(sim.now.at + Duration::from_secs(60), false, sim.now);
    sim.execute();
    sim.drain(Duration::from_secs(10));
    let retried_at = sim.seen.last().unwrap().at;
    assert!(
        retried_at <= success_at + 510 * MS,
        "{retried_at:?} after a success at {success_at:?}"
    );
}

#[test]
fn one_at_a_time_keeps_fifo_order_and_backs_off_as_a_whole() {
    let mut sim = Sim::new(
        defaults().max_in_flight(1).max_request_events(10),
        |_, at, rng| {
            if at < Duration::from_secs(2) && rng.chance(0.5) {
                status(MS, 500)
            } else {
                ok(MS)
            }
        },
    );
    sim.paced(500, Duration::from_secs(3));
    sim.drain(Duration::from_secs(30));
    assert_eq!(sim.delivered.len() as u64, sim.tracked);
    assert_eq!(sim.max_outstanding, 1);
    let mut by_time: Vec<(Duration, u64)> = sim.delivered.iter().map(|(s, t)| (*t, *s)).collect();
    by_time.sort();
    assert!(by_time
        .windows(2)
        .all(|w| w[0].1 < w[1].1 || w[0].0 == w[1].0));
    let mut seqs: Vec<u64> = by_time.iter().map(|(_, s)| *s).collect();
    let sorted = {
        let mut s = seqs.clone();
        s.sort();
        s
    };
    assert_eq!(seqs, sorted, "delivered in order");
    seqs.dedup();
    // After a failure nothing is sent for the backoff (0.5 s at jitter 0.5).
    let first_fail = sim.seen.iter().position(|s| s.status == Some(500)).unwrap();
    let gap = sim.seen[first_fail + 1].at - sim.seen[first_fail].at;
    assert!(gap >= 500 * MS, "{gap:?}");
    assert!(sim.seen.iter().all(|s| s.events <= 10));
}

#[test]
fn max_request_events_equal_to_batch_size_keeps_requests_of_one_batch() {
    let mut sim = Sim::new(defaults().batch_size(5).max_request_events(5), |_, _, _| {
        ok(100 * MS)
    });
    sim.paced(1_000, Duration::from_secs(1));
    sim.core
        .flush(sim.now.at + Duration::from_secs(60), false, sim.now);
    sim.execute();
    sim.drain(Duration::from_secs(10));
    assert!(sim.seen.iter().all(|s| s.events <= 5));
    assert_eq!(sim.delivered.len() as u64, sim.tracked);
}

#[test]
fn a_sync_flush_waits_through_per_request_backoffs() {
    let mut fails = 0;
    let mut sim = Sim::new(defaults(), move |_, _, _| {
        fails += 1;
        if fails <= 2 {
            status(MS, 500)
        } else {
            ok(MS)
        }
    });
    sim.track(5);
    let waiter = sim
        .core
        .flush(sim.now.at + Duration::from_secs(30), false, sim.now);
    sim.execute();
    sim.drain(Duration::from_secs(10));
    sim.tick();
    let report = &sim.replies[&waiter];
    assert_eq!(
        (report.sent, report.queued, report.timed_out),
        (5, 0, false)
    );
    assert!(
        sim.elapsed() >= Duration::from_millis(2_000),
        "waited 0.5 + 1.5 s"
    );
}

#[test]
fn a_flush_deadline_reports_what_is_left() {
    let mut sim = Sim::new(defaults(), |_, _, _| status(MS, 500));
    sim.track(5);
    let waiter = sim
        .core
        .flush(sim.now.at + Duration::from_secs(1), false, sim.now);
    sim.execute();
    for _ in 0..1_100 {
        sim.tick();
    }
    let report = &sim.replies[&waiter];
    assert!(report.timed_out);
    assert_eq!(report.queued, 5);
}

#[test]
fn a_shutdown_gives_a_retry_due_after_its_deadline_one_last_attempt() {
    let mut fails = 0;
    let mut sim = Sim::new(defaults(), move |_, _, _| {
        fails += 1;
        if fails <= 3 {
            status(MS, 500)
        } else {
            ok(MS)
        }
    });
    sim.track(5);
    sim.drain(Duration::from_millis(2_100));
    // Three failures: the retry now waits 3.5 s; the shutdown allows 1 s.
    assert_eq!(sim.seen.len(), 3);
    let waiter = sim
        .core
        .flush(sim.now.at + Duration::from_secs(1), true, sim.now);
    sim.execute();
    for _ in 0..20 {
        sim.tick();
    }
    let report = &sim.replies[&waiter];
    assert_eq!((report.sent, report.timed_out), (5, false));
    assert!(sim.core.is_closed());
}

#[test]
fn a_shutdown_settles_retries_and_queue_as_shutdown_at_its_deadline() {
    let mut sim = Sim::new(defaults(), |_, _, _| status(MS, 500));
    sim.paced(1_000, Duration::from_millis(100));
    let waiter = sim
        .core
        .flush(sim.now.at + Duration::from_millis(300), true, sim.now);
    sim.execute();
    for _ in 0..400 {
        sim.tick();
    }
    let report = sim.replies[&waiter].clone();
    let stats = sim.stats();
    assert!(report.timed_out);
    assert_eq!(stats.dropped.shutdown, sim.tracked);
    assert_eq!(stats.queued + stats.in_flight, 0);
    assert!(stats.is_balanced());
    // Tracking after the shutdown is refused and counted.
    sim.track(1);
    assert_eq!(sim.stats().dropped.shutdown, sim.tracked);
}

#[test]
fn a_restart_puts_requests_in_flight_back_and_forgets_their_answers() {
    let mut sim = Sim::new(defaults(), |_, _, _| ok(100 * MS));
    sim.track(20);
    assert_eq!(sim.stats().in_flight, 20);
    sim.core.restart();
    // The actor's context drops the requests it was waiting for.
    sim.pending.clear();
    assert_eq!((sim.stats().queued, sim.stats().in_flight), (20, 0));
    sim.core.set_ready(true, sim.now);
    sim.execute();
    sim.drain(Duration::from_secs(1));
    assert_eq!(sim.stats().sent, 20);
    // An answer to a request from before the restart is ignored.
    sim.core.answer(0, Ok(Response::new(200)), sim.now);
    sim.execute();
    assert_eq!(sim.stats().sent, 20);
    assert_eq!(sim.duplicates, 0);
}

#[test]
fn brake_needs_both_failures_in_a_row_and_quiet() {
    // Failures in a row, but a success just before: not braked until the quiet passes.
    let mut sim = Sim::new(defaults().max_request_events(1), |_, at, _| {
        if at.is_zero() {
            ok(MS)
        } else {
            status(MS, 500)
        }
    });
    sim.track(1);
    sim.tick();
    sim.tick();
    sim.track(BRAKE_AFTER * 2);
    for _ in 0..5 {
        sim.tick();
    }
    assert!(sim.stats().consecutive_failures >= BRAKE_AFTER);
    assert!(
        !sim.stats().braked,
        "a success came less than the quiet ago"
    );
    sim.drain(Duration::from_secs(2));
    assert!(sim.stats().braked);
    let seen: HashSet<usize> = sim.seen.iter().map(|s| s.events).collect();
    assert_eq!(seen, HashSet::from([1]));
}

#[test]
fn one_at_a_time_sends_requeued_events_once_the_hold_ends_whatever_comes_first() {
    let mut fails = 1;
    let mut sim = Sim::new(defaults().max_in_flight(1), move |_, _, _| {
        if fails > 0 {
            fails -= 1;
            status(MS, 500)
        } else {
            ok(MS)
        }
    });
    // A partial batch, flushed with a short deadline: it fails and goes back to the queue
    // behind a 0.5 s hold, and the flush gives up.
    sim.track(5);
    let waiter = sim
        .core
        .flush(sim.now.at + Duration::from_millis(100), false, sim.now);
    sim.execute();
    for _ in 0..200 {
        sim.tick();
    }
    assert!(sim.replies[&waiter].timed_out);
    assert_eq!(sim.stats().queued, 5);
    // The hold ends and an event arrives before the timer fires: the five go with it,
    // though the queue is below the batch size and no flush waits.
    sim.now = sim.now.plus(Duration::from_millis(400));
    sim.track(1);
    assert_eq!(sim.seen.len(), 2, "{:?}", sim.seen);
    assert_eq!(sim.seen[1].events, 6);
}
