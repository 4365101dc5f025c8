//! An actix-web app tracked with snowplow-actix, run the way it runs in production: the
//! tracking middleware, a handler that tracks a structured event through the
//! request-scoped tracker, a status route showing the tracker's health, and
//! [`Serve`](snowplow_actix::web::Serve), which serves until SIGTERM or SIGINT and then
//! drains the server and the tracker within one budget.
//!
//! Without arguments it runs by itself on 127.0.0.1: an embedded collector (a tiny
//! actix-web server answering `POST /com.snowplowanalytics.snowplow/tp2` and `GET /i`),
//! the app, and a client that browses the app and then sends the process SIGTERM, as
//! Kubernetes would (on unix; elsewhere it stops the server through its handle). It checks
//! that the collector received every event and exits.
//!
//! ```text
//! cargo run --example actix_web
//! ```
//!
//! Serve mode: `--bind HOST:PORT --collector URL` serves until SIGTERM or SIGINT (Ctrl-C):
//! `GET /` is an HTML page and a page view, `POST /buy` (any body) a structured event,
//! `GET /health` answers 200 untracked and `GET /status` the tracker's health as JSON. The
//! last line on stdout is the shutdown report as one JSON object (`sent`, `dropped` by
//! reason, `queued`, `timed_out`, …). `RUST_LOG=snowplow_actix=debug` shows the crate's
//! logs (INFO and above by default).
//!
//! Built with the `metrics` feature, both modes install a Prometheus recorder
//! (`metrics-exporter-prometheus`, the recorder alone) before building the tracker, and
//! `GET /metrics` (untracked) answers the tracker's and the emitter's figures in Prometheus
//! text:
//!
//! ```text
//! cargo run --features metrics --example actix_web -- --bind 127.0.0.1:8080 --collector http://127.0.0.1:9090
//! curl http://127.0.0.1:8080/metrics
//! ```
//!
//! ```text
//! cargo run --release --example collector -- --addr 127.0.0.1:9090 &
//! cargo run --release --example actix_web -- --bind 127.0.0.1:8080 --collector http://127.0.0.1:9090
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Map, Value};
use snowplow_actix::web::{RequestTracker, Serve, ServeReport, SnowplowTracking};
use snowplow_actix::{DropCounts, EmitterBuilder, Structured, Tracker};

type Error = Box<dyn std::error::Error>;

const USAGE: &str = "usage: actix_web [--bind HOST:PORT --collector URL]

Without arguments: runs by itself against an embedded collector on 127.0.0.1 and exits.
  --bind HOST:PORT   serve on this address until SIGTERM or SIGINT
  --collector URL    the Snowplow collector's endpoint (e.g. http://127.0.0.1:9090)";

/// How the example runs.
enum Mode {
    SelfContained,
    Serve { bind: SocketAddr, collector: String },
}

fn parse(args: &[String]) -> Result<Mode, String> {
    let mut bind = None;
    let mut collector = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => {
                let text = value()?;
                bind = Some(
                    text.parse()
                        .map_err(|error| format!("--bind {text}: {error}"))?,
                );
            }
            "--collector" => collector = Some(value()?.clone()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    match (bind, collector) {
        (None, None) => Ok(Mode::SelfContained),
        (Some(bind), Some(collector)) => Ok(Mode::Serve { bind, collector }),
        _ => Err("--bind and --collector go together".to_owned()),
    }
}

fn main() {
    std::process::exit(run(std::env::args().skip(1).collect()));
}

/// The example with `args` (its command line without the program): the exit code. (The
/// tests run it too.)
pub(crate) fn run(args: Vec<String>) -> i32 {
    // The crate's logs, as an application turns them on: INFO and above unless RUST_LOG
    // says otherwise (on stderr: stdout ends with the report).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return 0;
    }
    let mode = match parse(&args) {
        Ok(mode) => mode,
        Err(error) => {
            eprintln!("error: {error}\n\n{USAGE}");
            return 2;
        }
    };
    let outcome = actix_web::rt::System::new().block_on(async move {
        // Before the tracker is built: its figures are registered with this recorder.
        let metrics = Metrics::install()?;
        match mode {
            Mode::SelfContained => self_contained(metrics).await,
            Mode::Serve { bind, collector } => serve(bind, &collector, metrics).await,
        }
    });
    if let Err(error) = outcome {
        eprintln!("error: {error}");
        return 1;
    }
    0
}

