//! The event client: connect (with auth), `on`/`once`/`off`/`on_any`, `emit` with and
//! without ack, `disconnect`, and the events `connect`, `connect_error` and `disconnect`.
//!
//! Like the server, [`ClientIo`] is the client's whole state and what every listener gets;
//! emits are encoded into a reused buffer and handed to the loop when the listener returns.
//! An emit made before the connection is up waits in a bounded offline buffer and goes out,
//! in order, as soon as the server accepts the namespace.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use serde_json::{json, Value};

use super::listeners::{self, Event, Listeners};
use super::{reasons, AckError, AckReply, EmitError};
use crate::event_loop::{self, CloseReason, ConnId, Ctx, EventLoop, LoopHandle};
use crate::sys;
use crate::wire::packet::{self, Limits, Packet, RESERVED_EVENTS};

/// How to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub addr: SocketAddr,
    /// The namespace to join (default `/`).
    pub namespace: String,
    /// Sent with CONNECT; the server's middleware sees it.
    pub auth: Option<Value>,
    pub limits: Limits,
    /// How long the TCP connect may take.
    pub connect_timeout: Duration,
    /// Emits kept while not connected; past this, `emit` returns `EmitError::BufferFull`.
    pub offline_buffer: usize,
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
    /// TCP connect, HELLO and CONNECT under way.
    Connecting,
    /// The server accepted the namespace; the client has a socket id.
    Connected,
    /// Done: refused, closed, or disconnected (see [`ClientIo::disconnect_reason`]).
    Disconnected,
}

type AckCallback = Box<dyn FnOnce(&mut ClientIo, Result<AckReply, AckError>)>;

/// The client's timers.
#[derive(Debug)]
pub enum ClientTimer {
    AckTimeout(u32),
}

enum Out {
    Send(usize, usize),
    Close,
    Timer(Duration, ClientTimer),
}

/// The client's state and the handle every listener gets.
pub struct ClientIo {
    opts: ClientOptions,
    state: ClientState,
    conn: Option<ConnId>,
    sid: Option<String>,
    server_info: Value,
    listeners: Listeners<ClientIo>,
    acks: HashMap<u32, AckCallback>,
    next_ack: u32,
    /// Encoded frames waiting for the connection.
    offline: VecDeque<Vec<u8>>,
    disconnect_reason: Option<String>,
    connect_error: Option<String>,
    out: Vec<Out>,
    arena: Vec<u8>,
    tap: Option<super::Tap>,
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

    /// The settings the server sent in its HELLO (`pingInterval`, `pingTimeout`,
    /// `maxPayload`).
    pub fn server_info(&self) -> &Value {
        &self.server_info
    }

    /// Why the client disconnected, once it has.
    pub fn disconnect_reason(&self) -> Option<&str> {
        self.disconnect_reason.as_deref()
    }

