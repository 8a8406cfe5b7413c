//! Hostile and broken peers (issue 5): each test does one bad thing to a server on 127.0.0.1
//! (port 0) while a well-behaved client is connected, then checks that the server dealt with
//! the bad peer as documented and still serves the good client (an ack round trip), and that
//! nothing panicked (the server thread stops cleanly; `handler_panics` counts only the panic
//! a test provokes).
//!
//! | test | the bad peer | what must happen to it |
//! |---|---|---|
//! | `random_bytes_*` | bytes from a seeded generator, from the first byte or as frames after the handshake | closed (as soon as the bytes cannot be a packet; at its FIN if they could still be the start of one) |
//! | `a_declared_length_over_the_limit_*` | a frame header over `max_frame`, no payload | closed with `parse error` at the header |
//! | `a_truncated_frame_*` | half a frame, then FIN | closed with `parse error`, the half frame dropped |
//! | `invalid_utf8_*`, `arguments_that_are_not_a_json_array_*` | malformed EVENTs | closed with `parse error` |
//! | `an_ack_for_an_id_never_sent_*` | an ACK nobody asked for | ignored; still connected |
//! | `slowloris_*` | one byte per 100 ms; and no handshake at all | both closed by `handshake_timeout` |
//! | `a_slow_consumer_*` | never reads while big broadcasts go out | closed with `outbound buffer full`; volatile emits to it dropped |
//! | `a_reset_in_the_middle_of_a_frame_*` | RST (SO_LINGER 0) after half a frame | closed with `transport error` |
//! | `ten_thousand_connect_disconnect_cycles_*` | 10,000 connections in a row | no descriptor left open; RSS growth bounded |
//! | `a_panicking_handler_*` | an event whose handler panics | its socket closed with `server error` |
//!
//! The server runs on a thread of its own ([`RunningServer`]) and reports what its `disconnect`
//! listeners saw over an mpsc channel; the good client is stepped on the test thread; bad peers
//! are std sockets speaking bytes by hand. Every wait is bounded; no assertion is about speed.

mod common;
use common::{
    any_port, connect_raw, frame, handshake, hello_and_connect, open_fds, pseudo_random, raw_peer,
    read_packet, rss_kib, sigterm, spawn_listening, wait_closed, wait_exit, WAIT,
};

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socket2::{Domain, SockRef, Socket, Type};
use socklab::events::{
    reasons, AckError, AckReply, Client, ClientOptions, ClientState, EventStats, Io, RunningServer,
    ServerConfig,
};
use socklab::wire::frame::HEADER_LEN;
use socklab::wire::packet::{self, Limits, Packet};

/// How long a connection may take to join a namespace (the default is 45 s).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(300);

/// The outbound cap for the slow-consumer test: 64 KiB instead of 1 MiB.
const MAX_OUTBOUND: usize = 64 * 1024;

const SOCKLAB: &str = env!("CARGO_BIN_EXE_socklab");

// ---------------------------------------------------------------------------------------------
// The lab: a server, its reports, and a good client
// ---------------------------------------------------------------------------------------------

/// What the server's `disconnect` listeners saw.
#[derive(Debug, Clone, PartialEq)]
struct Gone {
    sid: String,
    reason: String,
}

/// The server's handlers: `echo` answers with its arguments; `boom` panics.
fn install(io: &mut Io, tx: Sender<Gone>) {
    io.on_connection("/", move |io, sid| {
        let t = tx.clone();
        io.on(sid, "disconnect", move |_, ev| {
            let reason = ev.args.first().and_then(Value::as_str).unwrap_or("");
            let _ = t.send(Gone {
                sid: ev.socket.to_string(),
                reason: reason.to_string(),
            });
        });
        io.on(sid, "echo", |io, ev| io.ack(ev, ev.args.clone()));
        io.on(sid, "boom", |_, _| {
            panic!("the `boom` handler panics on purpose (tests/hostile.rs)")
        });
    });
}

