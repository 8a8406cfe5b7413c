//! [`EventLoop`] and its turn: wait for readiness, hand each event to the code for its
//! source, fire due timers, flush, close. The phases of a turn that touch many connections
//! (timers, the end-of-turn flush, closing, a graceful stop) are here too; reading and
//! accepting have their own files.

use std::io;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Waker};

use super::accept::accept_all;
use super::classify::interrupted;
use super::config::{FLUSH_ROUNDS, LINGER_GRACE};
use super::conn::State;
use super::ctx::TimerKind;
use super::read::read_ready;
use super::token::{self, Source, SIGNALS, WAKER};
use super::{poller, CloseReason, Config, ConnId, Ctx, Handler, LoopHandle};
use crate::sys::{self, Errno};

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
        let (handle, rx) = LoopHandle::new(Waker::new(poll.registry(), WAKER)?);
        Ok(EventLoop {
            events: Events::with_capacity(config.events_capacity),
            ctx: Ctx::new(poll, config),
            handler,
            rx,
            handle,
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

    /// How long the next [`turn`](Self::turn) may sleep if nothing becomes ready: until the
    /// nearest timer (`None`: no timer), or not at all when work is left over. For code that
    /// waits on several loops at once ([`turn_together`](super::turn_together)).
    pub fn sleep_for(&mut self) -> Option<Duration> {
        if self.ctx.stop_requested && !self.ctx.stop_begun {
            return Some(Duration::ZERO); // the next turn begins the stop
        }
        drop_moot_timers(&mut self.ctx, &self.handler);
        self.ctx.poll_timeout(None)
    }

    /// Hands what was queued from outside the loop (by [`Ctx::send`], say) to the kernel and
    /// closes what was marked, without waiting: what a turn does first.
    pub fn flush_queued(&mut self) {
        flush_dirty(&mut self.ctx, &mut self.handler);
        close_marked(&mut self.ctx, &mut self.handler);
    }

    /// The `epoll` descriptor the loop sleeps in: readable when an event is waiting.
    pub fn poll_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.ctx.poll)
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
        // Work queued since the last turn ended (by code outside the loop, or by a `closed`
        // callback at the end of that turn) goes out before the wait, not after it: waiting
        // first would have to be a zero-timeout `epoll_wait` that finds nothing, a wasted
        // wake-up per such turn.
        flush_dirty(ctx, h);
        close_marked(ctx, h);
        drop_moot_timers(ctx, h);
        let wait = ctx.poll_timeout(timeout);
        match poller::wait(&mut ctx.poll, &mut self.events, wait) {
            Ok(()) => {}
            Err(e) if interrupted(&e) => return Ok(0),
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
            match token::source(event.token()) {
                Source::Waker => {
                    while let Ok(msg) = self.rx.try_recv() {
                        h.message(ctx, msg);
                    }
                }
                Source::Signals => {
                    if let Some(fd) = &ctx.signals {
                        sys::signal::drain_stop_pipe(fd);
                    }
                    ctx.stop_requested = true;
                }
                Source::Listener(index) => accept_all(ctx, h, index),
                Source::Conn(slot) => {
                    let Some(id) = ctx.conns.id_at(slot) else {
                        continue; // closed earlier in this turn
                    };
                    if ctx.conns.get(id).is_some_and(|c| c.is_connecting()) {
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
    for fd in ctx.listeners.take_all() {
        let _ = poller::deregister(&ctx.poll, fd.raw());
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
            ctx.drop_conn(id);
            h.connected(ctx, id, Err(e));
        }
    }
}

/// Timers that no longer matter are dropped before the loop sleeps for them: the loop's own
/// grace and connect deadlines of connections already gone, and the handler's timers it says
/// it no longer wants. A wake-up that would find nothing to do is not asked for.
fn drop_moot_timers<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &H) {
    let conns = &ctx.conns;
    ctx.timers.drop_moot(|kind| match kind {
        TimerKind::User(v) => !h.timer_wanted(v),
        TimerKind::CloseGrace(id) => conns.get(*id).is_none(),
        TimerKind::ConnectTimeout(id) => !conns.get(*id).is_some_and(|c| c.is_connecting()),
        TimerKind::AcceptResume(_) | TimerKind::StopGrace => false,
    });
}

// ANCHOR: fire_timers
fn fire_timers<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H) {
    let now = Instant::now();
    while let Some((tid, kind)) = ctx.timers.pop_expired(now) {
        match kind {
            TimerKind::User(v) => h.timer(ctx, tid, v),
            TimerKind::ConnectTimeout(id) => {
                // Only a connect still under way times out. (A finished one cancelled this
                // timer already; the check is a guard, not the mechanism.)
                let still = ctx.conns.get(id).filter(|c| c.is_connecting());
                if let Some(peer) = still.map(|c| c.peer.to_string()) {
                    ctx.drop_conn(id);
                    h.connected(
                        ctx,
                        id,
                        Err(sys::Error::new("connect", peer, Errno::ETIMEDOUT)),
                    );
                }
            }
            TimerKind::AcceptResume(index) => {
                ctx.listeners.set_paused(index, false);
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
    for _ in 0..FLUSH_ROUNDS {
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
            let grace = ctx.config.stop_grace.min(LINGER_GRACE);
            ctx.timers
                .insert(Instant::now() + grace, TimerKind::CloseGrace(id));
            ctx.read_later(id); // bytes may be waiting already: no new edge
            continue;
        }
        if let Some(conn) = ctx.drop_conn(id) {
            ctx.stats.closed += 1;
            drop(conn); // close(2), traced
            h.closed(ctx, id, reason);
        }
    }
}
// ANCHOR_END: close_marked
