//! The tracker: the handle applications keep ([`Tracker`], at the crate root too), its
//! defaults, the handles of its emitters ([`EmitterHandle`]) and custom emitters
//! ([`CustomEmitter`]).
//!
//! ```text
//! Tracker::track ──Inbox::push (wakes it when idle)──▶ fan-out ──TrackBatch──▶ emitter(s)
//! Tracker::flush ──Flush (send)──▶ fan-out ──Flush──▶ emitter(s): replies merged into one FlushReport
//! flush timer ─────Flush (do_send, every period)──▶ fan-out
//! ```
//!
//! The fan-out and the timers run on a thread of the tracker's own, each built-in emitter
//! on one of its own, so an application's worker threads only stamp events and hand them
//! over. Each of those threads runs an actix `System` of its own: a `System::stop` of the
//! application, as actix-server calls after a signal, leaves the tracker running, so that
//! its shutdown can still deliver.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use uuid::Uuid;

use crate::emitter::{
    Emitter, EmitterBuilder, EmitterConfig, Owner, DEFAULT_MAILBOX_CAPACITY, MAX_MAILBOX_CAPACITY,
};
use crate::error::{
    AddEmitterError, BuildError, EventError, FlushError, ShutdownError, StatsError, TrackError,
};
use crate::event::Event;
use crate::fanout::{Fanout, GetReports, Inbox, Refused, Route};
use crate::health::{EmitterHealth, Health, HealthReason};
use crate::messages::DEFAULT_FLUSH_TIMEOUT;
use crate::messages::{Flush, Shutdown, Track};
use crate::metrics::TrackerMetrics;
use crate::reclaim::{Reclaimer, Release};
use crate::report::{EmitterReport, EmitterStats, FinalStats, FlushReport};
use crate::runtime::Runtime;
use crate::subject::{Platform, Subject};
use crate::sync::{lock, Burst};
use crate::timer::{FlushTimer, SetFlushTimer};
use crate::wire::TrackerSettings;

/// The tracker-wide flush timer's default period: a lone event is never stranded.
pub const DEFAULT_FLUSH_TIMER: Duration = Duration::from_secs(10);

/// The default bytes of events (their pairs, as stamped) waiting for the fan-out before
/// `track` refuses more ([`TrackError::QueueFull`]): with the event bound, it keeps a burst
/// of large events from growing memory before the emitters' own byte bounds apply.
pub const DEFAULT_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// A custom emitter: any actor that handles [`Track`], and optionally [`Flush`].
///
/// The fan-out hands events over with `try_send` and never waits: an event the actor's
/// full mailbox refuses is dropped and counted (`refused`, a `capacity` drop of that
/// emitter in [`Tracker::stats`]). An actor started the usual way (`Actor::start`) has
/// room for 16 messages until it first runs; start it with [`CustomEmitter::start`] to
/// give it [`DEFAULT_MAILBOX_CAPACITY`] from its first message.
#[derive(Debug)]
pub struct CustomEmitter {
    name: String,
    track: Recipient<Track>,
    flush: Option<Recipient<Flush>>,
}

impl CustomEmitter {
    /// An emitter called `name` receiving events at `track`.
    pub fn new(name: impl Into<String>, track: Recipient<Track>) -> Self {
        Self {
            name: name.into(),
            track,
            flush: None,
        }
    }

    /// Starts `actor` on the current arbiter with a mailbox of [`DEFAULT_MAILBOX_CAPACITY`]
    /// messages from the first one.
    pub fn start<A>(actor: A) -> Addr<A>
    where
        A: Actor<Context = Context<A>>,
    {
        let (addr, mailbox) = crate::mailbox::sized(DEFAULT_MAILBOX_CAPACITY);
        mailbox.into_context().run(actor);
        addr
    }

    /// Where it receives flushes (the tracker's flushes, timer ticks and shutdown).
    pub fn flush(mut self, flush: Recipient<Flush>) -> Self {
        self.flush = Some(flush);
        self
    }
}