/// Heartbeats far apart (30 s): a bad peer here is closed for what it did, never because it
/// did not answer a PING.
fn config() -> ServerConfig {
    let mut config = ServerConfig {
        handshake_timeout: HANDSHAKE_TIMEOUT,
        ping_interval: Duration::from_secs(30),
        ping_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    config.loop_config.max_outbound = MAX_OUTBOUND;
    config
}

type AckSlot = Rc<RefCell<Vec<Result<AckReply, AckError>>>>;

/// Events a client received: name and arguments.
type Inbox = Rc<RefCell<Vec<(String, Vec<Value>)>>>;

/// A library client that behaves; it must never be disconnected (reconnection is off, so a
/// disconnect would show).
struct Good {
    client: Client,
    sid: String,
    inbox: Inbox,
}

impl Good {
    fn connect(addr: SocketAddr) -> Good {
        let mut opts = ClientOptions::new(addr);
        opts.reconnection = false;
        let mut client = Client::connect(opts).expect("Client::connect");
        let inbox: Inbox = Rc::default();
        let log = inbox.clone();
        client
            .io()
            .on_any(move |_, ev| log.borrow_mut().push((ev.name.clone(), ev.args.clone())));
        let ok = client
            .run_until(WAIT, |io| io.state() != ClientState::Connecting)
            .expect("client turn");
        assert!(ok && client.io().is_connected(), "the good client connects");
        let sid = client.io().id().expect("connected").to_string();
        Good { client, sid, inbox }
    }

    fn run_until(&mut self, what: &str, done: impl FnMut(&mut socklab::events::ClientIo) -> bool) {
        let ok = self.client.run_until(WAIT, done).expect("client turn");
        assert!(ok, "{what}: not within {WAIT:?}");
    }

    fn emit_echo(&mut self, text: &str) -> AckSlot {
        let slot: AckSlot = Rc::default();
        let fill = slot.clone();
        self.client
            .io()
            .emit_with_ack("echo", vec![json!(text)], vec![], WAIT, move |_, r| {
                fill.borrow_mut().push(r)
            })
            .expect("emit echo");
        slot
    }

    /// An `echo` round trip: the server still serves this client.
    fn echo(&mut self, text: &str) {
        let slot = self.emit_echo(text);
        let s = slot.clone();
        self.run_until("the good client's echo", move |_| !s.borrow().is_empty());
        let answers = slot.borrow();
        assert_eq!(answers.len(), 1);
        let reply = answers[0].as_ref().expect("the echo is answered");
        assert_eq!(reply.args, vec![json!(text)]);
    }
}

struct Lab {
    server: RunningServer,
    reports: Receiver<Gone>,
    kept: Vec<Gone>,
    good: Good,
}

impl Lab {
    fn start() -> Lab {
        let (tx, rx) = mpsc::channel();
        let server = RunningServer::start(config(), any_port(), move |io| install(io, tx))
            .expect("the server starts on 127.0.0.1:0");
        assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
        let good = Good::connect(server.addr);
        Lab {
            server,
            reports: rx,
            kept: Vec::new(),
            good,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Runs `f` on the server's thread and returns what it returned.
    fn ask<T: Send + 'static>(&self, f: impl FnOnce(&mut Io) -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        self.server
            .handle
            .run(move |io| {
                let _ = tx.send(f(io));
            })
            .expect("the server is running");
        rx.recv_timeout(WAIT)
            .expect("the server thread answers within WAIT")
    }

    fn stats(&self) -> EventStats {
        self.ask(|io| io.stats().clone())
    }

    /// The reason socket `sid` was disconnected with (waits at most [`WAIT`]).
    fn reason(&mut self, sid: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Ok(g) = self.reports.try_recv() {
                self.kept.push(g);
            }
            if let Some(g) = self.kept.iter().find(|g| g.sid == sid) {
                return g.reason.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no disconnect of {sid} within {WAIT:?}; seen {:?}",
                self.kept
            );
            // The good client is stepped meanwhile: it must stay served.
            self.good
                .client
                .turn(Some(Duration::from_millis(5)))
                .expect("client turn");
        }
    }

    /// The end of every test: the good client is still connected with the same id and gets
    /// an answer, nobody but `expected_panics` panicked, and the server thread stops cleanly.
    fn finish(mut self, expected_panics: u64) {
        self.good.echo("still served");
        assert!(self.good.client.io().is_connected());
        assert_eq!(self.good.client.io().id(), Some(self.good.sid.as_str()));
        let sid = self.good.sid.clone();
        assert!(
            !self.kept.iter().any(|g| g.sid == sid),
            "the good client was disconnected: {:?}",
            self.kept
        );
        let stats = self.stats();
        assert_eq!(stats.handler_panics, expected_panics, "{stats:?}");
        self.good.client.io().disconnect();
        let _ = self.good.client.run_until(WAIT, |_| false);
        self.server
            .stop()
            .expect("the server thread ends without panicking");
    }
}

// ---------------------------------------------------------------------------------------------
// Bad peers: std sockets
// ---------------------------------------------------------------------------------------------

/// `payload` with its 4-byte length in front: a frame whatever the payload says.
fn raw_frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

/// Whether the server has closed `stream`, without waiting (the stream is non-blocking).
fn closed_now(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // the server's HELLO
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true, // ECONNRESET
        }
    }
}

