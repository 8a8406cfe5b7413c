//! Real Socket.IO clients against socklab's server: socket.io-client 4.8.4 on Node.js and
//! python-socketio 5.18.1, pinned in `tests/interop/` (package-lock.json, requirements.txt).
//!
//! Each test starts an [`Interop`] server (a [`RunningServer`] on 127.0.0.1:0 with the
//! handlers below and the chat app), runs one scenario of `tests/interop/client.js` or
//! `client.py` against it, and checks two things: the lines the client printed, which say
//! what it saw (`connect / ok sid=...`, `ack [...]`, `disconnect io server disconnect`), and
//! what the server saw, from its reports ([`Seen`]) and from `ask` on its thread. Moments
//! chosen from outside (a socklab client speaks, the server restarts, a broadcast while the
//! client is away) are commands on the client's stdin; see client.js.
//!
//! | check | Node | Python |
//! |---|---|---|
//! | a. connect on `/` and on `/chat` with auth, on one connection | `node_connect` | `python_connect` |
//! | b. emit with ack, client to server | `node_ack` | `python_ack` |
//! | c. emit with ack, server to client | `node_server_ack` | `python_server_ack` |
//! | d. binary both ways, bytes compared exactly | `node_binary` | `python_binary` |
//! | e. a chat room shared with a socklab-protocol client | `node_rooms` | `python_rooms` |
//! | f. unknown namespace; middleware's `connect_error` (message only: see [`install`]) | `node_refused` | `python_refused` |
//! | g. server-initiated disconnect | `node_kick` | `python_kick` |
//! | h. reconnection after a server restart on the same port | `node_restart` | `python_restart` |
//! | i. connection state recovery | `node_recovery` | none: python-socketio has no recovery |
//!
//! python-socketio's client does not implement connection state recovery (it sends no
//! `pid`/`offset` on reconnecting and has no `recovered` flag), so check i is Node's only.
//!
//! A client that is not installed is skipped with a `SKIPPED:` line saying how to install it,
//! unless `SOCKLAB_REQUIRE_NODE=1` / `SOCKLAB_REQUIRE_PYTHON=1` (CI sets both, after
//! installing them in `.ci/run`): then it fails. `cargo test --test interop -- --nocapture`
//! prints each client's lines.
//!
//! Nothing waits without a limit: the scripts bound every wait and their whole run, the
//! test's reads are bounded by [`WAIT`], every client process is killed on drop (`Proc`'s
//! `Reaper`), every server is stopped by `RunningServer` (also on drop). Loopback only.

mod common;
use common::{any_port, ask, interop_client, over, Proc, Runtime, WAIT};

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Instant;

use serde_json::{json, Value};
use socklab::apps::chat;
use socklab::events::{
    AckError, AckReply, Client, ClientOptions, ClientState, Emit, Io, Refused, RunningServer,
    ServerConfig,
};

/// The namespace whose middleware refuses with details unless the auth has the token.
const VAULT: &str = "/vault";

/// What the server's handlers report to the test thread.
#[derive(Debug)]
enum Seen {
    /// A socket joined `ns` (after its middleware).
    Connected {
        ns: String,
        sid: String,
        auth: Option<Value>,
    },
    /// A socket's `disconnect` listener ran, with this reason.
    Disconnected { sid: String, reason: String },
    /// An `upload` event: its arguments (placeholders where the bytes were) and attachments.
    Upload {
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
    },
    /// A `returned` event: the client sent back what `download` gave it.
    Returned { attachments: Vec<Vec<u8>> },
    /// The ack callback of the server's `ask` ran.
    Answer {
        sid: String,
        result: Result<AckReply, AckError>,
    },
}

/// The bytes client.js and client.py make too: a 32-bit LCG's high bytes (no short period
/// that a shifted copy could match by accident).
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            // The high half's low byte, as the scripts take it.
            (x >> 16) as u8
        })
        .collect()
}

/// What the clients upload (their SMALL and BIG).
fn client_bytes() -> Vec<Vec<u8>> {
    vec![vec![0, 1, 2, 127, 128, 253, 254, 255], pattern(100_000, 7)]
}

