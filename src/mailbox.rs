//! Starting actors with their mailbox at full capacity from the first message.
//!
//! actix creates a mailbox with 16 places and an actor can only grow it once it runs on its
//! arbiter: until then a `try_send` beyond 16 messages fails. The fan-out never waits, so a
//! burst sent right after a start would be refused. Here the channel is made at its full
//! size before the actor starts.

use actix::dev::channel::{self, AddressReceiver};
use actix::{Actor, Addr, Context};

/// The receiving end of a mailbox made at full size, to become an actor's context on the
/// thread where the actor runs.
pub(crate) struct SizedMailbox<A: Actor<Context = Context<A>>> {
    receiver: AddressReceiver<A>,
    capacity: usize,
}

impl<A: Actor<Context = Context<A>>> SizedMailbox<A> {
    /// The actor's context, reading this mailbox.
    pub(crate) fn into_context(self) -> Context<A> {
        let mut ctx = Context::with_receiver(self.receiver);
        ctx.set_mailbox_capacity(self.capacity);
        ctx
    }
}

/// An address and a mailbox holding `capacity` messages from the first one.
pub(crate) fn sized<A: Actor<Context = Context<A>>>(capacity: usize) -> (Addr<A>, SizedMailbox<A>) {
    let (sender, receiver) = channel::channel(capacity);
    (Addr::new(sender), SizedMailbox { receiver, capacity })
}