/// Builds a [`Tracker`]: its settings, emitters and flush timer.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use snowplow_actix::{EmitterBuilder, Tracker};
///
/// # #[actix_rt::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tracker = Tracker::builder("web")
///     .app_id("shop")
///     .emitter(EmitterBuilder::new("https://collector.example.com"))
///     .flush_timer(Duration::from_secs(5))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TrackerBuilder {
    settings: Result<TrackerSettings, BuildError>,
    emitters: Vec<EmitterBuilder>,
    custom: Vec<CustomEmitter>,
    flush_timer: Option<Duration>,
    mailbox_capacity: Option<usize>,
    queue_bytes: usize,
}

impl TrackerBuilder {
    fn map_settings(mut self, change: impl FnOnce(TrackerSettings) -> TrackerSettings) -> Self {
        self.settings = self.settings.map(change);
        self
    }

    /// The application id (`aid`).
    pub fn app_id(self, app_id: impl Into<String>) -> Self {
        self.map_settings(|settings| settings.with_app_id(app_id))
    }

    /// The platform (`p`, default `srv`).
    pub fn platform(self, platform: Platform) -> Self {
        self.map_settings(|settings| settings.with_platform(platform))
    }

    /// The subject applied to every event; one with an invalid value fails
    /// [`build`](Self::build) ([`BuildError::InvalidSubject`]).
    pub fn subject(mut self, subject: Subject) -> Self {
        if let Some(error) = subject.error() {
            self.settings = Err(BuildError::InvalidSubject(error.clone()));
            return self;
        }
        self.map_settings(|settings| settings.with_subject(subject))
    }

    /// Whether self-describing JSON is base64-encoded (default yes).
    pub fn encode_base64(self, encode: bool) -> Self {
        self.map_settings(|settings| settings.with_encode_base64(encode))
    }

    /// Adds an emitter, built and started with the tracker.
    pub fn emitter(mut self, emitter: EmitterBuilder) -> Self {
        self.emitters.push(emitter);
        self
    }

    /// Adds a custom emitter.
    pub fn custom_emitter(mut self, emitter: CustomEmitter) -> Self {
        self.custom.push(emitter);
        self
    }

    /// Flushes every emitter every `period` (default [`DEFAULT_FLUSH_TIMER`]): the Python
    /// tracker's `set_flush_timer`, set from the start.
    #[doc(alias = "set_flush_timer")]
    pub fn flush_timer(mut self, period: Duration) -> Self {
        self.flush_timer = Some(period);
        self
    }

    /// No tracker-wide flush timer: events below a batch wait for a flush.
    pub fn no_flush_timer(mut self) -> Self {
        self.flush_timer = None;
        self
    }

