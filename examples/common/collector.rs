//! A minimal Snowplow collector embedded in the examples: an actix-web server on 127.0.0.1
//! that validates and counts the events it receives.
//!
//! Routes, at the paths a real Snowplow collector serves, so an emitter whose endpoint
//! would miss a real collector misses this one too:
//!
//! * `POST /com.snowplowanalytics.snowplow/tp2`: a `payload_data` 1-0-4 envelope whose
//!   `data` is a non-empty array of events, each an object of string values with `e`, `p`
//!   and `tv`. Answered 200, or 400 for an invalid body.
//! * `GET /i?{query}` (or `GET /com.snowplowanalytics.snowplow/i?{query}`): one
//!   form-encoded event with `e`, `p` and `tv`. Answered 200 (a 1x1 GIF), or 400.
//!
//! Requests are parsed by `envelope.rs` beside this file, the parser the test collector
//! (`tests/common/collector.rs`) uses too; its module docs give the rules.
//! * `GET /health`: 200 `OK`.
//! * `GET /stats`: the counters as JSON ([`Stats`]); `POST /reset`: clears the counters, the
//!   seen event ids and the kept events, and answers the counters as they were.
//!
//! Any other path is answered 404 and counted as `not_found`; another method on one of
//! these paths is answered 405 and not counted. Events are counted only when their request
//! is accepted; an event whose `eid` was seen before is counted as a duplicate. The
//! handlers parse outside the one lock they take per request and log nothing, so the
//! collector can be the sink of a load test. [`CollectorConfig::print`] hands each
//! accepted event, as one JSON line ([`event_line`]), to an [`EventSink`].
//!
//! [`Faults`] (none by default) make it a bad collector, to watch a tracker cope. Each event
//! request is decided in this order: a POST body over `max_body` bytes is answered 413;
//! then, for `down_first` after the start (or the last reset), 503; then a `reset_rate`
//! share of requests get no answer at all, their connection dropped (a TCP RST, see
//! [`Faults::reset_rate`]); then a `fail_rate` share of the rest are answered
//! `fail_status`; what is left is accepted (200) or invalid (400). Refused requests count
//! as `requests` but their events do not count. `delay` holds every answer to an event
//! request (a dropped connection too) after it was decided and counted, so a client that
//! gives up during the delay and sends again makes duplicates, as with a real collector.
//! The two shares are drawn from a random stream seeded with `seed`, so the same requests
//! in the same order meet the same faults; `/reset` restarts the stream and the
//! `down_first` period.
//!
//! Start it and stop it from async code running in an actix `System`:
//!
//! ```ignore
//! let collector = Collector::start(CollectorConfig::default())?;
//! // … point emitters at `collector.endpoint()` (`http://127.0.0.1:PORT`) …
//! println!("{:?}", collector.stats());
//! collector.stop().await?;
//! ```

// Each example uses part of this module; the rest is not dead code in the others.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Serialize;
use tokio::sync::Notify;

use envelope::{Event, GET_PATH, PIXEL_GIF, POST_PATH};

/// The parser of what a collector receives, shared with the test collector.
#[path = "envelope.rs"]
mod envelope;

/// The other path of GET requests a Snowplow collector serves.
const VENDOR_GET_PATH: &str = "/com.snowplowanalytics.snowplow/i";
/// The largest POST body read.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How to run a [`Collector`].
#[derive(Debug, Clone)]
pub(crate) struct CollectorConfig {
    /// Where to listen (default `127.0.0.1:0`, a free port).
    pub(crate) addr: SocketAddr,
    /// actix-web worker threads (default 1).
    pub(crate) workers: usize,
    /// Whether to keep every accepted event for [`Collector::events`] (default yes; a load
    /// test sink only counts).
    pub(crate) keep_events: bool,
    /// What goes wrong on purpose (default nothing).
    pub(crate) faults: Faults,
    /// Where each accepted event goes as one JSON line, in arrival order (default nowhere).
    pub(crate) print: Option<EventSink>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 1,
            keep_events: true,
            faults: Faults::default(),
            print: None,
        }
    }
}

