//! Layer 4: a Socket.IO-style event API on the event loop (lessons 14 and after).
//!
//! What Socket.IO gives a JavaScript programmer, in plain Rust on socklab's own loop:
//! namespaces with middleware, sockets with `on`/`once`/`off`/`on_any`, `emit` with JSON
//! arguments and raw binary attachments, acknowledgements with timeouts, rooms, broadcasts
//! (to rooms, unions of rooms, all but the sender, volatile), and a thread-safe handle for
//! code outside the loop.
//!
//! | file | what it holds |
//! |---|---|
//! | `server.rs` | [`Io`] (the server's state, handed to every handler), [`Emit`], [`Broadcast`] |
//! | `client.rs` | [`Client`] and [`ClientIo`] |
//! | `listeners.rs` | `on`/`once`/`off`/`on_any` tables shared by both sides |
//! | `session.rs` | a session kept beyond its connection: private id, rooms, handled acks with their answers (bounded) |
//! | `replay.rs` | the replay log for connection state recovery, bounded by age, count and bytes |
//! | `guard.rs` | one policy for user callbacks that panic: caught, counted, printed once, only their socket closed |
//! | `ids.rs` | socket ids and session secrets from the OS random generator (seeded for demos) |
//!
//! The API does not know the wire format: packets ([`crate::wire::packet`]) are built and
//! read in one place per side, so another transport can sit behind the same handlers.
//!
//! Handlers run on the loop thread, one at a time, with `&mut Io`: the state they share is
//! owned by that one thread, so there are no locks on the hot path. Other threads reach it
//! only through a [`ServerHandle`], which queues a closure and wakes the loop.

mod client;
mod guard;
mod ids;
mod listeners;
mod replay;
mod server;
mod session;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

pub use client::{backoff, Client, ClientHandle, ClientIo, ClientOptions, ClientState};
pub use listeners::Event;
pub use server::{Broadcast, Emit, EventStats, Handshake, Io, ServerConfig};

use crate::event_loop::{EventLoop, LoopHandle};
use crate::sys;
use server::{ServerCore, ServerMsg};

/// A function that sees every frame one side sends (see `Io::set_tap`).
pub type Tap = Box<dyn FnMut(&[u8])>;

/// The disconnect reasons, with Socket.IO's wording where Socket.IO has one.
pub mod reasons {
    /// The peer closed the connection.
    pub const TRANSPORT_CLOSE: &str = "transport close";
    /// The connection failed (reset, broken pipe).
    pub const TRANSPORT_ERROR: &str = "transport error";
    /// No heartbeat in time.
    pub const PING_TIMEOUT: &str = "ping timeout";
    /// The peer sent bytes that are not the protocol.
    pub const PARSE_ERROR: &str = "parse error";
    /// The server is stopping (SIGINT/SIGTERM).
    pub const SERVER_SHUTTING_DOWN: &str = "server shutting down";
    /// The client left the namespace.
    pub const CLIENT_NAMESPACE_DISCONNECT: &str = "client namespace disconnect";
    /// The server disconnected the socket (`Io::disconnect`).
    pub const SERVER_NAMESPACE_DISCONNECT: &str = "server namespace disconnect";
    /// The connection was closed by this side for another reason.
    pub const FORCED_CLOSE: &str = "forced close";
    /// A handler panicked; its socket's connection was closed.
    pub const SERVER_ERROR: &str = "server error";
    /// The peer did not read: its outbound buffer reached the cap.
    pub const OUTBOUND_FULL: &str = "outbound buffer full";
    /// Client side: the server disconnected this socket.
    pub const IO_SERVER_DISCONNECT: &str = "io server disconnect";
    /// Client side: one of this client's listeners or callbacks panicked; the client closed
    /// its connection and comes back as after any lost connection.
    pub const CLIENT_ERROR: &str = "client error";
    /// Client side: this client called `disconnect`.
    pub const IO_CLIENT_DISCONNECT: &str = "io client disconnect";
    /// A CONNECT with this socket's private session id came on another connection: the
    /// session moved there (its client came back before this side noticed the old
    /// connection was dead).
    pub const SESSION_REPLACED: &str = "session replaced";

