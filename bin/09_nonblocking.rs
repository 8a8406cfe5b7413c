//! Lesson 09: non-blocking sockets, EAGAIN, and why spinning is no answer.
//!
//! Run it: `cargo run --bin 09_nonblocking -- --trace`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use socklab::blocking::{self, ListenOptions};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, Errno};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 09: O_NONBLOCK turns \"wait\" into \"EAGAIN, try again later\". A loop that simply tries \
        again burns a CPU core learning nothing, which is why the next lessons wait for readiness.\n\n\
        With no arguments it makes a connection non-blocking and spins on it. `serve` accepts one \
        client at a time and spins on it until it sends something, then reports how many reads \
        came back EAGAIN; `client` connects, waits a moment, and sends a line (default address \
        127.0.0.1:7009).",
    serve: "Listen; spin on each client's non-blocking socket until it sends something",
    client: "Connect, wait 100 ms, send a line",
};

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7009, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => client(e.addr),
    })
}

// ANCHOR: spin
/// The busy loop: read until something arrives, counting the EAGAINs. Gives up after
/// `limit` (returning `None`) so that a demonstration always ends.
fn spin(conn: &sys::Fd, buf: &mut [u8], limit: Duration) -> sys::Result<(Option<usize>, u64)> {
    let start = Instant::now();
    let mut eagains = 0;
    loop {
        match sys::read(conn, buf) {
            Ok(n) => return Ok((Some(n), eagains)),
            Err(e) if e.errno() == Errno::EAGAIN => eagains += 1,
            Err(e) => return Err(e),
        }
        if start.elapsed() >= limit {
            return Ok((None, eagains));
        }
    }
}
// ANCHOR_END: spin

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let (listener, addr) = blocking::listen_tcp("127.0.0.1:0".parse()?, ListenOptions::default())?;
    let client = blocking::connect_tcp(addr)?;
    let (conn, _) = sys::accept(&listener, false)?;

    sys::set_nonblocking(&conn, true)?;
    println!("the server's socket is non-blocking now (fcntl F_SETFL O_NONBLOCK)");
    let mut buf = [0u8; 64];
    match sys::read(&conn, &mut buf) {
        Err(e) => println!("read() with nothing to read: {e}"),
        Ok(n) => println!("read() returned {n} bytes (expected EAGAIN)"),
    }

    println!("spinning for 0.2 ms: read, EAGAIN, read, EAGAIN, ...");
    let (_, eagains) = spin(&conn, &mut buf, Duration::from_micros(200))?;
    println!("0.2 ms of spinning: {eagains} reads, all EAGAIN, nothing learned (the count varies)");

    blocking::write_all(&client, b"ping")?;
    let (got, eagains) = spin(&conn, &mut buf, Duration::from_secs(1))?;
    println!(
        "after the client wrote, read() returned {} bytes ({eagains} EAGAINs first)",
        got.unwrap_or(0)
    );
    println!("a spinning loop keeps one core at 100% and still learns about data late; poll() sleeps instead (lesson 10)");
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    // SO_REUSEADDR (lesson 06): a restarted server gets its port back at once.
    let (listener, local) = blocking::listen_tcp(addr, ListenOptions::reusable())?;
    lesson::listening(local);
    blocking::serve_forever(&listener, |conn, peer| {
        sys::set_nonblocking(&conn, true)?;
        let mut buf = [0u8; 4096];
        let started = Instant::now();
        match spin(&conn, &mut buf, Duration::from_secs(30))? {
            (Some(n), eagains) => println!(
                "{peer}: {n} bytes after {eagains} EAGAINs in {:?} of spinning (varies)",
                started.elapsed()
            ),
            (None, eagains) => println!("{peer}: nothing in 30 s, {eagains} EAGAINs; giving up"),
        }
        conn.close()
    })?;
    Ok(())
}

fn client(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let fd = blocking::connect_tcp(addr)?;
    std::thread::sleep(Duration::from_millis(100));
    blocking::write_all(&fd, b"hello after 100 ms\n")?;
    println!("sent a line after 100 ms");
    Ok(())
}
