//! SIGPIPE: the signal the kernel sends to a process that writes to a connection the peer has
//! closed. Its default action kills the process, which is why Rust's runtime sets it to
//! "ignore" before `main` runs, and why `send(..., MSG_NOSIGNAL)` exists (lesson 07).
//!
//! These calls are not socket calls and are not part of the self-trace.

use std::sync::atomic::{AtomicUsize, Ordering};

/// What this process does when SIGPIPE arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// `SIG_DFL`: the process dies.
    Default,
    /// `SIG_IGN`: nothing happens; the write returns EPIPE.
    Ignore,
    /// A handler function runs.
    Handler,
}

impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Disposition::Default => "SIG_DFL (the process dies)",
            Disposition::Ignore => "SIG_IGN (ignored: writes return EPIPE instead)",
            Disposition::Handler => "a handler function",
        })
    }
}

/// Asks the kernel (with `sigaction(2)`, changing nothing) what SIGPIPE does right now.
pub fn sigpipe_disposition() -> Disposition {
    // SAFETY: a zeroed sigaction is a valid out-parameter, and a null new-action pointer makes
    // this a pure query.
    let old = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old);
        old
    };
    match old.sa_sigaction {
        libc::SIG_DFL => Disposition::Default,
        libc::SIG_IGN => Disposition::Ignore,
        _ => Disposition::Handler,
    }
}

/// What a signal handler must do first and last: save `errno`, and put it back.
///
/// A handler runs between any two instructions of the thread it interrupts, maybe between
/// a failed `read` and the code that looks at its `errno`. A handler that calls anything
/// that can fail (the `write` of the self-pipe, below) would overwrite that `errno`, and the
/// interrupted code would see the handler's error instead of its own: an EAGAIN turned into
/// EBADF, say. So every handler here runs inside this guard (`signal-safety(7)` asks for
/// the same).
struct SavedErrno(libc::c_int);

impl SavedErrno {
    fn save() -> SavedErrno {
        // SAFETY: `__errno_location` returns a valid pointer to this thread's errno for the
        // life of the thread; reading it is async-signal-safe (a plain load).
        SavedErrno(unsafe { *libc::__errno_location() })
    }
}

impl Drop for SavedErrno {
    fn drop(&mut self) {
        // SAFETY: as in `save`: the pointer is this thread's errno, and the handler runs on
        // the thread it interrupted, so this restores exactly what that code had.
        unsafe { *libc::__errno_location() = self.0 }
    }
}

static SIGPIPES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_sigpipe(_: libc::c_int) {
    let _errno = SavedErrno::save();
    // Only an atomic add: async-signal-safe, and it cannot set errno; the guard keeps this
    // handler right if it ever does more.
    SIGPIPES.fetch_add(1, Ordering::Relaxed);
}

/// Installs a handler that only counts SIGPIPEs, so a lesson can show when one was sent.
pub fn count_sigpipes() {
    // SAFETY: the handler only touches an atomic, which is async-signal-safe; the sigaction
    // struct is fully initialised before the call.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = count_sigpipe as *const () as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGPIPE, &act, std::ptr::null_mut());
    }
}

/// How many SIGPIPEs arrived since [`count_sigpipes`].
pub fn sigpipes_seen() -> usize {
    SIGPIPES.load(Ordering::Relaxed)
}

/// Puts SIGPIPE back to "ignore", as Rust's runtime left it.
pub fn ignore_sigpipe() {
    // SAFETY: SIG_IGN is a valid disposition and the struct is fully initialised.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_IGN;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGPIPE, &act, std::ptr::null_mut());
    }
}

// --- Stopping on SIGINT/SIGTERM: the self-pipe trick -------------------------------------
//
// A signal handler may only call async-signal-safe functions, so it cannot touch the event
// loop. It writes one byte into a pipe instead; the loop watches the pipe's read end like any
// other descriptor and stops in its own time (lesson 11, "Inside the loop").

