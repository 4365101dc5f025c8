//! The fan-out: hands each tracked event to every emitter, gathers flush replies.
//!
//! ```text
//! Tracker::track ─Inbox::push─▶ Inbox ─(Wake when idle)─▶ Fanout ─┬─TrackBatch─▶ Emitter A
//!                                                                 ├─TrackBatch─▶ Emitter B
//!                                                                 └─Track ×n───▶ custom emitter
//! ```
//!
//! [`Inbox::push`] queues a stamped event and wakes the fan-out when it is idle: the inbox
//! alone decides when a [`Wake`] is due. Once woken, the fan-out takes everything waiting,
//! and looks again every [`BURST_INTERVAL`] for as long as events keep arriving, so a steady
//! stream costs its producers no message and no system call. It encodes each event for the
//! methods its emitters use (once, off the emitters' arbiters) and hands the lot to each
//! built-in emitter as one [`TrackBatch`]; custom emitters get one [`Track`] per event.
//!
//! Hand-overs use `try_send`, so a slow or stopped emitter never delays the others: when its
//! mailbox is full the events are refused for that emitter only, counted once (in the
//! route's `refused`, which a built-in emitter reports as received and dropped for
//! `capacity`) and logged once per burst. `Flush`, `Shutdown` and stats requests first take
//! what waits in the inbox, so each emitter sees them after every event tracked before;
//! their replies are gathered into one [`FlushReport`].

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix::WeakAddr;
use futures::future::{join_all, LocalBoxFuture};

use crate::emitter::Emitter;
use crate::messages::{Flush, GetStats, Shutdown, Track, TrackBatch};
use crate::metrics::{TrackerMetrics, PUBLISH_INTERVAL};
use crate::report::{EmitterReport, EmitterStats, FlushReport};
use crate::sync::{lock, Burst};
use crate::wire::{Method, StampedEvent};

/// Events tracked and not yet taken by the fan-out: `track` pushes, the fan-out takes all.
/// Emitters added meanwhile wait here too, at their place among the events, so an emitter
/// receives exactly the events tracked after it was added.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    capacity: usize,
    /// Bytes of events it holds at most (their pairs, as stamped).
    max_bytes: usize,
    /// The fan-out it wakes (weak: the fan-out holds the inbox).
    fanout: WeakAddr<Fanout>,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct InboxState {
    events: Vec<Arc<StampedEvent>>,
    /// The pairs' bytes of `events`.
    bytes: usize,
    /// Emitters added, each with the number of `events` tracked before it.
    routes: Vec<(usize, Route)>,
    /// A [`Wake`] is on its way, or the fan-out is awake and looks again soon: later pushes
    /// need not send another.
    woken: bool,
    /// The tracker shut down: nothing is taken any more.
    closed: bool,
}

/// What the fan-out takes from the inbox: events, and emitters added among them.
#[derive(Default)]
pub(crate) struct Taken {
    events: Vec<Arc<StampedEvent>>,
    routes: Vec<(usize, Route)>,
}

impl Taken {
    /// The events taken.
    pub(crate) fn event_count(&self) -> usize {
        self.events.len()
    }
}

/// Why the inbox did not take an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// It holds its capacity (in events or bytes).
    Full,
    /// The tracker shut down.
    Closed,
}

impl Inbox {
    /// An inbox holding at most `capacity` events and `max_bytes` of them, waking `fanout`.
    fn new(capacity: usize, max_bytes: usize, fanout: WeakAddr<Fanout>) -> Self {
        Self {
            state: Mutex::new(InboxState::default()),
            capacity,
            max_bytes,
            fanout,
        }
    }

    /// Queues `event`, and wakes the fan-out when it is idle.
    pub(crate) fn push(&self, event: Arc<StampedEvent>) -> Result<(), Refused> {
        let wake = self.offer(event)?;
        self.wake_if(wake);
        Ok(())
    }

