//! The event layer (src/events) end to end: real servers and clients on 127.0.0.1, port 0.
//!
//! Most tests start a [`Lab`]: a [`RunningServer`] on a thread of its own, with handlers that
//! answer (`echo`, `echo-bin`, `sum`, `shout`, `everyone`, `upload`, `burst`), misbehave on purpose
//! (`boom` panics, `silent` never answers), and report what the server saw (connections,
//! disconnect reasons, uploads, ack results) over an mpsc channel. The test thread steps the
//! clients with bounded `run_until`/`turn` calls. Where the point is a byte the library would
//! never send, a [`Raw`] std `TcpStream` speaks the protocol by hand.
//!
//! - `rooms_and_broadcasts_reach_exactly_their_recipients`: `broadcast_from`, `broadcast`,
//!   `to`, unions, `except`, `except_socket`, each socket's own room, leaving on disconnect.
//! - `acks_*`: answers both ways, timeouts both ways, `Disconnected` both ways.
//! - `binary_attachments_round_trip_exactly`: 0 bytes and 900 KiB, both directions, in order.
//! - `a_frame_over_the_limit_*`: a 2 MB frame from a raw peer; `EmitError::TooLarge` locally.
//! - `middleware_*`: refusal with its message, accepted auth, unknown namespace.
//! - `reserved_names_*`: refused on both sides; a raw peer cannot fake them.
//! - `reason_*`: every disconnect reason, each produced by the situation it names.
//! - `server_handle_broadcast_from_another_thread_reaches_the_room`.
//! - `a_client_that_disconnects_in_a_listener_gets_no_more_events`.
//! - `cli_*`, `lesson_14_*`, `lesson_15_*`: the binaries as real processes.
//!
//! A negative claim ("C did not get it") needs a moment after which it would have arrived:
//! a [`fence`] broadcasts a numbered event after the action, through the same server, and
//! waits until every client has it. The server handles its work in order and each connection
//! is FIFO, so whatever the action sent is in the inboxes by then.
//!
//! Nothing waits without a limit ([`WAIT`], [`EXIT_WAIT`], socket timeouts); every server
//! thread is stopped by `RunningServer` (also on drop) and every child process by its
//! [`Reaper`]. No assertion is about speed.

mod common;
use common::{any_port, ask, collect, lines_of, pseudo_random, Reaper, WAIT};

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use socket2::{Domain, SockRef, Socket, Type};
use socklab::events::{
    reasons, AckError, AckReply, Client, ClientIo, ClientOptions, ClientState, Emit, EmitError, Io,
    RunningServer, ServerConfig, ServerGone, ServerHandle,
};
use socklab::wire::frame::HEADER_LEN;
use socklab::wire::packet::{self, Limits, Packet};

/// The longest a child process may take to exit once it should.
const EXIT_WAIT: Duration = Duration::from_secs(30);

const SOCKLAB: &str = env!("CARGO_BIN_EXE_socklab");
const EVENTS_14: &str = env!("CARGO_BIN_EXE_14_events");
const ROOMS_15: &str = env!("CARGO_BIN_EXE_15_rooms");

/// The lab's namespace with middleware: only `{"token": "letmein"}` gets in.
const ADMIN: &str = "/admin";
const NO_TOKEN: &str = "not authorized: a token is required";
const BAD_TOKEN: &str = "not authorized: bad token";

/// The event names the library keeps for itself and a program must not emit.
const RESERVED: [&str; 4] = ["connect", "disconnect", "disconnecting", "connect_error"];

