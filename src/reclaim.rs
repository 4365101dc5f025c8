//! Freeing settled events off the emitters' threads.
//!
//! An emitter's thread is the busiest one under load (it cuts requests, writes bodies and
//! reads answers), and freeing what a request carried — each event, its payload and its
//! encodings — is a noticeable share of that work at full speed. So a tracker's emitters
//! hand the events of each settled request to the [`Reclaimer`], which drops them on the
//! tracker's own thread. Its mailbox is bounded: when it is full, an emitter frees its
//! events itself, so memory stays bounded.
//!
//! ```text
//! emitter ──Release(settled events)──▶ Reclaimer (tracker's thread): dropped there
//!    └─ mailbox full: dropped on the emitter's thread
//! ```

use actix::prelude::*;

use crate::store::StoredEvent;

/// Requests' worth of settled events its mailbox holds (each at most a request's events).
pub(crate) const RECLAIM_MAILBOX: usize = 64;

/// The events of a settled request, to be freed.
#[derive(Debug)]
pub(crate) struct Release(pub(crate) Vec<StoredEvent>);

impl Message for Release {
    type Result = ();
}

/// Drops what it is given, on its own thread.
#[derive(Debug, Default)]
pub(crate) struct Reclaimer;

impl Reclaimer {
    /// Starts one on `arbiter`, its mailbox at [`RECLAIM_MAILBOX`] from the first message.
    pub(crate) fn start_on(arbiter: &ArbiterHandle) -> Recipient<Release> {
        let (addr, mailbox) = crate::mailbox::sized(RECLAIM_MAILBOX);
        arbiter.spawn_fn(move || {
            mailbox.into_context().run(Reclaimer);
        });
        addr.recipient()
    }
}

impl Actor for Reclaimer {
    type Context = Context<Self>;
}

impl Handler<Release> for Reclaimer {
    type Result = ();

    fn handle(&mut self, Release(events): Release, _: &mut Self::Context) {
        drop(events);
    }
}

/// Hands `events` to `reclaimer`, or frees them here when it has no room (or is gone).
pub(crate) fn release(reclaimer: Option<&Recipient<Release>>, events: Vec<StoredEvent>) {
    if let Some(reclaimer) = reclaimer {
        // A refused message comes back inside the error, and is dropped with it here.
        let _ = reclaimer.try_send(Release(events));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::event::PageView;
    use crate::wire::TrackerSettings;

    fn stored(event: &Arc<crate::wire::StampedEvent>, count: usize) -> Vec<StoredEvent> {
        (0..count)
            .map(|seq| StoredEvent {
                seq: seq as u64,
                event: event.clone(),
                cost: 1,
                attempts: 1,
                received_ms: 0,
            })
            .collect()
    }

    /// Released events are freed by the reclaimer; beyond its mailbox, where they are
    /// released: nothing is kept without bound.
    #[actix_rt::test]
    async fn released_events_are_freed_there_or_here_when_it_is_full() {
        let settings = TrackerSettings::new("test").unwrap();
        let page = PageView::new("https://shop.example/").unwrap();
        let event = Arc::new(settings.stamp(page).unwrap().remove(0));
        // A reclaimer that has not run yet: its mailbox takes RECLAIM_MAILBOX messages.
        let (addr, mailbox) = crate::mailbox::sized::<Reclaimer>(RECLAIM_MAILBOX);
        let reclaimer = addr.clone().recipient();
        for _ in 0..RECLAIM_MAILBOX + 3 {
            release(Some(&reclaimer), stored(&event, 2));
        }
        // The three beyond its room were freed at once.
        assert_eq!(Arc::strong_count(&event), 1 + 2 * RECLAIM_MAILBOX);
        mailbox.into_context().run(Reclaimer);
        addr.send(Release(Vec::new())).await.unwrap();
        assert_eq!(Arc::strong_count(&event), 1, "the reclaimer freed the rest");
        release(None, stored(&event, 5));
        assert_eq!(
            Arc::strong_count(&event),
            1,
            "without a reclaimer, freed here"
        );
    }
}
