//! The self-trace: every wrapper in [`crate::sys`] can print one line per call, in strace's
//! own syntax, as the call returns.
//!
//! It exists so a learner can see the syscalls without installing strace, and so the lessons
//! can print them interleaved with their narration. It must be honest: the test
//! `tests/trace.rs` runs every lesson under the real strace and checks that both list the same
//! socket calls with the same results.
//!
//! Lines go to stderr, one `write(2)` per line, so they never mix with the lesson's stdout.
//! The format follows strace 6 without `-yy`: descriptors are bare numbers, strings are
//! escaped and cut at 32 bytes (strace's default `-s 32`), and the `= result` column starts at
//! column 40 when the call is short.
//!
//! # A call that blocks
//!
//! A line is printed when its call returns, because only then are the result and the bytes
//! read known. A call that waits (a `read` on a blocking socket with nothing to read, an
//! `accept4` with no connection queued) would therefore be invisible while it waits, which is
//! exactly when a learner wants to see it. So the calls that may block (`read`, `recvfrom`,
//! `write`, `sendto`, `accept4`, `connect`) are announced to a watchdog thread as they start:
//! if one has not returned after [`BLOCKING_NOTICE`] (200 ms), the watchdog prints what is
//! known of it so far, the way strace shows a call another thread interrupted:
//!
//! ```text
//! read(5,  <unfinished ...>
//! ```
//!
//! and when it does return, the rest of it follows on a line of its own:
//!
//! ```text
//! <... read resumed>"", 4096)              = 0
//! ```
//!
//! A call that returns in time (every call of a recorded demonstration, and every call on a
//! non-blocking socket) prints its one ordinary line, so the recorded traces do not change.
//! The watchdog costs a thread, started the first time the self-trace is on and such a call
//! is made; it makes no socket calls, so it adds nothing to a trace.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::error::{errno_name, Errno};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// strace's default string limit (`-s 32`).
pub const STRING_LIMIT: usize = 32;