static STOP_PIPE_WRITE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_stop_signal(sig: libc::c_int) {
    // The write below sets errno when it fails (EAGAIN on a full pipe); the code this signal
    // interrupted must not see that.
    let _errno = SavedErrno::save();
    let fd = STOP_PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local byte. A full pipe
        // (EAGAIN) only means a stop is already pending, so the result is ignored.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// Creates a non-blocking pipe, makes SIGINT and SIGTERM write the signal number into it, and
/// returns the read end for an event loop to watch. Calling it again returns a new read end
/// and retires the old pipe. It is a std `OwnedFd`, not a traced [`super::Fd`]: the
/// self-trace shows socket calls only.
pub fn stop_signal_pipe() -> super::Result<std::os::fd::OwnedFd> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    super::error::check(rc as isize, "pipe2", || "stop pipe".to_string())?;
    // The write end stays open for the life of the process: the handler may run at any time.
    // An older write end, if any, is leaked on purpose for the same reason.
    STOP_PIPE_WRITE.store(fds[1], Ordering::Relaxed);
    // SAFETY: the handler only loads an atomic and calls write(2), both async-signal-safe; the
    // sigaction struct is fully initialised.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_stop_signal as *const () as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGINT, &act, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &act, std::ptr::null_mut());
    }
    // SAFETY: pipe2 just created fds[0] and nothing else owns it.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) })
}

/// Empties the stop pipe (not a socket: no trace line). Returns the last signal number read,
/// if any.
pub fn drain_stop_pipe(fd: &impl std::os::fd::AsRawFd) -> Option<i32> {
    let mut last = None;
    let mut buf = [0u8; 16];
    loop {
        // SAFETY: `buf` is valid for writes of its length for the whole call.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return last;
        }
        last = Some(i32::from(buf[n as usize - 1]));
    }
}

/// `kill(pid, SIGTERM)`: asks a process (a child this program started, by its pid) to stop;
/// a server that called [`stop_signal_pipe`] stops gracefully. Not a socket call: no trace line.
pub fn terminate(pid: u32) -> super::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| super::Error::new("kill", pid.to_string(), super::Errno::ESRCH))?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    super::error::check(rc as isize, "kill", || format!("{pid}, SIGTERM")).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno() -> libc::c_int {
        // SAFETY: this thread's errno, read on this thread.
        unsafe { *libc::__errno_location() }
    }

    fn set_errno(value: libc::c_int) {
        // SAFETY: this thread's errno, written on this thread.
        unsafe { *libc::__errno_location() = value }
    }

    /// The handlers are called directly, as the kernel would call them, between a failed call
    /// and the code that reads its errno. The stop handler's own write fails on purpose (a
    /// full pipe: EAGAIN; a descriptor that cannot exist: EBADF), and errno must come out as
    /// it went in. No lib test installs the stop pipe, so borrowing `STOP_PIPE_WRITE` here
    /// disturbs nothing; it is put back at the end.
    #[test]
    fn the_handlers_leave_errno_as_they_found_it() {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(rc, 0, "pipe2");
        let [read_end, write_end] = fds;
        let old = STOP_PIPE_WRITE.swap(write_end, Ordering::Relaxed);
        let sentinel = libc::EINTR; // what an interrupted call might have left

        // A pipe with room: the handler writes its byte, errno untouched.
        set_errno(sentinel);
        on_stop_signal(libc::SIGTERM);
        assert_eq!(errno(), sentinel, "after a successful write");
        let mut byte = 0u8;
        // SAFETY: `byte` is a live local of the length given.
        let n = unsafe { libc::read(read_end, (&mut byte as *mut u8).cast(), 1) };
        assert_eq!(
            (n, i32::from(byte)),
            (1, libc::SIGTERM),
            "the handler wrote"
        );

        // A full pipe: the handler's write fails with EAGAIN.
        // SAFETY: the buffer is a live local of the length given; the pipe is non-blocking.
        while unsafe { libc::write(write_end, [0u8; 512].as_ptr().cast(), 512) } > 0 {}
        set_errno(sentinel);
        on_stop_signal(libc::SIGTERM);
        assert_eq!(errno(), sentinel, "after a write that failed with EAGAIN");
        // The same write, outside the handler, does set errno: the check above means something.
        // SAFETY: as above.
        unsafe { libc::write(write_end, (&byte as *const u8).cast(), 1) };
        assert_eq!(errno(), libc::EAGAIN);

        // A descriptor past any limit: EBADF, and never someone else's open file.
        STOP_PIPE_WRITE.store(libc::c_int::MAX, Ordering::Relaxed);
        set_errno(sentinel);
        on_stop_signal(libc::SIGINT);
        assert_eq!(errno(), sentinel, "after a write that failed with EBADF");

        STOP_PIPE_WRITE.store(old, Ordering::Relaxed);
        // SAFETY: both ends were created above and are closed once.
        unsafe {
            libc::close(read_end);
            libc::close(write_end);
        }

        set_errno(sentinel);
        count_sigpipe(libc::SIGPIPE);
        assert_eq!(errno(), sentinel, "the SIGPIPE counter");
    }
}
