//! [`LoopHandle`]: how other threads reach the loop. A message goes into a channel, and
//! mio's waker (an `eventfd`) makes the loop's `epoll_wait` return with the waker's token.

use std::sync::mpsc;
use std::sync::Arc;

use mio::Waker;

/// A handle other threads use to send messages to the loop; cheap to clone.
pub struct LoopHandle<M> {
    tx: mpsc::Sender<M>,
    waker: Arc<Waker>,
}

impl<M> LoopHandle<M> {
    /// A handle that wakes the loop through `waker`, and the receiving end of its channel,
    /// which the loop empties on the waker's token.
    pub(super) fn new(waker: Waker) -> (LoopHandle<M>, mpsc::Receiver<M>) {
        let (tx, rx) = mpsc::channel();
        let waker = Arc::new(waker);
        (LoopHandle { tx, waker }, rx)
    }
}

impl<M> Clone for LoopHandle<M> {
    fn clone(&self) -> Self {
        LoopHandle {
            tx: self.tx.clone(),
            waker: Arc::clone(&self.waker),
        }
    }
}

// ANCHOR: loop_handle
impl<M: Send> LoopHandle<M> {
    /// Queues `msg` for [`Handler::message`](super::Handler::message) and wakes the loop.
    /// Fails once the loop is gone.
    pub fn send(&self, msg: M) -> Result<(), M> {
        self.tx.send(msg).map_err(|e| e.0)?;
        // A failed wake means the loop is gone; the message then simply goes unread.
        let _ = self.waker.wake();
        Ok(())
    }
}
// ANCHOR_END: loop_handle
