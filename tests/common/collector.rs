//! A test collector: a real HTTP server on `127.0.0.1` that speaks the Snowplow collector
//! protocol, records every request, and injects faults on demand.
//!
//! Two servers live here:
//!
//! * [`TestCollector`]: an actix-web `HttpServer` (one worker) bound to `127.0.0.1:0`. It serves
//!   `POST {prefix}/com.snowplowanalytics.snowplow/tp2` (the `payload_data` 1-0-4 envelope) and
//!   `GET {prefix}/i?{query}` (one form-encoded event), where `{prefix}` is any path or none, so
//!   an endpoint such as `http://127.0.0.1:PORT/sub` works. It checks each request's structure,
//!   records it, decides its status from the configured [`Faults`], and answers.
//! * [`RawCollector`]: a bare TCP listener for what an HTTP server cannot do: reset the
//!   connection, answer garbage, close in the middle of the head or of the body, or never answer
//!   ([`RawBehaviour`]).
//!
//! Both must be started inside an actix runtime (`#[actix_rt::test]` or an actix `System`):
//! they spawn their tasks with `actix_rt::spawn`.
//!
//! # Usage
//!
//! ```ignore
//! let collector = TestCollector::with_faults(Faults::none()).await;
//! // Build an emitter against `collector.endpoint()` (`http://127.0.0.1:PORT`), track events…
//! let events = collector.wait_for_events(3, Duration::from_secs(5)).await.unwrap();
//! assert_eq!(events[0].get("e"), Some("pv"));
//!
//! // Faults are set at start or changed while running:
//! collector.set_faults(Faults::statuses([500, 500, 200]));
//! collector.stop().await;
//! ```
//!
//! Waiting never sleeps: [`TestCollector::wait_for_events`] and
//! [`TestCollector::wait_for_requests`] wake on each recorded request and return `Err` with a
//! description of what was recorded when the timeout passes, so a test fails instead of hanging.
//!
//! # Validation (a light structural check, not the Iglu schema)
//!
//! The rules of `examples/common/envelope.rs` (the parser shared with the example collector,
//! [`envelope`]): a POST body is exactly a `payload_data` envelope of events of string values,
//! a GET query is form-decoded strictly, and every event has non-empty `e`, `p` and `tv` and
//! no `stm` but one of 13 digits. Then this collector's own:
//!
//! * POST: `Content-Type` starts with `application/json`, and every event has a `stm`.
//! * GET: one event per request, at `{prefix}/i`.
//! * Any other method or path is answered 405 / 404.
//!
//! An invalid request is answered at once (400, 404 or 405), recorded with `valid == false` and
//! `error` set, and never reaches the faults: it is not delayed and not counted in `n` (below).
//! Its events are never accepted.
//!
//! # When a request is recorded
//!
//! A request is recorded when it arrives, with the status it will be answered, and its events
//! are accepted then if that status is 2xx; a delay ([`Faults::with_delay`]) only postpones the
//! answer. So a client that gives up during the delay still has its events stored, like a real
//! collector that stored a batch but whose answer was lost: that is how duplicates are produced
//! on purpose.
//! `RecordedRequest::index` is the arrival order and equals the position in `requests()`.
//!
//! # Faults
//!
//! [`Faults`] is one function from each valid request to its [`Answer`] (a status, a delay, a
//! `Retry-After`), built with named constructors: [`Faults::none`], [`Faults::always`],
//! [`Faults::statuses`], [`Faults::fail_first`], [`Faults::down_for`],
//! [`Faults::failure_rate`], [`Faults::max_body`] and [`Faults::decide`] (by content); then
//! `a.or(b)` (`b` where `a` gives no status), and [`Faults::with_delay`],
//! [`Faults::with_delay_first`] and [`Faults::with_retry_after`]. What applies first is what
//! is written first; a request no rule fails is answered 200.
//!
//! A rule sees the request's `n`, its ordinal (0-based) among the valid requests since the
//! faults were installed (at start, or by the last [`TestCollector::set_faults`]), how long
//! after that it arrived, its method, its length and its events. Installing faults restarts
//! both.
//!
//! Answers: 2xx to POST is `ok`, 2xx to GET a 1x1 GIF; any other status carries a short text
//! (the validation error for a 400).

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use envelope::{GET_PATH, PIXEL_GIF, POST_PATH};

