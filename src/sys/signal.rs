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

static SIGPIPES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_sigpipe(_: libc::c_int) {
    // Only an atomic add: async-signal-safe.
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
