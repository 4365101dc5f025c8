//! A minimal local Snowplow collector, for development and for reproducing the benchmark
//! figures: it validates and counts the events it receives and prints its stats.
//!
//! ```text
//! cargo run --release --example collector -- --addr 127.0.0.1:9090 --workers 2
//! ```
//!
//! It prints `listening on ADDR` first, then a line of stats every second while events
//! arrive (unless `--quiet`), and the final stats as one JSON object on Ctrl-C (or
//! SIGTERM). Then point a tracker or the load generator at it:
//!
//! ```text
//! cargo run --release --example loadgen -- --endpoint http://127.0.0.1:9090 --events 100000
//! curl -s http://127.0.0.1:9090/stats
//! curl -s -X POST http://127.0.0.1:9090/reset
//! ```
//!
//! Routes:
//!
//! * `POST {prefix}/com.snowplowanalytics.snowplow/tp2`: a `payload_data` 1-0-4 envelope of
//!   events, each an object of string values with `e`, `p` and `tv` (200, or 400);
//! * `GET {prefix}/i?{query}`: one event (200, or 400);
//! * `GET /stats`: the counters as JSON: `requests`, `events`, `bad_requests`, `duplicates`
//!   (events whose `eid` was seen before), `unique_eids`, `post_requests`, `get_requests`,
//!   `post_events`, `get_events`;
//! * `POST /reset`: clears them (and the seen ids) and answers them as they were.
//!
//! Options: `--addr ADDR` (default `127.0.0.1:0`, a free port), `--workers N` (actix-web
//! worker threads, default 1), `--quiet` (no per-second stats). Exit code 2 for bad
//! arguments.

#[path = "common/collector.rs"]
mod collector;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use collector::{Collector, CollectorConfig, Stats};

const USAGE: &str = "\
usage: collector [--addr 127.0.0.1:9090] [--workers N] [--quiet]

  --addr ADDR    address to listen on (default 127.0.0.1:0: a free port)
  --workers N    actix-web worker threads (default 1)
  --quiet        no stats line every second, only the final stats
";

/// The command line.
struct Options {
    addr: SocketAddr,
    workers: usize,
    quiet: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 1,
            quiet: false,
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
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(options)
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
    })?;
    println!("listening on {}", collector.addr());

    if !options.quiet {
        let stats = collector.stats_reader();
        actix_rt::spawn(async move {
            let mut ticks = actix_rt::time::interval(Duration::from_secs(1));
            let mut last = (Stats::default(), Instant::now());
            loop {
                ticks.tick().await;
                let now = (stats(), Instant::now());
                // Quiet while nothing arrives; `/reset` makes the counters go down.
                if now.0.requests != last.0.requests {
                    println!("{}", progress(&last, &now));
                }
                last = now;
            }
        });
    }

    stop_signal().await?;
    let stats = collector.stats();
    collector.stop().await?;
    println!("{}", serde_json::to_string(&stats)?);
    Ok(())
}

/// One stats line: the counters and the event rate since the previous line.
fn progress(last: &(Stats, Instant), now: &(Stats, Instant)) -> String {
    let (before, then) = last;
    let (stats, at) = now;
    let seconds = at.duration_since(*then).as_secs_f64().max(1e-3);
    let rate = stats.events.saturating_sub(before.events) as f64 / seconds;
    format!(
        "requests={} (post={} get={}) events={} ({rate:.0}/s) bad_requests={} duplicates={} unique_eids={}",
        stats.requests,
        stats.post_requests,
        stats.get_requests,
        stats.events,
        stats.bad_requests,
        stats.duplicates,
        stats.unique_eids,
    )
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
