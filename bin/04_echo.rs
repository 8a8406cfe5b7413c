//! Lesson 04: an echo server and client; short reads; the write-all loop.
//!
//! Run it: `cargo run --bin 04_echo -- --trace`, or `04_echo serve` and `04_echo client`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use socklab::blocking::{self, ListenOptions};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, Fd};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 04: an echo server sends back every byte it reads. Reads come in whatever sizes the \
        stream gives; writes go through the write-all loop.\n\n\
        With no arguments it plays both sides in one process. `serve` echoes every connection, one \
        at a time, until the peer closes; `client` sends stdin and prints the echo (default address \
        127.0.0.1:7004).",
    serve: "Listen, and echo every byte of every connection until the peer closes",
    client: "Send stdin to the server, chunk by chunk, and print what comes back",
};

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7004, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => {
            blocking::echo_client(e.addr, std::io::stdin().lock(), &mut std::io::stdout())
        }
    })
}

// ANCHOR: echo
/// Echoes one connection until the peer closes: read what is there, write all of it back.
fn echo(conn: &Fd, buf: &mut [u8]) -> sys::Result<usize> {
    let mut total = 0;
    loop {
        let n = sys::read(conn, buf)?;
        if n == 0 {
            return Ok(total);
        }
        blocking::write_all(conn, &buf[..n])?;
        total += n;
    }
}
// ANCHOR_END: echo

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let (listener, addr) = blocking::listen_tcp("127.0.0.1:0".parse()?, ListenOptions::default())?;
    let client = blocking::connect_tcp(addr)?;
    let (conn, _) = sys::accept(&listener, false)?;

    let message: Vec<u8> = b"0123456789abcdef".repeat(640); // 10 KiB
    blocking::write_all(&client, &message)?;
    sys::shutdown(&client, std::net::Shutdown::Write)?;
    println!("the client wrote {} bytes in one write()", message.len());

    let mut buf = [0u8; 4096];
    let echoed = echo(&conn, &mut buf)?;
    conn.close()?;
    println!(
        "the server read them in {}-byte pieces and echoed {echoed}",
        buf.len()
    );

    let back = blocking::read_to_end(&client, 64 * 1024)?;
    println!(
        "the client read {} bytes back, same as sent: {}",
        back.len(),
        back == message
    );
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let (listener, local) = blocking::listen_tcp(addr, ListenOptions::default())?;
    lesson::listening(local);
    let mut buf = vec![0u8; 64 * 1024];
    blocking::serve_forever(&listener, |conn, peer| {
        let n = echo(&conn, &mut buf)?;
        println!("echoed {n} bytes to {peer}");
        conn.close()
    })?;
    Ok(())
}
