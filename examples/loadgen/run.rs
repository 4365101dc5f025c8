//! The load generator's logic, shared with its test.
// Items are `pub(crate)` for the test that includes this file; each user reads a part.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use snowplow_actix::{
    DropCounts, EmitterBuilder, EmitterStats, Method, PageView, SelfDescribing, SelfDescribingJson,
    Structured, Tracker,
};

pub(crate) const USAGE: &str = "\
usage: loadgen --endpoint URL [--endpoint URL …] [options]

A flag not given leaves the library's default.

  --endpoint URL             collector endpoint; repeat for one emitter per endpoint
  --events N                 events to track (default 10000)
  --method post|get          request method (default post)
  --batch-size B             queued events that trigger a flush (default 10 POST, 1 GET)
  --byte-limit BYTES         queued bytes that trigger a flush, and a cap on the bytes of
                             each request as sent (default none)
  --max-request-events N     most events per POST request (library default 500)
  --max-request-bytes B      most bytes per POST body as sent (library default 200000)
  --max-in-flight C          upper bound of the adaptive concurrency: requests outstanding
                             per emitter, starting at 1 (library default 32; 1 keeps order)
  --buffer-capacity CAP      events buffered per emitter (library default 10000)
  --buffer-bytes B           bytes buffered per emitter (library default 32 MiB)
  --max-retry-delay-ms MS    backoff cap (library default 60000)
  --request-timeout-ms MS    request timeout (library default 10000)
  --retry-code CODE=BOOL     retry (true) or drop (false) a status; repeatable
  --flush-timer-ms MS        tracker flush interval, 0 for none (default 10000)
  --rate EVENTS_PER_S        total tracking rate, 0 = as fast as possible (default 0)
  --producers P              threads tracking concurrently (default 1)
  --event KIND               struct | page_view | self_describing (default struct)
  --event-bytes N            pad each event with N bytes (a long label, title or field)
  --drain-timeout-ms MS      deadline of the final flush and shutdown (default 30000)

Exit code 0 when the run completed, even with drops; 2 for bad arguments, including
settings the library refuses (an endpoint that is not http or https, a zero size); 1 when
the run failed.";

/// Why [`run`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunError {
    /// The library refused the settings when building the tracker: a bad argument.
    Settings(String),
    /// The run itself failed (the tracker stopped answering, a producer thread failed).
    Run(String),
}

impl RunError {
    /// The process exit code: 2 for settings, as for any bad argument; 1 otherwise.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            RunError::Settings(_) => 2,
            RunError::Run(_) => 1,
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Settings(message) => write!(f, "invalid settings: {message}"),
            RunError::Run(message) => f.write_str(message),
        }
    }
}

fn failed(error: impl std::fmt::Display) -> RunError {
    RunError::Run(error.to_string())
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Struct,
    PageView,
    SelfDescribing,
}

/// The command line.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) endpoints: Vec<String>,
    pub(crate) events: u64,
    pub(crate) method: Method,
    pub(crate) batch_size: Option<usize>,
    pub(crate) byte_limit: Option<usize>,
    pub(crate) max_request_events: Option<usize>,
    pub(crate) max_request_bytes: Option<usize>,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) buffer_capacity: Option<usize>,
    pub(crate) buffer_bytes: Option<usize>,
    pub(crate) event_bytes: usize,
    pub(crate) max_retry_delay: Option<Duration>,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) retry_codes: Vec<(u16, bool)>,
    pub(crate) flush_timer: Option<Duration>,
    pub(crate) rate: u64,
    pub(crate) producers: usize,
    pub(crate) event: EventKind,
    pub(crate) drain_timeout: Duration,
}

