//! Handing the server's outbox to the loop: frames to their connections (the tap sees each),
//! volatile ones dropped for a backed-up connection, closes, timers, the stop; and a
//! connection whose outbound buffer is full disconnected after the round (see `outbox.rs`
//! for the rounds).

use super::protocol::{Action, ServerTimer};
use super::{show_wire, Io};
use crate::event_loop::{Ctx, SendError};
use crate::events::guard;
use crate::events::link::Link;
use crate::events::outbox::{Item, MAX_ROUNDS};
use crate::events::reasons;

impl Io {
    /// Hands the outbox to the loop (see `outbox.rs` for the rounds). A send refused
    /// because a connection's outbound buffer is full disconnects that connection (reason
    /// `outbound buffer full`) after the round; volatile sends to a backed-up connection
    /// are dropped instead.
    pub(crate) fn flush(&mut self, ctx: &mut Ctx<ServerTimer>) {
        let max_queued = self.config.loop_config.max_outbound;
        for _ in 0..MAX_ROUNDS {
            if !self.out.start_round() {
                break;
            }
            let mut full: Vec<Link> = Vec::new();
            while let Some(item) = self.out.next() {
                match item {
                    Item::Send {
                        conn,
                        frame,
                        volatile,
                    } => {
                        // A TCP connection, or a long-polling session's queue (or the
                        // WebSocket it upgraded to).
                        let tcp = match conn {
                            Link::Tcp(c) => Some(c),
                            Link::Polling { .. } => self.polling.carrier(conn),
                        };
                        let backed_up = match tcp {
                            Some(c) => ctx.backed_up(c),
                            None => self.polling.backed_up(conn),
                        };
                        if volatile && backed_up {
                            self.stats.volatile_dropped += 1;
                            continue;
                        }
                        let bytes = self.out.bytes(frame);
                        if let Err(p) = guard::tap(&mut self.tap, bytes) {
                            self.callback_panicked("tap", None, &p);
                        }
                        if self.wire_tap.is_some() {
                            let bytes = self.out.bytes(frame);
                            let (tap, conns) = (&mut self.wire_tap, &self.conns);
                            let shown = show_wire(tap, conns, conn, tcp.is_some(), true, bytes);
                            if let Err(p) = shown {
                                self.callback_panicked("wire tap", None, &p);
                            }
                        }
                        let bytes = self.out.bytes(frame);
                        let refused = match tcp {
                            Some(c) => matches!(ctx.send(c, bytes), Err(SendError::Full { .. })),
                            None => self.polling.queue(conn, bytes, max_queued).is_err(),
                        };
                        if refused && !full.contains(&conn) {
                            full.push(conn);
                        }
                    }
                    Item::Do(Action::Close { conn, flush }) => match conn {
                        Link::Tcp(c) if flush => ctx.close(c),
                        Link::Tcp(c) => ctx.abort(c),
                        Link::Polling { .. } => self.close_polling(ctx, conn, flush),
                    },
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
        self.answer_polls(ctx);
        self.out.settle();
        self.cluster_flush(ctx);
    }
}