/// Receives each accepted event as one JSON line ([`event_line`]), without its newline. It
/// is called outside the collector's lock, from the worker that accepted the event.
#[derive(Clone)]
pub(crate) struct EventSink(Arc<dyn Fn(&str) + Send + Sync>);

impl EventSink {
    /// A sink calling `write` with each line.
    pub(crate) fn new(write: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Arc::new(write))
    }

    /// A sink writing each line to stdout (a write error, such as a closed pipe, is ignored).
    pub(crate) fn stdout() -> Self {
        Self::new(|line| {
            let _ = writeln!(io::stdout().lock(), "{line}");
        })
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventSink")
    }
}

/// One event as a JSON object of its fields, as the collector received them: in wire
/// order, values as strings (`{"e":"pv","eid":"…",…}`).
pub(crate) fn event_line<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut line = String::with_capacity(16 * pairs.len() + 2);
    line.push('{');
    for (idx, (key, value)) in pairs.iter().enumerate() {
        if idx > 0 {
            line.push(',');
        }
        let quoted = |text: &str| serde_json::to_string(text).expect("a str is valid JSON");
        line += &quoted(key.as_ref());
        line.push(':');
        line += &quoted(value.as_ref());
    }
    line.push('}');
    line
}

/// The faults a [`Collector`] injects into event requests; the default injects none. See
/// the module documentation for the order in which they are decided.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Faults {
    /// How long every answer to an event request waits, after the request was counted.
    pub(crate) delay: Option<Duration>,
    /// The share (0 to 1) of event requests answered [`fail_status`](Self::fail_status),
    /// among those not refused otherwise.
    pub(crate) fail_rate: f64,
    /// The status of a failed request (default 500).
    pub(crate) fail_status: u16,
    /// The seed of the random stream that draws the failed and reset requests.
    pub(crate) seed: u64,
    /// The share (0 to 1) of event requests that get no answer: the response head is never
    /// written and the connection is dropped. While this is above 0, every connection is
    /// accepted with `SO_LINGER` 0, so the drop is a TCP RST (any other close by the server,
    /// such as an idle keep-alive connection timing out, is then a RST too).
    pub(crate) reset_rate: f64,
    /// For how long after the start (or the last reset) event requests are answered 503.
    pub(crate) down_first: Option<Duration>,
    /// The largest POST body accepted; longer ones are answered 413.
    pub(crate) max_body: Option<usize>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            delay: None,
            fail_rate: 0.0,
            fail_status: 500,
            seed: 0,
            reset_rate: 0.0,
            down_first: None,
            max_body: None,
        }
    }
}

impl Faults {
    /// Whether any fault is set.
    pub(crate) fn any(&self) -> bool {
        self.delay.is_some()
            || self.fail_rate > 0.0
            || self.reset_rate > 0.0
            || self.down_first.is_some()
            || self.max_body.is_some()
    }
}

/// The collector's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Stats {
    /// Event requests (POST and GET), valid or not.
    pub(crate) requests: u64,
    /// Events accepted, duplicates included.
    pub(crate) events: u64,
    /// Event requests answered 400.
    pub(crate) bad_requests: u64,
    /// Accepted events whose `eid` was seen before.
    pub(crate) duplicates: u64,
    /// Distinct `eid`s accepted.
    pub(crate) unique_eids: u64,
    /// POST requests, valid or not.
    pub(crate) post_requests: u64,
    /// GET requests, valid or not.
    pub(crate) get_requests: u64,
    /// Events accepted in POST requests.
    pub(crate) post_events: u64,
    /// Events accepted in GET requests.
    pub(crate) get_events: u64,
    /// Event requests answered 413: a POST body over [`Faults::max_body`].
    pub(crate) too_large: u64,
    /// Event requests answered 503 during [`Faults::down_first`].
    pub(crate) unavailable: u64,
    /// Event requests whose connection was dropped without an answer
    /// ([`Faults::reset_rate`]).
    pub(crate) resets: u64,
    /// Event requests answered [`Faults::fail_status`] ([`Faults::fail_rate`]).
    pub(crate) failures: u64,
    /// Requests answered 404: a path the collector does not serve.
    pub(crate) not_found: u64,
}

