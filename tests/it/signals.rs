//! Servers are stopped by signals: an actix-web app (this test binary, re-run as a child
//! process) serves real requests, tracks what they do, and is sent SIGTERM or SIGINT with
//! events still buffered and the collector slow. Every event reaches the collector and the
//! child's last line, its shutdown report, says so; a second signal ends the drain at once
//! and the report says what was dropped.
#![cfg(all(unix, feature = "web"))]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::collector::{Faults, TestCollector};
use actix_web::{web, App, HttpResponse, HttpServer};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use snowplow_actix::web::{RequestTracker, Serve, SnowplowTracking};
use snowplow_actix::{EmitterBuilder, Structured, Tracker};
use tokio::sync::mpsc;

/// Set in the child only: `MODE ENDPOINT`.
const CHILD_ENV: &str = "SNOWPLOW_SIGNALS_CHILD";
/// The child test, run by its name in the test binary.
const CHILD_TEST: &str = "child_serves_until_signalled";
const LISTENING: &str = "signals-child listening ";
const REPORT: &str = "signals-child report ";

/// How the child runs its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// [`Serve`] owns the signals and the budget (what the README shows).
    Serve,
    /// The server's own signal handling, then `tracker.shutdown(..)` once `run()` returns
    /// (actix-server stops the `System` on the way).
    Plain,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Serve => "serve",
            Mode::Plain => "plain",
        }
    }
}

async fn buy(tracking: RequestTracker) -> HttpResponse {
    match Structured::new("shop", "buy").map(|event| tracking.track(event)) {
        Ok(Ok(_)) => HttpResponse::Ok().finish(),
        _ => HttpResponse::InternalServerError().finish(),
    }
}

/// The child: does nothing unless run by one of the tests below. An app as the README
/// shows it, with the library's defaults: a page view per `GET /`, a structured event per
/// `POST /buy`, `/health` untracked. Prints its address, serves until signalled, prints
/// its report as JSON.
#[actix_web::test]
async fn child_serves_until_signalled() {
    let Ok(setting) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, endpoint) = setting.split_once(' ').expect("child: MODE ENDPOINT");
    let tracker = Tracker::builder("signals")
        .app_id("shop")
        .emitter(EmitterBuilder::new(endpoint))
        .build()
        .expect("child: tracker");
    let tracking = SnowplowTracking::new(tracker.clone()).exclude_path("/health");
    let server = HttpServer::new(move || {
        App::new()
            .wrap(tracking.clone())
            .route(
                "/",
                web::get().to(|| async { HttpResponse::Ok().body("<h1>shop</h1>") }),
            )
            .route("/buy", web::post().to(buy))
            .route("/health", web::get().to(HttpResponse::Ok))
    })
    .workers(2)
    .bind(("127.0.0.1", 0))
    .expect("child: bind");
    let addr = server.addrs()[0];
    println!("{LISTENING}{addr}");
    let report = if mode == "serve" {
        let server = server.disable_signals().run();
        let report = Serve::new(tracker)
            .budget(Duration::from_secs(20))
            .run(server)
            .await
            .expect("child: serve");
        serde_json::to_value(&report).unwrap()
    } else {
        server.run().await.expect("child: server");
        let shutdown = tracker
            .shutdown(Duration::from_secs(20))
            .await
            .expect("child: shutdown");
        let stats = tracker.stats().await.expect("child: final stats");
        serde_json::json!({ "shutdown": shutdown, "stats": stats, "cut": false })
    };
    println!("{REPORT}{report}");
}

/// The child process and the lines it prints.
struct Running {
    process: Child,
    lines: mpsc::UnboundedReceiver<String>,
    addr: SocketAddr,
}

impl Running {
    async fn start(mode: Mode, endpoint: &str) -> Running {
        let mut process = crate::common::support::child_test(module_path!(), CHILD_TEST)
            .env(CHILD_ENV, format!("{} {endpoint}", mode.as_str()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        let mut lines = crate::common::support::pipe_lines(process.stdout.take().unwrap());
        let listening = next_with(&mut lines, LISTENING).await;
        Running {
            process,
            lines,
            addr: listening.parse().expect("the child's address"),
        }
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.process.id() as i32), signal).expect("signal the child");
    }

    /// Waits for the child's report and its exit.
    async fn finish(mut self) -> (Value, ExitStatus) {
        let report = next_with(&mut self.lines, REPORT).await;
        let mut process = self.process;
        let status = actix_rt::task::spawn_blocking(move || process.wait())
            .await
            .unwrap()
            .unwrap();
        (
            serde_json::from_str(&report).expect("the report is JSON"),
            status,
        )
    }
}

/// The rest of the next line holding `prefix` (the harness may print before it).
async fn next_with(lines: &mut mpsc::UnboundedReceiver<String>, prefix: &str) -> String {
    let wait = async {
        while let Some(line) = lines.recv().await {
            if let Some((_, rest)) = line.split_once(prefix) {
                return rest.to_owned();
            }
        }
        panic!("the child ended without printing `{prefix}`");
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("no `{prefix}` from the child within 60 s"))
}

