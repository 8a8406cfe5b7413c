//! Lesson 03: the client side: connect, then read until read() returns 0.
//!
//! Run it: `cargo run --bin 03_connect -- --trace`, or `03_connect serve` and `03_connect client`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use socklab::blocking::{self, ListenOptions};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, Family};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 03: connect() to a server and read until end of file; ECONNREFUSED when nobody \
        listens.\n\n\
        With no arguments it plays both sides in one process. `serve` sends three lines to each \
        client and closes; `client` connects and prints everything until the server closes \
        (default address 127.0.0.1:7003).",
    serve: "Listen, and send three lines to every client, then close it",
    client: "Connect and print what arrives until the server closes",
};

const LINES: [&[u8]; 3] = [b"line one\n", b"line two\n", b"line three\n"];

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7003, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => blocking::fetch(e.addr, &mut std::io::stdout()),
    })
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    // A port that is bound but not listening: a connect there is refused with RST.
    let holder = sys::socket(Family::Inet, false)?;
    sys::bind(&holder, &"127.0.0.1:0".parse()?)?;
    let closed = sys::getsockname(&holder)?;
    match blocking::connect_tcp(closed) {
        Err(e) => println!("nobody listens on {closed}: {e}"),
        Ok(_) => return Err("connect to a closed port succeeded".into()),
    }

    let (listener, addr) = blocking::listen_tcp("127.0.0.1:0".parse()?, ListenOptions::default())?;
    let client = blocking::connect_tcp(addr)?;
    let (conn, _) = sys::accept(&listener, false)?;
    for line in LINES {
        blocking::write_all(&conn, line)?;
    }
    conn.close()?;
    println!("the server wrote 3 lines in 3 writes, then closed");

    // ANCHOR: read_loop
    let mut buf = [0u8; 8];
    loop {
        let n = sys::read(&client, &mut buf)?;
        if n == 0 {
            println!("read() returned 0: the server closed, end of file");
            break;
        }
        println!("read() returned {n} bytes: \"{}\"", lesson::show(&buf[..n]));
    }
    // ANCHOR_END: read_loop
    println!("the reads did not follow the writes: TCP carries bytes, not messages");
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let (listener, local) = blocking::listen_tcp(addr, ListenOptions::default())?;
    lesson::listening(local);
    blocking::serve_forever(&listener, |conn, peer| {
        println!("sending 3 lines to {peer}");
        for line in LINES {
            blocking::write_all(&conn, line)?;
        }
        conn.close()
    })?;
    Ok(())
}