/// What the server sends for `download`: NUL, CR, LF and bytes that are not UTF-8, which a
/// text path would mangle, and a big one that is no multiple of anything.
fn server_bytes() -> Vec<Vec<u8>> {
    vec![vec![255, 0, 10, 13, 128], pattern(65_537, 99)]
}

/// Reports connections and disconnections of every socket of `ns`.
fn report_sockets(io: &mut Io, ns: &str, tx: &Sender<Seen>) {
    let tx = tx.clone();
    let ns_name = ns.to_string();
    io.on_connection(ns, move |io, sid| {
        let _ = tx.send(Seen::Connected {
            ns: ns_name.clone(),
            sid: sid.to_string(),
            auth: io.handshake(sid).and_then(|h| h.auth.clone()),
        });
        let tx = tx.clone();
        io.on(sid, "disconnect", move |_, ev| {
            let reason = ev.args.first().and_then(Value::as_str).unwrap_or("");
            let _ = tx.send(Seen::Disconnected {
                sid: ev.socket.to_string(),
                reason: reason.to_string(),
            });
        });
    });
}

/// The server's handlers: the chat app on `/chat`, the scenarios' events on `/`, and
/// middleware with details on [`VAULT`].
fn install(io: &mut Io, tx: Sender<Seen>) {
    chat::install(io);
    // A refusal with details: the client reads them as `err.data`.
    io.use_middleware(VAULT, |hs| match hs.auth.as_ref().map(|a| &a["token"]) {
        Some(Value::String(t)) if t == "letmein" => Ok(()),
        _ => Err(Refused::with_data(
            "not authorized",
            json!({"code": 403, "hint": "ask for a token"}),
        )),
    });
    for ns in ["/", chat::NAMESPACE, VAULT] {
        report_sockets(io, ns, &tx);
    }
    io.on_connection("/", move |io, sid| {
        io.join(sid, "news");
        io.on(sid, "echo", |io, ev| io.ack(ev, ev.args.clone()));
        io.on(sid, "sum", |io, ev| {
            let total: i64 = ev.args.iter().filter_map(Value::as_i64).sum();
            io.ack(ev, vec![json!(total), json!("sum")]);
        });
        let answers = tx.clone();
        io.on(sid, "ask-me", move |io, ev| {
            let (tx, sid) = (answers.clone(), ev.socket.to_string());
            let ask = Emit::new("ask")
                .arg(json!({"q": "life"}))
                .ack(WAIT, move |io, result| {
                    // Tell the client what arrived, too: its line shows the round trip.
                    if let Ok(reply) = &result {
                        let _ = io.emit(&sid, "answered", reply.args.clone());
                    }
                    let _ = tx.send(Seen::Answer { sid, result });
                });
            io.send(&ev.socket, ask).expect("ask the client");
        });
        let uploads = tx.clone();
        io.on(sid, "upload", move |io, ev| {
            let _ = uploads.send(Seen::Upload {
                args: ev.args.clone(),
                attachments: ev.attachments.clone(),
            });
            let lens = ev.attachments.iter().map(Vec::len).collect::<Vec<_>>();
            io.ack_with(ev, vec![json!(lens)], ev.attachments.clone());
        });
        io.on(sid, "download", |io, ev| {
            // The first attachment where an argument points at it, the second appended.
            let mut blob = Emit::new("blob").arg(json!({
                "note": "two attachments",
                "data": {"_placeholder": true, "num": 0},
            }));
            for bytes in server_bytes() {
                blob = blob.binary(bytes);
            }
            io.send(&ev.socket, blob).expect("send the blob");
        });
        let returns = tx.clone();
        io.on(sid, "returned", move |io, ev| {
            let _ = returns.send(Seen::Returned {
                attachments: ev.attachments.clone(),
            });
            let lens = ev.attachments.iter().map(Vec::len).collect::<Vec<_>>();
            io.ack(ev, vec![json!(lens)]);
        });
        io.on(sid, "kick-me", |io, ev| io.disconnect(&ev.socket));
    });
}

