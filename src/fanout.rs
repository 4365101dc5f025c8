//! The fan-out: hands each tracked event to every emitter, gathers flush replies.
//!
//! ```text
//! Tracker::track ─push─▶ Inbox ─(Wake when idle)─▶ Fanout ─┬─TrackBatch─▶ Emitter A
//!                                                          ├─TrackBatch─▶ Emitter B
//!                                                          └─Track ×n───▶ custom emitter
//! Emitter A, B ─sent events─▶ Disposal ─(freed by)─▶ Fanout
//! ```
//!
//! `track` pushes the stamped event into the [`Inbox`] and wakes the fan-out only when it
//! is idle. Once woken, the fan-out takes everything waiting, and looks again every
//! [`BURST_INTERVAL`] for as long as events keep arriving, so a steady stream costs its
//! producers no mailbox message and no system call. It encodes each event for the methods
//! its emitters use (once, off the emitters' arbiters) and hands the lot to each built-in
//! emitter as one [`TrackBatch`]; custom emitters get one [`Track`] per event. It also frees
//! the events the emitters have sent, which they leave in the [`Disposal`].
//!
//! Hand-overs use `try_send`, so a slow or stopped emitter never delays the others: when its
//! mailbox is full the events are refused for that emitter only, counted as `capacity` drops
//! of that emitter and logged once per burst. `Flush`, `Shutdown` and stats requests first
//! take what waits in the inbox, so each emitter sees them after every event tracked before;
//! their replies are gathered into one [`FlushReport`].

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use actix::prelude::*;
use futures::future::join_all;

use crate::emitter::{EmitterStats, FlushReport, Method};
use crate::messages::{Flush, GetStats, Shutdown, Track, TrackBatch};
use crate::stamp::StampedEvent;
use crate::store::Disposal;

/// Events tracked and not yet taken by the fan-out: `track` pushes, the fan-out takes all.
/// Emitters added meanwhile wait here too, at their place among the events, so an emitter
/// receives exactly the events tracked after it was added.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    capacity: usize,
    /// Bytes of events it holds at most (their pairs, as stamped).
    max_bytes: usize,
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
    /// A [`Wake`] is on its way: later pushes need not send another.
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

/// What became of a pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued; `wake` says the fan-out must be sent a [`Wake`].
    Queued { wake: bool },
    /// Refused: the inbox holds its capacity.
    Full,
    /// Refused: the tracker shut down.
    Closed,
}

impl Inbox {
    /// An inbox holding at most `capacity` events and `max_bytes` of them.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(InboxState::default()),
            capacity,
            max_bytes,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `event` unless the inbox is full or closed.
    pub(crate) fn push(&self, event: Arc<StampedEvent>) -> Pushed {
        let mut state = self.state();
        if state.closed {
            return Pushed::Closed;
        }
        let size = event.payload().heap_bytes();
        if state.events.len() >= self.capacity
            || (state.bytes + size > self.max_bytes && !state.events.is_empty())
        {
            return Pushed::Full;
        }
        state.bytes += size;
        state.events.push(event);
        let wake = !state.woken;
        state.woken = true;
        Pushed::Queued { wake }
    }

    /// Queues a new emitter after the events tracked so far; `false` once closed.
    pub(crate) fn push_route(&self, route: Route) -> Pushed {
        let mut state = self.state();
        if state.closed {
            return Pushed::Closed;
        }
        let at = state.events.len();
        state.routes.push((at, route));
        let wake = !state.woken;
        state.woken = true;
        Pushed::Queued { wake }
    }

    /// Takes everything queued (for a flush or a stats request: whether a [`Wake`] is due
    /// stays as it was).
    fn take(&self) -> Taken {
        let mut state = self.state();
        Self::take_from(&mut state)
    }

    /// Takes everything queued for a [`Wake`] or a later look. When there was something,
    /// more may follow: the fan-out stays awake and looks again after [`BURST_INTERVAL`]
    /// (`true`), and pushes meanwhile send no `Wake`, so a steady stream of events costs
    /// its producers no system call. When there was nothing it goes idle and the next push
    /// wakes it. `also_busy` keeps it awake for another reason (emitters are settling
    /// events).
    fn take_for_wake(&self, also_busy: bool) -> (Taken, bool) {
        let mut state = self.state();
        let busy = also_busy || !state.events.is_empty() || !state.routes.is_empty();
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
        let mut state = self.state();
        state.closed = true;
        Self::take_from(&mut state)
    }
}

