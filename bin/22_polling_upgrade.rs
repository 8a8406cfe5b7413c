//! Lesson 22: Engine.IO over HTTP long-polling, and the upgrade to WebSocket.
//!
//! Run it: `cargo run --bin 22_polling_upgrade -- --trace`, or `22_polling_upgrade serve`
//! and a browser, or `22_polling_upgrade client`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use socklab::apps::greeter;
use socklab::events::{Server, ServerConfig};
use socklab::lesson::{self, Endpoint, Role};
use socklab::transport::http_client::{Answer, HttpClient};
use socklab::transport::ws_client::WsClient;
use socklab::wire::websocket::Message;

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 22: Engine.IO without a WebSocket. Long-polling carries the same packets \
        in ordinary HTTP requests: a GET the server holds until it has something to send, and \
        POSTs for what the client sends, records separated by \\x1e. Then the upgrade: a \
        WebSocket for the same session, a probe (2probe, 3probe), the held GET ended with a \
        noop (6), and 5 to switch.\n\n\
        With no arguments lesson 14's server and a client written here have one conversation \
        three ways, every request and answer printed: over long-polling only, over WebSocket \
        only, and over long-polling then the upgrade; then the bytes each way took. `serve` \
        runs that server (a browser's socket.io-client uses long-polling, then upgrades); \
        `client` has the conversation over long-polling (default address 127.0.0.1:7022).",
    serve: "Run lesson 14's server: long-polling, WebSocket and socklab clients on one port",
    client: "Greet over long-polling, printing every request and answer",
};

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7022, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => client(e.addr, &mut |_| Ok(())).map(|_| ()),
    })
}

/// The Engine.IO path for long-polling, with the session once there is one.
fn polling(sid: Option<&str>) -> String {
    let mut target = "/socket.io/?EIO=4&transport=polling".to_string();
    if let Some(sid) = sid {
        target.push_str("&sid=");
        target.push_str(sid);
    }
    target
}

/// A body as printed: the record separator shown as `␞`.
fn shown(body: &[u8]) -> String {
    String::from_utf8_lossy(body).replace('\u{1e}', "␞")
}

/// Writes one request and prints it.
fn ask(c: &mut HttpClient, method: &str, target: &str, body: &str) -> Result<(), Box<dyn Error>> {
    let n = c.request(method, target, body.as_bytes())?;
    let body = if body.is_empty() {
        String::new()
    } else {
        format!(" {}", shown(body.as_bytes()))
    };
    println!("client: {method} {target}{body} ({n} bytes)");
    Ok(())
}

/// Reads one answer and prints it.
fn answer(c: &mut HttpClient) -> Result<Answer, Box<dyn Error>> {
    let a = c.answer()?;
    println!(
        "server: {} {} ({} bytes)",
        a.status,
        shown(&a.body),
        a.wire_len
    );
    Ok(a)
}

/// The session id in an open packet `0{"sid":...}`.
fn sid_of(open: &[u8]) -> Result<String, Box<dyn Error>> {
    let v: Value = serde_json::from_slice(open.get(1..).unwrap_or_default())?;
    Ok(v["sid"]
        .as_str()
        .ok_or("no sid in the open packet")?
        .to_string())
}