/// A server with [`install`]'s handlers on a thread of its own, and its reports.
struct Interop {
    server: RunningServer,
    seen: Receiver<Seen>,
    /// Reports received but not yet taken.
    kept: Vec<Seen>,
}

impl Interop {
    fn start() -> Interop {
        Interop::on(any_port())
    }

    /// On `addr` (a restart takes its predecessor's port; the listener sets SO_REUSEADDR).
    fn on(addr: SocketAddr) -> Interop {
        Interop::with(addr, ServerConfig::default())
    }

    /// On `addr`, with `config`.
    fn with(addr: SocketAddr, config: ServerConfig) -> Interop {
        let (tx, seen) = mpsc::channel();
        let server = RunningServer::start(config, addr, move |io| install(io, tx))
            .unwrap_or_else(|e| panic!("the server starts on {addr}: {e}"));
        assert!(server.addr.ip().is_loopback(), "{}", server.addr);
        Interop {
            server,
            seen,
            kept: Vec::new(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn ask<T: Send + 'static>(&self, f: impl FnOnce(&mut Io) -> T + Send + 'static) -> T {
        ask(&self.server.handle, f)
    }

    /// Waits (at most [`WAIT`]) for a report that `pred` accepts and takes it out.
    fn take(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        if let Some(i) = self.kept.iter().position(&pred) {
            return self.kept.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(s) if pred(&s) => return s,
                Ok(s) => self.kept.push(s),
                Err(_) => panic!(
                    "the server never reported {what} (within {WAIT:?}); it reported {:#?}",
                    self.kept
                ),
            }
        }
    }

    /// The next socket that joined `ns`: its id and auth.
    fn connected(&mut self, ns: &str) -> (String, Option<Value>) {
        match self.take(
            &format!("a connection to {ns}"),
            |s| matches!(s, Seen::Connected { ns: n, .. } if n == ns),
        ) {
            Seen::Connected { sid, auth, .. } => (sid, auth),
            other => unreachable!("take returned a report its predicate refused: {other:?}"),
        }
    }

    /// The reason the `disconnect` listener of `sid` got.
    fn disconnected(&mut self, sid: &str) -> String {
        match self.take(
            &format!("the disconnect of {sid}"),
            |s| matches!(s, Seen::Disconnected { sid: d, .. } if d == sid),
        ) {
            Seen::Disconnected { reason, .. } => reason,
            other => unreachable!("take returned a report its predicate refused: {other:?}"),
        }
    }

    fn stop(self) {
        self.server.stop().expect("the server stops cleanly");
    }
}

/// The name each client's scripts use in the chat.
fn person(rt: Runtime) -> &'static str {
    match rt {
        Runtime::Node => "nodey",
        Runtime::Python => "pyth",
    }
}

/// Why a client says it was disconnected. The libraries word the same events differently:
/// python-socketio says `server disconnect` for socket.io-client's `io server disconnect`
/// and `client disconnect` for `io client disconnect`, and python-engineio reports every
/// end of its WebSocket as `transport error` (it has no `transport close` on that path).
#[derive(Clone, Copy)]
enum Why {
    /// The server disconnected the socket (`Io::disconnect`).
    Server,
    /// The connection ended under the client (here: the server stopped).
    Transport,
    /// The client called `disconnect()` (at the end of a scenario).
    Client,
}

/// The `disconnect REASON` line `rt`'s client prints for `why`.
fn disconnect_line(rt: Runtime, why: Why) -> String {
    let reason = match (rt, why) {
        (Runtime::Node, Why::Server) => "io server disconnect",
        (Runtime::Node, Why::Transport) => "transport close",
        (Runtime::Node, Why::Client) => "io client disconnect",
        (Runtime::Python, Why::Server) => "server disconnect",
        (Runtime::Python, Why::Transport) => "transport error",
        (Runtime::Python, Why::Client) => "client disconnect",
    };
    format!("disconnect {reason}")
}