/// The parser of what a collector receives, shared with the example collector.
#[path = "../../examples/common/envelope.rs"]
pub(crate) mod envelope;

/// Largest request body the collector reads.
const MAX_BODY: usize = 256 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// One event as received: its name/value pairs in the order they were sent.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct RecordedEvent {
    /// Name/value pairs, in wire order (POST: object key order; GET: query order).
    pub(crate) pairs: Vec<(String, String)>,
}

impl RecordedEvent {
    /// The value of the first pair named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The names, in wire order.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.pairs.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// The event id (`eid`), if any.
    pub(crate) fn eid(&self) -> Option<&str> {
        self.get("eid")
    }
}

/// One HTTP request as received by the [`TestCollector`].
#[derive(Clone, Debug)]
pub(crate) struct RecordedRequest {
    /// Arrival order, from 0; also the position in [`TestCollector::requests`].
    pub(crate) index: usize,
    /// Arrival time.
    pub(crate) at: Instant,
    /// HTTP method, e.g. `POST`.
    pub(crate) method: String,
    /// Request path, e.g. `/sub/i` (without the query).
    pub(crate) path: String,
    /// `Content-Type` header, if any.
    pub(crate) content_type: Option<String>,
    /// Every header, names in lower case, in the order received.
    pub(crate) headers: Vec<(String, String)>,
    /// The events it carried (for an invalid request: what could be parsed, possibly none).
    pub(crate) events: Vec<RecordedEvent>,
    /// POST: body length in bytes; GET: raw query length in bytes.
    pub(crate) body_len_or_query_len: usize,
    /// POST: the body (lossy UTF-8); GET: the raw (still encoded) query.
    pub(crate) raw: String,
    /// The status it is answered with.
    pub(crate) status: u16,
    /// Whether it passed the structural checks.
    pub(crate) valid: bool,
    /// Why it is invalid.
    pub(crate) error: Option<String>,
    /// The delay before its answer, if any.
    pub(crate) delay: Option<Duration>,
}

