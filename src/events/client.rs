//! The event client: connect (with auth), `on`/`once`/`off`/`on_any`, `emit` with and
//! without ack, `disconnect`, and the events `connect`, `connect_error` and `disconnect`.
//!
//! Like the server, [`ClientIo`] is the client's whole state and what every listener gets;
//! emits are encoded into a reused buffer and handed to the loop when the listener returns.
//! An emit made before the connection is up waits in a bounded offline buffer and goes out,
//! in order, as soon as the server accepts the namespace.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use super::guard::{self, Panicked, Panics};
use super::listeners::{self, Event, Listeners};
use super::{reasons, AckError, AckReply, EmitError};
use crate::event_loop::{self, CloseReason, ConnId, Ctx, EventLoop, LoopHandle};
use crate::sys;
use crate::wire::packet::{self, Limits, Packet, RESERVED_EVENTS};

/// How to connect, and how to come back.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub addr: SocketAddr,
    /// The namespace to join (default `/`).
    pub namespace: String,
    /// Sent with CONNECT; the server's middleware sees it. Use a JSON object: the session
    /// fields (`pid`, `offset`) ride in it on reconnect, so another kind of value means no
    /// connection state recovery.
    pub auth: Option<Value>,
    pub limits: Limits,
    /// How long one TCP connect may take; then, once it is up, how long the server may
    /// take to accept the namespace (its CONNECT reply). Past either, the attempt fails
    /// with `connect_error` and the client tries again with backoff.
    pub connect_timeout: Duration,
    /// Emits kept while not connected; past this, `emit` returns `EmitError::BufferFull`.
    pub offline_buffer: usize,
    /// Reconnect after `transport close`, `transport error`, `ping timeout`, `parse error`
    /// and `server shutting down` (never after a deliberate disconnect by either side).
    /// Default on.
    pub reconnection: bool,
    /// Give up after this many attempts in a row (`None`: never give up).
    pub reconnection_attempts: Option<u32>,
    /// First delay before reconnecting (Socket.IO's default: 1000 ms); it doubles each
    /// attempt...
    pub reconnection_delay: Duration,
    /// ...up to this (default 5000 ms)...
    pub reconnection_delay_max: Duration,
    /// ...with this much random spread either way (default 0.5), so that a thousand
    /// clients dropped at once do not come back at once.
    pub randomization_factor: f64,
    pub loop_config: event_loop::Config,
}

impl ClientOptions {
    pub fn new(addr: SocketAddr) -> ClientOptions {
        ClientOptions {
            addr,
            namespace: packet::DEFAULT_NAMESPACE.to_string(),
            auth: None,
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(20),
            offline_buffer: 1000,
            reconnection: true,
            reconnection_attempts: None,
            reconnection_delay: Duration::from_millis(1000),
            reconnection_delay_max: Duration::from_millis(5000),
            randomization_factor: 0.5,
            loop_config: event_loop::Config {
                max_connections: 16,
                ..event_loop::Config::default()
            },
        }
    }
}

/// Where the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// TCP connect, HELLO and CONNECT under way (the first time).
    Connecting,
    /// The server accepted the namespace; the client has a socket id.
    Connected,
    /// The connection was lost; waiting to try again, or trying.
    Reconnecting,
    /// Done: refused, disconnected on purpose, or out of attempts
    /// (see [`ClientIo::disconnect_reason`]).
    Disconnected,
}

type AckCallback = Box<dyn FnOnce(&mut ClientIo, Result<AckReply, AckError>)>;

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

/// The bounds the client puts on the server's `pingInterval` and `pingTimeout`, in
/// milliseconds: 1 ms to 1 hour each. A number outside is taken as the nearest bound, so
/// that no HELLO can make their sum overflow (`u64::MAX` and 1: a panic in a debug build, a
/// deadline of 0 and a reconnection after every HELLO in a release one) or put the deadline
/// out of reach.
const PING_MS_BOUNDS: std::ops::RangeInclusive<u64> = 1..=3_600_000;

enum Out {
    Send(usize, usize),
    /// Close (after flushing) or abort the connection that was current when this was
    /// queued: `lost` forgets the connection before the outbox is handed over.
    Close(Option<ConnId>),
    Abort(Option<ConnId>),
    Connect,
    Timer(Duration, ClientTimer),
}

