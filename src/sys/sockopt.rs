//! `setsockopt(2)`, `getsockopt(2)` and `fcntl(2)`: the knobs on a socket.

use super::error::{check, ret, Errno, Result};
use super::fd::Fd;
use super::trace;

/// The integer-valued options socklab uses, with the level they live at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOpt {
    /// `SO_REUSEADDR`: allow binding an address still held by a connection in TIME_WAIT
    /// (lesson 06). On Linux both the old and the new socket must have it set.
    ReuseAddr,
    /// `SO_REUSEPORT`: let several listeners share one port; the kernel spreads connections.
    ReusePort,
    /// `SO_ERROR`: read-only; the pending error of the socket, cleared by reading it
    /// (how a non-blocking connect reports its outcome, lesson 13).
    Error,
    /// `TCP_NODELAY`: turn off Nagle's algorithm, so small writes leave at once (lesson 12).
    NoDelay,
}

impl IntOpt {
    fn raw(self) -> (libc::c_int, libc::c_int) {
        match self {
            IntOpt::ReuseAddr => (libc::SOL_SOCKET, libc::SO_REUSEADDR),
            IntOpt::ReusePort => (libc::SOL_SOCKET, libc::SO_REUSEPORT),
            IntOpt::Error => (libc::SOL_SOCKET, libc::SO_ERROR),
            IntOpt::NoDelay => (libc::IPPROTO_TCP, libc::TCP_NODELAY),
        }
    }

    /// Level and option names as strace prints them.
    fn names(self) -> &'static str {
        match self {
            IntOpt::ReuseAddr => "SOL_SOCKET, SO_REUSEADDR",
            IntOpt::ReusePort => "SOL_SOCKET, SO_REUSEPORT",
            IntOpt::Error => "SOL_SOCKET, SO_ERROR",
            IntOpt::NoDelay => "SOL_TCP, TCP_NODELAY",
        }
    }

    fn short(self) -> &'static str {
        match self {
            IntOpt::ReuseAddr => "SO_REUSEADDR",
            IntOpt::ReusePort => "SO_REUSEPORT",
            IntOpt::Error => "SO_ERROR",
            IntOpt::NoDelay => "TCP_NODELAY",
        }
    }
}

const INT_LEN: libc::socklen_t = std::mem::size_of::<libc::c_int>() as libc::socklen_t;

/// [`check`] for the calls here, which return 0 or -1.
fn check_rc(rc: libc::c_int, syscall: &'static str, arg: impl FnOnce() -> String) -> Result<()> {
    check(rc as isize, syscall, arg).map(drop)
}

/// `setsockopt(2)` for an integer option (booleans are 0 or 1).
pub fn setsockopt(fd: &Fd, opt: IntOpt, value: i32) -> Result<()> {
    let (level, name) = opt.raw();
    let v: libc::c_int = value;
    // SAFETY: we pass a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.raw(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            INT_LEN,
        )
    };
    let res = check_rc(rc, "setsockopt", || {
        format!("fd {}, {}", fd.raw(), opt.short())
    });
    if trace::enabled() {
        trace::line(
            &format!(
                "setsockopt({}, {}, [{value}], {INT_LEN})",
                fd.raw(),
                opt.names()
            ),
            &ret(&res, |_| trace::ok(0)),
        );
    }
    res
}

/// `getsockopt(2)` for an integer option.
pub fn getsockopt(fd: &Fd, opt: IntOpt) -> Result<i32> {
    let (level, name) = opt.raw();
    let mut v: libc::c_int = 0;
    let mut len = INT_LEN;
    // SAFETY: we pass a pointer to a live c_int and its size; the kernel writes at most that.
    let rc = unsafe {
        libc::getsockopt(
            fd.raw(),
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    let res = check_rc(rc, "getsockopt", || {
        format!("fd {}, {}", fd.raw(), opt.short())
    });
    if trace::enabled() {
        // strace shows SO_ERROR's value as an errno name.
        let shown = if opt == IntOpt::Error && v != 0 {
            format!("{:?}", Errno::from_raw(v))
        } else {
            v.to_string()
        };
        trace::line(
            &format!(
                "getsockopt({}, {}, [{shown}], [{len}])",
                fd.raw(),
                opt.names()
            ),
            &ret(&res, |_| trace::ok(0)),
        );
    }
    res.map(|()| v)
}

/// `SO_ERROR` read through [`getsockopt`]: `None` when the socket has no pending error.
pub fn take_error(fd: &Fd) -> Result<Option<Errno>> {
    let v = getsockopt(fd, IntOpt::Error)?;
    Ok((v != 0).then(|| Errno::from_raw(v)))
}

/// `setsockopt(2)` for `SO_LINGER`. `Some(0)` is the interesting case: `close` then throws
/// away unsent data and sends RST instead of FIN (lesson 07). `None` restores the default.
pub fn set_linger(fd: &Fd, seconds: Option<u32>) -> Result<()> {
    let l = libc::linger {
        l_onoff: seconds.is_some() as libc::c_int,
        l_linger: seconds.unwrap_or(0) as libc::c_int,
    };
    let len = std::mem::size_of::<libc::linger>() as libc::socklen_t;
    // SAFETY: we pass a pointer to a live `linger` and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.raw(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            len,
        )
    };
    let res = check_rc(rc, "setsockopt", || format!("fd {}, SO_LINGER", fd.raw()));
    if trace::enabled() {
        trace::line(
            &format!(
                "setsockopt({}, SOL_SOCKET, SO_LINGER, {{l_onoff={}, l_linger={}}}, {len})",
                fd.raw(),
                l.l_onoff,
                l.l_linger
            ),
            &ret(&res, |_| trace::ok(0)),
        );
    }
    res
}