impl Options {
    /// Parses the arguments (without the program name).
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Options {
            endpoints: Vec::new(),
            events: 10_000,
            method: Method::Post,
            batch_size: None,
            byte_limit: None,
            max_request_events: None,
            max_request_bytes: None,
            max_in_flight: None,
            buffer_capacity: None,
            buffer_bytes: None,
            event_bytes: 0,
            max_retry_delay: None,
            request_timeout: None,
            retry_codes: Vec::new(),
            flush_timer: Some(Duration::from_secs(10)),
            rate: 0,
            producers: 1,
            event: EventKind::Struct,
            drain_timeout: Duration::from_secs(30),
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| format!("{flag} needs a value"))
                    .map(String::as_str)
            };
            match flag.as_str() {
                "--endpoint" => options.endpoints.push(value()?.to_owned()),
                "--events" => options.events = number(flag, value()?)?,
                "--method" => {
                    options.method = match value()? {
                        "post" => Method::Post,
                        "get" => Method::Get,
                        other => return Err(format!("--method must be post or get, not {other}")),
                    }
                }
                "--batch-size" => options.batch_size = Some(number(flag, value()?)?),
                "--byte-limit" => options.byte_limit = Some(number(flag, value()?)?),
                "--max-request-events" => {
                    options.max_request_events = Some(number(flag, value()?)?)
                }
                "--max-request-bytes" => options.max_request_bytes = Some(number(flag, value()?)?),
                "--max-in-flight" => options.max_in_flight = Some(number(flag, value()?)?),
                "--buffer-capacity" => options.buffer_capacity = Some(number(flag, value()?)?),
                "--buffer-bytes" => options.buffer_bytes = Some(number(flag, value()?)?),
                "--event-bytes" => options.event_bytes = number(flag, value()?)?,
                "--max-retry-delay-ms" => options.max_retry_delay = Some(millis(flag, value()?)?),
                "--request-timeout-ms" => options.request_timeout = Some(millis(flag, value()?)?),
                "--retry-code" => {
                    let spec = value()?;
                    let (code, retry) = spec
                        .split_once('=')
                        .ok_or_else(|| format!("--retry-code takes CODE=true|false, not {spec}"))?;
                    let retry = match retry {
                        "true" => true,
                        "false" => false,
                        other => return Err(format!("--retry-code: {other} is not true or false")),
                    };
                    options.retry_codes.push((number(flag, code)?, retry));
                }
                "--flush-timer-ms" => {
                    let interval = millis(flag, value()?)?;
                    options.flush_timer = (!interval.is_zero()).then_some(interval);
                }
                "--rate" => options.rate = number(flag, value()?)?,
                "--producers" => options.producers = number(flag, value()?)?,
                "--event" => {
                    options.event = match value()? {
                        "struct" => EventKind::Struct,
                        "page_view" => EventKind::PageView,
                        "self_describing" => EventKind::SelfDescribing,
                        other => return Err(format!("--event: unknown kind {other}")),
                    }
                }
                "--drain-timeout-ms" => options.drain_timeout = millis(flag, value()?)?,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if options.endpoints.is_empty() {
            return Err("at least one --endpoint is needed".into());
        }
        if options.producers == 0 {
            return Err("--producers must be at least 1".into());
        }
        Ok(options)
    }
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag} takes a non-negative number, not {text}"))
}

fn millis(flag: &str, text: &str) -> Result<Duration, String> {
    number(flag, text).map(Duration::from_millis)
}

/// Tracks one event of `kind`, numbered `idx`: what is timed per call.
fn track_one(tracker: &Tracker, kind: EventKind, idx: u64, padding: &str) -> bool {
    let tracked = match kind {
        EventKind::Struct => Structured::new("loadgen", "event")
            .map(|event| event.label(format!("{idx}{padding}")))
            .map(|event| tracker.track(event)),
        EventKind::PageView => PageView::new(format!("https://example.com/page/{idx}"))
            .map(|event| tracker.track(event.title(format!("Load{padding}")))),
        EventKind::SelfDescribing => SelfDescribingJson::new(
            "iglu:com.example/load/jsonschema/1-0-0",
            json!({ "idx": idx, "name": format!("load{padding}") }),
        )
        .map(|json| tracker.track(SelfDescribing::new(json))),
    };
    matches!(tracked, Ok(Ok(_)))
}

/// Call times in ns, in 1 ns buckets up to [`Timings::EXACT_NS`] (a fixed 400 KB, so the
/// load generator's own memory stays flat however many events it tracks), slower ones kept
/// one by one.
pub(crate) struct Timings {
    buckets: Vec<u32>,
    slow: Vec<u32>,
    count: u64,
}

