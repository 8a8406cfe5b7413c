//! Lesson 16: heartbeats, a dead peer, reconnection with backoff, the offline buffer.
//!
//! Run it: `cargo run --bin 16_heartbeat_reconnect -- --trace`, or
//! `16_heartbeat_reconnect serve` and `16_heartbeat_reconnect client`, then stop and restart
//! the server and watch the client.

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use socklab::apps::ticker;
use socklab::blocking;
use socklab::event_loop::{turn_together_until, Turn};
use socklab::events::{Client, ClientOptions, Server, ServerConfig};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, MsgFlags};
use socklab::wire::packet;

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 16: a connection can die without a FIN (a cable pulled, a laptop asleep). The \
        server PINGs every interval and drops a peer that does not PONG in time; the client drops \
        a server that stops PINGing. A dropped client reconnects with exponential backoff and \
        jitter, and what it emitted meanwhile waits in its offline buffer.\n\n\
        With no arguments it runs the whole story in one process, with heartbeats every 100 ms. \
        `serve` runs a server (ping every `--ping-ms`); `client` ticks every second through \
        outages: stop the server, start it again, and watch (default address 127.0.0.1:7016).",
    serve: "Run a server that acknowledges ticks; Ctrl-C stops it (clients will come back)",
    client: "Tick every second, through outages, printing every reconnection event",
};

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Milliseconds between PINGs (the PONG must come within as long again)
    #[arg(long, default_value_t = 1000)]
    ping_ms: u64,
}

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<ServeArgs, lesson::TickerArgs>(7016, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(s)) => serve(s.endpoint.addr, Duration::from_millis(s.ping_ms)),
        Some(Role::Client(c)) => ticker::run(c.endpoint.addr, Duration::from_secs(1), c.count),
    })
}

// ANCHOR: config
fn config(ping: Duration, seed: u64) -> ServerConfig {
    ServerConfig {
        ping_interval: ping,
        ping_timeout: ping,
        id_seed: Some(seed),
        ..ServerConfig::default()
    }
}
// ANCHOR_END: config

/// Runs the server (if any) and the clients for `how_long`: one `poll` sleeps for all the
/// loops until one has an event or a timer due (see `event_loop::turn_together`).
fn run_for(
    server: &mut Option<Server>,
    clients: &mut [Client],
    how_long: Duration,
) -> Result<(), Box<dyn Error>> {
    run_until(server, clients, how_long, || false)?;
    Ok(())
}

/// Runs them until `done` says so or `limit` passes; returns whether `done` did.
fn run_until(
    server: &mut Option<Server>,
    clients: &mut [Client],
    limit: Duration,
    done: impl FnMut() -> bool,
) -> Result<bool, Box<dyn Error>> {
    let mut loops: Vec<&mut dyn Turn> = Vec::new();
    if let Some(s) = server.as_mut() {
        loops.push(s);
    }
    for c in clients.iter_mut() {
        loops.push(c);
    }
    Ok(turn_together_until(&mut loops, limit, done)?)
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let ping = Duration::from_millis(100);
    // Fixed seeds: the same socket ids every run, so this output can be recorded.
    let mut first = Server::new(config(ping, 16))?;
    let addr = first.listen("127.0.0.1:0".parse()?)?;
    ticker::install(first.io(), None);
    let mut server = Some(first);

    // 1. A peer that goes silent: it speaks HELLO and CONNECT, then never answers a PING.
    let silent = blocking::connect_tcp(addr)?;
    blocking::write_all(&silent, &packet::greeting(None))?;
    run_for(&mut server, &mut [], Duration::from_millis(50))?;
    let mut opts = ClientOptions::new(addr);
    opts.reconnection_delay = Duration::from_millis(50);
    opts.reconnection_delay_max = Duration::from_millis(400);
    let mut client = Client::connect(opts)?;
    ticker::narrate(&mut client, None);
    let attempts = Rc::new(Cell::new(0u32));
    let counter = attempts.clone();
    client.io().on("reconnect_error", move |_, _| {
        counter.set(counter.get() + 1)
    });
    println!("1. a silent peer and a live client; PING every 100 ms, PONG due within 100 ms");
    run_for(
        &mut server,
        std::slice::from_mut(&mut client),
        Duration::from_millis(450),
    )?;
    // What the silent peer got: HELLO, CONNECT, a PING it ignored, then end of file.
    let mut buf = [0u8; 4096];
    while sys::recv(&silent, &mut buf, MsgFlags::DONTWAIT).is_ok_and(|n| n > 0) {}
    println!(
        "   the server closed the silent peer's connection; the live client answered every PING"
    );

    // 2. The server goes away. The client tries again and again, further apart each time.
    println!("2. the server stops");
    if let Some(s) = server.as_mut() {
        s.io().stop();
    }
    let connected = Rc::new(Cell::new(true));
    let flag = connected.clone();
    client.io().on("disconnect", move |_, _| flag.set(false));
    run_until(
        &mut server,
        std::slice::from_mut(&mut client),
        Duration::from_secs(5),
        || !connected.get(),
    )?;
    server = None;
    for n in 1..=3 {
        client.io().emit("tick", vec![json!(n)])?;
    }
    println!(
        "   3 ticks emitted while disconnected wait in the offline buffer: {}",
        client.io().offline_len()
    );
    run_until(
        &mut server,
        std::slice::from_mut(&mut client),
        Duration::from_secs(5),
        || attempts.get() >= 3,
    )?;

    // 3. The server is back on the same port: the client reconnects and sends what waited.
    println!("3. the server starts again on the same address");
    let mut again = Server::new(config(ping, 17))?;
    again.listen(addr)?;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    again.io().on_connection("/", move |io, sid| {
        let log = log.clone();
        io.on(sid, "tick", move |_, ev| {
            log.borrow_mut().push(ev.args[0].clone())
        });
    });
    server = Some(again);
    run_until(
        &mut server,
        std::slice::from_mut(&mut client),
        Duration::from_secs(5),
        || seen.borrow().len() >= 3,
    )?;
    println!(
        "   the new server got the ticks, in order: {}",
        json!(*seen.borrow())
    );
    client.io().disconnect();
    run_for(
        &mut server,
        std::slice::from_mut(&mut client),
        Duration::from_millis(50),
    )?;
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr, ping: Duration) -> Result<(), Box<dyn Error>> {
    let config = ServerConfig {
        id_seed: None,
        ..config(ping, 0)
    };
    lesson::serve_events_timed(config, addr, |io, start| ticker::install(io, Some(start)))
}