/// `getsockopt(2)` for `SO_LINGER`: `Some(seconds)` when lingering is on.
pub fn get_linger(fd: &Fd) -> Result<Option<u32>> {
    let mut l = libc::linger {
        l_onoff: 0,
        l_linger: 0,
    };
    let mut len = std::mem::size_of::<libc::linger>() as libc::socklen_t;
    // SAFETY: we pass a pointer to a live `linger` and its size; the kernel writes at most that.
    let rc = unsafe {
        libc::getsockopt(
            fd.raw(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&mut l as *mut libc::linger).cast(),
            &mut len,
        )
    };
    let res = check_rc(rc, "getsockopt", || format!("fd {}, SO_LINGER", fd.raw()));
    if trace::enabled() {
        trace::line(
            &format!(
                "getsockopt({}, SOL_SOCKET, SO_LINGER, {{l_onoff={}, l_linger={}}}, [{len}])",
                fd.raw(),
                l.l_onoff,
                l.l_linger
            ),
            &ret(&res, |_| trace::ok(0)),
        );
    }
    res.map(|()| (l.l_onoff != 0).then_some(l.l_linger as u32))
}

/// File status flags as strace prints them (only the ones sockets meet).
fn flag_names(flags: i32) -> String {
    let mut s = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY".to_string(),
        libc::O_WRONLY => "O_WRONLY".to_string(),
        _ => "O_RDWR".to_string(),
    };
    for (bit, name) in [
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
    ] {
        if flags & bit != 0 {
            s.push('|');
            s.push_str(name);
        }
    }
    s
}

/// `fcntl(fd, F_GETFL)`: the file status flags (`O_NONBLOCK` among them).
pub fn fcntl_getfl(fd: &Fd) -> Result<i32> {
    // SAFETY: F_GETFL takes no third argument and only reads kernel state.
    let rc = unsafe { libc::fcntl(fd.raw(), libc::F_GETFL) };
    let res = check_rc(rc, "fcntl", || format!("fd {}, F_GETFL", fd.raw()));
    if trace::enabled() {
        let shown = match &res {
            Ok(()) => format!("{rc:#x} (flags {})", flag_names(rc)),
            Err(e) => trace::err(e.errno()),
        };
        trace::line(&format!("fcntl({}, F_GETFL)", fd.raw()), &shown);
    }
    res.map(|()| rc)
}

/// `fcntl(fd, F_SETFL, flags)`: replaces the file status flags.
pub fn fcntl_setfl(fd: &Fd, flags: i32) -> Result<()> {
    // SAFETY: F_SETFL takes an int argument; no memory is shared.
    let rc = unsafe { libc::fcntl(fd.raw(), libc::F_SETFL, flags) };
    let res = check_rc(rc, "fcntl", || format!("fd {}, F_SETFL", fd.raw()));
    if trace::enabled() {
        trace::line(
            &format!("fcntl({}, F_SETFL, {})", fd.raw(), flag_names(flags)),
            &ret(&res, |_| trace::ok(0)),
        );
    }
    res
}

/// Turns `O_NONBLOCK` on or off: the classic read-modify-write, two `fcntl` calls.
pub fn set_nonblocking(fd: &Fd, on: bool) -> Result<()> {
    let flags = fcntl_getfl(fd)?;
    let wanted = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    fcntl_setfl(fd, wanted)
}