impl Timings {
    const EXACT_NS: usize = 100_000;

    fn new() -> Self {
        Self {
            buckets: vec![0; Self::EXACT_NS],
            slow: Vec::new(),
            count: 0,
        }
    }

    fn record(&mut self, ns: u32) {
        self.count += 1;
        match self.buckets.get_mut(ns as usize) {
            Some(bucket) => *bucket += 1,
            None => self.slow.push(ns),
        }
    }

    fn merge(&mut self, other: Timings) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.slow.extend(other.slow);
        self.count += other.count;
    }

    /// The time below which `fraction` of the calls took.
    fn percentile(&mut self, fraction: f64) -> u32 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count - 1) as f64 * fraction).round() as u64;
        let mut seen = 0;
        for (ns, &calls) in self.buckets.iter().enumerate() {
            seen += u64::from(calls);
            if seen > rank {
                return ns as u32;
            }
        }
        self.slow.sort_unstable();
        let idx = (rank - seen) as usize;
        self.slow.get(idx).copied().unwrap_or(u32::MAX)
    }
}

/// Tracks `count` events at `rate` per second (0: as fast as possible) and times each call.
/// A paced producer sleeps only once it is a millisecond ahead, so pacing costs few system
/// calls of its own.
fn produce(
    tracker: Tracker,
    kind: EventKind,
    (first, count, rate): (u64, u64, f64),
    padding: &str,
) -> Timings {
    let mut timings = Timings::new();
    let started = Instant::now();
    for n in 0..count {
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                std::thread::sleep(due - now);
            }
        }
        let call = Instant::now();
        track_one(&tracker, kind, first + n, padding);
        timings.record(u32::try_from(call.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    timings
}

/// CPU seconds (user + system) and peak RSS in KB of this process, from /proc.
fn process_usage() -> (f64, u64) {
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces, inside parentheses).
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            // USER_HZ is 100 on Linux.
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0);
    (cpu, rss)
}

fn drops_json(dropped: &DropCounts) -> Value {
    serde_json::to_value(dropped).unwrap_or(Value::Null)
}

/// `builder` with `setter` applied to `value` when the flag was given.
fn given<T>(
    builder: EmitterBuilder,
    value: Option<T>,
    setter: fn(EmitterBuilder, T) -> EmitterBuilder,
) -> EmitterBuilder {
    match value {
        Some(value) => setter(builder, value),
        None => builder,
    }
}

