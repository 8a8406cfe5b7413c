//! Layer 2: a hand-rolled event loop over mio (lessons 11-13 and everything after).
//!
//! One thread, one `epoll` instance, many connections. Each turn of the loop:
//!
//! ```text
//!   timeout = nearest timer deadline (0 if work is left over)
//!   epoll_wait(timeout) ──► for each ready token:
//!        listener ──► accept4 until EAGAIN ──► Handler::accepted
//!        conn     ──► read until EAGAIN    ──► Handler::data
//!                 ──► writable: flush the outbound buffer
//!        waker    ──► Handler::message for each message from other threads
//!        signal   ──► begin a graceful stop
//!   fire due timers ──► Handler::timer
//!   flush every connection that got output this turn (one write for all of it)
//!   close what was asked to close ──► Handler::closed
//! ```
//!
//! The loop knows bytes, not frames: what runs on it implements [`Handler`] and talks back
//! through [`Ctx`] (send, close, timers, connect, stop). The protocol layers plug in there.
//!
//! Rules it keeps (see the "Inside the loop" chapter of the book):
//! - Edge-triggered: every readiness event is drained until `EAGAIN`, because the kernel will
//!   not say it again. To stay fair, one connection gets at most
//!   [`Config::reads_per_event`] reads per turn; the rest waits for the next turn.
//! - Writes are buffered per connection and flushed at the end of the turn, so several
//!   messages for one peer leave in one `sendto`. WRITABLE interest is asked for only while
//!   bytes are waiting, and dropped as soon as the buffer is empty.
//! - Each outbound buffer has a cap ([`Config::max_outbound`], 1 MiB by default).
//!   [`Ctx::send`] refuses bytes past it with [`SendError::Full`]: the layer above chooses
//!   the policy (drop the message, or disconnect the slow peer).
//! - Buffers are reused: reading goes through one scratch buffer for the whole loop, and a
//!   connection's buffers keep their capacity (up to 64 KiB) between uses.
//! - `accept4` failing with EMFILE/ENFILE/ENOBUFS/ENOMEM, or with an error the loop does not
//!   know, pauses the listener for [`Config::accept_backoff`] and then drains the queue
//!   again: no spinning, and no queue left waiting for an edge that will not come. A failure
//!   that cost only one queued connection (ECONNABORTED, EPROTO, EPERM, ...) is skipped.
//!   Each kind is counted in [`Stats::accept_errors`] and reported on stderr the 1st, 2nd,
//!   4th, 8th, ... time. Past [`Config::max_connections`] new connections are accepted and
//!   closed at once.

mod accept_errors;
pub mod echo;
mod poller;
mod slab;
mod timer;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};

use crate::sys::{self, Errno, Family, Fd, IntOpt, MsgFlags};

pub use slab::ConnId;
pub use timer::TimerId;

pub use accept_errors::AcceptErrors;
use accept_errors::{one_connection_lost, report_accept_error, MAX_SKIPPED};
use slab::Slab;
use timer::Timers;

const WAKER: Token = Token(0);
const SIGNALS: Token = Token(1);
const LISTENER_BASE: usize = 2;
const MAX_LISTENERS: usize = 14;
const CONN_BASE: usize = LISTENER_BASE + MAX_LISTENERS;

/// Buffers above this capacity are given back when they empty.
const KEEP_CAPACITY: usize = 64 * 1024;

/// The loop's knobs. `Config::default()` suits a server with up to 10,000 connections.
#[derive(Debug, Clone)]
pub struct Config {
    /// Connections past this many are accepted and closed at once.
    pub max_connections: usize,
    /// Bytes a connection may have waiting to be sent before [`Ctx::send`] refuses more.
    pub max_outbound: usize,
    /// Bytes a connection may have received and not yet consumed before it is closed.
    pub max_inbound: usize,
    /// Size of the one read buffer the loop shares among all connections.
    pub read_chunk: usize,
    /// Reads one connection gets per turn before the others have their go (4 by default).
    ///
    /// This also bounds what handling one connection's input can queue for others before
    /// the turn's flush: a broadcast server turns 4 reads of 64 KiB of chat messages into
    /// some 300 KiB of frames for every recipient, well under `max_outbound`. With 16, one
    /// burst could queue more than `max_outbound` for every recipient in one turn and cut off
    /// even those that read as fast as they can.
    pub reads_per_event: usize,
    /// How long a listener rests after `accept4` failed with EMFILE, ENFILE, ENOBUFS, ENOMEM
    /// or an error the loop does not know.
    pub accept_backoff: Duration,
    /// How long a graceful stop (or a close that waits for a flush) may take.
    pub stop_grace: Duration,
    /// Set TCP_NODELAY on every connection (small messages leave at once).
    pub nodelay: bool,
    /// Capacity of the epoll event array.
    pub events_capacity: usize,
}

