//! Lesson 19: the WebSocket upgrade, and frames byte by byte.
//!
//! Run it: `cargo run --bin 19_websocket -- --trace`, or `19_websocket serve` and
//! `19_websocket client`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use socklab::blocking;
use socklab::event_loop::{Config, EventLoop};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, Fd};
use socklab::transport::websocket::{Limits, WsServer};
use socklab::wire::http;
use socklab::wire::websocket::{self, Decoder, Message, Opcode};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 19: a WebSocket is an HTTP request that becomes a two-way stream of frames. \
        The client sends Sec-WebSocket-Key, the server proves it read it (SHA-1 + base64) in \
        `101 Switching Protocols`; then every frame has a FIN bit, an opcode, a 7/16/64-bit \
        length and, from the client only, a mask.\n\n\
        With no arguments it runs an echo server on the loop and steps it by hand while a \
        client upgrades, sends a text, a message in two fragments with a ping between them, \
        and closes; then a client that breaks a rule (an unmasked frame). `serve` runs the echo \
        server until Ctrl-C or SIGTERM; `client` upgrades, sends each line of stdin as a text \
        message and prints the echo (default address 127.0.0.1:7019).",
    serve: "Run the WebSocket echo server until SIGINT/SIGTERM",
    client: "Upgrade, send stdin's lines as text messages, print the echoes, close",
};

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7019, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => client(e.addr),
    })
}

/// The echo: every message goes back as it came.
fn echo(m: &Message) -> Option<Message> {
    Some(m.clone())
}

/// A fixed masking key, so that the recorded bytes are the same every run. A real client
/// draws a new one from a random source for every frame (RFC 6455, 5.3).
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

