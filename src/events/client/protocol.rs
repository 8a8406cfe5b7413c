//! The client's side of the protocol, as the event loop's handler: its HELLO and CONNECT,
//! the server's packets, the heartbeat, and handing the outbox to the loop.

use std::time::Duration;

use serde_json::{json, Value};

use super::io::ClientIo;
use super::ClientState;
use crate::event_loop::{self, CloseReason, ConnId, Ctx};
use crate::events::encoder::Wire;
use crate::events::guard;
use crate::events::listeners::Event;
use crate::events::names::Name;
use crate::events::outbox::{Item, MAX_ROUNDS};
use crate::events::{reasons, AckError, AckReply};
use crate::sys;
use crate::wire::packet::{self, Packet, RESERVED_EVENTS};

/// The client's timers.
#[derive(Debug)]
pub enum ClientTimer {
    AckTimeout(u32),
    /// Time for the next reconnection attempt.
    Reconnect,
    /// The server's next PING is due by now (heartbeat generation).
    PingDue(u64),
    /// The CONNECT reply of this attempt is due by now (attempt generation).
    ConnectReplyDue(u64),
}

/// What the client's outbox asks of the loop besides sending frames. Close and abort name
/// the connection that was current when they were queued (`None`: there was none).
pub(super) enum Action {
    Close(Option<ConnId>),
    Abort(Option<ConnId>),
    Connect,
    Timer(Duration, ClientTimer),
}

