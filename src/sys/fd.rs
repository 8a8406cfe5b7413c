//! An owned file descriptor whose drop calls `close(2)`, traced like every other call.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use super::error::{check_fd, ret, Result};
use super::trace;

/// An open descriptor this program owns. Dropping it closes it.
///
/// This is what `socket(2)` and `accept4(2)` hand back: a small integer, the lowest free slot
/// in the process's descriptor table. Owning it in a type means it is closed exactly once.
#[derive(Debug)]
pub struct Fd {
    raw: RawFd,
}

impl Fd {
    /// Takes ownership of a descriptor a syscall just returned.
    ///
    /// # Safety
    /// `raw` must be an open descriptor that nothing else owns or will close.
    pub(crate) unsafe fn from_raw(raw: RawFd) -> Fd {
        Fd { raw }
    }

    /// The number the kernel uses for this descriptor.
    pub fn raw(&self) -> RawFd {
        self.raw
    }

    /// `close(2)`: releases the descriptor. On a TCP socket the kernel then sends FIN (or RST
    /// if unread data is waiting, or if `SO_LINGER` is on with a zero timeout).
    ///
    /// Dropping an `Fd` does the same; call this to see the error, if any.
    pub fn close(self) -> Result<()> {
        let raw = self.raw;
        std::mem::forget(self);
        close_raw(raw)
    }
}

fn close_raw(raw: RawFd) -> Result<()> {
    // SAFETY: `raw` was owned by an `Fd` that is gone now (forgotten or being dropped), so
    // this is the one and only close of it.
    let rc = unsafe { libc::close(raw) };
    let result = check_fd(rc as isize, "close", raw).map(drop);
    if trace::enabled() {
        trace::line(&format!("close({raw})"), &ret(&result, |_| trace::ok(0)));
    }
    result
}

impl Drop for Fd {
    fn drop(&mut self) {
        // An error from close(2) cannot be handled in a destructor; `Fd::close` reports it.
        let _ = close_raw(self.raw);
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.raw
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `self.raw` stays open for as long as `self` lives, which bounds the borrow.
        unsafe { BorrowedFd::borrow_raw(self.raw) }
    }
}

impl IntoRawFd for Fd {
    fn into_raw_fd(self) -> RawFd {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }
}

impl From<Fd> for OwnedFd {
    /// Hands the descriptor to std (for example to build a `std::net::TcpStream`).
    /// Its close is then std's, and no longer traced.
    fn from(fd: Fd) -> OwnedFd {
        // SAFETY: `into_raw_fd` gives up ownership, so the OwnedFd is the only owner.
        unsafe { OwnedFd::from_raw_fd(fd.into_raw_fd()) }
    }
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Fd {
        // SAFETY: `into_raw_fd` gives up std's ownership, so this `Fd` is the only owner.
        unsafe { Fd::from_raw(fd.into_raw_fd()) }
    }
}

/// Makes `cmd`'s child start with only stdin, stdout and stderr open: before `exec`, the
/// child calls `close_range(2)` on every descriptor from 3 up.
///
/// A descriptor the parent leaked without `O_CLOEXEC` (a shell, an editor or a test harness
/// may hold one) would otherwise take a number in the child, and every descriptor the child
/// opens after it would be numbered one higher. `socklab trace` and the tests that compare
/// traces with the recorded ones start lessons this way, so the numbers in the book are the
/// ones a learner sees when starting the lesson from a terminal.
pub fn spawn_with_std_fds_only(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed; it makes raw `close_range` / `close` syscalls and touches no memory
    // of the parent's (no allocation, no lock).
    unsafe {
        cmd.pre_exec(|| {
            let done = libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) == 0;
            if !done {
                // Kernels before 5.9 have no close_range: close the usual range one by one.
                for fd in 3..1024 {
                    libc::close(fd);
                }
            }
            Ok(())
        })
    }
}