/// Turns the self-trace on or off for the whole process.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Turns the self-trace on when `SOCKLAB_TRACE` is set to anything but `0` or the empty string.
pub fn enable_from_env() {
    if let Some(v) = std::env::var_os("SOCKLAB_TRACE") {
        if !v.is_empty() && v != "0" {
            enable(true);
        }
    }
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Prints one finished call. `call` is everything up to the closing parenthesis,
/// `result` what strace prints after `= `.
pub fn line(call: &str, result: &str) {
    let mut text = String::with_capacity(call.len() + result.len() + 8);
    text.push_str(call);
    if call.len() < 40 {
        // strace pads short calls so that the results line up in one column.
        text.extend(std::iter::repeat_n(' ', 40 - call.len()));
        text.push_str("= ");
    } else {
        text.push_str(" = ");
    }
    text.push_str(result);
    text.push('\n');
    // Stderr is unbuffered: this is a single write(2) of the whole line. A failed write to
    // stderr has nowhere to be reported, so it is ignored on purpose.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// How long a call may wait before the self-trace shows it as `<unfinished ...>`.
pub const BLOCKING_NOTICE: Duration = Duration::from_millis(200);

/// A call that may block, announced with [`begin`] and printed with [`finish`].
pub struct Begun {
    id: u64,
    /// What was known when the call started: the start of its line.
    entering: String,
}

/// The calls under way, for the watchdog.
struct Watch {
    next_id: u64,
    /// Id, deadline, the start of the line, and whether it was printed as unfinished.
    pending: Vec<(u64, Instant, String, bool)>,
}

fn watch() -> &'static (Mutex<Watch>, Condvar) {
    static WATCH: OnceLock<(Mutex<Watch>, Condvar)> = OnceLock::new();
    WATCH.get_or_init(|| {
        // Started once, on first use; it lives as long as the process.
        std::thread::spawn(watchdog);
        let w = Watch {
            next_id: 0,
            pending: Vec::new(),
        };
        (Mutex::new(w), Condvar::new())
    })
}

/// Sleeps until the oldest call under way is due to be shown, and shows it if it is still
/// under way then.
fn watchdog() {
    let (lock, cv) = watch();
    // A poisoned lock means a thread panicked while holding it; the trace then stops
    // showing unfinished calls, which is all this thread is for.
    let Ok(mut w) = lock.lock() else { return };
    loop {
        let now = Instant::now();
        for (_, due, entering, shown) in w.pending.iter_mut() {
            if !*shown && *due <= now {
                *shown = true;
                // strace's own spelling: what is known of the arguments, a space, the tag.
                let text = format!("{}\n", unfinished(entering));
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
        }
        let next = w.pending.iter().filter(|p| !p.3).map(|p| p.1).min();
        w = match next {
            Some(due) => match cv.wait_timeout(w, due.saturating_duration_since(now)) {
                Ok((w, _)) => w,
                Err(_) => return,
            },
            None => match cv.wait(w) {
                Ok(w) => w,
                Err(_) => return,
            },
        };
    }
}

/// Announces a call that may block; `entering` is the start of its line as far as it is known
/// before the call (`read(5, `, or `connect(3, {...}, 16`). `None` when the trace is off.
pub fn begin(entering: impl FnOnce() -> String) -> Option<Begun> {
    if !enabled() {
        return None;
    }
    let entering = entering();
    let (lock, cv) = watch();
    let mut w = lock.lock().ok()?;
    let id = w.next_id;
    w.next_id += 1;
    let idle = w.pending.iter().all(|p| p.3);
    w.pending.push((
        id,
        Instant::now() + BLOCKING_NOTICE,
        entering.clone(),
        false,
    ));
    // Deadlines only grow, so the watchdog needs waking only if it was waiting for nothing.
    if idle {
        cv.notify_one();
    }
    Some(Begun { id, entering })
}

/// Prints a call announced with [`begin`]: its ordinary line, or, if the watchdog showed it as
/// unfinished, `<... name resumed>` and the rest of the line.
pub fn finish(begun: Option<Begun>, call: &str, result: &str) {
    let Some(b) = begun else {
        line(call, result);
        return;
    };
    let shown = watch().0.lock().ok().and_then(|mut w| {
        let at = w.pending.iter().position(|p| p.0 == b.id)?;
        Some(w.pending.swap_remove(at).3)
    });
    match (shown, resumed(call, &b.entering)) {
        (Some(true), Some(rest)) => line(&rest, result),
        _ => line(call, result),
    }
}

/// The second half of a call shown as unfinished, as strace prints it: `<... read resumed>`,
/// then what follows the part already printed. `None` if `entering` does not start `call`.
fn resumed(call: &str, entering: &str) -> Option<String> {
    let rest = call.strip_prefix(entering)?;
    let name = call.split('(').next().unwrap_or_default();
    Some(format!("<... {name} resumed>{rest}"))
}

/// The first half: what was known when the call started, and strace's tag.
fn unfinished(entering: &str) -> String {
    format!("{entering} <unfinished ...>")
}

/// The result column for a call that returned `value`.
pub fn ok(value: impl std::fmt::Display) -> String {
    value.to_string()
}

/// The result column for a call that failed: `-1 ECONNREFUSED (Connection refused)`.
pub fn err(errno: Errno) -> String {
    // The C library's message (strerror), which is what strace prints; nix's own table
    // words some differently ("Try again" for EAGAIN).
    let text = std::io::Error::from_raw_os_error(errno as i32).to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    format!("-1 {} ({text})", errno_name(errno))
}

/// A socket address the way strace prints a `struct sockaddr`.
pub fn sockaddr(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!(
            "{{sa_family=AF_INET, sin_port=htons({}), sin_addr=inet_addr(\"{}\")}}",
            a.port(),
            a.ip()
        ),
        SocketAddr::V6(a) => format!(
            "{{sa_family=AF_INET6, sin6_port=htons({}), sin6_flowinfo=htonl({}), inet_pton(AF_INET6, \"{}\", &sin6_addr), sin6_scope_id={}}}",
            a.port(),
            a.flowinfo(),
            a.ip(),
            a.scope_id()
        ),
    }
}

/// A buffer the way strace prints a string argument: quoted, C escapes, octal for the rest,
/// cut after [`STRING_LIMIT`] bytes with `...` after the closing quote.
pub fn string(data: &[u8]) -> String {
    let shown = &data[..data.len().min(STRING_LIMIT)];
    let mut out = String::with_capacity(shown.len() + 8);
    out.push('"');
    for (i, &b) in shown.iter().enumerate() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                // Octal, as short as possible unless the next byte is an octal digit,
                // where a short escape would swallow it.
                let next_is_digit = shown.get(i + 1).is_some_and(|n| (b'0'..=b'7').contains(n));
                if next_is_digit {
                    out.push_str(&format!("\\{b:03o}"));
                } else {
                    out.push_str(&format!("\\{b:o}"));
                }
            }
        }
    }
    out.push('"');
    if data.len() > STRING_LIMIT {
        out.push_str("...");
    }
    out
}