    /// The server's refusal message, if it refused.
    pub fn connect_error(&self) -> Option<&str> {
        self.connect_error.as_deref()
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

    fn check_name(&self, name: &str) -> Result<(), EmitError> {
        if RESERVED_EVENTS.contains(&name) {
            return Err(EmitError::Reserved(name.to_string()));
        }
        if name.is_empty() || name.len() > self.opts.limits.max_event_name {
            return Err(EmitError::BadName(name.len()));
        }
        Ok(())
    }

    /// Sends `p` now if connected, else keeps it for when the connection is up.
    fn send_packet(&mut self, p: &Packet) -> Result<(), EmitError> {
        let start = self.arena.len();
        packet::encode(p, &mut self.arena);
        let end = self.arena.len();
        let payload = end - start - crate::wire::frame::HEADER_LEN;
        if payload > self.opts.limits.max_frame {
            self.arena.truncate(start);
            return Err(EmitError::TooLarge {
                bytes: payload,
                limit: self.opts.limits.max_frame,
            });
        }
        if self.state == ClientState::Connected {
            self.out.push(Out::Send(start, end));
            return Ok(());
        }
        let frame = self.arena[start..end].to_vec();
        self.arena.truncate(start);
        if self.offline.len() >= self.opts.offline_buffer {
            return Err(EmitError::BufferFull(self.offline.len()));
        }
        self.offline.push_back(frame);
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
        let p = Packet::Event {
            ns: self.opts.namespace.clone(),
            name: event.to_string(),
            args,
            attachments,
            id: None,
        };
        self.send_packet(&p)
    }

    /// Emits `event` and asks for an ack: `callback` gets the server's answer, or
    /// `AckError::Timeout` after `timeout`, or `AckError::Disconnected`.
    pub fn emit_with_ack(
        &mut self,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
        timeout: Duration,
        callback: impl FnOnce(&mut ClientIo, Result<AckReply, AckError>) + 'static,
    ) -> Result<(), EmitError> {
        self.check_name(event)?;
        self.next_ack = self.next_ack.wrapping_add(1);
        let id = self.next_ack;
        let p = Packet::Event {
            ns: self.opts.namespace.clone(),
            name: event.to_string(),
            args,
            attachments,
            id: Some(id),
        };
        self.send_packet(&p)?;
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
        let p = Packet::Ack {
            ns: self.opts.namespace.clone(),
            id,
            args,
            attachments,
        };
        let _ = self.send_packet(&p);
    }

    /// Leaves the namespace and closes the connection (reason `io client disconnect`).
    pub fn disconnect(&mut self) {
        if self.state == ClientState::Connected {
            let p = Packet::Disconnect {
                ns: self.opts.namespace.clone(),
                reason: None,
            };
            let _ = self.send_packet(&p);
        }
        self.finish(reasons::IO_CLIENT_DISCONNECT);
        self.out.push(Out::Close);
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
        let result = catch_unwind(AssertUnwindSafe(|| {
            listeners::dispatch(self, event, |c| Some(&mut c.listeners))
        }));
        if result.is_err() {
            eprintln!("socklab client: a listener for \"{}\" panicked", event.name);
        }
    }

    /// Moves to `Disconnected` (once), fails pending acks, fires `disconnect`.
    fn finish(&mut self, reason: &str) {
        if self.state == ClientState::Disconnected {
            return;
        }
        let was_connected = self.state == ClientState::Connected;
        self.state = ClientState::Disconnected;
        self.disconnect_reason = Some(reason.to_string());
        let acks: Vec<AckCallback> = self.acks.drain().map(|(_, cb)| cb).collect();
        for cb in acks {
            cb(self, Err(AckError::Disconnected));
        }
        if was_connected {
            self.fire("disconnect", vec![json!(reason)]);
        }
    }

    fn on_packet(&mut self, p: Packet) {
        match p {
            Packet::Hello { info, .. } => self.server_info = info,
            Packet::Connect { data, .. } => {
                self.sid = data
                    .as_ref()
                    .and_then(|d| d.get("sid"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                self.state = ClientState::Connected;
                // What was emitted while offline goes first, in order.
                while let Some(frame) = self.offline.pop_front() {
                    let start = self.arena.len();
                    self.arena.extend_from_slice(&frame);
                    self.out.push(Out::Send(start, self.arena.len()));
                }
                self.fire("connect", Vec::new());
            }
            Packet::ConnectError { message, .. } => {
                self.connect_error = Some(message.clone());
                self.fire("connect_error", vec![json!(message)]);
                self.finish(reasons::IO_SERVER_DISCONNECT);
                self.out.push(Out::Close);
            }
            Packet::Event {
                name,
                args,
                attachments,
                id,
                ..
            } => {
                self.events_in += 1;
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
                if let Some(cb) = self.acks.remove(&id) {
                    cb(self, Ok(AckReply { args, attachments }));
                }
            }
            Packet::Disconnect { reason, .. } => {
                // A server that is stopping is not sending this client away for good.
                let why = if reason.as_deref() == Some(reasons::SERVER_SHUTTING_DOWN) {
                    reasons::SERVER_SHUTTING_DOWN
                } else {
                    reasons::IO_SERVER_DISCONNECT
                };
                self.finish(why);
                self.out.push(Out::Close);
            }
            Packet::Ping => {
                let _ = self.send_packet(&Packet::Pong);
            }
            Packet::Pong => {}
        }
    }

    fn flush(&mut self, ctx: &mut Ctx<ClientTimer>) {
        let mut out = std::mem::take(&mut self.out);
        for o in out.drain(..) {
            match o {
                Out::Send(start, end) => {
                    if let Some(conn) = self.conn {
                        if let Some(tap) = self.tap.as_mut() {
                            tap(&self.arena[start..end]);
                        }
                        // A full buffer means the server does not read; the cap bounds memory.
                        if ctx.send(conn, &self.arena[start..end]).is_err() {
                            ctx.abort(conn);
                        }
                    }
                }
                Out::Close => {
                    if let Some(conn) = self.conn {
                        ctx.close(conn);
                    }
                }
                Out::Timer(after, t) => {
                    ctx.set_timer(after, t);
                }
            }
        }
        self.out = out;
        self.arena.clear();
        if self.state == ClientState::Disconnected && ctx.connections() == 0 {
            ctx.stop();
        }
    }
}

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
            Ok(()) => {
                io.conn = Some(id);
                // HELLO and CONNECT go straight out, ahead of anything queued offline.
                let hello = Packet::hello(json!({}));
                let connect = Packet::Connect {
                    ns: io.opts.namespace.clone(),
                    data: io.opts.auth.clone(),
                };
                let mut first = Vec::new();
                for p in [hello, connect] {
                    let start = first.len();
                    packet::encode(&p, &mut first);
                    if let Some(tap) = io.tap.as_mut() {
                        tap(&first[start..]);
                    }
                }
                let _ = ctx.send(id, &first);
            }
            Err(e) => {
                io.connect_error = Some(e.to_string());
                io.fire("connect_error", vec![json!(e.to_string())]);
                io.finish(reasons::TRANSPORT_ERROR);
            }
        }
        io.flush(ctx);
    }

