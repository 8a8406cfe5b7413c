//! Lesson 13: a non-blocking connect: EINPROGRESS, writable, SO_ERROR, and a timeout.
//!
//! Run it: `cargo run --bin 13_nb_connect -- --trace`, or `13_nb_connect serve` and
//! `13_nb_connect client` (twice: the second one times out).

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use socklab::blocking::{self, ListenOptions};
use socklab::event_loop::{Config, ConnId, Ctx, EventLoop, Handler};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, Family};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 13: connect() on a non-blocking socket returns EINPROGRESS at once; the loop learns \
        the outcome when the socket turns writable and SO_ERROR says how it went. A connect that \
        hangs is given up by a timer, which sets the poll timeout.\n\n\
        With no arguments it connects to a closed port, to a full listener and to a working one. \
        `serve` listens with a backlog of 0 and never accepts, so the first client fills the \
        queue and the next ones hang; `client` connects with a timeout and reports the outcome \
        (default address 127.0.0.1:7013).",
    serve: "Listen with a backlog of 0 and never accept (a black hole after the first client)",
    client: "Connect without blocking, with a timeout, and report how it went",
};

#[derive(Args)]
struct ClientArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Give up after this many milliseconds
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
}

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, ClientArgs>(7013, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(c)) => client(c.endpoint.addr, Duration::from_millis(c.timeout_ms)),
    })
}

// ANCHOR: dialer
/// Remembers how each connect ended.
#[derive(Default)]
struct Dialer {
    outcome: Option<sys::Result<()>>,
}

impl Handler for Dialer {
    type Timer = ();
    type Message = ();

    fn connected(&mut self, ctx: &mut Ctx<()>, id: ConnId, result: sys::Result<()>) {
        if result.is_ok() {
            ctx.close(id);
        }
        self.outcome = Some(result);
    }

    fn data(&mut self, _: &mut Ctx<()>, _: ConnId, bytes: &[u8]) -> usize {
        bytes.len()
    }
}

/// Starts a connect and turns the loop until it has an outcome.
fn dial(
    ev: &mut EventLoop<Dialer>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<sys::Result<()>, Box<dyn Error>> {
    ev.handler().outcome = None;
    ev.ctx().connect(addr, Some(timeout))?;
    for _ in 0..100 {
        if let Some(outcome) = ev.handler().outcome.take() {
            return Ok(outcome);
        }
        ev.turn(None)?; // no timeout of our own: the connect timer sets it
    }
    Err("no outcome after 100 turns".into())
}
// ANCHOR_END: dialer

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let mut ev = EventLoop::new(Dialer::default(), Config::default())?;

    // A bound socket that does not listen: the kernel answers a SYN with RST.
    let holder = sys::socket(Family::Inet, false)?;
    sys::bind(&holder, &"127.0.0.1:0".parse()?)?;
    let closed = sys::getsockname(&holder)?;
    match dial(&mut ev, closed, Duration::from_secs(1))? {
        Err(e) => println!("1. closed port: {e}"),
        Ok(()) => println!("1. closed port: connected (unexpected)"),
    }

    // A listener with a backlog of 0 holds one connection; the next SYN is dropped.
    let opts = ListenOptions {
        backlog: 0,
        ..ListenOptions::default()
    };
    let (_hole, hole) = blocking::listen_tcp("127.0.0.1:0".parse()?, opts)?;
    let _filler = blocking::connect_tcp(hole)?;
    let started = Instant::now();
    match dial(&mut ev, hole, Duration::from_millis(200))? {
        Err(e) => println!("2. full listener: {e}"),
        Ok(()) => println!("2. full listener: connected (unexpected)"),
    }
    println!(
        "   given up after {} ms: epoll_wait slept until the timer was due (varies)",
        started.elapsed().as_millis()
    );

    let (_listener, open) = blocking::listen_tcp("127.0.0.1:0".parse()?, ListenOptions::default())?;
    match dial(&mut ev, open, Duration::from_secs(1))? {
        Ok(()) => println!("3. open port: connected (SO_ERROR was 0)"),
        Err(e) => println!("3. open port: {e}"),
    }
    Ok(())
}
// ANCHOR_END: demo

// ANCHOR: serve
fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let opts = ListenOptions {
        backlog: 0,
        reuseaddr: true,
    };
    let (_listener, local) = blocking::listen_tcp(addr, opts)?;
    lesson::listening(local);
    lesson::wait_for_enter("never accepting: the first client fills the queue, the next ones hang");
    Ok(())
}
// ANCHOR_END: serve

fn client(addr: SocketAddr, timeout: Duration) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let mut ev = EventLoop::new(Dialer::default(), Config::default())?;
    match dial(&mut ev, addr, timeout)? {
        Ok(()) => println!("{} connected to {addr}", lesson::elapsed(start)),
        Err(e) => {
            // The error itself is printed once, on stderr, by `lesson::run`.
            println!("{} gave up", lesson::elapsed(start));
            return Err(e.into());
        }
    }
    Ok(())
}