/// Compares attachments by length and first differing byte: printing 900 KiB helps nobody.
fn assert_same_attachments(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    let lens = |v: &[Vec<u8>]| v.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(lens(got), lens(want), "{what}: attachment lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if let Some(at) = g.iter().zip(w).position(|(a, b)| a != b) {
            panic!("{what}: attachment {i} differs first at byte {at}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The lab server
// ---------------------------------------------------------------------------------------------

/// What the lab server tells the test thread.
#[derive(Debug, Clone)]
enum Report {
    /// A listener for one of the library's own event names ran for socket `sid`; `rooms`
    /// are the socket's rooms at that moment.
    Fired {
        sid: String,
        name: String,
        args: Vec<Value>,
        rooms: Vec<String>,
    },
    /// A socket joined the admin namespace (past the middleware).
    Admitted { sid: String, auth: Option<Value> },
    /// An `upload` event arrived.
    Upload {
        sid: String,
        attachments: Vec<Vec<u8>>,
    },
    /// An ack callback of an emit the test made on the server ran.
    Ack {
        tag: String,
        result: Result<AckReply, AckError>,
    },
}

/// The handlers of the lab server.
fn install_lab(io: &mut Io, tx: Sender<Report>) {
    io.insert_data(tx.clone());
    let admitted = tx.clone();
    io.on_connection("/", move |io, sid| {
        // Listeners on the reserved names: `disconnecting` and `disconnect` are real events
        // with the reason as their argument; `connect` and `connect_error` never fire on a
        // server socket, so a report of them is a bug.
        for name in RESERVED {
            let tx = tx.clone();
            io.on(sid, name, move |io, ev| {
                let _ = tx.send(Report::Fired {
                    sid: ev.socket.clone(),
                    name: ev.name.clone(),
                    args: ev.args.clone(),
                    rooms: io.rooms_of(&ev.socket),
                });
            });
        }
        io.on(sid, "echo", |io, ev| io.ack(ev, ev.args.clone()));
        io.on(sid, "echo-bin", |io, ev| {
            let lens = ev.attachments.iter().map(|a| json!(a.len())).collect();
            io.ack_with(ev, lens, ev.attachments.clone());
        });
        io.on(sid, "sum", |io, ev| {
            let total: i64 = ev.args.iter().filter_map(Value::as_i64).sum();
            io.ack(ev, vec![json!(total), json!("sum")]);
        });
        io.on(sid, "shout", |io, ev| {
            let n = io
                .broadcast_from(&ev.socket)
                .emit("shout", ev.args.clone())
                .ok();
            io.ack(ev, vec![json!(n)]);
        });
        io.on(sid, "everyone", |io, ev| {
            let n = io.broadcast("/").emit("everyone", ev.args.clone()).ok();
            io.ack(ev, vec![json!(n)]);
        });
        let uploads = tx.clone();
        io.on(sid, "upload", move |io, ev| {
            let _ = uploads.send(Report::Upload {
                sid: ev.socket.clone(),
                attachments: ev.attachments.clone(),
            });
            io.ack(ev, vec![json!(ev.attachments.len())]);
        });
        io.on(sid, "boom", |_, _| {
            panic!("the `boom` listener panics on purpose")
        });
        io.on(sid, "burst", |io, ev| {
            // Three events in one handler: one write, so they usually arrive in one read.
            for i in 0..3 {
                let _ = io.emit(&ev.socket, "n", vec![json!(i)]);
            }
        });
        // `silent` has no listener: acks asked for it time out.
    });
    io.use_middleware(ADMIN, |hs| {
        let token = hs.auth.as_ref().and_then(|a| a.get("token"));
        match token.and_then(Value::as_str) {
            Some("letmein") => Ok(()),
            Some(_) => Err(BAD_TOKEN.to_string()),
            None => Err(NO_TOKEN.to_string()),
        }
    });
    io.on_connection(ADMIN, move |io, sid| {
        let _ = admitted.send(Report::Admitted {
            sid: sid.to_string(),
            auth: io.handshake(sid).and_then(|h| h.auth.clone()),
        });
    });
}

/// The reports from the lab server, with those already received and not yet asked for.
struct Reports {
    rx: Receiver<Report>,
    kept: Vec<Report>,
}

impl Reports {
    /// Waits (at most [`WAIT`]) for a report that `pred` accepts and takes it out.
    fn take(&mut self, what: &str, pred: impl Fn(&Report) -> bool) -> Report {
        if let Some(i) = self.kept.iter().position(&pred) {
            return self.kept.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(r) if pred(&r) => return r,
                Ok(r) => self.kept.push(r),
                Err(_) => panic!(
                    "the server never reported {what} (within {WAIT:?}); it reported {:#?}",
                    self.kept
                ),
            }
        }
    }

    /// Every report received so far, without waiting.
    fn received(&mut self) -> &[Report] {
        while let Ok(r) = self.rx.try_recv() {
            self.kept.push(r);
        }
        &self.kept
    }
}

/// The reason in a `disconnecting` or `disconnect` report.
fn reason_in(r: &Report) -> String {
    match r {
        Report::Fired { args, .. } => args
            .first()
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("a disconnect without a reason: {r:?}"))
            .to_string(),
        other => panic!("not a report of a listener: {other:?}"),
    }
}

/// Steps `peers` until the server reports what `pred` accepts, and takes that report. The
/// clients must be stepped meanwhile: what they queued (a DISCONNECT, an answer) leaves on a
/// turn.
fn await_report(
    reports: &mut Reports,
    peers: &mut [&mut Peer],
    what: &str,
    pred: impl Fn(&Report) -> bool,
) -> Report {
    pump(peers, what, |_| reports.received().iter().any(&pred));
    reports.take(what, pred)
}

/// The reason the server's `disconnect` listener got for socket `sid`.
fn await_reason(reports: &mut Reports, peers: &mut [&mut Peer], sid: &str) -> String {
    let what = format!("the disconnect of {sid}");
    reason_in(&await_report(reports, peers, &what, |r| {
        fired(r, sid, "disconnect")
    }))
}

/// The result the server's ack callback tagged `tag` got.
fn await_ack(
    reports: &mut Reports,
    peers: &mut [&mut Peer],
    tag: &str,
) -> Result<AckReply, AckError> {
    let what = format!("the ack callback {tag:?}");
    match await_report(
        reports,
        peers,
        &what,
        |r| matches!(r, Report::Ack { tag: t, .. } if t == tag),
    ) {
        Report::Ack { result, .. } => result,
        other => unreachable!("await_report returned a report its predicate refused: {other:?}"),
    }
}

fn fired(r: &Report, sid: &str, event: &str) -> bool {
    matches!(r, Report::Fired { sid: s, name, .. } if s == sid && name == event)
}

/// A lab server on its own thread.
struct Lab {
    server: RunningServer,
    reports: Reports,
}

impl Lab {
    fn start() -> Lab {
        Lab::with(ServerConfig::default())
    }

    fn with(config: ServerConfig) -> Lab {
        let (tx, rx) = mpsc::channel();
        let server = RunningServer::start(config, any_port(), move |io| install_lab(io, tx))
            .expect("the lab server starts on 127.0.0.1:0");
        assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
        assert_ne!(server.addr.port(), 0, "port 0 must become a real port");
        Lab {
            server,
            reports: Reports {
                rx,
                kept: Vec::new(),
            },
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn handle(&self) -> ServerHandle {
        self.server.handle.clone()
    }

    /// Runs `f` on the server's thread and returns what it returned.
    fn ask<T: Send + 'static>(&self, f: impl FnOnce(&mut Io) -> T + Send + 'static) -> T {
        ask(&self.server.handle, f)
    }

    /// Stops the server gracefully; the reports stay readable.
    fn stop(self) -> Reports {
        let Lab { server, reports } = self;
        server.stop().expect("the server stops cleanly");
        reports
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// One event as a client received it.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    name: String,
    args: Vec<Value>,
    attachments: Vec<Vec<u8>>,
}

impl Got {
    /// `name [args]`, for comparing lists of events.
    fn line(&self) -> String {
        format!("{} {}", self.name, json!(self.args))
    }
}

type Inbox = Rc<RefCell<Vec<Got>>>;

/// A library client that records every event it receives.
struct Peer {
    client: Client,
    inbox: Inbox,
    sid: String,
}

impl Peer {
    fn connect(addr: SocketAddr) -> Peer {
        Peer::connect_with(ClientOptions::new(addr))
    }

    fn connect_with(opts: ClientOptions) -> Peer {
        let mut client = Client::connect(opts).expect("Client::connect");
        let inbox: Inbox = Rc::default();
        let log = inbox.clone();
        client.io().on_any(move |_, ev| {
            log.borrow_mut().push(Got {
                name: ev.name.clone(),
                args: ev.args.clone(),
                attachments: ev.attachments.clone(),
            });
        });
        let settled = client
            .run_until(WAIT, |io| io.state() != ClientState::Connecting)
            .expect("client turn");
        assert!(
            settled && client.io().is_connected(),
            "the client did not connect: state {:?}, connect_error {:?}",
            client.io().state(),
            client.io().connect_error()
        );
        // Connected means the server's CONNECT reply, which carries the id, arrived.
        let sid = client.io().id().expect("a connected client has an id");
        let sid = sid.to_string();
        Peer { client, inbox, sid }
    }

    fn io(&mut self) -> &mut ClientIo {
        self.client.io()
    }

    /// Steps this client until `done`, failing the test after [`WAIT`].
    fn run_until(&mut self, what: &str, done: impl FnMut(&mut ClientIo) -> bool) {
        let ok = self.client.run_until(WAIT, done).expect("client turn");
        assert!(ok, "{what}: not within {WAIT:?}");
    }

    fn run_until_disconnected(&mut self) {
        self.run_until("the client disconnects", |io| {
            io.state() == ClientState::Disconnected
        });
    }

    /// Emits `event` asking for an ack; the slot fills when the callback runs.
    fn emit_ack(
        &mut self,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> AckSlot {
        let slot: AckSlot = Rc::default();
        let fill = slot.clone();
        self.io()
            .emit_with_ack(event, args, attachments, timeout, move |_, r| {
                let old = fill.borrow_mut().replace(r);
                assert!(old.is_none(), "an ack callback ran twice");
            })
            .unwrap_or_else(|e| panic!("emit_with_ack {event:?}: {e}"));
        slot
    }

    /// Steps until the ack callback behind `slot` has run; returns what it got.
    fn wait_ack(&mut self, slot: &AckSlot) -> Result<AckReply, AckError> {
        let s = slot.clone();
        self.run_until("the ack callback", move |_| s.borrow().is_some());
        slot.borrow_mut()
            .take()
            .expect("run_until returned because the slot is full")
    }

    /// An `echo` round trip: proves this client and the server still talk.
    fn assert_echo(&mut self, text: &str) {
        let slot = self.emit_ack("echo", vec![json!(text)], vec![], WAIT);
        let reply = self.wait_ack(&slot).expect("the echo is answered");
        assert_eq!(reply.args, vec![json!(text)]);
    }
}

type AckSlot = Rc<RefCell<Option<Result<AckReply, AckError>>>>;

/// Steps every client in turn until `done`, failing the test after [`WAIT`].
fn pump(peers: &mut [&mut Peer], what: &str, mut done: impl FnMut(&[&mut Peer]) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        if done(peers) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        if peers.is_empty() {
            thread::sleep(Duration::from_millis(5));
        }
        for p in peers.iter_mut() {
            p.client
                .turn(Some(Duration::from_millis(5)))
                .expect("client turn");
        }
    }
}

/// Numbers the fences of all tests (they run in parallel; any unique number will do).
static FENCES: AtomicU64 = AtomicU64::new(0);

/// Broadcasts a numbered `fence` to namespace `/` and waits until every peer has it; returns
/// what each peer received before it (and takes that out of its inbox).
fn fence(handle: &ServerHandle, peers: &mut [&mut Peer]) -> Vec<Vec<String>> {
    let n = FENCES.fetch_add(1, Ordering::Relaxed);
    handle
        .run(move |io| {
            let _ = io.broadcast("/").emit("fence", vec![json!(n)]);
        })
        .expect("the server is running");
    let is_this = move |g: &Got| g.name == "fence" && g.args == [json!(n)];
    pump(peers, "every client gets the fence", |ps| {
        ps.iter().all(|p| p.inbox.borrow().iter().any(is_this))
    });
    peers
        .iter()
        .map(|p| {
            let mut inbox = p.inbox.borrow_mut();
            // `pump` returned, so every inbox holds this fence.
            let at = inbox
                .iter()
                .position(is_this)
                .expect("pump saw the fence here");
            let before: Vec<Got> = inbox.drain(..=at).collect();
            before[..at]
                .iter()
                .filter(|g| g.name != "fence")
                .map(Got::line)
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A raw peer: the protocol by hand over a std TcpStream
// ---------------------------------------------------------------------------------------------

/// A std `TcpStream` that has done HELLO and CONNECT by hand and knows its socket id.
struct Raw {
    stream: TcpStream,
    sid: String,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        Raw::connect_with(addr, None)
    }

    /// `rcvbuf` shrinks SO_RCVBUF before connecting (a peer that cannot take much).
    fn connect_with(addr: SocketAddr, rcvbuf: Option<usize>) -> Raw {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        if let Some(n) = rcvbuf {
            socket.set_recv_buffer_size(n).expect("SO_RCVBUF");
        }
        socket
            .connect_timeout(&addr.into(), WAIT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(WAIT)).expect("set timeout");
        stream.set_write_timeout(Some(WAIT)).expect("set timeout");
        let mut raw = Raw {
            stream,
            sid: String::new(),
        };
        raw.send(&Packet::hello(json!({})));
        raw.send(&Packet::Connect {
            ns: "/".into(),
            data: None,
        });
        // The server's HELLO comes first, then its CONNECT with our id.
        for _ in 0..4 {
            if let Packet::Connect { data, .. } = raw.read_packet() {
                let sid = data.as_ref().and_then(|d| d.get("sid"));
                raw.sid = sid
                    .and_then(Value::as_str)
                    .expect("CONNECT carries {\"sid\": ...}")
                    .to_string();
                return raw;
            }
        }
        panic!("no CONNECT reply from the server");
    }

    fn send(&mut self, p: &Packet) {
        let mut bytes = Vec::new();
        packet::encode(p, &mut bytes);
        self.stream.write_all(&bytes).expect("write to the server");
    }

    fn read_packet(&mut self) -> Packet {
        let mut header = [0u8; HEADER_LEN];
        self.stream
            .read_exact(&mut header)
            .expect("a frame header from the server");
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        self.stream
            .read_exact(&mut payload)
            .expect("a frame payload from the server");
        let limits = Limits {
            max_frame: 8 << 20,
            ..Limits::default()
        };
        packet::decode(&payload, &limits).expect("the server sends valid packets")
    }

    /// Reads until the server closes the connection: end of file or a reset (a server that
    /// closes with our bytes unread sends RST). Whatever arrives first is skipped.
    fn wait_closed(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("the server did not close the connection: {e}"),
            }
        }
        panic!("the server did not close the connection within {WAIT:?}");
    }
}

fn event(name: &str, args: Vec<Value>, id: Option<u32>) -> Packet {
    Packet::Event {
        ns: "/".into(),
        name: name.into(),
        args,
        attachments: vec![],
        id,
    }
}

/// The lab's report sender, for closures the test runs on the server thread.
fn lab_tx(io: &Io) -> Sender<Report> {
    io.data::<Sender<Report>>()
        .cloned()
        .expect("install_lab keeps its report sender in Io's data")
}

/// An ack callback for the server side that reports its result under `tag`.
fn ack_reporter(
    tx: Sender<Report>,
    tag: &str,
) -> impl FnOnce(&mut Io, Result<AckReply, AckError>) + 'static {
    let tag = tag.to_string();
    move |_, result| {
        let _ = tx.send(Report::Ack { tag, result });
    }
}

/// Records the arguments of every `disconnect` event a client fires.
fn record_disconnects(peer: &mut Peer) -> Rc<RefCell<Vec<Value>>> {
    let log: Rc<RefCell<Vec<Value>>> = Rc::default();
    let l = log.clone();
    peer.io().on("disconnect", move |_, ev| {
        l.borrow_mut().extend(ev.args.iter().cloned());
    });
    log
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// 1. Rooms and broadcasts
// ---------------------------------------------------------------------------------------------

#[test]
fn rooms_and_broadcasts_reach_exactly_their_recipients() {
    let mut lab = Lab::start();
    let handle = lab.handle();
    let mut a = Peer::connect(lab.addr());
    let mut b = Peer::connect(lab.addr());
    let mut c = Peer::connect(lab.addr());
    let (sa, sb, sc) = (a.sid.clone(), b.sid.clone(), c.sid.clone());

    // A handler's `broadcast_from(sender)`: the two others, not the sender. The ack is queued
    // after the broadcast, so a copy for the sender would have arrived before it.
    let slot = a.emit_ack("shout", vec![json!("hi from a")], vec![], WAIT);
    let reply = a.wait_ack(&slot).expect("shout is acknowledged");
    assert_eq!(
        reply.args,
        vec![json!(2)],
        "broadcast_from counts 2 recipients"
    );
    let got = fence(&handle, &mut [&mut a, &mut b, &mut c]);
    assert_eq!(got[0], Vec::<String>::new(), "the sender gets no copy");
    assert_eq!(got[1], ["shout [\"hi from a\"]"]);
    assert_eq!(got[2], ["shout [\"hi from a\"]"]);

    // `broadcast("/")` from a handler: all three, the sender too.
    let slot = b.emit_ack("everyone", vec![json!("to all")], vec![], WAIT);
    let reply = b.wait_ack(&slot).expect("everyone is acknowledged");
    assert_eq!(reply.args, vec![json!(3)]);
    let got = fence(&handle, &mut [&mut a, &mut b, &mut c]);
    for g in &got {
        assert_eq!(*g, ["everyone [\"to all\"]"]);
    }

    // Rooms: a in red; b in red and blue; c in blue. Every socket is in its own id's room.
    let (ja, jb, jc) = (sa.clone(), sb.clone(), sc.clone());
    let (rooms_a, red, own_b) = lab.ask(move |io| {
        io.join(&ja, "red");
        io.join(&jb, "red");
        io.join(&jb, "blue");
        io.join(&jc, "blue");
        (
            io.rooms_of(&ja),
            io.sockets_in("/", "red"),
            io.sockets_in("/", &jb),
        )
    });
    assert_eq!(rooms_a, sorted(vec![sa.clone(), "red".into()]));
    assert_eq!(red, sorted(vec![sa.clone(), sb.clone()]));
    assert_eq!(own_b, [sb.as_str()], "b's own room holds b alone");

    let (xa, xb, xc) = (sa.clone(), sb.clone(), sc.clone());
    let counts = lab.ask(move |io| {
        let to = |io: &mut Io, rooms: &[&str], event: &str, n: i32| {
            let mut b = io.broadcast("/");
            for r in rooms {
                b = b.to(r);
            }
            b.emit(event, vec![json!(n)])
        };
        vec![
            to(io, &["red"], "r", 1),
            to(io, &["red", "blue"], "rb", 2),
            io.broadcast("/")
                .to("red")
                .except("blue")
                .emit("r-b", vec![json!(3)]),
            io.broadcast("/")
                .except_socket(&xa)
                .emit("not-a", vec![json!(4)]),
            io.broadcast("/")
                .to("blue")
                .except_socket(&xc)
                .emit("b-c", vec![json!(5)]),
            to(io, &[xb.as_str()], "only-b", 6),
            io.broadcast("/")
                .except("red")
                .emit("not-red", vec![json!(7)]),
        ]
    });
    let counts: Vec<usize> = counts
        .into_iter()
        .map(|r| r.expect("the broadcast is accepted"))
        .collect();
    assert_eq!(counts, [2, 3, 1, 2, 1, 1, 1], "recipients per broadcast");
    let got = fence(&handle, &mut [&mut a, &mut b, &mut c]);
    assert_eq!(got[0], ["r [1]", "rb [2]", "r-b [3]"], "a (red)");
    assert_eq!(
        got[1],
        ["r [1]", "rb [2]", "not-a [4]", "b-c [5]", "only-b [6]"],
        "b (red and blue): the union delivers once"
    );
    assert_eq!(got[2], ["rb [2]", "not-a [4]", "not-red [7]"], "c (blue)");

    // A socket's own room cannot be left, and others may join it: c joins b's room.
    let (lb, lc) = (sb.clone(), sc.clone());
    let (members, sent) = lab.ask(move |io| {
        io.leave(&lb, &lb);
        io.join(&lc, &lb);
        let members = io.sockets_in("/", &lb);
        let sent = (
            io.broadcast("/").to(&lb).emit("b-room", vec![]),
            io.broadcast("/").except(&lb).emit("not-b-room", vec![]),
        );
        io.leave(&lc, &lb);
        (members, sent)
    });
    assert_eq!(members, sorted(vec![sb.clone(), sc.clone()]));
    assert_eq!(
        sent,
        (Ok(2), Ok(1)),
        "b's room is b and c; only a is outside it"
    );
    let got = fence(&handle, &mut [&mut a, &mut b, &mut c]);
    assert_eq!(got[0], ["not-b-room []"], "a");
    assert_eq!(got[1], ["b-room []"], "b, still in its own room");
    assert_eq!(got[2], ["b-room []"], "c, in b's room for a while");

    // b leaves: out of every room, its own included. `disconnecting` still sees its rooms.
    b.io().disconnect();
    let reason = await_reason(&mut lab.reports, &mut [&mut b], &sb);
    assert_eq!(reason, reasons::CLIENT_NAMESPACE_DISCONNECT);
    match lab
        .reports
        .take("b's disconnecting", |r| fired(r, &sb, "disconnecting"))
    {
        Report::Fired { rooms, args, .. } => {
            assert_eq!(args, vec![json!(reasons::CLIENT_NAMESPACE_DISCONNECT)]);
            assert_eq!(rooms, sorted(vec![sb.clone(), "blue".into(), "red".into()]));
        }
        other => unreachable!("take returned a report its predicate refused: {other:?}"),
    }
    let qb = sb.clone();
    let after = lab.ask(move |io| {
        (
            io.sockets_in("/", "red"),
            io.sockets_in("/", "blue"),
            io.sockets_in("/", &qb),
            io.rooms_of(&qb),
            io.is_connected(&qb),
        )
    });
    assert_eq!(
        after,
        (vec![sa.clone()], vec![sc.clone()], vec![], vec![], false)
    );
    let n = lab.ask(|io| io.broadcast("/").to("red").to("blue").emit("left", vec![]));
    assert_eq!(n, Ok(2), "a and c remain");
    let got = fence(&handle, &mut [&mut a, &mut c]);
    assert_eq!(got, [["left []"], ["left []"]]);

    lab.stop();
}

// ---------------------------------------------------------------------------------------------
// 2. Acks
// ---------------------------------------------------------------------------------------------

#[test]
fn acks_carry_answers_both_ways() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());

    // Client -> server: the server computes the answer from the arguments.
    let slot = a.emit_ack("sum", vec![json!(1), json!(2), json!(39)], vec![], WAIT);
    let reply = a.wait_ack(&slot).expect("sum is answered");
    assert_eq!(reply.args, vec![json!(42), json!("sum")]);
    assert!(reply.attachments.is_empty());

    // Server -> client: the client's listener answers with `io.ack`.
    a.io().on("question", |io, ev| {
        let n = ev.args.first().and_then(Value::as_i64).unwrap_or(0);
        io.ack(ev, vec![json!(n * 2), json!("doubled")]);
    });
    let sid = a.sid.clone();
    let sent = lab.ask(move |io| {
        let cb = ack_reporter(lab_tx(io), "question");
        io.send(&sid, Emit::new("question").arg(json!(21)).ack(WAIT, cb))
    });
    assert_eq!(sent, Ok(()));
    let reply = await_ack(&mut lab.reports, &mut [&mut a], "question").expect("answered");
    assert_eq!(reply.args, vec![json!(42), json!("doubled")]);
    lab.stop();
}

#[test]
fn acks_time_out_both_ways_when_nobody_answers() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());

    // Client side: the server has no `silent` listener.
    let slot = a.emit_ack("silent", vec![json!(1)], vec![], Duration::from_millis(300));
    assert_eq!(a.wait_ack(&slot), Err(AckError::Timeout));

    // Server side: the client has no `unanswered` listener (its on_any only records).
    let sid = a.sid.clone();
    let sent = lab.ask(move |io| {
        let cb = ack_reporter(lab_tx(io), "unanswered");
        let e = Emit::new("unanswered").arg(json!("?"));
        io.send(&sid, e.ack(Duration::from_millis(300), cb))
    });
    assert_eq!(sent, Ok(()));
    let result = await_ack(&mut lab.reports, &mut [&mut a], "unanswered");
    assert_eq!(result, Err(AckError::Timeout));
    // The event itself did arrive: the ack was asked for and left unanswered.
    let lines: Vec<String> = a.inbox.borrow().iter().map(Got::line).collect();
    assert_eq!(lines, ["unanswered [\"?\"]"]);

    // Both ends are still connected after their timeouts.
    a.assert_echo("still here");
    lab.stop();
}

