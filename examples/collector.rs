//! A minimal local Snowplow collector, for development and for reproducing the benchmark
//! figures: it validates and counts the events it receives and prints its stats.
//!
//! ```text
//! cargo run --release --example collector -- --addr 127.0.0.1:9090 --workers 2
//! ```
//!
//! It prints `listening on ADDR` first, then a line of stats every second while events
//! arrive (unless `--quiet`), and the final stats as one JSON object on Ctrl-C (or
//! SIGTERM); with `--print`, these go to stderr and stdout has each accepted event. Then
//! point a tracker or the load generator at it:
//!
//! ```text
//! cargo run --release --example loadgen -- --endpoint http://127.0.0.1:9090 --events 100000
//! curl -s http://127.0.0.1:9090/stats
//! curl -s -X POST http://127.0.0.1:9090/reset
//! ```
//!
//! Routes, at the paths of a real Snowplow collector (the endpoint to give a tracker is
//! `http://ADDR`, without a path):
//!
//! * `POST /com.snowplowanalytics.snowplow/tp2`: a `payload_data` 1-0-4 envelope of events,
//!   each an object of string values with `e`, `p` and `tv` (200, or 400);
//! * `GET /i?{query}` or `GET /com.snowplowanalytics.snowplow/i?{query}`: one event (200,
//!   or 400);
//! * `GET /health`: 200 `OK`;
//! * `GET /stats`: the counters as JSON: `requests`, `events`, `bad_requests`, `duplicates`
//!   (events whose `eid` was seen before), `unique_eids`, `post_requests`, `get_requests`,
//!   `post_events`, `get_events`, the requests refused by the faults below:
//!   `too_large` (413), `unavailable` (503), `resets` (no answer), `failures`
//!   (`--fail-status`), and `not_found`, the requests to any other path (404), such as
//!   those of an endpoint with a path a real collector would refuse too;
//! * `POST /reset`: clears them (and the seen ids), restarts the `--down-first-ms` period
//!   and the seeded random stream, and answers the counters as they were.
//!
//! Options: `--addr ADDR` (default `127.0.0.1:0`, a free port), `--workers N` (actix-web
//! worker threads, default 1), `--quiet` (no per-second stats), `--print` (each accepted
//! event as one JSON line on stdout, its fields as received, in order:
//! `{"e":"pv","eid":"…",…}`, one line per element of a POST's `data` and one per GET; the
//! other lines then go to stderr, so stdout can be piped to `jq`). Exit code 2 for bad
//! arguments.
//!
//! ```text
//! cargo run --example collector -- --addr 127.0.0.1:9090 --print | jq -c '{e, eid}'
//! ```
//!
//! Faults, to try a tracker against a bad collector (none by default). Each event request
//! is decided in this order, the first that applies wins:
//!
//! 1. `--max-body BYTES`: a POST body over BYTES is answered 413;
//! 2. `--down-first-ms T`: for the first T ms after the start (or the last `/reset`),
//!    answered 503;
//! 3. `--reset-rate P`: a share P of the requests get no answer at all: the collector
//!    drops the connection without writing a response head. While P is above 0 every
//!    connection is accepted with `SO_LINGER` 0, so the drop is a TCP RST (and so is any
//!    other close by the collector, such as an idle keep-alive connection timing out). The
//!    client sees a connection reset (`curl` exits 56, "Connection reset by peer");
//! 4. `--fail-rate P`: a share P of the rest are answered `--fail-status CODE` (default
//!    500);
//! 5. the rest are answered 200, or 400 when invalid.
//!
//! The two shares are drawn from a random stream seeded by `--seed S` (default 0), so a
//! client sending the same requests in the same order meets the same faults. Refused
//! requests count in `requests`, their events do not count. `--delay-ms M` holds every
//! answer to an event request for M ms (a dropped connection too) *after* it was counted,
//! so a client that times out and sends again makes duplicates, as with a real collector:
//!
//! ```text
//! cargo run --release --example collector -- --addr 127.0.0.1:9090 --fail-rate 0.2 --delay-ms 50
//! ```

#[path = "common/collector.rs"]
pub(crate) mod collector;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use collector::{Collector, CollectorConfig, EventSink, Faults, Stats};

