//! The smallest useful [`Handler`]: send every byte back. Lessons 11 and 12 run it, and the
//! tests and the loop benchmark put thousands of clients through it.

use super::{ConnId, Ctx, Handler, SendError};

/// Echoes every connection. A peer that sends faster than it reads fills its outbound buffer;
/// then the loop stops reading from it (the unconsumed input waits) until the buffer drains:
/// backpressure passed back to the sender, with bounded memory.
#[derive(Debug, Default)]
pub struct Echo {
    /// Bytes echoed so far, over all connections.
    pub echoed: u64,
}

impl Handler for Echo {
    type Timer = ();
    type Message = ();

    fn data(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        let room = ctx.config().max_outbound.saturating_sub(ctx.pending(id));
        let take = bytes.len().min(room);
        match ctx.send(id, &bytes[..take]) {
            Ok(()) => {
                self.echoed += take as u64;
                take
            }
            Err(SendError::Full { .. }) | Err(SendError::Closed) => 0,
        }
    }
}
