//! [`Ctx`]: the loop's state as a handler sees it (the poll, the connections, the listeners,
//! the timers, the lists of work for this turn) and everything a handler can ask of it.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use mio::{Interest, Poll};

use super::config::LISTEN_BACKLOG;
use super::conn::{Conn, State};
use super::listener::Listeners;
use super::slab::Slab;
use super::timer::Timers;
use super::token::{conn_token, listener_token};
use super::{poller, CloseReason, Config, ConnId, SendError, Stats, TimerId};
use crate::sys::{self, Errno, Family, Fd, IntOpt};

/// What a timer on the loop's heap is for: the handler's own, or one of the loop's.
pub(super) enum TimerKind<T> {
    /// A handler's timer ([`Ctx::set_timer`]), carrying its value.
    User(T),
    /// A connect still under way by then fails with ETIMEDOUT.
    ConnectTimeout(ConnId),
    /// The end of a listener's pause after `accept4` failed.
    AcceptResume(usize),
    /// The longest a polite close may wait for a flush or for the peer's FIN.
    CloseGrace(ConnId),
    /// The longest a graceful stop may take.
    StopGrace,
}

/// The loop's state, as handlers see it: everything but the poll itself and the handler.
pub struct Ctx<T> {
    pub(super) poll: Poll,
    pub(super) config: Config,
    pub(super) conns: Slab<Conn>,
    pub(super) listeners: Listeners,
    pub(super) timers: Timers<TimerKind<T>>,
    /// Connections with output queued this turn.
    pub(super) dirty: Vec<ConnId>,
    /// Connections that hit `reads_per_event` and still have input in the kernel.
    pub(super) more_to_read: VecDeque<ConnId>,
    /// Connections to close at the end of the turn.
    pub(super) closing: Vec<ConnId>,
    /// The read buffer all connections share.
    pub(super) scratch: Vec<u8>,
    pub(super) stats: Stats,
    pub(super) stop_requested: bool,
    pub(super) stop_begun: bool,
    pub(super) signals: Option<OwnedFd>,
}

impl<T> Ctx<T> {
    pub(super) fn new(poll: Poll, config: Config) -> Ctx<T> {
        Ctx {
            poll,
            scratch: vec![0; config.read_chunk.max(1)],
            config,
            conns: Slab::new(),
            listeners: Listeners::default(),
            timers: Timers::new(),
            dirty: Vec::new(),
            more_to_read: VecDeque::new(),
            closing: Vec::new(),
            stats: Stats::default(),
            stop_requested: false,
            stop_begun: false,
            signals: None,
        }
    }

    /// Starts listening on `addr` (`SO_REUSEADDR`, non-blocking) and returns the real
    /// address. Connections arrive at [`Handler::accepted`](super::Handler::accepted).
    pub fn listen(&mut self, addr: SocketAddr) -> sys::Result<SocketAddr> {
        self.listen_with(addr, false)
    }

    /// [`listen`](Ctx::listen) with `SO_REUSEPORT` set before `bind` too (lesson 23): other
    /// sockets that set it as well, in this process or another of the same user, may listen
    /// on the same address, and the kernel spreads new connections between them.
    pub fn listen_shared(&mut self, addr: SocketAddr) -> sys::Result<SocketAddr> {
        self.listen_with(addr, true)
    }

    fn listen_with(&mut self, addr: SocketAddr, reuse_port: bool) -> sys::Result<SocketAddr> {
        let Some(index) = self.listeners.free_slot() else {
            return Err(sys::Error::new("listen", addr.to_string(), Errno::EMFILE));
        };
        let fd = sys::socket(Family::of(&addr), true)?;
        sys::setsockopt(&fd, IntOpt::ReuseAddr, 1)?;
        if reuse_port {
            sys::setsockopt(&fd, IntOpt::ReusePort, 1)?;
        }
        sys::bind(&fd, &addr)?;
        sys::listen(&fd, LISTEN_BACKLOG)?;
        let local = sys::getsockname(&fd)?;
        poller::register(
            &self.poll,
            fd.raw(),
            listener_token(index),
            Interest::READABLE,
        )
        .map_err(|e| io_to_sys("epoll_ctl", &e))?;
        self.listeners.put(index, fd);
        Ok(local)
    }