/// Waits (at most [`WAIT`]) for the line `want`, skipping others.
fn expect(client: &mut Proc, want: &str) {
    client.expect_line(&format!("{want:?}"), |l| l == want);
}

/// Waits for a `connect NS ok sid=SID` line and returns SID.
fn expect_connect(client: &mut Proc, ns: &str) -> String {
    let prefix = format!("connect {ns} ok sid=");
    let line = client.expect_line(&format!("`{prefix}...`"), |l| l.starts_with(&prefix));
    line[prefix.len()..].to_string()
}

/// Sends `done`, waits for the client to exit, checks that it succeeded and printed exactly
/// `want` (the whole transcript: nothing missing, nothing extra, in order); prints it.
fn finish(mut client: Proc, rt: Runtime, want: &[String]) {
    client.write_stdin("done\n");
    let exited = client.finish();
    assert_eq!(exited.code(), Some(0), "{}", exited.describe());
    println!(
        "{} client printed:\n  {}",
        rt.name(),
        exited.stdout.join("\n  ")
    );
    assert_eq!(exited.stdout, want, "{}", exited.describe());
}

// ---------------------------------------------------------------------------------------------
// a. Connect on `/` and on `/chat` with auth
// ---------------------------------------------------------------------------------------------

fn connect(rt: Runtime) {
    let mut server = Interop::start();
    let Some(mut client) = interop_client(rt, "connect", server.addr()) else {
        return;
    };
    let root = expect_connect(&mut client, "/");
    let in_chat = expect_connect(&mut client, "/chat");
    assert_eq!(
        server.connected("/").0,
        root,
        "the id the client got is the server's"
    );
    let (sid, auth) = server.connected(chat::NAMESPACE);
    assert_eq!(sid, in_chat);
    assert_eq!(
        auth,
        Some(json!({"name": person(rt)})),
        "the auth reached the server"
    );

    let (root2, chat2) = (root.clone(), in_chat.clone());
    let (peers, rooms, wires) = server.ask(move |io| {
        let peer = |sid: &str| io.handshake(sid).map(|h| h.peer);
        (
            (peer(&root2), peer(&chat2)),
            io.rooms_of(&chat2),
            io.stats().socketio_connections,
        )
    });
    assert!(peers.0.is_some(), "the server knows socket {root}");
    assert_eq!(peers.0, peers.1, "both namespaces share one connection");
    assert_eq!(wires, 1, "one connection, on the Socket.IO wire");
    let name = person(rt);
    for room in ["lobby", &format!("user:{name}")] {
        assert!(
            rooms.iter().any(|r| r == room),
            "{in_chat} is in {room}: {rooms:?}"
        );
    }
    finish(
        client,
        rt,
        &[
            format!("connect / ok sid={root}"),
            format!("connect /chat ok sid={in_chat}"),
            "bye".into(),
        ],
    );
    server.stop();
}

#[test]
fn node_connect() {
    connect(Runtime::Node);
}

#[test]
fn python_connect() {
    connect(Runtime::Python);
}

// ---------------------------------------------------------------------------------------------
// b. Emit with ack, client to server
// ---------------------------------------------------------------------------------------------

