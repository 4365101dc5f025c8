//! The `metrics` feature: what an exporter shows is what `Tracker::stats` says, emitter by
//! emitter and for the tracker, read back from the Prometheus text of
//! `metrics-exporter-prometheus`.
//!
//! No test installs a recorder for this process (every test runs in it, and a global
//! recorder would mix their figures). Each builds its trackers under a recorder of its own,
//! set as its thread's local recorder while it builds them (the figures are registered
//! with the recorder current where a tracker is built, and its threads publish to those
//! registrations), so it reads its own figures only, whatever runs beside it. The one
//! global recorder, the `actix_web` example's, is installed in a child process: the example
//! run in serve mode, scraped on `/metrics` over HTTP.
#![cfg(feature = "metrics")]

use std::time::Duration;

use crate::common::collector::{Faults, RecordedRequest, TestCollector};
use crate::common::support::{assert_balanced, assert_settled, BuilderExt, TrackerBuilderExt};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use snowplow_actix::metrics::{
    EMITTER_CONCURRENCY_LIMIT, EMITTER_EVENTS_DROPPED, EMITTER_EVENTS_OUTCOME_UNKNOWN,
    EMITTER_EVENTS_RETRIED, EMITTER_EVENTS_SENT, EMITTER_IN_FLIGHT_REQUESTS,
    EMITTER_QUEUE_CAPACITY_EVENTS, EMITTER_QUEUE_EVENTS, EMITTER_REQUEST_DURATION_SECONDS,
    REQUEST_DURATION_BUCKETS, TRACKER_EVENTS_DISCARDED, TRACKER_EVENTS_REFUSED,
    TRACKER_EVENTS_TRACKED,
};
use snowplow_actix::{
    DropReason, EmitterBuilder, EmitterStats, Method, Structured, Tracker, TrackerBuilder,
    TrackerStats,
};

/// One sample of the Prometheus text: its name, labels and value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A scrape: every sample of a Prometheus text.
#[derive(Debug)]
struct Scrape(Vec<Sample>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("`series value`");
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
                    None => (series, Vec::new()),
                };
                Sample {
                    name: name.to_owned(),
                    labels,
                    value: value.parse().expect("a number"),
                }
            })
            .collect();
        Scrape(samples)
    }

    /// The value of the one sample named `name` with (at least) these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .0
            .iter()
            .filter(|sample| sample.name == name)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(key, value)| sample.labels.iter().any(|(k, v)| k == key && v == value))
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?}: {found:#?}");
        found.first().map(|sample| sample.value)
    }

    /// As [`get`](Self::get), as a whole number, for figures that must be there.
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let value = self
            .get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in {:#?}", self.0));
        assert_eq!(value.fract(), 0.0, "{name} {labels:?}: {value}");
        value as u64
    }

    /// The label sets of the samples named `name`.
    fn series(&self, name: &str) -> Vec<Vec<(String, String)>> {
        self.0
            .iter()
            .filter(|sample| sample.name == name)
            .map(|sample| sample.labels.clone())
            .collect()
    }
}