    /// Takes a connected (or connecting) socket into the table and watches it: READABLE, and
    /// WRITABLE too while connecting (writable is how a non-blocking connect finishes).
    pub(super) fn add_conn(
        &mut self,
        fd: Fd,
        peer: SocketAddr,
        state: State,
    ) -> io::Result<ConnId> {
        let raw = fd.raw();
        let conn = Conn::new(fd, peer, state);
        let interest = if conn.is_connecting() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let id = self.conns.insert(conn);
        if let Err(e) = poller::register(&self.poll, raw, conn_token(id), interest) {
            self.conns.remove(id);
            return Err(e);
        }
        Ok(id)
    }

    /// Removes a connection: stop watching it, then close it (when the returned `Conn` is
    /// dropped).
    pub(super) fn drop_conn(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.conns.remove(id)?;
        let _ = poller::deregister(&self.poll, conn.fd.raw());
        Some(conn)
    }

    /// Starts a non-blocking connect to `addr`. The outcome arrives at
    /// [`Handler::connected`](super::Handler::connected); with a `timeout`, a connect still
    /// under way by then fails with ETIMEDOUT.
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
        if let Err(full) = conn.output.push(bytes, cap) {
            self.stats.sends_refused += 1;
            return Err(full);
        }
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
    /// [`Config::stop_grace`] later). [`Handler::closed`](super::Handler::closed) follows
    /// with [`CloseReason::Local`].
    pub fn close(&mut self, id: ConnId) {
        self.mark_closing(id, CloseReason::Local, true);
    }

    /// Closes `id` at the end of this turn, dropping anything queued.
    pub fn abort(&mut self, id: ConnId) {
        self.mark_closing(id, CloseReason::Local, false);
    }

    /// Calls [`Handler::timer`](super::Handler::timer) with `value` after `delay`.
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
    /// close every connection. [`EventLoop::run`](super::EventLoop::run) returns once all
    /// are closed.
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
    pub(super) fn read_later(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id) {
            if !std::mem::replace(&mut conn.read_later, true) {
                self.more_to_read.push_back(id);
            }
        }
    }

    pub(super) fn mark_closing(&mut self, id: ConnId, reason: CloseReason, flush: bool) {
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
    pub(super) fn poll_timeout(&mut self, wanted: Option<Duration>) -> Option<Duration> {
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
    pub(super) fn set_interest(&mut self, id: ConnId, writable: bool) {
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

    pub(super) fn fail(&mut self, id: ConnId, err: sys::Error) {
        self.close_now(id, CloseReason::Error(err));
    }

    /// Closes `id` at the end of this turn for `reason`, whatever was queued or asked before.
    pub(super) fn close_now(&mut self, id: ConnId, reason: CloseReason) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.closing = Some((reason, false));
            self.closing.push(id);
        }
    }

    // ANCHOR: flush
    /// Writes what is queued for `id` until done or EAGAIN; returns whether the buffer
    /// emptied after having held bytes.
    pub(super) fn flush(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conns.get_mut(id) else {
            return false;
        };
        conn.dirty = false;
        if conn.is_connecting() || conn.pending() == 0 {
            return false;
        }
        if let Err(e) = conn.output.write_to(&conn.fd, &mut self.stats) {
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
        if emptied && conn.closing.as_ref().is_some_and(|(_, flush)| *flush) {
            self.closing.push(id);
        }
        if resume {
            self.read_later(id);
        }
        self.set_interest(id, !emptied);
        emptied
    }
    // ANCHOR_END: flush
}

/// An error from mio's registry as the loop reports it: the syscall, and `epoll` as its
/// argument.
pub(super) fn io_to_sys(syscall: &'static str, e: &io::Error) -> sys::Error {
    sys::Error::new(syscall, "epoll", sys::errno_of(e).unwrap_or(Errno::EIO))
}