    /// Events waiting for the fan-out before `track` refuses more, and messages its mailbox
    /// holds (default the largest of [`DEFAULT_MAILBOX_CAPACITY`] and the emitters'
    /// mailboxes).
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = Some(capacity);
        self
    }

    /// Bytes of events (their pairs) waiting for the fan-out before `track` refuses more
    /// (default [`DEFAULT_QUEUE_BYTES`]); one event is always taken when none waits.
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// The settings alone, to stamp events without starting a tracker (see
    /// [`TrackerSettings`]); emitters and timers are left out.
    ///
    /// # Errors
    ///
    /// [`BuildError::EmptyNamespace`] when the namespace is empty.
    pub fn settings(self) -> Result<TrackerSettings, BuildError> {
        self.settings
    }

    /// Validates everything and starts the actors.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for invalid settings (an empty namespace, an invalid emitter, a zero
    /// interval), no emitter at all, or threads that cannot be started.
    ///
    /// No actix `System` needs to run: the tracker brings its own threads.
    pub fn build(self) -> Result<Tracker, BuildError> {
        let settings = self.settings?;
        if self.emitters.is_empty() && self.custom.is_empty() {
            return Err(BuildError::NoEmitter);
        }
        if self.flush_timer.is_some_and(|period| period.is_zero()) {
            return Err(BuildError::Zero("flush_timer"));
        }
        let configs = self
            .emitters
            .into_iter()
            .map(EmitterBuilder::build)
            .collect::<Result<Vec<_>, _>>()?;
        let capacity = self.mailbox_capacity.unwrap_or_else(|| {
            configs
                .iter()
                .map(EmitterConfig::mailbox_capacity)
                .fold(DEFAULT_MAILBOX_CAPACITY, usize::max)
        });
        if capacity == 0 {
            return Err(BuildError::Zero("mailbox_capacity"));
        }
        if capacity > MAX_MAILBOX_CAPACITY {
            return Err(BuildError::TooLarge {
                setting: "mailbox_capacity",
                max: MAX_MAILBOX_CAPACITY,
            });
        }
        let runtime = Runtime::start("snowplow-tracker").map_err(BuildError::spawn)?;
        let home = runtime.arbiter().clone();
        if self.queue_bytes == 0 {
            return Err(BuildError::Zero("queue_bytes"));
        }
        let fanout_panics = Arc::new(AtomicU64::new(0));
        let tracked = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let discarded: Arc<[AtomicU64; 2]> = Arc::default();
        let metrics =
            TrackerMetrics::register(settings.namespace(), &tracked, &refused, &discarded);
        let (fanout, inbox) = Fanout::start_on(
            &home,
            capacity,
            self.queue_bytes,
            fanout_panics.clone(),
            metrics,
        );
        let reclaimer = Reclaimer::start_on(&home);
        let target = fanout.clone().recipient();
        let period = self.flush_timer;
        let timer = FlushTimer::start_in_arbiter(&home, move |_| FlushTimer::new(target, period));
        let tracker = Tracker {
            inner: Arc::new(Inner {
                settings,
                inbox,
                fanout,
                reclaimer,
                timer,
                home,
                emitters: Mutex::new(Vec::new()),
                runtimes: Mutex::new(vec![runtime]),
                loss_reported: Arc::new(AtomicBool::new(false)),
                final_reports: Mutex::new(None),
                shut_down: AtomicBool::new(false),
                tracked,
                refused,
                invalid: AtomicU64::new(0),
                discarded,
                names: Mutex::new(Vec::new()),
                fanout_panics,
                refused_burst: Burst::default(),
                invalid_burst: Burst::default(),
            }),
        };
        for config in configs {
            tracker.start_emitter(config)?;
        }
        for custom in self.custom {
            tracker.add_custom_emitter(custom);
        }
        Ok(tracker)
    }
}

/// The handle an application keeps: cheap to clone, usable from any thread.
///
/// `track` stamps an event and hands it to the fan-out without waiting on anything; the
/// emitters deliver it from their own arbiters.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use snowplow_actix::{EmitterBuilder, PageView, Tracker};
///
/// # #[actix_rt::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tracker = Tracker::builder("web")
///     .emitter(EmitterBuilder::new("http://127.0.0.1:9090"))
///     .build()?;
/// let event_id = tracker.track(PageView::new("https://shop.example/")?)?;
/// let report = tracker.flush().await?;
/// println!("{event_id}: {} sent", report.sent);
/// tracker.shutdown(Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

struct Inner {
    settings: TrackerSettings,
    /// Where `track` leaves events for the fan-out.
    inbox: Arc<Inbox>,
    /// Where emitters free the events of settled requests (on the tracker's thread).
    reclaimer: Recipient<Release>,
    fanout: Addr<Fanout>,
    timer: Addr<FlushTimer>,
    /// The arbiter of the fan-out and the timers.
    home: ArbiterHandle,
    emitters: Mutex<Vec<EmitterHandle>>,
    /// Threads the tracker started: its own and one per built-in emitter.
    runtimes: Mutex<Vec<Runtime>>,
    /// Set (and seen by the emitters) once a drop without a shutdown has been warned about.
    loss_reported: Arc<AtomicBool>,
    /// Every emitter's counters once the tracker has shut down: what `stats` returns then.
    final_reports: Mutex<Option<Vec<EmitterReport>>>,
    shut_down: AtomicBool,
    /// Events passed to `track` (shared with the fan-out, which publishes it).
    tracked: Arc<AtomicU64>,
    /// Events `track` refused, the inbox full (shared likewise).
    refused: Arc<AtomicU64>,
    /// Panics caught in the fan-out.
    fanout_panics: Arc<AtomicU64>,
    /// Events `track` refused because a setter kept an invalid value.
    invalid: AtomicU64,
    /// Events discarded on purpose: sampling, policy (shared with the fan-out likewise).
    discarded: Arc<[AtomicU64; 2]>,
    /// The names of its emitters, built-in and custom, each once (see
    /// [`Inner::unique_name`]).
    names: Mutex<Vec<String>>,
    refused_burst: Burst,
    invalid_burst: Burst,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("namespace", &self.inner.settings.namespace())
            .field("tracked", &self.inner.tracked.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why events were discarded on purpose before they were tracked (the middleware's
/// sampling, or a policy on the response of the request that produced them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DiscardReason {
    /// Left out by sampling.
    Sampling,
    /// Dropped by a policy (for example: events of a request whose response was a 5xx).
    Policy,
}

/// Events discarded on purpose, by [`DiscardReason`]: never tracked, never counted in
/// `tracked`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiscardCounts {
    /// Left out by sampling.
    pub sampling: u64,
    /// Dropped by a policy.
    pub policy: u64,
}

impl DiscardCounts {
    /// The count for `reason`.
    pub fn get(&self, reason: DiscardReason) -> u64 {
        match reason {
            DiscardReason::Sampling => self.sampling,
            DiscardReason::Policy => self.policy,
        }
    }