    /// Queues a new emitter after the events tracked so far, and wakes the fan-out when it
    /// is idle.
    pub(crate) fn push_route(&self, route: Route) -> Result<(), Refused> {
        let wake = {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(Refused::Closed);
            }
            let at = state.events.len();
            state.routes.push((at, route));
            Self::woken(&mut state)
        };
        self.wake_if(wake);
        Ok(())
    }

    /// Queues `event` unless the inbox is full or closed; `true` when the fan-out is to be
    /// woken (the wake rule, without the message).
    fn offer(&self, event: Arc<StampedEvent>) -> Result<bool, Refused> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(Refused::Closed);
        }
        let size = event.payload().heap_bytes();
        if state.events.len() >= self.capacity
            || (state.bytes + size > self.max_bytes && !state.events.is_empty())
        {
            return Err(Refused::Full);
        }
        state.bytes += size;
        state.events.push(event);
        Ok(Self::woken(&mut state))
    }

    /// Marks a wake as due; `true` when none was.
    fn woken(state: &mut InboxState) -> bool {
        !std::mem::replace(&mut state.woken, true)
    }

    fn wake_if(&self, wake: bool) {
        if let Some(fanout) = wake.then(|| self.fanout.upgrade()).flatten() {
            fanout.do_send(Wake);
        }
    }

    /// Takes everything queued (for a flush or a stats request: whether a [`Wake`] is due
    /// stays as it was).
    fn take(&self) -> Taken {
        Self::take_from(&mut lock(&self.state))
    }

    /// Takes everything queued for a [`Wake`] or a later look. When there was something,
    /// more may follow: the fan-out stays awake and looks again after [`BURST_INTERVAL`]
    /// (`true`), and pushes meanwhile send no `Wake`. When there was nothing it goes idle
    /// and the next push wakes it.
    fn take_for_wake(&self) -> (Taken, bool) {
        let mut state = lock(&self.state);
        let busy = !state.events.is_empty() || !state.routes.is_empty();
        state.woken = busy;
        (Self::take_from(&mut state), busy)
    }

    fn take_from(state: &mut InboxState) -> Taken {
        // As much room as the last burst took: a steady stream does not regrow the vector.
        let room = state.events.len().clamp(16, 65_536);
        state.bytes = 0;
        Taken {
            events: std::mem::replace(&mut state.events, Vec::with_capacity(room)),
            routes: std::mem::take(&mut state.routes),
        }
    }

    /// Takes everything queued and refuses anything later.
    pub(crate) fn close(&self) -> Taken {
        let mut state = lock(&self.state);
        state.closed = true;
        Self::take_from(&mut state)
    }
}

/// While events keep arriving the fan-out takes them this often instead of being woken by
/// each: a wake costs the tracking thread a system call, a timer costs it nothing. It is
/// also the most an event waits in the inbox.
pub(crate) const BURST_INTERVAL: Duration = Duration::from_millis(1);

/// Tells the fan-out that its inbox has events.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct Wake;

/// One emitter as the fan-out sees it.
pub(crate) struct Route {
    name: String,
    to: Destination,
    /// Events this emitter could not be handed (its mailbox full or closed), the one count
    /// of them: a built-in emitter shares it and reports them as received and dropped
    /// (`capacity`).
    refused: Arc<AtomicU64>,
    /// Refusals since the mailbox last took an event (logged once per burst).
    burst: Burst,
}

/// Where a route's events and flushes go.
enum Destination {
    /// An emitter of this crate: takes batches, flushes, shuts down, has stats; its events
    /// are encoded here for its method.
    BuiltIn {
        emitter: Addr<Emitter>,
        method: Method,
    },
    /// A custom emitter: one [`Track`] per event, flushes if it takes them.
    Custom {
        track: Recipient<Track>,
        flush: Option<Recipient<Flush>>,
    },
}

/// A reply awaited from one emitter.
type Reply<T> = LocalBoxFuture<'static, Result<T, MailboxError>>;

