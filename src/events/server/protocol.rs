//! The server's side of the protocol, as the event loop's handler: a connection's HELLO,
//! CONNECT (middleware, new or restored session), EVENT and ACK, DISCONNECT, the heartbeat,
//! and handing the outbox to the loop.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{ConnState, Io, NsSockets, Reader, Refused, SocketState};
use crate::event_loop::{self, CloseReason, ConnId, Ctx};
use crate::events::encoder::Wire;
use crate::events::guard;
use crate::events::link::Link;
use crate::events::listeners::{Event, Listeners};
use crate::events::names::Name;
use crate::events::session::Session;
use crate::events::{reasons, AckReply};
use crate::sys;
use crate::wire::offset;
use crate::wire::packet::{Decoded, EventView, Packet, RESERVED_EVENTS};

/// The loop's timers for the server.
#[derive(Debug)]
pub enum ServerTimer {
    Handshake(Link),
    AckTimeout {
        sid: Name,
        id: u32,
    },
    /// Time to send connection `conn` its next PING.
    Ping(Link),
    /// The PONG for PING number `seq` is due.
    PongDue(Link, u64),
    /// The WebSocket probing a long-polling session must have sent `5` by now.
    UpgradeDue(Link, ConnId),
    /// A long-polling session the server closed is forgotten, its last poll or not.
    PollingGone(Link),
    /// A cluster connection's backoff is over: dial it again.
    ClusterRetry,
    /// Cluster request `id` waited long enough for the other nodes' answers.
    ClusterRequest(String),
    /// Time to write the live sockets' sessions to Redis again.
    ClusterRefresh,
}

/// What the server's outbox asks of the loop besides sending frames.
pub(super) enum Action {
    Close { conn: Link, flush: bool },
    Timer(Duration, ServerTimer),
    Stop,
}

impl Io {
    /// A new connection says nothing until its client does: its first byte tells which
    /// wire it speaks (`reading.rs`).
    fn accepted(&mut self, conn: Link, peer: SocketAddr) {
        self.recovery.connected(conn);
        self.conns.insert(
            conn,
            ConnState {
                peer,
                wire: Wire::Socklab,
                reader: Reader::First,
                route: None,
                hello: false,
                sockets: NsSockets::default(),
                pings: 0,
                awaiting_pong: false,
                closing: false,
            },
        );
        let handshake = self.config.handshake_timeout;
        self.out
            .push(Action::Timer(handshake, ServerTimer::Handshake(conn)));
    }

    fn refuse(&mut self, conn: Link, ns: &str, refused: Refused) {
        self.stats.connects_refused += 1;
        let p = Packet::ConnectError {
            ns: ns.to_string(),
            message: refused.message,
            data: refused.data,
        };
        self.queue_packet(conn, &p);
    }

    pub(super) fn protocol_error(&mut self, conn: Link) {
        self.stats.parse_errors += 1;
        self.close_conn(conn, reasons::PARSE_ERROR, true);
    }