fn acks(rt: Runtime) {
    let server = Interop::start();
    let Some(mut client) = interop_client(rt, "ack", server.addr()) else {
        return;
    };
    let sid = expect_connect(&mut client, "/");
    expect(&mut client, r#"ack [42,"sum"]"#);
    let events_in = server.ask(|io| io.stats().events_in);
    assert_eq!(events_in, 2, "the server handled the two events");
    finish(
        client,
        rt,
        &[
            format!("connect / ok sid={sid}"),
            r#"ack ["hi",{"n":1},[1,2,3],null]"#.into(),
            r#"ack [42,"sum"]"#.into(),
            "bye".into(),
        ],
    );
    server.stop();
}

#[test]
fn node_ack() {
    acks(Runtime::Node);
}

#[test]
fn python_ack() {
    acks(Runtime::Python);
}

// ---------------------------------------------------------------------------------------------
// c. Emit with ack, server to client
// ---------------------------------------------------------------------------------------------

fn server_ack(rt: Runtime) {
    let mut server = Interop::start();
    let Some(mut client) = interop_client(rt, "server-ack", server.addr()) else {
        return;
    };
    let sid = expect_connect(&mut client, "/");
    let answer = server.take("the answer to `ask`", |s| matches!(s, Seen::Answer { .. }));
    let Seen::Answer { sid: from, result } = answer else {
        unreachable!("take returned a report its predicate refused: {answer:?}")
    };
    assert_eq!(from, sid);
    let reply = result.expect("the client answered the server's ack");
    assert_eq!(reply.args, vec![json!({"answer": 42}), json!("and more")]);
    assert!(reply.attachments.is_empty());
    finish(
        client,
        rt,
        &[
            format!("connect / ok sid={sid}"),
            r#"ask {"q":"life"}"#.into(),
            r#"answered [{"answer":42},"and more"]"#.into(),
            "bye".into(),
        ],
    );
    server.stop();
}

#[test]
fn node_server_ack() {
    server_ack(Runtime::Node);
}

#[test]
fn python_server_ack() {
    server_ack(Runtime::Python);
}

// ---------------------------------------------------------------------------------------------
// d. Binary both ways
// ---------------------------------------------------------------------------------------------

/// Compares attachments by length and first differing byte: printing 100 KB helps nobody.
fn assert_same_bytes(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    let lens = |v: &[Vec<u8>]| v.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(lens(got), lens(want), "{what}: attachment lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if let Some(at) = g.iter().zip(w).position(|(a, b)| a != b) {
            panic!("{what}: attachment {i} differs first at byte {at}");
        }
    }
}

fn binary(rt: Runtime) {
    let mut server = Interop::start();
    let Some(mut client) = interop_client(rt, "binary", server.addr()) else {
        return;
    };
    let sid = expect_connect(&mut client, "/");
    let up = server.take("the upload", |s| matches!(s, Seen::Upload { .. }));
    let Seen::Upload { args, attachments } = up else {
        unreachable!("take returned a report its predicate refused: {up:?}")
    };
    // The placeholders stay where the client put its Buffers / bytes.
    let placeholder = |n: u32| json!({"_placeholder": true, "num": n});
    assert_eq!(
        args,
        vec![
            json!({"name": "blob", "data": placeholder(0)}),
            placeholder(1)
        ]
    );
    assert_same_bytes(&attachments, &client_bytes(), "client to server");
    let back = server.take("the bytes sent back", |s| {
        matches!(s, Seen::Returned { .. })
    });
    let Seen::Returned { attachments } = back else {
        unreachable!("take returned a report its predicate refused: {back:?}")
    };
    assert_same_bytes(&attachments, &server_bytes(), "server to client and back");
    finish(
        client,
        rt,
        &[
            format!("connect / ok sid={sid}"),
            "upload ack [8,100000] same=true".into(),
            // serde_json writes an object's keys sorted.
            r#"blob {"data":"<bytes 5 ff000a0d80>","note":"two attachments"} "<bytes 65537>""#
                .into(),
            "blob lengths [5,65537]".into(),
            "returned [[5,65537]]".into(),
            "bye".into(),
        ],
    );
    server.stop();
}

#[test]
fn node_binary() {
    binary(Runtime::Node);
}

#[test]
fn python_binary() {
    binary(Runtime::Python);
}

// ---------------------------------------------------------------------------------------------
// e. Rooms and broadcasts, with a socklab-protocol client in the same room
// ---------------------------------------------------------------------------------------------

/// Every event a socklab client received: its name and arguments.
type Inbox = Rc<RefCell<Vec<(String, Vec<Value>)>>>;

