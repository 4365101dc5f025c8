//! The fan-out: hands each tracked event to every emitter, gathers flush replies.
//!
//! ```text
//!            ┌──Track (try_send)──▶ Emitter A   (built-in: Track, Flush, Shutdown, GetStats)
//! Fanout ────┼──Track (try_send)──▶ Emitter B
//!            └──Track (try_send)──▶ custom emitter (Track, optionally Flush)
//! ```
//!
//! `Track` goes to each emitter with `try_send`, so a slow or stopped emitter never delays
//! the others: when its mailbox is full the event is refused for that emitter only, counted
//! as a `capacity` drop of that emitter and logged once per burst. `Flush` and `Shutdown`
//! follow the same path as `Track`, so each emitter sees them after every event tracked
//! before; their replies are gathered into one [`FlushReport`].

use std::fmt;

use actix::prelude::*;
use futures::future::join_all;

use crate::emitter::{EmitterStats, FlushReport};
use crate::messages::{Flush, GetStats, Shutdown, Track};

/// One emitter as the fan-out sees it.
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) track: Recipient<Track>,
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
            flush: None,
            shutdown: None,
            stats: None,
            refused: 0,
            burst: 0,
        }
    }

    fn forward(&mut self, track: Track) {
        match self.track.try_send(track) {
            Ok(()) => {
                if self.burst > 0 {
                    tracing::warn!(emitter = %self.name, refused = self.burst, "emitter takes events again after refusing some");
                    self.burst = 0;
                }
            }
            Err(error) => {
                if self.burst == 0 {
                    let why = match error {
                        SendError::Full(_) => "its mailbox is full",
                        SendError::Closed(_) => "it has stopped",
                    };
                    tracing::warn!(emitter = %self.name, why, "emitter cannot take events: dropping them as capacity");
                }
                self.burst += 1;
                self.refused += 1;
            }
        }
    }
}

/// Forwards every event to every emitter.
pub struct Fanout {
    routes: Vec<Route>,
}

impl fmt::Debug for Fanout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.routes.iter().map(|r| r.name.as_str()).collect();
        f.debug_struct("Fanout").field("emitters", &names).finish()
    }
}

impl Fanout {
    /// Starts a fan-out on `arbiter` whose mailbox holds `mailbox_capacity` messages from
    /// the first one (see [`crate::mailbox`]).
    pub(crate) fn start_on(arbiter: &ArbiterHandle, mailbox_capacity: usize) -> Addr<Self> {
        let (addr, mailbox) = crate::mailbox::sized(mailbox_capacity);
        arbiter.spawn_fn(move || {
            mailbox.into_context().run(Fanout { routes: Vec::new() });
        });
        addr
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
    ) -> ResponseActFuture<Self, FlushReport>
    where
        M: Message<Result = FlushReport> + Clone + Send + 'static,
    {
        let refused_before = self.refused();
        let replies: Vec<_> = self
            .routes
            .iter()
            .filter_map(&pick)
            .map(|recipient| recipient.send(message.clone()))
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

impl Handler<Track> for Fanout {
    type Result = ();

    fn handle(&mut self, track: Track, _: &mut Self::Context) {
        if let Some((last, others)) = self.routes.split_last_mut() {
            for route in others {
                route.forward(track.clone());
            }
            last.forward(track);
        }
    }
}

impl Handler<Flush> for Fanout {
    type Result = ResponseActFuture<Self, FlushReport>;

    fn handle(&mut self, flush: Flush, _: &mut Self::Context) -> Self::Result {
        self.gather(|route| route.flush.clone(), flush)
    }
}

impl Handler<Shutdown> for Fanout {
    type Result = ResponseActFuture<Self, FlushReport>;

    fn handle(&mut self, shutdown: Shutdown, _: &mut Self::Context) -> Self::Result {
        // Emitters that cannot shut down get a flush with the same deadline.
        let flushes = self
            .routes
            .iter()
            .filter(|route| route.shutdown.is_none())
            .filter_map(|route| route.flush.clone())
            .map(|recipient| recipient.send(Flush::with_timeout(shutdown.timeout)))
            .collect::<Vec<_>>();
        let shutdowns = self.gather(|route| route.shutdown.clone(), shutdown);
        Box::pin(shutdowns.then(move |mut report, fanout, _| {
            join_all(flushes)
                .into_actor(fanout)
                .map(move |replies, _, _| {
                    for one in replies.into_iter().flatten() {
                        report.merge(&one);
                    }
                    report
                })
        }))
    }
}

/// Adds an emitter to the fan-out.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AddRoute(pub(crate) Route);

impl Handler<AddRoute> for Fanout {
    type Result = ();

    fn handle(&mut self, AddRoute(route): AddRoute, _: &mut Self::Context) {
        self.routes.push(route);
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