    /// Every discarded event.
    pub fn total(&self) -> u64 {
        self.sampling + self.policy
    }
}

/// The tracker's counters and each emitter's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrackerStats {
    /// Events passed to [`Tracker::track`] (a transaction counts its items too).
    pub tracked: u64,
    /// Of those, events refused because the fan-out had too many waiting (they reached no
    /// emitter).
    pub refused: u64,
    /// Events not tracked, and not counted in `tracked`, because a setter of the event or of
    /// its subject kept an invalid value ([`TrackError::InvalidEvent`]).
    pub invalid: u64,
    /// Events discarded on purpose before tracking (sampling, policy), not counted in
    /// `tracked`.
    pub discarded: DiscardCounts,
    /// Each emitter, in the order they were added.
    pub emitters: Vec<EmitterReport>,
    /// Panics caught in the fan-out, each logged at ERROR; it goes on with its emitters,
    /// and events it was handing over at a panic are counted as refused by each emitter
    /// that did not get them.
    pub fanout_panics: u64,
}

impl Tracker {
    /// Starts building a tracker for `namespace` (`tna`).
    pub fn builder(namespace: impl Into<String>) -> TrackerBuilder {
        TrackerBuilder {
            settings: TrackerSettings::new(namespace),
            emitters: Vec::new(),
            custom: Vec::new(),
            flush_timer: Some(DEFAULT_FLUSH_TIMER),
            mailbox_capacity: None,
            queue_bytes: DEFAULT_QUEUE_BYTES,
        }
    }

    /// The settings events are stamped with.
    pub fn settings(&self) -> &TrackerSettings {
        &self.inner.settings
    }

    /// Tracks `event` and returns its id (a transaction: the id of its `tr` event). Never
    /// waits: the event is stamped and handed to the fan-out.
    ///
    /// The `Result` is the event id or why nothing was tracked. Like every `Result` it is
    /// `#[must_use]`, and ignoring it (`let _ = tracker.track(..)`) loses nothing silently:
    /// every refusal is counted in [`stats`](Self::stats) and logged once per burst. Check
    /// it where an invalid event would be a bug worth seeing, or use `?` in a function
    /// returning an error.
    ///
    /// # Errors
    ///
    /// [`TrackError::InvalidEvent`] when a setter of the event or of its subject kept an
    /// invalid value (counted as `invalid`); [`TrackError::ShutDown`] after a shutdown;
    /// [`TrackError::QueueFull`] when the fan-out cannot keep up (counted as `refused`).
    pub fn track<E: Event>(&self, event: E) -> Result<Uuid, TrackError> {
        self.track_with(event, None)
    }

    /// Tracks `event` with `subject` merged over the tracker's (and under the event's own):
    /// a request's subject, for instance.
    ///
    /// # Errors
    ///
    /// As [`track`](Self::track).
    pub fn track_with_subject<E: Event>(
        &self,
        event: E,
        subject: &Subject,
    ) -> Result<Uuid, TrackError> {
        self.track_with(event, Some(subject))
    }

