//! The flush timer: an actor that sends [`Flush`] to a recipient every period.
//!
//! ```text
//! FlushTimer ──Flush (do_send, every period)──▶ Recipient<Flush>  (the fan-out, or one emitter)
//! ```
//!
//! Setting a period again replaces the previous one; cancelling stops the ticks. A tick
//! only asks for a flush: an emitter with nothing buffered sends nothing.

use std::time::Duration;

use actix::prelude::*;

use crate::messages::Flush;

/// Sends [`Flush`] to its target every period, when one is set.
#[derive(Debug)]
pub(crate) struct FlushTimer {
    target: Recipient<Flush>,
    period: Option<Duration>,
    ticks: Option<SpawnHandle>,
}

impl FlushTimer {
    /// A timer for `target`, ticking every `period` if one is given.
    pub(crate) fn new(target: Recipient<Flush>, period: Option<Duration>) -> Self {
        Self {
            target,
            period,
            ticks: None,
        }
    }

    fn arm(&mut self, ctx: &mut Context<Self>) {
        if let Some(ticks) = self.ticks.take() {
            ctx.cancel_future(ticks);
        }
        if let Some(period) = self.period {
            self.ticks = Some(ctx.run_interval(period, |timer, _| {
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

/// Sets (`Some`) or cancels (`None`) a flush timer's period, replacing the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub(crate) struct SetFlushTimer(pub Option<Duration>);

impl Handler<SetFlushTimer> for FlushTimer {
    type Result = ();

    fn handle(&mut self, SetFlushTimer(period): SetFlushTimer, ctx: &mut Self::Context) {
        self.period = period;
        self.arm(ctx);
    }
}