// ANCHOR: defaults
impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 10_000,
            max_outbound: 1 << 20,
            max_inbound: (1 << 20) + 64 * 1024,
            read_chunk: 64 * 1024,
            reads_per_event: 4,
            accept_backoff: Duration::from_millis(100),
            stop_grace: Duration::from_secs(5),
            nodelay: true,
            events_capacity: 1024,
        }
    }
}
// ANCHOR_END: defaults

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side (read returned 0); anything queued was flushed first.
    PeerClosed,
    /// The peer closed its side while `unconsumed` bytes it had sent were still waiting for
    /// the handler, which had returned less than everything from [`Handler::data`]: for a
    /// handler that consumes whole messages, the stream ended in the middle of one (an
    /// error, where [`PeerClosed`](CloseReason::PeerClosed) is a clean end). Anything
    /// queued was flushed first, as for `PeerClosed`; the unconsumed bytes are dropped.
    Truncated { unconsumed: usize },
    /// A read or write failed (ECONNRESET, EPIPE, ...).
    Error(sys::Error),
    /// [`Ctx::close`] or [`Ctx::abort`] asked for it.
    Local,
    /// The peer sent more than [`Config::max_inbound`] bytes that the handler did not consume.
    InputOverflow,
    /// The loop is stopping (SIGINT, SIGTERM or [`Ctx::stop`]).
    Stopped,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("the peer closed the connection"),
            CloseReason::Truncated { unconsumed } => write!(
                f,
                "the peer closed the connection in the middle of a message \
                 ({unconsumed} bytes unconsumed)"
            ),
            CloseReason::Error(e) => write!(f, "{e}"),
            CloseReason::Local => f.write_str("closed by this side"),
            CloseReason::InputOverflow => f.write_str("the peer sent too much unconsumed input"),
            CloseReason::Stopped => f.write_str("the loop is stopping"),
        }
    }
}

/// Why [`Ctx::send`] did not queue the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection is closed or closing.
    Closed,
    /// The outbound buffer would pass its cap: the peer does not read fast enough.
    Full { pending: usize, cap: usize },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the connection is closed"),
            SendError::Full { pending, cap } => write!(
                f,
                "the outbound buffer is full ({pending} bytes waiting, cap {cap})"
            ),
        }
    }
}

impl std::error::Error for SendError {}

/// Counters, for lessons and tests to show what the loop did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub accepted: u64,
    /// Connections closed at once because [`Config::max_connections`] was reached.
    pub refused: u64,
    /// Times a listener paused for [`Config::accept_backoff`] after `accept4` failed (out of
    /// descriptors or memory, or an error the loop does not know).
    pub accept_backoffs: u64,
    /// `accept4` failures, by errno.
    pub accept_errors: AcceptErrors,
    pub closed: u64,
    pub reads: u64,
    pub bytes_in: u64,
    /// Reads that found nothing (EAGAIN): the end of each drain, or a spurious event.
    pub reads_would_block: u64,
    pub writes: u64,
    pub bytes_out: u64,
    /// Writes that took fewer bytes than offered.
    pub short_writes: u64,
    /// Writes that took nothing (EAGAIN): the send buffer was full.
    pub writes_would_block: u64,
    /// Times WRITABLE interest was turned on for a connection.
    pub writable_on: u64,
    /// Times a send was refused because the outbound buffer was full.
    pub sends_refused: u64,
    pub events: u64,
    pub turns: u64,
}

// ANCHOR: handler
/// What runs on the loop. Every method has a default that does nothing, except [`data`].
///
/// Methods get the [`Ctx`] to act on the loop. They run on the loop thread, one at a time:
/// a handler owns its state outright and needs no locks.
///
/// [`data`]: Handler::data
#[allow(unused_variables)]
pub trait Handler: Sized {
    /// What a timer carries back to [`Handler::timer`].
    type Timer;
    /// What other threads send through a [`LoopHandle`].
    type Message: Send + 'static;

    /// A listener accepted a connection.
    fn accepted(&mut self, ctx: &mut Ctx<Self::Timer>, id: ConnId, peer: SocketAddr) {}

    /// An outgoing [`Ctx::connect`] finished. On error the connection is gone already and
    /// [`Handler::closed`] will not be called for it.
    fn connected(&mut self, ctx: &mut Ctx<Self::Timer>, id: ConnId, result: sys::Result<()>) {}

    /// Bytes arrived. Return how many were consumed: the rest stays buffered and is offered
    /// again, with more, next time (an incomplete frame, say).
    fn data(&mut self, ctx: &mut Ctx<Self::Timer>, id: ConnId, bytes: &[u8]) -> usize;

    /// The outbound buffer of `id` emptied after having held bytes: a producer held back by
    /// [`SendError::Full`] can go on.
    fn drained(&mut self, ctx: &mut Ctx<Self::Timer>, id: ConnId) {}

    /// The connection is closed and its descriptor released.
    fn closed(&mut self, ctx: &mut Ctx<Self::Timer>, id: ConnId, reason: CloseReason) {}

    /// A timer set with [`Ctx::set_timer`] is due.
    fn timer(&mut self, ctx: &mut Ctx<Self::Timer>, id: TimerId, value: Self::Timer) {}

    /// Another thread sent a message through a [`LoopHandle`].
    fn message(&mut self, ctx: &mut Ctx<Self::Timer>, msg: Self::Message) {}

    /// A graceful stop began: listeners are closed; queue any goodbyes now. Every
    /// connection is then closed once its output is flushed.
    fn stopping(&mut self, ctx: &mut Ctx<Self::Timer>) {}
}
// ANCHOR_END: handler

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting { timeout: Option<TimerId> },
    Open,
}

