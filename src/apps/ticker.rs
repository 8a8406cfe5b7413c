//! A client that keeps talking through outages, and its server: what lessons 16 and 17 run
//! in two terminals. The client emits `tick` with an ack every interval and prints every
//! lifecycle event (`connect`, `disconnect`, `reconnect_attempt`, `reconnect`, ...); stop and
//! restart the server and watch it come back. Ticks made while disconnected wait in the
//! offline buffer and go out first after reconnecting.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::events::{Client, ClientOptions, Io};

// ANCHOR: install
/// The server side: acknowledges each `tick` with how many it has seen from anyone, and
/// prints who comes and goes (with the time since `start`, if given).
pub fn install(io: &mut Io, start: Option<Instant>) {
    let seen = Rc::new(Cell::new(0u64));
    io.on_connection("/", move |io, sid| {
        println!("{}{sid} connected", stamp(start));
        let seen = seen.clone();
        io.on(sid, "tick", move |io, ev| {
            seen.set(seen.get() + 1);
            io.ack(ev, vec![json!(seen.get())]);
        });
        io.on(sid, "disconnect", move |_, ev| {
            let reason = ev.args.first().and_then(Value::as_str).unwrap_or("");
            println!("{}{} disconnected: {reason}", stamp(start), ev.socket);
        });
    });
}
// ANCHOR_END: install

/// `[  2503 ms] `: the time since `start`, for lines of lessons whose point is timing
/// (nothing without a start).
pub fn stamp(start: Option<Instant>) -> String {
    match start {
        Some(t) => format!("[{:>6} ms] ", t.elapsed().as_millis()),
        None => String::new(),
    }
}

/// Prints the client's lifecycle events as they happen, with the time since `start` if
/// given. (`connect_error` also fires on each failed attempt; `reconnect_error` says it.)
pub fn narrate(client: &mut Client, start: Option<Instant>) {
    for name in [
        "connect",
        "disconnect",
        "reconnect_attempt",
        "reconnect",
        "reconnect_error",
        "reconnect_failed",
    ] {
        client.io().on(name, move |io, ev| {
            let arg = ev.args.first().map(|a| format!(" {a}")).unwrap_or_default();
            let id = if name == "connect" {
                format!(" as {}", io.id().unwrap_or("?"))
            } else {
                String::new()
            };
            match start {
                Some(_) => println!("{}{name}{arg}{id}", stamp(start)),
                None => println!("   event: {name}{arg}{id}"),
            }
        });
    }
}

/// The client side: a tick every `every`, `count` ticks (or for ever), then leave.
pub fn run(
    addr: std::net::SocketAddr,
    every: Duration,
    count: Option<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut client = Client::connect(ClientOptions::new(addr))?;
    narrate(&mut client, Some(start));
    let mut sent = 0u64;
    let answered = Rc::new(Cell::new(0u64));
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next && count.is_none_or(|c| sent < c) {
            sent += 1;
            let n = sent;
            let done = answered.clone();
            let queued = !client.io().is_connected();
            client.io().emit_with_ack(
                "tick",
                vec![json!(n)],
                vec![],
                Duration::from_secs(60),
                move |_, r| {
                    done.set(done.get() + 1);
                    match r {
                        Ok(a) => println!(
                            "{}tick {n} acknowledged: server has seen {}",
                            stamp(Some(start)),
                            json!(a.args)
                        ),
                        Err(e) => println!("{}tick {n}: {e}", stamp(Some(start))),
                    }
                },
            )?;
            if queued {
                println!("{}tick {n} waits in the offline buffer", stamp(Some(start)));
            }
            next += every;
        }
        if count.is_some_and(|c| answered.get() >= c) {
            client.io().disconnect();
            client.run()?;
            return Ok(());
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        client.turn(Some(wait))?;
    }
}
