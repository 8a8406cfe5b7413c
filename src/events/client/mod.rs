//! The event client: connect (with auth), `on`/`once`/`off`/`on_any`, `emit` with and
//! without ack, `disconnect`, and the events `connect`, `connect_error` and `disconnect`.
//!
//! Like the server, [`ClientIo`] is the client's whole state and what every listener gets;
//! emits are encoded into the outbox (`../outbox.rs`) and handed to the loop when the
//! listener returns. An emit made before the connection is up waits in a bounded offline
//! buffer and goes out, in order, as soon as the server accepts the namespace.
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | [`ClientOptions`], [`ClientState`], [`Client`] and [`ClientHandle`] |
//! | `io.rs` | [`ClientIo`]: listeners, emits, acks, the offline buffer |
//! | `reconnect.rs` | losing the connection, [`backoff`], the heartbeat deadline, the session to ask back |
//! | `protocol.rs` | the packets, as the event loop's handler |

mod io;
mod protocol;
mod reconnect;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

pub use io::ClientIo;
pub use reconnect::backoff;

use crate::event_loop::{self, EventLoop, LoopHandle};
use crate::wire::packet::{self, Limits};
use protocol::{ClientCore, ClientMsg};

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

/// An event client on its own event loop.
pub struct Client {
    ev: EventLoop<ClientCore>,
}

impl Client {
    /// Starts connecting (the TCP connect does not block); listeners registered before the
    /// first [`turn`](Client::turn) see `connect`.
    pub fn connect(opts: ClientOptions) -> std::io::Result<Client> {
        let loop_config = opts.loop_config.clone();
        let (addr, timeout) = (opts.addr, opts.connect_timeout);
        let io = ClientIo::new(opts);
        let mut ev = EventLoop::new(ClientCore { io }, loop_config)?;
        ev.ctx().connect(addr, Some(timeout))?;
        Ok(Client { ev })
    }

    /// The client's state: listeners, emits, state.
    pub fn io(&mut self) -> &mut ClientIo {
        &mut self.ev.handler().io
    }

    /// Hands what [`io`](Client::io) queued to the loop, then runs one turn.
    pub fn turn(&mut self, timeout: Option<Duration>) -> std::io::Result<usize> {
        let (core, ctx) = self.ev.parts();
        core.io.flush(ctx);
        self.ev.turn(timeout)
    }

    /// Turns the loop until `done` says so or `limit` passes; returns whether `done` did.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut ClientIo) -> bool,
    ) -> std::io::Result<bool> {
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
    pub fn run(&mut self) -> std::io::Result<()> {
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

/// For demos that turn a server and its clients in one thread (`event_loop::turn_together`).
impl crate::event_loop::Turn for Client {
    fn poll_fd(&self) -> std::os::fd::RawFd {
        self.ev.poll_fd()
    }
    fn flush_queued(&mut self) {
        let (core, ctx) = self.ev.parts();
        core.io.flush(ctx);
        self.ev.flush_queued();
    }
    fn sleep_for(&mut self) -> Option<Duration> {
        self.ev.sleep_for()
    }
    fn turn(&mut self, timeout: Option<Duration>) -> std::io::Result<usize> {
        Client::turn(self, timeout)
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