struct Conn {
    fd: Fd,
    peer: SocketAddr,
    state: State,
    /// Received bytes the handler has not consumed yet.
    input: Vec<u8>,
    /// Bytes waiting to be sent: `output[sent..]`.
    output: Vec<u8>,
    sent: usize,
    writable_interest: bool,
    /// Already on the loop's list of connections to flush this turn.
    dirty: bool,
    /// The peer sent FIN.
    read_closed: bool,
    /// Reading stopped for backpressure: input is waiting unconsumed while output is
    /// queued. Reading resumes when the output drains.
    read_paused: bool,
    /// Offer the waiting input to the handler again before the next read.
    reoffer: bool,
    /// Lingering close: we sent FIN (shutdown SHUT_WR) and now read and drop whatever the
    /// peer still sends until its FIN, so that closing does not turn into RST (which would
    /// throw away what we wrote and the peer has not read yet).
    lingering: bool,
    /// Close once the output is flushed (or at once when `flush` is false).
    closing: Option<(CloseReason, bool)>,
    /// Listed on `more_to_read` for the next turn (it is listed once at most).
    read_later: bool,
    /// The turn it was last read in: a connection is read once per turn, however many
    /// reasons there are to read it.
    read_turn: u64,
}

impl Conn {
    fn pending(&self) -> usize {
        self.output.len() - self.sent
    }
}

enum TimerKind<T> {
    User(T),
    ConnectTimeout(ConnId),
    AcceptResume(usize),
    CloseGrace(ConnId),
    StopGrace,
}

struct Listener {
    fd: Fd,
    paused: bool,
}

/// The loop's state, as handlers see it: everything but the poll itself and the handler.
pub struct Ctx<T> {
    poll: Poll,
    config: Config,
    conns: Slab<Conn>,
    listeners: Vec<Option<Listener>>,
    timers: Timers<TimerKind<T>>,
    /// Connections with output queued this turn.
    dirty: Vec<ConnId>,
    /// Connections that hit `reads_per_event` and still have input in the kernel.
    more_to_read: VecDeque<ConnId>,
    /// Connections to close at the end of the turn.
    closing: Vec<ConnId>,
    /// The read buffer all connections share.
    scratch: Vec<u8>,
    stats: Stats,
    stop_requested: bool,
    stop_begun: bool,
    signals: Option<std::os::fd::OwnedFd>,
}

