//! The messages emitters understand: [`Track`], [`TrackBatch`], [`Flush`], [`Shutdown`],
//! [`GetStats`].
//!
//! `Track` and an async `Flush` are sent without waiting (`do_send` / `try_send`); a sync
//! flush and a stats request are request-reply (`send(..).await`).

use std::sync::Arc;
use std::time::Duration;

use actix::Message;

use crate::emitter::{EmitterStats, FlushReport, DEFAULT_FLUSH_TIMEOUT};
use crate::stamp::StampedEvent;

/// One tracked event for an emitter: stamped, immutable, shared by every emitter.
///
/// Its encodings are computed once, by the first emitter that needs them. Handling it never
/// waits on the network.
#[derive(Debug, Clone)]
pub struct Track(pub Arc<StampedEvent>);

impl Track {
    /// The event.
    pub fn event(&self) -> &Arc<StampedEvent> {
        &self.0
    }
}

impl From<StampedEvent> for Track {
    fn from(event: StampedEvent) -> Self {
        Self(Arc::new(event))
    }
}

impl Message for Track {
    type Result = ();
}

/// Several tracked events in the order they were tracked: what the fan-out hands a
/// built-in emitter, so a burst costs one message instead of one per event.
///
/// An emitter treats it as one [`Track`] per event, then checks its size triggers once.
#[derive(Debug, Clone, Default)]
pub struct TrackBatch(pub Vec<Arc<StampedEvent>>);

impl Message for TrackBatch {
    type Result = ();
}

/// Sends everything buffered.
///
/// `send(Flush::default()).await` resolves with a [`FlushReport`] once every event the
/// emitter received before the flush is sent or dropped, or when the flush's deadline
/// passes (`timed_out`); it waits through backoff and never sends early. `do_send(Flush)`
/// just starts a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flush {
    /// How long a sync flush waits at most.
    pub timeout: Duration,
}

impl Flush {
    /// A flush that waits at most `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl Default for Flush {
    /// A flush that waits at most [`DEFAULT_FLUSH_TIMEOUT`].
    fn default() -> Self {
        Self::with_timeout(DEFAULT_FLUSH_TIMEOUT)
    }
}

impl Message for Flush {
    type Result = FlushReport;
}

/// Shuts an emitter down: flushes with `timeout`, then counts what is left as dropped
/// (`shutdown`) and refuses later events. Replies with the flush's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// How long the final flush waits at most.
    pub timeout: Duration,
}

impl Message for Shutdown {
    type Result = FlushReport;
}

/// Asks for an emitter's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetStats;

impl Message for GetStats {
    type Result = EmitterStats;
}
