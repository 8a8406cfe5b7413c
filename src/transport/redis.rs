//! A Redis client connection on the event loop: the loop as a *client* of another server.
//!
//! Until now every connection on the loop was one a listener accepted. Here the loop dials
//! out ([`Ctx::connect`]: a non-blocking connect, as lesson 13 shows, finished at
//! [`Handler::connected`]) and speaks RESP2 ([`wire::resp`](crate::wire::resp)) to Redis.
//!
//! # Pipelining is just order
//!
//! Redis answers the commands of one connection one by one, in the order they came. So a
//! client need not wait for a reply before it sends the next command: [`RedisConn::command`]
//! queues the encoded command in the loop's outbound buffer (all the commands of a turn
//! leave in one `sendto`) and pushes the caller's *tag* on a FIFO. Each reply that comes
//! back belongs to the tag at the front. A thousand `INCR`s cost one round trip, not a
//! thousand.
//!
//! The same rule says why a blocking command (`XREAD BLOCK`, `BLPOP`) needs a connection of
//! its own: while Redis holds it, every command queued behind it waits too. An owner that
//! reads a stream and also writes to it keeps two `RedisConn`s.
//!
//! # The shape: a part a handler owns, not a handler
//!
//! A `RedisConn` is not a [`Handler`]: a loop has one handler, and the event server that
//! will join a cluster is already the handler of its loop, with its listeners. So the
//! server owns one (or two) `RedisConn` beside its listeners and hands it the loop's
//! callbacks for the connections it [`owns`](RedisConn::owns): `connected`, `data`,
//! `closed`. What happened comes back as [`RedisEvent`]s pushed on a `Vec` the owner drains,
//! rather than as closures: a closure stored here could not borrow the owner's state, and a
//! tag (a request id, an enum of what to do next) can. A standalone client is a handler of
//! five lines around it (see `tests/redis_client.rs`).
//!
//! # Bounds and failures
//!
//! - At most `max_pending` commands await their replies; past that [`RedisConn::command`]
//!   refuses with [`RedisError::TooManyPending`]. The bytes not yet sent are bounded by the
//!   loop's own cap ([`Config::max_outbound`](crate::event_loop::Config::max_outbound)):
//!   [`RedisError::Send`].
//! - Each reply is bounded by the decoder's [`Limits`]; a reply the loop's input buffer
//!   cannot hold ([`Config::max_inbound`](crate::event_loop::Config::max_inbound)) closes
//!   the connection. Keep `max_bulk` below it.
//! - A `-ERR` reply is that one command's [`RedisError::Server`]; the connection goes on.
//! - A lost connection (Redis gone, RST, EOF, a reply that breaks the protocol) fails every
//!   pending command with [`RedisError::Lost`] and is reported once as
//!   [`RedisEvent::Lost`]. Reconnecting, with backoff, is the owner's choice: call
//!   [`RedisConn::connect`] again. A deliberate simplification: commands are not replayed,
//!   since a command whose reply was lost may or may not have run.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

#[cfg(doc)]
use crate::event_loop::Handler;
use crate::event_loop::{CloseReason, ConnId, Ctx, SendError};
use crate::sys;
use crate::wire::resp::{encode_command, Decoder, Limits, Reply};

/// Why a command got no reply, or got an error for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisError {
    /// Redis answered `-...`: this command failed, the connection is fine.
    Server(String),
    /// There is no connection: never connected, or lost and not connected again.
    NotConnected,
    /// `max_pending` commands already await their replies.
    TooManyPending { max: usize },
    /// The loop refused the bytes (its outbound buffer is full, or the connection closing).
    Send(SendError),
    /// The connection ended before the reply came: why.
    Lost(String),
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Server(msg) => write!(f, "redis: {msg}"),
            RedisError::NotConnected => f.write_str("redis: not connected"),
            RedisError::TooManyPending { max } => {
                write!(f, "redis: {max} commands already await their replies")
            }
            RedisError::Send(e) => write!(f, "redis: {e}"),
            RedisError::Lost(why) => write!(f, "redis: connection lost: {why}"),
        }
    }
}

impl std::error::Error for RedisError {}