/// The EVENT payload (after the frame header) `02 flags ns name args`, with any bytes as the
/// name and the arguments, for packets an honest encoder cannot make.
fn event_payload(name: &[u8], args: &[u8]) -> Vec<u8> {
    let mut p = vec![packet::Kind::Event as u8, 0, 1, b'/'];
    p.push(name.len() as u8);
    p.extend_from_slice(name);
    p.extend_from_slice(&(args.len() as u32).to_be_bytes());
    p.extend_from_slice(args);
    p
}

// =============================================================================================
// Malformed input
// =============================================================================================

/// Random bytes from the first byte on (no HELLO), several seeds. A first byte other than 0
/// makes them HTTP (the Socket.IO wire's upgrade), refused with `400` as soon as they cannot
/// be a request head; a first byte of 0 makes them socklab frames, and the server closes the
/// connection as soon as they cannot be a packet (a length over the limit, or a whole frame
/// that is not a HELLO); if they could still be the start of a long frame, it waits, and
/// closes at our FIN. The good client is served after each.
#[test]
fn random_bytes_from_the_first_byte_are_refused() {
    let mut lab = Lab::start();
    let limit = Limits::default().max_frame;
    for seed in 1..=8u64 {
        let bytes = pseudo_random(4096, seed);
        let declared = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let decidable = declared > limit || HEADER_LEN + declared <= bytes.len();
        let mut stream = connect_raw(lab.addr());
        stream.write_all(&bytes).expect("write the random bytes");
        if !decidable {
            stream.shutdown(Shutdown::Write).expect("FIN");
        }
        wait_closed(&mut stream, &format!("seed {seed}"));
        lab.good.echo(&format!("after seed {seed}"));
    }
    let stats = lab.stats();
    assert!(stats.parse_errors + stats.http_refused >= 1, "{stats:?}");
    lab.finish(0);
}

/// Frames of random bytes after a correct HELLO and CONNECT, several seeds: each connection is
/// closed with `parse error`.
#[test]
fn random_bytes_in_frames_after_the_handshake_are_a_parse_error() {
    let mut lab = Lab::start();
    let before = lab.stats().parse_errors;
    for seed in 1..=8u64 {
        let (mut stream, sid) = raw_peer(lab.addr());
        let payload = pseudo_random(64, seed);
        stream
            .write_all(&raw_frame(&payload))
            .expect("write a random frame");
        wait_closed(&mut stream, &format!("seed {seed}"));
        assert_eq!(lab.reason(&sid), reasons::PARSE_ERROR, "seed {seed}");
        lab.good.echo(&format!("after seed {seed}"));
    }
    assert_eq!(lab.stats().parse_errors, before + 8);
    lab.finish(0);
}

/// A frame header that declares more than `max_frame` (by one byte, and by 4 GiB) is refused
/// at the header: the server closes the connection with `parse error` without waiting for a
/// payload it would have had to allocate.
#[test]
fn a_declared_length_over_the_limit_is_refused_at_the_header() {
    let mut lab = Lab::start();
    let limit = Limits::default().max_frame as u32;
    for declared in [limit + 1, u32::MAX] {
        let (mut stream, sid) = raw_peer(lab.addr());
        stream
            .write_all(&declared.to_be_bytes())
            .expect("write a header only");
        wait_closed(&mut stream, &format!("a header of {declared}"));
        assert_eq!(lab.reason(&sid), reasons::PARSE_ERROR);
        lab.good.echo(&format!("after {declared}"));
    }
    lab.finish(0);
}