/// Browses the child: `views` page views, `buys` purchases and a health check.
async fn browse(app: SocketAddr, views: usize, buys: usize) {
    let client = awc::Client::default();
    for idx in 0..views + buys {
        let request = if idx < views {
            client.get(format!("http://{app}/"))
        } else {
            client.post(format!("http://{app}/buy"))
        };
        let response = request.send().await.expect("the app answers");
        assert_eq!(response.status(), 200);
    }
    let health = client
        .get(format!("http://{app}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

fn number(value: &Value, path: &str) -> u64 {
    value
        .pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} in {value}"))
}

/// A slow collector, the app browsed, one signal: every event is delivered and the report
/// matches what the collector received.
async fn drains_on(mode: Mode, signal: Signal) {
    const VIEWS: usize = 60;
    const BUYS: usize = 45;
    let collector =
        TestCollector::with_faults(Faults::none().with_delay(Duration::from_millis(300))).await;
    let child = Running::start(mode, &collector.endpoint()).await;
    browse(child.addr, VIEWS, BUYS).await;

    child.signal(signal);
    let (report, status) = child.finish().await;

    assert!(status.success(), "{status:?}: {report}");
    let events = collector.events();
    let ids: HashSet<&str> = events.iter().filter_map(|e| e.eid()).collect();
    assert_eq!(ids.len(), VIEWS + BUYS, "every tracked event, once");
    assert_eq!(events.len(), VIEWS + BUYS, "no duplicates");
    let kinds = |kind: &str| events.iter().filter(|e| e.get("e") == Some(kind)).count();
    assert_eq!((kinds("pv"), kinds("se")), (VIEWS, BUYS));
    // The report: everything tracked was sent, some of it during the drain (it was still
    // buffered when the signal came), nothing dropped or left.
    let total = (VIEWS + BUYS) as u64;
    assert_eq!(number(&report, "/stats/tracked"), total, "{report}");
    assert_eq!(number(&report, "/stats/emitters/0/stats/sent"), total);
    assert_eq!(number(&report, "/stats/emitters/0/stats/queued"), 0);
    assert_eq!(number(&report, "/stats/emitters/0/stats/in_flight"), 0);
    let shutdown = &report["shutdown"];
    assert!(
        number(shutdown, "/sent") > 0,
        "nothing was buffered: {report}"
    );
    assert_eq!(number(shutdown, "/queued"), 0);
    assert_eq!(shutdown["timed_out"], false);
    assert_eq!(
        shutdown["dropped"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_u64)
            .sum::<u64>(),
        0
    );
    if mode == Mode::Serve {
        let name = if signal == Signal::SIGTERM {
            "SIGTERM"
        } else {
            "SIGINT"
        };
        assert_eq!(report["signal"], name);
        assert_eq!(
            (report["server_drained"].clone(), report["cut"].clone()),
            (Value::Bool(true), Value::Bool(false))
        );
    }
}

#[actix_rt::test]
async fn sigterm_drains_the_server_then_the_tracker() {
    drains_on(Mode::Serve, Signal::SIGTERM).await;
}

#[actix_rt::test]
async fn sigint_drains_the_server_then_the_tracker() {
    drains_on(Mode::Serve, Signal::SIGINT).await;
}

/// actix-server's own Ctrl-C handling stops the `System` before `run()` returns: the
/// tracker runs on threads of its own, so the shutdown after it still delivers.
#[actix_rt::test]
async fn the_servers_own_signal_handling_loses_nothing_either() {
    drains_on(Mode::Plain, Signal::SIGINT).await;
}

/// With the collector down the drain would last the whole budget (20 s); a second signal
/// ends it at once, and the report counts what was left as dropped.
#[actix_rt::test]
async fn a_second_signal_ends_the_drain_at_once_and_reports_what_is_lost() {
    const BUYS: usize = 7;
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    let child = Running::start(Mode::Serve, &collector.endpoint()).await;
    browse(child.addr, 0, BUYS).await;
    // Below a batch, so nothing was sent before the signal.
    assert_eq!(collector.request_count(), 0);

    child.signal(Signal::SIGTERM);
    // The drain has begun once the collector sees its first attempt.
    collector
        .wait_for_requests(1, Duration::from_secs(30))
        .await
        .unwrap();
    let second = Instant::now();
    child.signal(Signal::SIGTERM);
    let (report, status) = child.finish().await;
    let took = second.elapsed();

    assert!(status.success(), "{status:?}: {report}");
    assert!(
        took < Duration::from_secs(4),
        "{took:?} after the second signal"
    );
    assert_eq!(report["cut"], true, "{report}");
    assert_eq!(report["signal"], "SIGTERM");
    let shutdown = &report["shutdown"];
    // Dropped as shutdown, or, when the cut came while a request awaited its answer,
    // reported as of unknown outcome: never counted as sent, never left out.
    assert_eq!(
        number(shutdown, "/dropped/shutdown") + number(shutdown, "/outcome_unknown"),
        BUYS as u64,
        "{report}"
    );
    assert_eq!(
        (number(shutdown, "/sent"), number(shutdown, "/queued")),
        (0, 0)
    );
    assert_eq!(shutdown["timed_out"], true);
    assert_eq!(number(&report, "/stats/tracked"), BUYS as u64);
    assert_eq!(
        number(&report, "/stats/emitters/0/stats/dropped/shutdown")
            + number(&report, "/stats/emitters/0/stats/outcome_unknown"),
        BUYS as u64
    );
    assert_eq!(collector.accepted_count(), 0);
}