/// What the connection reports to its owner.
#[derive(Debug, PartialEq)]
pub enum RedisEvent<T> {
    /// The connect finished: commands queued so far are on their way.
    Connected,
    /// The reply to the command sent with this tag.
    Reply(T, Result<Reply, RedisError>),
    /// The connection failed or ended; every pending command got its `Reply(tag, Err)`
    /// first.
    Lost(RedisError),
    /// A message published on a channel this connection subscribed to (`SUBSCRIBE`).
    Message { channel: Vec<u8>, payload: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Down,
    Connecting,
    Up,
    /// Aborted for a broken reply; the loop's `closed` is still to come.
    Closing,
}

/// One connection to Redis, owned by a loop handler. `T` is the tag each command carries;
/// the methods' `Tm` is the owner's timer type (they take its [`Ctx`]).
pub struct RedisConn<T> {
    addr: SocketAddr,
    id: Option<ConnId>,
    state: State,
    pending: VecDeque<T>,
    max_pending: usize,
    decoder: Decoder,
    /// Why the connection was aborted by this side, reported when `closed` comes.
    failure: Option<String>,
    /// One command's encoding, reused.
    buf: Vec<u8>,
    /// A `SUBSCRIBE` was sent: from then on Redis also sends `message` arrays unasked.
    subscribed: bool,
}

impl<T> RedisConn<T> {
    pub fn new(addr: SocketAddr, limits: Limits, max_pending: usize) -> RedisConn<T> {
        RedisConn {
            addr,
            id: None,
            state: State::Down,
            pending: VecDeque::new(),
            max_pending,
            decoder: Decoder::new(limits),
            failure: None,
            buf: Vec::new(),
            subscribed: false,
        }
    }

    /// Starts the connect. Commands may be sent at once: they wait in the loop's buffer
    /// until the connection is up. The outcome arrives through [`RedisConn::connected`].
    pub fn connect<Tm>(&mut self, ctx: &mut Ctx<Tm>, timeout: Option<Duration>) -> sys::Result<()> {
        debug_assert!(self.state == State::Down, "connect while connected");
        let id = ctx.connect(self.addr, timeout)?;
        self.id = Some(id);
        self.state = State::Connecting;
        self.failure = None;
        Ok(())
    }

    /// Whether the loop's connection `id` is this one.
    pub fn owns(&self, id: ConnId) -> bool {
        self.id == Some(id)
    }

    /// Whether the connection is up (or connecting) and takes commands.
    pub fn is_usable(&self) -> bool {
        matches!(self.state, State::Connecting | State::Up)
    }

    /// Commands awaiting their replies.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Sends a command (`["SET", "k", "v"]`); its reply comes back as
    /// [`RedisEvent::Reply`] with `tag`. An error here means it was not sent.
    pub fn command<Tm, I, A>(
        &mut self,
        ctx: &mut Ctx<Tm>,
        args: I,
        tag: T,
    ) -> Result<(), RedisError>
    where
        I: IntoIterator<Item = A>,
        I::IntoIter: ExactSizeIterator,
        A: AsRef<[u8]>,
    {
        let (Some(id), true) = (self.id, self.is_usable()) else {
            return Err(RedisError::NotConnected);
        };
        if self.pending.len() >= self.max_pending {
            return Err(RedisError::TooManyPending {
                max: self.max_pending,
            });
        }
        self.buf.clear();
        let args = args.into_iter();
        let mut first = true;
        encode_command(
            args.inspect(|a| {
                if std::mem::take(&mut first) {
                    self.subscribed |= a.as_ref().eq_ignore_ascii_case(b"SUBSCRIBE");
                }
            }),
            &mut self.buf,
        );
        ctx.send(id, &self.buf).map_err(RedisError::Send)?;
        self.pending.push_back(tag);
        Ok(())
    }

    /// The loop's [`Handler::connected`] for a connection this one [`owns`](Self::owns).
    pub fn connected<Tm>(
        &mut self,
        _ctx: &mut Ctx<Tm>,
        result: sys::Result<()>,
        out: &mut Vec<RedisEvent<T>>,
    ) {
        match result {
            Ok(()) => {
                self.state = State::Up;
                out.push(RedisEvent::Connected);
            }
            // The loop has dropped the connection already; no `closed` follows.
            Err(e) => self.lose(e.to_string(), out),
        }
    }