// ANCHOR: backoff
/// The delay before reconnection attempt `attempt` (0-based): Socket.IO's backoff.
/// `random` is a number in [0, 1).
pub fn backoff(opts: &ClientOptions, attempt: u32, random: f64) -> Duration {
    let base = opts.reconnection_delay.as_millis() as f64;
    let mut ms = base * 2f64.powi(attempt.min(30) as i32);
    let jitter = opts.randomization_factor.clamp(0.0, 1.0);
    if jitter > 0.0 {
        let deviation = (random * jitter * ms).floor();
        ms = if ((random * 10.0).floor() as u64) & 1 == 0 {
            ms - deviation
        } else {
            ms + deviation
        };
    }
    let max = opts.reconnection_delay_max.as_millis() as f64;
    Duration::from_millis(ms.clamp(0.0, max) as u64)
}
// ANCHOR_END: backoff

/// The client's state and the handle every listener gets.
pub struct ClientIo {
    opts: ClientOptions,
    state: ClientState,
    conn: Option<ConnId>,
    sid: Option<String>,
    /// The session's private id, from the server: presented again on reconnecting so the
    /// server can restore the session.
    pid: Option<String>,
    /// The offset of the last broadcast received (for connection state recovery).
    offset: Option<u64>,
    recovered: bool,
    server_info: Value,
    listeners: Listeners<ClientIo>,
    acks: HashMap<u32, AckCallback>,
    next_ack: u32,
    /// Frames of acked emits already sent and not yet answered: sent again after a
    /// reconnect (the server drops duplicates).
    unacked: BTreeMap<u32, Vec<u8>>,
    /// Frames waiting for the connection, with their ack id if they asked for one.
    offline: VecDeque<(Option<u32>, Vec<u8>)>,
    disconnect_reason: Option<String>,
    connect_error: Option<String>,
    attempts: u32,
    ping_gen: u64,
    /// Counts TCP connections made: a CONNECT reply deadline is for one attempt only.
    attempt_gen: u64,
    out: Vec<Out>,
    arena: Vec<u8>,
    tap: Option<super::Tap>,
    /// User callbacks that panicked (see `guard.rs`).
    panics: Panics,
    /// Events received, for counters in demos and benchmarks.
    pub events_in: u64,
}

impl ClientIo {
    pub fn state(&self) -> ClientState {
        self.state
    }

    pub fn is_connected(&self) -> bool {
        self.state == ClientState::Connected
    }