impl<T> Ctx<T> {
    /// Starts listening on `addr` (`SO_REUSEADDR`, non-blocking) and returns the real
    /// address. Connections arrive at [`Handler::accepted`].
    pub fn listen(&mut self, addr: SocketAddr) -> sys::Result<SocketAddr> {
        let index = self
            .listeners
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.listeners.len());
        if index >= MAX_LISTENERS {
            return Err(sys::Error::new("listen", addr.to_string(), Errno::EMFILE));
        }
        let fd = sys::socket(Family::of(&addr), true)?;
        sys::setsockopt(&fd, IntOpt::ReuseAddr, 1)?;
        sys::bind(&fd, &addr)?;
        sys::listen(&fd, 1024)?;
        let local = sys::getsockname(&fd)?;
        poller::register(
            &self.poll,
            fd.raw(),
            Token(LISTENER_BASE + index),
            Interest::READABLE,
        )
        .map_err(|e| io_to_sys("epoll_ctl", &e))?;
        let listener = Listener { fd, paused: false };
        if index == self.listeners.len() {
            self.listeners.push(Some(listener));
        } else {
            self.listeners[index] = Some(listener);
        }
        Ok(local)
    }

    /// Takes a connected (or connecting) socket into the table and watches it: READABLE, and
    /// WRITABLE too while connecting (writable is how a non-blocking connect finishes).
    fn add_conn(&mut self, fd: Fd, peer: SocketAddr, state: State) -> io::Result<ConnId> {
        let connecting = matches!(state, State::Connecting { .. });
        let raw = fd.raw();
        let id = self.conns.insert(Conn {
            fd,
            peer,
            state,
            input: Vec::new(),
            output: Vec::new(),
            sent: 0,
            writable_interest: connecting,
            dirty: false,
            read_closed: false,
            read_paused: false,
            reoffer: false,
            lingering: false,
            closing: None,
            read_later: false,
            read_turn: 0,
        });
        let interest = if connecting {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if let Err(e) = poller::register(&self.poll, raw, conn_token(id), interest) {
            self.conns.remove(id);
            return Err(e);
        }
        Ok(id)
    }

    /// Starts a non-blocking connect to `addr`. The outcome arrives at
    /// [`Handler::connected`]; with a `timeout`, a connect still under way by then fails with
    /// ETIMEDOUT.
    pub fn connect(&mut self, addr: SocketAddr, timeout: Option<Duration>) -> sys::Result<ConnId> {
        let fd = sys::socket(Family::of(&addr), true)?;
        match sys::connect(&fd, &addr) {
            Ok(()) => {}
            Err(e) if e.errno() == Errno::EINPROGRESS => {}
            Err(e) => return Err(e),
        }
        if self.config.nodelay {
            sys::setsockopt(&fd, IntOpt::NoDelay, 1)?;
        }
        let id = self
            .add_conn(fd, addr, State::Connecting { timeout: None })
            .map_err(|e| io_to_sys("epoll_ctl", &e))?;
        if let Some(t) = timeout {
            let tid = self
                .timers
                .insert(Instant::now() + t, TimerKind::ConnectTimeout(id));
            if let Some(conn) = self.conns.get_mut(id) {
                conn.state = State::Connecting { timeout: Some(tid) };
            }
        }
        Ok(id)
    }

    // ANCHOR: send
    /// Queues `bytes` for `id`. They leave at the end of this turn, together with anything
    /// else queued for `id`; what the kernel does not take waits for WRITABLE.
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) -> Result<(), SendError> {
        let cap = self.config.max_outbound;
        let Some(conn) = self.conns.get_mut(id) else {
            return Err(SendError::Closed);
        };
        if conn.closing.is_some() {
            return Err(SendError::Closed);
        }
        let pending = conn.pending();
        if pending + bytes.len() > cap {
            self.stats.sends_refused += 1;
            return Err(SendError::Full { pending, cap });
        }
        if conn.sent > 0 && conn.sent == conn.output.len() {
            conn.output.clear();
            conn.sent = 0;
        }
        conn.output.extend_from_slice(bytes);
        // A connection waiting for WRITABLE already had EAGAIN: its writable event flushes
        // it, and a `sendto` at the end of this turn would only get EAGAIN again.
        if !conn.dirty && !conn.writable_interest {
            conn.dirty = true;
            self.dirty.push(id);
        }
        Ok(())
    }
    // ANCHOR_END: send

    /// Bytes queued for `id` and not yet taken by the kernel (0 if `id` is gone).
    pub fn pending(&self, id: ConnId) -> usize {
        self.conns.get(id).map_or(0, Conn::pending)
    }

    /// Whether `id`'s output is backed up: bytes from an earlier turn are still waiting for
    /// the kernel to take them (WRITABLE interest is on). Bytes queued in this turn do not
    /// count: they leave at the end of the turn.
    pub fn backed_up(&self, id: ConnId) -> bool {
        self.conns.get(id).is_some_and(|c| c.writable_interest)
    }

    /// The address of the other end of `id`.
    pub fn peer(&self, id: ConnId) -> Option<SocketAddr> {
        self.conns.get(id).map(|c| c.peer)
    }

    /// Closes `id` once what is queued for it has been sent (at most
    /// [`Config::stop_grace`] later). [`Handler::closed`] follows with [`CloseReason::Local`].
    pub fn close(&mut self, id: ConnId) {
        self.mark_closing(id, CloseReason::Local, true);
    }

    /// Closes `id` at the end of this turn, dropping anything queued.
    pub fn abort(&mut self, id: ConnId) {
        self.mark_closing(id, CloseReason::Local, false);
    }

    /// Calls [`Handler::timer`] with `value` after `delay`.
    pub fn set_timer(&mut self, delay: Duration, value: T) -> TimerId {
        self.timers
            .insert(Instant::now() + delay, TimerKind::User(value))
    }

    /// Cancels a timer; returns its value if it had not fired yet.
    pub fn cancel_timer(&mut self, id: TimerId) -> Option<T> {
        // Only the loop's own timers are not `User`, and their ids are never handed out.
        match self.timers.cancel(id)? {
            TimerKind::User(v) => Some(v),
            _ => None,
        }
    }

    /// Begins a graceful stop: close the listeners, let the handler say goodbye, flush and
    /// close every connection. [`EventLoop::run`] returns once all are closed.
    pub fn stop(&mut self) {
        self.stop_requested = true;
    }

    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.stop_requested
    }

    /// Live connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Ids of the live connections, in slot order.
    pub fn connection_ids(&self) -> Vec<ConnId> {
        self.conns.ids()
    }

    /// Timers waiting to fire (the handler's and the loop's own).
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Lists `id` to be read in the next turn (once, however often this is called).
    fn read_later(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id) {
            if !std::mem::replace(&mut conn.read_later, true) {
                self.more_to_read.push_back(id);
            }
        }
    }

    fn mark_closing(&mut self, id: ConnId, reason: CloseReason, flush: bool) {
        let grace = self.config.stop_grace;
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        match &mut conn.closing {
            // Already closing: an abort may still cut a pending flush short.
            Some((_, f)) => {
                if !flush {
                    *f = false;
                    self.closing.push(id);
                }
                return;
            }
            None => conn.closing = Some((reason, flush)),
        }
        if flush && conn.pending() > 0 {
            // Closed by `flush` when the buffer empties, or by the grace timer.
            self.timers
                .insert(Instant::now() + grace, TimerKind::CloseGrace(id));
        } else {
            self.closing.push(id);
        }
    }

    // ANCHOR: poll_timeout
    fn poll_timeout(&mut self, wanted: Option<Duration>) -> Option<Duration> {
        if !self.more_to_read.is_empty() || !self.dirty.is_empty() || !self.closing.is_empty() {
            return Some(Duration::ZERO);
        }
        let timer = self
            .timers
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        match (wanted, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    // ANCHOR_END: poll_timeout

    // ANCHOR: set_interest
    fn set_interest(&mut self, id: ConnId, writable: bool) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.writable_interest == writable {
            return;
        }
        conn.writable_interest = writable;
        let interest = if writable {
            self.stats.writable_on += 1;
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let raw = conn.fd.raw();
        if let Err(e) = poller::reregister(&self.poll, raw, conn_token(id), interest) {
            let err = io_to_sys("epoll_ctl", &e);
            self.fail(id, err);
        }
    }
    // ANCHOR_END: set_interest

    fn fail(&mut self, id: ConnId, err: sys::Error) {
        self.close_now(id, CloseReason::Error(err));
    }

    /// Closes `id` at the end of this turn for `reason`, whatever was queued or asked before.
    fn close_now(&mut self, id: ConnId, reason: CloseReason) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.closing = Some((reason, false));
            self.closing.push(id);
        }
    }

    // ANCHOR: flush
    /// Writes what is queued for `id` until done or EAGAIN; returns whether the buffer
    /// emptied after having held bytes.
    fn flush(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conns.get_mut(id) else {
            return false;
        };
        conn.dirty = false;
        if matches!(conn.state, State::Connecting { .. }) || conn.pending() == 0 {
            return false;
        }
        let mut error = None;
        while conn.pending() > 0 {
            let chunk = &conn.output[conn.sent..];
            match sys::send(&conn.fd, chunk, MsgFlags::NOSIGNAL) {
                Ok(n) => {
                    self.stats.writes += 1;
                    self.stats.bytes_out += n as u64;
                    if n < chunk.len() {
                        self.stats.short_writes += 1;
                    }
                    conn.sent += n;
                }
                Err(e) if e.errno() == Errno::EAGAIN => {
                    self.stats.writes_would_block += 1;
                    break;
                }
                Err(e) if e.errno() == Errno::EINTR => continue,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = error {
            self.fail(id, e);
            return false;
        }
        let emptied = conn.pending() == 0;
        // The peer read its replies: take its input again (edge-triggered, so the loop must
        // go and look; no new event will come for bytes already waiting).
        let resume = emptied && (conn.read_paused || !conn.input.is_empty());
        if resume {
            conn.read_paused = false;
            conn.reoffer = true;
        }
        if emptied {
            conn.output.clear();
            conn.sent = 0;
            if conn.output.capacity() > KEEP_CAPACITY {
                conn.output.shrink_to(KEEP_CAPACITY);
            }
            if conn.closing.as_ref().is_some_and(|(_, flush)| *flush) {
                self.closing.push(id);
            }
        } else if conn.sent > KEEP_CAPACITY && conn.sent * 2 > conn.output.len() {
            // Keep the buffer from growing without bound under a steady trickle.
            conn.output.drain(..conn.sent);
            conn.sent = 0;
        }
        if resume {
            self.read_later(id);
        }
        self.set_interest(id, !emptied);
        emptied
    }
    // ANCHOR_END: flush
}

fn io_to_sys(syscall: &'static str, e: &io::Error) -> sys::Error {
    sys::Error::new(syscall, "epoll", sys::errno_of(e).unwrap_or(Errno::EIO))
}

/// A handle other threads use to send messages to the loop; cheap to clone.
pub struct LoopHandle<M> {
    tx: mpsc::Sender<M>,
    waker: Arc<Waker>,
}

impl<M> Clone for LoopHandle<M> {
    fn clone(&self) -> Self {
        LoopHandle {
            tx: self.tx.clone(),
            waker: Arc::clone(&self.waker),
        }
    }
}

// ANCHOR: loop_handle
impl<M: Send> LoopHandle<M> {
    /// Queues `msg` for [`Handler::message`] and wakes the loop. Fails once the loop is gone.
    pub fn send(&self, msg: M) -> Result<(), M> {
        self.tx.send(msg).map_err(|e| e.0)?;
        // A failed wake means the loop is gone; the message then simply goes unread.
        let _ = self.waker.wake();
        Ok(())
    }
}
// ANCHOR_END: loop_handle

/// The loop: a poll, its events, the [`Ctx`], and the handler.
pub struct EventLoop<H: Handler> {
    events: Events,
    ctx: Ctx<H::Timer>,
    handler: H,
    rx: mpsc::Receiver<H::Message>,
    handle: LoopHandle<H::Message>,
}

impl<H: Handler> EventLoop<H> {
    pub fn new(handler: H, config: Config) -> io::Result<EventLoop<H>> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        Ok(EventLoop {
            events: Events::with_capacity(config.events_capacity),
            ctx: Ctx {
                poll,
                scratch: vec![0; config.read_chunk.max(1)],
                config,
                conns: Slab::new(),
                listeners: Vec::new(),
                timers: Timers::new(),
                dirty: Vec::new(),
                more_to_read: VecDeque::new(),
                closing: Vec::new(),
                stats: Stats::default(),
                stop_requested: false,
                stop_begun: false,
                signals: None,
            },
            handler,
            rx,
            handle: LoopHandle { tx, waker },
        })
    }

    /// The loop's state, to listen or connect before running.
    pub fn ctx(&mut self) -> &mut Ctx<H::Timer> {
        &mut self.ctx
    }

    pub fn handler(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Both at once, to call handler code that needs the context from outside the loop.
    pub fn parts(&mut self) -> (&mut H, &mut Ctx<H::Timer>) {
        (&mut self.handler, &mut self.ctx)
    }

    /// A handle for other threads.
    pub fn handle(&self) -> LoopHandle<H::Message> {
        self.handle.clone()
    }

    // ANCHOR: stop_on_signals
    /// Makes SIGINT and SIGTERM begin a graceful stop (through the self-pipe trick).
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        let fd = sys::signal::stop_signal_pipe()?;
        // A pipe, not a socket: registered without a trace line, like mio's own waker.
        self.ctx.poll.registry().register(
            &mut mio::unix::SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&fd)),
            SIGNALS,
            Interest::READABLE,
        )?;
        self.ctx.signals = Some(fd);
        Ok(())
    }
    // ANCHOR_END: stop_on_signals

    /// Whether a stop has finished: it was asked for and every connection is closed.
    pub fn is_stopped(&self) -> bool {
        self.ctx.stop_begun && self.ctx.conns.len() == 0
    }

    /// Turns until [`is_stopped`](Self::is_stopped).
    pub fn run(&mut self) -> io::Result<()> {
        while !self.is_stopped() {
            self.turn(None)?;
        }
        Ok(())
    }

    // ANCHOR: turn
    /// One turn: wait for readiness (at most `timeout`, less if a timer is due sooner),
    /// handle every event, fire due timers, flush, close. Returns the number of events.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let ctx = &mut self.ctx;
        let h = &mut self.handler;
        ctx.stats.turns += 1;
        if ctx.stop_requested && !ctx.stop_begun {
            begin_stop(ctx, h);
        }
        if ctx.stop_begun && ctx.conns.len() == 0 {
            return Ok(0); // stopped: nothing left to wait for (stale timers do not count)
        }
        let wait = ctx.poll_timeout(timeout);
        match poller::wait(&mut ctx.poll, &mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        // Connections cut off by the fairness limit in the last turn (the wait above did not
        // sleep for them): they go on in this one, after the new events. Those cut off in
        // this turn are listed again behind them, for the next, so what one connection's
        // input makes the handler queue for others between two flushes is bounded.
        let carried = ctx.more_to_read.len();
        for &id in &ctx.more_to_read {
            if let Some(conn) = ctx.conns.get_mut(id) {
                conn.read_later = false;
            }
        }
        let mut count = 0;
        for event in self.events.iter() {
            count += 1;
            ctx.stats.events += 1;
            match event.token() {
                WAKER => {
                    while let Ok(msg) = self.rx.try_recv() {
                        h.message(ctx, msg);
                    }
                }
                SIGNALS => {
                    if let Some(fd) = &ctx.signals {
                        sys::signal::drain_stop_pipe(fd);
                    }
                    ctx.stop_requested = true;
                }
                Token(t) if (LISTENER_BASE..CONN_BASE).contains(&t) => {
                    accept_all(ctx, h, t - LISTENER_BASE);
                }
                Token(t) => {
                    let Some(id) = ctx.conns.id_at(t - CONN_BASE) else {
                        continue; // closed earlier in this turn
                    };
                    let connecting = ctx
                        .conns
                        .get(id)
                        .is_some_and(|c| matches!(c.state, State::Connecting { .. }));
                    if connecting {
                        if event.is_writable() || event.is_error() || event.is_read_closed() {
                            finish_connect(ctx, h, id);
                        }
                        continue;
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        read_ready(ctx, h, id);
                    }
                    if event.is_writable() && ctx.flush(id) {
                        h.drained(ctx, id);
                    }
                }
            }
        }
        // Connections that were cut off by the fairness limit in the last turn go on now
        // (unless an event of this turn had them read already).
        for _ in 0..carried {
            if let Some(id) = ctx.more_to_read.pop_front() {
                read_ready(ctx, h, id);
            }
        }
        fire_timers(ctx, h);
        if ctx.stop_requested && !ctx.stop_begun {
            begin_stop(ctx, h);
        }
        flush_dirty(ctx, h);
        close_marked(ctx, h);
        Ok(count)
    }
    // ANCHOR_END: turn
}