/// `key="value",…` with `\"`, `\\` and `\n` escapes.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{text}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                other => value.push(other),
            }
        }
        labels.push((key.trim_start_matches(',').to_owned(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

/// A Prometheus recorder of this test's own, the request durations in buckets.
fn recorder() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(EMITTER_REQUEST_DURATION_SECONDS.to_owned()),
            &REQUEST_DURATION_BUCKETS,
        )
        .expect("buckets")
        .build_recorder()
}

/// `builder` built under `recorder` (the thread's local recorder meanwhile): the tracker
/// publishes there.
fn built_under(recorder: &PrometheusRecorder, builder: TrackerBuilder) -> Tracker {
    let _local = metrics::set_default_local_recorder(recorder);
    builder.flushed_by_hand()
}

fn scrape(recorder: &PrometheusRecorder) -> Scrape {
    let handle = recorder.handle();
    handle.run_upkeep();
    Scrape::parse(&handle.render())
}

/// Asserts that every figure of the emitter `name` in `scrape` is its stats'.
#[track_caller]
fn assert_emitter_figures(scrape: &Scrape, tracker: &str, name: &str, stats: &EmitterStats) {
    let labels = [("tracker", tracker), ("emitter", name)];
    let count = |metric: &str| scrape.count(metric, &labels);
    assert_eq!(
        [
            count(EMITTER_EVENTS_SENT),
            count(EMITTER_EVENTS_RETRIED),
            count(EMITTER_EVENTS_OUTCOME_UNKNOWN),
            count(EMITTER_QUEUE_EVENTS),
            count(EMITTER_IN_FLIGHT_REQUESTS),
            count(EMITTER_CONCURRENCY_LIMIT),
        ],
        [
            stats.sent,
            stats.retried,
            stats.outcome_unknown,
            stats.queued,
            stats.in_flight_requests,
            stats.concurrency_limit,
        ],
        "{name}: sent, retried, outcome unknown, queued, in flight, limit"
    );
    for reason in DropReason::ALL {
        let reason_label = reason.to_string();
        let dropped = scrape.count(
            EMITTER_EVENTS_DROPPED,
            &[
                ("tracker", tracker),
                ("emitter", name),
                ("reason", &reason_label),
            ],
        );
        assert_eq!(dropped, stats.dropped.get(reason), "{name}: {reason}");
    }
    assert_eq!(
        scrape.get(EMITTER_QUEUE_CAPACITY_EVENTS, &labels),
        stats.buffer_capacity.map(|capacity| capacity as f64),
        "{name}: capacity"
    );
    // One sample per answered request, whatever it came to.
    let answered: u64 = ["sent", "retried", "dropped", "split"]
        .iter()
        .map(|outcome| {
            scrape.count(
                &format!("{EMITTER_REQUEST_DURATION_SECONDS}_count"),
                &[
                    ("tracker", tracker),
                    ("emitter", name),
                    ("outcome", outcome),
                ],
            )
        })
        .sum();
    assert_eq!(answered, stats.requests, "{name}: requests answered");
}

/// Asserts that the tracker-wide figures in `scrape` are `stats`'.
#[track_caller]
fn assert_tracker_figures(scrape: &Scrape, tracker: &str, stats: &TrackerStats) {
    let labels = [("tracker", tracker)];
    assert_eq!(
        [
            scrape.count(TRACKER_EVENTS_TRACKED, &labels),
            scrape.count(TRACKER_EVENTS_REFUSED, &labels),
            scrape.count(
                TRACKER_EVENTS_DISCARDED,
                &[("tracker", tracker), ("reason", "sampling")]
            ),
            scrape.count(
                TRACKER_EVENTS_DISCARDED,
                &[("tracker", tracker), ("reason", "policy")]
            ),
        ],
        [
            stats.tracked,
            stats.refused,
            stats.discarded.sampling,
            stats.discarded.policy,
        ],
        "tracked, refused, discarded"
    );
}

/// Events the collector answered `status` to, over `requests`.
fn events_answered(requests: &[RecordedRequest], status: impl Fn(u16) -> bool) -> u64 {
    requests
        .iter()
        .filter(|request| status(request.status))
        .map(|request| request.events.len() as u64)
        .sum()
}

/// Traffic against collectors failing three requests in ten (503) and rejecting one in
/// seven (400), through a POST emitter that retries and a GET one allowed one attempt:
/// once the flush has returned, every figure the exporter shows is the stats'.
#[actix_rt::test]
async fn once_a_flush_has_returned_the_figures_are_the_stats() {
    const EVENTS: usize = 120;
    let recorder = recorder();
    let faults = || {
        Faults::decide(|request| (request.n % 7 == 3).then_some(400))
            .or(Faults::failure_rate(0.3, 29, 503))
    };
    // One each: the faults fall by each emitter's own request ordinals.
    let (posts, gets) = (
        TestCollector::with_faults(faults()).await,
        TestCollector::with_faults(faults()).await,
    );
    let quick = |builder: EmitterBuilder| builder.retrying_fast(Duration::from_millis(20));
    let tracker = built_under(
        &recorder,
        Tracker::builder("metrics-settled")
            .emitter(quick(
                EmitterBuilder::new(posts.endpoint())
                    .name("metrics-post")
                    .max_request_events(7)
                    .max_in_flight(4),
            ))
            .emitter(quick(
                EmitterBuilder::new(gets.endpoint())
                    .name("metrics-get")
                    .method(Method::Get)
                    .max_in_flight(4)
                    .max_attempts(1),
            )),
    );
    for idx in 0..EVENTS {
        let event = Structured::new("metrics", "event")
            .unwrap()
            .label(idx.to_string());
        tracker.track(event).unwrap();
    }

    let report = tracker
        .flush_with_timeout(Duration::from_secs(30))
        .await
        .unwrap();
    let figures = scrape(&recorder);
    let stats = tracker.stats().await.unwrap();

    assert_settled(&report);
    // The scenario did fail in each way: retried, rejected, out of attempts; and the stats
    // are the collectors' records.
    let (post, get) = (
        stats.emitters[0].stats.clone().unwrap(),
        stats.emitters[1].stats.clone().unwrap(),
    );
    assert!(post.retried > 0 && post.dropped.rejected > 0, "{post:#?}");
    assert!(
        get.dropped.attempts_exhausted > 0 && get.dropped.rejected > 0,
        "{get:#?}"
    );
    for (emitter, collector) in [(&post, &posts), (&get, &gets)] {
        assert_balanced(emitter);
        let requests = collector.requests();
        assert_eq!(
            (emitter.sent, emitter.dropped.rejected),
            (
                events_answered(&requests, |status| status == 200),
                events_answered(&requests, |status| status == 400)
            )
        );
    }
    // What the exporter shows.
    assert_eq!(stats.emitters[0].name, "metrics-post");
    assert_emitter_figures(&figures, "metrics-settled", "metrics-post", &post);
    assert_emitter_figures(&figures, "metrics-settled", "metrics-get", &get);
    assert_tracker_figures(&figures, "metrics-settled", &stats);
    assert_eq!(stats.tracked, EVENTS as u64);
    // The durations were measured: each answered request took some time.
    let took = figures
        .get(
            &format!("{EMITTER_REQUEST_DURATION_SECONDS}_sum"),
            &[("emitter", "metrics-post"), ("outcome", "sent")],
        )
        .unwrap();
    assert!(took > 0.0, "{took}");

    // After a shutdown, the final figures: those of the final stats.
    tracker.shutdown(Duration::from_secs(5)).await.unwrap();
    let figures = scrape(&recorder);
    let stats = tracker.stats().await.unwrap();
    for emitter in &stats.emitters {
        let counters = emitter.stats.as_ref().unwrap();
        assert_emitter_figures(&figures, "metrics-settled", &emitter.name, counters);
    }
    assert_tracker_figures(&figures, "metrics-settled", &stats);
}

/// A tracker publishes to the recorder current where it was built, and to it only: two
/// trackers built under two recorders each show in their own; the emitters' names, made
/// unique by the tracker, are their series'.
#[actix_rt::test]
async fn each_tracker_publishes_to_the_recorder_current_where_it_was_built() {
    let (first, second) = (recorder(), recorder());
    let collector = TestCollector::with_faults(Faults::none()).await;
    let endpoint = collector.endpoint();
    // Two unnamed emitters to one endpoint: `endpoint` and `endpoint#2`.
    let one = built_under(
        &first,
        Tracker::builder("metrics-one")
            .emitter(EmitterBuilder::new(endpoint.as_str()))
            .emitter(EmitterBuilder::new(endpoint.as_str()).batch_size(1)),
    );
    let two = built_under(
        &second,
        Tracker::builder("metrics-two").emitter(EmitterBuilder::new(endpoint.as_str())),
    );
    // Built with no recorder of its own: the global one, which this process has not.
    let none = Tracker::builder("metrics-none")
        .emitter(EmitterBuilder::new(endpoint.as_str()))
        .flushed_by_hand();
    for tracker in [&one, &two, &none] {
        tracker.track(Structured::new("a", "b").unwrap()).unwrap();
        assert_settled(&tracker.flush().await.unwrap());
    }
    one.track(Structured::new("a", "b").unwrap()).unwrap();
    assert_settled(&one.flush().await.unwrap());

    let (first, second) = (scrape(&first), scrape(&second));
    let stats = one.stats().await.unwrap();
    let renamed = format!("{endpoint}#2");
    assert_eq!(stats.emitters[1].name, renamed);
    for (emitter, name) in stats.emitters.iter().zip([endpoint.as_str(), &renamed]) {
        let counters = emitter.stats.as_ref().unwrap();
        assert_eq!(counters.sent, 2);
        assert_emitter_figures(&first, "metrics-one", name, counters);
    }
    assert_tracker_figures(&first, "metrics-one", &stats);
    let stats = two.stats().await.unwrap();
    assert_emitter_figures(
        &second,
        "metrics-two",
        &endpoint,
        stats.emitters[0].stats.as_ref().unwrap(),
    );
    assert_tracker_figures(&second, "metrics-two", &stats);
    // Each recorder holds its own tracker's series only.
    let trackers = |scrape: &Scrape| -> Vec<String> {
        let mut names: Vec<String> = scrape
            .series(EMITTER_EVENTS_SENT)
            .into_iter()
            .chain(scrape.series(TRACKER_EVENTS_TRACKED))
            .filter_map(|labels| {
                labels
                    .into_iter()
                    .find(|(key, _)| key == "tracker")
                    .map(|(_, value)| value)
            })
            .collect();
        names.dedup();
        names
    };
    assert_eq!(trackers(&first), ["metrics-one"]);
    assert_eq!(trackers(&second), ["metrics-two"]);
}

// The example itself, run by the child below: `run` is its `main` with the arguments given.
#[cfg(all(unix, feature = "web"))]
#[path = "../../examples/actix_web.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod example;

/// The `actix_web` example in serve mode, built with the feature, as a child process: it
/// installs a Prometheus recorder for its process and answers it on `GET /metrics`.
#[cfg(all(unix, feature = "web"))]
mod serve_mode {
    use std::net::SocketAddr;
    use std::process::{Child, Stdio};

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    use super::*;

    /// Set in the child only: the collector's endpoint.
    const CHILD_ENV: &str = "SNOWPLOW_METRICS_CHILD";
    const CHILD_TEST: &str = "child_runs_the_example_in_serve_mode";
    /// What the example prints (on stderr) once it serves.
    const LISTENING: &str = "app listening on http://";

    /// The child: does nothing unless run by the test below. The example's own `main`, on
    /// a free port.
    #[test]
    fn child_runs_the_example_in_serve_mode() {
        let Ok(collector) = std::env::var(CHILD_ENV) else {
            return;
        };
        let args = ["--bind", "127.0.0.1:0", "--collector", &collector];
        let code = super::example::run(args.iter().map(|arg| arg.to_string()).collect());
        assert_eq!(code, 0, "the example failed");
    }

    /// The child, killed if the test ends before it stops.
    struct Running {
        process: Option<Child>,
        addr: SocketAddr,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(mut process) = self.process.take() {
                let _ = process.kill();
                let _ = process.wait();
            }
        }
    }

    impl Running {
        async fn start(collector: &str) -> Running {
            let mut process = crate::common::support::child_test(module_path!(), CHILD_TEST)
                .env(CHILD_ENV, collector)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn the child");
            let mut lines = crate::common::support::pipe_lines(process.stderr.take().unwrap());
            let wait = async {
                while let Some(line) = lines.recv().await {
                    if let Some((_, rest)) = line.split_once(LISTENING) {
                        let addr = rest
                            .split_whitespace()
                            .next()
                            .unwrap()
                            .trim_end_matches(',');
                        return addr.parse().expect("the child's address");
                    }
                }
                panic!("the child ended without listening");
            };
            let addr = tokio::time::timeout(Duration::from_secs(60), wait)
                .await
                .expect("the child listens within 60 s");
            Running {
                process: Some(process),
                addr,
            }
        }

        async fn get(&self, path: &str) -> (u16, String) {
            crate::common::support::get_text(&format!("http://{}{path}", self.addr)).await
        }

        /// SIGTERM, then its exit status.
        async fn stop(mut self) -> std::process::ExitStatus {
            let mut process = self.process.take().expect("running");
            kill(Pid::from_raw(process.id() as i32), Signal::SIGTERM).expect("signal");
            actix_rt::task::spawn_blocking(move || process.wait())
                .await
                .unwrap()
                .unwrap()
        }
    }

    /// The example's `/metrics`: a page view per `GET /`, some rejected by the collector;
    /// once no request is in flight and the collector has answered what the figures count,
    /// they are the collector's records: events tracked, sent, dropped as rejected, the
    /// rest queued; `/metrics` itself is not tracked.
    #[actix_rt::test]
    async fn the_example_serves_its_figures_on_metrics_in_prometheus_text() {
        const VIEWS: u64 = 25;
        // The second request is rejected; the example's emitter sends batches of 10.
        let collector =
            TestCollector::with_faults(Faults::decide(|request| (request.n == 1).then_some(400)))
                .await;
        let child = Running::start(&collector.endpoint()).await;
        for _ in 0..VIEWS {
            assert_eq!(child.get("/").await.0, 200);
        }

        // Nothing in the child can be awaited: look every 10 ms, for 10 s at most, until
        // no request is in flight, the figures count every request the collector has
        // answered, and the tracker and the emitter count every event tracked (the
        // tracker's figures come from another thread than the emitter's).
        let labels = [("tracker", "example"), ("emitter", "collector")];
        let mut figures = Scrape(Vec::new());
        for _ in 0..1_000 {
            let (status, text) = child.get("/metrics").await;
            assert_eq!(status, 200);
            figures = Scrape::parse(&text);
            let requests = collector.requests();
            let settled = figures.get(EMITTER_IN_FLIGHT_REQUESTS, &labels) == Some(0.0)
                && figures.get(TRACKER_EVENTS_TRACKED, &[("tracker", "example")])
                    == Some(VIEWS as f64)
                && figures.get(EMITTER_EVENTS_SENT, &labels)
                    == Some(events_answered(&requests, |status| status == 200) as f64)
                && figures.get(
                    EMITTER_EVENTS_DROPPED,
                    &[("emitter", "collector"), ("reason", "rejected")],
                ) == Some(events_answered(&requests, |status| status == 400) as f64)
                && requests.len() >= 2
                && figures
                    .get(EMITTER_QUEUE_EVENTS, &labels)
                    .is_some_and(|queued| {
                        let settled =
                            events_answered(&requests, |status| status == 200 || status == 400);
                        queued as u64 + settled == VIEWS
                    });
            if settled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let requests = collector.requests();
        let sent = events_answered(&requests, |status| status == 200);
        let rejected = events_answered(&requests, |status| status == 400);

        assert!(sent > 0 && rejected > 0, "{requests:#?}");
        assert_eq!(
            [
                figures.count(TRACKER_EVENTS_TRACKED, &[("tracker", "example")]),
                figures.count(EMITTER_EVENTS_SENT, &labels),
                figures.count(
                    EMITTER_EVENTS_DROPPED,
                    &[("emitter", "collector"), ("reason", "rejected")]
                ),
                figures.count(EMITTER_QUEUE_EVENTS, &labels),
                figures.count(EMITTER_IN_FLIGHT_REQUESTS, &labels),
                figures.count(EMITTER_QUEUE_CAPACITY_EVENTS, &labels),
            ],
            [
                VIEWS,
                sent,
                rejected,
                VIEWS - sent - rejected,
                0,
                snowplow_actix::emitter::DEFAULT_BUFFER_CAPACITY as u64
            ],
            "tracked, sent, rejected, queued, in flight, capacity: {figures:#?}"
        );
        // Requests answered, one sample each, in the outcome's buckets.
        let answered = |outcome: &str| {
            figures.count(
                &format!("{EMITTER_REQUEST_DURATION_SECONDS}_count"),
                &[("emitter", "collector"), ("outcome", outcome)],
            )
        };
        let accepted = requests.iter().filter(|r| r.status == 200).count() as u64;
        assert_eq!((answered("sent"), answered("dropped")), (accepted, 1));
        let buckets = figures.series(&format!("{EMITTER_REQUEST_DURATION_SECONDS}_bucket"));
        assert!(
            buckets
                .iter()
                .any(|labels| labels.contains(&("le".into(), "0.1".into()))),
            "{buckets:?}"
        );
        // Neither `/metrics` nor the scrapes were tracked.
        assert!(collector
            .events()
            .iter()
            .all(|event| !event.get("url").unwrap_or_default().contains("/metrics")));

        let status = child.stop().await;
        assert!(status.success(), "{status:?}");
    }
}

/// A recorder whose counters panic (a bug in an exporter).
struct PanickingRecorder;

struct PanickingCounter;

impl metrics::CounterFn for PanickingCounter {
    fn increment(&self, _: u64) {
        panic!("a bug in the recorder");
    }

    fn absolute(&self, _: u64) {
        panic!("a bug in the recorder");
    }
}

impl metrics::Recorder for PanickingRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(std::sync::Arc::new(PanickingCounter))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// The recorder is the application's code: one that panics is caught, logged once at
/// ERROR, and no longer published to, while the emitters and the fan-out deliver as ever.
#[actix_rt::test]
async fn a_panicking_recorder_is_logged_once_and_delivery_goes_on() {
    let logs = crate::common::logs::Logs::capture();
    let collector = TestCollector::with_faults(Faults::none()).await;
    let tracker = {
        let recorder = PanickingRecorder;
        let _local = metrics::set_default_local_recorder(&recorder);
        Tracker::builder("metrics-panicking")
            .emitter(EmitterBuilder::new(collector.endpoint()).name("metrics-panicking"))
            .flushed_by_hand()
    };
    for _ in 0..25 {
        tracker.track(Structured::new("a", "b").unwrap()).unwrap();
    }

    let report = tracker.flush().await.unwrap();
    let stats = tracker.stats().await.unwrap();

    assert_eq!((report.queued, report.timed_out), (0, false), "{report:?}");
    assert_eq!(collector.accepted_count(), 25);
    let emitter = stats.emitters[0].stats.clone().unwrap();
    assert_eq!((emitter.sent, emitter.panics, emitter.restarts), (25, 0, 0));
    assert_eq!(stats.fanout_panics, 0);
    let errors: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|line| line.level == tracing::Level::ERROR)
        .map(|line| line.message)
        .collect();
    // One for the emitter's handles, one for the fan-out's.
    assert_eq!(
        errors, ["the metrics recorder panicked: no more figures are published to it"; 2],
        "{errors:#?}"
    );
}