// ANCHOR: polling
/// The conversation over long-polling: the handshake, CONNECT, the answers, a greeting.
/// `turn` runs the server's loop between the client's steps (the demo steps it by hand;
/// against another process it does nothing). Returns the session and the bytes both ways.
fn client(
    addr: SocketAddr,
    turn: &mut dyn FnMut(u32) -> Result<(), Box<dyn Error>>,
) -> Result<(String, usize), Box<dyn Error>> {
    let mut poll = HttpClient::connect(addr)?; // the GETs
    let mut post = HttpClient::connect(addr)?; // the POSTs, on a connection of their own
    ask(&mut poll, "GET", &polling(None), "")?;
    turn(2)?;
    let sid = sid_of(&answer(&mut poll)?.body)?;
    let session = polling(Some(&sid));
    ask(&mut post, "POST", &session, r#"40{"name":"ada"}"#)?;
    turn(2)?;
    answer(&mut post)?; // ok
    ask(&mut poll, "GET", &session, "")?;
    turn(1)?;
    answer(&mut poll)?; // the CONNECT reply and the question, in one body
    ask(&mut poll, "GET", &session, "")?; // held: nothing to send yet
    turn(1)?;
    ask(
        &mut post,
        "POST",
        &session,
        "420[\"greet\",\"ada\"]\u{1e}431[\"yes\"]",
    )?;
    turn(2)?; // the POST is answered, and the held GET gets the greeting's ack
    answer(&mut post)?;
    answer(&mut poll)?;
    Ok((sid, poll.sent + poll.received + post.sent + post.received))
}
// ANCHOR_END: polling

// ANCHOR: upgrade
/// The same session moves to a WebSocket: the probe, the noop that ends the held GET, `5`.
fn upgrade(
    addr: SocketAddr,
    turn: &mut dyn FnMut(u32) -> Result<(), Box<dyn Error>>,
) -> Result<(), Box<dyn Error>> {
    let mut poll = HttpClient::connect(addr)?;
    ask(&mut poll, "GET", &polling(None), "")?;
    turn(2)?;
    let sid = sid_of(&answer(&mut poll)?.body)?;
    let session = polling(Some(&sid));
    let mut post = HttpClient::connect(addr)?;
    ask(&mut post, "POST", &session, r#"40{"name":"bob"}"#)?;
    turn(2)?;
    answer(&mut post)?;
    ask(&mut poll, "GET", &session, "")?;
    turn(1)?;
    answer(&mut poll)?;
    ask(&mut poll, "GET", &session, "")?; // held while the WebSocket is tried
    let mut ws = WsClient::connect(addr, [0x22, 0x22, 0x22, 0x22])?;
    let target = format!("/socket.io/?EIO=4&transport=websocket&sid={sid}");
    ws.request_upgrade(&target, "lesson22")?;
    println!("client: GET {target} (the upgrade)");
    turn(2)?;
    let (status, _) = ws.answer()?;
    println!("server: {status} (no open packet: the session has one)");
    ws.send_text("2probe")?;
    println!("client, WebSocket: 2probe");
    turn(1)?;
    println!("server, WebSocket: {:?}", ws.next_message()?);
    answer(&mut poll)?; // the held GET ends with a noop
    ws.send_text("5")?;
    println!("client, WebSocket: 5 (from now on, only the WebSocket)");
    ws.send_text("420[\"greet\",\"bob\"]")?;
    println!("client, WebSocket: 420[\"greet\",\"bob\"]");
    turn(1)?;
    match ws.next_message()? {
        Message::Text(t) => println!("server, WebSocket: {t}"),
        other => println!("server, WebSocket: {other:?}"),
    }
    Ok(())
}
// ANCHOR_END: upgrade

/// The same conversation over a WebSocket from the start (lesson 21); returns the bytes
/// both ways.
fn websocket(
    addr: SocketAddr,
    turn: &mut dyn FnMut(u32) -> Result<(), Box<dyn Error>>,
) -> Result<usize, Box<dyn Error>> {
    let mut ws = WsClient::connect(addr, [0x22, 0x22, 0x22, 0x22])?;
    let target = "/socket.io/?EIO=4&transport=websocket";
    ws.request_upgrade(target, "lesson22")?;
    println!("client: GET {target} (a WebSocket from the start)");
    turn(2)?;
    let (status, _) = ws.answer()?;
    println!("server: {status}");
    let receive = |ws: &mut WsClient| -> Result<(), Box<dyn Error>> {
        println!("server, WebSocket: {:?}", ws.next_message()?);
        Ok(())
    };
    receive(&mut ws)?; // the open packet
    for text in [
        r#"40{"name":"cy"}"#,
        "420[\"greet\",\"cy\"]",
        "431[\"yes\"]",
    ] {
        ws.send_text(text)?;
        println!("client, WebSocket: {text}");
    }
    turn(2)?;
    for _ in 0..3 {
        receive(&mut ws)?; // the CONNECT reply, the question, the greeting's ack
    }
    Ok(ws.sent + ws.received)
}

fn demo() -> Result<(), Box<dyn Error>> {
    let config = ServerConfig {
        id_seed: Some(22), // the same ids every run, so this output can be recorded
        ..ServerConfig::default()
    };
    let mut server = Server::new(config)?;
    let addr = server.listen("127.0.0.1:0".parse()?)?;
    println!("listening on {addr}");
    greeter::install(server.io());
    let mut turn = |n: u32| -> Result<(), Box<dyn Error>> {
        for _ in 0..n {
            server.turn(Some(Duration::from_millis(50)))?;
        }
        Ok(())
    };
    println!("-- 1. long-polling only");
    let (_, bytes) = client(addr, &mut turn)?;
    println!("   HTTP bytes both ways, handshake included: {bytes}");
    println!("-- 2. WebSocket only");
    let ws_bytes = websocket(addr, &mut turn)?;
    println!("   bytes both ways, handshake included: {ws_bytes}");
    println!("-- 3. long-polling, then the upgrade to WebSocket");
    upgrade(addr, &mut turn)?;
    turn(2)?;
    Ok(())
}

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    lesson::serve_events(ServerConfig::default(), addr, greeter::install)
}