/// Runs the load and returns the JSON summary line.
///
/// # Errors
///
/// [`RunError::Settings`] when the library refuses the settings (exit code 2, like a bad
/// argument), [`RunError::Run`] when the run itself fails.
pub(crate) async fn run(options: Options) -> Result<String, RunError> {
    let mut builder = Tracker::builder("loadgen").app_id("loadgen");
    builder = match options.flush_timer {
        Some(interval) => builder.flush_timer(interval),
        None => builder.no_flush_timer(),
    };
    let last_delivery = Arc::new(Mutex::new(None::<Instant>));
    for endpoint in &options.endpoints {
        let mut emitter = EmitterBuilder::new(endpoint.as_str())
            .name(endpoint.as_str())
            .method(options.method);
        // Only what was given: every other setting stays the library's default.
        emitter = given(emitter, options.batch_size, EmitterBuilder::batch_size);
        emitter = given(emitter, options.byte_limit, EmitterBuilder::byte_limit);
        emitter = given(
            emitter,
            options.max_request_events,
            EmitterBuilder::max_request_events,
        );
        emitter = given(
            emitter,
            options.max_request_bytes,
            EmitterBuilder::max_request_bytes,
        );
        emitter = given(
            emitter,
            options.max_in_flight,
            EmitterBuilder::max_in_flight,
        );
        emitter = given(
            emitter,
            options.buffer_capacity,
            EmitterBuilder::buffer_capacity,
        );
        emitter = given(emitter, options.buffer_bytes, EmitterBuilder::buffer_bytes);
        emitter = given(
            emitter,
            options.max_retry_delay,
            EmitterBuilder::max_retry_delay,
        );
        emitter = given(
            emitter,
            options.request_timeout,
            EmitterBuilder::request_timeout,
        );
        for &(code, retry) in &options.retry_codes {
            emitter = emitter.custom_retry_code(code, retry);
        }
        let last = last_delivery.clone();
        emitter = emitter.on_success(move |_| {
            *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        });
        builder = builder.emitter(emitter);
    }
    let tracker = builder
        .build()
        .map_err(|error| RunError::Settings(error.to_string()))?;

    let started = Instant::now();
    let per_producer = options.events / options.producers as u64;
    let rate = options.rate as f64 / options.producers as f64;
    let producers: Vec<_> = (0..options.producers as u64)
        .map(|producer| {
            let count = if producer + 1 == options.producers as u64 {
                options.events - per_producer * producer
            } else {
                per_producer
            };
            let (tracker, kind) = (tracker.clone(), options.event);
            let padding = "x".repeat(options.event_bytes);
            let share = (producer * per_producer, count, rate);
            std::thread::spawn(move || produce(tracker, kind, share, &padding))
        })
        .collect();
    let mut timings = actix_rt::task::spawn_blocking(move || {
        let mut all = Timings::new();
        for producer in producers {
            if let Ok(timings) = producer.join() {
                all.merge(timings);
            }
        }
        all
    })
    .await
    .map_err(failed)?;

    let drain_started = Instant::now();
    tracker
        .flush_with_timeout(options.drain_timeout)
        .await
        .map_err(failed)?;
    let before_shutdown = tracker.stats().await.map_err(failed)?;
    let remaining = options
        .drain_timeout
        .saturating_sub(drain_started.elapsed());
    tracker
        .shutdown(remaining.max(Duration::from_millis(1)))
        .await
        .map_err(failed)?;
    let finished = Instant::now();

    let last = last_delivery
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(finished);
    let seconds = last.duration_since(started).as_secs_f64().max(1e-9);
    // How long after the last `track` returned the last event was delivered.
    let after_tracking = last.saturating_duration_since(drain_started).as_secs_f64();
    let mut emitters = Vec::new();
    let (mut accepted, mut sent, mut queued_at_exit) = (0, 0, 0);
    let mut dropped = DropCounts::default();
    let mut slowest_sent = u64::MAX;
    for (handle, report) in tracker.emitters().iter().zip(&before_shutdown.emitters) {
        let mut stats: EmitterStats = handle.final_stats().unwrap_or_default();
        // Events the fan-out could not hand over count as this emitter's capacity drops.
        stats.received += report.refused;
        stats.dropped.capacity += report.refused;
        let emitter_queued = stats.queued + stats.in_flight;
        accepted += stats.accepted();
        sent += stats.sent;
        queued_at_exit += emitter_queued;
        dropped = dropped.plus(&stats.dropped);
        slowest_sent = slowest_sent.min(stats.sent);
        let mut entry = serde_json::to_value(&stats).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut entry {
            fields.insert("endpoint".into(), json!(handle.name()));
            fields.insert("accepted".into(), json!(stats.accepted()));
            fields.insert("queued_at_exit".into(), json!(emitter_queued));
        }
        emitters.push(entry);
    }
    let (cpu_s, max_rss_kb) = process_usage();
    let summary = json!({
        "events": options.events,
        "accepted": accepted,
        "sent": sent,
        "dropped": drops_json(&dropped),
        "queued_at_exit": queued_at_exit,
        "seconds": seconds,
        "tracking_seconds": drain_started.duration_since(started).as_secs_f64(),
        "last_delivery_after_tracking_s": after_tracking,
        "events_per_s": slowest_sent as f64 / seconds,
        "track_ns_p50": timings.percentile(0.50),
        "track_ns_p99": timings.percentile(0.99),
        "cpu_s": cpu_s,
        "max_rss_kb": max_rss_kb,
        "refused_by_tracker": before_shutdown.refused,
        "emitters": emitters,
    });
    Ok(summary.to_string())
}
