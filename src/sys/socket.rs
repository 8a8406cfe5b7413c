//! The socket syscalls, one function each, as close to 1:1 as Rust allows.
//!
//! No function here retries, loops or hides a call: what you call is what the kernel sees,
//! and what `strace` shows. The loops (write-all, read-to-end) live one layer up in
//! [`crate::blocking`], where a lesson can point at them.

use std::net::{Shutdown, SocketAddr};
use std::os::fd::RawFd;

use socket2::SockAddr;

use super::error::{check, check_fd, ret, Errno, Error, Result};
use super::fd::Fd;
use super::trace;

/// The address family of a socket: IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    /// The family that can reach `addr`.
    pub fn of(addr: &SocketAddr) -> Family {
        match addr {
            SocketAddr::V4(_) => Family::Inet,
            SocketAddr::V6(_) => Family::Inet6,
        }
    }

    fn raw(self) -> libc::c_int {
        match self {
            Family::Inet => libc::AF_INET,
            Family::Inet6 => libc::AF_INET6,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Inet => "AF_INET",
            Family::Inet6 => "AF_INET6",
        }
    }
}

/// Flags for [`send`] and [`recv`], combined with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsgFlags(libc::c_int);

impl MsgFlags {
    /// Do not block for this one call, whatever `O_NONBLOCK` says.
    pub const DONTWAIT: MsgFlags = MsgFlags(libc::MSG_DONTWAIT);
    /// Do not raise SIGPIPE when the peer has gone; just return EPIPE.
    pub const NOSIGNAL: MsgFlags = MsgFlags(libc::MSG_NOSIGNAL);

    fn names(self) -> String {
        trace::flag_names(
            i64::from(self.0),
            &[
                (libc::MSG_DONTWAIT.into(), "MSG_DONTWAIT"),
                (libc::MSG_NOSIGNAL.into(), "MSG_NOSIGNAL"),
            ],
        )
    }
}

/// `socket(2)`: asks the kernel for a new TCP endpoint and returns its descriptor.
///
/// The socket exists only inside the kernel: no address, no packets yet. `SOCK_CLOEXEC` is
/// always set so the descriptor does not leak into programs we might `exec`;
/// `nonblocking` adds `SOCK_NONBLOCK` (lesson 09).
pub fn socket(family: Family, nonblocking: bool) -> Result<Fd> {
    let mut ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    if nonblocking {
        ty |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: plain integers in, a descriptor or -1 out; no memory is shared.
    let rc = unsafe { libc::socket(family.raw(), ty, libc::IPPROTO_TCP) };
    let res = check(rc as isize, "socket", || family.name().to_string());
    if trace::enabled() {
        let flags = if nonblocking {
            "SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK"
        } else {
            "SOCK_STREAM|SOCK_CLOEXEC"
        };
        trace::line(
            &format!("socket({}, {flags}, IPPROTO_TCP)", family.name()),
            &ret(&res, |fd| fd.to_string()),
        );
    }
    // SAFETY: on success the kernel just created this descriptor and nobody else has it.
    res.map(|raw| unsafe { Fd::from_raw(raw as RawFd) })
}

/// `bind(2)`: gives the socket a local address. Port 0 asks the kernel to pick a free port;
/// [`getsockname`] tells which.
pub fn bind(fd: &Fd, addr: &SocketAddr) -> Result<()> {
    let sa = SockAddr::from(*addr);
    // SAFETY: `sa` is a valid sockaddr of `sa.len()` bytes that outlives the call.
    let rc = unsafe { libc::bind(fd.raw(), sa.as_ptr().cast(), sa.len()) };
    let res = check(rc as isize, "bind", || addr.to_string());
    if trace::enabled() {
        trace::line(
            &format!(
                "bind({}, {}, {})",
                fd.raw(),
                trace::sockaddr(addr),
                sa.len()
            ),
            &ret(&res, |_| "0".into()),
        );
    }
    res.map(drop)
}

/// `listen(2)`: turns a bound socket into a listening one. From now on the kernel completes
/// TCP handshakes by itself and queues up to `backlog` connections for [`accept`].
pub fn listen(fd: &Fd, backlog: i32) -> Result<()> {
    // SAFETY: plain integers in and out.
    let rc = unsafe { libc::listen(fd.raw(), backlog) };
    let res = check_fd(rc as isize, "listen", fd.raw());
    if trace::enabled() {
        trace::line(
            &format!("listen({}, {backlog})", fd.raw()),
            &ret(&res, |_| "0".into()),
        );
    }
    res.map(drop)
}

/// `accept4(2)` with `SOCK_CLOEXEC`: takes the oldest finished connection off the listener's
/// queue and returns a new descriptor for it, plus the peer's address. Blocks while the queue
/// is empty, unless the listener is non-blocking (then EAGAIN). `nonblocking` sets
/// `SOCK_NONBLOCK` on the new descriptor.
pub fn accept(fd: &Fd, nonblocking: bool) -> Result<(Fd, SocketAddr)> {
    let mut flags = libc::SOCK_CLOEXEC;
    if nonblocking {
        flags |= libc::SOCK_NONBLOCK;
    }
    let mut ptr_shown = 0usize;
    let begun = trace::begin(|| format!("accept4({}, ", fd.raw()));
    // SAFETY: `try_init` hands us zeroed storage and its length, exactly what accept4 fills.
    let res = unsafe {
        SockAddr::try_init(|storage, len| {
            ptr_shown = storage as usize;
            let rc = libc::accept4(fd.raw(), storage.cast(), len, flags);
            if rc == -1 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(rc)
            }
        })
    };
    let res: Result<(i32, SockAddr)> = res.map_err(|e| {
        Error::on_fd(
            "accept4",
            fd.raw(),
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )
    });
    if trace::enabled() {
        let flag_names = if nonblocking {
            "SOCK_CLOEXEC|SOCK_NONBLOCK"
        } else {
            "SOCK_CLOEXEC"
        };
        let storage = std::mem::size_of::<libc::sockaddr_storage>();
        let call = match &res {
            Ok((_, sa)) => format!(
                "accept4({}, {}, [{storage} => {}], {flag_names})",
                fd.raw(),
                sa.as_socket()
                    .map(|a| trace::sockaddr(&a))
                    .unwrap_or_else(|| "{...}".into()),
                sa.len()
            ),
            Err(_) => format!(
                "accept4({}, {ptr_shown:#x}, [{storage}], {flag_names})",
                fd.raw()
            ),
        };
        trace::finish(begun, &call, &ret(&res, |(raw, _)| raw.to_string()));
    }
    let (raw, sa) = res?;
    // SAFETY: accept4 just created `raw` for us alone.
    let new = unsafe { Fd::from_raw(raw) };
    let peer = sa
        .as_socket()
        .ok_or_else(|| Error::on_fd("accept4", fd.raw(), Errno::EAFNOSUPPORT))?;
    Ok((new, peer))
}