#[test]
fn acks_fail_with_disconnected_when_the_peer_leaves_first() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());
    let mut b = Peer::connect(lab.addr());

    // Client side: an ack with a long timeout is pending when the server disconnects a.
    let slot = a.emit_ack("silent", vec![], vec![], Duration::from_secs(60));
    // The echo is answered after `silent` was handled: the server has it before it acts.
    a.assert_echo("before");
    let sa = a.sid.clone();
    lab.ask(move |io| io.disconnect(&sa));
    assert_eq!(a.wait_ack(&slot), Err(AckError::Disconnected));
    assert_eq!(
        a.io().disconnect_reason(),
        Some(reasons::IO_SERVER_DISCONNECT)
    );

    // Server side: an ack pending on b when b leaves.
    let sb = b.sid.clone();
    let sent = lab.ask(move |io| {
        let cb = ack_reporter(lab_tx(io), "left");
        let e = Emit::new("unanswered").ack(Duration::from_secs(60), cb);
        io.send(&sb, e)
    });
    assert_eq!(sent, Ok(()));
    b.io().disconnect();
    let result = await_ack(&mut lab.reports, &mut [&mut b], "left");
    assert_eq!(result, Err(AckError::Disconnected));
    lab.stop();
}

// ---------------------------------------------------------------------------------------------
// 3. Binary attachments
// ---------------------------------------------------------------------------------------------

