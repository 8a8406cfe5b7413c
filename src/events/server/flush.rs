//! Handing the server's outbox to the loop: frames to their connections (the tap sees each),
//! volatile ones dropped for a backed-up connection, closes, timers, the stop; and a
//! connection whose outbound buffer is full disconnected after the round (see `outbox.rs`
//! for the rounds).

use super::protocol::{Action, ServerTimer};
use super::Io;
use crate::event_loop::{ConnId, Ctx, SendError};
use crate::events::guard;
use crate::events::outbox::{Item, MAX_ROUNDS};
use crate::events::reasons;

impl Io {
    /// Hands the outbox to the loop (see `outbox.rs` for the rounds). A send refused
    /// because a connection's outbound buffer is full disconnects that connection (reason
    /// `outbound buffer full`) after the round; volatile sends to a backed-up connection
    /// are dropped instead.
    pub(crate) fn flush(&mut self, ctx: &mut Ctx<ServerTimer>) {
        for _ in 0..MAX_ROUNDS {
            if !self.out.start_round() {
                break;
            }
            let mut full: Vec<ConnId> = Vec::new();
            while let Some(item) = self.out.next() {
                match item {
                    Item::Send {
                        conn,
                        frame,
                        volatile,
                    } => {
                        if volatile && ctx.backed_up(conn) {
                            self.stats.volatile_dropped += 1;
                            continue;
                        }
                        let bytes = self.out.bytes(frame);
                        if let Err(p) = guard::tap(&mut self.tap, bytes) {
                            self.callback_panicked("tap", None, &p);
                        }
                        let bytes = self.out.bytes(frame);
                        if let Err(SendError::Full { .. }) = ctx.send(conn, bytes) {
                            if !full.contains(&conn) {
                                full.push(conn);
                            }
                        }
                    }
                    Item::Do(Action::Close { conn, flush }) => {
                        if flush {
                            ctx.close(conn)
                        } else {
                            ctx.abort(conn)
                        }
                    }
                    Item::Do(Action::Timer(after, t)) => {
                        ctx.set_timer(after, t);
                    }
                    Item::Do(Action::Stop) => ctx.stop(),
                }
            }
            for conn in full {
                self.close_conn(conn, reasons::OUTBOUND_FULL, false);
            }
        }
        self.out.settle();
    }
}
