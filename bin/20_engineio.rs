//! Lesson 20: Engine.IO v4 over WebSocket: a session, its open packet, the server's ping.
//!
//! Run it: `cargo run --bin 20_engineio -- --trace`, or `20_engineio serve` and
//! `20_engineio client`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use socklab::event_loop::{Config, EventLoop};
use socklab::lesson::{self, Endpoint, Role};
use socklab::transport::engineio::{self, EioConfig, EngineIo};
use socklab::transport::websocket::WsServer;
use socklab::transport::ws_client::WsClient;
use socklab::wire::websocket::Message;

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 20: Engine.IO v4, the layer Socket.IO runs on, over WebSocket. The server \
        opens a session with its first message (`0{\"sid\":...}`), pings every pingInterval \
        (`2`), closes a client that does not answer (`3`) within pingTimeout, and carries \
        messages as `4` + text.\n\n\
        With no arguments it runs the server on the loop (a ping every 300 ms, 200 ms to \
        answer) and steps it by hand while a client opens a session, sends a message, answers \
        one ping and then stays silent; then a request for another protocol version is \
        refused. `serve` runs an echo server with Engine.IO's default heartbeat until Ctrl-C \
        or SIGTERM; `client` opens a session, sends each line of stdin, answers pings, and \
        prints what comes back (default address 127.0.0.1:7020).",
    serve: "Run an Engine.IO echo server over WebSocket until SIGINT/SIGTERM",
    client: "Open a session, send stdin's lines as messages, answer pings, print the answers",
};

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7020, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => client(e.addr),
    })
}

/// The echo: every message goes back as it came.
fn echo(_sid: &str, text: &str) -> Option<String> {
    Some(text.to_string())
}

/// A fixed masking key, so the recorded bytes are the same every run (a real client draws
/// one per frame).
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client that asked for an Engine.IO session (`EIO=4`, `transport=websocket`) or, with
/// another `eio`, for another version of the protocol.
fn ask(addr: SocketAddr, eio: &str) -> Result<WsClient, Box<dyn Error>> {
    let mut c = WsClient::connect(addr, KEY)?;
    c.request_upgrade(
        &format!("/engine.io/?EIO={eio}&transport=websocket"),
        "lesson20",
    )?;
    Ok(c)
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let config = EioConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        numbered_ids: true,
        ..EioConfig::default()
    };
    let mut ev = EventLoop::new(EngineIo::new(config, echo).server(), Config::default())?;
    let addr = ev.ctx().listen("127.0.0.1:0".parse()?)?;
    println!("listening on {addr}");
    let step = Some(Duration::from_secs(1));
    let mut c = ask(addr, "4")?;
    ev.turn(step)?; // accept
    ev.turn(step)?; // the upgrade, then the open packet
    let (status, _) = c.answer()?;
    println!("{status}: the connection is a WebSocket");
    if let Message::Text(open) = c.next_message()? {
        let data = engineio::open_data(&open).ok_or("no open packet")?;
        println!("the open packet: 0{data}");
    }

    c.send_text("4hello")?;
    ev.turn(step)?;
    println!("sent 4hello, got back {:?}", c.next_message()?);

    let stats = |server: &mut WsServer<EngineIo>| server.app().stats();
    for _ in 0..10 {
        if stats(ev.handler()).pings >= 1 {
            break;
        }
        ev.turn(step)?; // sleeps until the ping timer
    }
    println!("300 ms later the server pings: {:?}", c.next_message()?);
    c.send_text("3")?;
    ev.turn(step)?;
    println!(
        "the client answers 3 (pong); pongs seen: {}",
        stats(ev.handler()).pongs
    );

    println!("now the client stays silent");
    for _ in 0..10 {
        if stats(ev.handler()).ping_timeouts >= 1 {
            break;
        }
        ev.turn(step)?;
    }
    println!("after the next ping: {:?}", c.next_message()?);
    println!("then {:?}", c.next_message()?);

    let mut old = ask(addr, "3")?;
    ev.turn(step)?; // accept
    ev.turn(step)?; // refuse
    let (status, body) = old.answer()?;
    println!("a request for EIO=3: {status} {body}");
    let s = stats(ev.handler());
    println!(
        "sessions {}, pings {}, pongs {}, messages {}, ping timeouts {}",
        s.sessions, s.pings, s.pongs, s.messages, s.ping_timeouts
    );
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let server = EngineIo::new(EioConfig::default(), echo).server();
    let s = lesson::serve_on_loop(server, addr, |h| h.app().stats())?;
    println!(
        "stopped: {} sessions, {} messages echoed, {} pings, {} ping timeouts",
        s.sessions, s.messages, s.pings, s.ping_timeouts
    );
    Ok(())
}

fn client(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let mut c = ask(addr, "4")?;
    let (status, body) = c.answer()?;
    if status != 101 {
        return Err(format!("refused: {status} {body}").into());
    }
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)?;
    let mut lines = input.lines();
    loop {
        match c.next_message()? {
            Message::Text(t) if t == "2" => {
                println!("ping; answering 3");
                c.send_text("3")?;
                continue;
            }
            Message::Text(t) if t.starts_with('0') => println!("open: {t}"),
            Message::Text(t) => println!("{t}"),
            other => {
                println!("{other:?}");
                return Ok(());
            }
        }
        match lines.next() {
            Some(line) => {
                c.send_text(&format!("4{line}"))?;
            }
            None => {
                c.send_text("1")?;
                println!("sent 1 (close)");
                return Ok(());
            }
        }
    }
}