impl ClientIo {
    pub(super) fn on_packet(&mut self, p: Packet) {
        match p {
            Packet::Hello { info, .. } => {
                self.server_info = info;
                self.expect_ping();
            }
            Packet::Connect { data, .. } => {
                let field = |k: &str| {
                    data.as_ref()
                        .and_then(|d| d.get(k))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                self.sid = field("sid").map(Name::from);
                self.pid = field("pid").or(self.pid.take());
                self.recovered = data
                    .as_ref()
                    .and_then(|d| d.get("recovered"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if !self.recovered {
                    // A new session counts broadcasts from the server's current offset.
                    self.offset = data
                        .as_ref()
                        .and_then(|d| d.get("offset"))
                        .and_then(Value::as_u64);
                }
                let reconnected = self.state == ClientState::Reconnecting;
                self.state = ClientState::Connected;
                // Acked emits of an earlier connection first, then what was emitted while
                // offline, in order; all before `connect` fires.
                if let Some(conn) = self.conn {
                    for bytes in self.unacked.values() {
                        let frame = self.out.copy(bytes);
                        self.out.send(conn, frame, false);
                    }
                    while let Some((ack, bytes)) = self.offline.pop_front() {
                        let frame = self.out.copy(&bytes);
                        self.out.send(conn, frame, false);
                        if let Some(id) = ack {
                            self.unacked.insert(id, bytes);
                        }
                    }
                }
                if reconnected {
                    let n = self.attempts;
                    self.attempts = 0;
                    self.fire("reconnect", vec![json!(n)]);
                }
                self.fire("connect", Vec::new());
            }
            Packet::ConnectError { message, .. } => {
                self.connect_error = Some(message.clone());
                self.fire("connect_error", vec![json!(message)]);
                self.finish(reasons::IO_SERVER_DISCONNECT);
                self.out.push(Action::Close(self.conn));
            }
            Packet::Event {
                name,
                args,
                attachments,
                id,
                offset,
                ..
            } => {
                if RESERVED_EVENTS.contains(&name.as_str()) {
                    return; // the library's own names; a server may not send them
                }
                self.events_in += 1;
                // A broadcast carries its offset in the EVENT header (docs/protocol.md
                // 6.8): the last one seen is what a reconnecting client asks to resume from.
                if offset.is_some() {
                    self.offset = offset;
                }
                let event = Event {
                    socket: self.socket_name(),
                    name,
                    args,
                    attachments,
                    ack: id,
                };
                self.dispatch(&event);
            }
            Packet::Ack {
                id,
                args,
                attachments,
                ..
            } => {
                self.unacked.remove(&id);
                if let Some(cb) = self.acks.remove(&id) {
                    if let Err(p) = guard::call(|| cb(self, Ok(AckReply { args, attachments }))) {
                        self.callback_panicked("ack", &p);
                    }
                }
            }
            Packet::Disconnect { reason, .. } => {
                if reason.as_deref() == Some(reasons::SERVER_SHUTTING_DOWN) {
                    // Not sent away for good: the server is restarting.
                    self.out.push(Action::Close(self.conn));
                    self.lost(reasons::SERVER_SHUTTING_DOWN);
                } else {
                    self.finish(reasons::IO_SERVER_DISCONNECT);
                    self.out.push(Action::Close(self.conn));
                }
            }
            Packet::Ping => {
                let _ = self.send_packet(&Packet::Pong, None);
                self.expect_ping();
            }
            Packet::Pong => {}
        }
    }

    /// Hands the outbox to the loop (see `outbox.rs` for the rounds). Frames for a
    /// connection that is no longer the client's are dropped.
    pub(super) fn flush(&mut self, ctx: &mut Ctx<ClientTimer>) {
        for _ in 0..MAX_ROUNDS {
            if !self.out.start_round() {
                break;
            }
            while let Some(item) = self.out.next() {
                match item {
                    Item::Send { conn, frame, .. } => {
                        if self.conn != Some(conn) {
                            continue;
                        }
                        if let Err(p) = guard::tap(&mut self.tap, self.out.bytes(frame)) {
                            self.callback_panicked("tap", &p);
                        }
                        // (A tap that panicked has given this connection up already.)
                        if self.conn != Some(conn) {
                            continue;
                        }
                        // A full buffer means the server does not read; the cap bounds
                        // memory. Give up on this connection and come back later.
                        match ctx.send(conn, self.out.bytes(frame)) {
                            Ok(()) => {}
                            Err(event_loop::SendError::Full { .. }) => {
                                ctx.abort(conn);
                                self.lost(reasons::OUTBOUND_FULL);
                            }
                            Err(_) => ctx.abort(conn),
                        }
                    }
                    Item::Do(Action::Close(Some(conn))) => {
                        ctx.close(conn);
                        self.forget(conn);
                    }
                    Item::Do(Action::Abort(Some(conn))) => {
                        ctx.abort(conn);
                        self.forget(conn);
                    }
                    Item::Do(Action::Close(None) | Action::Abort(None)) => {}
                    Item::Do(Action::Connect) => {
                        let (addr, timeout) = (self.opts.addr, self.opts.connect_timeout);
                        if let Err(e) = ctx.connect(addr, Some(timeout)) {
                            self.connect_failed(&e.to_string());
                        }
                    }
                    Item::Do(Action::Timer(after, t)) => {
                        ctx.set_timer(after, t);
                    }
                }
            }
        }
        self.out.settle();
        if self.state == ClientState::Disconnected && ctx.connections() == 0 {
            ctx.stop();
        }
    }

    /// Connection `conn` was closed by this side: it is no longer the client's.
    pub(super) fn forget(&mut self, conn: ConnId) {
        if self.conn == Some(conn) {
            self.conn = None;
        }
    }
}

/// The client as an event loop handler.
pub struct ClientCore {
    pub(super) io: ClientIo,
}

/// Work for the client's loop thread from other threads.
pub type ClientMsg = Box<dyn FnOnce(&mut ClientIo) + Send>;

impl event_loop::Handler for ClientCore {
    type Timer = ClientTimer;
    type Message = ClientMsg;

    fn connected(&mut self, ctx: &mut Ctx<ClientTimer>, id: ConnId, result: sys::Result<()>) {
        let io = &mut self.io;
        match result {
            Ok(()) if io.state != ClientState::Disconnected => {
                io.conn = Some(id);
                // HELLO and CONNECT go first on the new connection; what was emitted
                // offline follows the server's CONNECT reply.
                for p in [Packet::hello(json!({})), io.connect_packet()] {
                    if let Ok(frame) = io.out.encode(Wire::Socklab, &p, &io.opts.limits) {
                        io.out.send(id, frame, false);
                    }
                }
                // The server's HELLO and CONNECT reply are due within `connect_timeout`: a
                // server that accepts and then says nothing (or never answers the CONNECT)
                // fails the attempt instead of keeping the client waiting.
                io.attempt_gen += 1;
                let due = io.opts.connect_timeout;
                let gen = io.attempt_gen;
                io.out
                    .push(Action::Timer(due, ClientTimer::ConnectReplyDue(gen)));
            }
            Ok(()) => ctx.abort(id), // disconnected meanwhile
            Err(e) => io.connect_failed(&e.to_string()),
        }
        io.flush(ctx);
    }

    fn data(&mut self, ctx: &mut Ctx<ClientTimer>, conn: ConnId, bytes: &[u8]) -> usize {
        if self.io.conn != Some(conn) {
            return bytes.len(); // an old connection's last bytes
        }
        let limits = self.io.opts.limits;
        let io = &mut self.io;
        let mut bad = false;
        let used = packet::decode_stream(bytes, &limits, |res| match res {
            Ok(p) => {
                io.on_packet(p.into_owned());
                // Stop at once if a listener disconnected or the connection was lost.
                io.conn == Some(conn) && io.state != ClientState::Disconnected
            }
            Err(_) => {
                bad = true;
                false
            }
        });
        if bad {
            io.out.push(Action::Abort(io.conn));
            io.lost(reasons::PARSE_ERROR);
            io.flush(ctx);
            return bytes.len();
        }
        io.flush(ctx);
        used
    }

    fn closed(&mut self, ctx: &mut Ctx<ClientTimer>, conn: ConnId, reason: CloseReason) {
        if self.io.conn == Some(conn) {
            let why = match reason {
                CloseReason::Error(_) => reasons::TRANSPORT_ERROR,
                CloseReason::Truncated { .. } => reasons::PARSE_ERROR,
                _ => reasons::TRANSPORT_CLOSE,
            };
            self.io.lost(why);
        }
        self.io.flush(ctx);
    }

    /// A PING deadline moved on by a newer PING (or a connection gone), an ack deadline the
    /// ack already met, or a CONNECT-reply deadline the reply already met would only wake the
    /// loop: it is dropped instead (the checks `timer` makes).
    fn timer_wanted(&self, t: &ClientTimer) -> bool {
        let io = &self.io;
        match t {
            ClientTimer::PingDue(gen) => *gen == io.ping_gen && io.conn.is_some(),
            ClientTimer::AckTimeout(id) => io.acks.contains_key(id) || io.unacked.contains_key(id),
            // Once false this stays false: a new connection is a new attempt generation.
            ClientTimer::ConnectReplyDue(gen) => {
                let waiting = matches!(
                    io.state,
                    ClientState::Connecting | ClientState::Reconnecting
                );
                *gen == io.attempt_gen && io.conn.is_some() && waiting
            }
            ClientTimer::Reconnect => true,
        }
    }

    fn timer(&mut self, ctx: &mut Ctx<ClientTimer>, _: event_loop::TimerId, t: ClientTimer) {
        let io = &mut self.io;
        match t {
            ClientTimer::AckTimeout(id) => {
                io.unacked.remove(&id);
                io.offline.retain(|(ack, _)| *ack != Some(id));
                if let Some(cb) = io.acks.remove(&id) {
                    if let Err(p) = guard::call(|| cb(io, Err(AckError::Timeout))) {
                        io.callback_panicked("ack (timeout)", &p);
                    }
                }
            }
            ClientTimer::Reconnect => {
                if io.state == ClientState::Reconnecting && io.conn.is_none() {
                    io.attempts += 1;
                    let n = io.attempts;
                    io.fire("reconnect_attempt", vec![json!(n)]);
                    io.out.push(Action::Connect);
                }
            }
            ClientTimer::PingDue(gen) => {
                if gen == io.ping_gen && io.conn.is_some() {
                    io.out.push(Action::Abort(io.conn));
                    io.lost(reasons::PING_TIMEOUT);
                }
            }
            ClientTimer::ConnectReplyDue(gen) => {
                let waiting = matches!(
                    io.state,
                    ClientState::Connecting | ClientState::Reconnecting
                );
                if gen == io.attempt_gen && io.conn.is_some() && waiting {
                    io.out.push(Action::Abort(io.conn.take()));
                    io.ping_gen += 1; // this connection's PING deadline goes with it
                    let ms = io.opts.connect_timeout.as_millis();
                    io.connect_failed(&format!("timeout: no CONNECT reply within {ms} ms"));
                }
            }
        }
        io.flush(ctx);
    }

    fn message(&mut self, ctx: &mut Ctx<ClientTimer>, msg: ClientMsg) {
        let io = &mut self.io;
        if let Err(p) = guard::call(|| msg(io)) {
            self.io.callback_panicked("ClientHandle::run closure", &p);
        }
        self.io.flush(ctx);
    }
}
