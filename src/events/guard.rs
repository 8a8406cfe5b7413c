//! One policy for every callback the application gives the event layer, on both sides:
//! listeners, acknowledgement callbacks (answered, timed out or disconnected), middleware,
//! connection handlers, closures sent from other threads, and taps.
//!
//! A callback that panics must not take the loop down with it: one peer's bad event would
//! otherwise stop the server for everyone. So every callback runs inside [`call`], which
//! catches the panic, and the side that called it then applies the same policy every time
//! ([`Panics::record`]): the panic is counted, printed once for each callback name (a peer
//! that triggers the same panic a million times must not fill the disk with a million
//! lines), and only the socket it concerns is closed (the server closes that socket's
//! connection; the client closes its own connection and reconnects as after any loss).
//!
//! Catching a panic is only sound if the state the callback shared is still consistent. The
//! callbacks get `&mut Io` or `&mut ClientIo`, whose every method finishes its changes
//! before user code runs again, so a panic in user code finds them whole.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

/// A callback panicked with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Panicked {
    pub message: String,
}

thread_local! {
    /// How many guarded callbacks this thread is inside (they can nest: a listener emits
    /// with an ack whose callback runs later, inside another listener).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the panic hook leaves the message and place of a guarded panic.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once per process, a panic hook that stays quiet about panics inside [`call`]
/// (their one line is printed by [`Panics::record`]) and hands every other panic to the hook
/// that was there before.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) > 0 {
                let place = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let text = payload_text(info.payload());
                LAST.with(|m| *m.borrow_mut() = Some(format!("{text}{place}")));
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs user callback `f`; a panic comes back as `Err`.
pub(crate) fn call<R>(f: impl FnOnce() -> R) -> Result<R, Panicked> {
    install_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    result.map_err(|payload| {
        let message = LAST
            .with(|m| m.borrow_mut().take())
            .unwrap_or_else(|| payload_text(payload.as_ref()));
        Panicked { message }
    })
}

/// Shows `bytes` to a tap (see `Io::set_tap`), if there is one. A tap that panics is
/// removed: it would panic again on every frame.
pub(crate) fn tap(tap: &mut Option<super::Tap>, bytes: &[u8]) -> Result<(), Panicked> {
    let Some(f) = tap.as_mut() else {
        return Ok(());
    };
    call(|| f(bytes)).inspect_err(|_| *tap = None)
}

/// Most distinct callback names printed; later ones are counted only.
const MAX_NAMES: usize = 64;

/// One side's record of panicking callbacks.
#[derive(Debug, Default)]
pub(crate) struct Panics {
    count: u64,
    printed: HashSet<String>,
}

impl Panics {
    /// Counts a panic of callback `what` (an event name, `ack`, `middleware`, ...), and
    /// prints it on stderr if no panic of `what` was printed before. `side` and `action`
    /// complete the line: "socklab server: ... panicked: boom; closing its connection".
    pub(crate) fn record(&mut self, side: &str, what: &str, p: &Panicked, action: &str) {
        self.count += 1;
        if self.printed.len() < MAX_NAMES && self.printed.insert(what.to_string()) {
            eprintln!(
                "socklab {side}: the {what} callback panicked: {}; {action} (later panics of \
                 {what} are counted, not printed)",
                p.message
            );
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_with_its_message_and_nesting_works() {
        assert_eq!(call(|| 5), Ok(5));
        let outer = call(|| {
            let inner = call(|| panic!("inner {}", 1));
            assert_eq!(
                inner.unwrap_err().message.split(" at ").next(),
                Some("inner 1")
            );
            panic!("outer");
        });
        let message = outer.unwrap_err().message;
        assert!(message.starts_with("outer at "), "{message}");
        assert!(message.contains("guard.rs"), "{message}");
    }

    #[test]
    fn names_are_printed_once_and_every_panic_counted() {
        let mut p = Panics::default();
        let boom = Panicked {
            message: "boom".into(),
        };
        for _ in 0..3 {
            p.record("test", "\"chat\" listener", &boom, "nothing closed");
        }
        assert_eq!(p.count(), 3);
        assert_eq!(p.printed.len(), 1);
        for n in 0..100 {
            p.record("test", &format!("name {n}"), &boom, "nothing closed");
        }
        assert_eq!(p.printed.len(), MAX_NAMES);
        assert_eq!(p.count(), 103);
    }
}