impl RecordedRequest {
    /// Whether it was answered 2xx (its events are then accepted).
    pub(crate) fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The value of the header `name` (in any case), if it was sent.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Length of the whole request target (`path` plus `?query` for GET).
    pub(crate) fn target_len(&self) -> usize {
        if self.method == "GET" {
            self.path.len() + 1 + self.raw.len()
        } else {
            self.path.len()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

/// What a fault rule sees of one valid request.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// Its ordinal among the valid requests since the faults were installed, from 0.
    pub(crate) n: usize,
    /// How long after the faults were installed it arrived.
    pub(crate) elapsed: Duration,
    /// `GET` or `POST`.
    pub(crate) method: &'a str,
    /// POST: the body's length in bytes; GET: the raw query's.
    pub(crate) len: usize,
    /// The events it carries (one for GET).
    pub(crate) events: &'a [RecordedEvent],
}

/// What the faults make of one valid request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Its status; `None`: no fault, 200.
    pub(crate) status: Option<u16>,
    /// How long its answer is held after it was recorded.
    pub(crate) delay: Option<Duration>,
    /// A `Retry-After` value, sent only with a status that is not 2xx.
    pub(crate) retry_after: Option<String>,
}

type Decide = Arc<dyn Fn(&Request<'_>) -> Answer + Send + Sync>;

/// The faults the [`TestCollector`] injects: one function from a valid request to its
/// [`Answer`], built with the named constructors below and combined with `or` and the
/// `with_` modifiers, so a test's set-up reads as the faults it wants, in the order they
/// apply. The default is [`Faults::none`].
#[derive(Clone)]
pub(crate) struct Faults {
    decide: Decide,
    /// How it was built, for `Debug`.
    name: String,
}

impl Default for Faults {
    fn default() -> Self {
        Self::none()
    }
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Faults {
    fn new(name: String, decide: impl Fn(&Request<'_>) -> Answer + Send + Sync + 'static) -> Self {
        Faults {
            decide: Arc::new(decide),
            name,
        }
    }

    /// A fault deciding the status alone: `status(request)`, `None` for no fault.
    fn status(
        name: String,
        status: impl Fn(&Request<'_>) -> Option<u16> + Send + Sync + 'static,
    ) -> Self {
        Self::new(name, move |request| Answer {
            status: status(request),
            ..Answer::default()
        })
    }

    /// No faults: every valid request is answered 200 at once.
    pub(crate) fn none() -> Self {
        Self::status("none()".to_owned(), |_| None)
    }

    /// Every valid request is answered `status` (a collector that is down, or one whose
    /// success is another 2xx).
    pub(crate) fn always(status: u16) -> Self {
        Self::status(format!("always({status})"), move |_| Some(status))
    }

    /// The `n`-th valid request is answered the `n`-th status, the requests after the
    /// last one 200.
    pub(crate) fn statuses(statuses: impl IntoIterator<Item = u16>) -> Self {
        let statuses: Vec<u16> = statuses.into_iter().collect();
        Self::status(format!("statuses({statuses:?})"), move |request| {
            statuses.get(request.n).copied()
        })
    }

    /// The first `n` valid requests are answered `status`, the others 200.
    pub(crate) fn fail_first(n: usize, status: u16) -> Self {
        Self::status(format!("fail_first({n}, {status})"), move |request| {
            (request.n < n).then_some(status)
        })
    }

    /// 503 to every valid request arriving less than `duration` after the faults were
    /// installed, then 200. The collector answers; it does not refuse connections.
    pub(crate) fn down_for(duration: Duration) -> Self {
        Self::status(format!("down_for({duration:?})"), move |request| {
            (request.elapsed < duration).then_some(503)
        })
    }

    /// Each valid request is answered `status` with probability `rate`, drawn from `seed`
    /// and the request's ordinal ([`draw`]): the same requests in the same order meet the
    /// same failures.
    pub(crate) fn failure_rate(rate: f64, seed: u64, status: u16) -> Self {
        Self::status(
            format!("failure_rate({rate}, {seed}, {status})"),
            move |request| (draw(seed, request.n) < rate).then_some(status),
        )
    }

    /// 413 to a POST whose body is longer than `bytes`, as a collector or proxy with a body
    /// limit does.
    pub(crate) fn max_body(bytes: usize) -> Self {
        Self::status(format!("max_body({bytes})"), move |request| {
            (request.method == "POST" && request.len > bytes).then_some(413)
        })
    }

    /// The status `decide` gives a request by its content (`None`: 200), e.g. mixed statuses
    /// for GET requests by their events.
    pub(crate) fn decide(
        decide: impl Fn(&Request<'_>) -> Option<u16> + Send + Sync + 'static,
    ) -> Self {
        Self::status("decide(..)".to_owned(), decide)
    }

    /// These faults, and where they give no status, `next`'s (its delay and `Retry-After`
    /// too, where these give none).
    pub(crate) fn or(self, next: Faults) -> Self {
        let (first, then) = (self.decide, next.decide);
        Self::new(format!("{}.or({})", self.name, next.name), move |request| {
            let (first, then) = (first(request), then(request));
            Answer {
                status: first.status.or(then.status),
                delay: first.delay.or(then.delay),
                retry_after: first.retry_after.or(then.retry_after),
            }
        })
    }

    /// Every answer held `duration` (whatever its status), after the request was recorded.
    pub(crate) fn with_delay(self, duration: Duration) -> Self {
        let name = format!("{}.with_delay({duration:?})", self.name);
        self.modified(name, move |_, answer| answer.delay = Some(duration))
    }

    /// The answers to the first `n` valid requests held `duration`.
    pub(crate) fn with_delay_first(self, n: usize, duration: Duration) -> Self {
        let name = format!("{}.with_delay_first({n}, {duration:?})", self.name);
        self.modified(name, move |request, answer| {
            if request.n < n {
                answer.delay = Some(duration);
            }
        })
    }

    /// `Retry-After: value` sent with every answer that is not 2xx.
    pub(crate) fn with_retry_after(self, value: impl Into<String>) -> Self {
        let value = value.into();
        let name = format!("{}.with_retry_after({value:?})", self.name);
        self.modified(name, move |_, answer| {
            answer.retry_after = Some(value.clone());
        })
    }

    fn modified(
        self,
        name: String,
        modify: impl Fn(&Request<'_>, &mut Answer) + Send + Sync + 'static,
    ) -> Self {
        let decide = self.decide;
        Self::new(name, move |request| {
            let mut answer = decide(request);
            modify(request, &mut answer);
            answer
        })
    }
}

/// The `n`-th number in `[0, 1)` of the SplitMix64 stream seeded with `seed`, computed
/// directly (no `rand` crate needed, no state to consume).
pub(crate) fn draw(seed: u64, n: usize) -> f64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut z = seed.wrapping_add(GAMMA.wrapping_mul(n as u64 + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Configuration of a [`TestCollector`] (what `benches/emitter.rs` starts one with).
#[derive(Clone, Debug, Default)]
pub(crate) struct CollectorConfig {
    /// Faults installed at start.
    pub(crate) faults: Faults,
}

/// The faults installed, with when they were and how many valid requests they have seen.
struct FaultState {
    faults: Faults,
    installed_at: Instant,
    seen: usize,
}

impl FaultState {
    fn new(faults: Faults) -> Self {
        FaultState {
            faults,
            installed_at: Instant::now(),
            seen: 0,
        }
    }

    /// The answer to a valid request that arrived at `arrived`.
    fn decide(
        &mut self,
        arrived: Instant,
        method: &str,
        len: usize,
        events: &[RecordedEvent],
    ) -> Answer {
        let request = Request {
            n: self.seen,
            elapsed: arrived.saturating_duration_since(self.installed_at),
            method,
            len,
            events,
        };
        self.seen += 1;
        (self.faults.decide)(&request)
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state of the HTTP collector
// ---------------------------------------------------------------------------------------------

struct State {
    requests: Vec<RecordedRequest>,
    accepted: Vec<RecordedEvent>,
    faults: FaultState,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped after each recorded request; waiters watch it.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking rule must not wedge the collector.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the structural check made of a request.
struct Parsed {
    events: Vec<RecordedEvent>,
    raw: String,
    len: usize,
    /// `Err((status, reason))` for an invalid request.
    verdict: Result<(), (u16, String)>,
}

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let at = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let content_type = req
        .headers()
        .get("content-type")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let headers = req
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let is_get = method == "GET";
    let parsed = classify(
        &method,
        &path,
        content_type.as_deref(),
        req.query_string(),
        &body,
    );

    let (status, delay, retry_after) = {
        let mut st = shared.lock();
        let answer = match &parsed.verdict {
            Err((status, _)) => Answer {
                status: Some(*status),
                ..Answer::default()
            },
            Ok(()) => st.faults.decide(at, &method, parsed.len, &parsed.events),
        };
        let (status, delay) = (answer.status.unwrap_or(200), answer.delay);
        let retry_after = answer.retry_after;
        let record = RecordedRequest {
            index: st.requests.len(),
            at,
            method,
            path,
            content_type,
            headers,
            events: parsed.events,
            body_len_or_query_len: parsed.len,
            raw: parsed.raw,
            status,
            valid: parsed.verdict.is_ok(),
            error: parsed.verdict.as_ref().err().map(|(_, e)| e.clone()),
            delay,
        };
        if record.valid && record.accepted() {
            st.accepted.extend(record.events.iter().cloned());
        }
        st.requests.push(record);
        (status, delay, retry_after)
    };
    // Wake waiters only after the state lock is released.
    shared.changed.send_modify(|v| *v += 1);

    if let Some(delay) = delay {
        actix_rt::time::sleep(delay).await;
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut answer = HttpResponse::build(code);
    if let Some(value) = retry_after.filter(|_| !code.is_success()) {
        answer.insert_header(("Retry-After", value));
    }
    match (&parsed.verdict, code.is_success(), is_get) {
        (Err((_, reason)), _, _) => answer.content_type("text/plain").body(reason.clone()),
        (Ok(()), true, true) => answer.content_type("image/gif").body(PIXEL_GIF),
        (Ok(()), true, false) => answer.content_type("text/plain").body("ok"),
        (Ok(()), false, _) => answer
            .content_type("text/plain")
            .body(format!("injected fault: {status}")),
    }
}

fn classify(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    query: &str,
    body: &[u8],
) -> Parsed {
    let is_post_path = path.ends_with(POST_PATH);
    let is_get_path = path.ends_with(GET_PATH);
    match (method, is_post_path, is_get_path) {
        ("POST", true, _) => {
            let (events, verdict) = check_post(content_type, body);
            Parsed {
                events,
                raw: String::from_utf8_lossy(body).into_owned(),
                len: body.len(),
                verdict: verdict.map_err(|e| (400, e)),
            }
        }
        ("GET", _, true) => {
            let (events, verdict) = check_get(query);
            Parsed {
                events,
                raw: query.to_owned(),
                len: query.len(),
                verdict: verdict.map_err(|e| (400, e)),
            }
        }
        (_, false, false) => Parsed {
            events: Vec::new(),
            raw: String::new(),
            len: body.len(),
            verdict: Err((404, format!("unknown path {path}"))),
        },
        _ => Parsed {
            events: Vec::new(),
            raw: String::new(),
            len: body.len(),
            verdict: Err((405, format!("method {method} not allowed on {path}"))),
        },
    }
}

/// The events of a parsed request, as recorded.
fn recorded(events: Vec<envelope::Event<'_>>) -> Vec<RecordedEvent> {
    events
        .into_iter()
        .map(|event| RecordedEvent {
            pairs: event.into_owned(),
        })
        .collect()
}

/// The envelope's rules ([`envelope::parse_post`]), then this collector's own: the
/// `Content-Type` is JSON, and every event has a `stm` (the tracker always sends one).
fn check_post(content_type: Option<&str>, body: &[u8]) -> (Vec<RecordedEvent>, Result<(), String>) {
    let mut parsed = envelope::parse_post(body);
    for (index, event) in parsed.events.iter().enumerate() {
        if event.get("stm").is_none() {
            parsed
                .problems
                .push(format!("event {index}: missing `stm`"));
        }
    }
    let ct_ok = content_type.is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
    });
    if !ct_ok {
        parsed.problems.insert(
            0,
            format!("Content-Type is {content_type:?}, not application/json"),
        );
    }
    let verdict = parsed.verdict();
    (recorded(parsed.events), verdict)
}

/// The envelope's rules ([`envelope::parse_get`]).
fn check_get(query: &str) -> (Vec<RecordedEvent>, Result<(), String>) {
    let parsed = envelope::parse_get(query);
    let verdict = parsed.verdict();
    (recorded(parsed.events), verdict)
}

// ---------------------------------------------------------------------------------------------
// TestCollector
// ---------------------------------------------------------------------------------------------

/// The HTTP test collector. See the module docs.
pub(crate) struct TestCollector {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

impl fmt::Debug for TestCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCollector")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestCollector {
    /// Starts a collector on `127.0.0.1` on a free port, with one worker, spawned on the
    /// current actix runtime. Panics if it cannot bind.
    pub(crate) async fn start(config: CollectorConfig) -> TestCollector {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("test collector: bind 127.0.0.1:0");
        Self::start_with(config, listener).await
    }

    /// Starts a collector on `addr`, e.g. a port a client was already failing to reach
    /// (connection refused until now). Panics if it cannot bind.
    pub(crate) async fn start_at(faults: Faults, addr: SocketAddr) -> TestCollector {
        let listener =
            std::net::TcpListener::bind(addr).expect("test collector: bind the given address");
        Self::start_with(CollectorConfig { faults }, listener).await
    }

    /// Starts a collector with `faults` installed, as [`TestCollector::start`] does.
    pub(crate) async fn with_faults(faults: Faults) -> TestCollector {
        Self::start(CollectorConfig { faults }).await
    }

    async fn start_with(config: CollectorConfig, listener: std::net::TcpListener) -> TestCollector {
        let addr = listener
            .local_addr()
            .expect("test collector: local address");
        let (changed, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                requests: Vec::new(),
                accepted: Vec::new(),
                faults: FaultState::new(config.faults),
            }),
            changed,
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("test collector: listen")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        TestCollector {
            addr,
            shared,
            handle,
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing `/`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `{endpoint}/com.snowplowanalytics.snowplow/tp2`.
    pub(crate) fn post_url(&self) -> String {
        format!("{}{POST_PATH}", self.endpoint())
    }

    /// `{endpoint}/i`.
    pub(crate) fn get_url(&self) -> String {
        format!("{}{GET_PATH}", self.endpoint())
    }

    /// Replaces the faults; their state (sequence, ordinals, down window, generator) restarts.
    pub(crate) fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = FaultState::new(faults);
    }

    /// Removes every fault.
    pub(crate) fn clear_faults(&self) {
        self.set_faults(Faults::none());
    }

    /// Every request so far, in arrival order.
    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Number of requests so far.
    pub(crate) fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// The status of each request so far, in order.
    pub(crate) fn statuses(&self) -> Vec<u16> {
        self.shared
            .lock()
            .requests
            .iter()
            .map(|r| r.status)
            .collect()
    }

    /// The accepted events (valid requests answered 2xx), in order, duplicates included.
    pub(crate) fn events(&self) -> Vec<RecordedEvent> {
        self.shared.lock().accepted.clone()
    }

    /// The `eid` of each accepted event, in order (`""` if missing), duplicates included.
    pub(crate) fn event_ids(&self) -> Vec<String> {
        self.shared
            .lock()
            .accepted
            .iter()
            .map(|e| e.eid().unwrap_or_default().to_owned())
            .collect()
    }

    /// Number of accepted events.
    pub(crate) fn accepted_count(&self) -> usize {
        self.shared.lock().accepted.len()
    }

    /// Waits until at least `n` events are accepted; returns all accepted events. On timeout,
    /// `Err` describing what was received.
    pub(crate) async fn wait_for_events(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedEvent>, String> {
        self.wait_until(timeout, &format!("{n} accepted events"), |st| {
            (st.accepted.len() >= n).then(|| st.accepted.clone())
        })
        .await
    }

    /// Waits until at least `n` requests are recorded; returns all of them. On timeout, `Err`
    /// describing what was received.
    pub(crate) async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, String> {
        self.wait_until(timeout, &format!("{n} requests"), |st| {
            (st.requests.len() >= n).then(|| st.requests.clone())
        })
        .await
    }

    async fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.shared.changed.subscribe();
        loop {
            // Mark the current version seen before checking, so no record is missed.
            rx.borrow_and_update();
            if let Some(found) = check(&self.shared.lock()) {
                return Ok(found);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                // The sender lives in `shared`, which we hold: cannot close; treat as timeout.
                Ok(Err(_)) | Err(_) => {
                    let st = self.shared.lock();
                    if let Some(found) = check(&st) {
                        return Ok(found);
                    }
                    return Err(format!(
                        "test collector: timed out after {timeout:?} waiting for {what}; \
                         got {} requests and {} accepted events: {}",
                        st.requests.len(),
                        st.accepted.len(),
                        summarize(&st.requests)
                    ));
                }
            }
        }
    }

    /// Stops the server (in-flight answers are dropped). Records stay readable.
    pub(crate) async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

impl Drop for TestCollector {
    fn drop(&mut self) {
        // `stop` sends its command when called; the future only waits for completion. The
        // server task then ends by itself (aborting it could leave its worker thread behind).
        drop(self.handle.stop(false));
    }
}

fn summarize(requests: &[RecordedRequest]) -> String {
    const SHOWN: usize = 20;
    let mut out: Vec<String> = requests
        .iter()
        .take(SHOWN)
        .map(|r| {
            let mut s = format!(
                "#{} {} {} -> {} ({} events)",
                r.index,
                r.method,
                r.path,
                r.status,
                r.events.len()
            );
            if let Some(e) = &r.error {
                s.push_str(&format!(" invalid: {e}"));
            }
            s
        })
        .collect();
    if requests.len() > SHOWN {
        out.push(format!("… and {} more", requests.len() - SHOWN));
    }
    if out.is_empty() {
        "none".to_owned()
    } else {
        out.join("; ")
    }
}

// ---------------------------------------------------------------------------------------------
// RawCollector
// ---------------------------------------------------------------------------------------------

/// What the [`RawCollector`] does with each connection, after reading the request (headers and,
/// with `Content-Length`, the body; at most 16 MiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawBehaviour {
    /// Close with `SO_LINGER` 0, so the client gets a TCP RST.
    Reset,
    /// Answer bytes that are not HTTP, then close.
    Garbage,
    /// Answer `HTTP/1.1 200 OK` with `Content-Length: 100` and only a few body bytes, then
    /// close. Note: awc 3 does not report this: it yields status 200 and a short body
    /// (`partial`), since its h1 payload stream ends quietly at EOF.
    CloseMidBody,
    /// Answer part of a status line and head (`HTTP/1.1 200 OK\r\nContent-Le`), then close:
    /// the answer is lost before its status is known, which awc reports as an error.
    CloseMidHead,
    /// Never answer; hold the connection open until the collector stops (or the client leaves).
    NeverAnswer,
}

/// Bytes the [`RawBehaviour::Garbage`] mode answers.
pub(crate) const GARBAGE: &[u8] = b"\x00\x01\x02 this is not HTTP \xff\xfe\r\n\r\n";
/// Head the [`RawBehaviour::CloseMidBody`] mode answers before its truncated body.
pub(crate) const MID_BODY_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
/// What the [`RawBehaviour::CloseMidHead`] mode answers.
pub(crate) const MID_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Le";
const RAW_READ_LIMIT: usize = 16 * 1024 * 1024;

/// A bare TCP server on `127.0.0.1` that misbehaves ([`RawBehaviour`]).
pub(crate) struct RawCollector {
    addr: SocketAddr,
    behaviour: RawBehaviour,
    connections: watch::Sender<usize>,
    shutdown: watch::Sender<bool>,
    task: actix_rt::task::JoinHandle<()>,
}

impl fmt::Debug for RawCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawCollector")
            .field("addr", &self.addr)
            .field("behaviour", &self.behaviour)
            .field("connections", &*self.connections.borrow())
            .finish_non_exhaustive()
    }
}

impl RawCollector {
    /// Starts listening on `127.0.0.1` on a free port, on the current actix runtime.
    pub(crate) async fn start(behaviour: RawBehaviour) -> RawCollector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("raw collector: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("raw collector: local address");
        let (connections, _) = watch::channel(0usize);
        let (shutdown, _) = watch::channel(false);
        let counter = connections.clone();
        let mut stop = shutdown.subscribe();
        let task = actix_rt::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        counter.send_modify(|c| *c += 1);
                        let stop = stop.clone();
                        actix_rt::spawn(serve_raw(stream, behaviour, stop));
                    }
                }
            }
        });
        RawCollector {
            addr,
            behaviour,
            connections,
            shutdown,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        *self.connections.borrow()
    }

    /// Waits until at least `n` connections were accepted; returns the count, or `Err` on
    /// timeout.
    pub(crate) async fn wait_for_connections(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<usize, String> {
        let mut rx = self.connections.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n))
            .await
            .map(|r| r.map(|count| *count));
        match reached {
            Ok(Ok(count)) => Ok(count),
            _ => Err(format!(
                "raw collector: timed out after {timeout:?} waiting for {n} connections; got {}",
                self.connections()
            )),
        }
    }

    /// Stops listening and closes every held connection.
    pub(crate) fn stop(&self) {
        self.shutdown.send_replace(true);
        self.task.abort();
    }
}

impl Drop for RawCollector {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve_raw(
    mut stream: tokio::net::TcpStream,
    behaviour: RawBehaviour,
    mut stop: watch::Receiver<bool>,
) {
    let work = async {
        // An error while reading still leads to the misbehaviour below.
        let _ = read_request(&mut stream).await;
        match behaviour {
            RawBehaviour::Reset => {
                let _ = stream.set_zero_linger();
                // Dropping the stream now sends a RST.
            }
            RawBehaviour::Garbage => {
                let _ = stream.write_all(GARBAGE).await;
                let _ = stream.shutdown().await;
            }
            RawBehaviour::CloseMidBody => {
                let _ = stream.write_all(MID_BODY_HEAD).await;
                let _ = stream.write_all(b"partial").await;
                let _ = stream.shutdown().await;
            }
            RawBehaviour::CloseMidHead => {
                let _ = stream.write_all(MID_HEAD).await;
                let _ = stream.shutdown().await;
            }
            RawBehaviour::NeverAnswer => {
                // Read and discard until the client leaves.
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            }
        }
    };
    tokio::select! {
        _ = stop.wait_for(|s| *s) => {}
        _ = work => {}
    }
}

/// Reads one HTTP request (head, then a `Content-Length` body or a chunked body up to its last
/// chunk), or until EOF or the read limit.
async fn read_request(stream: &mut tokio::net::TcpStream) -> std::io::Result<usize> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(head_end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let body = &buf[head_end + 4..];
            let content_length = head.lines().find_map(|l| {
                l.strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            });
            let done = if head.contains("transfer-encoding: chunked") {
                body.ends_with(b"0\r\n\r\n")
            } else {
                body.len() >= content_length.unwrap_or(0)
            };
            if done {
                return Ok(buf.len());
            }
        }
        if buf.len() >= RAW_READ_LIMIT {
            return Ok(buf.len());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(buf.len());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