/// A socklab-protocol client (socklab's own client API, stepped on the test thread) in the
/// chat as `rusty`, recording what it receives.
fn rusty(addr: SocketAddr) -> (Client, Inbox) {
    let mut opts = ClientOptions::new(addr);
    opts.namespace = chat::NAMESPACE.to_string();
    opts.auth = Some(json!({"name": "rusty"}));
    let mut client = Client::connect(opts).expect("Client::connect");
    let inbox: Inbox = Rc::default();
    let log = inbox.clone();
    client.io().on_any(move |_, ev| {
        log.borrow_mut().push((ev.name.clone(), ev.args.clone()));
    });
    let ok = client
        .run_until(WAIT, |io| io.state() != ClientState::Connecting)
        .expect("client turn");
    assert!(ok && client.io().is_connected(), "rusty connects");
    (client, inbox)
}

fn rooms(rt: Runtime) {
    let server = Interop::start();
    let Some(mut client) = interop_client(rt, "rooms", server.addr()) else {
        return;
    };
    let name = person(rt);
    let sid = expect_connect(&mut client, "/chat");
    expect(&mut client, r#"ack join [["kitchen","lobby"]]"#);
    let s = sid.clone();
    let rooms = server.ask(move |io| io.rooms_of(&s));
    assert!(rooms.iter().any(|r| r == "kitchen"), "{rooms:?}");

    // A socklab client joins the lobby: the Socket.IO client sees it arrive...
    let (mut rust, inbox) = rusty(server.addr());
    let rust_joined =
        r#"system [{"room":"lobby","text":"rusty joined lobby"}] offset=string"#.to_string();
    expect(&mut client, &rust_joined);
    let members = server.ask(|io| io.sockets_in(chat::NAMESPACE, "lobby").len());
    assert_eq!(members, 2, "both clients are in the lobby");

    // ...gets what the Socket.IO client says...
    client.write_stdin("say\n");
    expect(&mut client, "ack chat message [true]");
    // On socklab's wire the offset is a header field, not an argument.
    let from_them = (
        "chat message".to_string(),
        vec![json!({"room": "lobby", "from": name, "text": format!("hello from {}", rt.name())})],
    );
    let heard = rust
        .run_until(WAIT, |_| inbox.borrow().contains(&from_them))
        .expect("client turn");
    assert!(
        heard,
        "rusty got {from_them:?}; it got {:#?}",
        inbox.borrow()
    );

    // ...and says something back, which the Socket.IO client gets with its offset.
    let answered: Rc<RefCell<Option<Result<AckReply, AckError>>>> = Rc::default();
    let slot = answered.clone();
    rust.io()
        .emit_with_ack(
            "chat message",
            vec![json!("lobby"), json!("hello from rust")],
            vec![],
            WAIT,
            move |_, r| *slot.borrow_mut() = Some(r),
        )
        .expect("rusty's emit");
    let acked = rust
        .run_until(WAIT, |_| answered.borrow().is_some())
        .expect("client turn");
    assert!(acked, "the server answers rusty's message");
    // serde_json writes an object's keys sorted.
    let from_rust =
        r#"chat message [{"from":"rusty","room":"lobby","text":"hello from rust"}] offset=string"#;
    expect(&mut client, from_rust);
    rust.io().disconnect();
    finish(
        client,
        rt,
        &[
            format!("connect /chat ok sid={sid}"),
            format!(r#"system [{{"room":"lobby","text":"{name} joined lobby"}}] offset=string"#),
            format!(
                r#"system [{{"room":"kitchen","text":"{name} joined kitchen"}}] offset=string"#
            ),
            r#"ack join [["kitchen","lobby"]]"#.into(),
            rust_joined,
            // Not its own message back: the chat sends to the room but the sender.
            "ack chat message [true]".into(),
            from_rust.into(),
            "bye".into(),
        ],
    );
    server.stop();
}

#[test]
fn node_rooms() {
    rooms(Runtime::Node);
}

#[test]
fn python_rooms() {
    rooms(Runtime::Python);
}

// ---------------------------------------------------------------------------------------------
// f. Refused: an unknown namespace, and middleware with data
// ---------------------------------------------------------------------------------------------

fn refused(rt: Runtime) {
    let mut server = Interop::start();
    let Some(mut client) = interop_client(rt, "refused", server.addr()) else {
        return;
    };
    let sid = expect_connect(&mut client, VAULT);
    assert_eq!(server.connected(VAULT).0, sid);
    let refusals = server.ask(|io| io.stats().connects_refused);
    assert_eq!(refusals, 2, "/nope and the wrong token");
    finish(
        client,
        rt,
        &[
            "connect_error /nope Invalid namespace data=none".into(),
            r#"connect_error /vault not authorized data={"code":403,"hint":"ask for a token"}"#
                .into(),
            format!("connect /vault ok sid={sid}"),
            "bye".into(),
        ],
    );
    server.stop();
}

#[test]
fn node_refused() {
    refused(Runtime::Node);
}

#[test]
fn python_refused() {
    refused(Runtime::Python);
}

// ---------------------------------------------------------------------------------------------
// g. Server-initiated disconnect
// ---------------------------------------------------------------------------------------------

fn kick(rt: Runtime) {
    let mut server = Interop::start();
    let Some(mut client) = interop_client(rt, "kick", server.addr()) else {
        return;
    };
    let sid = expect_connect(&mut client, "/");
    assert_eq!(server.disconnected(&sid), "server namespace disconnect");
    expect(&mut client, "active false");
    // The client looked 0.5 s after its `disconnect`: no second connection came meanwhile.
    let s = sid.clone();
    let (alive, wires) =
        server.ask(move |io| (io.is_connected(&s), io.stats().socketio_connections));
    assert!(!alive, "{sid} is gone");
    assert_eq!(wires, 1, "the client did not come back");
    finish(
        client,
        rt,
        &[
            format!("connect / ok sid={sid}"),
            disconnect_line(rt, Why::Server),
            "active false".into(),
            "bye".into(),
        ],
    );
    server.stop();
}

#[test]
fn node_kick() {
    kick(Runtime::Node);
}

#[test]
fn python_kick() {
    kick(Runtime::Python);
}

// ---------------------------------------------------------------------------------------------
// h. Reconnection after a server restart
// ---------------------------------------------------------------------------------------------

fn restart(rt: Runtime) {
    // A heartbeat of 1 s + 1 s bounds how long a client may miss the server's going: one run
    // in six, python-engineio left the server's close frame and FIN unread in its socket
    // (CLOSE-WAIT, a byte in the receive queue, seen with `ss`) until its read timeout, which
    // is pingInterval + pingTimeout (45 s by default).
    let quick = || ServerConfig {
        ping_interval: std::time::Duration::from_secs(1),
        ping_timeout: std::time::Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let mut first = Interop::with(any_port(), quick());
    let addr = first.addr();
    let Some(mut client) = interop_client(rt, "restart", addr) else {
        return;
    };
    let before = expect_connect(&mut client, "/");
    assert_eq!(first.connected("/").0, before);
    // A graceful stop: the client gets a WebSocket close (1001, going away), not a
    // DISCONNECT, so it tries again by itself.
    first.stop();
    expect(&mut client, &disconnect_line(rt, Why::Transport));
    let mut second = Interop::with(addr, quick());
    let after = expect_connect(&mut client, "/");
    assert_eq!(second.connected("/").0, after);
    assert_ne!(
        after, before,
        "a new server knows nothing of the old socket"
    );
    let a = after.clone();
    assert!(second.ask(move |io| io.is_connected(&a)));
    finish(
        client,
        rt,
        &match rt {
            Runtime::Node => vec![
                format!("connect / ok sid={before}"),
                disconnect_line(rt, Why::Transport),
                format!("connect / ok sid={after}"),
                disconnect_line(rt, Why::Client),
                "bye".into(),
            ],
            // python-socketio reports its own disconnect after a reconnection on another
            // thread, or not at all: its script does not print it (client.py).
            Runtime::Python => vec![
                format!("connect / ok sid={before}"),
                disconnect_line(rt, Why::Transport),
                format!("connect / ok sid={after}"),
                "bye".into(),
            ],
        },
    );
    second.stop();
}

#[test]
fn node_restart() {
    restart(Runtime::Node);
}

#[test]
fn python_restart() {
    restart(Runtime::Python);
}

// ---------------------------------------------------------------------------------------------
// i. Connection state recovery (Node only: python-socketio has none)
// ---------------------------------------------------------------------------------------------

#[test]
fn node_recovery() {
    recovery();
}

fn recovery() {
    let rt = Runtime::Node;
    let mut server = Interop::start();
    let Some(mut client) = interop_client(rt, "recovery", server.addr()) else {
        return;
    };
    let sid = expect_connect(&mut client, "/");
    assert_eq!(server.connected("/").0, sid);
    let news = |text: &'static str| {
        move |io: &mut Io| io.broadcast("/").to("news").emit("news", vec![json!(text)])
    };
    let sent = server.ask(news("one")).expect("broadcast one");
    assert_eq!(sent, 1, "the client is in the room");
    expect(&mut client, r#"news ["one"] offset=string"#);

    // The transport drops; the server notices and keeps the session.
    client.write_stdin("drop\n");
    assert_eq!(server.disconnected(&sid), "transport close");
    // The client waits 2 s before it comes back: this broadcast finds nobody.
    let sent = server.ask(news("two")).expect("broadcast two");
    assert_eq!(
        sent, 0,
        "the client came back too early for the test to mean anything"
    );

    let again = expect_connect(&mut client, "/");
    assert_eq!(again, sid, "a recovered socket keeps its id");
    expect(&mut client, r#"news ["two"] offset=string"#);
    let stats = server.ask(|io| io.stats());
    assert_eq!(stats.sessions_recovered, 1, "{stats:?}");
    assert_eq!(stats.broadcasts_replayed, 1, "{stats:?}");
    finish(
        client,
        rt,
        &[
            format!("connect / ok sid={sid}"),
            "recovered false".into(),
            r#"news ["one"] offset=string"#.into(),
            // The client closed its own transport: its reason says so.
            "disconnect forced close".into(),
            format!("connect / ok sid={sid}"),
            "recovered true".into(),
            r#"news ["two"] offset=string"#.into(),
            disconnect_line(rt, Why::Client),
            "bye".into(),
        ],
    );
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// The same checks over HTTP long-polling, and over long-polling then the upgrade to WebSocket
// (socket.io-client's default): the same lines, whatever carries them.
// ---------------------------------------------------------------------------------------------

const POLLING: &str = "polling";
const UPGRADE: &str = "polling,websocket";

#[test]
fn node_ack_over_polling() {
    over(POLLING, || acks(Runtime::Node));
}

#[test]
fn python_ack_over_polling() {
    over(POLLING, || acks(Runtime::Python));
}

#[test]
fn node_server_ack_over_polling() {
    over(POLLING, || server_ack(Runtime::Node));
}

#[test]
fn node_binary_over_polling() {
    over(POLLING, || binary(Runtime::Node));
}

#[test]
fn python_binary_over_polling() {
    over(POLLING, || binary(Runtime::Python));
}

#[test]
fn node_rooms_over_polling() {
    over(POLLING, || rooms(Runtime::Node));
}

#[test]
fn node_kick_over_polling() {
    over(POLLING, || kick(Runtime::Node));
}

#[test]
fn node_recovery_over_polling() {
    over(POLLING, recovery);
}

#[test]
fn node_rooms_with_the_upgrade() {
    over(UPGRADE, || rooms(Runtime::Node));
}

// (python-socketio runs event handlers on threads of their own and acks at once, so a
// broadcast and an ack that share a long-polling body may print in either order: its rooms
// scenario, which checks the order, runs over a WebSocket only.)
#[test]
fn python_acks_with_the_upgrade() {
    over(UPGRADE, || acks(Runtime::Python));
}

#[test]
fn node_binary_with_the_upgrade() {
    over(UPGRADE, || binary(Runtime::Node));
}

#[test]
fn node_recovery_with_the_upgrade() {
    over(UPGRADE, recovery);
}