// ANCHOR: begin_stop
fn begin_stop<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H) {
    ctx.stop_begun = true;
    for slot in 0..ctx.listeners.len() {
        if let Some(l) = ctx.listeners[slot].take() {
            let _ = poller::deregister(&ctx.poll, l.fd.raw());
        }
    }
    h.stopping(ctx);
    for id in ctx.conns.ids() {
        ctx.mark_closing(id, CloseReason::Stopped, true);
    }
    let grace = ctx.config.stop_grace;
    ctx.timers
        .insert(Instant::now() + grace, TimerKind::StopGrace);
}
// ANCHOR_END: begin_stop

// ANCHOR: accept_all
fn accept_all<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H, index: usize) {
    // Failures in a row that each should have cost one queued connection: past a few, the
    // error is not what it seems (nothing leaves the queue) and retrying at once would spin.
    let mut skipped = 0;
    loop {
        let Some(Some(listener)) = ctx.listeners.get(index) else {
            return;
        };
        if listener.paused {
            return;
        }
        match sys::accept(&listener.fd, true) {
            Ok((fd, peer)) => {
                skipped = 0;
                ctx.stats.accepted += 1;
                if ctx.conns.len() >= ctx.config.max_connections {
                    ctx.stats.refused += 1;
                    drop(fd); // refused: closed at once
                    continue;
                }
                if ctx.config.nodelay {
                    // Failing to set it only costs latency; the connection is still good.
                    let _ = sys::setsockopt(&fd, IntOpt::NoDelay, 1);
                }
                let Ok(id) = ctx.add_conn(fd, peer, State::Open) else {
                    continue; // not watched, so closed at once
                };
                h.accepted(ctx, id, peer);
            }
            Err(e) if e.errno() == Errno::EAGAIN => return, // drained
            Err(e) if e.errno() == Errno::EINTR => continue,
            Err(e) => {
                let seen = ctx.stats.accept_errors.count(e.errno());
                let skip = one_connection_lost(e.errno()) && skipped < MAX_SKIPPED;
                if skip {
                    // That connection is gone; the next one in the queue may be fine.
                    skipped += 1;
                    report_accept_error(&e, seen, "skipped that connection");
                    continue;
                }
                // Out of descriptors or memory, or an error the loop does not know: trying
                // again at once would fail again (a spin), and returning without a timer
                // would strand the queue (edge-triggered: no new event until the next
                // client). Rest, then drain again.
                let backoff = ctx.config.accept_backoff;
                report_accept_error(
                    &e,
                    seen,
                    &format!("accepting paused for {} ms", backoff.as_millis()),
                );
                ctx.stats.accept_backoffs += 1;
                if let Some(Some(l)) = ctx.listeners.get_mut(index) {
                    l.paused = true;
                }
                let at = Instant::now() + backoff;
                ctx.timers.insert(at, TimerKind::AcceptResume(index));
                return;
            }
        }
    }
}
// ANCHOR_END: accept_all