impl Route {
    /// A built-in emitter sending with `method`, sharing its count of refused events.
    pub(crate) fn built_in(
        name: String,
        emitter: Addr<Emitter>,
        method: Method,
        refused: Arc<AtomicU64>,
    ) -> Self {
        Self::new(name, Destination::BuiltIn { emitter, method }, refused)
    }

    /// A custom emitter.
    pub(crate) fn custom(
        name: String,
        track: Recipient<Track>,
        flush: Option<Recipient<Flush>>,
    ) -> Self {
        Self::new(name, Destination::Custom { track, flush }, Arc::default())
    }

    fn new(name: String, to: Destination, refused: Arc<AtomicU64>) -> Self {
        Self {
            name,
            to,
            refused,
            burst: Burst::default(),
        }
    }

    fn method(&self) -> Option<Method> {
        match self.to {
            Destination::BuiltIn { method, .. } => Some(method),
            Destination::Custom { .. } => None,
        }
    }

    fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Hands `events` over: as one batch to a built-in emitter, one by one to a custom one.
    fn forward(&self, events: Vec<Arc<StampedEvent>>) {
        match &self.to {
            Destination::BuiltIn { emitter, .. } => {
                let count = events.len() as u64;
                let refused = emitter.try_send(TrackBatch(events)).err().map(refusal);
                self.count_hand_over(count, refused);
            }
            Destination::Custom { track, .. } => {
                for event in events {
                    let refused = track.try_send(Track(event)).err().map(refusal);
                    self.count_hand_over(1, refused);
                }
            }
        }
    }

    /// Counts `count` events handed over, or refused for `why` (logged once per burst).
    fn count_hand_over(&self, count: u64, refused: Option<&'static str>) {
        let method = self.method().map(tracing::field::display);
        match refused {
            None => {
                if let Some(refused) = self.burst.end() {
                    tracing::warn!(emitter = %self.name, method, refused, "emitter takes events again after refusing some");
                }
            }
            Some(why) => {
                self.refused.fetch_add(count, Ordering::Relaxed);
                if self.burst.add(count) {
                    tracing::warn!(emitter = %self.name, method, why, "emitter cannot take events: dropping them as capacity");
                }
            }
        }
    }

    /// Starts a flush without waiting for it (a flush already waiting in the mailbox does
    /// the same: a full mailbox loses nothing).
    fn start_flush(&self, flush: Flush) {
        match &self.to {
            Destination::BuiltIn { emitter, .. } => {
                let _ = emitter.try_send(flush);
            }
            Destination::Custom {
                flush: Some(to), ..
            } => {
                let _ = to.try_send(flush);
            }
            Destination::Custom { flush: None, .. } => {}
        }
    }

    /// The emitter's report of `flush`, when it takes flushes.
    fn ask_flush(&self, flush: Flush) -> Option<Reply<FlushReport>> {
        let deadline = flush.deadline();
        match &self.to {
            Destination::BuiltIn { emitter, .. } => {
                Some(Box::pin(bounded(emitter.send(flush), deadline)))
            }
            Destination::Custom {
                flush: Some(to), ..
            } => Some(Box::pin(bounded(to.send(flush), deadline))),
            Destination::Custom { flush: None, .. } => None,
        }
    }

    /// The emitter's report of `shutdown`: a custom emitter gets a flush with the same
    /// deadline.
    fn ask_shutdown(&self, shutdown: Shutdown) -> Option<Reply<FlushReport>> {
        match &self.to {
            Destination::BuiltIn { emitter, .. } => Some(Box::pin(bounded(
                emitter.send(shutdown),
                shutdown.deadline(),
            ))),
            Destination::Custom { .. } => self.ask_flush(Flush::until(shutdown.deadline())),
        }
    }

    /// The emitter's counters, when it has some.
    fn ask_stats(&self) -> Option<Reply<EmitterStats>> {
        match &self.to {
            Destination::BuiltIn { emitter, .. } => Some(Box::pin(emitter.send(GetStats))),
            Destination::Custom { .. } => None,
        }
    }
}