    /// Whether the connection ended by accident, not by anyone's choice: the server keeps
    /// the session for the client's return, and the client comes back.
    pub fn unexpected(reason: &str) -> bool {
        matches!(
            reason,
            TRANSPORT_CLOSE | TRANSPORT_ERROR | PING_TIMEOUT | PARSE_ERROR
        )
    }

    /// Server side: whether a socket removed for `reason` leaves its session kept for its
    /// client (docs/protocol.md 11.3): after an accident, and when the client itself took
    /// the session to a new connection (it is restored at once).
    pub fn session_kept(reason: &str) -> bool {
        unexpected(reason) || reason == SESSION_REPLACED
    }

    /// Client side: whether a client that lost its connection for `reason` reconnects
    /// (docs/protocol.md 11.2): after an accident, and also when the server is restarting,
    /// stopped reading for a while, or one of the client's own callbacks panicked.
    pub fn client_reconnects(reason: &str) -> bool {
        unexpected(reason) || matches!(reason, SERVER_SHUTTING_DOWN | OUTBOUND_FULL | CLIENT_ERROR)
    }
}

/// The answer to an emit that asked for an ack.
#[derive(Debug, Clone, PartialEq)]
pub struct AckReply {
    pub args: Vec<Value>,
    pub attachments: Vec<Vec<u8>>,
}

/// Why an ack callback got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// No answer within the timeout.
    Timeout,
    /// The socket disconnected first.
    Disconnected,
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::Timeout => f.write_str("operation has timed out"),
            AckError::Disconnected => f.write_str("socket has been disconnected"),
        }
    }
}

impl std::error::Error for AckError {}

/// Why an emit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// `connect`, `disconnect` and the other reserved names belong to the library.
    Reserved(String),
    /// An event name must be 1 to `max_event_name` bytes long.
    BadName(usize),
    /// No such socket (it disconnected).
    NoSuchSocket(String),
    /// The encoded packet is over the frame limit.
    TooLarge { bytes: usize, limit: usize },
    /// Client side: not connected, and the offline buffer is full.
    BufferFull(usize),
    /// More attachments than the peer accepts (`Limits::max_attachments`).
    TooManyAttachments { count: usize, limit: usize },
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Reserved(n) => write!(f, "\"{n}\" is a reserved event name"),
            EmitError::BadName(len) => write!(f, "an event name of {len} bytes is not allowed"),
            EmitError::NoSuchSocket(s) => write!(f, "no socket {s}"),
            EmitError::TooLarge { bytes, limit } => {
                write!(f, "the packet is {bytes} bytes, over the limit of {limit}")
            }
            EmitError::TooManyAttachments { count, limit } => {
                write!(f, "{count} attachments, over the limit of {limit}")
            }
            EmitError::BufferFull(n) => {
                write!(
                    f,
                    "not connected, and the offline buffer is full ({n} packets)"
                )
            }
        }
    }
}

impl std::error::Error for EmitError {}

/// Encodes `p` at the end of `out` and returns its range, or refuses it (leaving `out` as
/// it was) when its payload is over the frame limit: both sides emit through this.
fn encode_limited(
    p: &crate::wire::packet::Packet,
    out: &mut Vec<u8>,
    limits: &crate::wire::packet::Limits,
) -> Result<(usize, usize), EmitError> {
    let start = out.len();
    crate::wire::packet::encode(p, out);
    let payload = out.len() - start - crate::wire::frame::HEADER_LEN;
    if payload > limits.max_frame {
        out.truncate(start);
        return Err(EmitError::TooLarge {
            bytes: payload,
            limit: limits.max_frame,
        });
    }
    Ok((start, out.len()))
}

/// Refuses an emit whose name is reserved or out of bounds (both sides use it).
fn check_name(name: &str, limits: &crate::wire::packet::Limits) -> Result<(), EmitError> {
    if crate::wire::packet::RESERVED_EVENTS.contains(&name) {
        return Err(EmitError::Reserved(name.to_string()));
    }
    if name.is_empty() || name.len() > limits.max_event_name {
        return Err(EmitError::BadName(name.len()));
    }
    Ok(())
}

/// Refuses more attachments than the peer accepts (at most 255: the count is one byte).
fn check_attachments(n: usize, limits: &crate::wire::packet::Limits) -> Result<(), EmitError> {
    let limit = limits.max_attachments.min(255);
    if n > limit {
        return Err(EmitError::TooManyAttachments { count: n, limit });
    }
    Ok(())
}