fn finish_connect<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H, id: ConnId) {
    let Some(conn) = ctx.conns.get_mut(id) else {
        return;
    };
    let State::Connecting { timeout } = conn.state else {
        return;
    };
    let outcome = match sys::take_error(&conn.fd) {
        Ok(None) => Ok(()),
        Ok(Some(errno)) => Err(sys::Error::new("connect", conn.peer.to_string(), errno)),
        Err(e) => Err(e),
    };
    if let Some(t) = timeout {
        ctx.timers.cancel(t);
    }
    match outcome {
        Ok(()) => {
            conn.state = State::Open;
            // Keep WRITABLE only if output was queued while connecting.
            let pending = conn.pending() > 0;
            if pending {
                if !conn.dirty {
                    conn.dirty = true;
                    ctx.dirty.push(id);
                }
            } else {
                ctx.set_interest(id, false);
            }
            h.connected(ctx, id, Ok(()));
        }
        Err(e) => {
            drop_conn(ctx, id);
            h.connected(ctx, id, Err(e));
        }
    }
}

/// The token a connection is registered with (the listeners and the loop's own pipes have
/// the tokens below `CONN_BASE`).
fn conn_token(id: ConnId) -> Token {
    Token(CONN_BASE + id.slot())
}

/// Removes a connection: stop watching it, then close it.
fn drop_conn<T>(ctx: &mut Ctx<T>, id: ConnId) -> Option<Conn> {
    let conn = ctx.conns.remove(id)?;
    let _ = poller::deregister(&ctx.poll, conn.fd.raw());
    Some(conn)
}