/// How long past its own deadline an emitter's flush reply is awaited: built-in emitters
/// answer at their deadline; a custom emitter that never answers must not hold the
/// tracker's flush or shutdown forever.
const REPLY_GRACE: Duration = Duration::from_secs(1);

/// `reply`, or an error once `deadline` (and [`REPLY_GRACE`]) has passed.
async fn bounded<T>(
    reply: impl std::future::Future<Output = Result<T, MailboxError>>,
    deadline: Instant,
) -> Result<T, MailboxError> {
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .saturating_add(REPLY_GRACE);
    match actix_rt::time::timeout(wait, reply).await {
        Ok(reply) => reply,
        Err(_) => Err(MailboxError::Timeout),
    }
}

/// Why a mailbox refused a message, for the log.
fn refusal<M>(error: SendError<M>) -> &'static str {
    match error {
        SendError::Full(_) => "its mailbox is full",
        SendError::Closed(_) => "it has stopped",
    }
}

/// Forwards every event to every emitter.
pub(crate) struct Fanout {
    routes: Vec<Route>,
    inbox: Arc<Inbox>,
    /// Panics caught in its handlers (the tracker reports them).
    panics: Arc<AtomicU64>,
    /// Where the tracker-wide figures are published (see [`crate::metrics`]).
    metrics: TrackerMetrics,
    /// Tests: the next hand-over panics.
    #[cfg(test)]
    panic_next: bool,
}

impl fmt::Debug for Fanout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.routes.iter().map(|r| r.name.as_str()).collect();
        f.debug_struct("Fanout").field("emitters", &names).finish()
    }
}

impl Fanout {
    /// Starts a fan-out on `arbiter` and returns its address and the inbox that feeds it
    /// (at most `capacity` events and `max_bytes` of them); its mailbox holds `capacity`
    /// messages from the first one (see [`crate::mailbox`]). It publishes the tracker-wide
    /// figures to `metrics`.
    pub(crate) fn start_on(
        arbiter: &ArbiterHandle,
        capacity: usize,
        max_bytes: usize,
        panics: Arc<AtomicU64>,
        metrics: TrackerMetrics,
    ) -> (Addr<Self>, Arc<Inbox>) {
        let (addr, mailbox) = crate::mailbox::sized(capacity);
        let inbox = Arc::new(Inbox::new(capacity, max_bytes, addr.downgrade()));
        let fed = inbox.clone();
        arbiter.spawn_fn(move || {
            mailbox.into_context().run(Fanout {
                routes: Vec::new(),
                inbox: fed,
                panics,
                metrics,
                #[cfg(test)]
                panic_next: false,
            });
        });
        (addr, inbox)
    }