/// A raw peer that has sent the first half of an `echo` event (100 bytes of `fill`) and
/// stops there: the stream and its socket id.
fn half_an_echo(lab: &Lab, fill: &str) -> (TcpStream, String) {
    let (mut stream, sid) = raw_peer(lab.addr());
    let whole = frame(&Packet::Event {
        ns: "/".into(),
        name: "echo".into(),
        args: vec![json!(fill.repeat(100))],
        attachments: vec![],
        id: Some(1),
        offset: None,
    });
    stream
        .write_all(&whole[..whole.len() / 2])
        .expect("half a frame");
    (stream, sid)
}

/// Half a frame, then FIN (`shutdown(SHUT_WR)`): end of file in the middle of a frame is an
/// error (docs/protocol.md, section 2), so the socket goes with `parse error`, not `transport
/// close`. The half frame is dropped, never handled.
#[test]
fn a_truncated_frame_then_eof_is_a_parse_error() {
    let mut lab = Lab::start();
    let (mut stream, sid) = half_an_echo(&lab, "x");
    stream.shutdown(Shutdown::Write).expect("FIN");
    let after = wait_closed(&mut stream, "a truncated frame");
    assert!(after.is_empty(), "no answer to half an event: {after:?}");
    assert_eq!(lab.reason(&sid), reasons::PARSE_ERROR);
    let stats = lab.stats();
    assert_eq!(stats.parse_errors, 1, "{stats:?}");
    lab.good.echo("after the truncated frame");
    lab.finish(0);
}

/// The same on the client's side: a server that sends its HELLO and half a frame, then FIN.
/// The client records `parse error`, not `transport close` (reconnection is off, so the
/// reason stays).
#[test]
fn a_server_that_ends_in_the_middle_of_a_frame_is_a_parse_error_for_the_client() {
    let listener = std::net::TcpListener::bind(any_port()).expect("bind");
    let addr = listener.local_addr().expect("getsockname");
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut bytes = frame(&Packet::hello(json!({})));
        let event = frame(&Packet::Event {
            ns: "/".into(),
            name: "news".into(),
            args: vec![json!("x".repeat(100))],
            attachments: vec![],
            id: None,
            offset: None,
        });
        bytes.extend_from_slice(&event[..event.len() / 2]);
        stream.write_all(&bytes).expect("HELLO and half a frame");
        stream.shutdown(Shutdown::Write).expect("FIN");
        // Keep the socket until the client has closed its side.
        let _ = stream.read_to_end(&mut Vec::new());
    });
    let mut opts = ClientOptions::new(addr);
    opts.reconnection = false;
    let mut client = Client::connect(opts).expect("connect");
    let ended = client
        .run_until(WAIT, |io| io.state() == ClientState::Disconnected)
        .expect("client turn");
    assert!(ended, "the client did not end within {WAIT:?}");
    assert_eq!(
        client.io().disconnect_reason(),
        Some(reasons::PARSE_ERROR),
        "end of file inside a frame"
    );
    drop(client);
    server.join().expect("the raw server thread");
}

/// An event name that is not UTF-8 is a `parse error`.
#[test]
fn invalid_utf8_in_an_event_name_is_a_parse_error() {
    let mut lab = Lab::start();
    let before = lab.stats().parse_errors;
    let (mut stream, sid) = raw_peer(lab.addr());
    let bad = raw_frame(&event_payload(&[0xff, 0xfe], b"[]"));
    // The same bytes with a valid name decode: only the name is wrong.
    let good = event_payload(b"ok", b"[]");
    assert!(packet::decode(&good, &Limits::default()).is_ok());
    stream.write_all(&bad).expect("write");
    wait_closed(&mut stream, "invalid UTF-8");
    assert_eq!(lab.reason(&sid), reasons::PARSE_ERROR);
    assert_eq!(lab.stats().parse_errors, before + 1);
    lab.good.echo("after invalid UTF-8");
    lab.finish(0);
}

/// Event arguments that are JSON but not an array (an object, a string, a number), or not
/// JSON at all, are a `parse error`.
#[test]
fn arguments_that_are_not_a_json_array_are_a_parse_error() {
    let mut lab = Lab::start();
    for args in [&b"{}"[..], b"\"text\"", b"5", b"[1,", b"null"] {
        let what = String::from_utf8_lossy(args).to_string();
        let (mut stream, sid) = raw_peer(lab.addr());
        stream
            .write_all(&raw_frame(&event_payload(b"echo", args)))
            .expect("write");
        let after = wait_closed(&mut stream, &what);
        assert!(after.is_empty(), "{what}: no answer: {after:?}");
        assert_eq!(lab.reason(&sid), reasons::PARSE_ERROR, "{what}");
        lab.good.echo(&format!("after {what}"));
    }
    lab.finish(0);
}