// ANCHOR: read_ready
fn read_ready<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H, id: ConnId) {
    let turn = ctx.stats.turns;
    // Read once already in this turn: that read listed it for the next if it had to.
    if ctx.conns.get(id).is_none_or(|conn| conn.read_turn == turn) {
        return;
    }
    let mut scratch = std::mem::take(&mut ctx.scratch);
    let mut drained = false;
    for _ in 0..ctx.config.reads_per_event {
        let Some(conn) = ctx.conns.get_mut(id) else {
            drained = true;
            break;
        };
        if conn.lingering {
            match sys::read(&conn.fd, &mut scratch) {
                Ok(0) => {
                    // The peer's FIN: now the close is clean on both sides.
                    conn.read_closed = true;
                    ctx.abort(id);
                    drained = true;
                    break;
                }
                Ok(_) => continue, // dropped: the connection is closing
                Err(e) if e.errno() == Errno::EAGAIN => {
                    drained = true;
                    break;
                }
                Err(e) if e.errno() == Errno::EINTR => continue,
                Err(_) => {
                    ctx.abort(id);
                    drained = true;
                    break;
                }
            }
        }
        if conn.closing.is_some() || conn.read_closed || conn.read_paused {
            drained = true;
            break;
        }
        if conn.input.len() >= scratch.len() && conn.pending() > 0 {
            // Backpressure: the handler could not take what it has, and the peer is not
            // reading our output. Stop reading until the output drains.
            conn.read_paused = true;
            drained = true;
            break;
        }
        if std::mem::take(&mut conn.reoffer) && !conn.input.is_empty() {
            // Resuming after a pause: offer what is waiting before reading more.
            deliver(ctx, h, id, &[]);
        }
        let Some(conn) = ctx.conns.get_mut(id) else {
            drained = true;
            break;
        };
        match sys::read(&conn.fd, &mut scratch) {
            Ok(0) => {
                conn.read_closed = true;
                // Bytes the handler left unconsumed are the start of a message that will
                // never be finished: end of file there is an error, not a clean close.
                let reason = match conn.input.len() {
                    0 => CloseReason::PeerClosed,
                    unconsumed => CloseReason::Truncated { unconsumed },
                };
                ctx.mark_closing(id, reason, true);
                drained = true;
                break;
            }
            Ok(n) => {
                ctx.stats.reads += 1;
                ctx.stats.bytes_in += n as u64;
                deliver(ctx, h, id, &scratch[..n]);
            }
            Err(e) if e.errno() == Errno::EAGAIN => {
                ctx.stats.reads_would_block += 1;
                drained = true;
                break;
            }
            Err(e) if e.errno() == Errno::EINTR => continue,
            Err(e) => {
                ctx.fail(id, e);
                drained = true;
                break;
            }
        }
    }
    ctx.scratch = scratch;
    if let Some(conn) = ctx.conns.get_mut(id) {
        conn.read_turn = turn;
    }
    if !drained {
        ctx.read_later(id);
    }
}
// ANCHOR_END: read_ready

