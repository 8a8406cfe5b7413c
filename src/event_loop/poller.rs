//! mio's registry calls and `poll`, each printing the `epoll_ctl`/`epoll_wait` line the
//! kernel sees when the self-trace is on.
//!
//! mio does the syscalls; this file only watches them go by. What mio asks for is fixed by
//! its source (src/sys/unix/selector/epoll.rs): every registration is edge-triggered
//! (`EPOLLET`), readable interest is `EPOLLIN|EPOLLRDHUP`, writable is `EPOLLOUT`, the token
//! goes into `data`, and a deregistration passes a null event.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::sys::trace;

fn epoll_bits(interest: Interest) -> u32 {
    let mut bits = libc::EPOLLET as u32;
    if interest.is_readable() {
        bits |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
    }
    if interest.is_writable() {
        bits |= libc::EPOLLOUT as u32;
    }
    bits
}

fn result_text(res: &io::Result<()>) -> String {
    match res {
        Ok(()) => "0".into(),
        Err(e) => trace::err(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))),
    }
}

fn ctl_line(
    poll: &Poll,
    op: &str,
    fd: RawFd,
    event: Option<(Token, Interest)>,
    res: &io::Result<()>,
) {
    if !trace::enabled() {
        return;
    }
    let ev = match event {
        Some((token, interest)) => epoll_event(epoll_bits(interest), token),
        None => "NULL".into(),
    };
    trace::line(
        &format!("epoll_ctl({}, {op}, {fd}, {ev})", poll.as_raw_fd()),
        &result_text(res),
    );
}

/// `epoll_ctl(EPOLL_CTL_ADD)`: start watching `fd`.
pub(crate) fn register(poll: &Poll, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
    let res = poll
        .registry()
        .register(&mut SourceFd(&fd), token, interest);
    ctl_line(poll, "EPOLL_CTL_ADD", fd, Some((token, interest)), &res);
    res
}

/// `epoll_ctl(EPOLL_CTL_MOD)`: change what we watch `fd` for (and re-arm the edge).
pub(crate) fn reregister(
    poll: &Poll,
    fd: RawFd,
    token: Token,
    interest: Interest,
) -> io::Result<()> {
    let res = poll
        .registry()
        .reregister(&mut SourceFd(&fd), token, interest);
    ctl_line(poll, "EPOLL_CTL_MOD", fd, Some((token, interest)), &res);
    res
}

/// `epoll_ctl(EPOLL_CTL_DEL)`: stop watching `fd` (before closing it).
pub(crate) fn deregister(poll: &Poll, fd: RawFd) -> io::Result<()> {
    let res = poll.registry().deregister(&mut SourceFd(&fd));
    ctl_line(poll, "EPOLL_CTL_DEL", fd, None, &res);
    res
}

/// `epoll_wait`: sleep until something is ready or `timeout` passes. `Interrupted` is
/// returned as is; the caller retries.
pub(crate) fn wait(
    poll: &mut Poll,
    events: &mut Events,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let res = poll.poll(events, timeout);
    if trace::enabled() {
        // mio rounds a timeout up to whole milliseconds; no timeout is -1.
        let ms = match timeout {
            None => -1i64,
            Some(t) => {
                let ms = t.as_millis() as i64;
                if Duration::from_millis(ms as u64) < t {
                    ms + 1
                } else {
                    ms
                }
            }
        };
        let shown: Vec<String> = events
            .iter()
            .map(|e| epoll_event(trace::epoll_bits(e), e.token()))
            .collect();
        let call = match &res {
            Ok(()) => format!(
                "epoll_wait({}, [{}], {}, {ms})",
                poll.as_raw_fd(),
                shown.join(", "),
                events.capacity()
            ),
            Err(_) => format!(
                "epoll_wait({}, 0x7ffc0000, {}, {ms})",
                poll.as_raw_fd(),
                events.capacity()
            ),
        };
        let result = match &res {
            Ok(()) => events.iter().count().to_string(),
            Err(e) => trace::err(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))),
        };
        trace::line(&call, &result);
    }
    res
}

/// A `struct epoll_event` as strace prints it: the event bits, then the token in `data`
/// (once as its `u32` member, once as its `u64`).
fn epoll_event(bits: u32, token: Token) -> String {
    format!(
        "{{events={}, data={{u32={}, u64={}}}}}",
        trace::epoll_names(bits),
        token.0 as u32,
        token.0
    )
}