    pub(super) fn on_packet(&mut self, conn: Link, p: Decoded<'_>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.hello {
            // The first packet must be the client's HELLO (checked for magic and version
            // by the decoder).
            if matches!(p, Decoded::Other(Packet::Hello { .. })) {
                c.hello = true;
            } else {
                self.protocol_error(conn);
            }
            return;
        }
        let p = match p {
            Decoded::Event(e) => return self.on_event(conn, e),
            Decoded::Other(p) => p,
        };
        match p {
            Packet::Connect { ns, data } => self.on_connect(conn, ns, data),
            Packet::Ack {
                ns,
                id,
                args,
                attachments,
            } => {
                let Some(sid) = self.sid_on(conn, &ns) else {
                    return;
                };
                // An ack for an id never sent (or already timed out) is ignored.
                let cb = self.sockets.get_mut(&*sid).and_then(|s| s.acks.remove(&id));
                if let Some(cb) = cb {
                    let reply = AckReply { args, attachments };
                    if let Err(p) = guard::call(|| cb(self, Ok(reply))) {
                        self.callback_panicked("ack", Some(&sid), &p);
                    }
                }
            }
            Packet::Disconnect { ns, .. } => {
                if let Some(sid) = self.sid_on(conn, &ns) {
                    self.remove_socket(&sid, reasons::CLIENT_NAMESPACE_DISCONNECT);
                }
                self.close_if_unused(conn, true);
            }
            Packet::Pong => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    if c.awaiting_pong {
                        c.awaiting_pong = false;
                        let next = self.config.ping_interval;
                        self.out.push(Action::Timer(next, ServerTimer::Ping(conn)));
                    }
                }
            }
            Packet::Ping => {}
            Packet::Event { .. } | Packet::Hello { .. } | Packet::ConnectError { .. } => {
                self.protocol_error(conn)
            }
        }
    }

    /// The socket connection `conn` has in namespace `ns`, if any.
    fn sid_on(&self, conn: Link, ns: &str) -> Option<Name> {
        self.conns.get(&conn)?.sockets.get(ns).cloned()
    }

    fn on_event(&mut self, conn: Link, e: EventView<'_>) {
        let Some(sid) = self.sid_on(conn, e.ns) else {
            return; // not connected to that namespace: ignored, as Socket.IO does
        };
        if RESERVED_EVENTS.contains(&&*e.name) {
            return;
        }
        if let Some(ack) = e.id {
            // A retry after a reconnect: answer it again, do not handle it twice.
            let Some(s) = self.sockets.get_mut(&*sid) else {
                return;
            };
            if let Some(done) = s.session.handled(ack) {
                if let Some(answer) = done {
                    let frame = self.out.copy(answer);
                    self.out.send(conn, frame, false);
                }
                self.stats.duplicates_dropped += 1;
                return;
            }
            s.session.note_handled(ack);
        }
        self.stats.events_in += 1;
        let event = Event {
            socket: sid,
            name: e.name.into_owned(),
            args: e.args,
            attachments: e.attachments,
            ack: e.id,
        };
        self.dispatch_guarded(&event);
    }

    fn on_connect(&mut self, conn: Link, ns: String, data: Option<Value>) {
        // In a cluster, a session parked on another node is fetched from Redis first.
        if !self.cluster_restore_first(conn, &ns, &data) {
            self.connect_socket(conn, ns, data);
        }
    }

    /// Answers a CONNECT: the middleware, then a new socket or a restored session.
    pub(super) fn connect_socket(&mut self, conn: Link, ns: String, data: Option<Value>) {
        // The client's session to restore, if it names one; the rest is its auth payload.
        let (auth, pid, offset) = split_connect_data(data);
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.sockets.contains_key(&ns) {
            return; // already connected to it
        }
        let peer = c.peer;
        // ANCHOR: replaced
        // The `pid` is a secret that only the client it was given to holds (120 random
        // bits), so a CONNECT naming the session of a socket that still looks alive is that
        // client on a new connection, back before this side noticed that the old one died (a
        // half-open connection). The new connection takes the session over: the old socket
        // is told why (if it can still hear it) and is parked, to be restored below. This
        // happens before the middleware runs, so that what the old socket held (a chat name,
        // say) is free again when the middleware looks.
        let live = pid.as_ref().and_then(|p| {
            let conn = *self.live_pids.get(p)?;
            let sid = self.conns.get(&conn)?.sockets.get(&ns)?;
            let s = self.sockets.get(&**sid)?;
            (&s.session.pid == p).then(|| (sid.clone(), conn))
        });
        if let Some((old_sid, old_conn)) = live {
            self.stats.sessions_replaced += 1;
            self.say_goodbye(&old_sid, reasons::SESSION_REPLACED);
            self.close_if_unused(old_conn, true);
        }
        // ANCHOR_END: replaced
        let Some((ns_name, mut namespace)) = self.namespaces.remove_entry(ns.as_str()) else {
            self.refuse(conn, &ns, "Invalid namespace".into());
            return;
        };
        let handshake = super::Handshake {
            auth,
            peer,
            namespace: ns.clone(),
        };
        let verdict = guard::call(|| {
            namespace
                .middleware
                .iter_mut()
                .try_for_each(|mw| mw(&handshake))
        })
        .unwrap_or_else(|p| {
            // The client is refused with `server error`; no socket exists yet.
            self.callback_panicked("middleware", None, &p);
            Err("server error".into())
        });
        if let Err(refused) = verdict {
            self.namespaces.insert(ns_name, namespace);
            self.refuse(conn, &ns, refused);
            return;
        }
        self.recovery.expire(Instant::now());
        let sockets = &self.sockets;
        let restored = pid.and_then(|p| {
            self.recovery
                .restore(&p, &ns, offset, |sid| sockets.contains_key(sid))
        });
        let recovered = restored.is_some();
        let last_sent = restored.as_ref().map_or(0, |p| p.last_sent);
        let wire = self.wire_of(conn);
        let (sid, session) = match restored {
            // Answers kept for retries are bytes of the wire the session spoke: a client
            // back on the other wire (it would have to be given the session's secret) gets
            // none of them.
            Some(p) if p.wire != wire => (p.sid, p.session.without_answers()),
            Some(p) => (p.sid, p.session),
            None => {
                let ids = self.ids.next_id().zip(self.ids.next_id());
                let Some((pid, sid)) = ids else {
                    // No id without the operating system's generator: refuse rather than
                    // hand out a guessable one.
                    self.namespaces.insert(ns_name, namespace);
                    self.refuse(conn, &ns, "server error".into());
                    return;
                };
                (Name::from(sid), Session::new(pid))
            }
        };
        // A restored session is back in its rooms, with the offsets it joined them at.
        let rooms: Vec<String> = session.joined.keys().cloned().collect();
        let pid = session.pid.clone();
        self.everyone = None;
        self.live_pids.insert(pid.clone(), conn);
        let state = SocketState {
            conn,
            wire,
            namespace: ns_name.clone(),
            listeners: Listeners::default(),
            acks: Default::default(),
            next_ack: 0,
            handshake,
            session,
        };
        self.sockets.insert(sid.clone(), Box::new(state));
        self.cluster_session_changed(&sid);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.sockets.insert(ns_name.clone(), sid.clone());
        }
        for room in &rooms {
            self.join(&sid, room);
        }
        let reply = Packet::Connect {
            ns: ns.clone(),
            // `offset`: the last broadcast so far; a new session starts counting from it.
            data: Some(json!({
                "sid": &*sid,
                "pid": pid,
                "recovered": recovered,
                "offset": self.recovery.last_offset(),
            })),
        };
        self.queue_packet(conn, &reply);
        if recovered {
            self.stats.sessions_recovered += 1;
            self.replay_missed(conn, &sid, offset, last_sent);
        }
        // Run the connection handlers; handlers added meanwhile are kept.
        let mut handlers = std::mem::take(&mut namespace.on_connection);
        self.namespaces.insert(ns_name.clone(), namespace);
        for h in handlers.iter_mut() {
            if let Err(p) = guard::call(|| h(self, &sid)) {
                self.callback_panicked("connection handler", Some(&sid), &p);
                break;
            }
        }
        if let Some(n) = self.namespaces.get_mut(&*ns_name) {
            handlers.append(&mut n.on_connection);
            n.on_connection = handlers;
        }
    }

    pub(super) fn loop_closed(&mut self, conn: Link, reason: &CloseReason) {
        let why = match reason {
            CloseReason::PeerClosed => reasons::TRANSPORT_CLOSE,
            CloseReason::Error(_) => reasons::TRANSPORT_ERROR,
            CloseReason::InputOverflow => reasons::PARSE_ERROR,
            CloseReason::Truncated { .. } => {
                self.stats.parse_errors += 1; // end of file inside a frame (section 2)
                reasons::PARSE_ERROR
            }
            CloseReason::Stopped => reasons::SERVER_SHUTTING_DOWN,
            CloseReason::Local => reasons::FORCED_CLOSE,
        };
        self.remove_conn_sockets(conn, why);
        if let Some(c) = self.conns.remove(&conn) {
            if let (Some(link), Link::Tcp(tcp)) = (c.route, conn) {
                self.websocket_ended(link, tcp, why, false);
            }
        }
        if let Link::Tcp(tcp) = conn {
            self.polling_conn_closed(tcp);
        }
    }
}

