//! [`Handler`]: what runs on the loop, and the callbacks through which the loop reports
//! what happened.

use std::net::SocketAddr;

use super::{CloseReason, ConnId, Ctx, TimerId};
use crate::sys;

// ANCHOR: handler
/// What runs on the loop. Every method has a default that does nothing, except [`data`].
///
/// Methods get the [`Ctx`] to act on the loop. They run on the loop thread, one at a time:
/// a handler owns its state outright and needs no locks.
///
/// [`data`]: Handler::data
#[allow(unused_variables)]
pub trait Handler: Sized {
    /// What a timer carries back to [`Handler::timer`].
    type Timer;
    /// What other threads send through a [`LoopHandle`](super::LoopHandle).
    type Message: Send + 'static;

    /// A listener accepted a connection.
    fn accepted(&mut self, ctx: &mut Ctx<Self::Timer>, id: ConnId, peer: SocketAddr) {}

    /// An outgoing [`Ctx::connect`] finished. On error the connection is gone already and
    /// [`Handler::closed`] will not be called for it.
    fn connected(&mut self, ctx: &mut Ctx<Self::Timer>, id: ConnId, result: sys::Result<()>) {}

    /// Bytes arrived. Return how many were consumed: the rest stays buffered and is offered
    /// again, with more, next time (an incomplete frame, say).
    fn data(&mut self, ctx: &mut Ctx<Self::Timer>, id: ConnId, bytes: &[u8]) -> usize;

    /// The outbound buffer of `id` emptied after having held bytes: a producer held back by
    /// [`SendError::Full`](super::SendError::Full) can go on.
    fn drained(&mut self, ctx: &mut Ctx<Self::Timer>, id: ConnId) {}

    /// The connection is closed and its descriptor released.
    fn closed(&mut self, ctx: &mut Ctx<Self::Timer>, id: ConnId, reason: CloseReason) {}

    /// A timer set with [`Ctx::set_timer`] is due.
    fn timer(&mut self, ctx: &mut Ctx<Self::Timer>, id: TimerId, value: Self::Timer) {}

    /// Whether a timer still matters. Before it sleeps until its nearest timer, the loop asks
    /// this of it and drops it if not, so a handler that does not keep every [`TimerId`] to
    /// cancel it (a heartbeat deadline moved on by a newer one, say) does not wake the loop
    /// for nothing. The default keeps every timer.
    fn timer_wanted(&self, value: &Self::Timer) -> bool {
        true
    }

    /// Another thread sent a message through a [`LoopHandle`](super::LoopHandle).
    fn message(&mut self, ctx: &mut Ctx<Self::Timer>, msg: Self::Message) {}

    /// A graceful stop began: listeners are closed; queue any goodbyes now. Every
    /// connection is then closed once its output is flushed.
    fn stopping(&mut self, ctx: &mut Ctx<Self::Timer>) {}
}
// ANCHOR_END: handler