#[test]
fn binary_attachments_round_trip_exactly() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());
    // 900 KiB: most of the 1 MB frame limit, so it takes many reads and writes.
    let big = pseudo_random(900 * 1024, 0xb16);
    let pair = vec![Vec::new(), big.clone()];

    // Client -> server with emit_binary.
    a.io()
        .emit_binary("upload", vec![json!("pair")], pair.clone())
        .expect("emit_binary");
    let sa = a.sid.clone();
    let r = await_report(
        &mut lab.reports,
        &mut [&mut a],
        "the upload",
        |r| matches!(r, Report::Upload { sid, .. } if *sid == sa),
    );
    let Report::Upload { attachments, .. } = r else {
        unreachable!("await_report returned a report its predicate refused: {r:?}")
    };
    assert_same_attachments(&attachments, &pair, "client -> server, emit_binary");

    // Server -> client with an ack_with answer (the server echoes what it got).
    let slot = a.emit_ack("echo-bin", vec![], pair.clone(), WAIT);
    let reply = a.wait_ack(&slot).expect("echo-bin is answered");
    assert_eq!(reply.args, vec![json!(0), json!(big.len())]);
    assert_same_attachments(&reply.attachments, &pair, "server -> client, ack_with");

    // Server -> client with Emit::binary.
    let (sid, sent_pair) = (a.sid.clone(), pair.clone());
    let sent = lab.ask(move |io| {
        let mut e = Emit::new("bin").arg(json!("pair"));
        for part in sent_pair {
            e = e.binary(part);
        }
        io.send(&sid, e)
    });
    assert_eq!(sent, Ok(()));
    let inbox = a.inbox.clone();
    a.run_until("the binary event", move |_| !inbox.borrow().is_empty());
    let got = a.inbox.borrow_mut().remove(0);
    assert_eq!(got.line(), "bin [\"pair\"]");
    assert_same_attachments(&got.attachments, &pair, "server -> client, Emit::binary");

    // Client -> server with the client's ack_with answer.
    let answer = pair.clone();
    a.io().on("want-bin", move |io, ev| {
        io.ack_with(ev, vec![json!("here")], answer.clone());
    });
    let sid = a.sid.clone();
    let sent = lab.ask(move |io| {
        let cb = ack_reporter(lab_tx(io), "want-bin");
        io.send(&sid, Emit::new("want-bin").ack(WAIT, cb))
    });
    assert_eq!(sent, Ok(()));
    let reply = await_ack(&mut lab.reports, &mut [&mut a], "want-bin").expect("answered");
    assert_eq!(reply.args, vec![json!("here")]);
    assert_same_attachments(&reply.attachments, &pair, "client -> server, ack_with");

    // Several attachments, each different in length and content, keep their order.
    let parts = vec![
        b"first".to_vec(),
        Vec::new(),
        pseudo_random(70_000, 2),
        vec![0xff],
        Vec::new(),
        pseudo_random(3, 3),
        b"last".to_vec(),
    ];
    let slot = a.emit_ack("echo-bin", vec![], parts.clone(), WAIT);
    let reply = a.wait_ack(&slot).expect("echo-bin is answered");
    let lens: Vec<Value> = parts.iter().map(|p| json!(p.len())).collect();
    assert_eq!(reply.args, lens, "the server saw them in order");
    assert_same_attachments(&reply.attachments, &parts, "seven attachments");
    lab.stop();
}

// ---------------------------------------------------------------------------------------------
// 4. The frame limit
// ---------------------------------------------------------------------------------------------

