//! The messages emitters understand: [`Track`], [`TrackBatch`], [`Flush`], [`Shutdown`],
//! [`GetStats`].
//!
//! `Track` and an async `Flush` are sent without waiting (`do_send` / `try_send`); a sync
//! flush and a stats request are request-reply (`send(..).await`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Message;

use crate::report::{EmitterStats, FlushReport};
use crate::wire::StampedEvent;

/// How long a sync flush waits at most before it reports what is left.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// One tracked event for an emitter: stamped, immutable, shared by every emitter.
///
/// Its encodings are computed once and cached in the event (the fan-out computes those its
/// emitters' methods need before handing it over). Handling it never waits on the network.
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
pub(crate) struct TrackBatch(pub(crate) Vec<Arc<StampedEvent>>);

impl Message for TrackBatch {
    type Result = ();
}

/// The constructors and accessors of a message that carries a deadline.
macro_rules! deadline_message {
    ($message:ident, $waits:literal) => {
        impl $message {
            #[doc = concat!("One whose ", $waits, " at most `timeout` from now.")]
            pub fn with_timeout(timeout: Duration) -> Self {
                Self::until(deadline_after(timeout))
            }

            #[doc = concat!("One whose ", $waits, " until `deadline` at most.")]
            pub fn until(deadline: Instant) -> Self {
                Self { deadline }
            }

            #[doc = concat!("When its ", $waits, " no longer.")]
            pub fn deadline(&self) -> Instant {
                self.deadline
            }

            /// The time left before the deadline (zero once it has passed).
            pub fn remaining(&self) -> Duration {
                self.deadline.saturating_duration_since(Instant::now())
            }
        }
    };
}

/// Sends everything buffered.
///
/// `send(Flush::default()).await` resolves with a [`FlushReport`] once every event the
/// emitter received before the flush is sent or dropped, or when the flush's deadline
/// passes (`timed_out`); it waits through backoff and never sends early. `do_send(Flush)`
/// just starts a flush: nothing waits for it, and the emitter keeps nothing for it.
///
/// The deadline is fixed when the message is made, so the time it spends in mailboxes
/// counts against it.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use snowplow_actix::emitter::Flush;
///
/// let flush = Flush::with_timeout(Duration::from_secs(2));
/// assert!(flush.deadline() <= Instant::now() + Duration::from_secs(2));
/// // A timeout too large to add to the clock waits "forever" instead of overflowing.
/// assert!(Flush::with_timeout(Duration::MAX).deadline() > Instant::now());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flush {
    deadline: Instant,
}

deadline_message!(Flush, "flush waits");

impl Default for Flush {
    /// A flush that waits at most [`DEFAULT_FLUSH_TIMEOUT`].
    fn default() -> Self {
        Self::with_timeout(DEFAULT_FLUSH_TIMEOUT)
    }
}

impl Message for Flush {
    type Result = FlushReport;
}

/// Shuts an emitter down: flushes until its deadline, then counts what is left as dropped
/// (`shutdown`) and refuses later events. Replies with the flush's report.
///
/// Like [`Flush`], the deadline is fixed when the message is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    deadline: Instant,
}

deadline_message!(Shutdown, "shutdown's final flush waits");

impl Message for Shutdown {
    type Result = FlushReport;
}

/// `timeout` from now; a timeout too large for the clock gives a moment a century away.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| far_future(now))
}

/// Asks for an emitter's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetStats;

impl Message for GetStats {
    type Result = EmitterStats;
}

/// A moment no deadline reaches (a century on), for timeouts too large to add.
pub(crate) fn far_future(now: Instant) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(CENTURY).unwrap_or(now)
}