/// Splits a CONNECT payload into the auth the application sees and the session fields
/// (`pid`, `offset`) the protocol uses.
fn split_connect_data(data: Option<Value>) -> (Option<Value>, Option<String>, u64) {
    let Some(Value::Object(mut obj)) = data else {
        return (data, None, 0);
    };
    let pid = obj
        .remove("pid")
        .and_then(|v| v.as_str().map(str::to_string));
    // A number from socklab's client, a string from Socket.IO's (the last argument of the
    // last broadcast it got, see `wire/sio_packet.rs`).
    let offset = obj
        .remove("offset")
        .and_then(|v| v.as_u64().or_else(|| offset::parse(v.as_str()?)))
        .unwrap_or(0);
    let auth = (!obj.is_empty()).then_some(Value::Object(obj));
    (auth, pid, offset)
}

/// The server as an event loop handler.
pub struct ServerCore {
    pub(crate) io: Io,
}

/// Work for the loop thread from other threads (see [`super::ServerHandle`]).
pub type ServerMsg = Box<dyn FnOnce(&mut Io) + Send>;

impl event_loop::Handler for ServerCore {
    type Timer = ServerTimer;
    type Message = ServerMsg;

    fn accepted(&mut self, ctx: &mut Ctx<ServerTimer>, id: ConnId, peer: SocketAddr) {
        self.io.accepted(Link::Tcp(id), peer);
        self.io.flush(ctx);
    }

