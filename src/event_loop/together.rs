//! Several loops in one thread: what the demos of lessons 15 to 17 do to play a server and
//! its clients in one process, each on a loop of its own.
//!
//! Turning them in turn, each with a short timeout, spins: every loop wakes every few
//! milliseconds to find nothing, and the trace fills with `epoll_wait(..., [], 1024, 2) = 0`.
//! Instead, [`turn_together`] sleeps once for all of them. An `epoll` descriptor is itself
//! readable while an event waits in it, so one `poll(2)` over the loops' descriptors (with
//! the nearest timer of any loop as its timeout) wakes exactly when one of them has work;
//! then only the loops that have work turn, without sleeping again.
//!
//! A real program gives each loop a thread of its own and needs none of this; the demos stay
//! in one thread so that their traces read in order.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::{EventLoop, Handler};
use crate::sys::{self, PollFd, PollFlags};

/// What [`turn_together`] needs from a loop. [`EventLoop`] has it, and so do the event
/// layer's `Server` and `Client`.
pub trait Turn {
    /// The `epoll` descriptor the loop sleeps in.
    fn poll_fd(&self) -> RawFd;
    /// Hands output queued from outside the loop to the kernel, without waiting.
    fn flush_queued(&mut self);
    /// How long the loop may sleep: until its nearest timer, or not at all.
    fn sleep_for(&mut self) -> Option<Duration>;
    /// One turn of the loop.
    fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize>;
}

impl<H: Handler> Turn for EventLoop<H> {
    fn poll_fd(&self) -> RawFd {
        EventLoop::poll_fd(self)
    }
    fn flush_queued(&mut self) {
        EventLoop::flush_queued(self)
    }
    fn sleep_for(&mut self) -> Option<Duration> {
        EventLoop::sleep_for(self)
    }
    fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        EventLoop::turn(self, timeout)
    }
}

/// A raw descriptor as [`PollFd`] wants it.
struct Raw(RawFd);

impl std::os::fd::AsRawFd for Raw {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

// ANCHOR: turn_together
/// Sleeps until one of `loops` has something to do (an event, or a timer due), at most until
/// `until`, then turns each loop that has. Returns how many events the turns handled
/// (0 when `until` came first).
pub fn turn_together(loops: &mut [&mut dyn Turn], until: Instant) -> io::Result<usize> {
    for l in loops.iter_mut() {
        l.flush_queued();
    }
    // The nearest thing any loop waits for, rounded up to whole milliseconds (as mio does)
    // so that the wake-up does not come a fraction of a millisecond early.
    let mut sleep = until.saturating_duration_since(Instant::now());
    for l in loops.iter_mut() {
        if let Some(t) = l.sleep_for() {
            sleep = sleep.min(t);
        }
    }
    let ms = sleep.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    let mut fds: Vec<PollFd> = loops
        .iter()
        .map(|l| PollFd::new(&Raw(l.poll_fd()), PollFlags::IN))
        .collect();
    match sys::poll(&mut fds, ms) {
        Ok(_) => {}
        Err(e) if e.errno() == sys::Errno::EINTR => {}
        Err(e) => return Err(e.into()),
    }
    let mut events = 0;
    for (l, fd) in loops.iter_mut().zip(&fds) {
        let due = l.sleep_for() == Some(Duration::ZERO);
        if due || !fd.revents().is_empty() {
            events += l.turn(Some(Duration::ZERO))?;
        }
    }
    Ok(events)
}
// ANCHOR_END: turn_together

/// Turns `loops` together until `done` says so or `limit` passes; returns whether `done` did.
pub fn turn_together_until(
    loops: &mut [&mut dyn Turn],
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> io::Result<bool> {
    let until = Instant::now() + limit;
    while !done() {
        if Instant::now() >= until {
            return Ok(false);
        }
        turn_together(loops, until)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_loop::echo::Echo;
    use crate::event_loop::{Config, ConnId, Ctx};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Keeps what arrives.
    struct Keep(Rc<RefCell<Vec<u8>>>);

    impl Handler for Keep {
        type Timer = ();
        type Message = ();
        fn data(&mut self, _: &mut Ctx<()>, _: ConnId, bytes: &[u8]) -> usize {
            self.0.borrow_mut().extend_from_slice(bytes);
            bytes.len()
        }
    }

    /// Two loops in one thread, a client and an echo server: the echo comes back, and no
    /// turn of either loop woke up to find nothing (there are no timers here, so every turn
    /// must have had an event). Turning them in turn with a short timeout fails this.
    #[test]
    fn loops_turned_together_wake_only_for_work() {
        let mut server = EventLoop::new(Echo::default(), Config::default()).expect("a loop");
        let addr = server
            .ctx()
            .listen("127.0.0.1:0".parse().expect("an address"))
            .expect("listening");
        let got = Rc::new(RefCell::new(Vec::new()));
        let mut client = EventLoop::new(Keep(got.clone()), Config::default()).expect("a loop");
        let id = client.ctx().connect(addr, None).expect("connecting");
        client
            .ctx()
            .send(id, b"ping")
            .expect("queued while connecting");
        let done = turn_together_until(
            &mut [&mut server, &mut client],
            Duration::from_secs(5),
            || got.borrow().as_slice() == b"ping",
        )
        .expect("the loops turn");
        assert!(done, "the echo came back: {:?}", got.borrow());
        for stats in [server.ctx().stats(), client.ctx().stats()] {
            assert!(stats.turns > 0);
            assert!(
                stats.events >= stats.turns,
                "a turn found nothing: {} turns, {} events",
                stats.turns,
                stats.events
            );
        }
    }
}
