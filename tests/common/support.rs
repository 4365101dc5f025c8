//! Shortcuts shared by the emitter tests: events to track, starting and flushing emitters,
//! stats and the accounting identity, waiting at the collector, failures reported.

use std::time::Duration;

use actix::Addr;
use snowplow_actix::{
    emitter::{Emitter, Flush, GetStats, Track},
    wire::{StampedEvent, TrackerSettings},
    EmitterBuilder, EmitterStats, FlushReport, Structured, Tracker, TrackerBuilder,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::collector::{RecordedEvent, RecordedRequest, TestCollector};

/// Generous bound for anything that should happen "soon" (5x slack and more).
pub(crate) const SOON: Duration = Duration::from_secs(10);

/// The settings every test stamps with.
pub(crate) fn settings() -> TrackerSettings {
    TrackerSettings::new("test").expect("a non-empty namespace")
}

/// `n` structured events labelled `0..n`.
pub(crate) fn events(n: usize) -> Vec<StampedEvent> {
    let labels: Vec<String> = (0..n).map(|idx| idx.to_string()).collect();
    labelled(&labels)
}

/// One structured event per label, in order.
pub(crate) fn labelled<S: AsRef<str>>(labels: &[S]) -> Vec<StampedEvent> {
    let settings = settings();
    labels
        .iter()
        .flat_map(|label| {
            settings
                .stamp(
                    Structured::new("test", "event")
                        .expect("valid event")
                        .label(label.as_ref()),
                )
                .expect("a valid event")
        })
        .collect()
}

/// Tracks `events` on `emitter`, returning their ids in order.
pub(crate) fn track_all(emitter: &Addr<Emitter>, events: Vec<StampedEvent>) -> Vec<String> {
    events
        .into_iter()
        .map(|event| {
            let id = event.id().to_string();
            emitter.do_send(Track::from(event));
            id
        })
        .collect()
}

/// The emitter's stats, checking the accounting identity.
pub(crate) async fn stats(emitter: &Addr<Emitter>) -> EmitterStats {
    let stats = emitter.send(GetStats).await.expect("emitter alive");
    assert_balanced(&stats);
    stats
}

/// Asserts the accounting identity of `stats` (live or final).
#[track_caller]
pub(crate) fn assert_balanced(stats: &EmitterStats) {
    assert!(
        stats.is_balanced(),
        "accounting identity broken: {stats:#?}"
    );
}

/// What the tests do with an [`EmitterBuilder`] beyond its own settings.
pub(crate) trait BuilderExt {
    /// Built (the settings must be valid) and started on a thread of its own; it stops when
    /// the returned address (and every clone of it) is dropped.
    fn started(self) -> Addr<Emitter>;

    /// Retrying fast: a fixed jitter of 10 ms and the backoff capped at `cap`. (A jitter
    /// of exactly 0 would make every delay 0: the delay grows as `delay * 2 + jitter`.)
    fn retrying_fast(self, cap: Duration) -> Self;
}

impl BuilderExt for EmitterBuilder {
    fn started(self) -> Addr<Emitter> {
        self.build().expect("valid emitter settings").start()
    }

    fn retrying_fast(self, cap: Duration) -> Self {
        self.jitter(fixed_jitter(0.01)).max_retry_delay(cap)
    }
}

/// What the tests do with a [`TrackerBuilder`] beyond its own settings.
pub(crate) trait TrackerBuilderExt {
    /// Built (the settings must be valid) without a flush timer: it sends full batches, and
    /// the rest when the test flushes.
    fn flushed_by_hand(self) -> Tracker;
}

impl TrackerBuilderExt for TrackerBuilder {
    fn flushed_by_hand(self) -> Tracker {
        self.no_flush_timer()
            .build()
            .expect("valid tracker settings")
    }
}

/// A sync flush of `emitter` with the default deadline: its report.
pub(crate) async fn flush(emitter: &Addr<Emitter>) -> FlushReport {
    emitter.send(Flush::default()).await.expect("emitter alive")
}

/// A sync flush of `emitter` that waits at most `timeout`: its report.
pub(crate) async fn flush_within(emitter: &Addr<Emitter>, timeout: Duration) -> FlushReport {
    emitter
        .send(Flush::with_timeout(timeout))
        .await
        .expect("emitter alive")
}

/// Asserts that a flush settled everything before its deadline, `sent` events sent by it.
#[track_caller]
pub(crate) fn assert_delivered(report: &FlushReport, sent: u64) {
    assert_eq!(
        (report.sent, report.queued, report.timed_out),
        (sent, 0, false),
        "{report:#?}"
    );
}

/// Asserts that a flush settled everything before its deadline (whatever it sent itself).
#[track_caller]
pub(crate) fn assert_settled(report: &FlushReport) {
    assert_eq!((report.queued, report.timed_out), (0, false), "{report:#?}");
}

/// The events accepted at `collector` once there are at least `n`, within [`SOON`].
pub(crate) async fn wait_events(collector: &TestCollector, n: usize) -> Vec<RecordedEvent> {
    collector
        .wait_for_events(n, SOON)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// The requests recorded at `collector` once there are at least `n`, within [`SOON`].
pub(crate) async fn wait_requests(collector: &TestCollector, n: usize) -> Vec<RecordedRequest> {
    collector
        .wait_for_requests(n, SOON)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// The labels (`se_la`) of recorded events, in order.
pub(crate) fn labels(events: &[RecordedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.get("se_la").unwrap_or_default().to_owned())
        .collect()
}

/// The labels of `events` in numeric order: for emitters with several requests in flight,
/// which do not keep the order.
pub(crate) fn sorted_labels(events: &[RecordedEvent]) -> Vec<String> {
    let mut labels = labels(events);
    labels.sort_by_key(|label| label.parse::<u64>().unwrap_or(u64::MAX));
    labels
}

/// The `eid`s the collector accepted, sorted, duplicates kept: delivery without order.
pub(crate) fn sorted_accepted(collector: &TestCollector) -> Vec<String> {
    sorted(collector.event_ids())
}

/// `ids`, sorted.
pub(crate) fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// `0..n` as strings, to compare with [`labels`].
pub(crate) fn range_labels(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|idx| idx.to_string()).collect()
}

/// The status and body (as text) of a GET of `url`.
pub(crate) async fn get_text(url: &str) -> (u16, String) {
    let mut response = awc::Client::default()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    let body = response.body().await.expect("a body");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// A local port nothing listens on (connection refused) and, while this is held, nothing
/// else can take: it is bound, never listened on. A port merely found free could be taken
/// by another test's collector, which would then receive this test's events.
pub(crate) struct ClosedPort {
    socket: tokio::net::TcpSocket,
    addr: std::net::SocketAddr,
}

impl ClosedPort {
    /// `http://` and the address: connections to it are refused.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Gives the port up, for a collector to start on it now.
    pub(crate) fn release(self) -> std::net::SocketAddr {
        drop(self.socket);
        self.addr
    }
}

/// A [`ClosedPort`] on 127.0.0.1.
pub(crate) fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind 127.0.0.1:0");
    let addr = socket.local_addr().expect("local address");
    ClosedPort { socket, addr }
}

/// A jitter source returning `value` every time (exact backoff delays).
pub(crate) fn fixed_jitter(value: f64) -> impl Fn() -> f64 + Send + Sync + 'static {
    move || value
}

/// What `on_failure` was given, owned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    pub(crate) eids: Vec<String>,
    pub(crate) reason: snowplow_actix::emitter::FailureReason,
    pub(crate) will_retry: bool,
    pub(crate) dropped: Option<snowplow_actix::DropReason>,
}