#[test]
fn a_frame_over_the_limit_closes_only_that_connection() {
    let mut lab = Lab::start();
    let mut other = Peer::connect(lab.addr());
    let mut raw = Raw::connect(lab.addr());

    // 2,000,000 bytes declared (twice the limit), and sent, from a thread: the server refuses
    // the frame from its 4 header bytes and closes, so the rest may fail to go out.
    let mut writer = raw.stream.try_clone().expect("clone the raw stream");
    let sender = thread::spawn(move || {
        let mut frame = 2_000_000u32.to_be_bytes().to_vec();
        frame.extend(pseudo_random(2_000_000, 0xf4a));
        let _ = writer.write_all(&frame);
    });
    raw.wait_closed();
    sender
        .join()
        .expect("the writer thread ends (write timeout)");
    let reason = await_reason(&mut lab.reports, &mut [], &raw.sid);
    assert_eq!(reason, reasons::PARSE_ERROR);

    // The client connected meanwhile is untouched: an ack round trip after the event.
    other.assert_echo("still fine");
    let sid = raw.sid.clone();
    let (parse_errors, raw_alive) =
        lab.ask(move |io| (io.stats().parse_errors, io.is_connected(&sid)));
    assert_eq!(parse_errors, 1);
    assert!(!raw_alive);
    lab.stop();
}

#[test]
fn an_emit_over_the_limit_is_refused_locally_and_one_at_the_limit_goes_through() {
    let mut lab = Lab::start();
    let handle = lab.handle();
    let mut a = Peer::connect(lab.addr());
    let limit = Limits::default().max_frame;

    let over = vec![0u8; limit + 1];
    let refused = a.io().emit_binary("upload", vec![], vec![over.clone()]);
    let Err(EmitError::TooLarge { bytes, limit: l }) = refused else {
        panic!("a packet over the limit: expected TooLarge, got {refused:?}");
    };
    assert_eq!(l, limit);
    assert!(
        bytes > limit + 1,
        "the packet counts its header fields too: {bytes}"
    );
    let called = Rc::new(RefCell::new(false));
    let c = called.clone();
    let refused = a
        .io()
        .emit_with_ack("upload", vec![], vec![over], WAIT, move |_, _| {
            *c.borrow_mut() = true;
        });
    assert!(
        matches!(refused, Err(EmitError::TooLarge { .. })),
        "{refused:?}"
    );

    // The same packet with an attachment `bytes - limit` bytes smaller is exactly at the
    // limit, and that is allowed on both ends.
    let at = pseudo_random(limit + 1 - (bytes - limit), 7);
    a.io()
        .emit_binary("upload", vec![], vec![at.clone()])
        .expect("a packet of exactly the limit is allowed");
    let sa = a.sid.clone();
    let r = await_report(
        &mut lab.reports,
        &mut [&mut a],
        "the upload",
        |r| matches!(r, Report::Upload { sid, .. } if *sid == sa),
    );
    let Report::Upload { attachments, .. } = r else {
        unreachable!("await_report returned a report its predicate refused: {r:?}")
    };
    assert_same_attachments(&attachments, &[at], "a packet at the limit");

    // The server refuses to send over the limit too, and the client keeps working.
    let sid = a.sid.clone();
    let sent = lab.ask(move |io| io.send(&sid, Emit::new("huge").binary(vec![1; limit + 1])));
    assert!(matches!(sent, Err(EmitError::TooLarge { .. })), "{sent:?}");
    assert_eq!(fence(&handle, &mut [&mut a]), [Vec::<String>::new()]);
    a.assert_echo("after");
    // A refused emit_with_ack registered no callback: leaving fails every pending ack.
    a.io().disconnect();
    assert!(!*called.borrow(), "the refused emit's ack callback ran");
    let uploads = lab
        .reports
        .received()
        .iter()
        .filter(|r| matches!(r, Report::Upload { .. }))
        .count();
    assert_eq!(uploads, 0, "nothing over the limit reached the server");
    lab.stop();
}

// ---------------------------------------------------------------------------------------------
// 5. Middleware
// ---------------------------------------------------------------------------------------------

/// Connects to `ns` with `auth`, expecting a refusal; returns the refusal message after
/// checking that the `connect_error` event carried the same and `connect` never fired.
fn refused(addr: SocketAddr, ns: &str, auth: Option<Value>) -> String {
    let mut opts = ClientOptions::new(addr);
    opts.namespace = ns.to_string();
    opts.auth = auth;
    let mut client = Client::connect(opts).expect("Client::connect");
    let errors: Rc<RefCell<Vec<Value>>> = Rc::default();
    let connects = Rc::new(RefCell::new(0));
    let (e, c) = (errors.clone(), connects.clone());
    client.io().on("connect_error", move |_, ev| {
        e.borrow_mut().extend(ev.args.clone())
    });
    client.io().on("connect", move |_, _| *c.borrow_mut() += 1);
    let done = client
        .run_until(WAIT, |io| io.state() == ClientState::Disconnected)
        .expect("client turn");
    assert!(done, "a refused client ends Disconnected within {WAIT:?}");
    let io = client.io();
    let message = io
        .connect_error()
        .unwrap_or_else(|| panic!("connect_error() is set after a refusal from {ns}"))
        .to_string();
    assert_eq!(
        *errors.borrow(),
        vec![json!(message)],
        "the connect_error event"
    );
    assert_eq!(*connects.borrow(), 0, "connect never fired");
    assert_eq!(io.id(), None);
    message
}

#[test]
fn middleware_refuses_with_its_message_and_admits_with_auth() {
    let mut lab = Lab::start();
    assert_eq!(refused(lab.addr(), ADMIN, None), NO_TOKEN);
    assert_eq!(
        refused(lab.addr(), ADMIN, Some(json!({"token": "guess"}))),
        BAD_TOKEN
    );
    assert_eq!(refused(lab.addr(), "/nope", None), "Invalid namespace");

    let auth = json!({"token": "letmein", "user": "ada"});
    let mut opts = ClientOptions::new(lab.addr());
    opts.namespace = ADMIN.to_string();
    opts.auth = Some(auth.clone());
    let admin = Peer::connect_with(opts);
    let sid = admin.sid.clone();
    let r = lab.reports.take(
        "the admission",
        |r| matches!(r, Report::Admitted { sid: s, .. } if *s == sid),
    );
    let Report::Admitted { auth: seen, .. } = r else {
        unreachable!("take returned a report its predicate refused: {r:?}")
    };
    assert_eq!(
        seen,
        Some(auth.clone()),
        "the auth reaches io.handshake(sid).auth"
    );
    let (handshake, refusals) =
        lab.ask(move |io| (io.handshake(&sid).cloned(), io.stats().connects_refused));
    let handshake = handshake.expect("the admitted socket has a handshake");
    assert_eq!(handshake.auth, Some(auth));
    assert_eq!(handshake.namespace, ADMIN);
    assert!(handshake.peer.ip().is_loopback(), "{}", handshake.peer);
    assert_eq!(refusals, 3);
    lab.stop();
}

// ---------------------------------------------------------------------------------------------
// 6. Reserved names
// ---------------------------------------------------------------------------------------------

#[test]
fn reserved_names_are_refused_on_both_sides() {
    let lab = Lab::start();
    let handle = lab.handle();
    let mut a = Peer::connect(lab.addr());
    let called = Rc::new(RefCell::new(false));
    for name in RESERVED {
        let want = Err(EmitError::Reserved(name.to_string()));
        assert_eq!(a.io().emit(name, vec![json!("x")]), want, "client emit");
        let bin = a.io().emit_binary(name, vec![], vec![vec![1]]);
        assert_eq!(bin, want, "client emit_binary");
        let c = called.clone();
        let with_ack = a
            .io()
            .emit_with_ack(name, vec![], vec![], WAIT, move |_, _| {
                *c.borrow_mut() = true;
            });
        assert_eq!(with_ack, want, "client emit_with_ack");
    }

    let sid = a.sid.clone();
    let server_side = lab.ask(move |io| {
        RESERVED
            .iter()
            .map(|name| {
                (
                    io.emit(&sid, name, vec![json!("x")]),
                    io.send(&sid, Emit::new(name).arg(json!(1))),
                    io.broadcast("/").emit(name, vec![]).map(|_| ()),
                )
            })
            .collect::<Vec<_>>()
    });
    for (name, (emit, send, broadcast)) in RESERVED.iter().zip(server_side) {
        let want = Err(EmitError::Reserved(name.to_string()));
        assert_eq!(emit, want, "Io::emit");
        assert_eq!(send, want, "Io::send");
        assert_eq!(broadcast, want, "Broadcast::emit");
    }

    // Nothing went out either way.
    assert_eq!(fence(&handle, &mut [&mut a]), [Vec::<String>::new()]);
    let events_in = lab.ask(|io| io.stats().events_in);
    assert_eq!(events_in, 0, "the server received no event");
    // A refused emit_with_ack left no callback behind: leaving fails every pending ack.
    a.io().disconnect();
    assert!(!*called.borrow(), "a refused emit's ack callback ran");
    lab.stop();
}