    /// Runs `work`; a panic in it is caught, counted and logged, and the fan-out goes on
    /// with its emitters (its state is its list of emitters, which no handler leaves half
    /// changed: events being handed over at the panic are counted by [`hand_over`]).
    ///
    /// [`hand_over`]: Self::hand_over
    fn contained<R>(&mut self, what: &'static str, work: impl FnOnce(&mut Self) -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(|| work(self))) {
            Ok(result) => Some(result),
            Err(panic) => {
                self.count_panic(what, panic.as_ref());
                None
            }
        }
    }

    fn count_panic(&self, what: &'static str, panic: &(dyn std::any::Any + Send)) {
        self.panics.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            during = what,
            panic = %crate::error::panic_message(panic),
            "the tracker's fan-out panicked: it goes on with its emitters"
        );
    }

    /// Hands everything waiting in the inbox to every emitter.
    fn drain(&mut self) {
        let taken = self.inbox.take();
        self.hand_over_taken(taken);
    }

    /// Hands over what was taken from the inbox, adding each new emitter after the events
    /// tracked before it.
    fn hand_over_taken(&mut self, Taken { mut events, routes }: Taken) {
        let mut handed = 0;
        for (at, route) in routes {
            let later = events.split_off(at - handed);
            self.hand_over(std::mem::replace(&mut events, later));
            handed = at;
            self.routes.push(route);
        }
        self.hand_over(events);
    }

    /// Takes what waits after a [`Wake`] (or a look [`BURST_INTERVAL`] later) and looks
    /// again later while events keep arriving. A panic meanwhile is contained, and the
    /// fan-out looks again.
    fn on_wake(&mut self, ctx: &mut Context<Self>) {
        let busy = self
            .contained("taking events", |fanout| {
                let (taken, busy) = fanout.inbox.take_for_wake();
                fanout.hand_over_taken(taken);
                busy
            })
            .unwrap_or(true);
        if busy {
            ctx.run_later(BURST_INTERVAL, |fanout, ctx| fanout.on_wake(ctx));
        }
    }

    /// Encodes `events` for the methods the emitters use, then hands them to every emitter.
    /// Should encoding panic, the events reach no emitter and each counts them as refused
    /// (`capacity`), so nothing is lost silently.
    fn hand_over(&mut self, mut events: Vec<Arc<StampedEvent>>) {
        if events.is_empty() {
            return;
        }
        // Counted as tracked before they were queued: published before any emitter has
        // them, the tracker's figures never show fewer events than an emitter's do.
        self.metrics.publish();
        let post = self.routes.iter().any(|r| r.method() == Some(Method::Post));
        let get = self.routes.iter().any(|r| r.method() == Some(Method::Get));
        #[cfg(test)]
        let panic_next = std::mem::take(&mut self.panic_next);
        let encoded = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(test)]
            assert!(!panic_next, "a bug while encoding");
            for event in &mut events {
                StampedEvent::encode(event, post, get);
            }
        }));
        if let Err(panic) = encoded {
            self.count_panic("encoding events", panic.as_ref());
            for route in &self.routes {
                route.count_hand_over(events.len() as u64, Some("the fan-out panicked"));
            }
            return;
        }
        if let Some((last, others)) = self.routes.split_last() {
            for route in others {
                route.forward(events.clone());
            }
            last.forward(events);
        }
    }

    fn refused(&self) -> u64 {
        self.routes.iter().map(Route::refused).sum()
    }

    /// Awaits `replies` and merges them into one report; refusals by full mailboxes
    /// meanwhile are added as `capacity` drops.
    fn gather(&self, replies: Vec<Reply<FlushReport>>) -> ResponseActFuture<Self, FlushReport> {
        let refused_before = self.refused();
        Box::pin(
            join_all(replies)
                .into_actor(self)
                .map(move |replies, fanout, _| {
                    let mut report = FlushReport::default();
                    for reply in replies {
                        match reply {
                            Ok(one) => report.merge(&one),
                            Err(error) => {
                                tracing::warn!(%error, "an emitter did not answer a flush");
                                report.timed_out = true;
                            }
                        }
                    }
                    report.dropped.capacity += fanout.refused() - refused_before;
                    report
                }),
        )
    }
}

impl Actor for Fanout {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.metrics.enabled() {
            // What changes without waking it: refusals, discards.
            ctx.run_interval(PUBLISH_INTERVAL, |fanout, _| fanout.metrics.publish());
        }
    }
}

impl Handler<Wake> for Fanout {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.on_wake(ctx);
    }
}

/// A `Track` sent to the fan-out directly (by [`Tracker::recipient`](crate::Tracker)): after
/// what `track` queued before it.
impl Handler<Track> for Fanout {
    type Result = ();

    fn handle(&mut self, Track(event): Track, _: &mut Self::Context) {
        self.contained("handing over an event", |fanout| {
            fanout.drain();
            fanout.hand_over(vec![event]);
        });
    }
}

impl Handler<Flush> for Fanout {
    type Result = FanoutFlush;

    fn handle(&mut self, flush: Flush, _: &mut Self::Context) -> Self::Result {
        self.contained("a flush", Self::drain);
        self.metrics.publish();
        FanoutFlush(flush)
    }
}

/// The fan-out's answer to a [`Flush`]: sent with `send(..).await`, it gathers every
/// emitter's report; sent with `do_send`, it starts each emitter's flush and waits for
/// none.
#[derive(Debug)]
pub(crate) struct FanoutFlush(Flush);