/// An ACK for an id the server never sent is ignored: the same connection then gets its echo
/// answered, and the socket was never disconnected.
#[test]
fn an_ack_for_an_id_never_sent_is_ignored() {
    let mut lab = Lab::start();
    let before = lab.stats();
    let (mut stream, sid) = raw_peer(lab.addr());
    let mut bytes = frame(&Packet::Ack {
        ns: "/".into(),
        id: 999,
        args: vec![json!("unasked")],
        attachments: vec![],
    });
    bytes.extend(frame(&Packet::Event {
        ns: "/".into(),
        name: "echo".into(),
        args: vec![json!("after the stray ack")],
        attachments: vec![],
        id: Some(1),
        offset: None,
    }));
    stream.write_all(&bytes).expect("write");
    let answer = read_packet(&mut stream).expect("read");
    assert_eq!(
        answer,
        Some(Packet::Ack {
            ns: "/".into(),
            id: 1,
            args: vec![json!("after the stray ack")],
            attachments: vec![],
        })
    );
    let still = lab.ask({
        let sid = sid.clone();
        move |io| io.is_connected(&sid)
    });
    assert!(still, "the socket is still connected");
    let after = lab.stats();
    assert_eq!(after.parse_errors, before.parse_errors);
    lab.good.echo("after the stray ack");
    drop(stream);
    assert_eq!(lab.reason(&sid), reasons::TRANSPORT_CLOSE);
    lab.finish(0);
}

// =============================================================================================
// Slow and silent peers
// =============================================================================================

/// Slowloris, scaled down: one connection sends its HELLO and CONNECT one byte every 100 ms
/// (a second per byte in the issue), another connects and sends nothing. Both are closed once
/// `handshake_timeout` (300 ms) has passed without a namespace joined, long before the
/// dribble could finish; the good client's round trips go on meanwhile.
#[test]
fn slowloris_and_a_silent_connection_are_closed_after_the_handshake_timeout() {
    let mut lab = Lab::start();
    let handshake = hello_and_connect();
    let mut dribbler = connect_raw(lab.addr());
    let mut silent = connect_raw(lab.addr());
    dribbler.set_nonblocking(true).expect("O_NONBLOCK");
    silent.set_nonblocking(true).expect("O_NONBLOCK");
    // It would take this long to finish the handshake at one byte per 100 ms.
    assert!(handshake.len() as u32 * 100 > 3 * HANDSHAKE_TIMEOUT.as_millis() as u32);

    let (mut sent, mut last_byte) = (0usize, Instant::now() - Duration::from_secs(1));
    let (mut dribbler_open, mut silent_open) = (true, true);
    let mut round_trips_meanwhile = 0;
    let deadline = Instant::now() + WAIT;
    while dribbler_open || silent_open {
        assert!(
            Instant::now() < deadline,
            "not closed within {WAIT:?}: dribbler {dribbler_open}, silent {silent_open}"
        );
        if dribbler_open && last_byte.elapsed() >= Duration::from_millis(100) {
            assert!(
                sent < handshake.len(),
                "the dribbler finished its handshake before being closed"
            );
            // A write after the server closed fails (EPIPE, ECONNRESET): closed_now sees it.
            if dribbler.write(&handshake[sent..=sent]).unwrap_or(0) == 1 {
                sent += 1;
            }
            last_byte = Instant::now();
        }
        lab.good.echo(&format!("meanwhile {round_trips_meanwhile}"));
        round_trips_meanwhile += 1;
        dribbler_open = dribbler_open && !closed_now(&mut dribbler);
        silent_open = silent_open && !closed_now(&mut silent);
    }
    assert!(sent >= 1, "the dribbler sent bytes before it was closed");
    assert!(
        round_trips_meanwhile >= 2,
        "the good client was served meanwhile"
    );
    // Neither joined a namespace, so no socket was ever made for them.
    let sockets = lab.ask(|io| io.sockets("/"));
    assert_eq!(sockets, [lab.good.sid.clone()]);
    lab.finish(0);
}