    /// Only the cluster's connections to Redis are dialled (`cluster.rs`).
    fn connected(&mut self, ctx: &mut Ctx<ServerTimer>, id: ConnId, result: sys::Result<()>) {
        self.io.cluster_connected(ctx, id, result);
        self.io.flush(ctx);
    }

    fn data(&mut self, ctx: &mut Ctx<ServerTimer>, conn: ConnId, bytes: &[u8]) -> usize {
        let used = if self.io.cluster_owns(conn) {
            self.io.cluster_data(ctx, conn, bytes)
        } else {
            self.io.read(Link::Tcp(conn), bytes)
        };
        self.io.flush(ctx);
        used
    }

    fn closed(&mut self, ctx: &mut Ctx<ServerTimer>, id: ConnId, reason: CloseReason) {
        if self.io.cluster_owns(id) {
            self.io.cluster_closed(ctx, id, reason);
        } else {
            self.io.loop_closed(Link::Tcp(id), &reason);
        }
        self.io.flush(ctx);
    }

    fn timer(&mut self, ctx: &mut Ctx<ServerTimer>, _: event_loop::TimerId, t: ServerTimer) {
        self.io.timer(t);
        self.io.flush(ctx);
    }

    /// A heartbeat timer of a connection that is gone, a PONG deadline the PONG already met,
    /// or an ack deadline the ack already met would only wake the loop: it is dropped
    /// instead (the checks `timer` makes).
    fn timer_wanted(&self, t: &ServerTimer) -> bool {
        let io = &self.io;
        match t {
            ServerTimer::Ping(conn) => io.conns.contains_key(conn),
            ServerTimer::PongDue(conn, seq) => io
                .conns
                .get(conn)
                .is_some_and(|c| c.awaiting_pong && c.pings == *seq),
            ServerTimer::AckTimeout { sid, id } => io
                .sockets
                .get(&**sid)
                .is_some_and(|s| s.acks.contains_key(id)),
            ServerTimer::Handshake(_) | ServerTimer::UpgradeDue(..) => true,
            ServerTimer::PollingGone(_) | ServerTimer::ClusterRetry => true,
            ServerTimer::ClusterRequest(_) | ServerTimer::ClusterRefresh => true,
        }
    }

    fn message(&mut self, ctx: &mut Ctx<ServerTimer>, msg: ServerMsg) {
        let io = &mut self.io;
        if let Err(p) = guard::call(|| msg(io)) {
            self.io
                .callback_panicked("ServerHandle::run closure", None, &p);
        }
        self.io.flush(ctx);
    }

    fn stopping(&mut self, ctx: &mut Ctx<ServerTimer>) {
        self.io.shutting_down();
        self.io.flush(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Server, ServerConfig};
    use crate::events::outbox::ARENA_KEEP;
    use serde_json::json;
    use std::time::Duration;

    /// Broadcasts to a room nobody is in queue nothing; their frames must not stay in the
    /// arena (they did, and 100 of 900 kB kept 90 MB until something else was sent).
    #[test]
    fn broadcasts_to_nobody_leave_nothing_in_the_arena() {
        let mut server = Server::new(ServerConfig::default()).expect("a server");
        let big = "x".repeat(900_000);
        for _ in 0..10 {
            let b = server.io().broadcast("/").to("nobody");
            assert_eq!(b.emit("big", vec![json!(big)]), Ok(0));
            server.turn(Some(Duration::ZERO)).expect("a turn");
        }
        let io = server.io();
        let (len, capacity) = io.out.arena_len();
        assert_eq!(len, 0);
        assert!(capacity <= ARENA_KEEP, "{capacity}");
        assert!(io.stats().replay_bytes >= 9_000_000, "all ten are logged");
    }
}