/// While events keep arriving the fan-out takes them this often instead of being woken by
/// each: a wake costs the tracking thread a system call, a timer costs it nothing. It is
/// also the most an event waits in the inbox.
pub(crate) const BURST_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);

/// Tells the fan-out that its inbox has events.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct Wake;

/// One emitter as the fan-out sees it.
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) track: Recipient<Track>,
    /// Where a built-in emitter takes several events at once.
    pub(crate) batch: Option<Recipient<TrackBatch>>,
    /// The method a built-in emitter sends with: its events are encoded for it here.
    pub(crate) method: Option<Method>,
    pub(crate) flush: Option<Recipient<Flush>>,
    pub(crate) shutdown: Option<Recipient<Shutdown>>,
    pub(crate) stats: Option<Recipient<GetStats>>,
    /// Events this emitter's mailbox refused (full or closed).
    refused: u64,
    /// Refusals since the mailbox last took an event (logged once per burst).
    burst: u64,
}

impl Route {
    pub(crate) fn new(name: String, track: Recipient<Track>) -> Self {
        Self {
            name,
            track,
            batch: None,
            method: None,
            flush: None,
            shutdown: None,
            stats: None,
            refused: 0,
            burst: 0,
        }
    }

    /// Hands `events` over: as one batch to a built-in emitter, one by one to a custom one.
    fn forward(&mut self, events: Vec<Arc<StampedEvent>>) {
        let count = events.len() as u64;
        if let Some(batch) = &self.batch {
            let refused = batch.try_send(TrackBatch(events)).err().map(refusal);
            self.settle(count, refused);
            return;
        }
        for event in events {
            let refused = self.track.try_send(Track(event)).err().map(refusal);
            self.settle(1, refused);
        }
    }

    /// Counts `count` events handed over, or refused for `why`.
    fn settle(&mut self, count: u64, refused: Option<&'static str>) {
        match refused {
            None => {
                if self.burst > 0 {
                    tracing::warn!(emitter = %self.name, method = self.method.map(tracing::field::display), refused = self.burst, "emitter takes events again after refusing some");
                    self.burst = 0;
                }
            }
            Some(why) => {
                if self.burst == 0 {
                    tracing::warn!(emitter = %self.name, method = self.method.map(tracing::field::display), why, "emitter cannot take events: dropping them as capacity");
                }
                self.burst += count;
                self.refused += count;
            }
        }
    }
}