/// One accepted event: how it came, and its name/value pairs in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReceivedEvent {
    /// `"POST"` or `"GET"`.
    pub(crate) method: &'static str,
    /// The request path.
    pub(crate) path: String,
    /// The pairs, in the order they were sent (`stm` included).
    pub(crate) pairs: Vec<(String, String)>,
}

impl ReceivedEvent {
    /// The value of the field `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A running collector. Dropping it stops the server too (without waiting).
pub(crate) struct Collector {
    addr: SocketAddr,
    handle: ServerHandle,
    shared: Arc<Shared>,
    server: actix_rt::task::JoinHandle<io::Result<()>>,
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collector")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Binds `config.addr` and starts serving on the current actix runtime.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    ///
    /// # Panics
    ///
    /// Outside an actix `System` (the server is spawned with `actix_rt::spawn`).
    pub(crate) fn start(config: CollectorConfig) -> io::Result<Self> {
        let resets = config.faults.reset_rate > 0.0;
        let shared = Arc::new(Shared {
            keep_events: config.keep_events,
            print: config.print,
            state: Mutex::new(State::new(config.faults.seed)),
            faults: config.faults,
            waiters: AtomicUsize::new(0),
            changed: Notify::new(),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .default_service(web::to(handle))
        })
        .on_connect(move |connection, _| {
            if resets {
                if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                    // A zero linger never blocks: the kernel sends a RST as the socket closes.
                    #[allow(deprecated)]
                    let _ = stream.set_linger(Some(Duration::ZERO));
                }
            }
        })
        .workers(config.workers.max(1))
        .disable_signals()
        .shutdown_timeout(1)
        .bind(config.addr)?;
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        let server = actix_rt::spawn(server);
        Ok(Self {
            addr,
            handle,
            shared,
            server,
        })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, to build emitters with.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> Stats {
        self.shared.lock().stats()
    }

    /// Reads the counters from anywhere (a task, another thread), while the collector runs.
    pub(crate) fn stats_reader(&self) -> impl Fn() -> Stats + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.lock().stats()
    }

    /// The accepted events so far, in arrival order (none unless `keep_events`).
    pub(crate) fn events(&self) -> Vec<ReceivedEvent> {
        self.shared.lock().events.clone()
    }

    /// Clears the counters, the seen ids and the kept events; returns the counters as they
    /// were.
    pub(crate) fn reset(&self) -> Stats {
        self.shared.reset()
    }

    /// Waits until at least `count` events were accepted since the start (or the last
    /// reset), or `timeout` passes. Returns the counters either way: compare `events`.
    pub(crate) async fn wait_for_events(&self, count: u64, timeout: Duration) -> Stats {
        let deadline = tokio::time::Instant::now() + timeout;
        self.shared.waiters.fetch_add(1, Ordering::SeqCst);
        let stats = loop {
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before checking, so a request counted meanwhile wakes us.
            changed.as_mut().enable();
            let stats = self.stats();
            if stats.events >= count {
                break stats;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                break self.stats();
            }
        };
        self.shared.waiters.fetch_sub(1, Ordering::SeqCst);
        stats
    }

