//! Lesson 08: length-prefixed frames over a byte stream.
//!
//! Run it: `cargo run --bin 08_framing -- --trace`, or `08_framing serve` and
//! `08_framing client --byte-at-a-time`.

use std::error::Error;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;
use socklab::blocking::{self, ListenOptions};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, Fd};
use socklab::wire::frame::{self, Decoder};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 08: TCP keeps no message boundaries, so we add them: each frame is a 4-byte \
        big-endian length and that many bytes. An incremental decoder rebuilds the frames however \
        the bytes arrive, and refuses a frame over its limit from the header alone.\n\n\
        With no arguments it sends frames one byte per write(), then several in one write(), then \
        an oversized header. `serve` prints every frame and answers each with a frame; `client` \
        sends each line of stdin as a frame (default address 127.0.0.1:7008).",
    serve: "Listen; print each frame received and answer it with a frame",
    client: "Send each line of stdin as one frame and print the answers",
};

#[derive(Args)]
struct ClientArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Write the frames one byte per write(), the worst case for the reader
    #[arg(long)]
    byte_at_a_time: bool,
}

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, ClientArgs>(7008, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(c)) => client(c.endpoint.addr, c.byte_at_a_time),
    })
}

// ANCHOR: receive
/// One `read` into the decoder, then every frame that is now complete.
/// Returns `Ok(None)` at end of file.
fn receive(fd: &Fd, dec: &mut Decoder) -> Result<Option<Vec<Vec<u8>>>, Box<dyn Error>> {
    let mut buf = [0u8; 4096];
    let n = sys::read(fd, &mut buf)?;
    if n == 0 {
        dec.finish()?; // end of file inside a frame is an error
        return Ok(None);
    }
    dec.feed(&buf[..n]);
    let mut frames = Vec::new();
    while let Some(payload) = dec.next_frame()? {
        frames.push(payload.to_vec());
    }
    Ok(Some(frames))
}
// ANCHOR_END: receive

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let (listener, addr) = blocking::listen_tcp("127.0.0.1:0".parse()?, ListenOptions::default())?;
    let client = blocking::connect_tcp(addr)?;
    let (conn, _) = sys::accept(&listener, false)?;
    let mut dec = Decoder::default();

    println!("1. two frames, written one byte per write()");
    let mut wire = Vec::new();
    frame::encode(b"hi", &mut wire);
    frame::encode(b"one byte at a time", &mut wire);
    for byte in &wire {
        sys::write(&client, std::slice::from_ref(byte))?;
        for payload in receive(&conn, &mut dec)?.unwrap_or_default() {
            println!("   frame complete: \"{}\"", lesson::show(&payload));
        }
    }

    println!("2. three frames in one write()");
    wire.clear();
    for payload in [&b"live"[..], b"scores", b"1-0"] {
        frame::encode(payload, &mut wire);
    }
    blocking::write_all(&client, &wire)?;
    let frames = receive(&conn, &mut dec)?.unwrap_or_default();
    println!("   one read() gave {} frames", frames.len());

    println!("3. a header that declares 4 GB");
    blocking::write_all(&client, &[0xff, 0xff, 0xff, 0xf0])?;
    match receive(&conn, &mut dec) {
        Err(e) => println!("   refused before allocating anything: {e}"),
        Ok(_) => return Err("the decoder accepted an oversized frame".into()),
    }
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    // SO_REUSEADDR (lesson 06): a restarted server gets its port back at once.
    let (listener, local) = blocking::listen_tcp(addr, ListenOptions::reusable())?;
    lesson::listening(local);
    blocking::serve_forever(&listener, |conn, peer| {
        let mut dec = Decoder::default();
        loop {
            match receive(&conn, &mut dec) {
                Ok(Some(frames)) => {
                    for payload in frames {
                        println!("{peer}: frame \"{}\"", lesson::show(&payload));
                        let mut answer = Vec::new();
                        frame::encode(
                            format!("got {} bytes", payload.len()).as_bytes(),
                            &mut answer,
                        );
                        blocking::write_all(&conn, &answer)?;
                    }
                }
                Ok(None) => return conn.close(),
                Err(e) => {
                    // A bad frame ends this connection only; the server goes on.
                    println!("{peer}: closing: {e}");
                    return conn.close();
                }
            }
        }
    })?;
    Ok(())
}

fn client(addr: SocketAddr, byte_at_a_time: bool) -> Result<(), Box<dyn Error>> {
    let fd = blocking::connect_tcp(addr)?;
    let mut dec = Decoder::default();
    for line in std::io::stdin().lock().lines() {
        let mut wire = Vec::new();
        frame::encode(line?.as_bytes(), &mut wire);
        if byte_at_a_time {
            for byte in &wire {
                blocking::write_all(&fd, std::slice::from_ref(byte))?;
            }
        } else {
            blocking::write_all(&fd, &wire)?;
        }
        // Wait for the answer to this frame before sending the next.
        let answer = loop {
            match receive(&fd, &mut dec)? {
                Some(frames) if !frames.is_empty() => break frames,
                Some(_) => continue,
                None => return Err("the server closed before answering".into()),
            }
        };
        for payload in answer {
            println!("{}", lesson::show(&payload));
        }
    }
    Ok(())
}