impl Seen {
    pub(crate) fn of(failure: &snowplow_actix::emitter::Failure<'_>) -> Self {
        Seen {
            eids: failure.events.iter().map(|e| e.id().to_string()).collect(),
            reason: failure.reason.clone(),
            will_retry: failure.will_retry,
            dropped: failure.dropped,
        }
    }
}

/// The failures an emitter reports, in order ([`record_failures`]).
#[derive(Debug)]
pub(crate) struct Failures(UnboundedReceiver<Seen>);

impl Failures {
    /// The next failure reported, within [`SOON`].
    pub(crate) async fn next(&mut self) -> Seen {
        tokio::time::timeout(SOON, self.0.recv())
            .await
            .expect("a failure in time")
            .expect("callback channel open")
    }

    /// Waits, within [`SOON`], until the emitter is gone (its callback dropped with it);
    /// the failures reported until then.
    pub(crate) async fn closed(&mut self) -> Vec<Seen> {
        let mut seen = Vec::new();
        let gone = async {
            while let Some(failure) = self.0.recv().await {
                seen.push(failure);
            }
        };
        tokio::time::timeout(SOON, gone)
            .await
            .expect("the emitter gone in time");
        seen
    }

    /// Every failure reported so far (callbacks run before the flush that settles them
    /// returns).
    pub(crate) fn reported(&mut self) -> Vec<Seen> {
        let mut seen = Vec::new();
        while let Ok(failure) = self.0.try_recv() {
            seen.push(failure);
        }
        seen
    }
}