#[test]
fn reserved_names_from_a_raw_peer_do_not_reach_server_listeners() {
    let mut lab = Lab::start();
    let mut raw = Raw::connect(lab.addr());
    for name in RESERVED {
        raw.send(&event(name, vec![json!("forged")], None));
        raw.send(&event(name, vec![json!("forged")], Some(1)));
    }
    raw.send(&event("echo", vec![json!("after")], Some(7)));
    // The server handles a connection's packets in order: the echo's answer comes after
    // whatever the forged events caused. Nothing else may come before it.
    match raw.read_packet() {
        Packet::Ack { id: 7, args, .. } => assert_eq!(args, vec![json!("after")]),
        other => panic!("expected the echo's ACK first, got {other}"),
    }
    let sid = raw.sid.clone();
    let (alive, events_in) = lab.ask(move |io| (io.is_connected(&sid), io.stats().events_in));
    assert!(alive, "forged reserved events do not disconnect the socket");
    assert_eq!(events_in, 1, "only the echo counts as an event");
    let about_raw: Vec<Report> = lab
        .reports
        .received()
        .iter()
        .filter(|r| matches!(r, Report::Fired { sid, .. } if *sid == raw.sid))
        .cloned()
        .collect();
    assert!(about_raw.is_empty(), "listeners ran: {about_raw:#?}");

    // The listeners were there all along: a real close fires them, with the real reason.
    let sid = raw.sid.clone();
    drop(raw);
    let r = lab
        .reports
        .take("disconnecting", |r| fired(r, &sid, "disconnecting"));
    assert_eq!(reason_in(&r), reasons::TRANSPORT_CLOSE);
    assert_eq!(
        await_reason(&mut lab.reports, &mut [], &sid),
        reasons::TRANSPORT_CLOSE
    );
    lab.stop();
}

// ---------------------------------------------------------------------------------------------
// 7. Disconnect reasons
// ---------------------------------------------------------------------------------------------

#[test]
fn reason_transport_close_transport_error_and_parse_error_from_raw_peers() {
    let mut lab = Lab::start();

    // FIN without DISCONNECT: the peer read everything the server sent (HELLO, CONNECT), so
    // closing sends FIN, not RST.
    let closer = Raw::connect(lab.addr());
    let sid = closer.sid.clone();
    drop(closer);
    let reason = await_reason(&mut lab.reports, &mut [], &sid);
    assert_eq!(reason, reasons::TRANSPORT_CLOSE);

    // RST: SO_LINGER 0, then close.
    let resetter = Raw::connect(lab.addr());
    let sid = resetter.sid.clone();
    SockRef::from(&resetter.stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(resetter);
    let reason = await_reason(&mut lab.reports, &mut [], &sid);
    assert_eq!(reason, reasons::TRANSPORT_ERROR);

    // Bytes that are not the protocol, after a good handshake: an HTTP request (its first 4
    // bytes declare a frame of 1.2 GB) and a frame of an unknown packet type.
    let garbage: [&[u8]; 2] = [
        b"GET / HTTP/1.1\r\nHost: socklab\r\n\r\n",
        &[0, 0, 0, 1, 99],
    ];
    for bytes in garbage {
        let mut raw = Raw::connect(lab.addr());
        raw.stream.write_all(bytes).expect("write garbage");
        raw.wait_closed();
        let reason = await_reason(&mut lab.reports, &mut [], &raw.sid);
        assert_eq!(reason, reasons::PARSE_ERROR, "after {bytes:?}");
    }
    assert_eq!(lab.ask(|io| io.stats().parse_errors), 2);
    lab.stop();
}

#[test]
fn reason_client_and_server_namespace_disconnect() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());
    let mut b = Peer::connect(lab.addr());
    let a_saw = record_disconnects(&mut a);
    let b_saw = record_disconnects(&mut b);

    a.io().disconnect();
    assert_eq!(
        a.io().disconnect_reason(),
        Some(reasons::IO_CLIENT_DISCONNECT)
    );
    assert_eq!(*a_saw.borrow(), vec![json!(reasons::IO_CLIENT_DISCONNECT)]);
    let sa = a.sid.clone();
    let reason = await_reason(&mut lab.reports, &mut [&mut a], &sa);
    assert_eq!(reason, reasons::CLIENT_NAMESPACE_DISCONNECT);

    let sb = b.sid.clone();
    lab.ask(move |io| io.disconnect(&sb));
    b.run_until_disconnected();
    assert_eq!(
        b.io().disconnect_reason(),
        Some(reasons::IO_SERVER_DISCONNECT)
    );
    assert_eq!(*b_saw.borrow(), vec![json!(reasons::IO_SERVER_DISCONNECT)]);
    let reason = await_reason(&mut lab.reports, &mut [], &b.sid);
    assert_eq!(reason, reasons::SERVER_NAMESPACE_DISCONNECT);
    lab.stop();
}

#[test]
fn a_client_that_disconnects_in_a_listener_gets_no_more_events() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());
    let seen: Rc<RefCell<Vec<(Value, ClientState)>>> = Rc::default();
    let log = seen.clone();
    a.io().on("n", move |io, ev| {
        log.borrow_mut().push((json!(ev.args), io.state()));
        io.disconnect();
    });
    a.io().emit("burst", vec![]).expect("emit burst");
    let sa = a.sid.clone();
    let reason = await_reason(&mut lab.reports, &mut [&mut a], &sa);
    assert_eq!(reason, reasons::CLIENT_NAMESPACE_DISCONNECT);
    // Whatever else of the burst was read with the first event must not be dispatched.
    assert_eq!(
        *seen.borrow(),
        [(json!([0]), ClientState::Connected)],
        "listeners ran after disconnect()"
    );
    lab.stop();
}

#[test]
fn reason_server_shutting_down() {
    let lab = Lab::start();
    // A client with the default options will try to come back (a stopping server is
    // restarting, not sending it away); one without reconnection ends there.
    let mut a = Peer::connect(lab.addr());
    let mut opts = ClientOptions::new(lab.addr());
    opts.reconnection = false;
    let mut b = Peer::connect_with(opts);
    let a_saw = record_disconnects(&mut a);
    let b_saw = record_disconnects(&mut b);
    let handle = lab.handle();
    let mut reports = lab.stop();

    let saw = a_saw.clone();
    a.run_until("a's disconnect event", move |_| !saw.borrow().is_empty());
    assert_eq!(*a_saw.borrow(), vec![json!(reasons::SERVER_SHUTTING_DOWN)]);
    assert_eq!(
        a.io().disconnect_reason(),
        Some(reasons::SERVER_SHUTTING_DOWN)
    );
    assert_eq!(a.io().state(), ClientState::Reconnecting);

    b.run_until_disconnected();
    assert_eq!(*b_saw.borrow(), vec![json!(reasons::SERVER_SHUTTING_DOWN)]);
    assert_eq!(
        b.io().disconnect_reason(),
        Some(reasons::SERVER_SHUTTING_DOWN)
    );

    for sid in [&a.sid, &b.sid] {
        let reason = await_reason(&mut reports, &mut [], sid);
        assert_eq!(reason, reasons::SERVER_SHUTTING_DOWN);
    }
    assert_eq!(handle.stop(), Err(ServerGone), "the loop is gone");
}

#[test]
fn reason_server_error_when_a_listener_panics() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());
    let mut b = Peer::connect(lab.addr());
    a.io().emit("boom", vec![]).expect("emit boom");
    let sa = a.sid.clone();
    let reason = await_reason(&mut lab.reports, &mut [&mut a], &sa);
    assert_eq!(reason, reasons::SERVER_ERROR);
    // The server closed a's connection under it: to a it is a lost connection (and, with
    // the default options, one to come back from).
    a.run_until("a loses its connection", |io| !io.is_connected());
    let seen = a.io().disconnect_reason();
    assert!(
        matches!(
            seen,
            Some(reasons::TRANSPORT_CLOSE | reasons::TRANSPORT_ERROR)
        ),
        "{seen:?}"
    );

    b.assert_echo("b is fine");
    let sb = b.sid.clone();
    let (panics, a_alive, b_alive) = lab.ask(move |io| {
        (
            io.stats().handler_panics,
            io.is_connected(&sa),
            io.is_connected(&sb),
        )
    });
    assert_eq!((panics, a_alive, b_alive), (1, false, true));
    lab.stop();
}