const USAGE: &str = "\
usage: collector [--addr 127.0.0.1:9090] [--workers N] [--quiet] [--print] [faults]

  --addr ADDR          address to listen on (default 127.0.0.1:0: a free port)
  --workers N          actix-web worker threads (default 1)
  --quiet              no stats line every second, only the final stats
  --print              print each accepted event on stdout as one JSON line of its
                       fields ({\"e\":\"pv\",\"eid\":...}); the other lines go to stderr

Endpoint: http://ADDR, without a path. Only the collector paths are served
(POST /com.snowplowanalytics.snowplow/tp2, GET /i); other paths answer 404 and
count as not_found in /stats.

Faults (none by default), decided per event request in this order:
  --max-body BYTES     answer 413 to a POST body over BYTES
  --down-first-ms T    answer 503 for the first T ms after the start or a /reset
  --reset-rate P       drop the connection of a share P (0 to 1) of the requests,
                       without an answer (a TCP RST)
  --fail-rate P        answer --fail-status to a share P (0 to 1) of the rest
  --fail-status CODE   the status of a failed request, 300 to 599 (default 500)
  --seed S             seed of the random stream of --reset-rate and --fail-rate
                       (default 0)
  --delay-ms M         hold every answer to an event request for M ms, after its
                       events were counted
Refused requests do not count their events; /stats counts them as too_large,
unavailable, resets and failures.
";

/// The command line.
pub(crate) struct Options {
    pub(crate) addr: SocketAddr,
    pub(crate) workers: usize,
    pub(crate) quiet: bool,
    /// Each accepted event on stdout, one JSON line each.
    pub(crate) print: bool,
    pub(crate) faults: Faults,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 1,
            quiet: false,
            print: false,
            faults: Faults::default(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match name {
                "--addr" => {
                    let text = value()?;
                    options.addr = text
                        .parse()
                        .map_err(|error| format!("--addr {text}: {error}"))?;
                }
                "--workers" => {
                    let text = value()?;
                    options.workers = match text.parse() {
                        Ok(0) | Err(_) => {
                            return Err(format!("--workers {text}: expected a positive number"))
                        }
                        Ok(workers) => workers,
                    };
                }
                "--quiet" if inline.is_none() => options.quiet = true,
                "--print" if inline.is_none() => options.print = true,
                "--max-body" => options.faults.max_body = Some(number(name, &value()?)?),
                "--down-first-ms" => options.faults.down_first = millis(name, &value()?)?,
                "--reset-rate" => options.faults.reset_rate = share(name, &value()?)?,
                "--fail-rate" => options.faults.fail_rate = share(name, &value()?)?,
                "--fail-status" => {
                    let text = value()?;
                    options.faults.fail_status = match text.parse() {
                        Ok(status @ 300..=599) => status,
                        _ => return Err(format!("--fail-status {text}: expected 300 to 599")),
                    };
                }
                "--seed" => options.faults.seed = number(name, &value()?)?,
                "--delay-ms" => options.faults.delay = millis(name, &value()?)?,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(options)
    }
}

fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{name} {text}: expected a non-negative number"))
}

/// Milliseconds; 0 is none.
fn millis(name: &str, text: &str) -> Result<Option<Duration>, String> {
    let ms: u64 = number(name, text)?;
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

/// A share from 0 to 1.
fn share(name: &str, text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{name} {text}: expected a share from 0 to 1")),
    }
}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("collector: {error}\n\n{USAGE}");
            std::process::exit(2);
        }
    };

    let collector = Collector::start(CollectorConfig {
        addr: options.addr,
        workers: options.workers,
        // A sink only counts: keeping every event would grow memory over a load test.
        keep_events: false,
        faults: options.faults.clone(),
        print: options.print.then(EventSink::stdout),
    })?;
    // With --print, stdout carries the events alone.
    let say: fn(&str) = if options.print {
        |line| eprintln!("{line}")
    } else {
        |line| println!("{line}")
    };
    say(&format!("listening on {}", collector.addr()));
    if options.faults.any() {
        eprintln!("faults: {:?}", options.faults);
    }

    if !options.quiet {
        let stats = collector.stats_reader();
        actix_rt::spawn(async move {
            let mut ticks = actix_rt::time::interval(Duration::from_secs(1));
            let mut last = (Stats::default(), Instant::now());
            loop {
                ticks.tick().await;
                let now = (stats(), Instant::now());
                // Quiet while nothing arrives; `/reset` makes the counters go down.
                if (now.0.requests, now.0.not_found) != (last.0.requests, last.0.not_found) {
                    say(&progress(&last, &now));
                }
                last = now;
            }
        });
    }

    stop_signal().await?;
    let stats = collector.stats();
    collector.stop().await?;
    say(&serde_json::to_string(&stats)?);
    Ok(())
}

/// One stats line: the counters and the event rate since the previous line.
fn progress(last: &(Stats, Instant), now: &(Stats, Instant)) -> String {
    let (before, then) = last;
    let (stats, at) = now;
    let seconds = at.duration_since(*then).as_secs_f64().max(1e-3);
    let rate = stats.events.saturating_sub(before.events) as f64 / seconds;
    let mut line = format!(
        "requests={} (post={} get={}) events={} ({rate:.0}/s) bad_requests={} duplicates={} unique_eids={}",
        stats.requests,
        stats.post_requests,
        stats.get_requests,
        stats.events,
        stats.bad_requests,
        stats.duplicates,
        stats.unique_eids,
    );
    let refused = stats.too_large + stats.unavailable + stats.resets + stats.failures;
    if refused > 0 {
        line += &format!(
            " refused: too_large={} unavailable={} resets={} failures={}",
            stats.too_large, stats.unavailable, stats.resets, stats.failures,
        );
    }
    if stats.not_found > 0 {
        line += &format!(" not_found={}", stats.not_found);
    }
    line
}

/// Ctrl-C, or SIGTERM on Unix (what `kill` and benchmark scripts send).
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use actix_rt::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let ctrl_c = std::pin::pin!(actix_rt::signal::ctrl_c());
        let term = std::pin::pin!(term.recv());
        match futures::future::select(ctrl_c, term).await {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(_) => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        actix_rt::signal::ctrl_c().await
    }
}