impl actix::dev::MessageResponse<Fanout, Flush> for FanoutFlush {
    fn handle(
        self,
        ctx: &mut Context<Fanout>,
        reply: Option<actix::dev::OneshotSender<FlushReport>>,
    ) {
        let FanoutFlush(flush) = self;
        let Some(reply) = reply else {
            ctx.spawn(
                actix::fut::ready(()).map(move |(), fanout: &mut Fanout, _| {
                    for route in &fanout.routes {
                        route.start_flush(flush);
                    }
                }),
            );
            return;
        };
        ctx.spawn(
            actix::fut::ready(())
                .then(move |(), fanout: &mut Fanout, _| {
                    let replies = fanout.routes.iter().filter_map(|r| r.ask_flush(flush));
                    fanout.gather(replies.collect())
                })
                .map(move |report, _, _| {
                    let _ = reply.send(report);
                }),
        );
    }
}

impl Handler<Shutdown> for Fanout {
    type Result = ResponseActFuture<Self, FlushReport>;

    fn handle(&mut self, shutdown: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.contained("a shutdown", |fanout| {
            let left = fanout.inbox.close();
            fanout.hand_over_taken(left);
        });
        self.metrics.publish();
        let replies = self.routes.iter().filter_map(|r| r.ask_shutdown(shutdown));
        self.gather(replies.collect())
    }
}

/// Asks the fan-out for every emitter's counters.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<EmitterReport>")]
pub(crate) struct GetReports;

impl Handler<GetReports> for Fanout {
    type Result = ResponseActFuture<Self, Vec<EmitterReport>>;