/// `connect(2)`: starts the TCP handshake with `addr`. On a blocking socket it returns once
/// the handshake finished (or failed: ECONNREFUSED, ETIMEDOUT); on a non-blocking one it
/// returns EINPROGRESS at once (lesson 13).
pub fn connect(fd: &Fd, addr: &SocketAddr) -> Result<()> {
    let sa = SockAddr::from(*addr);
    let args = || {
        format!(
            "connect({}, {}, {}",
            fd.raw(),
            trace::sockaddr(addr),
            sa.len()
        )
    };
    let begun = trace::begin(args);
    // SAFETY: `sa` is a valid sockaddr of `sa.len()` bytes that outlives the call.
    let rc = unsafe { libc::connect(fd.raw(), sa.as_ptr().cast(), sa.len()) };
    let res = check(rc as isize, "connect", || addr.to_string());
    if trace::enabled() {
        trace::finish(begun, &format!("{})", args()), &ret(&res, |_| "0".into()));
    }
    res.map(drop)
}

/// `read(2)`: copies up to `buf.len()` bytes from the socket's receive queue. Returns how
/// many: possibly fewer than asked (a short read), and 0 only when the peer has sent FIN
/// and everything before it was read (end of file).
pub fn read(fd: &Fd, buf: &mut [u8]) -> Result<usize> {
    let begun = trace::begin(|| format!("read({}, ", fd.raw()));
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
    let rc = unsafe { libc::read(fd.raw(), buf.as_mut_ptr().cast(), buf.len()) };
    let res = check_fd(rc, "read", fd.raw());
    if trace::enabled() {
        let data = match &res {
            Ok(n) => trace::string(&buf[..*n]),
            Err(_) => format!("{:#x}", buf.as_ptr() as usize),
        };
        trace::finish(
            begun,
            &format!("read({}, {data}, {})", fd.raw(), buf.len()),
            &ret(&res, |n| n.to_string()),
        );
    }
    res
}

/// `write(2)`: copies bytes into the socket's send queue and returns how many it took. On a
/// blocking socket that is usually all of them, but a signal or a non-blocking socket can give
/// a short write: callers loop ([`crate::blocking::write_all`]). Writing to a connection the
/// peer has closed raises SIGPIPE and returns EPIPE.
pub fn write(fd: &Fd, buf: &[u8]) -> Result<usize> {
    let args = || format!("write({}, {}, {}", fd.raw(), trace::string(buf), buf.len());
    let begun = trace::begin(args);
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
    let rc = unsafe { libc::write(fd.raw(), buf.as_ptr().cast(), buf.len()) };
    let res = check_fd(rc, "write", fd.raw());
    if trace::enabled() {
        trace::finish(
            begun,
            &format!("{})", args()),
            &ret(&res, |n| n.to_string()),
        );
    }
    res
}