// ANCHOR: deliver
/// Hands bytes to the handler; keeps what it did not consume.
fn deliver<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H, id: ConnId, data: &[u8]) {
    let Some(conn) = ctx.conns.get_mut(id) else {
        return;
    };
    if conn.input.is_empty() {
        // The common case: no leftovers, so the handler reads straight from the scratch
        // buffer and nothing is copied.
        let used = h.data(ctx, id, data).min(data.len());
        if used < data.len() {
            if let Some(conn) = ctx.conns.get_mut(id) {
                conn.input.extend_from_slice(&data[used..]);
            }
        }
    } else {
        conn.input.extend_from_slice(data);
        let mut input = std::mem::take(&mut conn.input);
        let used = h.data(ctx, id, &input).min(input.len());
        input.drain(..used);
        if let Some(conn) = ctx.conns.get_mut(id) {
            conn.input = input;
        }
    }
    let max = ctx.config.max_inbound;
    if let Some(conn) = ctx.conns.get_mut(id) {
        if conn.input.len() > max {
            ctx.close_now(id, CloseReason::InputOverflow);
        } else if conn.input.is_empty() && conn.input.capacity() > KEEP_CAPACITY {
            conn.input.shrink_to(KEEP_CAPACITY);
        }
    }
}
// ANCHOR_END: deliver

// ANCHOR: fire_timers
fn fire_timers<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H) {
    let now = Instant::now();
    while let Some((tid, kind)) = ctx.timers.pop_expired(now) {
        match kind {
            TimerKind::User(v) => h.timer(ctx, tid, v),
            TimerKind::ConnectTimeout(id) => {
                let still = ctx
                    .conns
                    .get(id)
                    .is_some_and(|c| matches!(c.state, State::Connecting { .. }));
                if still {
                    let peer = ctx
                        .conns
                        .get(id)
                        .map(|c| c.peer.to_string())
                        .unwrap_or_default();
                    drop_conn(ctx, id);
                    h.connected(
                        ctx,
                        id,
                        Err(sys::Error::new("connect", peer, Errno::ETIMEDOUT)),
                    );
                }
            }
            TimerKind::AcceptResume(index) => {
                if let Some(Some(l)) = ctx.listeners.get_mut(index) {
                    l.paused = false;
                }
                accept_all(ctx, h, index);
            }
            // The peer has not sent its FIN within the grace: close without waiting.
            TimerKind::CloseGrace(id) => ctx.abort(id),
            TimerKind::StopGrace => {
                for id in ctx.conns.ids() {
                    ctx.mark_closing(id, CloseReason::Stopped, false);
                }
            }
        }
    }
}
// ANCHOR_END: fire_timers

// ANCHOR: flush_dirty
fn flush_dirty<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H) {
    // A `drained` callback may queue more; a few rounds cover that without looping for ever.
    for _ in 0..8 {
        if ctx.dirty.is_empty() {
            return;
        }
        let mut dirty = std::mem::take(&mut ctx.dirty);
        for &id in &dirty {
            if ctx.flush(id) {
                h.drained(ctx, id);
            }
        }
        // Keep the list's allocation; `drained` may have queued new entries meanwhile.
        dirty.clear();
        dirty.append(&mut ctx.dirty);
        ctx.dirty = dirty;
    }
}
// ANCHOR_END: flush_dirty

// ANCHOR: close_marked
fn close_marked<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H) {
    while let Some(id) = ctx.closing.pop() {
        let ready = ctx.conns.get(id).and_then(|c| {
            let (reason, flush) = c.closing.clone()?;
            (!flush || c.pending() == 0).then_some(reason)
        });
        let Some(reason) = ready else {
            continue;
        };
        // A graceful close of a connection whose peer has not finished: send FIN first and
        // wait (bounded) for the peer's FIN, reading and dropping, instead of closing at once.
        let linger = ctx.conns.get_mut(id).and_then(|c| {
            let graceful = matches!(c.closing, Some((_, true)))
                || matches!(c.closing, Some((CloseReason::Stopped, _)));
            let start = graceful
                && !c.lingering
                && !c.read_closed
                && !matches!(reason, CloseReason::Error(_));
            start.then(|| {
                c.lingering = true;
                sys::shutdown(&c.fd, std::net::Shutdown::Write).is_ok()
            })
        });
        if linger == Some(true) {
            let grace = ctx.config.stop_grace.min(Duration::from_secs(2));
            ctx.timers
                .insert(Instant::now() + grace, TimerKind::CloseGrace(id));
            ctx.read_later(id); // bytes may be waiting already: no new edge
            continue;
        }
        if let Some(conn) = drop_conn(ctx, id) {
            ctx.stats.closed += 1;
            drop(conn); // close(2), traced
            h.closed(ctx, id, reason);
        }
    }
}
// ANCHOR_END: close_marked
