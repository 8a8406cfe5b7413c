//! Lesson 05: shutdown(SHUT_WR) closes one direction; the reply still comes back.
//!
//! Run it: `cargo run --bin 05_half_close -- --trace`, or `05_half_close serve` and
//! `echo hi | 05_half_close client`.

use std::error::Error;
use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;

use socklab::blocking::{self, ListenOptions};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, Fd};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 05: shutdown(SHUT_WR) versus close(). The client half-closes to say \"that was my \
        whole request\" and still reads the reply; getpeername() tells the server who asked.\n\n\
        With no arguments it plays both sides in one process. `serve` reads each request to end of \
        file and answers with its size and sender; `client` sends stdin, half-closes, and prints the \
        reply (default address 127.0.0.1:7005). `nc -N` behaves like this client.",
    serve: "Listen; read each request until end of file, then reply and close",
    client: "Send stdin, shutdown(SHUT_WR), print the reply",
};

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7005, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => client(e.addr),
    })
}

// ANCHOR: answer
/// The server's side of one connection: the request ends where the stream ends, so read to
/// end of file, then answer and close.
fn answer(conn: &Fd) -> sys::Result<Vec<u8>> {
    let request = blocking::read_to_end(conn, 4096)?;
    let peer = sys::getpeername(conn)?;
    let reply = format!("got {} bytes from {peer}\n", request.len());
    blocking::write_all(conn, reply.as_bytes())?;
    Ok(request)
}
// ANCHOR_END: answer

// ANCHOR: half_close
/// The client's "that was all": no more bytes from this side. The narration is printed here,
/// by the code that does it, so a demo without this call says nothing about a FIN.
fn half_close(fd: &Fd) -> sys::Result<()> {
    sys::shutdown(fd, Shutdown::Write)?;
    println!("the client shut down its sending side (FIN)");
    Ok(())
}
// ANCHOR_END: half_close

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let (listener, addr) = blocking::listen_tcp("127.0.0.1:0".parse()?, ListenOptions::default())?;
    let client = blocking::connect_tcp(addr)?;
    let (conn, _) = sys::accept(&listener, false)?;

    blocking::write_all(&client, b"what time is it?")?;
    println!("the client sent its request");
    half_close(&client)?;

    let request = answer(&conn)?;
    conn.close()?;
    println!(
        "the server read \"{}\" up to end of file, replied, closed",
        lesson::show(&request)
    );

    let reply = blocking::read_to_end(&client, 4096)?;
    println!(
        "after its half-close the client still read: {}",
        lesson::show(&reply)
    );
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let (listener, local) = blocking::listen_tcp(addr, ListenOptions::default())?;
    lesson::listening(local);
    blocking::serve_forever(&listener, |conn, peer| {
        let request = answer(&conn)?;
        println!("answered {} bytes from {peer}", request.len());
        conn.close()
    })?;
    Ok(())
}

// ANCHOR: client
fn client(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let fd = blocking::connect_tcp(addr)?;
    lesson::stdin_chunks(16 * 1024, |chunk| Ok(blocking::write_all(&fd, chunk)?))?;
    sys::shutdown(&fd, Shutdown::Write)?;
    let reply = blocking::read_to_end(&fd, 4096)?;
    std::io::stdout().write_all(&reply)?;
    Ok(())
}
// ANCHOR_END: client