/// A consumer that never reads (and has a small receive buffer) while the server broadcasts
/// 32 KiB events to everyone, each followed by a volatile `tick`, with the outbound cap at
/// 64 KiB: once the kernel's buffers are full, volatile ticks to it are dropped, and the next
/// event that does not fit closes it with `outbound buffer full`. The good client, which
/// reads, gets every non-volatile broadcast, once and in order.
#[test]
fn a_slow_consumer_is_cut_off_and_volatile_emits_to_it_are_dropped() {
    let mut lab = Lab::start();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .connect_timeout(&lab.addr().into(), WAIT)
        .expect("connect");
    let mut slow: TcpStream = socket.into();
    slow.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    let slow_sid = handshake(&mut slow);

    let body = "x".repeat(32 * 1024);
    let mut slow_gone_at = None;
    let mut sent = 0u64;
    // At most 2000 events (64 MiB) before the slow consumer must have been cut off; the
    // kernel's buffers for one connection hold a few MiB at most.
    for i in 0..2000u64 {
        let payload = body.clone();
        lab.server
            .handle
            .run(move |io| {
                let _ = io
                    .broadcast("/")
                    .emit("big", vec![json!(i), json!(payload)]);
                let _ = io.broadcast("/").volatile().emit("tick", vec![json!(i)]);
            })
            .expect("the server is running");
        sent = i + 1;
        // The good client reads each event before the next is sent: its output never backs
        // up.
        let inbox = lab.good.inbox.clone();
        lab.good
            .run_until("the good client gets the big event", move |_| {
                inbox
                    .borrow()
                    .iter()
                    .any(|(n, a)| n == "big" && a.first() == Some(&json!(i)))
            });
        while let Ok(g) = lab.reports.try_recv() {
            lab.kept.push(g);
        }
        if slow_gone_at.is_none() && lab.kept.iter().any(|g| g.sid == slow_sid) {
            slow_gone_at = Some(i);
        }
        // A few more after the cut: the others are still served.
        if slow_gone_at.is_some_and(|at| i >= at + 5) {
            break;
        }
    }
    let gone_at = slow_gone_at.expect("the slow consumer was disconnected");
    assert_eq!(lab.reason(&slow_sid), reasons::OUTBOUND_FULL);

    // A last, non-volatile broadcast: when the good client has it, every tick meant for it
    // has arrived or was dropped.
    lab.server
        .handle
        .broadcast("/", None, "end", vec![])
        .expect("the server is running");
    let inbox = lab.good.inbox.clone();
    lab.good.run_until("the end broadcast", move |_| {
        inbox.borrow().iter().any(|(n, _)| n == "end")
    });
    let got = lab.good.inbox.borrow().clone();
    let bigs: Vec<Value> = got
        .iter()
        .filter(|(n, _)| n == "big")
        .map(|(_, a)| a[0].clone())
        .collect();
    assert_eq!(
        bigs,
        (0..sent).map(|i| json!(i)).collect::<Vec<_>>(),
        "every big event, once, in order"
    );
    let good_ticks = got.iter().filter(|(n, _)| n == "tick").count() as u64;
    let stats = lab.stats();
    // Ticks not received by the good client were dropped for it; the rest of the drops were
    // for the slow consumer, the only other socket.
    let dropped_for_slow = stats.volatile_dropped.saturating_sub(sent - good_ticks);
    assert!(
        dropped_for_slow >= 1,
        "volatile ticks to the slow consumer were dropped: {stats:?}, good client got \
         {good_ticks} of {sent}, cut at event {gone_at}"
    );
    // Its connection is closed: what the kernel held reaches it, then end of file.
    wait_closed(&mut slow, "the slow consumer");
    lab.finish(0);
}

// =============================================================================================
// Broken connections
// =============================================================================================

/// A peer that sends half a frame and then resets the connection (SO_LINGER 0, close: RST
/// instead of FIN): its socket goes with `transport error`.
#[test]
fn a_reset_in_the_middle_of_a_frame_is_a_transport_error() {
    let mut lab = Lab::start();
    let (stream, sid) = half_an_echo(&lab, "y");
    SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(stream); // close(2) with linger 0: RST
    assert_eq!(lab.reason(&sid), reasons::TRANSPORT_ERROR);
    lab.good.echo("after the reset");
    lab.finish(0);
}