/// `builder` with an `on_failure` reporting each failure to the returned [`Failures`].
pub(crate) fn record_failures(builder: EmitterBuilder) -> (EmitterBuilder, Failures) {
    let (tx, rx) = unbounded_channel();
    let builder = builder.on_failure(move |failure| {
        let _ = tx.send(Seen::of(failure));
    });
    (builder, Failures(rx))
}

/// What a [`HookedStore`] runs before each `add`: an answer of its own, or `None` to let
/// the store add the event.
pub(crate) type AddHook = Box<
    dyn FnMut() -> Option<Result<snowplow_actix::store::Added, snowplow_actix::store::StoreError>>
        + Send,
>;

/// An in-memory store with a hook before each `add` (a failing or a slow disk).
pub(crate) struct HookedStore {
    pub(crate) inner: snowplow_actix::store::InMemoryStore,
    pub(crate) before_add: AddHook,
}

impl HookedStore {
    pub(crate) fn new(capacity: usize, before_add: AddHook) -> Self {
        Self {
            inner: snowplow_actix::store::InMemoryStore::new(capacity),
            before_add,
        }
    }
}

impl snowplow_actix::store::EventStore for HookedStore {
    fn add(
        &mut self,
        event: snowplow_actix::store::StoredEvent,
    ) -> Result<snowplow_actix::store::Added, snowplow_actix::store::StoreError> {
        match (self.before_add)() {
            Some(answer) => answer,
            None => self.inner.add(event),
        }
    }
    fn lease(
        &mut self,
        max_events: usize,
        max_cost: usize,
    ) -> Result<snowplow_actix::store::Lease, snowplow_actix::store::StoreError> {
        self.inner.lease(max_events, max_cost)
    }
    fn acknowledge(
        &mut self,
        lease: snowplow_actix::store::LeaseId,
    ) -> Result<(), snowplow_actix::store::StoreError> {
        self.inner.acknowledge(lease)
    }
    fn requeue(
        &mut self,
        lease: snowplow_actix::store::LeaseId,
        retry: Vec<snowplow_actix::store::StoredEvent>,
    ) -> Result<(), snowplow_actix::store::StoreError> {
        self.inner.requeue(lease, retry)
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn leased(&self) -> usize {
        self.inner.leased()
    }
    fn capacity(&self) -> Option<usize> {
        Some(self.inner.capacity())
    }
    fn oldest_seq(&self) -> Option<u64> {
        self.inner.oldest_seq()
    }
}

/// This test binary, set to run only the test `test` of the module `module_path` (its
/// `module_path!()`) with its output shown: how the crash, signal and metrics tests start a
/// child process. The harness names a test by its module path without the crate's name.
#[cfg_attr(not(feature = "web"), allow(dead_code))] // only the child-process tests (actix-web, sqlite) use it
pub(crate) fn child_test(module_path: &str, test: &str) -> std::process::Command {
    let (_crate, module) = module_path
        .split_once("::")
        .expect("a test module inside the test crate");
    let mut command =
        std::process::Command::new(std::env::current_exe().expect("the test binary's path"));
    command.args([
        "--exact",
        &format!("{module}::{test}"),
        "--nocapture",
        "--test-threads",
        "1",
    ]);
    command
}

/// The lines a child process writes to `pipe`, as they come, read on a thread of their own
/// until the pipe ends. It goes on reading when nobody listens any more: a child whose pipe
/// is not drained blocks as soon as the pipe is full.
#[cfg_attr(not(feature = "web"), allow(dead_code))] // only the actix-web tests use it
pub(crate) fn pipe_lines(
    pipe: impl std::io::Read + Send + 'static,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    use std::io::BufRead as _;
    let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let _ = sender.send(line);
        }
    });
    lines
}
