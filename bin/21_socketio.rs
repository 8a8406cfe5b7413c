//! Lesson 21: Socket.IO v5 packets inside Engine.IO, on the same event server as lesson 14.
//!
//! Run it: `cargo run --bin 21_socketio -- --trace`, or `21_socketio serve` and
//! `21_socketio client --name ada` (or any Socket.IO client).

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use socklab::apps::greeter;
use socklab::events::{Server, ServerConfig};
use socklab::lesson::{self, Endpoint, Role};
use socklab::transport::ws_client::WsClient;
use socklab::wire::packet::{self, Packet};
use socklab::wire::sio_packet;
use socklab::wire::websocket::{Decoder, Message, Opcode, Role as WsRole};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 21: the real Socket.IO protocol. After the WebSocket upgrade and Engine.IO's \
        open packet, every Socket.IO packet is an Engine.IO message (`4`) holding a type digit, \
        the namespace, an ack id and JSON: `40` CONNECT, `42` EVENT, `43` ACK, `41` DISCONNECT, \
        `44` CONNECT_ERROR; binary arguments become placeholders, and their bytes follow as \
        binary frames (`45N-`, `46N-`).\n\n\
        With no arguments the server of lesson 14 (events `greet` and `upload`, a question to \
        each client) and a Socket.IO client written here talk in one process, every frame \
        printed; then the same conversation's bytes are counted in both encodings. `serve` runs \
        that server for socklab and Socket.IO clients on one port; `client` connects over \
        Socket.IO, greets, uploads stdin as binary, and prints every frame (default address \
        127.0.0.1:7021).",
    serve: "Run lesson 14's server; socklab and Socket.IO clients share its port",
    client: "Connect over Socket.IO, greet, upload stdin as binary, print every frame",
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
    let cli = lesson::parse_sides::<Endpoint, ClientArgs>(7021, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(c)) => client(c.endpoint.addr, &c.name),
    })
}

/// Prints what one side sent: each WebSocket frame's payload as text (or its size, if it is
/// binary), then all the bytes.
fn show(from: &str, bytes: &[u8]) {
    if bytes.starts_with(b"HTTP/") || bytes.starts_with(b"GET ") {
        let line = bytes.split(|&b| b == b'\r').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        println!("{from}: {line} ... ({} bytes of HTTP)", bytes.len());
        return;
    }
    let mut frames = Decoder::new(WsRole::Client, 1 << 20);
    if bytes.first().is_some_and(|b| b & 0x80 != 0) && bytes.get(1).is_some_and(|b| b & 0x80 != 0) {
        frames = Decoder::new(WsRole::Server, 1 << 20); // a client's frame: masked
    }
    let mut parts = Vec::new();
    frames.decode(bytes, |m| {
        parts.push(match m {
            Ok(Message::Text(t)) => t,
            Ok(Message::Binary(b)) => format!("(binary, {} bytes)", b.len()),
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("(not a frame: {e})"),
        });
        true
    });
    println!("{from}: {}", parts.join(" + "));
    print!("{}", lesson::hexdump(bytes));
}

/// The fixed masking key of this lesson's client (a real one draws one per frame).
const KEY: [u8; 4] = [0x21, 0x15, 0x0c, 0x05];

