//! The flush timer: an actor that sends [`Flush`] to a recipient every interval.
//!
//! ```text
//! FlushTimer ──Flush (do_send, every interval)──▶ Recipient<Flush>  (the fan-out, or one emitter)
//! ```
//!
//! Setting an interval again replaces the previous one; cancelling stops the ticks. A tick
//! only asks for a flush: an emitter with nothing buffered sends nothing.

use std::time::Duration;

use actix::prelude::*;

use crate::messages::Flush;

/// Sends [`Flush`] to its target every interval, when one is set.
#[derive(Debug)]
pub struct FlushTimer {
    target: Recipient<Flush>,
    interval: Option<Duration>,
    ticks: Option<SpawnHandle>,
}

impl FlushTimer {
    /// A timer for `target`, ticking every `interval` if one is given.
    pub fn new(target: Recipient<Flush>, interval: Option<Duration>) -> Self {
        Self {
            target,
            interval,
            ticks: None,
        }
    }

    fn arm(&mut self, ctx: &mut Context<Self>) {
        if let Some(ticks) = self.ticks.take() {
            ctx.cancel_future(ticks);
        }
        if let Some(interval) = self.interval {
            self.ticks = Some(ctx.run_interval(interval, |timer, _| {
                timer.target.do_send(Flush::default());
            }));
        }
    }
}

impl Actor for FlushTimer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.arm(ctx);
    }
}

/// Sets (`Some`) or cancels (`None`) a flush timer's interval, replacing the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct SetFlushInterval(pub Option<Duration>);

impl Handler<SetFlushInterval> for FlushTimer {
    type Result = ();

    fn handle(&mut self, SetFlushInterval(interval): SetFlushInterval, ctx: &mut Self::Context) {
        self.interval = interval;
        self.arm(ctx);
    }
}