/// How long past its own deadline an emitter's flush reply is awaited: built-in emitters
/// answer at their deadline; a custom emitter that never answers must not hold the
/// tracker's flush or shutdown forever.
const REPLY_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// `reply`, or an error once `deadline` (and [`REPLY_GRACE`]) has passed.
async fn bounded<R>(
    reply: actix::dev::RecipientRequest<R>,
    deadline: Instant,
) -> Result<R::Result, MailboxError>
where
    R: Message + Send + 'static,
    R::Result: Send,
{
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
pub struct Fanout {
    routes: Vec<Route>,
    inbox: Arc<Inbox>,
    disposal: Arc<Disposal>,
    /// Panics caught in its handlers (the tracker reports them).
    panics: Arc<AtomicU64>,
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
    /// Starts a fan-out on `arbiter` taking events from `inbox` and freeing those left in
    /// `disposal`; its mailbox holds `mailbox_capacity` messages from the first one (see
    /// [`crate::mailbox`]).
    pub(crate) fn start_on(
        arbiter: &ArbiterHandle,
        inbox: Arc<Inbox>,
        disposal: Arc<Disposal>,
        mailbox_capacity: usize,
        panics: Arc<AtomicU64>,
    ) -> Addr<Self> {
        let (addr, mailbox) = crate::mailbox::sized(mailbox_capacity);
        arbiter.spawn_fn(move || {
            mailbox.into_context().run(Fanout {
                routes: Vec::new(),
                inbox,
                disposal,
                panics,
                #[cfg(test)]
                panic_next: false,
            });
        });
        addr
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

    /// Hands everything waiting in the inbox to every emitter, and frees what the emitters
    /// have sent since the last time.
    fn drain(&mut self) {
        let taken = self.inbox.take();
        self.accept(taken);
        self.disposal.free();
    }

    /// Hands over what was taken from the inbox, adding each new emitter after the events
    /// tracked before it.
    fn accept(&mut self, Taken { mut events, routes }: Taken) {
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
    /// again later while events keep arriving, or while emitters keep leaving sent events
    /// to free. A panic meanwhile is contained, and the fan-out looks again.
    fn on_wake(&mut self, ctx: &mut Context<Self>) {
        let busy = self
            .contained("taking events", |fanout| {
                let freed = fanout.disposal.free();
                let (taken, busy) = fanout.inbox.take_for_wake(freed > 0);
                fanout.accept(taken);
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
        let post = self.routes.iter().any(|r| r.method == Some(Method::Post));
        let get = self.routes.iter().any(|r| r.method == Some(Method::Get));
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
            for route in &mut self.routes {
                route.settle(events.len() as u64, Some("the fan-out panicked"));
            }
            return;
        }
        if let Some((last, others)) = self.routes.split_last_mut() {
            for route in others {
                route.forward(events.clone());
            }
            last.forward(events);
        }
    }

    fn refused(&self) -> u64 {
        self.routes.iter().map(|route| route.refused).sum()
    }

    /// Sends `message` to every route that takes it and merges the reports; refusals by
    /// full mailboxes meanwhile are added as `capacity` drops.
    fn gather<M>(
        &mut self,
        pick: impl Fn(&Route) -> Option<Recipient<M>>,
        message: M,
        deadline: Instant,
    ) -> ResponseActFuture<Self, FlushReport>
    where
        M: Message<Result = FlushReport> + Clone + Send + 'static,
    {
        let refused_before = self.refused();
        let replies: Vec<_> = self
            .routes
            .iter()
            .filter_map(&pick)
            .map(|recipient| bounded(recipient.send(message.clone()), deadline))
            .collect();
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
        FanoutFlush(flush)
    }
}

/// The fan-out's answer to a [`Flush`]: sent with `send(..).await`, it gathers every
/// emitter's report; sent with `do_send`, it starts each emitter's flush and waits for
/// none.
#[derive(Debug)]
pub struct FanoutFlush(Flush);

impl actix::dev::MessageResponse<Fanout, Flush> for FanoutFlush {
    fn handle(
        self,
        ctx: &mut Context<Fanout>,
        reply: Option<actix::dev::OneshotSender<FlushReport>>,
    ) {
        let FanoutFlush(flush) = self;
        let Some(reply) = reply else {
            // A flush already waiting in an emitter's mailbox does the same: a full
            // mailbox loses nothing.
            ctx.spawn(
                actix::fut::ready(()).map(move |(), fanout: &mut Fanout, _| {
                    for recipient in fanout.routes.iter().filter_map(|r| r.flush.as_ref()) {
                        let _ = recipient.try_send(flush);
                    }
                }),
            );
            return;
        };
        ctx.spawn(
            actix::fut::ready(())
                .then(move |(), fanout: &mut Fanout, _| {
                    fanout.gather(|route| route.flush.clone(), flush, flush.deadline())
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
            fanout.accept(left);
            fanout.disposal.free();
        });
        // Emitters that cannot shut down get a flush with the same deadline.
        let flushes = self
            .routes
            .iter()
            .filter(|route| route.shutdown.is_none())
            .filter_map(|route| route.flush.clone())
            .map(|recipient| {
                bounded(
                    recipient.send(Flush::until(shutdown.deadline())),
                    shutdown.deadline(),
                )
            })
            .collect::<Vec<_>>();
        let deadline = shutdown.deadline();
        let shutdowns = self.gather(|route| route.shutdown.clone(), shutdown, deadline);
        Box::pin(shutdowns.then(move |mut report, fanout, _| {
            join_all(flushes)
                .into_actor(fanout)
                .map(move |replies, _, _| {
                    for reply in replies {
                        match reply {
                            Ok(one) => report.merge(&one),
                            Err(error) => {
                                tracing::warn!(%error, "an emitter did not answer the shutdown's flush");
                                report.timed_out = true;
                            }
                        }
                    }
                    report
                })
        }))
    }
}

/// One emitter's counters as the tracker reports them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EmitterReport {
    /// The emitter's name: its endpoint, or the name given to a custom emitter.
    pub name: String,
    /// Its counters, events its mailbox refused included (as received and dropped for
    /// `capacity`); `None` for a custom emitter that does not answer [`GetStats`].
    pub stats: Option<EmitterStats>,
    /// Events the fan-out could not hand to it (mailbox full or stopped).
    pub refused: u64,
}

/// Asks the fan-out for every emitter's counters.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<EmitterReport>")]
pub(crate) struct GetReports;

impl Handler<GetReports> for Fanout {
    type Result = ResponseActFuture<Self, Vec<EmitterReport>>;

    fn handle(&mut self, _: GetReports, _: &mut Self::Context) -> Self::Result {
        self.contained("a stats request", Self::drain);
        let asks: Vec<_> = self
            .routes
            .iter()
            .map(|route| {
                let ask = route
                    .stats
                    .clone()
                    .map(|recipient| recipient.send(GetStats));
                let (name, refused) = (route.name.clone(), route.refused);
                async move {
                    let stats = match ask {
                        Some(ask) => ask.await.ok(),
                        None => None,
                    };
                    EmitterReport {
                        name,
                        stats: stats.map(|mut stats| {
                            stats.received += refused;
                            stats.dropped.capacity += refused;
                            stats
                        }),
                        refused,
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
    use crate::stamp::TrackerSettings;
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
        let inbox = Arc::new(Inbox::new(100, usize::MAX));
        let panics = Arc::new(AtomicU64::new(0));
        let fanout = Fanout::start_on(
            &Arbiter::current(),
            inbox.clone(),
            Arc::new(Disposal::default()),
            100,
            panics.clone(),
        );
        let got = Arc::new(AtomicU64::new(0));
        let sink = Counting(got.clone()).start();
        inbox.push_route(Route::new("custom".into(), sink.clone().recipient()));
        fanout.send(GetReports).await.unwrap();

        fanout.send(PanicNext).await.unwrap();
        for _ in 0..3 {
            inbox.push(event());
        }
        let reports = fanout.send(GetReports).await.unwrap();
        assert_eq!(panics.load(Ordering::Relaxed), 1);
        assert_eq!(reports[0].refused, 3);

        for _ in 0..2 {
            inbox.push(event());
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
        Arc::new(settings.stamp(page).remove(0))
    }

    /// Hardening finding: the inbox was bounded in events only, so a burst of large events
    /// grew memory before any emitter's byte bound applied.
    #[test]
    fn finding_the_inbox_is_bounded_in_bytes_too_and_always_takes_one_event() {
        let size = event().payload().heap_bytes();
        let inbox = Inbox::new(100, size * 2 + size / 2);

        let pushed: Vec<Pushed> = (0..3).map(|_| inbox.push(event())).collect();

        assert_eq!(
            pushed,
            [
                Pushed::Queued { wake: true },
                Pushed::Queued { wake: false },
                Pushed::Full,
            ]
        );
        assert_eq!(inbox.take().event_count(), 2);
        // Taken: room again. An event larger than the bound alone is still taken.
        let tiny = Inbox::new(100, 1);
        assert_eq!(tiny.push(event()), Pushed::Queued { wake: true });
        assert_eq!(tiny.push(event()), Pushed::Full);
        assert_eq!(inbox.push(event()), Pushed::Queued { wake: false });
    }

    #[test]
    fn the_inbox_wakes_once_per_burst_refuses_beyond_capacity_and_closes() {
        let inbox = Inbox::new(3, usize::MAX);

        let pushed: Vec<Pushed> = (0..4).map(|_| inbox.push(event())).collect();

        assert_eq!(
            pushed,
            [
                Pushed::Queued { wake: true },
                Pushed::Queued { wake: false },
                Pushed::Queued { wake: false },
                Pushed::Full,
            ]
        );
        // Events were there: the fan-out stays awake and looks again, pushes meanwhile do
        // not wake it.
        let (taken, busy) = inbox.take_for_wake(false);
        assert_eq!((taken.event_count(), busy), (3, true));
        assert_eq!(inbox.push(event()), Pushed::Queued { wake: false });
        // A flush takes what waits and leaves the next look due.
        assert_eq!(inbox.take().event_count(), 1);
        // Nothing at the next look but events settled by emitters: it stays awake.
        let (taken, busy) = inbox.take_for_wake(true);
        assert_eq!((taken.event_count(), busy), (0, true));
        assert_eq!(inbox.push(event()), Pushed::Queued { wake: false });
        assert_eq!(inbox.take().event_count(), 1);
        // Nothing at all: the fan-out goes idle, the next push wakes it.
        let (taken, busy) = inbox.take_for_wake(false);
        assert_eq!((taken.event_count(), busy), (0, false));
        assert_eq!(inbox.push(event()), Pushed::Queued { wake: true });
        assert_eq!(inbox.close().event_count(), 1);
        assert_eq!(inbox.push(event()), Pushed::Closed);
        assert_eq!(inbox.take().event_count(), 0);
    }
}