/// With the `metrics` feature: the Prometheus recorder, rendered on `GET /metrics`.
#[cfg(feature = "metrics")]
#[derive(Clone)]
struct Metrics(metrics_exporter_prometheus::PrometheusHandle);

#[cfg(feature = "metrics")]
impl Metrics {
    /// Installs a Prometheus recorder as the process's, the request durations in buckets.
    fn install() -> Result<Self, Error> {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        use snowplow_actix::metrics::{EMITTER_REQUEST_DURATION_SECONDS, REQUEST_DURATION_BUCKETS};
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(EMITTER_REQUEST_DURATION_SECONDS.to_owned()),
                &REQUEST_DURATION_BUCKETS,
            )?
            .install_recorder()?;
        Ok(Self(handle))
    }

    /// `GET /metrics`: the figures in Prometheus text.
    fn routes(&self, config: &mut web::ServiceConfig) {
        config
            .app_data(web::Data::new(self.clone()))
            .route("/metrics", web::get().to(render_metrics));
    }

    fn exclude(tracking: SnowplowTracking) -> SnowplowTracking {
        tracking.exclude_path("/metrics")
    }
}

/// The figures in Prometheus text (the recorder's upkeep first: this example has no
/// task of its own for it).
#[cfg(feature = "metrics")]
async fn render_metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    metrics.0.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.0.render())
}

/// Without the `metrics` feature: no recorder, no `/metrics`.
#[cfg(not(feature = "metrics"))]
#[derive(Clone)]
struct Metrics;

#[cfg(not(feature = "metrics"))]
impl Metrics {
    fn install() -> Result<Self, Error> {
        Ok(Self)
    }

    fn routes(&self, _: &mut web::ServiceConfig) {}

    fn exclude(tracking: SnowplowTracking) -> SnowplowTracking {
        tracking
    }
}

/// The tracker, built once, outside the server's factory: every worker shares it.
fn tracker(collector: &str) -> Result<Tracker, Error> {
    Ok(Tracker::builder("example")
        .app_id("shop")
        .emitter(EmitterBuilder::new(collector).name("collector"))
        .build()?)
}

/// The app: its routes, behind the tracking middleware.
fn server(
    tracker: &Tracker,
    bind: SocketAddr,
    metrics: Metrics,
) -> Result<(Server, SocketAddr), Error> {
    // 127.0.0.1 is trusted as a reverse proxy here, so its `X-Forwarded-For` counts.
    let tracking = SnowplowTracking::new(tracker.clone())
        .trusted_proxy(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .exclude_path("/health")
        .exclude_path("/status")
        .user_id(|request| {
            let user = request.headers().get("x-user-id")?;
            user.to_str().ok().map(str::to_owned)
        });
    let tracking = Metrics::exclude(tracking);
    let status = web::Data::new(tracker.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(status.clone())
            .wrap(tracking.clone())
            .route("/", web::get().to(home))
            .route("/shoes", web::get().to(shoes))
            .route("/buy", web::post().to(buy))
            .route("/basket/{item}", web::post().to(add_to_basket))
            .route("/health", web::get().to(HttpResponse::Ok))
            .route("/status", web::get().to(health))
            .configure(|config| metrics.routes(config))
    })
    .workers(2)
    // `Serve` owns the signals and the shutdown budget.
    .disable_signals()
    .bind(bind)?;
    let addr = server.addrs()[0];
    Ok((server.run(), addr))
}

/// Serve mode: until SIGTERM or SIGINT, then the report as the last line.
async fn serve(bind: SocketAddr, collector: &str, metrics: Metrics) -> Result<(), Error> {
    let tracker = tracker(collector)?;
    let (server, addr) = server(&tracker, bind, metrics)?;
    eprintln!("app listening on http://{addr}, tracking to {collector}");
    let report = Serve::new(tracker).run(server).await?;
    println!("{}", summary(&report));
    Ok(())
}