/// An event server on its own event loop.
pub struct Server {
    ev: EventLoop<ServerCore>,
}

impl Server {
    pub fn new(config: ServerConfig) -> io::Result<Server> {
        let loop_config = config.loop_config.clone();
        let mut io = Io::new(config);
        io.namespace_mut(crate::wire::packet::DEFAULT_NAMESPACE);
        Ok(Server {
            ev: EventLoop::new(ServerCore { io }, loop_config)?,
        })
    }

    /// The server's state: register namespaces, middleware and connection handlers here.
    pub fn io(&mut self) -> &mut Io {
        &mut self.ev.handler().io
    }

    /// Starts listening; returns the real address.
    pub fn listen(&mut self, addr: SocketAddr) -> sys::Result<SocketAddr> {
        self.ev.ctx().listen(addr)
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            inner: self.ev.handle(),
        }
    }

    /// SIGINT and SIGTERM begin a graceful stop: every client is told `server shutting
    /// down`, output is flushed, connections close, and [`run`](Server::run) returns.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        self.ev.stop_on_signals()
    }

    /// Runs until stopped.
    pub fn run(&mut self) -> io::Result<()> {
        self.ev.run()
    }

    /// One turn of the loop (for demos and tests that step the server by hand). What was
    /// emitted through [`io`](Server::io) since the last turn goes out first.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let (core, ctx) = self.ev.parts();
        core.io.flush(ctx);
        self.ev.turn(timeout)
    }

    pub fn is_stopped(&self) -> bool {
        self.ev.is_stopped()
    }
}

/// A server running on a thread of its own (a server holds closures that stay on their
/// thread, so it is built there).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    /// Builds a server on a new thread, listens on `addr`, lets `setup` register its
    /// handlers, and runs it.
    pub fn start(
        config: ServerConfig,
        addr: SocketAddr,
        setup: impl FnOnce(&mut Io) + Send + 'static,
    ) -> io::Result<RunningServer> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || -> io::Result<()> {
            let started = (|| -> io::Result<Server> {
                let mut server = Server::new(config)?;
                let local = server.listen(addr)?;
                setup(server.io());
                let _ = tx.send(Ok((local, server.handle())));
                Ok(server)
            })();
            match started {
                Ok(mut server) => server.run(),
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    Err(e)
                }
            }
        });
        let (addr, handle) = rx
            .recv()
            .map_err(|_| io::Error::other("the server thread ended before listening"))??;
        Ok(RunningServer {
            addr,
            handle,
            thread: Some(thread),
        })
    }

    /// Stops the server gracefully and waits for its thread.
    pub fn stop(mut self) -> io::Result<()> {
        let _ = self.handle.stop();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.handle.stop();
            let _ = t.join();
        }
    }
}

// ANCHOR: server_handle
/// Lets other threads (a score feed, a timer) act on the server: the closure runs on the
/// loop thread with `&mut Io`, after the loop is woken through its `Waker`.
#[derive(Clone)]
pub struct ServerHandle {
    inner: LoopHandle<ServerMsg>,
}

impl ServerHandle {
    /// Runs `f` on the loop thread. Fails if the server is gone.
    pub fn run(&self, f: impl FnOnce(&mut Io) + Send + 'static) -> Result<(), ServerGone> {
        self.inner.send(Box::new(f)).map_err(|_| ServerGone)
    }

    /// Broadcasts `event` to `room` of namespace `ns` (every socket of `ns` when `room` is
    /// `None`).
    pub fn broadcast(
        &self,
        ns: &str,
        room: Option<&str>,
        event: &str,
        args: Vec<Value>,
    ) -> Result<(), ServerGone> {
        let (ns, room, event) = (ns.to_string(), room.map(str::to_string), event.to_string());
        self.run(move |io| {
            let mut b = io.broadcast(&ns);
            if let Some(r) = &room {
                b = b.to(r);
            }
            let _ = b.emit(&event, args);
        })
    }

    /// Begins a graceful stop.
    pub fn stop(&self) -> Result<(), ServerGone> {
        self.run(|io| io.stop())
    }
}
// ANCHOR_END: server_handle

/// The server's loop has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerGone;

impl fmt::Display for ServerGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server has stopped")
    }
}

impl std::error::Error for ServerGone {}