#[test]
fn reason_outbound_buffer_full_and_volatile_drops() {
    const BIG: usize = 48 * 1024;
    let config = ServerConfig {
        loop_config: socklab::event_loop::Config {
            max_outbound: 64 * 1024,
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let mut lab = Lab::with(config);
    let mut reader = Peer::connect(lab.addr());
    // Never reads after the handshake; a small receive buffer fills the kernel's side sooner.
    let stuck = Raw::connect_with(lab.addr(), Some(4096));
    let (sr, ss) = (reader.sid.clone(), stuck.sid.clone());

    // Each round: a volatile broadcast `tick`, then a 48 KiB `big` to each socket. The reader
    // takes all of it before the next round, so the server holds nothing for it when the
    // next tick goes out. The stuck socket's kernel buffers fill, then the loop's buffer: a
    // tick meets a backed-up socket and is dropped, and a big one over the 64 KiB cap
    // disconnects it.
    let mut round: u64 = 0;
    let reason = loop {
        assert!(round < 4000, "the stuck socket was never disconnected");
        let (r, s) = (sr.clone(), ss.clone());
        lab.ask(move |io| {
            let _ = io
                .broadcast("/")
                .volatile()
                .emit("tick", vec![json!(round)]);
            for sid in [r, s] {
                let e = Emit::new("big").arg(json!(round));
                let _ = io.send(&sid, e.binary(vec![round as u8; BIG]));
            }
        });
        let inbox = reader.inbox.clone();
        reader.run_until("the reader gets its round", move |_| {
            inbox.borrow().iter().any(|g| g.name == "big")
        });
        let got: Vec<Got> = reader.inbox.borrow_mut().drain(..).collect();
        let lines: Vec<String> = got.iter().map(Got::line).collect();
        assert_eq!(
            lines,
            [format!("tick [{round}]"), format!("big [{round}]")],
            "the reader gets every tick"
        );
        assert_eq!(got[1].attachments, [vec![round as u8; BIG]]);
        // The disconnect is reported while the server hands that round to the loop, before
        // the reader's copy is written: it is in the channel by now if it happened.
        if lab
            .reports
            .received()
            .iter()
            .any(|r| fired(r, &ss, "disconnect"))
        {
            break await_reason(&mut lab.reports, &mut [], &ss);
        }
        round += 1;
    };
    assert_eq!(reason, reasons::OUTBOUND_FULL);
    let (dropped, stuck_alive) =
        lab.ask(move |io| (io.stats().volatile_dropped, io.is_connected(&ss)));
    assert!(dropped >= 1, "no volatile tick was dropped");
    assert!(
        dropped <= round + 1,
        "only the stuck socket's ticks are dropped"
    );
    assert!(!stuck_alive);
    reader.assert_echo("the reader is fine");
    drop(stuck);
    lab.stop();
}

// ---------------------------------------------------------------------------------------------
// 8. The thread-safe handle
// ---------------------------------------------------------------------------------------------

#[test]
fn server_handle_broadcast_from_another_thread_reaches_the_room() {
    let lab = Lab::start();
    let handle = lab.handle();
    let mut a = Peer::connect(lab.addr());
    let mut b = Peer::connect(lab.addr());
    let mut c = Peer::connect(lab.addr());
    let (sa, sb) = (a.sid.clone(), b.sid.clone());
    lab.ask(move |io| {
        io.join(&sa, "ops");
        io.join(&sb, "ops");
    });

    let h = lab.handle();
    let feed = thread::spawn(move || {
        let room = h.broadcast("/", Some("ops"), "alert", vec![json!("disk full")]);
        let all = h.broadcast("/", None, "all", vec![json!(1)]);
        (room, all)
    });
    let sent = feed.join().expect("the feed thread");
    assert_eq!(sent, (Ok(()), Ok(())));
    let got = fence(&handle, &mut [&mut a, &mut b, &mut c]);
    assert_eq!(got[0], ["alert [\"disk full\"]", "all [1]"]);
    assert_eq!(got[1], ["alert [\"disk full\"]", "all [1]"]);
    assert_eq!(got[2], ["all [1]"], "not in the room");

    lab.stop();
    assert_eq!(handle.broadcast("/", None, "late", vec![]), Err(ServerGone));
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// What a child's stdin is.
enum Input {
    Null,
    /// A pipe the test holds open until `close_stdin` (or the end).
    Open,
    /// These bytes, then end of file (a pipe filled and closed before the child starts).
    Bytes(&'static [u8]),
}

/// A running child with its stdout read line by line.
struct Proc {
    what: String,
    child: Reaper,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line received so far.
    seen: Vec<String>,
    stderr: Receiver<Vec<u8>>,
}

/// What a finished child left behind.
struct Finished {
    what: String,
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

impl Finished {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn has_line(&self, want: &str) -> bool {
        self.stdout.iter().any(|l| l == want)
    }

    fn describe(&self) -> String {
        format!(
            "{}: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.status,
            self.stdout.join("\n"),
            self.stderr
        )
    }
}

impl Proc {
    fn spawn(bin: &str, args: &[&str], input: Input) -> Proc {
        let name = bin.rsplit('/').next().unwrap_or(bin);
        let what = format!("{name} {}", args.join(" "));
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env_remove("SOCKLAB_TRACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match input {
            Input::Null => cmd.stdin(Stdio::null()),
            Input::Open => cmd.stdin(Stdio::piped()),
            Input::Bytes(bytes) => {
                // Written and closed before the child starts, as `printf ... | cmd` often
                // is: its whole input and the end of file are there from the first read.
                // O_CLOEXEC: a child another test spawns meanwhile must not inherit the
                // write end, or this child would wait for its end of file.
                let (reader, writer) =
                    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
                let mut writer = std::fs::File::from(writer);
                writer.write_all(bytes).expect("the input fits in the pipe");
                drop(writer);
                cmd.stdin(Stdio::from(reader))
            }
        };
        let mut child = Reaper(cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}")));
        let stdout = child.0.stdout.take().expect("stdout was piped above");
        let stderr = child.0.stderr.take().expect("stderr was piped above");
        let stdin = child.0.stdin.take();
        Proc {
            what,
            child,
            stdin,
            lines: lines_of(stdout),
            seen: Vec::new(),
            stderr: collect(stderr),
        }
    }

    /// Waits (at most [`WAIT`]) for a stdout line that `want` accepts, skipping others.
    fn expect_line(&mut self, desc: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no line {desc} within {WAIT:?}; it printed {:#?}",
                    self.what, self.seen
                ),
            }
        }
    }

    /// The address of the first line, `listening on ADDR`.
    fn listening_on(&mut self) -> SocketAddr {
        let line = self.expect_line("`listening on ADDR`", |l| l.starts_with("listening on "));
        let addr: SocketAddr = line["listening on ".len()..]
            .parse()
            .unwrap_or_else(|e| panic!("{}: {line:?}: {e}", self.what));
        assert_eq!(addr.ip().to_string(), "127.0.0.1", "{line}");
        assert_ne!(addr.port(), 0, "{line}");
        addr
    }

    fn write_stdin(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is an open pipe");
        stdin
            .write_all(text.as_bytes())
            .expect("write to the child");
        stdin.flush().expect("flush to the child");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn sigterm(&self) {
        let pid = i32::try_from(self.child.0.id()).expect("a pid fits in an i32");
        kill(Pid::from_raw(pid), Signal::SIGTERM).expect("kill -TERM our own child");
    }

    /// Waits (at most [`EXIT_WAIT`]) for the child to exit; its stdin stays as it is until
    /// then. Returns its status and everything it printed.
    fn finish(mut self) -> Finished {
        let deadline = Instant::now() + EXIT_WAIT;
        let status = loop {
            if let Some(status) = self.child.0.try_wait().expect("try_wait on our child") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {EXIT_WAIT:?}; it printed {:#?}",
                self.what,
                self.seen
            );
            thread::sleep(Duration::from_millis(10));
        };
        // The pipes close at exit: read the rest.
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            self.seen.push(line);
        }
        let stderr = self
            .stderr
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{}: stderr not closed", self.what));
        Finished {
            what: self.what,
            status,
            stdout: self.seen,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// Lesson binaries declared in Cargo.toml (names that start with two digits).
fn declared_lessons() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cargo = std::fs::read_to_string(path).expect("read Cargo.toml");
    let names: Vec<String> = cargo
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \"")?.strip_suffix('"'))
        .filter(|n| n.len() > 2 && n.as_bytes()[..2].iter().all(u8::is_ascii_digit))
        .map(str::to_string)
        .collect();
    assert!(
        names.len() >= 16,
        "too few lessons in Cargo.toml: {names:?}"
    );
    names
}

// ---------------------------------------------------------------------------------------------
// 9. The socklab command line
// ---------------------------------------------------------------------------------------------

#[test]
fn cli_serve_chat_watch_and_sigterm() {
    let mut server = Proc::spawn(
        SOCKLAB,
        &["serve", "--addr", "127.0.0.1:0", "--interval-ms", "20"],
        Input::Null,
    );
    let addr = server.listening_on().to_string();

    // The watchers only need the feed; they run while the chat goes on.
    let watch = Proc::spawn(
        SOCKLAB,
        &["watch", "--match", "1", "--count", "3", "--addr", &addr],
        Input::Null,
    );
    let no_match = Proc::spawn(
        SOCKLAB,
        &["watch", "--match", "99", "--addr", &addr],
        Input::Null,
    );

    let mut ada = Proc::spawn(
        SOCKLAB,
        &["chat", "--name", "ada", "--addr", &addr],
        Input::Open,
    );
    ada.expect_line("`connected as ada`", |l| l.starts_with("connected as ada"));
    // The same name while ada is connected. Its stdin stays open: only the refusal ends it.
    let dup = Proc::spawn(
        SOCKLAB,
        &["chat", "--name", "ada", "--addr", &addr],
        Input::Open,
    );
    let bob = Proc::spawn(
        SOCKLAB,
        &["chat", "--name", "bob", "--addr", &addr],
        Input::Bytes(b"hello @ada\n/who\n"),
    );

    let watch = watch.finish();
    assert_eq!(watch.code(), Some(0), "{}", watch.describe());
    assert!(
        watch.stdout.len() == 4
            && watch.stdout[0].starts_with("watching match 1")
            && watch.stdout[1..].iter().all(|l| l.starts_with("match 1:")),
        "a `watching` line, then 3 scores\n{}",
        watch.describe()
    );
    let no_match = no_match.finish();
    assert_eq!(no_match.code(), Some(1), "{}", no_match.describe());
    assert!(
        no_match.stderr.contains("no match 99"),
        "{}",
        no_match.describe()
    );
    let dup = dup.finish();
    assert_eq!(dup.code(), Some(1), "{}", dup.describe());
    assert!(dup.stderr.contains("taken"), "{}", dup.describe());

    let bob = bob.finish();
    assert_eq!(bob.code(), Some(0), "{}", bob.describe());
    assert!(
        bob.stdout.iter().any(|l| l.starts_with("connected as bob")),
        "bob's input was piped and closed at once; he must still connect and send it\n{}",
        bob.describe()
    );
    assert!(
        bob.has_line("* in lobby: ada, bob"),
        "/who lists both\n{}",
        bob.describe()
    );
    ada.expect_line("with bob's message", |l| l == "[lobby] bob: hello @ada");
    ada.expect_line("with the mention", |l| {
        l == "(@ from bob in lobby) hello @ada"
    });
    ada.close_stdin();
    let ada = ada.finish();
    assert_eq!(ada.code(), Some(0), "{}", ada.describe());

    server.sigterm();
    let server = server.finish();
    assert_eq!(server.code(), Some(0), "{}", server.describe());
    assert!(server.has_line("stopped"), "{}", server.describe());
}

#[test]
fn cli_lessons_lists_every_lesson_in_cargo_toml() {
    let lessons = Proc::spawn(SOCKLAB, &["lessons"], Input::Null).finish();
    assert_eq!(lessons.code(), Some(0), "{}", lessons.describe());
    for name in declared_lessons() {
        let shown = format!("({name})");
        assert!(
            lessons.stdout.iter().any(|l| l.contains(&shown)),
            "`socklab lessons` does not list {name}\n{}",
            lessons.describe()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 10. Lessons 14 and 15
// ---------------------------------------------------------------------------------------------

#[test]
fn lesson_14_demo_shows_the_ack_and_the_attachment() {
    let out = Proc::spawn(EVENTS_14, &[], Input::Null).finish();
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout
            .iter()
            .any(|l| l.ends_with("ACK / id=1 [\"hello, ada\"]")),
        "{}",
        out.describe()
    );
    assert!(
        out.has_line("client -> server: EVENT / \"upload\" id=2 [] +1 attachment (4 bytes)"),
        "{}",
        out.describe()
    );
    // The hexdump under that line is the real frame: it decodes to the same event, with
    // the 4 raw bytes as its attachment.
    let at = out
        .stdout
        .iter()
        .position(|l| l.contains("EVENT / \"upload\""))
        .expect("checked above");
    let frame: Vec<u8> = out.stdout[at + 1..]
        .iter()
        .take_while(|l| l.starts_with("  ") && l.as_bytes().get(6) == Some(&b':'))
        .flat_map(|l| {
            // `  0010: 6f 61 ...  text`: 16 bytes of hex in the 47 columns after the offset.
            let hex = l.get(8..).unwrap_or("");
            let hex = &hex[..hex.len().min(47)];
            hex.split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
                .collect::<Vec<u8>>()
        })
        .collect();
    assert!(
        frame.len() > HEADER_LEN,
        "no hexdump after the upload line\n{}",
        out.describe()
    );
    match packet::decode(&frame[HEADER_LEN..], &Limits::default()) {
        Ok(Packet::Event {
            name, attachments, ..
        }) => {
            assert_eq!(name, "upload");
            assert_eq!(attachments, [vec![0xde, 0xad, 0xbe, 0xef]]);
        }
        other => panic!("the hexdump is not the upload event: {other:?}"),
    }
}

#[test]
fn lesson_14_client_and_server_processes() {
    let mut server = Proc::spawn(EVENTS_14, &["serve", "--addr", "127.0.0.1:0"], Input::Null);
    let addr = server.listening_on().to_string();
    let client = Proc::spawn(
        EVENTS_14,
        &["client", "--addr", &addr, "--name", "bob"],
        Input::Bytes(b"abc"),
    )
    .finish();
    assert_eq!(client.code(), Some(0), "{}", client.describe());
    assert!(
        client.has_line("greet acknowledged: [\"hello, bob\"]"),
        "{}",
        client.describe()
    );
    assert!(
        client.has_line("upload acknowledged: [3]"),
        "{}",
        client.describe()
    );
    server.expect_line("with the server's ack", |l| {
        l.trim() == "(the server's ack callback got [\"yes\"])"
    });
    server.sigterm();
    let server = server.finish();
    assert_eq!(server.code(), Some(0), "{}", server.describe());
    assert!(server.has_line("stopped cleanly"), "{}", server.describe());
}

#[test]
fn lesson_15_demo_delivers_the_union_once() {
    let out = Proc::spawn(ROOMS_15, &[], Input::Null).finish();
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    for who in ["alice", "bob", "carol"] {
        let line = format!("{who} got flash [\"1-0\"]");
        let n = out.stdout.iter().filter(|l| l.trim() == line).count();
        assert_eq!(n, 1, "{line}\n{}", out.describe());
    }
}

#[test]
fn lesson_15_a_line_from_one_client_reaches_the_other() {
    let mut server = Proc::spawn(ROOMS_15, &["serve", "--addr", "127.0.0.1:0"], Input::Null);
    let addr = server.listening_on();
    let a = addr.to_string();

    // A probe in the room shows when ann has joined: her line reaches it only then.
    let mut probe = Peer::connect(addr);
    let slot = probe.emit_ack("join", vec![json!("news")], vec![], WAIT);
    probe.wait_ack(&slot).expect("the probe joins news");
    let mut ann = Proc::spawn(
        ROOMS_15,
        &["client", "--addr", &a, "--name", "ann", "--room", "news"],
        Input::Open,
    );
    ann.write_stdin("ready\n");
    let inbox = probe.inbox.clone();
    probe.run_until("ann's line reaches the probe", move |_| {
        inbox
            .borrow()
            .iter()
            .any(|g| g.name == "said" && g.args == [json!("ann"), json!("ready")])
    });

    let ben = Proc::spawn(
        ROOMS_15,
        &["client", "--addr", &a, "--name", "ben", "--room", "news"],
        Input::Bytes(b"hi from ben\n"),
    )
    .finish();
    assert_eq!(ben.code(), Some(0), "{}", ben.describe());
    ann.expect_line("with ben's line", |l| l == "ben: hi from ben");
    ann.close_stdin();
    let ann = ann.finish();
    assert_eq!(ann.code(), Some(0), "{}", ann.describe());
    assert_eq!(
        ann.stdout,
        ["ben: hi from ben"],
        "ann prints what ben typed, and nothing else\n{}",
        ann.describe()
    );

    server.sigterm();
    let server = server.finish();
    assert_eq!(server.code(), Some(0), "{}", server.describe());
    drop(probe);
}
