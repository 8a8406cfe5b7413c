//! The end of a socket, and of a connection: `disconnecting` while still in its rooms,
//! leaving them, parking its session if its client may come back, failing its pending acks,
//! then `disconnect`.

use serde_json::json;

use super::protocol::Action;
use super::Io;
use crate::events::encoder::Wire;
use crate::events::guard;
use crate::events::link::Link;
use crate::events::listeners::Event;
use crate::events::names::Name;
use crate::events::{reasons, AckError};
use crate::wire::packet::Packet;

impl Io {
    /// Disconnects socket `sid` from its namespace (reason `server namespace disconnect`;
    /// the client sees `io server disconnect` and does not reconnect). The connection closes
    /// when it has no namespace left.
    pub fn disconnect(&mut self, sid: &str) {
        if let Some(conn) = self.say_goodbye(sid, reasons::SERVER_NAMESPACE_DISCONNECT) {
            self.close_if_unused(conn, true);
        }
    }

    /// Begins the server's graceful stop from a handler (as SIGTERM would).
    pub fn stop(&mut self) {
        self.out.push(Action::Stop);
    }

    // ANCHOR: say_goodbye
    /// Sends socket `sid` a DISCONNECT with `reason` and removes it; returns its connection.
    pub(super) fn say_goodbye(&mut self, sid: &str, reason: &str) -> Option<Link> {
        let s = self.sockets.get(sid)?;
        let (conn, ns) = (s.conn, s.namespace.to_string());
        let p = Packet::Disconnect {
            ns,
            reason: Some(reason.into()),
        };
        self.queue_packet(conn, &p);
        self.remove_socket(sid, reason);
        Some(conn)
    }
    // ANCHOR_END: say_goodbye

    /// Closes `conn` (after flushing, if `flush`) once no namespace is left on it.
    pub(super) fn close_if_unused(&mut self, conn: Link, flush: bool) {
        if self.conns.get(&conn).is_some_and(|c| c.sockets.is_empty()) {
            self.close_later(conn, flush);
        }
    }

    /// Ends connection `conn`: every socket on it is removed with `reason`, then the loop
    /// closes it (after flushing, if `flush`).
    pub(super) fn close_conn(&mut self, conn: Link, reason: &str, flush: bool) {
        self.remove_conn_sockets(conn, reason);
        if self.conns.contains_key(&conn) {
            self.close_later(conn, flush);
        }
    }

    /// Removes every socket of connection `conn`, with `reason`.
    pub(super) fn remove_conn_sockets(&mut self, conn: Link, reason: &str) {
        let sids: Vec<Name> = self
            .conns
            .get(&conn)
            .map(|c| c.sockets.values().cloned().collect())
            .unwrap_or_default();
        for sid in sids {
            self.remove_socket(&sid, reason);
        }
    }

    /// Removes a socket: `disconnecting` (still in its rooms), leave all rooms, pending
    /// acks fail, `disconnect`.
    pub(super) fn remove_socket(&mut self, sid: &str, reason: &str) {
        let Some(key) = self.sid_name(sid) else {
            return;
        };
        let ev = |name: &str| Event {
            socket: key.clone(),
            name: name.to_string(),
            args: vec![json!(reason)],
            attachments: Vec::new(),
            ack: None,
        };
        // A panic in a `disconnecting` listener is recorded; the socket is going anyway.
        let event = ev("disconnecting");
        if let Err(p) = self.dispatch(&event) {
            self.callback_panicked("\"disconnecting\" listener", None, &p);
        }
        self.everyone = None;
        let Some((sid, mut s)) = self.sockets.remove_entry(sid) else {
            return;
        };
        self.live_pids.remove(&s.session.pid);
        for room in s.session.joined.keys() {
            self.rooms.remove(&s.namespace, room, &sid);
        }
        if let Some(c) = self.conns.get_mut(&s.conn) {
            c.sockets.remove(&s.namespace);
        }
        // Kept for the client's return, unless someone ended the socket on purpose.
        if reasons::session_kept(reason) && !s.session.pid.is_empty() {
            let session = std::mem::take(&mut s.session);
            self.park(sid.clone(), s.namespace.clone(), s.conn, session);
        } else if !s.session.pid.is_empty() && reason != reasons::CLUSTER_DISCONNECT {
            // (Another node that disconnected it may hold the session now.)
            self.cluster_session_ended(&s.session.pid);
        }
        // Every pending ack fails; each callback runs, whatever the one before it did.
        for (_, cb) in s.acks.drain() {
            if let Err(p) = guard::call(|| cb(self, Err(AckError::Disconnected))) {
                self.callback_panicked("ack (disconnected)", None, &p);
            }
        }
        // The socket is gone from the table; its `disconnect` listeners run from here.
        let event = ev("disconnect");
        for p in s.listeners.call_detached(self, &event) {
            self.callback_panicked("\"disconnect\" listener", None, &p);
        }
    }

    // ANCHOR: shutting_down
    pub(super) fn shutting_down(&mut self) {
        self.stopping = true;
        let sids: Vec<Name> = self.sockets.keys().cloned().collect();
        for sid in sids {
            self.say_goodbye(&sid, reasons::SERVER_SHUTTING_DOWN);
        }
        // Socket.IO connections are told with a close frame (1001, going away), written by
        // `close_later`; the loop would otherwise close them without one.
        let sio: Vec<Link> = (self.conns.iter())
            .filter(|(_, c)| c.wire == Wire::SocketIo)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in sio {
            self.close_later(conn, true);
        }
    }
    // ANCHOR_END: shutting_down
}