    fn data(&mut self, ctx: &mut Ctx<ClientTimer>, _: ConnId, bytes: &[u8]) -> usize {
        let limits = self.io.opts.limits;
        let io = &mut self.io;
        let mut bad = false;
        let used = packet::decode_stream(bytes, &limits, |res| match res {
            Ok(p) => {
                io.on_packet(p);
                io.state != ClientState::Disconnected
            }
            Err(_) => {
                bad = true;
                false
            }
        });
        if bad {
            io.finish(reasons::PARSE_ERROR);
            io.out.push(Out::Close);
            io.flush(ctx);
            return bytes.len();
        }
        io.flush(ctx);
        used
    }

    fn closed(&mut self, ctx: &mut Ctx<ClientTimer>, _: ConnId, reason: CloseReason) {
        let why = match reason {
            CloseReason::Error(_) => reasons::TRANSPORT_ERROR,
            _ => reasons::TRANSPORT_CLOSE,
        };
        self.io.finish(why);
        self.io.conn = None;
        self.io.flush(ctx);
    }

    fn timer(&mut self, ctx: &mut Ctx<ClientTimer>, _: event_loop::TimerId, t: ClientTimer) {
        match t {
            ClientTimer::AckTimeout(id) => {
                if let Some(cb) = self.io.acks.remove(&id) {
                    cb(&mut self.io, Err(AckError::Timeout));
                }
            }
        }
        self.io.flush(ctx);
    }

    fn message(&mut self, ctx: &mut Ctx<ClientTimer>, msg: ClientMsg) {
        msg(&mut self.io);
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
