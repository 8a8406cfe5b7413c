//! The hostile tests' lab (`tests/hostile_web.rs`, `tests/hostile_polling.rs`): an in-process
//! server whose `echo` acks and whose `disconnect`s are reported, and the good clients that
//! must come through an attack untouched: a raw socklab peer, a Socket.IO peer over
//! WebSocket and, where the test asks for it, a Socket.IO peer over long-polling. Each keeps
//! doing ack round trips (answering the server's pings on the way); [`WebLab::finish`] checks
//! that none of them was disconnected and that the server stops cleanly.
//!
//! Descriptors and memory are measured in the test's own process, which the server shares:
//! the lab holds [`serial`]'s lock, so one test of a file runs at a time.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde_json::{json, Value};
use socklab::events::{EventStats, Io, RunningServer, ServerConfig};
use socklab::wire::packet::Packet;

use super::{any_port, ask, frame, raw_peer, read_packet, PollingPeer, SioPeer, WAIT};

/// One test at a time in a test binary: the descriptor and memory figures are the process's.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that failed while holding it poisoned it; the next one may still run.
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the server's `disconnect` listeners saw: socket id and reason.
pub type Gone = (String, String);

/// `echo` answers with its arguments; each `disconnect` is reported.
fn install(io: &mut Io, tx: Sender<Gone>) {
    io.on_connection("/", move |io, sid| {
        let t = tx.clone();
        io.on(sid, "disconnect", move |_, ev| {
            let reason = ev.args.first().and_then(Value::as_str).unwrap_or("");
            let _ = t.send((ev.socket.to_string(), reason.to_string()));
        });
        io.on(sid, "echo", |io, ev| io.ack(ev, ev.args.clone()));
    });
}

/// A server, its `disconnect` reports, and the good clients.
pub struct WebLab {
    pub server: RunningServer,
    pub reports: Receiver<Gone>,
    /// Reports taken from `reports` and not yet asked for.
    pub kept: Vec<Gone>,
    /// The good socklab client: a raw peer, its socket id.
    pub socklab: (TcpStream, String),
    /// The good Socket.IO client over WebSocket, its socket id.
    pub web: (SioPeer, String),
    /// The good Socket.IO client over long-polling, its socket id (if the test has one).
    pub poll: Option<(PollingPeer, String)>,
    /// Ack ids used so far (each client numbers its own; one counter serves them all).
    pub next_id: u32,
    pub round_trips: u32,
    _serial: MutexGuard<'static, ()>,
}

impl WebLab {
    /// Takes [`serial`]'s lock, starts the server with `config`, connects the good clients
    /// (the polling one if `polling`) and does a first round trip.
    pub fn serve(config: ServerConfig, polling: bool) -> WebLab {
        let serial = serial();
        let (tx, rx) = mpsc::channel();
        let server = RunningServer::start(config, any_port(), move |io| install(io, tx))
            .expect("the server starts on 127.0.0.1:0");
        let socklab = raw_peer(server.addr);
        let web = SioPeer::connect(server.addr, "/", None);
        let poll = polling.then(|| PollingPeer::connect(server.addr));
        let mut lab = WebLab {
            server,
            reports: rx,
            kept: Vec::new(),
            socklab,
            web,
            poll,
            next_id: 0,
            round_trips: 0,
            _serial: serial,
        };
        lab.round_trip("before");
        lab
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn stats(&self) -> EventStats {
        ask(&self.server.handle, |io| io.stats())
    }

    /// One `echo` with an ack from each good client; a ping met on the way is answered.
    pub fn round_trip(&mut self, text: &str) {
        self.next_id += 1;
        let id = self.next_id;
        let (stream, _) = &mut self.socklab;
        let event = Packet::Event {
            ns: "/".into(),
            name: "echo".into(),
            args: vec![json!(text)],
            attachments: vec![],
            id: Some(id),
            offset: None,
        };
        stream.write_all(&frame(&event)).expect("the socklab echo");
        loop {
            match read_packet(stream) {
                Ok(Some(Packet::Ack { id: got, args, .. })) if got == id => {
                    assert_eq!(args, vec![json!(text)]);
                    break;
                }
                Ok(Some(Packet::Ping)) => stream.write_all(&frame(&Packet::Pong)).expect("pong"),
                other => panic!("socklab {text}: expected ack {id}, got {other:?}"),
            }
        }
        let event = format!("42{id}{}", json!(["echo", text]));
        let want = format!("43{id}{}", json!([text]));
        let (peer, _) = &mut self.web;
        peer.send_text(&event);
        loop {
            match peer.expect_text(&format!("Socket.IO {text}")) {
                t if t == want => break,
                t if t == "2" => peer.send_text("3"),
                t => panic!("Socket.IO {text}: expected {want}, got {t}"),
            }
        }
        if self.poll.is_some() {
            self.polling_round_trip(text, &event, &want);
        }
        self.round_trips += 1;
    }

    /// The polling client's part of a round trip: POST the `event`, poll until `want`.
    fn polling_round_trip(&mut self, text: &str, event: &str, want: &str) {
        let Some((peer, _)) = &self.poll else { return };
        let posted = peer.post(event.as_bytes());
        if posted.status() != 200 {
            self.kept.extend(self.reports.try_iter());
            panic!(
                "polling {text}: {posted:?}; disconnects seen: {:?}",
                self.kept
            );
        }
        peer.poll_for(want, &format!("polling {text}"));
    }

    /// The reason socket `sid` was disconnected with (within [`WAIT`]).
    pub fn reason(&mut self, sid: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((_, r)) = self.kept.iter().find(|(s, _)| s == sid) {
                return r.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(g) => self.kept.push(g),
                Err(_) => panic!("no disconnect of {sid}; seen {:?}", self.kept),
            }
        }
    }

    /// The end of every test: a last round trip, the good clients never disconnected,
    /// no panic, the server thread ends cleanly. Returns the round trips done.
    pub fn finish(mut self) -> u32 {
        self.round_trip("after");
        self.kept.extend(self.reports.try_iter());
        let polled = self.poll.iter().map(|(_, sid)| sid);
        for sid in [&self.socklab.1, &self.web.1].into_iter().chain(polled) {
            assert!(
                !self.kept.iter().any(|(s, _)| s == sid),
                "a good client was disconnected: {:?}",
                self.kept
            );
            let sid = sid.clone();
            assert!(ask(&self.server.handle, move |io| io.is_connected(&sid)));
        }
        assert_eq!(self.stats().handler_panics, 0);
        let n = self.round_trips;
        let WebLab {
            server,
            socklab,
            web,
            ..
        } = self;
        // The server lingers for each client's FIN when it stops: they go first (the polling
        // client holds no connection between its requests).
        drop((socklab, web));
        server
            .stop()
            .expect("the server thread ends without panicking");
        n
    }
}