/// The self-contained run: an embedded collector, the app, a client browsing it and a
/// SIGTERM at the end.
async fn self_contained(metrics: Metrics) -> Result<(), Error> {
    let collector = Collector::start()?;
    println!("collector listening on http://{}", collector.addr);
    // Batches of 10 and a flush every 10 s: the few events below stay buffered until the
    // shutdown drains them.
    let tracker = tracker(&format!("http://{}", collector.addr))?;
    let (server, addr) = server(
        &tracker,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        metrics,
    )?;
    println!("app listening on http://{addr}");
    let traffic = actix_rt::spawn(browse(addr, server.handle()));

    let report = Serve::new(tracker).run(server).await?;
    traffic.await??;

    let events = collector.events();
    println!("the collector received {} events:", events.len());
    for event in &events {
        println!("  {}", describe(event));
    }
    collector.handle.stop(true).await;
    let sent: u64 = sent(&report);
    if events.len() != 7 || sent != 7 || report.shutdown.dropped.total() != 0 {
        return Err(format!(
            "expected 7 events sent and received; sent {sent}, received {}",
            events.len()
        )
        .into());
    }
    println!("{}", summary(&report));
    Ok(())
}

async fn home() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><title>shop</title><h1>shop</h1><form method=post action=/buy><button>buy</button></form>")
}

async fn shoes() -> HttpResponse {
    HttpResponse::Ok().body("shoes")
}

/// `GET /status`: the tracker's health (for a status page and alerts, not readiness).
async fn health(tracker: web::Data<Tracker>) -> HttpResponse {
    HttpResponse::Ok().json(tracker.health().await)
}

/// Tracks `shop/buy` with the request's subject. A tracking error never fails the
/// request.
async fn buy(tracking: RequestTracker) -> HttpResponse {
    track(&tracking, Structured::new("shop", "buy"));
    HttpResponse::Ok().body("thank you")
}

/// Tracks `shop/add-to-basket` with the request's subject.
async fn add_to_basket(tracking: RequestTracker, item: web::Path<String>) -> HttpResponse {
    track(
        &tracking,
        Structured::new("shop", "add-to-basket").map(|event| event.label(item.as_str())),
    );
    HttpResponse::Created().finish()
}

fn track(tracking: &RequestTracker, event: Result<Structured, snowplow_actix::EventError>) {
    match event {
        Ok(event) => {
            if let Err(error) = tracking.track(event) {
                tracing::warn!(%error, "not tracked");
            }
        }
        Err(error) => tracing::warn!(%error, "invalid event"),
    }
}

/// Browses the app: 4 page views (one forwarded by the "proxy"), 3 structured events, an
/// excluded health check and a status check; then stops the process as a deploy does.
async fn browse(app: SocketAddr, server: ServerHandle) -> Result<(), String> {
    let result = requests(app).await;
    stop(server);
    result
}

/// SIGTERM to this process (what Kubernetes, systemd and `docker stop` send).
#[cfg(unix)]
fn stop(_: ServerHandle) {
    use nix::sys::signal::{kill, Signal};
    if let Err(error) = kill(nix::unistd::Pid::this(), Signal::SIGTERM) {
        eprintln!("cannot signal this process: {error}");
    }
}

#[cfg(not(unix))]
fn stop(server: ServerHandle) {
    drop(server.stop(true));
}

async fn requests(app: SocketAddr) -> Result<(), String> {
    let client = awc::Client::default();
    let base = format!("http://{app}");
    let ua = ("user-agent", "Mozilla/5.0 (example)");
    let lang = ("accept-language", "en-GB,en;q=0.8");
    let requests = [
        client
            .get(format!("{base}/"))
            .insert_header(ua)
            .insert_header(lang),
        client
            .get(format!("{base}/shoes?colour=red"))
            .insert_header(ua)
            .insert_header(("referer", format!("{base}/"))),
        client
            .get(format!("{base}/shoes?colour=blue"))
            .insert_header(ua)
            .insert_header(("x-forwarded-for", "198.51.100.7")),
        client
            .post(format!("{base}/basket/red-shoes"))
            .insert_header(ua)
            .insert_header(("x-user-id", "user-42")),
        client
            .post(format!("{base}/basket/blue-shoes"))
            .insert_header(ua)
            .insert_header(("x-user-id", "user-42")),
        client
            .post(format!("{base}/buy"))
            .insert_header(ua)
            .insert_header(("x-user-id", "user-42")),
        client.get(format!("{base}/health")),
        client.get(format!("{base}/status")),
        client.get(format!("{base}/")).insert_header(lang),
    ];
    for request in requests {
        let url = request.get_uri().to_string();
        let response = request
            .send()
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        println!("{} {url}", response.status());
        if !response.status().is_success() {
            return Err(format!("{url}: {}", response.status()));
        }
    }
    show_metrics(&client, &base).await
}