// ANCHOR: handshake
/// The client's key: 16 bytes in base64 (the RFC's example nonce; a real client draws it at
/// random for every connection).
const NONCE: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The client's side of the upgrade, first half: the request.
fn ask_upgrade(fd: &Fd) -> Result<(), Box<dyn Error>> {
    let request = format!(
        "GET /chat HTTP/1.1\r\nHost: lesson19\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {NONCE}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    blocking::write_all(fd, request.as_bytes())?;
    Ok(())
}

/// Second half: the `101` and its accept key, which must be the one the key asks for.
fn read_upgrade(fd: &Fd, kept: &mut Vec<u8>) -> Result<(), Box<dyn Error>> {
    let res = loop {
        if let Some(res) = http::parse_response(kept)? {
            break res;
        }
        read_more(fd, kept)?;
    };
    kept.drain(..res.head_len);
    let accept = res.header("sec-websocket-accept").unwrap_or("");
    if res.status != 101 || accept != http::websocket_accept(NONCE) {
        return Err(format!("no upgrade: {} {accept:?}", res.status).into());
    }
    println!("101 Switching Protocols; Sec-WebSocket-Accept {accept} = base64(SHA-1(key + GUID))");
    Ok(())
}
// ANCHOR_END: handshake

fn read_more(fd: &Fd, kept: &mut Vec<u8>) -> Result<(), Box<dyn Error>> {
    let mut buf = [0u8; 4096];
    let n = sys::read(fd, &mut buf)?;
    if n == 0 {
        return Err("the server closed the connection".into());
    }
    kept.extend_from_slice(&buf[..n]);
    Ok(())
}

/// Reads frames from the server until one message or control frame is whole.
fn next_message(fd: &Fd, d: &mut Decoder, kept: &mut Vec<u8>) -> Result<Message, Box<dyn Error>> {
    loop {
        let mut got = None;
        let used = d.decode(kept, |m| {
            got = Some(m);
            false
        });
        let raw: Vec<u8> = kept.drain(..used).collect();
        if let Some(m) = got {
            println!("  server sent {}", hex(&raw));
            return Ok(m?);
        }
        read_more(fd, kept)?;
    }
}

/// Bytes as hex, the way the page draws frames (the first 40, then how many more).
fn hex(bytes: &[u8]) -> String {
    let all: Vec<String> = bytes.iter().take(40).map(|b| format!("{b:02x}")).collect();
    match bytes.len() {
        n if n > 40 => format!("{} ... ({n} bytes)", all.join(" ")),
        _ => all.join(" "),
    }
}

/// Appends one masked frame to `out` and prints its bytes.
fn frame(out: &mut Vec<u8>, fin: bool, op: Opcode, payload: &[u8]) {
    let start = out.len();
    websocket::encode_frame(fin, op, payload, Some(KEY), out);
    println!("  client sends {}", hex(&out[start..]));
}

/// Sends one masked frame and prints its bytes.
fn send(fd: &Fd, fin: bool, op: Opcode, payload: &[u8]) -> Result<(), Box<dyn Error>> {
    let mut out = Vec::new();
    frame(&mut out, fin, op, payload);
    blocking::write_all(fd, &out)?;
    Ok(())
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let server = WsServer::new(Limits::default(), echo);
    let mut ev = EventLoop::new(server, Config::default())?;
    let addr = ev.ctx().listen("127.0.0.1:0".parse()?)?;
    println!("listening on {addr}");
    let step = Some(Duration::from_secs(1));
    let c = blocking::connect_tcp(addr)?;
    let (mut kept, mut d) = (Vec::new(), Decoder::new(websocket::Role::Client, 1 << 20));
    ask_upgrade(&c)?;
    ev.turn(step)?; // accept
    ev.turn(step)?; // read the request, answer 101
    read_upgrade(&c, &mut kept)?;

    println!("a text message, masked by the client:");
    send(&c, true, Opcode::Text, b"hello")?;
    ev.turn(step)?;
    println!("echo: {:?}", next_message(&c, &mut d, &mut kept)?);

    println!("one message in two fragments, a ping between them, in one write:");
    let mut three = Vec::new();
    frame(&mut three, false, Opcode::Text, b"frag");
    frame(&mut three, true, Opcode::Ping, b"?");
    frame(&mut three, true, Opcode::Continuation, b"ments");
    blocking::write_all(&c, &three)?;
    ev.turn(step)?;
    println!("answer: {:?}", next_message(&c, &mut d, &mut kept)?);
    println!("echo: {:?}", next_message(&c, &mut d, &mut kept)?);

    println!("the close handshake:");
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"done");
    send(&c, true, Opcode::Close, &payload)?;
    ev.turn(step)?;
    println!("answer: {:?}", next_message(&c, &mut d, &mut kept)?);
    let rest = blocking::read_to_end(&c, 64)?;
    println!(
        "then end of file ({} more bytes): the server closed first",
        rest.len()
    );

    println!("a client that does not mask:");
    let bad = blocking::connect_tcp(addr)?;
    ask_upgrade(&bad)?;
    ev.turn(step)?; // accept
    ev.turn(step)?; // read the request, answer 101
    let mut kept = Vec::new();
    read_upgrade(&bad, &mut kept)?;
    let mut frame = Vec::new();
    websocket::encode_frame(true, Opcode::Text, b"hi", None, &mut frame);
    println!("  client sends {}", hex(&frame));
    blocking::write_all(&bad, &frame)?;
    ev.turn(step)?;
    println!("answer: {:?}", next_message(&bad, &mut d, &mut kept)?);

    let s = ev.handler().stats();
    println!(
        "upgrades {}, messages {}, pings {}, rules broken {}",
        s.upgrades, s.messages, s.pings, s.violations
    );
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let server = WsServer::new(Limits::default(), echo);
    let s = lesson::serve_on_loop(server, addr, |h| h.stats())?;
    println!(
        "stopped: {} upgrades, {} messages echoed, {} pings, {} rules broken",
        s.upgrades, s.messages, s.pings, s.violations
    );
    Ok(())
}

fn client(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let c = blocking::connect_tcp(addr)?;
    let mut kept = Vec::new();
    ask_upgrade(&c)?;
    read_upgrade(&c, &mut kept)?;
    let mut d = Decoder::new(websocket::Role::Client, 1 << 20);
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)?;
    for line in input.lines() {
        send(&c, true, Opcode::Text, line.as_bytes())?;
        match next_message(&c, &mut d, &mut kept)? {
            Message::Close(why) => {
                println!("the server closed: {why:?}");
                return Ok(());
            }
            m => println!("echo: {m:?}"),
        }
    }
    send(&c, true, Opcode::Close, &1000u16.to_be_bytes())?;
    println!("answer: {:?}", next_message(&c, &mut d, &mut kept)?);
    Ok(())
}
