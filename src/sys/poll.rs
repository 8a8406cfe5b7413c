//! `poll(2)`: wait until one of several descriptors is ready (lesson 10).

use std::os::fd::AsRawFd;

use super::error::{check, Result};
use super::trace;

/// Readiness bits for [`PollFd`], combined with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollFlags(libc::c_short);

impl PollFlags {
    /// Data to read (or a connection to accept, or end of file). Lesson 10 asks for nothing
    /// else; `revents` may also say POLLERR, POLLHUP or POLLNVAL, which the trace names.
    pub const IN: PollFlags = PollFlags(libc::POLLIN);

    pub fn contains(self, other: PollFlags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn names(self) -> String {
        trace::flag_names(
            i64::from(self.0),
            &[
                (libc::POLLIN.into(), "POLLIN"),
                (libc::POLLPRI.into(), "POLLPRI"),
                (libc::POLLOUT.into(), "POLLOUT"),
                (libc::POLLERR.into(), "POLLERR"),
                (libc::POLLHUP.into(), "POLLHUP"),
                (libc::POLLNVAL.into(), "POLLNVAL"),
                (libc::POLLRDHUP.into(), "POLLRDHUP"),
            ],
        )
    }
}

/// One entry of the array `poll(2)` takes: a descriptor, what we wait for, what happened.
#[derive(Debug, Clone, Copy)]
#[repr(transparent)]
pub struct PollFd(libc::pollfd);

impl PollFd {
    pub fn new(fd: &impl AsRawFd, events: PollFlags) -> PollFd {
        PollFd(libc::pollfd {
            fd: fd.as_raw_fd(),
            events: events.0,
            revents: 0,
        })
    }

    /// What the last `poll` reported for this descriptor.
    pub fn revents(&self) -> PollFlags {
        PollFlags(self.0.revents)
    }
}

/// `poll(2)`: sleeps until at least one descriptor in `fds` is ready, or `timeout_ms` passes
/// (-1: no timeout; 0: just look). Returns how many entries have `revents` set; the kernel
/// scans the whole array on every call, which is why it slows down with many descriptors.
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> Result<usize> {
    // SAFETY: `PollFd` is repr(transparent) over `libc::pollfd`, so the slice is a valid
    // array of `fds.len()` pollfd structs for the kernel to read and update.
    let rc = unsafe {
        libc::poll(
            fds.as_mut_ptr().cast(),
            fds.len() as libc::nfds_t,
            timeout_ms,
        )
    };
    let res = check(rc as isize, "poll", || format!("{} fds", fds.len()));
    if trace::enabled() {
        let asked: Vec<String> = fds
            .iter()
            .map(|p| {
                format!(
                    "{{fd={}, events={}}}",
                    p.0.fd,
                    PollFlags(p.0.events).names()
                )
            })
            .collect();
        let call = format!("poll([{}], {}, {timeout_ms})", asked.join(", "), fds.len());
        let result = match &res {
            Ok(0) => "0 (Timeout)".to_string(),
            Ok(n) => {
                let got: Vec<String> = fds
                    .iter()
                    .filter(|p| p.0.revents != 0)
                    .map(|p| {
                        format!(
                            "{{fd={}, revents={}}}",
                            p.0.fd,
                            PollFlags(p.0.revents).names()
                        )
                    })
                    .collect();
                format!("{n} ([{}])", got.join(", "))
            }
            Err(e) => trace::err(e.errno()),
        };
        trace::line(&call, &result);
    }
    res
}
