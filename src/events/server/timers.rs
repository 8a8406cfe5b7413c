//! The server's timers when they are due: the handshake that never finished, the heartbeat
//! (a PING every `pingInterval`, a PONG due within `pingTimeout`), an ack that never came,
//! the long-polling sessions' upgrade and last poll.

use super::protocol::{Action, ServerTimer};
use super::Io;
use crate::events::{guard, reasons};
use crate::wire::packet::Packet;

impl Io {
    pub(super) fn timer(&mut self, t: ServerTimer) {
        match t {
            // Still no namespace joined: the handshake timed out.
            // A WebSocket that probes or carries a long-polling session, and a connection
            // with a poll held on it, joined nothing themselves: the session's own timers
            // rule them. The held poll's connection is looked at again a timeout later (an
            // idle keep-alive connection is closed then).
            ServerTimer::Handshake(conn) => {
                let routed = self.conns.get(&conn).is_some_and(|c| c.route.is_some());
                let holding = conn.tcp().is_some_and(|tcp| self.polling.holds(tcp));
                if holding {
                    let again = self.config.handshake_timeout;
                    self.out
                        .push(Action::Timer(again, ServerTimer::Handshake(conn)));
                } else if !routed {
                    self.close_if_unused(conn, false);
                }
            }
            // ANCHOR: heartbeat
            ServerTimer::Ping(conn) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.pings += 1;
                c.awaiting_pong = true;
                let seq = c.pings;
                self.queue_packet(conn, &Packet::Ping);
                let due = self.config.ping_timeout;
                self.out
                    .push(Action::Timer(due, ServerTimer::PongDue(conn, seq)));
            }
            ServerTimer::PongDue(conn, seq) => {
                let late = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.awaiting_pong && c.pings == seq);
                if late {
                    self.close_conn(conn, reasons::PING_TIMEOUT, false);
                }
            }
            // ANCHOR_END: heartbeat
            ServerTimer::UpgradeDue(link, tcp) => self.upgrade_due(link, tcp),
            ServerTimer::PollingGone(link) => self.polling_gone(link),
            // The flush that follows every timer dials what is down (`cluster.rs`).
            ServerTimer::ClusterRetry => {}
            ServerTimer::ClusterRequest(id) => self.cluster_request_due(&id),
            ServerTimer::ClusterRefresh => self.cluster_refresh_sessions(),
            ServerTimer::AckTimeout { sid, id } => {
                let cb = self.sockets.get_mut(&*sid).and_then(|s| s.acks.remove(&id));
                if let Some(cb) = cb {
                    if let Err(p) = guard::call(|| cb(self, Err(crate::events::AckError::Timeout)))
                    {
                        self.callback_panicked("ack (timeout)", Some(&sid), &p);
                    }
                }
            }
        }
    }
}