/// The `epoll_event.events` bits behind a mio event, for trace lines that print what
/// `epoll_wait` really returned, read back from mio's public readiness questions.
pub fn epoll_bits(event: &mio::event::Event) -> u32 {
    Readiness {
        readable: event.is_readable(),
        writable: event.is_writable(),
        error: event.is_error(),
        read_closed: event.is_read_closed(),
        write_closed: event.is_write_closed(),
        priority: event.is_priority(),
    }
    .epoll_bits()
}

/// What mio says about an event. On Linux each answer is a test of the `epoll_event.events`
/// bits (mio 1.x, src/sys/unix/selector/epoll.rs):
///
/// | question | true when the kernel set |
/// |---|---|
/// | readable | EPOLLIN or EPOLLPRI |
/// | writable | EPOLLOUT |
/// | error | EPOLLERR |
/// | read closed | EPOLLHUP, or EPOLLIN with EPOLLRDHUP |
/// | write closed | EPOLLHUP, or EPOLLOUT with EPOLLERR, or EPOLLERR alone |
/// | priority | EPOLLPRI |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Readiness {
    readable: bool,
    writable: bool,
    error: bool,
    read_closed: bool,
    write_closed: bool,
    priority: bool,
}

impl Readiness {
    /// The bits back. mio registers readable interest as `EPOLLIN|EPOLLRDHUP` and writable
    /// as `EPOLLOUT`, never `EPOLLPRI`, so the kernel answers with EPOLLIN, EPOLLOUT,
    /// EPOLLRDHUP, and the EPOLLERR and EPOLLHUP it always reports. Of those, EPOLLHUP and
    /// EPOLLRDHUP are only seen through "read closed", and are told apart like this:
    ///
    /// - read closed without EPOLLIN can only be EPOLLHUP;
    /// - EPOLLHUP also makes "write closed" true, EPOLLIN with EPOLLRDHUP alone does not;
    /// - TCP sets EPOLLRDHUP (with EPOLLIN) whenever the peer's FIN or RST has arrived, which
    ///   is always the case when it sets EPOLLHUP on a connection that was open, so read
    ///   closed with EPOLLIN means EPOLLRDHUP.
    ///
    /// Two answers stay ambiguous, and TCP does not give them: EPOLLIN|EPOLLOUT|EPOLLERR|
    /// EPOLLRDHUP without EPOLLHUP reads back with EPOLLHUP (an error that closed only the
    /// reading side), and EPOLLIN|EPOLLHUP reads back with EPOLLRDHUP.
    fn epoll_bits(self) -> u32 {
        let mut bits = 0;
        if self.priority {
            bits |= libc::EPOLLPRI as u32;
        } else if self.readable {
            bits |= libc::EPOLLIN as u32;
        }
        if self.writable {
            bits |= libc::EPOLLOUT as u32;
        }
        if self.error {
            bits |= libc::EPOLLERR as u32;
        }
        let hup = self.read_closed && (!self.readable || self.write_closed);
        if hup {
            bits |= libc::EPOLLHUP as u32;
        }
        if self.read_closed && self.readable {
            bits |= libc::EPOLLRDHUP as u32;
        }
        bits
    }
}

/// `epoll_event.events` bits as strace prints them: `EPOLLIN|EPOLLRDHUP|EPOLLET`.
pub fn epoll_names(bits: u32) -> String {
    flag_names(
        i64::from(bits),
        &[
            (libc::EPOLLIN as i64, "EPOLLIN"),
            (libc::EPOLLPRI as i64, "EPOLLPRI"),
            (libc::EPOLLOUT as i64, "EPOLLOUT"),
            (libc::EPOLLERR as i64, "EPOLLERR"),
            (libc::EPOLLHUP as i64, "EPOLLHUP"),
            (libc::EPOLLRDHUP as i64, "EPOLLRDHUP"),
            (libc::EPOLLET as i64, "EPOLLET"),
        ],
    )
}