    /// Stops the server, finishing the requests it is answering, and waits until it has.
    ///
    /// # Errors
    ///
    /// When the server failed.
    pub(crate) async fn stop(mut self) -> io::Result<()> {
        self.handle.stop(true).await;
        match (&mut self.server).await {
            Ok(result) => result,
            Err(error) => Err(io::Error::other(error)),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // `stop` sends its command when called; the returned future only waits for it.
        drop(self.handle.stop(false));
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Shared {
    keep_events: bool,
    print: Option<EventSink>,
    faults: Faults,
    state: Mutex<State>,
    /// Tasks in [`Collector::wait_for_events`]: requests notify only when there are some.
    waiters: AtomicUsize,
    changed: Notify,
}

struct State {
    counts: Stats,
    /// `eid`s seen, as 128-bit UUIDs (16 bytes each), and any that are not UUIDs.
    uuids: HashSet<u128>,
    other_ids: HashSet<Box<str>>,
    events: Vec<ReceivedEvent>,
    /// The start, or the last reset: when [`Faults::down_first`] began.
    started: Instant,
    /// Draws the reset and failed requests.
    random: SplitMix64,
}

impl State {
    fn new(seed: u64) -> Self {
        Self {
            counts: Stats::default(),
            uuids: HashSet::new(),
            other_ids: HashSet::new(),
            events: Vec::new(),
            started: Instant::now(),
            random: SplitMix64(seed),
        }
    }

    fn stats(&self) -> Stats {
        Stats {
            unique_eids: (self.uuids.len() + self.other_ids.len()) as u64,
            ..self.counts
        }
    }

    /// Records an accepted event; returns whether its `eid` was new.
    fn see(&mut self, eid: Option<&str>) -> bool {
        match eid {
            None => true,
            Some(eid) => match uuid::Uuid::try_parse(eid) {
                Ok(uuid) => self.uuids.insert(uuid.as_u128()),
                Err(_) if self.other_ids.contains(eid) => false,
                Err(_) => self.other_ids.insert(eid.into()),
            },
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reset(&self) -> Stats {
        let mut state = self.lock();
        let before = state.stats();
        *state = State::new(self.faults.seed);
        before
    }

    /// Decides the answer to one event request and counts it: a POST body over
    /// `max_body` (`too_large`), then the faults, then `parsed` (its events, or why it is
    /// invalid; not looked at when the request is refused).
    fn record(
        &self,
        method: &'static str,
        path: &str,
        too_large: bool,
        parsed: Result<Vec<Event<'_>>, String>,
    ) -> Answer {
        let faults = &self.faults;
        let mut guard = self.lock();
        let state = &mut *guard;
        state.counts.requests += 1;
        let post = method == "POST";
        if post {
            state.counts.post_requests += 1;
        } else {
            state.counts.get_requests += 1;
        }
        let refusal = if too_large {
            state.counts.too_large += 1;
            Some(Answer::TooLarge)
        } else if faults
            .down_first
            .is_some_and(|down| state.started.elapsed() < down)
        {
            state.counts.unavailable += 1;
            Some(Answer::Unavailable)
        } else if faults.reset_rate > 0.0 && state.random.next_f64() < faults.reset_rate {
            state.counts.resets += 1;
            Some(Answer::Reset)
        } else if faults.fail_rate > 0.0 && state.random.next_f64() < faults.fail_rate {
            state.counts.failures += 1;
            Some(Answer::Failed(faults.fail_status))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return refusal;
        }
        let events = match parsed {
            Ok(events) => events,
            Err(reason) => {
                state.counts.bad_requests += 1;
                return Answer::Invalid(reason);
            }
        };
        let accepted = events.len() as u64;
        state.counts.events += accepted;
        if post {
            state.counts.post_events += accepted;
        } else {
            state.counts.get_events += accepted;
        }
        let mut lines = Vec::new();
        for event in events {
            if !state.see(event.get("eid")) {
                state.counts.duplicates += 1;
            }
            if self.print.is_some() {
                lines.push(event_line(&event.pairs));
            }
            if self.keep_events {
                state.events.push(ReceivedEvent {
                    method,
                    path: path.to_owned(),
                    pairs: event.into_owned(),
                });
            }
        }
        drop(guard);
        if let Some(print) = &self.print {
            for line in &lines {
                (print.0)(line);
            }
        }
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.changed.notify_waiters();
        }
        Answer::Accepted
    }

    /// Counts a request to a path the collector does not serve.
    fn not_found(&self) -> HttpResponse {
        self.lock().counts.not_found += 1;
        HttpResponse::NotFound().finish()
    }
}

/// A small seeded random stream (SplitMix64): the same seed draws the same numbers.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// How an event request is answered.
enum Answer {
    /// 200: its events were counted.
    Accepted,
    /// 400, with the reason.
    Invalid(String),
    /// 413: a POST body over [`Faults::max_body`].
    TooLarge,
    /// 503: during [`Faults::down_first`].
    Unavailable,
    /// No answer: the connection is dropped ([`Faults::reset_rate`]).
    Reset,
    /// [`Faults::fail_status`] ([`Faults::fail_rate`]).
    Failed(u16),
}

async fn handle(request: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let path = request.path();
    let method = request.method();
    match path {
        POST_PATH if method == Method::POST => {
            let too_large = shared.faults.max_body.is_some_and(|max| body.len() > max);
            let parsed = if too_large {
                Err(String::new())
            } else {
                parse_post(&body)
            };
            let answer = shared.record("POST", path, too_large, parsed);
            respond(&shared, answer, || {
                HttpResponse::Ok().content_type("text/plain").body("ok")
            })
            .await
        }
        GET_PATH | VENDOR_GET_PATH if method == Method::GET => {
            let parsed = parse_get(request.query_string());
            let answer = shared.record("GET", path, false, parsed);
            respond(&shared, answer, || {
                HttpResponse::Ok().content_type("image/gif").body(PIXEL_GIF)
            })
            .await
        }
        "/health" if method == Method::GET => {
            HttpResponse::Ok().content_type("text/plain").body("OK")
        }
        "/stats" if method == Method::GET => HttpResponse::Ok().json(shared.lock().stats()),
        "/reset" if method == Method::POST => HttpResponse::Ok().json(shared.reset()),
        POST_PATH | GET_PATH | VENDOR_GET_PATH | "/health" | "/stats" | "/reset" => {
            HttpResponse::MethodNotAllowed().finish()
        }
        _ => shared.not_found(),
    }
}

/// Waits [`Faults::delay`], then answers an event request; `accepted` is its 200.
async fn respond(
    shared: &Shared,
    answer: Answer,
    accepted: impl FnOnce() -> HttpResponse,
) -> HttpResponse {
    if let Some(delay) = shared.faults.delay {
        actix_rt::time::sleep(delay).await;
    }
    let text = |mut response: actix_web::HttpResponseBuilder, body: String| {
        response.content_type("text/plain").body(body)
    };
    match answer {
        Answer::Accepted => accepted(),
        Answer::Invalid(reason) => text(HttpResponse::BadRequest(), reason),
        Answer::TooLarge => text(
            HttpResponse::PayloadTooLarge(),
            "the body is over --max-body".to_owned(),
        ),
        Answer::Unavailable => text(
            HttpResponse::ServiceUnavailable(),
            "down (--down-first-ms)".to_owned(),
        ),
        Answer::Failed(status) => text(
            HttpResponse::build(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ),
            "injected failure (--fail-rate)".to_owned(),
        ),
        // A body that fails before its first chunk: actix-http gives up on the connection
        // before it writes the response head, and drops it (a RST, with the zero linger
        // set at connect).
        Answer::Reset => HttpResponse::Ok().streaming(futures::stream::once(async {
            Err::<web::Bytes, _>(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "injected reset (--reset-rate)",
            ))
        })),
    }
}

/// A POST body's events, or why it is invalid ([`envelope::parse_post`]).
fn parse_post(body: &[u8]) -> Result<Vec<Event<'_>>, String> {
    let parsed = envelope::parse_post(body);
    parsed.verdict().map(|()| parsed.events)
}

/// A GET query's event, or why it is invalid ([`envelope::parse_get`]).
fn parse_get(query: &str) -> Result<Vec<Event<'static>>, String> {
    let parsed = envelope::parse_get(query);
    parsed.verdict().map(|()| parsed.events)
}
