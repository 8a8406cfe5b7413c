//! Lesson 11: epoll through mio: the event loop every later lesson runs on.
//!
//! Run it: `cargo run --bin 11_mio_loop -- --trace`, or `11_mio_loop serve` and
//! `11_mio_loop client` (or `nc 127.0.0.1 7011`).

use std::error::Error;
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use socklab::blocking;
use socklab::event_loop::echo::Echo;
use socklab::event_loop::{Config, EventLoop};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys;

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about:
        "Lesson 11: epoll (through mio) tells one thread which of thousands of sockets are ready. \
        Registrations are edge-triggered, so every event is drained until EAGAIN.\n\n\
        With no arguments it runs an echo server on the loop and steps it by hand while two \
        clients talk to it. `serve` runs the echo server until Ctrl-C or SIGTERM (then it flushes, \
        closes and exits 0); `client` sends stdin and prints the echo (default address \
        127.0.0.1:7011).",
    serve: "Run the echo server on the event loop until SIGINT/SIGTERM",
    client: "Send stdin, chunk by chunk, and print what comes back",
};

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7011, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => {
            blocking::echo_client(e.addr, std::io::stdin().lock(), &mut std::io::stdout())
        }
    })
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let mut ev = EventLoop::new(Echo::default(), Config::default())?;
    let addr = ev.ctx().listen("127.0.0.1:0".parse()?)?;
    println!("listening on {addr}; the listener is registered with epoll");

    let a = blocking::connect_tcp(addr)?;
    let b = blocking::connect_tcp(addr)?;
    let step = Some(Duration::from_secs(1));
    ev.turn(step)?;
    println!(
        "one event for the listener: {} accepts, then EAGAIN ends the drain",
        ev.ctx().stats().accepted
    );

    blocking::write_all(&a, b"hello")?;
    blocking::write_all(&a, b", loop")?;
    ev.turn(step)?;
    let mut buf = [0u8; 64];
    let n = sys::read(&a, &mut buf)?;
    println!(
        "two writes, one event, one read, one reply: \"{}\"",
        lesson::show(&buf[..n])
    );

    sys::shutdown(&b, Shutdown::Write)?;
    ev.turn(step)?;
    println!("b half-closed: read returned 0, the loop closed its side too");
    println!("connections open: {}", ev.ctx().connections());
    let s = ev.ctx().stats();
    println!(
        "reads that found data: {}, reads that hit EAGAIN: {}",
        s.reads, s.reads_would_block
    );
    Ok(())
}
// ANCHOR_END: demo

// ANCHOR: serve
fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let mut ev = EventLoop::new(Echo::default(), Config::default())?;
    ev.stop_on_signals()?;
    let local = ev.ctx().listen(addr)?;
    lesson::listening(local);
    ev.run()?;
    println!("stopped: echoed {} bytes", ev.handler().echoed);
    Ok(())
}
// ANCHOR_END: serve