    fn track_with<E: Event>(
        &self,
        event: E,
        subject: Option<&Subject>,
    ) -> Result<Uuid, TrackError> {
        let inner = &*self.inner;
        if inner.shut_down.load(Ordering::Acquire) {
            return Err(TrackError::ShutDown);
        }
        let mut first = None;
        let mut outcome = Ok(());
        let stamped = inner
            .settings
            .stamp_each_with_extra(event, subject, &mut |stamped| {
                first.get_or_insert(stamped.id());
                inner.tracked.fetch_add(1, Ordering::Relaxed);
                match inner.inbox.push(Arc::new(stamped)) {
                    Ok(()) => {
                        if let Some(refused) = inner.refused_burst.end() {
                            tracing::warn!(
                                namespace = %inner.settings.namespace(),
                                refused,
                                "tracker queue has room again after refusing events"
                            );
                        }
                    }
                    Err(Refused::Full) => outcome = Err(inner.refuse_full()),
                    Err(Refused::Closed) => outcome = Err(TrackError::ShutDown),
                }
            });
        if let Err(error) = stamped {
            return Err(inner.refuse_invalid(error));
        }
        if let Some(invalid) = inner.invalid_burst.end() {
            tracing::warn!(
                namespace = %inner.settings.namespace(),
                invalid,
                "tracking valid events again after refusing invalid ones"
            );
        }
        outcome?;
        Ok(first.expect("every event stamps at least one payload"))
    }

    /// Stamps `event` into [`Track`] messages (a transaction gives several) for code that
    /// sends them itself, to [`recipient`](Self::recipient) or to an emitter. They are not
    /// counted as `tracked`.
    ///
    /// # Errors
    ///
    /// The [`EventError`] a setter of the event or of its subject kept; nothing is stamped.
    pub fn stamp<E: Event>(&self, event: E) -> Result<Vec<Track>, EventError> {
        self.stamp_with(event, None)
    }

    /// [`stamp`](Self::stamp) with an extra subject merged under the event's own.
    pub(crate) fn stamp_with<E: Event>(
        &self,
        event: E,
        subject: Option<&Subject>,
    ) -> Result<Vec<Track>, EventError> {
        let mut tracks = Vec::with_capacity(1);
        self.inner
            .settings
            .stamp_each_with_extra(event, subject, &mut |stamped| {
                tracks.push(Track::from(stamped));
            })?;
        Ok(tracks)
    }

    /// Counts `count` events discarded on purpose for `reason` (they are not tracked): the
    /// middleware's sampling and policies.
    #[cfg(feature = "web")]
    pub(crate) fn count_discarded(&self, reason: DiscardReason, count: u64) {
        let at = match reason {
            DiscardReason::Sampling => 0,
            DiscardReason::Policy => 1,
        };
        self.inner.discarded[at].fetch_add(count, Ordering::Relaxed);
    }

    /// Where [`Track`] messages go to reach every emitter: the fan-out.
    pub fn recipient(&self) -> Recipient<Track> {
        self.inner.fanout.clone().recipient()
    }

    /// Sends everything buffered and waits until every event tracked before is sent or
    /// dropped, or [`DEFAULT_FLUSH_TIMEOUT`] passes; the report sums every emitter's.
    ///
    /// # Errors
    ///
    /// [`FlushError::ShutDown`] after a shutdown, [`FlushError::Unavailable`] when the
    /// actors are gone.
    pub async fn flush(&self) -> Result<FlushReport, FlushError> {
        self.flush_with_timeout(DEFAULT_FLUSH_TIMEOUT).await
    }

    /// [`flush`](Self::flush) with its own deadline.
    ///
    /// # Errors
    ///
    /// As [`flush`](Self::flush).
    pub async fn flush_with_timeout(&self, timeout: Duration) -> Result<FlushReport, FlushError> {
        if self.inner.shut_down.load(Ordering::Acquire) {
            return Err(FlushError::ShutDown);
        }
        self.inner
            .fanout
            .send(Flush::with_timeout(timeout))
            .await
            .map_err(|_| FlushError::Unavailable)
    }

    /// Starts a flush of every emitter and returns at once: each starts sending what it
    /// holds, and nothing waits for a reply (many calls cost nothing but the messages).
    pub fn request_flush(&self) {
        self.inner.fanout.do_send(Flush::default());
    }

    /// Flushes every emitter every `period` from now on, replacing the previous period.
    pub fn set_flush_timer(&self, period: Duration) {
        self.inner.timer.do_send(SetFlushTimer(Some(period)));
    }

    /// Stops the tracker-wide flush timer.
    pub fn cancel_flush_timer(&self) {
        self.inner.timer.do_send(SetFlushTimer(None));
    }

