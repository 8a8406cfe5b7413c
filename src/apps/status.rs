//! What a person is told about the connection of `socklab chat` and `socklab watch`: the
//! server is not reachable, the connection was lost, the client is reconnecting, it is back
//! (with its session, and how many missed events that brought, or in a new one).
//!
//! The client's lifecycle events (`connect_error`, `disconnect`, `reconnect_attempt`,
//! `connect`, lesson 16) carry all of it; this file only words them. Without it both clients
//! sat silent while no server answered, and a restarted server looked like a score that fell
//! back to `0/0` for no reason.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;

use crate::events::{reasons, ClientIo, ClientState};

/// Where a client's lines go: stdout, or the line editor's printer (see `terminal.rs`).
pub type Say = Rc<dyn Fn(String)>;

/// How a client counts what a recovered session brought back.
#[derive(Debug, Clone, Copy)]
pub struct Catchup {
    /// An event with an ack that the server answers whatever its arguments. The server
    /// queues the missed broadcasts right behind its CONNECT reply, so every one of them
    /// arrives before the answer to this: a fence.
    pub fence: &'static str,
    /// The events that count as missed (`chat message`, `score`): joins and leaves do not.
    pub counted: &'static [&'static str],
    /// What one of them is called, and several.
    pub noun: (&'static str, &'static str),
}

/// Registers the listeners that tell the person, through `say`, what happens to the
/// connection to `addr`. The first `connect` is the application's to announce; the later
/// ones (`back online ...`) are said here, before the application's own `connect` listeners
/// registered after this call run.
pub fn narrate(io: &mut ClientIo, addr: SocketAddr, say: Say, catchup: Catchup) {
    // The reason of the last failed attempt, said with the next attempt: a refusal by the
    // server also fires `connect_error`, but it ends the client and no attempt follows.
    let last_error: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    let lost_because: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    let counting: Rc<Cell<Option<u64>>> = Rc::new(Cell::new(None));
    let seen_connect = Rc::new(Cell::new(false));

    let error = last_error.clone();
    io.on("connect_error", move |_, ev| {
        *error.borrow_mut() = Some(first_str(&ev.args).to_string());
    });

    let (error, out) = (last_error.clone(), say.clone());
    io.on("reconnect_attempt", move |_, ev| {
        let n = ev.args.first().and_then(Value::as_u64).unwrap_or(0);
        match error.borrow_mut().take() {
            Some(e) => out(format!(
                "* the server at {addr} is not reachable; retrying (attempt {n}, Ctrl-C to give up): {e}"
            )),
            None => out(format!("* reconnecting to {addr} (retry {n})")),
        }
    });

    let (why, out) = (lost_because.clone(), say.clone());
    io.on("disconnect", move |io, ev| {
        // A disconnect that ends the client (`/quit`, a refusal) is the application's to say.
        if io.state() != ClientState::Reconnecting {
            return;
        }
        let reason = first_str(&ev.args).to_string();
        out(if reason == reasons::SERVER_SHUTTING_DOWN {
            format!("* offline: the server at {addr} is shutting down; reconnecting")
        } else {
            format!("* offline: lost the connection to {addr} ({reason}); reconnecting")
        });
        *why.borrow_mut() = Some(reason);
    });

    let (count, out, why) = (counting.clone(), say.clone(), lost_because);
    io.on("connect", move |io, _| {
        if !seen_connect.replace(true) {
            return;
        }
        if !io.recovered() {
            let restarted = why.borrow().as_deref() == Some(reasons::SERVER_SHUTTING_DOWN);
            out(if restarted {
                "* back online, but the server has restarted: a new session; what was sent while you were offline is lost".to_string()
            } else {
                "* back online, but in a new session (the server did not keep yours); what was sent while you were offline is lost".to_string()
            });
            return;
        }
        out("* back online: your session was recovered".to_string());
        count.set(Some(0));
        let (counted, out) = (count.clone(), out.clone());
        let (one, many) = catchup.noun;
        let fenced = io.emit_with_ack(
            catchup.fence,
            Vec::new(),
            Vec::new(),
            Duration::from_secs(10),
            move |_, _| {
                // Answered or not, the count ends here: whatever came was said.
                let n = counted.take().unwrap_or(0);
                out(match n {
                    0 => format!("* no {many} missed"),
                    1 => format!("* 1 missed {one} delivered"),
                    n => format!("* {n} missed {many} delivered"),
                });
            },
        );
        if fenced.is_err() {
            count.set(None);
        }
    });

    io.on_any(move |_, ev| {
        if let Some(n) = counting.get() {
            if catchup.counted.contains(&ev.name.as_str()) {
                counting.set(Some(n + 1));
            }
        }
    });
}

/// The first argument of a lifecycle event, as text (`""` if there is none).
fn first_str(args: &[Value]) -> &str {
    args.first().and_then(Value::as_str).unwrap_or("")
}
