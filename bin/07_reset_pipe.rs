//! Lesson 07: RST, ECONNRESET, EPIPE, SIGPIPE and MSG_NOSIGNAL.
//!
//! Run it: `cargo run --bin 07_reset_pipe -- --trace`, or `07_reset_pipe serve` and
//! `07_reset_pipe client`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use socklab::blocking::{self, ListenOptions};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, MsgFlags};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about:
        "Lesson 07: close() with SO_LINGER 0 sends RST and the peer's read fails with ECONNRESET; \
        writing to a connection the peer closed fails with EPIPE and raises SIGPIPE, unless the \
        write is a send() with MSG_NOSIGNAL.\n\n\
        With no arguments it shows both in one process. `serve` resets every connection it \
        accepts; `client` connects, sends a line and reads, and reports the error it gets (default \
        address 127.0.0.1:7007).",
    serve: "Listen, and reset (SO_LINGER 0, close) every connection",
    client: "Connect, send a line, read the answer (the reset, from our server)",
};

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7007, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => client(e.addr),
    })
}

// ANCHOR: reset
/// Closes `conn` with RST instead of FIN: SO_LINGER on with a zero timeout.
fn reset(conn: sys::Fd) -> sys::Result<()> {
    sys::set_linger(&conn, Some(0))?;
    conn.close()
}
// ANCHOR_END: reset

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let (listener, addr) = blocking::listen_tcp("127.0.0.1:0".parse()?, ListenOptions::default())?;

    println!("1. the server resets the connection");
    let client = blocking::connect_tcp(addr)?;
    let (conn, _) = sys::accept(&listener, false)?;
    reset(conn)?;
    let mut buf = [0u8; 64];
    match sys::read(&client, &mut buf) {
        Err(e) => println!("   the client's read: {e}"),
        Ok(n) => println!("   the client's read returned {n} (expected ECONNRESET)"),
    }
    client.close()?;

    println!("2. the server closes normally, the client keeps writing");
    let client = blocking::connect_tcp(addr)?;
    let (conn, _) = sys::accept(&listener, false)?;
    conn.close()?;
    sys::signal::count_sigpipes();
    let n = sys::write(&client, b"are you there?")?;
    println!(
        "   the first write() after the peer's FIN still took {n} bytes; the peer answered RST"
    );
    match sys::write(&client, b"hello?") {
        Err(e) => println!("   the second write(): {e}"),
        Ok(n) => println!("   the second write() took {n} bytes (expected EPIPE)"),
    }
    println!(
        "   SIGPIPE signals so far: {}",
        sys::signal::sigpipes_seen()
    );
    match sys::send(&client, b"hello?", MsgFlags::NOSIGNAL) {
        Err(e) => println!("   send(MSG_NOSIGNAL): {e}"),
        Ok(n) => println!("   send(MSG_NOSIGNAL) took {n} bytes (expected EPIPE)"),
    }
    println!(
        "   SIGPIPE signals so far: {} (MSG_NOSIGNAL sent none)",
        sys::signal::sigpipes_seen()
    );
    sys::signal::ignore_sigpipe();
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    // SO_REUSEADDR (lesson 06): a restarted server gets its port back at once.
    let (listener, local) = blocking::listen_tcp(addr, ListenOptions::reusable())?;
    lesson::listening(local);
    blocking::serve_forever(&listener, |conn, peer| {
        println!("resetting {peer}");
        reset(conn)
    })?;
    Ok(())
}

fn client(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let fd = blocking::connect_tcp(addr)?;
    sys::send(&fd, b"hello?\n", MsgFlags::NOSIGNAL)?;
    let answer = blocking::read_to_end(&fd, 4096)?;
    println!(
        "the server answered {} bytes and closed normally",
        answer.len()
    );
    Ok(())
}