    /// Builds, starts and adds an emitter; it receives the events tracked from now on.
    ///
    /// Its name is unique in this tracker: under a name an emitter of the tracker already
    /// has (two unnamed emitters to one endpoint, say), it is renamed with `#2` (`#3`, …)
    /// after it, in its stats, handle, logs and metrics alike. The same holds for the emitters given
    /// to the builder.
    ///
    /// # Errors
    ///
    /// [`AddEmitterError::Build`] for invalid settings, [`AddEmitterError::ShutDown`] after
    /// a shutdown.
    pub fn add_emitter(&self, emitter: EmitterBuilder) -> Result<EmitterHandle, AddEmitterError> {
        if self.inner.shut_down.load(Ordering::Acquire) {
            return Err(AddEmitterError::ShutDown);
        }
        Ok(self.start_emitter(emitter.build()?)?)
    }

    fn start_emitter(&self, mut config: EmitterConfig) -> Result<EmitterHandle, BuildError> {
        let runtime = Runtime::start("snowplow-emitter").map_err(BuildError::spawn)?;
        let name = self.inner.unique_name(config.name());
        config.rename(&name);
        let method = config.method();
        let final_stats = config.final_stats();
        let held = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let addr = config
            .owned_by(Owner {
                reclaimer: self.inner.reclaimer.clone(),
                refused: refused.clone(),
                held: held.clone(),
                loss_reported: self.inner.loss_reported.clone(),
                namespace: self.inner.settings.namespace().to_owned(),
            })
            .start_in(runtime.arbiter());
        let target = addr.clone().recipient();
        let timer =
            FlushTimer::start_in_arbiter(&self.inner.home, move |_| FlushTimer::new(target, None));
        self.inner
            .add_route(Route::built_in(name.clone(), addr.clone(), method, refused));
        let handle = EmitterHandle {
            name,
            addr,
            timer,
            final_stats,
            held,
        };
        lock(&self.inner.emitters).push(handle.clone());
        let mut runtimes = lock(&self.inner.runtimes);
        if self.inner.shut_down.load(Ordering::Acquire) {
            // A shutdown began meanwhile (it stops the threads it finds, later): this one
            // would be left running.
            runtime.stop();
        } else {
            runtimes.push(runtime);
        }
        Ok(handle)
    }

    /// Adds a custom emitter; it receives the events tracked from now on. A name another
    /// emitter of this tracker has is made unique as [`add_emitter`](Self::add_emitter)
    /// makes it.
    pub fn add_custom_emitter(&self, emitter: CustomEmitter) {
        let name = self.inner.unique_name(&emitter.name);
        self.inner
            .add_route(Route::custom(name, emitter.track, emitter.flush));
    }

    /// The built-in emitters, in the order they were added.
    pub fn emitters(&self) -> Vec<EmitterHandle> {
        lock(&self.inner.emitters).clone()
    }

    /// The tracker's counters and every emitter's; after a shutdown, the final ones.
    ///
    /// # Errors
    ///
    /// [`StatsError::Unavailable`] when the actors are gone without a shutdown's figures.
    pub async fn stats(&self) -> Result<TrackerStats, StatsError> {
        let last = lock(&self.inner.final_reports).clone();
        let emitters = match last {
            Some(emitters) => emitters,
            None => self
                .inner
                .fanout
                .send(GetReports)
                .await
                .map_err(|_| StatsError::Unavailable)?,
        };
        Ok(TrackerStats {
            tracked: self.inner.tracked.load(Ordering::Relaxed),
            refused: self.inner.refused.load(Ordering::Relaxed),
            invalid: self.inner.invalid.load(Ordering::Relaxed),
            discarded: DiscardCounts {
                sampling: self.inner.discarded[0].load(Ordering::Relaxed),
                policy: self.inner.discarded[1].load(Ordering::Relaxed),
            },
            emitters,
            fanout_panics: self.inner.fanout_panics.load(Ordering::Relaxed),
        })
    }