    /// The loop's [`Handler::data`]: decodes every whole reply and matches it to the oldest
    /// pending tag. Returns the bytes used; an incomplete reply stays in the loop's buffer.
    pub fn data<Tm>(
        &mut self,
        ctx: &mut Ctx<Tm>,
        bytes: &[u8],
        out: &mut Vec<RedisEvent<T>>,
    ) -> usize {
        let mut used = 0;
        while self.state == State::Up {
            let reply = match self.decoder.decode(&bytes[used..]) {
                Ok(Some((reply, n))) => {
                    used += n;
                    reply
                }
                Ok(None) => break,
                Err(e) => return self.abort(ctx, format!("a broken reply: {e}"), bytes.len()),
            };
            let reply = match published(reply, self.subscribed) {
                Ok((channel, payload)) => {
                    out.push(RedisEvent::Message { channel, payload });
                    continue;
                }
                Err(reply) => reply,
            };
            let Some(tag) = self.pending.pop_front() else {
                // RESP2 has no message the server sends unasked (that is RESP3's push).
                return self.abort(ctx, "a reply no command asked for".into(), bytes.len());
            };
            let result = match reply {
                Reply::Error(msg) => Err(RedisError::Server(msg)),
                other => Ok(other),
            };
            out.push(RedisEvent::Reply(tag, result));
        }
        used
    }

    /// The loop's [`Handler::closed`] for a connection this one [`owns`](Self::owns).
    pub fn closed<Tm>(
        &mut self,
        _ctx: &mut Ctx<Tm>,
        reason: CloseReason,
        out: &mut Vec<RedisEvent<T>>,
    ) {
        let why = self.failure.take().unwrap_or_else(|| reason.to_string());
        self.lose(why, out);
    }

    /// The stream cannot be trusted past a broken reply: drop it and everything after it.
    fn abort<Tm>(&mut self, ctx: &mut Ctx<Tm>, why: String, consumed: usize) -> usize {
        if let Some(id) = self.id {
            ctx.abort(id);
        }
        self.state = State::Closing;
        self.failure = Some(why);
        consumed
    }

    fn lose(&mut self, why: String, out: &mut Vec<RedisEvent<T>>) {
        self.id = None;
        self.subscribed = false;
        self.state = State::Down;
        let err = RedisError::Lost(why);
        for tag in self.pending.drain(..) {
            out.push(RedisEvent::Reply(tag, Err(err.clone())));
        }
        out.push(RedisEvent::Lost(err));
    }
}

/// A subscribed connection's `["message", channel, payload]`: the channel and the payload;
/// anything else is given back (it is the reply to a command).
fn published(reply: Reply, subscribed: bool) -> Result<(Vec<u8>, Vec<u8>), Reply> {
    let is_message = |parts: &[Reply]| {
        matches!(parts, [kind, Reply::Bulk(_), Reply::Bulk(_)]
            if kind.as_bytes() == Some(b"message".as_slice()))
    };
    match reply {
        Reply::Array(parts) if subscribed && is_message(&parts) => {
            let mut parts = parts.into_iter().skip(1).map(|p| match p {
                Reply::Bulk(b) => b,
                _ => Vec::new(),
            });
            let channel = parts.next().unwrap_or_default();
            Ok((channel, parts.next().unwrap_or_default()))
        }
        other => Err(other),
    }
}

/// `--redis redis://HOST:PORT`: only that form for now (no user, password, database number
/// or TLS), so anything else is refused rather than half understood.
pub fn parse_url(url: &str) -> Result<SocketAddr, String> {
    let wanted = "expected redis://HOST:PORT (no user, password, database or options)";
    let Some(host_port) = url.strip_prefix("redis://") else {
        return Err(format!("{wanted}, got {url:?}"));
    };
    let bad = host_port.is_empty() || host_port.contains(['/', '@', '?']);
    if bad || !host_port.contains(':') {
        return Err(format!("{wanted}, got {url:?}"));
    }
    use std::net::ToSocketAddrs;
    let mut addrs = host_port
        .to_socket_addrs()
        .map_err(|e| format!("{wanted}: {host_port:?}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{host_port:?} has no address"))
}