    fn handle(&mut self, _: GetReports, _: &mut Self::Context) -> Self::Result {
        self.contained("a stats request", Self::drain);
        self.metrics.publish();
        let asks: Vec<_> = self
            .routes
            .iter()
            .map(|route| {
                let ask = route.ask_stats();
                let (name, refused) = (route.name.clone(), route.refused.clone());
                async move {
                    let stats = match ask {
                        Some(ask) => ask.await.ok(),
                        None => None,
                    };
                    EmitterReport {
                        name,
                        stats,
                        refused: refused.load(Ordering::Relaxed),
                    }
                }
            })
            .collect();
        Box::pin(join_all(asks).into_actor(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TrackerSettings;
    use crate::PageView;

    /// Makes the fan-out's next hand-over panic.
    struct PanicNext;

    impl Message for PanicNext {
        type Result = ();
    }

    impl Handler<PanicNext> for Fanout {
        type Result = ();

        fn handle(&mut self, _: PanicNext, _: &mut Self::Context) {
            self.panic_next = true;
        }
    }

    /// A custom emitter that counts what it gets.
    struct Counting(Arc<AtomicU64>);

    impl Actor for Counting {
        type Context = Context<Self>;
    }

    impl Handler<Track> for Counting {
        type Result = ();

        fn handle(&mut self, _: Track, _: &mut Self::Context) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hardening finding: a panic in the fan-out ended it for good, and with it every
    /// emitter's supply of events. It is caught, counted and logged; the events it was
    /// handing over are counted as refused by each emitter; later events flow as before.
    #[actix_rt::test]
    async fn finding_a_panic_in_the_fan_out_is_contained_and_its_events_counted() {
        let panics = Arc::new(AtomicU64::new(0));
        let (fanout, inbox) = Fanout::start_on(
            &Arbiter::current(),
            100,
            usize::MAX,
            panics.clone(),
            TrackerMetrics::none(),
        );
        let got = Arc::new(AtomicU64::new(0));
        let sink = Counting(got.clone()).start();
        inbox
            .push_route(Route::custom(
                "custom".into(),
                sink.clone().recipient(),
                None,
            ))
            .unwrap();
        fanout.send(GetReports).await.unwrap();

        fanout.send(PanicNext).await.unwrap();
        for _ in 0..3 {
            inbox.push(event()).unwrap();
        }
        let reports = fanout.send(GetReports).await.unwrap();
        assert_eq!(panics.load(Ordering::Relaxed), 1);
        assert_eq!(reports[0].refused, 3);

        for _ in 0..2 {
            inbox.push(event()).unwrap();
        }
        fanout.send(Flush::default()).await.unwrap();
        // The custom emitter's mailbox is handled in order: a stats-free round trip.
        let reports = fanout.send(GetReports).await.unwrap();
        sink.send(Track(event())).await.unwrap();
        assert_eq!(got.load(Ordering::Relaxed), 3);
        assert_eq!(reports[0].refused, 3);
    }

    fn event() -> Arc<StampedEvent> {
        let settings = TrackerSettings::new("test").unwrap();
        let page = PageView::new("https://shop.example/").unwrap();
        Arc::new(settings.stamp(page).unwrap().remove(0))
    }

    /// An inbox whose fan-out never runs: for the rules alone.
    fn inbox(capacity: usize, max_bytes: usize) -> Inbox {
        let (fanout, _mailbox) = crate::mailbox::sized::<Fanout>(1);
        Inbox::new(capacity, max_bytes, fanout.downgrade())
    }

    /// Hardening finding: the inbox was bounded in events only, so a burst of large events
    /// grew memory before any emitter's byte bound applied.
    #[test]
    fn finding_the_inbox_is_bounded_in_bytes_too_and_always_takes_one_event() {
        let size = event().payload().heap_bytes();
        let inbox = inbox(100, size * 2 + size / 2);

        let offered: Vec<_> = (0..3).map(|_| inbox.offer(event())).collect();

        assert_eq!(offered, [Ok(true), Ok(false), Err(Refused::Full)]);
        assert_eq!(inbox.take().event_count(), 2);
        // Taken: room again. An event larger than the bound alone is still taken.
        let tiny = self::inbox(100, 1);
        assert_eq!(tiny.offer(event()), Ok(true));
        assert_eq!(tiny.offer(event()), Err(Refused::Full));
        assert_eq!(inbox.offer(event()), Ok(false));
    }

    #[test]
    fn the_inbox_wakes_once_per_burst_refuses_beyond_capacity_and_closes() {
        let inbox = inbox(3, usize::MAX);

        let offered: Vec<_> = (0..4).map(|_| inbox.offer(event())).collect();

        // `Ok(true)`: this push wakes the fan-out.
        assert_eq!(
            offered,
            [Ok(true), Ok(false), Ok(false), Err(Refused::Full)]
        );
        // Events were there: the fan-out stays awake and looks again, pushes meanwhile do
        // not wake it.
        let (taken, busy) = inbox.take_for_wake();
        assert_eq!((taken.event_count(), busy), (3, true));
        assert_eq!(inbox.offer(event()), Ok(false));
        // A flush takes what waits and leaves the next look due.
        assert_eq!(inbox.take().event_count(), 1);
        // Nothing at the next look: the fan-out goes idle, the next push wakes it.
        let (taken, busy) = inbox.take_for_wake();
        assert_eq!((taken.event_count(), busy), (0, false));
        assert_eq!(inbox.offer(event()), Ok(true));
        // An emitter added counts as something to take, and wakes like an event.
        let (taken, busy) = inbox.take_for_wake();
        assert_eq!((taken.event_count(), busy), (1, true));
        let (_, busy) = inbox.take_for_wake();
        assert!(!busy);
        let (sink, _mailbox) = crate::mailbox::sized::<Fanout>(1);
        inbox
            .push_route(Route::custom("custom".into(), sink.recipient(), None))
            .unwrap();
        let (taken, busy) = inbox.take_for_wake();
        assert_eq!((taken.routes.len(), busy), (1, true));
        assert_eq!(inbox.offer(event()), Ok(false));
        assert_eq!(inbox.close().event_count(), 1);
        assert_eq!(inbox.offer(event()), Err(Refused::Closed));
        assert_eq!(inbox.take().event_count(), 0);
    }
}