/// `recv(2)`, which Linux runs as `recvfrom(2)` with no address: [`read`] with flags.
pub fn recv(fd: &Fd, buf: &mut [u8], flags: MsgFlags) -> Result<usize> {
    let begun = trace::begin(|| format!("recvfrom({}, ", fd.raw()));
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; null address pointers are
    // allowed and mean "don't tell me the sender".
    let rc = unsafe {
        libc::recvfrom(
            fd.raw(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags.0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    let res = check_fd(rc, "recvfrom", fd.raw());
    if trace::enabled() {
        let data = match &res {
            Ok(n) => trace::string(&buf[..*n]),
            Err(_) => format!("{:#x}", buf.as_ptr() as usize),
        };
        trace::finish(
            begun,
            &format!(
                "recvfrom({}, {data}, {}, {}, NULL, NULL)",
                fd.raw(),
                buf.len(),
                flags.names()
            ),
            &ret(&res, |n| n.to_string()),
        );
    }
    res
}

/// `send(2)`, which Linux runs as `sendto(2)` with no address: [`write()`] with flags.
/// With [`MsgFlags::NOSIGNAL`] a closed peer gives EPIPE without a SIGPIPE.
pub fn send(fd: &Fd, buf: &[u8], flags: MsgFlags) -> Result<usize> {
    let args = || {
        let (data, len, flags) = (trace::string(buf), buf.len(), flags.names());
        format!("sendto({}, {data}, {len}, {flags}, NULL, 0", fd.raw())
    };
    let begun = trace::begin(args);
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes; a null address with length 0 is
    // what send(2) itself passes.
    let rc = unsafe {
        libc::sendto(
            fd.raw(),
            buf.as_ptr().cast(),
            buf.len(),
            flags.0,
            std::ptr::null(),
            0,
        )
    };
    let res = check_fd(rc, "sendto", fd.raw());
    if trace::enabled() {
        trace::finish(
            begun,
            &format!("{})", args()),
            &ret(&res, |n| n.to_string()),
        );
    }
    res
}

/// `shutdown(2)`: closes one direction of the connection but keeps the descriptor.
/// `Shutdown::Write` sends FIN (the peer reads end of file) while we can still read the reply.
pub fn shutdown(fd: &Fd, how: Shutdown) -> Result<()> {
    let (raw_how, name) = match how {
        Shutdown::Read => (libc::SHUT_RD, "SHUT_RD"),
        Shutdown::Write => (libc::SHUT_WR, "SHUT_WR"),
        Shutdown::Both => (libc::SHUT_RDWR, "SHUT_RDWR"),
    };
    // SAFETY: plain integers in and out.
    let rc = unsafe { libc::shutdown(fd.raw(), raw_how) };
    let res = check_fd(rc as isize, "shutdown", fd.raw());
    if trace::enabled() {
        trace::line(
            &format!("shutdown({}, {name})", fd.raw()),
            &ret(&res, |_| "0".into()),
        );
    }
    res.map(drop)
}

/// `getsockname(2)`: the local address of the socket (how to learn the port after binding
/// to port 0).
pub fn getsockname(fd: &Fd) -> Result<SocketAddr> {
    name_call(fd, "getsockname", libc::getsockname)
}

/// `getpeername(2)`: the address of the other end of a connected socket (ENOTCONN if none).
pub fn getpeername(fd: &Fd) -> Result<SocketAddr> {
    name_call(fd, "getpeername", libc::getpeername)
}

type NameFn =
    unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;

fn name_call(fd: &Fd, syscall: &'static str, call: NameFn) -> Result<SocketAddr> {
    let mut ptr_shown = 0usize;
    // SAFETY: `try_init` hands us zeroed storage and its length, which the call fills.
    let res = unsafe {
        SockAddr::try_init(|storage, len| {
            ptr_shown = storage as usize;
            if call(fd.raw(), storage.cast(), len) == -1 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        })
    };
    let res: Result<SockAddr> = res.map(|(_, sa)| sa).map_err(|e| {
        Error::on_fd(
            syscall,
            fd.raw(),
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )
    });
    if trace::enabled() {
        let storage = std::mem::size_of::<libc::sockaddr_storage>();
        let call = match &res {
            Ok(sa) => format!(
                "{syscall}({}, {}, [{storage} => {}])",
                fd.raw(),
                sa.as_socket()
                    .map(|a| trace::sockaddr(&a))
                    .unwrap_or_else(|| "{...}".into()),
                sa.len()
            ),
            Err(_) => format!("{syscall}({}, {ptr_shown:#x}, [{storage}])", fd.raw()),
        };
        trace::line(&call, &ret(&res, |_| "0".into()));
    }
    let sa = res?;
    sa.as_socket()
        .ok_or_else(|| Error::on_fd(syscall, fd.raw(), Errno::EAFNOSUPPORT))
}