/// A handler that panics: its socket is disconnected with `server error`, the panic is
/// counted, and the server goes on.
#[test]
fn a_panicking_handler_disconnects_only_its_socket() {
    let mut lab = Lab::start();
    let (mut stream, sid) = raw_peer(lab.addr());
    stream
        .write_all(&frame(&Packet::Event {
            ns: "/".into(),
            name: "boom".into(),
            args: vec![],
            attachments: vec![],
            id: None,
            offset: None,
        }))
        .expect("write");
    wait_closed(&mut stream, "the panicking handler's peer");
    assert_eq!(lab.reason(&sid), reasons::SERVER_ERROR);
    lab.good.echo("after the panic");
    lab.finish(1);
}

// =============================================================================================
// 10,000 connections in a row
// =============================================================================================

/// One cycle: connect, HELLO and CONNECT, wait for the server's CONNECT (so the server has
/// made a socket), close.
fn cycle(addr: SocketAddr) {
    let mut stream = connect_raw(addr);
    handshake(&mut stream);
}

/// Waits (at most [`WAIT`]) until the server's descriptor count is `want`; returns the last.
fn settle_fds(pid: u32, want: usize) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let n = open_fds(pid);
        if n == want || Instant::now() >= deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// 10,000 connect, handshake, close cycles against a server process of its own (`socklab
/// serve --matches 0`, the event server with no score feed: its descriptors and memory are
/// not mixed with the other tests running in this process). After them the server holds exactly the descriptors it held before, and its
/// resident memory has grown by less than 16 MiB.
///
/// Why 16 MiB, and not less: some state outlives each connection on purpose, for a while.
/// A connection that closes without DISCONNECT leaves a parked session (id, private id, rooms
/// and when each was joined) for `max_disconnection_duration`, 2 minutes by default, and its
/// PING and handshake timers stay in the timer heap until they are due (25 s and 45 s).
/// Measured on this code with an in-process server: about 900 bytes per parked session and
/// 90 per timer, so 10,000 cycles keep about 10.5 MiB that is given back later. A leak of the
/// connection itself costs more: a live connection with its socket holds about 3 KiB in this
/// server (measured with 5,000 open), so leaking them would add some 30 MiB on top; 16 MiB
/// sits between the two.
#[test]
fn ten_thousand_connect_disconnect_cycles_leak_no_descriptor_and_little_memory() {
    let mut cmd = Command::new(SOCKLAB);
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--matches", "0"])
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let (mut child, addr, _) = spawn_listening(&mut cmd, "socklab serve");
    let pid = child.0.id();

    // Warm up: the allocator's arenas, the connection table, the timer heap grow to their
    // working size first.
    let idle = open_fds(pid);
    for _ in 0..500 {
        cycle(addr);
    }
    let fds_before = settle_fds(pid, idle);
    assert_eq!(fds_before, idle, "the warm-up connections are closed");
    let rss_before = rss_kib(pid);

    let deadline = Instant::now() + Duration::from_secs(300);
    for n in 0..10_000 {
        assert!(
            Instant::now() < deadline,
            "cycle {n}: the cycles did not finish"
        );
        cycle(addr);
    }
    let fds_after = settle_fds(pid, fds_before);
    let rss_after = rss_kib(pid);
    eprintln!(
        "socklab serve after 10,000 cycles: {fds_after} descriptors (before: {fds_before}), \
         VmRSS {rss_after} KiB (before: {rss_before} KiB)"
    );
    assert_eq!(fds_after, fds_before, "no descriptor left open");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "VmRSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    // The server still serves: a chat user joins and is answered.
    let mut stream = connect_raw(addr);
    stream
        .write_all(&hello_and_connect())
        .expect("HELLO and CONNECT");
    stream
        .write_all(&frame(&Packet::Connect {
            ns: "/chat".into(),
            data: Some(json!({"name": "after-10000"})),
        }))
        .expect("CONNECT /chat");
    let mut joined = false;
    for _ in 0..8 {
        match read_packet(&mut stream) {
            Ok(Some(Packet::Connect { ns, data: Some(d) })) if ns == "/chat" => {
                joined = d.get("sid").is_some();
                break;
            }
            Ok(Some(_)) => continue,
            other => panic!("expected the CONNECT reply for /chat, got {other:?}"),
        }
    }
    assert!(joined, "no CONNECT reply for /chat after 10,000 cycles");
    drop(stream);
    sigterm(&child.0);
    let status = wait_exit(&mut child.0, "socklab serve after SIGTERM", WAIT);
    assert!(status.success(), "socklab serve exit status {status}");
}
