//! Errors that name the syscall, the argument that matters, the errno and what to do.
//!
//! A failing syscall gives back only a number in `errno`. By the time that number reaches a
//! person it should have grown into a sentence:
//!
//! ```text
//! bind(127.0.0.1:7000): EADDRINUSE: another socket holds this address (see lesson 06)
//! ```

use std::fmt;
use std::io;

pub use nix::errno::Errno;

/// What every wrapper in [`crate::sys`] returns.
pub type Result<T> = std::result::Result<T, Error>;

/// A failed syscall: which one, on what, and the errno the kernel gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    syscall: &'static str,
    arg: Arg,
    errno: Errno,
}

/// The argument an error names. A descriptor is kept as a number and formatted only when
/// the error is shown: EAGAIN ends every drain of the event loop, and building a string
/// each time would allocate on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    Fd(std::os::fd::RawFd),
    Text(String),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Fd(fd) => write!(f, "fd {fd}"),
            Arg::Text(t) => f.write_str(t),
        }
    }
}

impl Error {
    /// `arg` is the argument a person needs to see: an address for `bind`/`connect`,
    /// `fd 4` for calls on a descriptor.
    pub fn new(syscall: &'static str, arg: impl Into<String>, errno: Errno) -> Error {
        Error {
            syscall,
            arg: Arg::Text(arg.into()),
            errno,
        }
    }

    /// An error of a call on descriptor `fd` (formatted `fd N` when shown).
    pub(crate) fn on_fd(syscall: &'static str, fd: std::os::fd::RawFd, errno: Errno) -> Error {
        Error {
            syscall,
            arg: Arg::Fd(fd),
            errno,
        }
    }

    pub fn syscall(&self) -> &'static str {
        self.syscall
    }

    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The std classification, so callers can test `kind() == WouldBlock` as with std sockets.
    pub fn kind(&self) -> io::ErrorKind {
        io::Error::from_raw_os_error(self.errno as i32).kind()
    }

    /// The one-line hint shown after the errno name.
    pub fn hint(&self) -> &'static str {
        hint(self.syscall, self.errno)
    }
}

/// The name the C headers give an errno value: `EADDRINUSE`, `ECONNREFUSED`, ...
pub fn errno_name(errno: Errno) -> String {
    // nix's Debug output for an Errno is exactly its C name.
    format!("{errno:?}")
}

fn hint(syscall: &str, errno: Errno) -> &'static str {
    use Errno::*;
    match (errno, syscall) {
        (EADDRINUSE, _) => "another socket holds this address (see lesson 06)",
        (EACCES, "bind") => "ports below 1024 need root or CAP_NET_BIND_SERVICE; use a port >= 1024",
        (EACCES, _) => "permission denied",
        (ECONNREFUSED, _) => "nobody is listening on that address (see lesson 03)",
        (ECONNRESET, _) => "the peer reset the connection: it closed with unread data or with SO_LINGER 0 (see lesson 07)",
        (EPIPE, _) => "the peer has closed this connection; writing to it is an error (see lesson 07)",
        (EAGAIN, _) => "a non-blocking socket has nothing ready; wait for readiness instead of retrying (see lesson 09)",
        (EINPROGRESS, _) => "a non-blocking connect has started; wait until writable, then read SO_ERROR (see lesson 13)",
        (EALREADY, _) => "a non-blocking connect is already under way on this socket (see lesson 13)",
        (ETIMEDOUT, _) => "the peer did not answer in time; is the host up and the route right?",
        (EMFILE, _) => "this process has run out of file descriptors; raise `ulimit -n` or close some",
        (ENFILE, _) => "the whole system has run out of file descriptors",
        (EADDRNOTAVAIL, _) => "that address is not on this machine (or no ephemeral port is free)",
        (ENOTCONN, _) => "this socket is not connected",
        (EISCONN, _) => "this socket is already connected",
        (EBADF, _) => "not an open file descriptor (closed twice?)",
        (ENOTSOCK, _) => "that descriptor is not a socket",
        (EINVAL, "listen") => "the socket is already connected, or not bound to a stream address",
        (EINVAL, "accept4") => "the socket is not listening: call listen() first",
        (EINVAL, _) => "an argument is invalid for this socket in its current state",
        (EINTR, _) => "a signal interrupted the call before it finished",
        (ENETUNREACH, _) => "no route to that network",
        (EHOSTUNREACH, _) => "no route to that host",
        (EAFNOSUPPORT, _) => "this address family is not supported here (is IPv6 disabled?)",
        (ENOBUFS, _) | (ENOMEM, _) => "the kernel is out of memory for socket buffers",
        (ECONNABORTED, _) => "the peer reset the connection while it waited to be accepted",
        (EPROTO, "accept4") => "a protocol error on the new connection; it is lost, the next may be fine",
        (EPERM, "accept4") => "a firewall rule or security module refused the connection",
        _ => "see the man page of this syscall, section ERRORS",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({}): {}: {}",
            self.syscall,
            self.arg,
            errno_name(self.errno),
            self.hint()
        )
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    /// Keeps the kind (so `WouldBlock` stays `WouldBlock`) and the whole message.
    fn from(e: Error) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

/// The errno behind an `io::Error`, whether it came from std or from [`Error`].
pub fn errno_of(e: &io::Error) -> Option<Errno> {
    if let Some(code) = e.raw_os_error() {
        return Some(Errno::from_raw(code));
    }
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
        .map(Error::errno)
}

/// Turns a C return value into a `Result`, reading `errno` before anything can change it.
pub(super) fn check(
    rc: isize,
    syscall: &'static str,
    arg: impl FnOnce() -> String,
) -> Result<usize> {
    if rc < 0 {
        let errno = Errno::last();
        Err(Error::new(syscall, arg(), errno))
    } else {
        Ok(rc as usize)
    }
}

/// [`check`] for a call on descriptor `fd`: no string is built, even on error.
pub(super) fn check_fd(rc: isize, syscall: &'static str, fd: std::os::fd::RawFd) -> Result<usize> {
    if rc < 0 {
        Err(Error::on_fd(syscall, fd, Errno::last()))
    } else {
        Ok(rc as usize)
    }
}

/// The result column of the trace line for `res`: `ok` of the value, or `-1 ERRNO (...)`.
pub(super) fn ret<T>(res: &Result<T>, ok: impl FnOnce(&T) -> String) -> String {
    match res {
        Ok(v) => ok(v),
        Err(e) => super::trace::err(e.errno()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_syscall_arg_errno_and_hint() {
        let e = Error::new("bind", "127.0.0.1:7000", Errno::EADDRINUSE);
        assert_eq!(
            e.to_string(),
            "bind(127.0.0.1:7000): EADDRINUSE: another socket holds this address (see lesson 06)"
        );
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn io_error_keeps_kind_and_errno() {
        let e: io::Error = Error::new("read", "fd 4", Errno::EAGAIN).into();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(errno_of(&e), Some(Errno::EAGAIN));
        assert!(e.to_string().starts_with("read(fd 4): EAGAIN: "));
    }

    #[test]
    fn every_required_errno_has_its_own_hint() {
        use Errno::*;
        let generic = hint("read", ENOSYS);
        for errno in [
            EADDRINUSE,
            EACCES,
            ECONNREFUSED,
            ECONNRESET,
            EPIPE,
            EAGAIN,
            EINPROGRESS,
            ETIMEDOUT,
            EMFILE,
        ] {
            assert_ne!(hint("connect", errno), generic, "{errno:?}");
        }
    }
}
