//! Lesson 17: a graceful shutdown: a signal wakes the loop; stop accepting, tell the
//! clients, drain, close with FIN; the clients come back to the restarted server.
//!
//! Run it: `cargo run --bin 17_graceful_shutdown -- --trace`, or `17_graceful_shutdown serve`
//! and `17_graceful_shutdown client`, then Ctrl-C the server and start it again.

use std::cell::Cell;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;
use socklab::apps::ticker;
use socklab::event_loop::turn_together;
use socklab::events::{Client, ClientOptions, ClientState, Server, ServerConfig};
use socklab::lesson::{self, Endpoint, Role};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 17: SIGTERM or Ctrl-C must not cut clients off mid-message. The signal handler \
        only writes a byte into a pipe the loop watches (the self-pipe trick); the loop then stops \
        accepting, sends every client DISCONNECT \"server shutting down\", flushes what is queued, \
        and closes each connection with FIN (shutdown, then wait for the client's FIN), never RST. \
        The clients reconnect to the restarted server.\n\n\
        With no arguments the process signals itself. `serve` runs until SIGINT/SIGTERM and \
        exits 0; `client` ticks every second through restarts (default address 127.0.0.1:7017).",
    serve: "Run a server; Ctrl-C or SIGTERM stops it gracefully, with exit status 0",
    client: "Tick every second through restarts of the server",
};

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, lesson::TickerArgs>(7017, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(c)) => ticker::run(c.endpoint.addr, Duration::from_secs(1), c.count),
    })
}

/// Runs the server and the client until `done` or 5 s: one `poll` sleeps for both loops
/// until one has an event or a timer due (see `event_loop::turn_together`).
fn step(
    server: &mut Server,
    client: &mut Client,
    mut done: impl FnMut(&mut Server, &mut Client) -> bool,
) -> Result<(), Box<dyn Error>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(server, client) && Instant::now() < deadline {
        turn_together(&mut [server, client], deadline)?;
    }
    Ok(())
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let config = |seed| ServerConfig {
        id_seed: Some(seed),
        ..ServerConfig::default()
    };
    let mut server = Server::new(config(17))?;
    server.stop_on_signals()?;
    let addr = server.listen("127.0.0.1:0".parse()?)?;
    ticker::install(server.io(), None);

    let mut opts = ClientOptions::new(addr);
    opts.reconnection_delay = Duration::from_millis(50);
    let mut client = Client::connect(opts)?;
    ticker::narrate(&mut client, None);
    let got = Rc::new(Cell::new(0usize));
    let size = got.clone();
    client.io().on("news", move |_, ev| {
        size.set(ev.args[0].as_str().map_or(0, str::len))
    });
    step(&mut server, &mut client, |_, c| c.io().is_connected())?;

    // A big event is queued, and the signal arrives before it can all be written.
    let big = "x".repeat(512 * 1024);
    server.io().broadcast("/").emit("news", vec![json!(big)])?;
    println!("the server queued a 512 KiB event, then got SIGTERM");
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM)?;
    step(&mut server, &mut client, |s, _| s.is_stopped())?;
    println!(
        "the server stopped: every connection closed, the loop returned (a process would exit 0)"
    );
    println!(
        "the client got all {} bytes of the event before the DISCONNECT",
        got.get()
    );

    let mut again = Server::new(config(18))?;
    again.listen(addr)?;
    ticker::install(again.io(), None);
    println!("the server starts again on the same address");
    step(&mut again, &mut client, |_, c| c.io().is_connected())?;
    client.io().disconnect();
    // The client's DISCONNECT goes out, and both ends close.
    step(&mut again, &mut client, |s, c| {
        s.io().sockets("/").is_empty() && c.io().state() == ClientState::Disconnected
    })?;
    Ok(())
}
// ANCHOR_END: demo

// ANCHOR: serve
fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    lesson::serve_events_timed(ServerConfig::default(), addr, |io, start| {
        ticker::install(io, Some(start))
    })
}
// ANCHOR_END: serve