/// With the `metrics` feature: `GET /metrics`, and the tracker's and emitter's lines of it.
#[cfg(feature = "metrics")]
async fn show_metrics(client: &awc::Client, base: &str) -> Result<(), String> {
    let url = format!("{base}/metrics");
    let mut response = client
        .get(&url)
        .send()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    let body = response
        .body()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    let text = String::from_utf8_lossy(&body);
    let ours: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("snowplow_") && !line.contains("_bucket"))
        .collect();
    println!("{} {url}: {} figures", response.status(), ours.len());
    for line in &ours {
        println!("  {line}");
    }
    if !ours
        .iter()
        .any(|line| line.starts_with("snowplow_tracker_events_tracked_total{tracker=\"example\"}"))
    {
        return Err(format!("{url}: no snowplow_tracker_events_tracked_total"));
    }
    Ok(())
}

#[cfg(not(feature = "metrics"))]
async fn show_metrics(_: &awc::Client, _: &str) -> Result<(), String> {
    Ok(())
}

/// Events every emitter sent since the start.
fn sent(report: &ServeReport) -> u64 {
    report
        .stats
        .emitters
        .iter()
        .filter_map(|emitter| emitter.stats.as_ref())
        .map(|stats| stats.sent)
        .sum()
}

/// The shutdown report as one JSON line: what was tracked, sent and dropped since the start
/// (by reason), what was left, and how the shutdown went.
fn summary(report: &ServeReport) -> Value {
    let dropped = report
        .stats
        .emitters
        .iter()
        .filter_map(|emitter| emitter.stats.as_ref())
        .fold(DropCounts::default(), |sum, stats| sum.plus(&stats.dropped));
    json!({
        "signal": report.signal,
        "tracked": report.stats.tracked,
        "refused": report.stats.refused,
        "sent": sent(report),
        "dropped": dropped,
        "queued": report.shutdown.queued,
        "outcome_unknown": report.shutdown.outcome_unknown,
        "timed_out": report.shutdown.timed_out,
        "sent_while_draining": report.shutdown.sent,
        "server_drained": report.server_drained,
        "cut": report.cut,
        "shutdown_ms": report.shutdown_ms,
    })
}

/// One line per event: its type and the fields this example sets.
fn describe(event: &Map<String, Value>) -> String {
    let field = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or("-");
    let what = match field("e") {
        "pv" => format!("page view  {}", field("url")),
        "se" => format!(
            "structured {}/{} {}",
            field("se_ca"),
            field("se_ac"),
            field("se_la")
        ),
        other => format!("event {other}"),
    };
    format!(
        "{what:<52} ip={} ua={:?} lang={} uid={} refr={}",
        field("ip"),
        field("ua"),
        field("lang"),
        field("uid"),
        field("refr")
    )
}

/// A tiny Snowplow collector: stores the events it receives and answers 200.
struct Collector {
    addr: SocketAddr,
    handle: ServerHandle,
    events: Arc<Mutex<Vec<Map<String, Value>>>>,
}

impl Collector {
    fn start() -> Result<Self, Error> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let store = web::Data::from(Arc::clone(&events));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(store.clone())
                .route(
                    "/com.snowplowanalytics.snowplow/tp2",
                    web::post().to(collect_post),
                )
                .route("/i", web::get().to(collect_get))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))?;
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(Self {
            addr,
            handle,
            events,
        })
    }

    fn events(&self) -> Vec<Map<String, Value>> {
        self.events
            .lock()
            .map(|events| events.clone())
            .unwrap_or_default()
    }
}

type Store = web::Data<Mutex<Vec<Map<String, Value>>>>;

/// `POST /com.snowplowanalytics.snowplow/tp2`: a `payload_data` envelope of events.
async fn collect_post(store: Store, body: web::Json<Value>) -> HttpResponse {
    let Some(data) = body.get("data").and_then(Value::as_array) else {
        return HttpResponse::BadRequest().body("not a payload_data envelope");
    };
    let received = data.iter().filter_map(Value::as_object).cloned();
    if let Ok(mut events) = store.lock() {
        events.extend(received);
    }
    HttpResponse::Ok().body("ok")
}

/// `GET /i?…`: one event in the query string.
async fn collect_get(store: Store, request: HttpRequest) -> HttpResponse {
    let Ok(query) = web::Query::<Map<String, Value>>::from_query(request.query_string()) else {
        return HttpResponse::BadRequest().body("invalid query");
    };
    if let Ok(mut events) = store.lock() {
        events.push(query.into_inner());
    }
    HttpResponse::Ok().finish()
}
