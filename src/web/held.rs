//! Held events: tracked by a handler, kept until the request's response is known, then sent
//! with a context entity of the outcome, or dropped by a policy.
//!
//! The handler's [`RequestTracker`](super::RequestTracker) is `Send` (it may go to another
//! thread with the handler's work), so it holds events through a channel, not the request's
//! scope: it sends them without a lock, and the middleware takes them once the response is
//! ready, closing the channel first so that none can arrive after it looked.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::{FutureExt as _, StreamExt as _};
use uuid::Uuid;

use super::outcome::RequestOutcome;
use crate::error::{EventError, TrackError};
use crate::event::Event;
use crate::self_describing::SelfDescribingJson;
use crate::subject::Subject;
use crate::tracker::Tracker;

/// An event could not be held until the response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HoldError {
    /// The request is not served through [`SnowplowTracking`](super::SnowplowTracking) (the
    /// tracker came from the app data): nothing holds events until its response. The event
    /// was not tracked; track it with [`RequestTracker::track`](super::RequestTracker::track).
    #[error(
        "no SnowplowTracking middleware around this request: nothing holds events until its \
         response (track the event instead)"
    )]
    NoMiddleware,
    /// The request's response is already known and its held events are settled (the
    /// tracker was used after the handler returned). The event was not tracked.
    #[error("the request's response is already known: the event was not held (track it instead)")]
    Settled,
    /// A setter of the event (or of its subject) was given an invalid value: nothing was
    /// held. Not counted in the tracker's stats (the event never reached it).
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
}

/// The condition of one held event, instead of the middleware's held policy.
pub(super) type KeepFn = Box<dyn FnOnce(&RequestOutcome<'_>) -> bool + Send>;

/// An event of any type, held: it can be counted, and tracked with an entity added.
pub(super) trait HeldEvent: Send {
    /// Tracks it with `subject` and `entity` attached.
    fn track(
        self: Box<Self>,
        tracker: &Tracker,
        subject: &Subject,
        entity: SelfDescribingJson,
    ) -> Result<Uuid, TrackError>;

    /// Drops it, returning how many events it would have been (a transaction is several).
    fn discard(self: Box<Self>) -> u64;
}

impl<E: Event + Send + 'static> HeldEvent for E {
    fn track(
        self: Box<Self>,
        tracker: &Tracker,
        subject: &Subject,
        entity: SelfDescribingJson,
    ) -> Result<Uuid, TrackError> {
        tracker.track_with_subject((*self).context(entity), subject)
    }

    fn discard(self: Box<Self>) -> u64 {
        let mut count = 0;
        (*self).build(false, 0, &mut |_, _| count += 1);
        count
    }
}

/// One held event, with the subject of the tracker that held it and its own condition.
pub(super) struct HeldEntry {
    pub(super) event: Box<dyn HeldEvent>,
    pub(super) subject: Arc<Subject>,
    pub(super) keep: Option<KeepFn>,
}

impl fmt::Debug for HeldEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldEntry")
            .field("keep", &self.keep.as_ref().map(|_| "<fn>"))
            .finish_non_exhaustive()
    }
}

/// Where a request's trackers hold events: they send, the middleware takes them.
pub(super) struct HeldQueue {
    sender: UnboundedSender<HeldEntry>,
    receiver: RefCell<UnboundedReceiver<HeldEntry>>,
}

impl HeldQueue {
    pub(super) fn new() -> Self {
        let (sender, receiver) = unbounded();
        Self {
            sender,
            receiver: RefCell::new(receiver),
        }
    }

    /// Where trackers send held events.
    pub(super) fn sender(&self) -> UnboundedSender<HeldEntry> {
        self.sender.clone()
    }

    /// Closes the queue (later holds fail with [`HoldError::Settled`]) and returns what it
    /// held, in order.
    pub(super) fn settle(&self) -> Vec<HeldEntry> {
        let mut receiver = self.receiver.borrow_mut();
        receiver.close();
        let mut entries = Vec::new();
        // Closed: every message is ready, and then the end.
        while let Some(Some(entry)) = receiver.next().now_or_never() {
            entries.push(entry);
        }
        entries
    }
}

impl fmt::Debug for HeldQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldQueue").finish_non_exhaustive()
    }
}

/// Holds `event` on `sender`.
pub(super) fn hold<E: Event + Send + 'static>(
    sender: Option<&UnboundedSender<HeldEntry>>,
    subject: &Arc<Subject>,
    event: E,
    keep: Option<KeepFn>,
) -> Result<(), HoldError> {
    let sender = sender.ok_or(HoldError::NoMiddleware)?;
    if let Some(error) = event.options().error() {
        return Err(HoldError::InvalidEvent(error.clone()));
    }
    sender
        .unbounded_send(HeldEntry {
            event: Box::new(event),
            subject: Arc::clone(subject),
            keep,
        })
        .map_err(|_| HoldError::Settled)
}