    /// Whether the emitters deliver: healthy, degraded or down, with the reasons and the
    /// figures behind them (see [`crate::health`]; do not fail readiness on it).
    pub async fn health(&self) -> Health {
        if self.inner.shut_down.load(Ordering::Acquire) {
            return Health::new(vec![HealthReason::ShutDown], Vec::new());
        }
        let Ok(stats) = self.stats().await else {
            return Health::new(vec![HealthReason::Stopped], Vec::new());
        };
        let built_in: Vec<String> = self.emitters().iter().map(|e| e.name.clone()).collect();
        let emitters = stats
            .emitters
            .iter()
            .filter_map(|report| match &report.stats {
                Some(stats) => Some(EmitterHealth::from_stats(report.name.clone(), stats)),
                None if built_in.contains(&report.name) => {
                    Some(EmitterHealth::stopped(report.name.clone()))
                }
                None => None,
            })
            .collect();
        Health::new(Vec::new(), emitters)
    }

    /// Stops the flush timers, flushes every emitter with `timeout`, counts what is left as
    /// dropped (`shutdown`), stops the emitters and the tracker's threads, and reports.
    /// Tracking afterwards returns [`TrackError::ShutDown`]; [`stats`](Self::stats) returns
    /// the final figures.
    ///
    /// It works after the application's actix `System` has stopped (as actix-server stops
    /// it after a signal): the tracker's actors run on threads of their own.
    /// [`cut_shutdown`](Self::cut_shutdown) ends it early (a second signal).
    ///
    /// # Errors
    ///
    /// [`ShutdownError::AlreadyShutDown`] at once for a second call,
    /// [`ShutdownError::Unavailable`] when the actors are already gone.
    pub async fn shutdown(&self, timeout: Duration) -> Result<FlushReport, ShutdownError> {
        // The deadline runs from the call, whatever waits in the mailboxes.
        let shutdown = Shutdown::with_timeout(timeout);
        if self.inner.shut_down.swap(true, Ordering::AcqRel) {
            return Err(ShutdownError::AlreadyShutDown);
        }
        self.inner.timer.do_send(SetFlushTimer(None));
        for emitter in self.emitters() {
            emitter.cancel_flush_timer();
        }
        let report = self.inner.fanout.send(shutdown).await;
        if report.is_ok() {
            // The emitters are closed but still answer: their final figures, for `stats`.
            if let Ok(reports) = self.inner.fanout.send(GetReports).await {
                *lock(&self.inner.final_reports) = Some(reports);
            }
        }
        self.inner.stop_threads();
        let report = report.map_err(|_| ShutdownError::Unavailable)?;
        tracing::info!(
            sent = report.sent,
            dropped = report.dropped.total(),
            timed_out = report.timed_out,
            "tracker shut down"
        );
        Ok(report)
    }

    /// Cuts a [`shutdown`](Self::shutdown) in progress short: its deadline becomes now, so
    /// it returns at once, with what is left counted as dropped (`shutdown`) and requests
    /// still in flight abandoned. What a second signal does. Without a shutdown in progress,
    /// it does nothing.
    pub fn cut_shutdown(&self) {
        if self.inner.shut_down.load(Ordering::Acquire) {
            self.inner
                .fanout
                .do_send(Shutdown::with_timeout(Duration::ZERO));
        }
    }
}

/// A tracker dropped without a shutdown loses what it buffers: one WARN says so, and its
/// threads stop (each emitter counts what it held as dropped, `shutdown`).
impl Drop for Inner {
    fn drop(&mut self) {
        // After a shutdown the threads are stopped already, unless it was abandoned
        // half-way (its future dropped): then the emitters say what they lose.
        if !self.shut_down.swap(true, Ordering::AcqRel) {
            self.warn_of_loss();
        }
        self.stop_threads();
    }
}

impl Inner {
    /// Stops the threads the tracker started (what is left of them).
    fn stop_threads(&self) {
        for runtime in lock(&self.runtimes).drain(..) {
            runtime.stop();
        }
    }

    /// The one WARN of a drop without a shutdown, with what is lost.
    fn warn_of_loss(&self) {
        // Events on their way from the fan-out to an emitter when the last handle goes
        // are not in these counts: the emitters' own lines (DEBUG) have the exact ones.
        let waiting = self.inbox.close().event_count() as u64;
        let held: u64 = lock(&self.emitters)
            .iter()
            .map(|emitter| emitter.held.load(Ordering::Relaxed))
            .sum();
        let lost = waiting + held;
        if lost > 0 {
            self.loss_reported.store(true, Ordering::Release);
            tracing::warn!(
                namespace = %self.settings.namespace(),
                lost,
                tracked = self.tracked.load(Ordering::Relaxed),
                "tracker dropped without a shutdown: its buffered events are lost; build it \
                 once (outside the HttpServer factory) and await tracker.shutdown(..) before \
                 the process ends"
            );
        } else {
            tracing::debug!(namespace = %self.settings.namespace(), "tracker dropped without a shutdown, with nothing buffered");
        }
    }