/// Sends one frame and prints it.
fn send(c: &mut WsClient, opcode: Opcode, payload: &[u8]) -> Result<usize, Box<dyn Error>> {
    let bytes = c.send(opcode, payload)?;
    show("client -> server", &bytes);
    Ok(bytes.len())
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let config = ServerConfig {
        id_seed: Some(21), // the same ids every run, so this output can be recorded
        ..ServerConfig::default()
    };
    let mut server = Server::new(config)?;
    let addr = server.listen("127.0.0.1:0".parse()?)?;
    println!("listening on {addr}");
    greeter::install(server.io());
    server.io().set_tap(|bytes| show("server -> client", bytes));
    let mut turn = |n| -> Result<(), Box<dyn Error>> {
        for _ in 0..n {
            server.turn(Some(Duration::from_millis(50)))?;
        }
        Ok(())
    };
    let mut c = WsClient::connect(addr, KEY)?;
    let request = "/socket.io/?EIO=4&transport=websocket";
    c.request_upgrade(request, "lesson21")?;
    println!("client -> server: GET {request} ...");
    turn(2)?; // accept; read the request: 101, then Engine.IO's open packet
    let (status, _) = c.answer()?;
    println!(
        "the client got {status} and the open packet: {:?}",
        c.next_message()?
    );

    let mut sio_bytes = Vec::new();
    sio_bytes.push(send(&mut c, Opcode::Text, br#"40{"name":"ada"}"#)?);
    turn(1)?; // CONNECT: the reply, then the server's question (ack id 1)
    let connected = c.next_message()?;
    let question = c.next_message()?;
    println!("the client got {connected:?} and {question:?}");
    sio_bytes.push(send(&mut c, Opcode::Text, br#"420["greet","ada"]"#)?);
    let placeholder = r#"451-1["upload",{"_placeholder":true,"num":0}]"#;
    let upload = send(&mut c, Opcode::Text, placeholder.as_bytes())?
        + send(&mut c, Opcode::Binary, &[0xde, 0xad, 0xbe, 0xef])?;
    sio_bytes.push(upload);
    sio_bytes.push(send(&mut c, Opcode::Text, br#"431["yes"]"#)?);
    turn(1)?; // the two acks; the answer to the question
    println!(
        "the client got {:?} and {:?}",
        c.next_message()?,
        c.next_message()?
    );
    sio_bytes.push(send(&mut c, Opcode::Text, b"41")?);
    turn(1)?; // DISCONNECT: no namespace left, so the server closes
    println!("the client got {:?}", c.next_message()?);
    turn(2)?;
    count_bytes(&sio_bytes);
    Ok(())
}
// ANCHOR_END: demo

// ANCHOR: count
/// The client's packets of the demo in socklab's encoding (lesson 14), beside what the
/// Socket.IO client sent, byte for byte.
fn count_bytes(sio: &[usize]) {
    let ev = |name: &str, args: Vec<Value>, bin: Vec<Vec<u8>>, id| Packet::Event {
        ns: "/".into(),
        name: name.into(),
        args,
        attachments: bin,
        id,
        offset: None,
    };
    let socklab = [
        Packet::Connect {
            ns: "/".into(),
            data: Some(json!({"name": "ada"})),
        },
        ev("greet", vec![json!("ada")], vec![], Some(1)),
        ev(
            "upload",
            vec![],
            vec![vec![0xde, 0xad, 0xbe, 0xef]],
            Some(2),
        ),
        Packet::Ack {
            ns: "/".into(),
            id: 1,
            args: vec![json!("yes")],
            attachments: vec![],
        },
        Packet::Disconnect {
            ns: "/".into(),
            reason: None,
        },
    ];
    println!("the client's packets, in bytes on the wire:");
    println!("  {:<28} {:>8} {:>10}", "packet", "socklab", "Socket.IO");
    let names = [
        "CONNECT {name}",
        "EVENT greet (ack)",
        "EVENT upload + 4 bytes (ack)",
    ];
    let names = names.iter().chain(&["ACK [\"yes\"]", "DISCONNECT"]);
    for ((name, p), s) in names.zip(&socklab).zip(sio) {
        let frame = packet::encode_to_vec(p);
        println!("  {name:<28} {:>8} {s:>10}", frame.len());
    }
    // One chat message of `socklab chat`, both ways, encoded by each wire's encoder (a
    // client's frame carries 4 more bytes: its masking key).
    let chat = |args, offset| Packet::Event {
        ns: "/chat".into(),
        name: "chat message".into(),
        args,
        attachments: vec![],
        id: None,
        offset,
    };
    let said = chat(vec![json!("lobby"), json!("hi")], None);
    let text = json!({"from": "ada", "room": "lobby", "text": "hi"});
    let heard = chat(vec![text], Some(1));
    println!("one chat message on /chat (computed):");
    for (name, p, mask) in [
        ("sent by ada", &said, 4),
        ("broadcast to the room", &heard, 0),
    ] {
        let mut sio = Vec::new();
        sio_packet::encode(p, &mut sio);
        let frame = packet::encode_to_vec(p);
        println!("  {name:<28} {:>8} {:>10}", frame.len(), sio.len() + mask);
    }
}
// ANCHOR_END: count

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    lesson::serve_events(ServerConfig::default(), addr, greeter::install)
}

// ANCHOR: client
fn client(addr: SocketAddr, name: &str) -> Result<(), Box<dyn Error>> {
    use std::io::Read;
    let mut upload = Vec::new();
    std::io::stdin().read_to_end(&mut upload)?;
    let mut c = WsClient::connect(addr, KEY)?;
    c.request_upgrade("/socket.io/?EIO=4&transport=websocket", &addr.to_string())?;
    let (status, body) = c.answer()?;
    if status != 101 {
        return Err(format!("refused: {status} {body}").into());
    }
    send(
        &mut c,
        Opcode::Text,
        format!(r#"40{{"name":{}}}"#, json!(name)).as_bytes(),
    )?;
    send(
        &mut c,
        Opcode::Text,
        format!(r#"420["greet",{}]"#, json!(name)).as_bytes(),
    )?;
    let placeholder = r#"451-1["upload",{"_placeholder":true,"num":0}]"#;
    send(&mut c, Opcode::Text, placeholder.as_bytes())?;
    send(&mut c, Opcode::Binary, &upload)?;
    let mut acks = 0;
    while acks < 2 {
        let (m, bytes) = c.next_framed()?;
        show("server -> client", &bytes);
        match m {
            Message::Text(t) if t == "2" => {
                send(&mut c, Opcode::Text, b"3")?; // the heartbeat's pong
            }
            Message::Text(t) if t.starts_with("421[\"question\"") => {
                send(&mut c, Opcode::Text, br#"431["yes"]"#)?;
            }
            Message::Text(t) if t.starts_with("43") => acks += 1,
            Message::Close(_) => return Err("the server closed the connection".into()),
            _ => {}
        }
    }
    send(&mut c, Opcode::Text, b"41")?;
    let (_, bytes) = c.next_framed()?;
    show("server -> client", &bytes);
    Ok(())
}
// ANCHOR_END: client