    /// The socket id the server gave, once connected.
    pub fn id(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// Whether the last connect restored the previous session (same id, rooms, and the
    /// broadcasts missed meanwhile).
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The settings the server sent in its HELLO (`pingInterval`, `pingTimeout`,
    /// `maxPayload`).
    pub fn server_info(&self) -> &Value {
        &self.server_info
    }

    /// Why the client last disconnected.
    pub fn disconnect_reason(&self) -> Option<&str> {
        self.disconnect_reason.as_deref()
    }

    /// The server's refusal message (or the last connect error), if any.
    pub fn connect_error(&self) -> Option<&str> {
        self.connect_error.as_deref()
    }

    /// Emits waiting for a connection.
    pub fn offline_len(&self) -> usize {
        self.offline.len()
    }

    /// Calls `f` with every frame the client sends, as it goes to the loop.
    pub fn set_tap(&mut self, f: impl FnMut(&[u8]) + 'static) {
        self.tap = Some(Box::new(f));
    }

    pub fn on(&mut self, event: &str, f: impl FnMut(&mut ClientIo, &Event) + 'static) {
        self.listeners.on(event, Box::new(f));
    }

    pub fn once(&mut self, event: &str, f: impl FnMut(&mut ClientIo, &Event) + 'static) {
        self.listeners.once(event, Box::new(f));
    }

    pub fn off(&mut self, event: &str) {
        self.listeners.off(event);
    }

    pub fn on_any(&mut self, f: impl FnMut(&mut ClientIo, &Event) + 'static) {
        self.listeners.on_any(Box::new(f));
    }

    pub fn off_any(&mut self) {
        self.listeners.off_any();
    }

    fn check_attachments(&self, n: usize) -> Result<(), EmitError> {
        super::check_attachments(n, &self.opts.limits)
    }

    fn check_name(&self, name: &str) -> Result<(), EmitError> {
        super::check_name(name, &self.opts.limits)
    }

    /// Sends `p` now if connected, else keeps it for when the connection is up. An acked
    /// emit (`ack`) is also kept until answered, to be sent again after a reconnect.
    fn send_packet(&mut self, p: &Packet, ack: Option<u32>) -> Result<(), EmitError> {
        let (start, end) = super::encode_limited(p, &mut self.arena, &self.opts.limits)?;
        if self.state == ClientState::Connected {
            if let Some(id) = ack {
                self.unacked.insert(id, self.arena[start..end].to_vec());
            }
            self.out.push(Out::Send(start, end));
            return Ok(());
        }
        let frame = self.arena[start..end].to_vec();
        self.arena.truncate(start);
        if self.state == ClientState::Disconnected {
            return Err(EmitError::NoSuchSocket(
                "this client has disconnected".into(),
            ));
        }
        if self.offline.len() >= self.opts.offline_buffer {
            return Err(EmitError::BufferFull(self.offline.len()));
        }
        self.offline.push_back((ack, frame));
        Ok(())
    }

    /// Emits `event` with JSON `args`.
    pub fn emit(&mut self, event: &str, args: Vec<Value>) -> Result<(), EmitError> {
        self.emit_binary(event, args, Vec::new())
    }

    /// Emits `event` with JSON `args` and binary attachments.
    pub fn emit_binary(
        &mut self,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
    ) -> Result<(), EmitError> {
        self.check_name(event)?;
        self.check_attachments(attachments.len())?;
        let p = Packet::Event {
            ns: self.opts.namespace.clone(),
            name: event.to_string(),
            args,
            attachments,
            id: None,
        };
        self.send_packet(&p, None)
    }

    /// Emits `event` and asks for an ack: `callback` gets the server's answer, or
    /// `AckError::Timeout` after `timeout`. Until then the emit survives reconnects: it is
    /// sent again on each new connection, and the server handles it once.
    pub fn emit_with_ack(
        &mut self,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
        timeout: Duration,
        callback: impl FnOnce(&mut ClientIo, Result<AckReply, AckError>) + 'static,
    ) -> Result<(), EmitError> {
        self.check_name(event)?;
        self.check_attachments(attachments.len())?;
        self.next_ack = self.next_ack.wrapping_add(1);
        let id = self.next_ack;
        let p = Packet::Event {
            ns: self.opts.namespace.clone(),
            name: event.to_string(),
            args,
            attachments,
            id: Some(id),
        };
        self.send_packet(&p, Some(id))?;
        self.acks.insert(id, Box::new(callback));
        self.out
            .push(Out::Timer(timeout, ClientTimer::AckTimeout(id)));
        Ok(())
    }

    /// Answers an event from the server that asked for an ack.
    pub fn ack(&mut self, event: &Event, args: Vec<Value>) {
        self.ack_with(event, args, Vec::new());
    }

    pub fn ack_with(&mut self, event: &Event, args: Vec<Value>, attachments: Vec<Vec<u8>>) {
        let Some(id) = event.ack else { return };
        if self.check_attachments(attachments.len()).is_err() {
            return;
        }
        let p = Packet::Ack {
            ns: self.opts.namespace.clone(),
            id,
            args,
            attachments,
        };
        let _ = self.send_packet(&p, None);
    }

    /// Leaves the namespace and closes the connection (reason `io client disconnect`; no
    /// reconnection follows).
    pub fn disconnect(&mut self) {
        if self.state == ClientState::Connected {
            let p = Packet::Disconnect {
                ns: self.opts.namespace.clone(),
                reason: None,
            };
            let _ = self.send_packet(&p, None);
        }
        self.finish(reasons::IO_CLIENT_DISCONNECT);
        self.out.push(Out::Close(self.conn));
    }

    fn fire(&mut self, name: &str, args: Vec<Value>) {
        let event = Event {
            socket: self.sid.clone().unwrap_or_default(),
            name: name.to_string(),
            args,
            attachments: Vec::new(),
            ack: None,
        };
        self.dispatch(&event);
    }

    fn dispatch(&mut self, event: &Event) {
        if let Err(p) = listeners::dispatch(self, event, |c| Some(&mut c.listeners)) {
            self.callback_panicked(&format!("\"{}\" listener", event.name), &p);
        }
    }

    /// How many of this client's listeners and callbacks panicked.
    pub fn callback_panics(&self) -> u64 {
        self.panics.count()
    }

    // ANCHOR: callback_panicked
    /// The one policy for a user callback that panicked (see `guard.rs`): counted, printed
    /// once per callback name, and the client's connection, if it has one, closed with
    /// reason `client error`: it comes back as after any lost connection.
    fn callback_panicked(&mut self, what: &str, p: &Panicked) {
        // A client that has just ended (a callback of `disconnect()` panicked) closes as it
        // was closing: an abort would reset a connection whose DISCONNECT is still queued.
        let live = self.conn.is_some() && self.state != ClientState::Disconnected;
        let action = if live {
            "closing the connection (the client reconnects)"
        } else {
            "the client goes on"
        };
        self.panics.record("client", what, p, action);
        if live {
            self.out.push(Out::Abort(self.conn));
            self.lost(reasons::CLIENT_ERROR);
        }
    }
    // ANCHOR_END: callback_panicked

    /// Ends for good: fails what waits for an ack, fires `disconnect` if connected.
    fn finish(&mut self, reason: &str) {
        if self.state == ClientState::Disconnected {
            return;
        }
        let was_connected = self.state == ClientState::Connected;
        self.state = ClientState::Disconnected;
        self.disconnect_reason = Some(reason.to_string());
        self.unacked.clear();
        let acks: Vec<AckCallback> = self.acks.drain().map(|(_, cb)| cb).collect();
        for cb in acks {
            if let Err(p) = guard::call(|| cb(self, Err(AckError::Disconnected))) {
                self.callback_panicked("ack (disconnected)", &p);
            }
        }
        if was_connected {
            self.fire("disconnect", vec![json!(reason)]);
        }
    }

    // ANCHOR: lost
    /// The connection is gone for `reason` (not by anyone's choice): fire `disconnect`,
    /// then try again with backoff, or end.
    fn lost(&mut self, reason: &str) {
        if matches!(self.state, ClientState::Disconnected) {
            return;
        }
        self.conn = None;
        self.ping_gen += 1;
        if !(self.opts.reconnection && reasons::client_reconnects(reason)) {
            self.finish(reason);
            return;
        }
        let was_connected = self.state == ClientState::Connected;
        self.state = ClientState::Reconnecting;
        self.disconnect_reason = Some(reason.to_string());
        if was_connected {
            self.fire("disconnect", vec![json!(reason)]);
        }
        self.schedule_reconnect();
    }
    // ANCHOR_END: lost

    fn schedule_reconnect(&mut self) {
        if self.state != ClientState::Reconnecting {
            return;
        }
        if self
            .opts
            .reconnection_attempts
            .is_some_and(|max| self.attempts >= max)
        {
            self.fire("reconnect_failed", Vec::new());
            let reason = self
                .disconnect_reason
                .clone()
                .unwrap_or_else(|| reasons::TRANSPORT_CLOSE.to_string());
            self.finish(&reason);
            return;
        }
        let r = super::ids::unit_random();
        let delay = backoff(&self.opts, self.attempts, r);
        self.out.push(Out::Timer(delay, ClientTimer::Reconnect));
    }

    // ANCHOR: expect_ping
    /// The server's HELLO says how often it pings: expect one within interval + timeout.
    /// Both numbers come from the peer, so each is clamped to [`PING_MS_BOUNDS`] first.
    fn expect_ping(&mut self) {
        let ms = |k: &str| {
            let v = self.server_info.get(k).and_then(Value::as_u64)?;
            Some(v.clamp(*PING_MS_BOUNDS.start(), *PING_MS_BOUNDS.end()))
        };
        if let (Some(interval), Some(timeout)) = (ms("pingInterval"), ms("pingTimeout")) {
            self.ping_gen += 1;
            // At most 2 hours after the clamps: no overflow here, nor in `Instant + due`.
            let due = Duration::from_millis(interval.saturating_add(timeout));
            self.out
                .push(Out::Timer(due, ClientTimer::PingDue(self.ping_gen)));
        }
    }
    // ANCHOR_END: expect_ping

    fn on_packet(&mut self, p: Packet) {
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
                self.sid = field("sid");
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
                for frame in self.unacked.values() {
                    let start = self.arena.len();
                    self.arena.extend_from_slice(frame);
                    self.out.push(Out::Send(start, self.arena.len()));
                }
                while let Some((ack, frame)) = self.offline.pop_front() {
                    let start = self.arena.len();
                    self.arena.extend_from_slice(&frame);
                    self.out.push(Out::Send(start, self.arena.len()));
                    if let Some(id) = ack {
                        self.unacked.insert(id, frame);
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
                self.out.push(Out::Close(self.conn));
            }
            Packet::Event {
                name,
                mut args,
                attachments,
                id,
                ..
            } => {
                if RESERVED_EVENTS.contains(&name.as_str()) {
                    return; // the library's own names; a server may not send them
                }
                self.events_in += 1;
                // A broadcast carries its offset as a last, extra argument
                // `{"__offset": N}` (see docs/protocol.md): note it and take it off.
                if let Some(o) = args
                    .last()
                    .and_then(|v| v.get(OFFSET_KEY))
                    .and_then(Value::as_u64)
                {
                    args.pop();
                    self.offset = Some(o);
                }
                let event = Event {
                    socket: self.sid.clone().unwrap_or_default(),
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
                    self.out.push(Out::Close(self.conn));
                    self.lost(reasons::SERVER_SHUTTING_DOWN);
                } else {
                    self.finish(reasons::IO_SERVER_DISCONNECT);
                    self.out.push(Out::Close(self.conn));
                }
            }
            Packet::Ping => {
                let _ = self.send_packet(&Packet::Pong, None);
                self.expect_ping();
            }
            Packet::Pong => {}
        }
    }

    /// The CONNECT for this connection: auth, plus the session to restore if any.
    fn connect_packet(&self) -> Packet {
        let mut data = self.opts.auth.clone();
        // Only an object auth (or none) can carry the session fields.
        let object = matches!(data, None | Some(Value::Object(_)));
        if let (Some(pid), true) = (&self.pid, object) {
            let mut obj = match data.take() {
                Some(Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            obj.insert("pid".into(), json!(pid));
            obj.insert("offset".into(), json!(self.offset.unwrap_or(0)));
            data = Some(Value::Object(obj));
        }
        Packet::Connect {
            ns: self.opts.namespace.clone(),
            data,
        }
    }

    fn flush(&mut self, ctx: &mut Ctx<ClientTimer>) {
        for _ in 0..4 {
            if self.out.is_empty() {
                break;
            }
            let mut out = std::mem::take(&mut self.out);
            for o in out.drain(..) {
                match o {
                    Out::Send(start, end) => {
                        if let Some(conn) = self.conn {
                            if let Err(p) = guard::tap(&mut self.tap, &self.arena[start..end]) {
                                self.callback_panicked("tap", &p);
                            }
                            // A full buffer means the server does not read; the cap bounds
                            // memory. Give up on this connection and come back later.
                            match ctx.send(conn, &self.arena[start..end]) {
                                Ok(()) => {}
                                Err(event_loop::SendError::Full { .. }) => {
                                    ctx.abort(conn);
                                    self.lost(reasons::OUTBOUND_FULL);
                                }
                                Err(_) => ctx.abort(conn),
                            }
                        }
                    }
                    Out::Close(Some(conn)) | Out::Abort(Some(conn)) => {
                        if matches!(o, Out::Close(_)) {
                            ctx.close(conn);
                        } else {
                            ctx.abort(conn);
                        }
                        if self.conn == Some(conn) {
                            self.conn = None;
                        }
                    }
                    Out::Close(None) | Out::Abort(None) => {}
                    Out::Connect => {
                        if let Err(e) = ctx.connect(self.opts.addr, Some(self.opts.connect_timeout))
                        {
                            self.connect_failed(&e.to_string());
                        }
                    }
                    Out::Timer(after, t) => {
                        ctx.set_timer(after, t);
                    }
                }
            }
            if self.out.is_empty() {
                self.out = out; // keep the allocation
            }
        }
        self.arena.clear();
        if self.state == ClientState::Disconnected && ctx.connections() == 0 {
            ctx.stop();
        }
    }

    fn connect_failed(&mut self, message: &str) {
        self.connect_error = Some(message.to_string());
        let reconnecting = self.state == ClientState::Reconnecting;
        self.fire("connect_error", vec![json!(message)]);
        if reconnecting {
            self.fire("reconnect_error", vec![json!(message)]);
        }
        if self.opts.reconnection && self.state != ClientState::Disconnected {
            self.state = ClientState::Reconnecting;
            self.schedule_reconnect();
        } else {
            self.finish(reasons::TRANSPORT_ERROR);
        }
    }
}

/// The key of the extra last argument in which a broadcast carries its offset.
pub const OFFSET_KEY: &str = "__offset";

/// The client as an event loop handler.
pub struct ClientCore {
    io: ClientIo,
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
                // HELLO and CONNECT go straight out, ahead of anything queued offline.
                let mut first = Vec::new();
                for p in [Packet::hello(json!({})), io.connect_packet()] {
                    let start = first.len();
                    packet::encode(&p, &mut first);
                    if let Err(p) = guard::tap(&mut io.tap, &first[start..]) {
                        io.callback_panicked("tap", &p);
                    }
                }
                // (A tap that panicked has given this connection up already.)
                if io.conn == Some(id) {
                    let _ = ctx.send(id, &first);
                    // The server's HELLO and CONNECT reply are due within `connect_timeout`:
                    // a server that accepts and then says nothing (or never answers the
                    // CONNECT) fails the attempt instead of keeping the client waiting.
                    io.attempt_gen += 1;
                    let due = io.opts.connect_timeout;
                    let gen = io.attempt_gen;
                    io.out
                        .push(Out::Timer(due, ClientTimer::ConnectReplyDue(gen)));
                }
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
                io.on_packet(p);
                // Stop at once if a listener disconnected or the connection was lost.
                io.conn == Some(conn) && io.state != ClientState::Disconnected
            }
            Err(_) => {
                bad = true;
                false
            }
        });
        if bad {
            io.out.push(Out::Abort(io.conn));
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
                    io.out.push(Out::Connect);
                }
            }
            ClientTimer::PingDue(gen) => {
                if gen == io.ping_gen && io.conn.is_some() {
                    io.out.push(Out::Abort(io.conn));
                    io.lost(reasons::PING_TIMEOUT);
                }
            }
            ClientTimer::ConnectReplyDue(gen) => {
                let waiting = matches!(
                    io.state,
                    ClientState::Connecting | ClientState::Reconnecting
                );
                if gen == io.attempt_gen && io.conn.is_some() && waiting {
                    io.out.push(Out::Abort(io.conn.take()));
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

/// An event client on its own event loop.
pub struct Client {
    ev: EventLoop<ClientCore>,
}

impl Client {
    /// Starts connecting (the TCP connect does not block); listeners registered before the
    /// first [`turn`](Client::turn) see `connect`.
    pub fn connect(opts: ClientOptions) -> io::Result<Client> {
        let loop_config = opts.loop_config.clone();
        let (addr, timeout) = (opts.addr, opts.connect_timeout);
        let io = ClientIo {
            opts,
            state: ClientState::Connecting,
            conn: None,
            sid: None,
            pid: None,
            offset: None,
            recovered: false,
            unacked: BTreeMap::new(),
            attempts: 0,
            ping_gen: 0,
            attempt_gen: 0,
            server_info: Value::Null,
            listeners: Listeners::default(),
            acks: HashMap::new(),
            next_ack: 0,
            offline: VecDeque::new(),
            disconnect_reason: None,
            connect_error: None,
            out: Vec::new(),
            arena: Vec::new(),
            tap: None,
            panics: Panics::default(),
            events_in: 0,
        };
        let mut ev = EventLoop::new(ClientCore { io }, loop_config)?;
        ev.ctx().connect(addr, Some(timeout))?;
        Ok(Client { ev })
    }

    /// The client's state: listeners, emits, state.
    pub fn io(&mut self) -> &mut ClientIo {
        &mut self.ev.handler().io
    }

    /// Hands what [`io`](Client::io) queued to the loop, then runs one turn.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let (core, ctx) = self.ev.parts();
        core.io.flush(ctx);
        self.ev.turn(timeout)
    }

    /// Turns the loop until `done` says so or `limit` passes; returns whether `done` did.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut ClientIo) -> bool,
    ) -> io::Result<bool> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if done(self.io()) {
                return Ok(true);
            }
            let now = std::time::Instant::now();
            if now >= deadline || self.ev.is_stopped() {
                return Ok(done(self.io()));
            }
            self.turn(Some((deadline - now).min(Duration::from_millis(50))))?;
        }
    }

    /// Runs until the client has disconnected and its connection is closed.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.ev.is_stopped() {
            self.turn(None)?;
        }
        Ok(())
    }

    /// A handle for other threads (a stdin reader, say).
    pub fn handle(&self) -> ClientHandle {
        ClientHandle {
            inner: self.ev.handle(),
        }
    }
}

/// Lets other threads act on a client: the closure runs on the client's loop thread.
#[derive(Clone)]
pub struct ClientHandle {
    inner: LoopHandle<ClientMsg>,
}

impl ClientHandle {
    /// Runs `f` on the client's loop thread; `false` if the client is gone.
    pub fn run(&self, f: impl FnOnce(&mut ClientIo) + Send + 'static) -> bool {
        self.inner.send(Box::new(f)).is_ok()
    }
}