    /// `name`, or, when an emitter of this tracker already has it, the first of `name#2`,
    /// `name#3`, … that none has; reserved for the emitter being added.
    fn unique_name(&self, name: &str) -> String {
        let mut names = lock(&self.names);
        let mut unique = name.to_owned();
        let mut suffix = 2;
        while names.contains(&unique) {
            unique = format!("{name}#{suffix}");
            suffix += 1;
        }
        if unique != name {
            tracing::info!(
                namespace = %self.settings.namespace(),
                emitter = %unique,
                taken = name,
                "another emitter of the tracker has this name: renamed"
            );
        }
        names.push(unique.clone());
        unique
    }

    /// Adds an emitter to the fan-out after every event tracked so far. After a shutdown
    /// it receives nothing (the fan-out is gone).
    fn add_route(&self, route: Route) {
        let _ = self.inbox.push_route(route);
    }

    fn refuse_full(&self) -> TrackError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if self.refused_burst.add(1) {
            tracing::warn!(
                namespace = %self.settings.namespace(),
                "tracker queue full: dropping events until it has room"
            );
        }
        TrackError::QueueFull
    }

    fn refuse_invalid(&self, error: EventError) -> TrackError {
        self.invalid.fetch_add(1, Ordering::Relaxed);
        if self.invalid_burst.add(1) {
            tracing::warn!(
                namespace = %self.settings.namespace(),
                error = %error.without_input(),
                "invalid event not tracked: refusing invalid events until a valid one comes"
            );
        }
        TrackError::InvalidEvent(error)
    }
}

/// One built-in emitter of a tracker: its address, its own flush timer, its stats.
#[derive(Debug, Clone)]
pub struct EmitterHandle {
    name: String,
    addr: Addr<Emitter>,
    timer: Addr<FlushTimer>,
    final_stats: FinalStats,
    /// Events it holds (queued and in flight), as it last said.
    held: Arc<AtomicU64>,
}

impl EmitterHandle {
    /// The emitter's name: given with [`EmitterBuilder::name`], or its endpoint.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The emitter actor, to send it messages directly.
    pub fn addr(&self) -> &Addr<Emitter> {
        &self.addr
    }

    /// Flushes this emitter every `period`, besides the tracker-wide timer (the Python
    /// tracker's `emitter.set_flush_timer(5)`); setting it again replaces the period.
    pub fn set_flush_timer(&self, period: Duration) {
        self.timer.do_send(SetFlushTimer(Some(period)));
    }

    /// Stops this emitter's own flush timer.
    pub fn cancel_flush_timer(&self) {
        self.timer.do_send(SetFlushTimer(None));
    }

    /// Flushes this emitter only.
    ///
    /// # Errors
    ///
    /// [`FlushError::Unavailable`] when the emitter is gone.
    pub async fn flush(&self) -> Result<FlushReport, FlushError> {
        self.addr
            .send(Flush::default())
            .await
            .map_err(|_| FlushError::Unavailable)
    }

    /// This emitter's counters; once it is gone, the ones it left
    /// ([`final_stats`](Self::final_stats)); `None` when it left none.
    pub async fn stats(&self) -> Option<EmitterStats> {
        match self.addr.send(crate::messages::GetStats).await {
            Ok(stats) => Some(stats),
            Err(_) => self.final_stats.get(),
        }
    }

    /// Whether this emitter delivers (see [`crate::health`]).
    pub async fn health(&self) -> EmitterHealth {
        match self.stats().await {
            Some(stats) => EmitterHealth::from_stats(self.name.clone(), &stats),
            None => EmitterHealth::stopped(self.name.clone()),
        }
    }

    /// The counters the emitter left when it shut down or stopped.
    pub fn final_stats(&self) -> Option<EmitterStats> {
        self.final_stats.get()
    }
}
