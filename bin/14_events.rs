//! Lesson 14: the event protocol on the wire: events, acks and binary, byte by byte.
//!
//! Run it: `cargo run --bin 14_events -- --trace`, or `14_events serve` and
//! `14_events client --name ada`.

use std::cell::RefCell;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use socklab::apps::greeter;
use socklab::events::{AckError, AckReply, Client, ClientOptions, Server, ServerConfig};
use socklab::lesson::{self, Endpoint, Role};
use socklab::wire::{frame, packet};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 14: what an event library puts on the wire. Every event is one frame: a packet \
        type, a namespace, a name, JSON arguments, raw binary attachments, and an ack id when the \
        sender wants an answer. The demo prints every frame as it goes out.\n\n\
        With no arguments a client and a server talk in one process. `serve` runs the server \
        (events `greet` and `upload`, each acknowledged); `client` connects, greets, uploads \
        stdin as a binary attachment, and prints every frame (default address 127.0.0.1:7014).",
    serve:
        "Run the server: `greet` and `upload` are acknowledged, every client is asked a question",
    client: "Connect, greet, upload stdin as a binary attachment, print every frame",
};

#[derive(Args)]
struct ClientArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The name sent in the auth payload and the greeting
    #[arg(long, default_value = "ada")]
    name: String,
}

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, ClientArgs>(7014, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(c)) => client(c.endpoint.addr, &c.name),
    })
}

/// Prints one frame: who sent it, what it says, and its bytes.
fn show_frame(from: &str, bytes: &[u8]) {
    let described = packet::decode(&bytes[frame::HEADER_LEN..], &packet::Limits::default())
        .map(|p| p.to_string())
        .unwrap_or_else(|e| format!("(not a packet: {e})"));
    println!("{from}: {described}");
    print!("{}", lesson::hexdump(bytes));
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    // A fixed seed makes the socket id the same every run, so this output can be recorded.
    let config = ServerConfig {
        id_seed: Some(14),
        ..ServerConfig::default()
    };
    let mut server = Server::new(config)?;
    let addr = server.listen("127.0.0.1:0".parse()?)?;
    greeter::install(server.io());
    server
        .io()
        .set_tap(|bytes| show_frame("server -> client", bytes));

    let mut opts = ClientOptions::new(addr);
    opts.auth = Some(json!({"name": "ada"}));
    let mut client = Client::connect(opts)?;
    let replies: Rc<RefCell<Vec<String>>> = Rc::default();
    let io = client.io();
    io.set_tap(|bytes| show_frame("client -> server", bytes));
    io.on("question", |io, ev| io.ack(ev, vec![json!("yes")]));
    let log = replies.clone();
    let greet = move |_: &mut _, r: Result<AckReply, AckError>| {
        log.borrow_mut()
            .push(r.map_or_else(|e| e.to_string(), |a| json!(a.args).to_string()));
    };
    io.emit_with_ack(
        "greet",
        vec![json!("ada")],
        vec![],
        Duration::from_secs(5),
        greet,
    )?;
    let log = replies.clone();
    let upload = move |_: &mut _, r: Result<AckReply, AckError>| {
        log.borrow_mut()
            .push(r.map_or_else(|e| e.to_string(), |a| json!(a.args).to_string()));
    };
    let bytes = vec![0xde, 0xad, 0xbe, 0xef];
    io.emit_with_ack(
        "upload",
        vec![],
        vec![bytes],
        Duration::from_secs(5),
        upload,
    )?;

    // Both sides in one thread: turn each in turn until both answers are back.
    let deadline = Instant::now() + Duration::from_secs(5);
    while replies.borrow().len() < 2 && Instant::now() < deadline {
        client.turn(Some(Duration::from_millis(5)))?;
        server.turn(Some(Duration::from_millis(5)))?;
    }
    for r in replies.borrow().iter() {
        println!("  (the client's ack callback got {r})");
    }
    client.io().disconnect();
    for _ in 0..10 {
        client.turn(Some(Duration::from_millis(5)))?;
        server.turn(Some(Duration::from_millis(5)))?;
    }
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    lesson::serve_events(ServerConfig::default(), addr, greeter::install)
}

// ANCHOR: client
fn client(addr: SocketAddr, name: &str) -> Result<(), Box<dyn Error>> {
    use std::io::Read;
    let mut upload = Vec::new();
    std::io::stdin().read_to_end(&mut upload)?;
    let mut opts = ClientOptions::new(addr);
    opts.auth = Some(json!({ "name": name }));
    let mut client = Client::connect(opts)?;
    let io = client.io();
    io.set_tap(|bytes| show_frame("client -> server", bytes));
    io.on("question", |io, ev| io.ack(ev, vec![json!("yes")]));
    let left = Rc::new(RefCell::new(2));
    for (event, args, bins) in [
        ("greet", vec![json!(name)], vec![]),
        ("upload", vec![], vec![upload]),
    ] {
        let left = left.clone();
        io.emit_with_ack(event, args, bins, Duration::from_secs(5), move |io, r| {
            match r {
                Ok(a) => println!("{event} acknowledged: {}", json!(a.args)),
                Err(e) => println!("{event}: {e}"),
            }
            *left.borrow_mut() -= 1;
            if *left.borrow() == 0 {
                io.disconnect();
            }
        })?;
    }
    client.run()?;
    if let Some(e) = client.io().connect_error() {
        return Err(e.to_string().into());
    }
    Ok(())
}
// ANCHOR_END: client