/// Flag bits as strace prints them: the names of the bits that are set, joined by `|`, in
/// the order of `known`; `0` when none is.
pub fn flag_names(bits: i64, known: &[(i64, &str)]) -> String {
    let parts: Vec<&str> = known
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocking_call_is_split_the_way_strace_splits_it() {
        // `read`: the buffer is known only at the end, so the first half stops at the fd.
        assert_eq!(unfinished("read(5, "), "read(5,  <unfinished ...>");
        assert_eq!(
            resumed(r#"read(5, "", 4096)"#, "read(5, ").as_deref(),
            Some(r#"<... read resumed>"", 4096)"#)
        );
        // `connect`: every argument is known at the start; only `)` and the result wait.
        let entering = "connect(3, {sa_family=AF_INET}, 16";
        assert_eq!(
            unfinished(entering),
            "connect(3, {sa_family=AF_INET}, 16 <unfinished ...>"
        );
        assert_eq!(
            resumed("connect(3, {sa_family=AF_INET}, 16)", entering).as_deref(),
            Some("<... connect resumed>)")
        );
        assert_eq!(resumed("write(4, \"x\", 1)", "read(4, "), None);
    }

    #[test]
    fn strings_escape_like_strace() {
        // Expected values copied from strace 6.1 output for the same bytes.
        assert_eq!(string(b"\0\0\0\x05hello"), r#""\0\0\0\5hello""#);
        assert_eq!(
            string(b"hello\n\x00\x01\x7f\xff\"\\\t\r 0123456789abcdefghijk"),
            r#""hello\n\0\1\177\377\"\\\t\r 0123456789abcdefg"..."#
        );
        assert_eq!(string(b"\x001"), r#""\0001""#);
        assert_eq!(string(b""), r#""""#);
    }

    #[test]
    fn addresses_print_like_strace() {
        let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert_eq!(
            sockaddr(&a),
            r#"{sa_family=AF_INET, sin_port=htons(7000), sin_addr=inet_addr("127.0.0.1")}"#
        );
        let b: SocketAddr = "[::1]:1".parse().unwrap();
        assert_eq!(
            sockaddr(&b),
            r#"{sa_family=AF_INET6, sin6_port=htons(1), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}"#
        );
    }

    #[test]
    fn errors_print_like_strace() {
        assert_eq!(
            err(Errno::ECONNREFUSED),
            "-1 ECONNREFUSED (Connection refused)"
        );
        assert_eq!(
            err(Errno::EAGAIN),
            "-1 EAGAIN (Resource temporarily unavailable)"
        );
    }

    /// mio's answers for raw bits, as mio 1.x computes them on Linux.
    fn mio_says(bits: i32) -> Readiness {
        let has = |b: i32| bits & b != 0;
        Readiness {
            readable: has(libc::EPOLLIN) || has(libc::EPOLLPRI),
            writable: has(libc::EPOLLOUT),
            error: has(libc::EPOLLERR),
            read_closed: has(libc::EPOLLHUP) || (has(libc::EPOLLIN) && has(libc::EPOLLRDHUP)),
            write_closed: has(libc::EPOLLHUP)
                || (has(libc::EPOLLOUT) && has(libc::EPOLLERR))
                || bits == libc::EPOLLERR,
            priority: has(libc::EPOLLPRI),
        }
    }

    #[test]
    fn epoll_bits_read_back_from_mio_answers() {
        use libc::{EPOLLERR as ERR, EPOLLHUP as HUP, EPOLLIN as IN, EPOLLOUT as OUT};
        use libc::{EPOLLPRI as PRI, EPOLLRDHUP as RDHUP};
        // What epoll_wait returns for TCP sockets, an eventfd and a pipe: data, room, the
        // peer's FIN, both sides closed, a reset, a refused connect, a socket never connected.
        for bits in [
            IN,
            OUT,
            IN | OUT,
            IN | RDHUP,
            IN | OUT | RDHUP,
            IN | HUP | RDHUP,
            IN | OUT | HUP | RDHUP,
            IN | OUT | ERR | HUP | RDHUP,
            OUT | ERR | HUP,
            OUT | HUP,
            ERR,
            ERR | HUP,
            HUP,
            PRI,
        ] {
            let back = mio_says(bits).epoll_bits();
            assert_eq!(
                epoll_names(back),
                epoll_names(bits as u32),
                "{bits:#x} read back as {back:#x}"
            );
        }
    }
}
