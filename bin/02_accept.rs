//! Lesson 02: a blocking accept, a greeting, a close.
//!
//! Run it: `cargo run --bin 02_accept -- --trace`, or `02_accept serve` and then `nc 127.0.0.1 7002`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use socklab::blocking::{self, ListenOptions};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys;

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 02: accept() a connection, write a greeting, close it.\n\n\
        With no arguments it plays both sides in one process and narrates. `serve` and `client` \
        run one side each (default address 127.0.0.1:7002); `nc 127.0.0.1 7002` works as a client.",
    serve: "Listen, then greet and close every connection, one at a time, until Ctrl-C",
    client: "Connect and print what the server sends until it closes",
};

const GREETING: &[u8] = b"hello from socklab lesson 02\n";

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7002, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => blocking::fetch(e.addr, &mut std::io::stdout()),
    })
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let (listener, addr) = blocking::listen_tcp("127.0.0.1:0".parse()?, ListenOptions::default())?;
    println!("listening on {addr}");

    let client = blocking::connect_tcp(addr)?;
    println!("the client's connect() returned: the kernel finished the handshake on its own");

    let (conn, peer) = sys::accept(&listener, false)?;
    println!("accept() returned {} for the client at {peer}", conn.raw());

    blocking::write_all(&conn, GREETING)?;
    conn.close()?;
    println!("the server wrote its greeting and closed the connection");

    let got = blocking::read_to_end(&client, 64)?;
    println!(
        "the client read \"{}\", then read() returned 0: end of file",
        lesson::show(&got)
    );
    Ok(())
}
// ANCHOR_END: demo

// ANCHOR: serve
fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let (listener, local) = blocking::listen_tcp(addr, ListenOptions::default())?;
    lesson::listening(local);
    blocking::serve_forever(&listener, |conn, peer| {
        println!("accepted {peer}");
        blocking::write_all(&conn, GREETING)?;
        conn.close()
    })?;
    Ok(())
}
// ANCHOR_END: serve
