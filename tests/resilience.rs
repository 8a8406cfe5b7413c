//! Resilience (issue 5, lessons 16 and 17) end to end, on real sockets on 127.0.0.1, port 0.
//!
//! - Heartbeats: the server drops a peer that never answers PING (`ping timeout`) and keeps a
//!   live client for many intervals; a client drops a server that stops PINGing and starts
//!   reconnecting.
//! - Reconnection: `disconnect`, `reconnect_attempt` 1, 2, 3 with `reconnect_error` while
//!   nobody listens, then `reconnect` and `connect` when a server is back on the same address,
//!   each listener once; a limit on attempts ends in `reconnect_failed`; a deliberate
//!   disconnect by either side never reconnects; the client never retries before its backoff
//!   delay, and the delay doubles.
//! - No lost messages: plain emits made while disconnected arrive once and in order; acked
//!   emits are handled exactly once and answered exactly once across two server restarts; the
//!   offline buffer refuses past its size instead of dropping.
//! - Connection state recovery: through a [`Proxy`] that cuts connections while the server
//!   runs on, the client gets back its id and rooms and the broadcasts it missed, in order and
//!   once, on every reconnect; an acked emit whose ACK was lost (in the cut, or given while
//!   the client was away) is retried, handled once and answered once; past
//!   `max_disconnection_duration` the session is gone. The replay holds what was missed and
//!   nothing else: not broadcasts from before the client connected or joined the room, not
//!   volatile ones; it works after a server restart too; and a recovery that cannot replay
//!   everything is not claimed (docs/protocol.md, sections 9 and 11.3; several of these
//!   are listed as shortfalls in its section 12).
//! - Graceful shutdown as a process: SIGTERM gives a raw client DISCONNECT `server shutting
//!   down`, then end of file (a FIN, not a reset), and the process exits 0; the lesson 16 and
//!   17 demonstrations exit 0.
//!
//! How: a [`Server`](socklab::events::Server) holds closures that are not `Send`, so each runs
//! on a thread of its own ([`RunningServer`]); its handlers report what it saw over an mpsc
//! channel ([`Seen`]). Clients are stepped on the test thread with bounded turns; their
//! listeners write into `Rc<RefCell<..>>` ([`Watched`]). Timings are small (PING every 50 to
//! 100 ms, reconnection after 20 to 50 ms) so the file runs in seconds. Nothing asserts on
//! speed, every wait has a limit, and every thread and process started here is stopped by a
//! guard's `Drop`.

mod common;
use common::{
    any_port, ask, frame, lines_of, raw_connect, raw_peer, read_packet, spawn_listening, wait_exit,
    Reaper, WAIT,
};

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use socklab::events::{
    reasons, AckError, AckReply, Client, ClientIo, ClientOptions, ClientState, EmitError, Io,
    RunningServer, ServerConfig, ServerHandle,
};
use socklab::wire::frame::HEADER_LEN;
use socklab::wire::packet::{self, Packet};

/// The longest a child process may take to finish once it should.
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// Heartbeats for most tests: a PING every 100 ms, the PONG due within 500 ms, so that a
/// test thread the scheduler leaves out for a moment does not look like a dead peer.
const PING_INTERVAL: Duration = Duration::from_millis(100);
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// Heartbeats for the heartbeat tests: a PING every 50 ms, the PONG due within 150 ms.
const FAST_PING_INTERVAL: Duration = Duration::from_millis(50);
const FAST_PING_TIMEOUT: Duration = Duration::from_millis(150);

/// Reconnection for these tests: 20 ms, doubling, at most 50 ms (Socket.IO's 1 s and 5 s,
/// scaled down).
const RECONNECT_DELAY: Duration = Duration::from_millis(20);
const RECONNECT_DELAY_MAX: Duration = Duration::from_millis(50);

/// An ack timeout no test reaches: an answer that does not come is a failure of its own.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

const LESSON_16: &str = env!("CARGO_BIN_EXE_16_heartbeat_reconnect");
const LESSON_17: &str = env!("CARGO_BIN_EXE_17_graceful_shutdown");

fn server_config() -> ServerConfig {
    ServerConfig {
        ping_interval: PING_INTERVAL,
        ping_timeout: PING_TIMEOUT,
        ..ServerConfig::default()
    }
}

fn client_options(addr: SocketAddr) -> ClientOptions {
    let mut opts = ClientOptions::new(addr);
    opts.reconnection_delay = RECONNECT_DELAY;
    opts.reconnection_delay_max = RECONNECT_DELAY_MAX;
    opts.connect_timeout = WAIT;
    opts
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A thread that panicked while holding the lock has failed its test already; the data
    // (a list of sockets, of threads) is still good for cleaning up.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// The server under test and what it reports
// ---------------------------------------------------------------------------------------------

/// What a server's handlers saw, sent to the test thread.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// A connection handler ran for socket `sid` (a recovered session runs it again, with the
    /// same id).
    Connected { sid: String },
    /// Socket `sid`'s `disconnect` listener ran with `reason`.
    Disconnected { sid: String, reason: String },
    /// A handler for `event` ran, with `arg` as the event's first argument.
    Handled {
        sid: String,
        event: String,
        arg: Value,
    },
}

/// Events whose answer the `later` handler left for later (kept beside the server, on its
/// thread).
type Unanswered = Rc<RefCell<Vec<socklab::events::Event>>>;

/// The server's handlers: `plain` (reported), `acked` and `echo` (reported and answered with
/// their arguments), `join` (joins the room named by the first argument, answers with the
/// socket's rooms), `later` (reported, answered only when the test says so, through
/// [`answer_later`]) and, when a [`Cutter`] is given, `flaky`: it cuts every proxied
/// connection the first time it runs, *then* answers, so that the answer is lost.
fn install(io: &mut Io, tx: Sender<Seen>, cutter: Option<Cutter>) {
    let flaky_runs = Arc::new(AtomicUsize::new(0));
    let unanswered = Unanswered::default();
    io.insert_data(unanswered.clone());
    io.on_connection("/", move |io, sid| {
        let _ = tx.send(Seen::Connected {
            sid: sid.to_string(),
        });
        let t = tx.clone();
        io.on(sid, "disconnect", move |_, ev| {
            let reason = ev.args.first().and_then(Value::as_str).unwrap_or("");
            let _ = t.send(Seen::Disconnected {
                sid: ev.socket.clone(),
                reason: reason.to_string(),
            });
        });
        for name in ["plain", "acked", "echo"] {
            let t = tx.clone();
            io.on(sid, name, move |io, ev| {
                let _ = t.send(handled(ev));
                io.ack(ev, ev.args.clone());
            });
        }
        io.on(sid, "join", |io, ev| {
            if let Some(room) = ev.args.first().and_then(Value::as_str) {
                io.join(&ev.socket, room);
            }
            let rooms = io.rooms_of(&ev.socket);
            io.ack(ev, vec![json!(rooms)]);
        });
        let (t, keep) = (tx.clone(), unanswered.clone());
        io.on(sid, "later", move |_, ev| {
            let _ = t.send(handled(ev));
            keep.borrow_mut().push(ev.clone());
        });
        if let Some(cutter) = cutter.clone() {
            let (t, runs) = (tx.clone(), flaky_runs.clone());
            io.on(sid, "flaky", move |io, ev| {
                let _ = t.send(handled(ev));
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    // The event was handled; now the connection dies before the answer
                    // leaves. The ACK below goes into a connection the proxy has cut.
                    cutter.cut();
                }
                io.ack(ev, vec![json!("done"), json!(ev.args.first())]);
            });
        }
    });
}

/// Answers every `later` event so far with `["later", its first argument]`, on the server's
/// thread; returns how many.
fn answer_later(handle: &ServerHandle) -> usize {
    ask(handle, |io| {
        let Some(kept) = io.data::<Unanswered>().cloned() else {
            return 0;
        };
        let events: Vec<_> = kept.borrow_mut().drain(..).collect();
        for ev in &events {
            io.ack(ev, vec![json!("later"), json!(ev.args.first())]);
        }
        events.len()
    })
}

fn handled(ev: &socklab::events::Event) -> Seen {
    Seen::Handled {
        sid: ev.socket.clone(),
        event: ev.name.clone(),
        arg: ev.args.first().cloned().unwrap_or(Value::Null),
    }
}

/// Starts a server with [`install`]ed handlers on `addr`. A restart on the address of a server
/// that just stopped is retried while the port is still taken (an outgoing connection of a
/// test running in parallel may have been given it as its local port meanwhile).
fn start_server(
    config: &ServerConfig,
    addr: SocketAddr,
    tx: &Sender<Seen>,
    cutter: Option<Cutter>,
) -> RunningServer {
    let deadline = Instant::now() + WAIT;
    loop {
        let (tx, cutter) = (tx.clone(), cutter.clone());
        match RunningServer::start(config.clone(), addr, move |io| install(io, tx, cutter)) {
            Ok(server) => {
                assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
                return server;
            }
            Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("a server on {addr}: {e}"),
        }
    }
}

/// The reports of the servers of one test, with those received and not yet asked for.
struct Reports {
    rx: Receiver<Seen>,
    kept: Vec<Seen>,
}

impl Reports {
    fn new(rx: Receiver<Seen>) -> Reports {
        Reports {
            rx,
            kept: Vec::new(),
        }
    }

    /// Every report received so far, without waiting.
    fn all(&mut self) -> &[Seen] {
        while let Ok(s) = self.rx.try_recv() {
            self.kept.push(s);
        }
        &self.kept
    }

    /// Whether a report that `pred` accepts has arrived (it stays in the list).
    fn has(&mut self, pred: impl Fn(&Seen) -> bool) -> bool {
        self.all().iter().any(pred)
    }

    /// Waits (at most [`WAIT`]) for a report that `pred` accepts, without stepping any
    /// client. For what the server does on its own (a disconnect it noticed).
    fn wait(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.all().iter().find(|s| pred(s)) {
                return s.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(s) => self.kept.push(s),
                Err(_) => panic!(
                    "the server never reported {what} (within {WAIT:?}); it reported {:#?}",
                    self.kept
                ),
            }
        }
    }

    /// The first arguments of the `event`s handled, in the order the servers handled them.
    fn handled(&mut self, event: &str) -> Vec<Value> {
        self.all()
            .iter()
            .filter_map(|s| match s {
                Seen::Handled { event: e, arg, .. } if e == event => Some(arg.clone()),
                _ => None,
            })
            .collect()
    }
}

fn disconnected_of(sid: &str) -> impl Fn(&Seen) -> bool + '_ {
    move |s| matches!(s, Seen::Disconnected { sid: x, .. } if x == sid)
}

fn reason_of(s: &Seen) -> String {
    match s {
        Seen::Disconnected { reason, .. } => reason.clone(),
        other => panic!("not a disconnect: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// A client that records what happens to it
// ---------------------------------------------------------------------------------------------

/// The client's own events (the rest are the server's).
const LIFECYCLE: [&str; 7] = [
    "connect",
    "connect_error",
    "disconnect",
    "reconnect_attempt",
    "reconnect",
    "reconnect_error",
    "reconnect_failed",
];

/// One of the client's own events: its name, its first argument (or null) and when it fired.
#[derive(Debug, Clone)]
struct Life {
    name: String,
    arg: Value,
    at: Instant,
}

type AckSlot = Rc<RefCell<Vec<Result<AckReply, AckError>>>>;

/// Events a client received from the server: name and arguments.
type Inbox = Rc<RefCell<Vec<(String, Vec<Value>)>>>;

/// A library client whose listeners, registered once before its first turn, record its own
/// events (`life`) and the server's events (`inbox`, as `name` and arguments).
struct Watched {
    client: Client,
    life: Rc<RefCell<Vec<Life>>>,
    inbox: Inbox,
}

impl Watched {
    /// Starts connecting; does not wait.
    fn start(opts: ClientOptions) -> Watched {
        let mut client = Client::connect(opts).expect("Client::connect");
        let life: Rc<RefCell<Vec<Life>>> = Rc::default();
        for name in LIFECYCLE {
            let log = life.clone();
            client.io().on(name, move |_, ev| {
                log.borrow_mut().push(Life {
                    name: ev.name.clone(),
                    arg: ev.args.first().cloned().unwrap_or(Value::Null),
                    at: Instant::now(),
                });
            });
        }
        let inbox: Inbox = Rc::default();
        let log = inbox.clone();
        client.io().on_any(move |_, ev| {
            // `on_any` sees the `reconnect_*` events too: they are not reserved names.
            if !LIFECYCLE.contains(&ev.name.as_str()) {
                log.borrow_mut().push((ev.name.clone(), ev.args.clone()));
            }
        });
        Watched {
            client,
            life,
            inbox,
        }
    }

    /// Connects and waits for the server's CONNECT reply.
    fn connect(opts: ClientOptions) -> Watched {
        let mut w = Watched::start(opts);
        w.run_until("the first connect", |io| io.is_connected());
        w
    }

    fn io(&mut self) -> &mut ClientIo {
        self.client.io()
    }

    fn sid(&mut self) -> String {
        self.io()
            .id()
            .expect("a connected client has the id from the server's CONNECT")
            .to_string()
    }

    /// Steps the client until `done`, failing the test after [`WAIT`].
    fn run_until(&mut self, what: &str, done: impl FnMut(&mut ClientIo) -> bool) {
        let ok = self.client.run_until(WAIT, done).expect("client turn");
        assert!(
            ok,
            "{what}: not within {WAIT:?}; the client's own events were {:?}",
            self.names()
        );
    }

    /// Steps the client for `how_long` whatever happens (for claims that something does not
    /// happen: the window is long enough for it to have happened many times over).
    fn run_for(&mut self, how_long: Duration) {
        let _ = self
            .client
            .run_until(how_long, |_| false)
            .expect("client turn");
    }

    /// Steps the client until it has fired `name` `n` times.
    fn run_until_fired(&mut self, name: &str, n: usize) {
        let life = self.life.clone();
        let name_owned = name.to_string();
        self.run_until(&format!("{name} fired {n} times"), move |_| {
            life.borrow()
                .iter()
                .filter(|l| l.name == name_owned)
                .count()
                >= n
        });
    }

    /// Steps the client until its inbox holds an event `name` with first argument `arg`.
    fn run_until_got(&mut self, name: &str, arg: Value) {
        let inbox = self.inbox.clone();
        let name_owned = name.to_string();
        let want = arg.clone();
        self.run_until(&format!("the event {name} {arg}"), move |_| {
            inbox
                .borrow()
                .iter()
                .any(|(n, a)| *n == name_owned && a.first() == Some(&want))
        });
    }

    /// The client's own events so far, as `name arg` lines.
    fn names(&self) -> Vec<String> {
        self.life
            .borrow()
            .iter()
            .map(|l| match &l.arg {
                Value::Null => l.name.clone(),
                a => format!("{} {a}", l.name),
            })
            .collect()
    }

    fn count(&self, name: &str) -> usize {
        self.life.borrow().iter().filter(|l| l.name == name).count()
    }

    /// Emits `event` asking for an ack; every callback run is added to the slot.
    fn emit_ack(&mut self, event: &str, args: Vec<Value>) -> AckSlot {
        let slot: AckSlot = Rc::default();
        let fill = slot.clone();
        self.io()
            .emit_with_ack(event, args, vec![], ACK_TIMEOUT, move |_, r| {
                fill.borrow_mut().push(r)
            })
            .unwrap_or_else(|e| panic!("emit_with_ack {event:?}: {e}"));
        slot
    }

    /// Emits `event` with `args`, waits for its one answer and returns its arguments.
    fn round_trip(&mut self, event: &str, args: Vec<Value>) -> Vec<Value> {
        let slot = self.emit_ack(event, args);
        let s = slot.clone();
        self.run_until(&format!("the answer to {event}"), move |_| {
            !s.borrow().is_empty()
        });
        let answers = slot.borrow();
        assert_eq!(answers.len(), 1, "one answer per acked emit: {answers:?}");
        match &answers[0] {
            Ok(reply) => reply.args.clone(),
            Err(e) => panic!("{event} got no answer: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw peers: the protocol by hand over std sockets
// ---------------------------------------------------------------------------------------------

/// How a connection ended, as its reader saw it.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// `read` returned 0: the other side sent FIN.
    Eof,
    /// ECONNRESET: the other side sent RST.
    Reset,
}

/// Reads packets until the connection ends (at most [`WAIT`]); returns them and the end.
fn read_to_end(stream: &mut TcpStream) -> (Vec<Packet>, End) {
    let deadline = Instant::now() + WAIT;
    let mut packets = Vec::new();
    while Instant::now() < deadline {
        match read_packet(stream) {
            Ok(Some(p)) => packets.push(p),
            Ok(None) => return (packets, End::Eof),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (packets, End::Reset),
            Err(e) => panic!("reading until the end, after {packets:?}: {e}"),
        }
    }
    panic!("the connection did not end within {WAIT:?}; got {packets:?}")
}

// ---------------------------------------------------------------------------------------------
// A proxy that can cut connections while the server runs on
// ---------------------------------------------------------------------------------------------

/// What the proxy's threads share.
#[derive(Default)]
struct ProxyShared {
    stop: AtomicBool,
    /// Both ends of every connection relayed since the last cut.
    live: Mutex<Vec<TcpStream>>,
    relays: Mutex<Vec<JoinHandle<()>>>,
    accepted: AtomicUsize,
}

/// Cuts every connection the proxy relays (from any thread: a server handler may use it).
#[derive(Clone, Default)]
struct Cutter(Arc<ProxyShared>);

impl Cutter {
    /// `shutdown(SHUT_RDWR)` on both ends of every relayed connection: each peer reads end
    /// of file, as when a NAT box or a Wi-Fi link drops a connection, while the proxy goes on
    /// accepting new ones.
    fn cut(&self) {
        let live = std::mem::take(&mut *lock(&self.0.live));
        for s in &live {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A TCP proxy on 127.0.0.1: each connection accepted is relayed to `upstream` by two
/// threads, one per direction.
struct Proxy {
    addr: SocketAddr,
    cutter: Cutter,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(cutter: &Cutter, upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(any_port()).expect("the proxy listens");
        let addr = listener.local_addr().expect("getsockname");
        // Non-blocking, so that the accept loop can see the stop flag.
        listener.set_nonblocking(true).expect("O_NONBLOCK");
        let shared = cutter.0.clone();
        let accept = thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((down, _)) => relay_pair(&shared, down, upstream),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Proxy {
            addr,
            cutter: cutter.clone(),
            accept: Some(accept),
        }
    }

    fn cut(&self) {
        self.cutter.cut();
    }

    fn accepted(&self) -> usize {
        self.cutter.0.accepted.load(Ordering::SeqCst)
    }
}

fn relay_pair(shared: &Arc<ProxyShared>, down: TcpStream, upstream: SocketAddr) {
    let _ = down.set_nonblocking(false);
    let Ok(up) = TcpStream::connect_timeout(&upstream, WAIT) else {
        return; // the server is not there: the client sees the connection close
    };
    shared.accepted.fetch_add(1, Ordering::SeqCst);
    let _ = up.set_nodelay(true);
    let _ = down.set_nodelay(true);
    let clones = (
        down.try_clone(),
        up.try_clone(),
        down.try_clone(),
        up.try_clone(),
    );
    let (Ok(d1), Ok(u1), Ok(d2), Ok(u2)) = clones else {
        return;
    };
    lock(&shared.live).extend([d2, u2]);
    let (s1, s2) = (shared.clone(), shared.clone());
    let a = thread::spawn(move || relay(&s1, down, up));
    let b = thread::spawn(move || relay(&s2, u1, d1));
    lock(&shared.relays).extend([a, b]);
}

/// Copies `from` to `to` until end of file, an error, or the proxy stops.
fn relay(shared: &ProxyShared, mut from: TcpStream, mut to: TcpStream) {
    // A short read timeout only to look at the stop flag now and then.
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = to.set_write_timeout(Some(WAIT));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let shared = &self.cutter.0;
        shared.stop.store(true, Ordering::SeqCst);
        self.cutter.cut();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let relays = std::mem::take(&mut *lock(&shared.relays));
        for t in relays {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// Every line the channel got until its writer closed (at most [`WAIT`]).
fn collect_lines(rx: &Receiver<String>) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the output did not end within {WAIT:?}; so far {lines:?}")
            }
        }
    }
}

// =============================================================================================
// 1. Heartbeats
// =============================================================================================

/// A raw peer that speaks HELLO and CONNECT and then never answers PING is disconnected with
/// `ping timeout`; a library client on the same server, answering every PING, stays connected
/// across many intervals.
#[test]
fn server_drops_a_peer_that_never_pongs_and_keeps_a_live_client() {
    let (tx, rx) = mpsc::channel();
    let mut reports = Reports::new(rx);
    let config = ServerConfig {
        ping_interval: FAST_PING_INTERVAL,
        ping_timeout: FAST_PING_TIMEOUT,
        ..server_config()
    };
    let server = start_server(&config, any_port(), &tx, None);

    let (mut silent, silent_sid) = raw_peer(server.addr);
    // The silent peer reads on a thread of its own while the test thread steps the client.
    let reader = thread::spawn(move || read_to_end(&mut silent));

    let mut live = Watched::connect(client_options(server.addr));
    let live_sid = live.sid();
    let pongs = Rc::new(RefCell::new(0usize));
    let count = pongs.clone();
    live.io().set_tap(move |bytes| {
        if bytes.get(HEADER_LEN) == Some(&(packet::Kind::Pong as u8)) {
            *count.borrow_mut() += 1;
        }
    });
    // Ten PONGs are ten PINGs answered: ten intervals at least, each of which would have
    // ended a peer that did not answer.
    let p = pongs.clone();
    live.run_until("ten PINGs answered", move |_| *p.borrow() >= 10);

    let silent_end = reports.wait("the silent peer's disconnect", disconnected_of(&silent_sid));
    assert_eq!(reason_of(&silent_end), reasons::PING_TIMEOUT);
    let (packets, _) = reader.join().expect("the silent peer's reader");
    assert!(
        packets.contains(&Packet::Ping),
        "the silent peer was PINGed before it was dropped: {packets:?}"
    );

    assert!(live.io().is_connected());
    assert_eq!(live.count("disconnect"), 0, "{:?}", live.names());
    assert!(
        !reports.has(disconnected_of(&live_sid)),
        "the live client was dropped: {:?}",
        reports.all()
    );
    assert!(ask(&server.handle, move |io| io.is_connected(&live_sid)));
    server.stop().expect("the server stops cleanly");
}

/// A server of our own that sends HELLO (PING every 50 ms, PONG within 50 ms) and the CONNECT
/// reply to every connection, then never sends anything again and never closes: a server
/// behind a dead link, as the client sees it.
struct SilentServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind(any_port()).expect("listen");
        let addr = listener.local_addr().expect("getsockname");
        listener.set_nonblocking(true).expect("O_NONBLOCK");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (s, a) = (stop.clone(), accepted.clone());
        let thread = thread::spawn(move || {
            // The connections stay open, silent, until the test ends.
            let mut held = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let n = a.fetch_add(1, Ordering::SeqCst) + 1;
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(WAIT));
                        // The client's HELLO and CONNECT, then ours.
                        let heard = (read_packet(&mut stream), read_packet(&mut stream));
                        if !matches!(heard, (Ok(Some(_)), Ok(Some(_)))) {
                            continue;
                        }
                        let mut reply = frame(&Packet::hello(
                            json!({"pingInterval": 50, "pingTimeout": 50}),
                        ));
                        reply.extend(frame(&Packet::Connect {
                            ns: "/".into(),
                            data: Some(json!({"sid": format!("silent-{n}"), "pid": "p"})),
                        }));
                        let _ = stream.write_all(&reply);
                        held.push(stream);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        SilentServer {
            addr,
            stop,
            accepted,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client whose server stops PINGing (and does not close) decides the server is gone:
/// `disconnect` with `ping timeout`, then it reconnects (`reconnect_attempt` 1, and a new
/// TCP connection reaches the server).
#[test]
fn a_client_drops_a_server_that_stops_pinging_and_reconnects() {
    let fake = SilentServer::start();
    let mut c = Watched::connect(client_options(fake.addr));
    assert_eq!(c.io().id(), Some("silent-1"));

    c.run_until_fired("disconnect", 1);
    let life = c.life.borrow().clone();
    let gone = life.iter().find(|l| l.name == "disconnect").expect("fired");
    assert_eq!(gone.arg, json!(reasons::PING_TIMEOUT), "{:?}", c.names());
    assert_eq!(c.io().disconnect_reason(), Some(reasons::PING_TIMEOUT));

    c.run_until_fired("reconnect_attempt", 1);
    let first_attempt = c
        .life
        .borrow()
        .iter()
        .find(|l| l.name == "reconnect_attempt")
        .map(|l| l.arg.clone());
    assert_eq!(first_attempt, Some(json!(1)));
    let accepted = fake.accepted.clone();
    c.run_until("the reconnect reaches the server", move |_| {
        accepted.load(Ordering::SeqCst) >= 2
    });
    // The order of the client's own events: connected, dropped, trying again.
    let names = c.names();
    let first = |n: &str| names.iter().position(|l| l.starts_with(n));
    assert!(
        first("connect") < first("disconnect") && first("disconnect") < first("reconnect_attempt"),
        "{names:?}"
    );
}

// =============================================================================================
// 2. Reconnection
// =============================================================================================

/// The server stops: `disconnect` (`server shutting down`), then attempts 1, 2, 3... each
/// failing with `reconnect_error` while nobody listens. A server starts on the same address:
/// `reconnect` (with the attempt count), then `connect`. Every listener registered once fires
/// once per event afterwards.
#[test]
fn the_client_comes_back_to_a_server_restarted_on_the_same_address() {
    let (tx, rx) = mpsc::channel();
    let mut reports = Reports::new(rx);
    let first = start_server(&server_config(), any_port(), &tx, None);
    let addr = first.addr;
    let mut c = Watched::connect(client_options(addr));
    let first_sid = c.sid();

    // A graceful stop, while the client is stepped (it answers the server's FIN with its own,
    // so the stop does not wait for a grace timer); then the thread is joined.
    first.handle.stop().expect("the server is running");
    c.run_until_fired("disconnect", 1);
    first.stop().expect("the first server stops cleanly");
    c.run_until_fired("reconnect_error", 3);
    assert_eq!(c.io().state(), ClientState::Reconnecting);

    let second = start_server(&server_config(), addr, &tx, None);
    c.run_until_fired("connect", 2);
    let second_sid = c.sid();
    assert_ne!(
        second_sid, first_sid,
        "a new server knows nothing of the old session"
    );
    assert!(!c.io().recovered());
    reports.wait(
        "the new server's connection",
        |s| matches!(s, Seen::Connected { sid } if *sid == second_sid),
    );

    // The exact story: after the first connect, one disconnect, then attempts numbered from
    // 1, each failing (connect_error, reconnect_error) until the last, then reconnect with
    // the number of attempts it took, then connect.
    let names = c.names();
    assert_eq!(names[0], "connect");
    assert_eq!(
        names[1],
        format!("disconnect \"{}\"", reasons::SERVER_SHUTTING_DOWN)
    );
    let attempts = c.count("reconnect_attempt");
    assert!(
        attempts >= 4,
        "three failed attempts, then one that worked: {names:?}"
    );
    let mut want = vec![names[0].clone(), names[1].clone()];
    for n in 1..=attempts {
        want.push(format!("reconnect_attempt {n}"));
        if n < attempts {
            // The error text names the syscall and errno; only the names are compared.
            let errors = &names[want.len()..want.len() + 2];
            assert!(
                errors[0].starts_with("connect_error ")
                    && errors[1].starts_with("reconnect_error "),
                "attempt {n} failed with connect_error, reconnect_error: {names:?}"
            );
            want.extend(errors.iter().cloned());
        }
    }
    want.push(format!("reconnect {attempts}"));
    want.push("connect".into());
    assert_eq!(names, want);

    // Listeners registered once, before the first connect, fire once per event.
    second
        .handle
        .broadcast("/", None, "news", vec![json!("after the restart")])
        .expect("the server is running");
    c.run_until_got("news", json!("after the restart"));
    let echoed = c.round_trip("echo", vec![json!("still here")]);
    assert_eq!(echoed, vec![json!("still here")]);
    c.run_for(Duration::from_millis(100));
    assert_eq!(
        *c.inbox.borrow(),
        vec![("news".to_string(), vec![json!("after the restart")])],
        "one listener call per event"
    );
    assert_eq!(c.count("connect"), 2);
    assert_eq!(c.count("reconnect"), 1);
    assert_eq!(c.count("disconnect"), 1);
    assert_eq!(c.io().state(), ClientState::Connected);
    second.stop().expect("the second server stops cleanly");
}

/// An address where nobody listens: a socket bound to a port and never listening. Connects
/// to it are refused, and while the test holds it no other test running in parallel can be
/// given that port (a port merely closed again could become another test's server).
struct DeadAddress {
    addr: SocketAddr,
    _bound: socket2::Socket,
}

impl DeadAddress {
    fn new() -> DeadAddress {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.bind(&any_port().into()).expect("bind");
        let addr = socket
            .local_addr()
            .expect("getsockname")
            .as_socket()
            .expect("an IPv4 address");
        DeadAddress {
            addr,
            _bound: socket,
        }
    }
}

/// `reconnection_attempts: Some(2)` and no server: the first connect fails, attempts 1 and 2
/// fail, `reconnect_failed` fires once, and the client ends `Disconnected`.
#[test]
fn limited_attempts_end_in_reconnect_failed() {
    let dead = DeadAddress::new();
    let mut opts = client_options(dead.addr);
    opts.reconnection_attempts = Some(2);
    let mut c = Watched::start(opts);
    c.run_until("the client gives up", |io| {
        io.state() == ClientState::Disconnected
    });
    let names: Vec<String> = c
        .names()
        .into_iter()
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        names,
        [
            "connect_error",
            "reconnect_attempt",
            "connect_error",
            "reconnect_error",
            "reconnect_attempt",
            "connect_error",
            "reconnect_error",
            "reconnect_failed",
        ]
    );
    let attempts: Vec<Value> = c
        .life
        .borrow()
        .iter()
        .filter(|l| l.name == "reconnect_attempt")
        .map(|l| l.arg.clone())
        .collect();
    assert_eq!(attempts, [json!(1), json!(2)]);
    // It stays given up: no third attempt, whatever the time.
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.count("reconnect_attempt"), 2);
    assert_eq!(c.io().state(), ClientState::Disconnected);
    assert!(matches!(
        c.io().emit("late", vec![]),
        Err(EmitError::NoSuchSocket(_))
    ));
}

/// After a deliberate disconnect, the client stays disconnected for ten times the longest
/// reconnection delay: no `reconnect_attempt`, its last reason is `client_reason`, the server
/// saw `server_reason` and only the one connection, and no socket is left.
fn assert_never_reconnects(
    (mut c, sid): (Watched, String),
    mut reports: Reports,
    server: RunningServer,
    client_reason: &str,
    server_reason: &str,
) {
    c.run_until("the client is disconnected", |io| {
        io.state() == ClientState::Disconnected
    });
    c.run_for(RECONNECT_DELAY_MAX * 10);
    assert_eq!(c.io().state(), ClientState::Disconnected);
    assert_eq!(c.io().disconnect_reason(), Some(client_reason));
    assert_eq!(
        c.names(),
        [
            "connect".to_string(),
            format!("disconnect \"{client_reason}\"")
        ]
    );
    let gone = reports.wait("the disconnect", disconnected_of(&sid));
    assert_eq!(reason_of(&gone), server_reason);
    let sockets = ask(&server.handle, |io| io.sockets("/").len());
    assert_eq!(sockets, 0);
    let seen = reports.all();
    let connects = seen
        .iter()
        .filter(|s| matches!(s, Seen::Connected { .. }))
        .count();
    assert_eq!(
        connects, 1,
        "no second connection reached the server: {seen:?}"
    );
    server.stop().expect("the server stops cleanly");
}

/// `disconnect()` by the client ends the connection for good: no `reconnect_attempt`, and the
/// server sees one connection and `client namespace disconnect`.
#[test]
fn a_deliberate_client_disconnect_never_reconnects() {
    let (tx, rx) = mpsc::channel();
    let server = start_server(&server_config(), any_port(), &tx, None);
    let mut c = Watched::connect(client_options(server.addr));
    let sid = c.sid();
    c.io().disconnect();
    assert_never_reconnects(
        (c, sid),
        Reports::new(rx),
        server,
        reasons::IO_CLIENT_DISCONNECT,
        reasons::CLIENT_NAMESPACE_DISCONNECT,
    );
}

/// `io.disconnect(sid)` on the server ends the connection for good: the client sees
/// `io server disconnect` and does not reconnect.
#[test]
fn a_server_side_disconnect_never_reconnects() {
    let (tx, rx) = mpsc::channel();
    let server = start_server(&server_config(), any_port(), &tx, None);
    let mut c = Watched::connect(client_options(server.addr));
    let sid = c.sid();
    let target = sid.clone();
    server
        .handle
        .run(move |io| io.disconnect(&target))
        .expect("the server is running");
    assert_never_reconnects(
        (c, sid),
        Reports::new(rx),
        server,
        reasons::IO_SERVER_DISCONNECT,
        reasons::SERVER_NAMESPACE_DISCONNECT,
    );
}

/// The backoff, seen from outside: with no randomization, the time between one attempt and
/// the next is never shorter than the delay, and the delay doubles (20, 40, 80 ms), up to the
/// maximum (100 ms). Only lower bounds are checked: a busy machine makes gaps longer, never
/// shorter, so this cannot fail for slowness. (The function itself, `backoff`, is `pub` in
/// the private module `events::client` and not re-exported, so a test outside the crate
/// cannot call it with chosen random numbers.)
/// A client pointed at an address where nobody listens, with delays of 20 ms doubling up to
/// 100 ms, the jitter given and `attempts` attempts: its lifecycle events once it gave up,
/// and when each `reconnect_attempt` came.
fn failed_attempts(jitter: f64, attempts: u32) -> (Vec<Life>, Vec<Instant>) {
    let dead = DeadAddress::new();
    let mut opts = client_options(dead.addr);
    opts.randomization_factor = jitter;
    opts.reconnection_delay = Duration::from_millis(20);
    opts.reconnection_delay_max = Duration::from_millis(100);
    opts.reconnection_attempts = Some(attempts);
    let mut c = Watched::start(opts);
    c.run_until("the last attempt", |io| {
        io.state() == ClientState::Disconnected
    });
    let life = c.life.borrow().clone();
    let times: Vec<Instant> = life
        .iter()
        .filter(|l| l.name == "reconnect_attempt")
        .map(|l| l.at)
        .collect();
    assert_eq!(times.len(), attempts as usize, "{:?}", c.names());
    (life, times)
}

#[test]
fn reconnection_attempts_wait_at_least_the_doubling_delay() {
    let (life, times) = failed_attempts(0.0, 5);
    // The first connect failed (its connect_error) before the first delay began.
    let failed = life.first().expect("connect_error fired");
    assert_eq!(failed.name, "connect_error");
    let first_wait = times[0].duration_since(failed.at);
    assert!(
        first_wait >= Duration::from_millis(20),
        "attempt 1 came {first_wait:?} after the failed connect: before its delay of 20 ms"
    );
    // The wait before attempt n+1 starts when attempt n has failed, after its event.
    for (n, want_ms) in [(0usize, 40u64), (1, 80), (2, 100), (3, 100)] {
        let gap = times[n + 1].duration_since(times[n]);
        assert!(
            gap >= Duration::from_millis(want_ms),
            "attempt {} came {gap:?} after attempt {}: before its delay of {want_ms} ms",
            n + 2,
            n + 1
        );
    }

    // With the default 0.5 jitter, no wait is shorter than half the delay.
    let (_, times) = failed_attempts(0.5, 4);
    for (n, full_ms) in [(0usize, 40u64), (1, 80), (2, 100)] {
        let gap = times[n + 1].duration_since(times[n]);
        assert!(
            gap >= Duration::from_millis(full_ms / 2),
            "attempt {} came {gap:?} after attempt {}: under half of {full_ms} ms",
            n + 2,
            n + 1
        );
    }
}

// =============================================================================================
// 3. No lost messages
// =============================================================================================

/// Where the server of the no-loss test is.
enum Phase {
    /// Serving; the next stop comes once `next` passes `stop_at` and the client is connected.
    Up { stop_at: u64 },
    /// Stopping; waiting for the client to notice.
    Stopping(RunningServer),
    /// Stopped; starts again once `next` reaches `start_at`.
    Down { start_at: u64 },
    /// The last server is up.
    Done,
}

type Answers = Rc<RefCell<BTreeMap<u64, Vec<Result<AckReply, AckError>>>>>;

/// Emits `plain` and `acked` numbered `n`; every answer to the acked one goes into `answers`.
fn emit_pair(c: &mut Watched, n: u64, answers: &Answers) {
    c.io()
        .emit("plain", vec![json!(n)])
        .expect("plain emit (the offline buffer holds 1000)");
    let fill = answers.clone();
    c.io()
        .emit_with_ack("acked", vec![json!(n)], vec![], ACK_TIMEOUT, move |_, r| {
            fill.borrow_mut().entry(n).or_default().push(r)
        })
        .expect("acked emit");
}

/// Waits until nothing listens on `addr` any more: a stopping server closes its listener
/// first, after it has queued its goodbyes and stopped handling what connections send.
fn wait_listener_closed(addr: SocketAddr) {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect_timeout(&addr, WAIT) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
            _ => {} // still listening (the connection is dropped at once)
        }
        assert!(
            Instant::now() < deadline,
            "the listener on {addr} stays open"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// A client emits `plain` and `acked` events numbered 1 to 200, one of each every few
/// milliseconds, while the server is stopped and restarted on the same address twice. At each
/// stop, five pairs are emitted after the server stopped reading and before the client has
/// heard its goodbye: they are in flight and the server drops them. Every plain event emitted
/// while disconnected arrives exactly once and in order; no plain event arrives twice or out of
/// order, and only in-flight ones may be lost (at most once); every acked event, in-flight ones
/// included, is handled exactly once by the servers together, and its callback gets exactly
/// one answer, its own.
#[test]
fn no_event_is_lost_or_doubled_across_two_server_restarts() {
    const LAST: u64 = 200;
    let (tx, rx) = mpsc::channel();
    let mut reports = Reports::new(rx);
    let config = server_config();
    let mut server = Some(start_server(&config, any_port(), &tx, None));
    let addr = server.as_ref().map(|s| s.addr).expect("started");
    let mut c = Watched::connect(client_options(addr));

    let answers: Answers = Rc::default();
    // Plain events emitted while not connected, per outage; and those sent into a stopping
    // server.
    let mut offline: Vec<Vec<u64>> = vec![Vec::new(), Vec::new()];
    let mut in_flight: Vec<u64> = Vec::new();
    let mut outages = 0usize;
    let mut phase = Phase::Up { stop_at: 40 };
    let mut next = 1u64;
    let deadline = Instant::now() + WAIT * 3;
    loop {
        assert!(
            Instant::now() < deadline,
            "the emits and restarts did not finish; events {:?}",
            c.names()
        );
        if next <= LAST {
            if !c.io().is_connected() {
                offline[outages.saturating_sub(1).min(1)].push(next);
            } else if matches!(phase, Phase::Stopping(_)) {
                // Connected, as far as the client knows, to a server that no longer reads.
                in_flight.push(next);
            }
            emit_pair(&mut c, next, &answers);
            next += 1;
        }
        // A turn with output to flush returns at once: pace the emits by the clock, so that
        // the outages below last long enough for several reconnection attempts.
        c.run_for(Duration::from_millis(4));
        phase = match phase {
            Phase::Up { stop_at } if next > stop_at && c.io().is_connected() => {
                let s = server.take().expect("a server is up");
                s.handle.stop().expect("the server is running");
                outages += 1;
                // The client is not stepped until the server has stopped reading: these
                // leave while the client still thinks it is connected.
                wait_listener_closed(addr);
                assert!(c.io().is_connected());
                for _ in 0..5 {
                    in_flight.push(next);
                    emit_pair(&mut c, next, &answers);
                    next += 1;
                }
                Phase::Stopping(s)
            }
            Phase::Stopping(s) if c.io().state() == ClientState::Reconnecting => {
                s.stop().expect("the server stops cleanly");
                // Twenty rounds of emits with nobody listening.
                Phase::Down {
                    start_at: next + 20,
                }
            }
            Phase::Down { start_at } if next >= start_at => {
                server = Some(start_server(&config, addr, &tx, None));
                if outages < 2 {
                    Phase::Up { stop_at: next + 40 }
                } else {
                    Phase::Done
                }
            }
            Phase::Done if next > LAST => break,
            other => other,
        };
    }
    let server = server.expect("the third server is up");

    // Every acked emit answered; then one more round trip: the plain events emitted before it
    // on this connection have been handled by then.
    let a = answers.clone();
    c.run_until("every acked emit answered", move |_| {
        a.borrow().len() == LAST as usize
    });
    c.round_trip("echo", vec![json!("fence")]);
    c.run_for(Duration::from_millis(50));

    for (n, got) in answers.borrow().iter() {
        assert_eq!(got.len(), 1, "acked {n}: one callback run, got {got:?}");
        match &got[0] {
            Ok(reply) => assert_eq!(reply.args, vec![json!(n)], "acked {n}: its own answer"),
            Err(e) => panic!("acked {n}: {e}"),
        }
    }
    let mut acked: Vec<u64> = reports
        .handled("acked")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    acked.sort_unstable();
    assert_eq!(
        acked,
        (1..=LAST).collect::<Vec<_>>(),
        "each acked event handled exactly once by the three servers together"
    );

    let plain: Vec<u64> = reports
        .handled("plain")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        plain.windows(2).all(|w| w[0] < w[1]),
        "plain events arrive in order, none twice: {plain:?}"
    );
    for (i, outage) in offline.iter().enumerate() {
        assert!(
            outage.len() >= 10,
            "outage {} had emits made while disconnected: {outage:?}",
            i + 1
        );
        for n in outage {
            assert!(
                plain.contains(n),
                "plain {n}, emitted while disconnected (outage {}), never arrived; \
                 arrived: {plain:?}",
                i + 1
            );
        }
    }
    // At most once: plain events in flight when a server stopped are lost; no others.
    let lost: Vec<u64> = (1..=LAST).filter(|n| !plain.contains(n)).collect();
    assert!(
        lost.iter().all(|n| in_flight.contains(n)),
        "only in-flight plain events may be lost: lost {lost:?}, in flight {in_flight:?}"
    );
    assert_eq!(c.count("reconnect"), 2, "{:?}", c.names());
    server.stop().expect("the third server stops cleanly");
}

/// With `offline_buffer: 5` and no connection, five emits wait (plain and acked alike) and
/// the sixth is refused with `BufferFull`, for both kinds: nothing is dropped silently. The
/// five arrive in order when a server is back; the refused ones never do.
#[test]
fn the_offline_buffer_refuses_the_sixth_emit_and_delivers_five() {
    let (tx, rx) = mpsc::channel();
    let mut reports = Reports::new(rx);
    let first = start_server(&server_config(), any_port(), &tx, None);
    let addr = first.addr;
    let mut opts = client_options(addr);
    opts.offline_buffer = 5;
    let mut c = Watched::connect(opts);
    first.handle.stop().expect("the server is running");
    c.run_until("the client notices the stop", |io| {
        io.state() == ClientState::Reconnecting
    });
    first.stop().expect("the server stops cleanly");

    for n in 1..=3 {
        c.io().emit("plain", vec![json!(n)]).expect("buffered");
    }
    let slot4 = c.emit_ack("acked", vec![json!(4)]);
    c.io().emit("plain", vec![json!(5)]).expect("buffered");
    assert_eq!(c.io().offline_len(), 5);
    assert_eq!(
        c.io().emit("plain", vec![json!(6)]),
        Err(EmitError::BufferFull(5))
    );
    let refused_ack_ran = Rc::new(RefCell::new(false));
    let flag = refused_ack_ran.clone();
    let refused =
        c.io()
            .emit_with_ack("acked", vec![json!(6)], vec![], ACK_TIMEOUT, move |_, _| {
                *flag.borrow_mut() = true
            });
    assert_eq!(refused, Err(EmitError::BufferFull(5)));
    assert_eq!(c.io().offline_len(), 5);

    let second = start_server(&server_config(), addr, &tx, None);
    c.run_until_fired("reconnect", 1);
    let s = slot4.clone();
    c.run_until("the buffered acked emit is answered", move |_| {
        !s.borrow().is_empty()
    });
    // A plain emit after the buffer was flushed: once it has arrived, the five have.
    c.io().emit("plain", vec![json!(7)]).expect("connected");
    c.round_trip("echo", vec![json!("fence")]);
    assert_eq!(c.io().offline_len(), 0);
    assert_eq!(
        reports.handled("plain"),
        [json!(1), json!(2), json!(3), json!(5), json!(7)]
    );
    assert_eq!(reports.handled("acked"), [json!(4)]);
    assert_eq!(slot4.borrow().len(), 1);
    assert!(
        !*refused_ack_ran.borrow(),
        "a refused emit's callback never runs"
    );
    second.stop().expect("the server stops cleanly");
}

// =============================================================================================
// 4. Connection state recovery
// =============================================================================================

/// A server, a proxy in front of it, and a client through the proxy that has joined `room`.
struct Recovery {
    server: RunningServer,
    reports: Reports,
    proxy: Proxy,
    client: Watched,
    sid: String,
}

impl Recovery {
    fn start(config: ServerConfig, room: &str) -> Recovery {
        let mut r = Recovery::connect(config, |_| {});
        let rooms = r.client.round_trip("join", vec![json!(room)]);
        let mut want = vec![room.to_string(), r.sid.clone()];
        want.sort();
        assert_eq!(rooms, vec![json!(want)]);
        r
    }

    /// The server, the proxy and the client, in no room yet; `before` runs with the server
    /// before the client connects.
    fn connect(config: ServerConfig, before: impl FnOnce(&RunningServer)) -> Recovery {
        let (tx, rx) = mpsc::channel();
        let cutter = Cutter::default();
        let server = start_server(&config, any_port(), &tx, Some(cutter.clone()));
        before(&server);
        let proxy = Proxy::start(&cutter, server.addr);
        let mut client = Watched::connect(client_options(proxy.addr));
        assert!(!client.io().recovered(), "a first connect recovers nothing");
        let sid = client.sid();
        Recovery {
            server,
            reports: Reports::new(rx),
            proxy,
            client,
            sid,
        }
    }

    fn handle(&self) -> ServerHandle {
        self.server.handle.clone()
    }

    /// A client in room `quiet`, which gets one broadcast ("only") and then nothing.
    fn start_quiet(config: ServerConfig) -> Recovery {
        let mut r = Recovery::start(config, "quiet");
        r.broadcast(Some("quiet"), "news", json!("only"));
        r.client.run_until_got("news", json!("only"));
        r
    }

    /// Cuts the quiet client's connection; it must come back recovered (nothing it would
    /// have received is gone), with its id and its room, and get the next broadcast once.
    fn cut_quiet_client_and_expect_recovery(mut self) {
        self.cut_and_wait_for_server();
        self.client.run_until_fired("reconnect", 1);
        assert!(
            self.client.io().recovered(),
            "nothing it would have received is gone"
        );
        assert_eq!(self.client.io().id(), Some(self.sid.as_str()));
        self.broadcast(Some("quiet"), "news", json!("after"));
        self.client.run_until_got("news", json!("after"));
        assert_eq!(self.take_inbox(), ["news [\"only\"]", "news [\"after\"]"]);
        drop(self.client);
        self.server.stop().expect("the server stops cleanly");
    }

    /// Cuts the connection and waits until the server has noticed (and parked the session).
    /// The client is not stepped meanwhile: it is "away" until the next step.
    fn cut_and_wait_for_server(&mut self) -> String {
        let parked_before = self
            .reports
            .all()
            .iter()
            .filter(|s| disconnected_of(&self.sid)(s))
            .count();
        self.proxy.cut();
        let sid = self.sid.clone();
        let deadline = Instant::now() + WAIT;
        loop {
            let seen: Vec<Seen> = self
                .reports
                .all()
                .iter()
                .filter(|s| disconnected_of(&sid)(s))
                .cloned()
                .collect();
            if seen.len() > parked_before {
                let reason = reason_of(&seen[seen.len() - 1]);
                assert!(
                    reason == reasons::TRANSPORT_CLOSE || reason == reasons::TRANSPORT_ERROR,
                    "a cut connection ends with transport close or error, not {reason:?}"
                );
                return reason;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not notice the cut"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn broadcast(&self, room: Option<&str>, event: &str, arg: Value) {
        self.server
            .handle
            .broadcast("/", room, event, vec![arg])
            .expect("the server is running");
    }

    /// Steps the client only until the server has handled `event` (and no further: a test
    /// cuts the connection at that point).
    fn step_until_handled(&mut self, event: &str) {
        let handled = |s: &Seen| matches!(s, Seen::Handled { event: e, .. } if e == event);
        let deadline = Instant::now() + WAIT;
        while !self.reports.has(handled) {
            assert!(
                Instant::now() < deadline,
                "the server never handled {event}"
            );
            self.client
                .client
                .turn(Some(Duration::from_millis(5)))
                .expect("client turn");
        }
    }

    /// After a cut, the acked emit of `event` with `arg` is retried on the recovered session:
    /// its callback runs once, with `reply`, the handler ran once, the retry was dropped as a
    /// duplicate (`duplicates_before` is the count before the emit), and the server stops.
    fn expect_one_answer_after_recovery(
        mut self,
        slot: &AckSlot,
        event: &str,
        arg: Value,
        reply: Vec<Value>,
        duplicates_before: u64,
    ) {
        let s = slot.clone();
        self.client
            .run_until("the retried emit is answered", move |_| {
                !s.borrow().is_empty()
            });
        assert!(self.client.io().recovered());
        assert_eq!(self.client.io().id(), Some(self.sid.as_str()));
        // One more round trip: a second run of the handler would have been reported by now.
        self.client.round_trip("echo", vec![json!("fence")]);
        self.client.run_for(Duration::from_millis(50));
        let answers = slot.borrow().clone();
        assert_eq!(answers.len(), 1, "one callback run: {answers:?}");
        let got = answers[0].as_ref().expect("an answer, not an error");
        assert_eq!(got.args, reply);
        assert_eq!(self.reports.handled(event), [arg], "handled once");
        let after = ask(&self.handle(), |io| io.stats().duplicates_dropped);
        assert_eq!(
            after,
            duplicates_before + 1,
            "the retry was recognised as a duplicate"
        );
        drop(self.client);
        self.server.stop().expect("the server stops cleanly");
    }

    /// The events the client received since the inbox was last cleared, as `name arg`.
    fn take_inbox(&mut self) -> Vec<String> {
        self.client
            .inbox
            .borrow_mut()
            .drain(..)
            .map(|(n, a)| format!("{n} {}", json!(a)))
            .collect()
    }
}

/// Three times: the connection is cut; while the client is away, three broadcasts go to its
/// room; it comes back with the same id, `recovered()`, still in its room, and gets the three
/// it missed exactly once and in order, before a new one.
#[test]
fn recovery_restores_id_room_and_missed_broadcasts_on_every_reconnect() {
    let mut r = Recovery::start(server_config(), "room-a");
    let sid = r.sid.clone();
    // A broadcast received live, before any cut.
    r.broadcast(Some("room-a"), "news", json!("live-0"));
    r.client.run_until_got("news", json!("live-0"));
    r.take_inbox();

    for round in 1..=3u64 {
        r.cut_and_wait_for_server();
        for k in 1..=3 {
            r.broadcast(Some("room-a"), "news", json!(format!("missed-{round}-{k}")));
        }
        // Broadcasts to a room the client is not in are not for it, now or on replay.
        r.broadcast(Some("room-b"), "news", json!(format!("other-{round}")));
        let parked = ask(&r.handle(), {
            let sid = sid.clone();
            move |io| !io.is_connected(&sid)
        });
        assert!(parked, "the broadcasts went out while the client was away");

        r.client.run_until_fired("reconnect", round as usize);
        assert!(r.client.io().recovered(), "round {round}: recovered");
        assert_eq!(
            r.client.io().id(),
            Some(sid.as_str()),
            "round {round}: same id"
        );
        let rooms = ask(&r.handle(), {
            let sid = sid.clone();
            move |io| io.rooms_of(&sid)
        });
        assert!(
            rooms.contains(&"room-a".to_string()),
            "round {round}: {rooms:?}"
        );

        r.broadcast(Some("room-a"), "news", json!(format!("live-{round}")));
        r.client
            .run_until_got("news", json!(format!("live-{round}")));
        assert_eq!(
            r.take_inbox(),
            [
                format!("news [\"missed-{round}-1\"]"),
                format!("news [\"missed-{round}-2\"]"),
                format!("news [\"missed-{round}-3\"]"),
                format!("news [\"live-{round}\"]"),
            ],
            "round {round}: the missed broadcasts once, in order, then the new one"
        );
        let stats = ask(&r.handle(), |io| io.stats().clone());
        assert_eq!(stats.sessions_recovered, round);
        assert_eq!(stats.broadcasts_replayed, 3 * round);
    }
    assert_eq!(r.client.count("disconnect"), 3, "{:?}", r.client.names());
    assert_eq!(r.client.count("connect"), 4);
    assert_eq!(r.proxy.accepted(), 4, "one proxied connection per connect");
    // The server ran its connection handler for the same socket id each time.
    let connects: Vec<String> = r
        .reports
        .all()
        .iter()
        .filter_map(|s| match s {
            Seen::Connected { sid } => Some(sid.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(connects, vec![sid.clone(); 4]);
    drop(r.client);
    r.server.stop().expect("the server stops cleanly");
}

/// An acked emit whose ACK is lost in a cut (the handler ran, then the connection died before
/// the answer left) is sent again after the recovery; the server recognises it and answers
/// again without running the handler again, and the client's callback runs once.
#[test]
fn an_acked_emit_whose_answer_was_lost_is_handled_once_and_answered_once() {
    let mut r = Recovery::start(server_config(), "room-a");
    let sid = r.sid.clone();
    let before = ask(&r.handle(), |io| io.stats().duplicates_dropped);

    let slot = r.client.emit_ack("flaky", vec![json!(42)]);
    // The handler cuts the connection before it answers.
    r.step_until_handled("flaky");
    r.reports
        .wait("the cut connection's disconnect", disconnected_of(&sid));
    assert!(
        slot.borrow().is_empty(),
        "the first answer was lost in the cut"
    );
    r.expect_one_answer_after_recovery(
        &slot,
        "flaky",
        json!(42),
        vec![json!("done"), json!(42)],
        before,
    );
}

/// Past `max_disconnection_duration` the session is gone: the client gets a new id,
/// `recovered()` is false, it is in no room of the old session, and the broadcast it missed
/// is not replayed.
#[test]
fn a_session_past_max_disconnection_duration_is_not_recovered() {
    let config = ServerConfig {
        max_disconnection_duration: Duration::from_millis(200),
        ..server_config()
    };
    let mut r = Recovery::start(config, "room-a");
    let old = r.sid.clone();
    r.cut_and_wait_for_server();
    r.broadcast(Some("room-a"), "news", json!("missed"));
    // The session expires while the client is away (it is not stepped meanwhile).
    thread::sleep(Duration::from_millis(400));

    r.client.run_until_fired("reconnect", 1);
    assert!(!r.client.io().recovered());
    let new = r.client.sid();
    assert_ne!(new, old, "a new session, a new id");
    let (rooms, members) = ask(&r.handle(), {
        let new = new.clone();
        move |io| (io.rooms_of(&new), io.sockets_in("/", "room-a"))
    });
    assert_eq!(rooms, vec![new.clone()], "only its own room");
    assert!(members.is_empty(), "room-a is empty: {members:?}");
    // After a broadcast to everyone arrives, anything replayed would have arrived before it.
    r.broadcast(None, "fence", json!(1));
    r.client.run_until_got("fence", json!(1));
    assert_eq!(r.take_inbox(), ["fence [1]"]);
    let stats = ask(&r.handle(), |io| io.stats().clone());
    assert_eq!(
        (stats.sessions_recovered, stats.broadcasts_replayed),
        (0, 0)
    );
    drop(r.client);
    r.server.stop().expect("the server stops cleanly");
}

/// A client that has received no broadcast yet has no offset to present. When it comes back,
/// it must get what it missed and nothing older: not a broadcast to everyone made before it
/// connected.
#[test]
fn recovery_without_an_earlier_broadcast_replays_only_what_was_missed() {
    let mut r = Recovery::connect(server_config(), |server| {
        // Before the client exists.
        server
            .handle
            .broadcast("/", None, "news", vec![json!("before-you-came")])
            .expect("the server is running");
    });
    assert!(r.take_inbox().is_empty());
    r.cut_and_wait_for_server();
    r.broadcast(None, "news", json!("missed"));
    ask(&r.handle(), |_| ());
    r.client.run_until_fired("reconnect", 1);
    assert!(r.client.io().recovered());
    r.broadcast(None, "fence", json!(1));
    r.client.run_until_got("fence", json!(1));
    assert_eq!(
        r.take_inbox(),
        ["news [\"missed\"]", "fence [1]"],
        "what was missed, once; not what was sent before the client connected"
    );
    drop(r.client);
    r.server.stop().expect("the server stops cleanly");
}

/// A broadcast to a room made before the client joined that room was never the client's; it
/// must not be replayed to it as "missed" when it comes back.
#[test]
fn recovery_does_not_replay_a_room_broadcast_from_before_the_join() {
    let mut r = Recovery::connect(server_config(), |_| {});
    // The client has an offset: it received this one.
    r.broadcast(None, "news", json!("to-everyone"));
    r.client.run_until_got("news", json!("to-everyone"));
    // Sent to room-a while the client is not in it.
    r.broadcast(Some("room-a"), "news", json!("room-a-before-join"));
    r.client.round_trip("join", vec![json!("room-a")]);
    r.take_inbox();
    r.cut_and_wait_for_server();
    r.broadcast(Some("room-a"), "news", json!("missed"));
    ask(&r.handle(), |_| ());
    r.client.run_until_fired("reconnect", 1);
    assert!(r.client.io().recovered());
    r.broadcast(None, "fence", json!(1));
    r.client.run_until_got("fence", json!(1));
    assert_eq!(
        r.take_inbox(),
        ["news [\"missed\"]", "fence [1]"],
        "only the broadcast sent while the client was away"
    );
    drop(r.client);
    r.server.stop().expect("the server stops cleanly");
}

/// The handler runs, then the connection is lost, and only then does the handler answer (the
/// socket is away, its session kept). The client's retry after the recovery must get that
/// answer, once, without a second run of the handler.
#[test]
fn an_answer_given_while_the_client_is_away_reaches_it_after_the_recovery() {
    let mut r = Recovery::start(server_config(), "room-a");
    let before = ask(&r.handle(), |io| io.stats().duplicates_dropped);
    let slot = r.client.emit_ack("later", vec![json!(7)]);
    r.step_until_handled("later");
    r.cut_and_wait_for_server();
    assert_eq!(
        answer_later(&r.handle()),
        1,
        "answered while the socket is away"
    );
    r.expect_one_answer_after_recovery(
        &slot,
        "later",
        json!(7),
        vec![json!("later"), json!(7)],
        before,
    );
}

/// The server restarts (a new process would do the same: offsets start again at 1); the client
/// comes back to a new session. Then its connection is cut, and the new server broadcasts
/// while it is away: the recovery must replay those, although their offsets are lower than
/// the last offset the client saw from the old server.
#[test]
fn recovery_after_a_server_restart_replays_what_was_missed() {
    let (tx, rx) = mpsc::channel();
    let cutter = Cutter::default();
    let config = server_config();
    let first = start_server(&config, any_port(), &tx, Some(cutter.clone()));
    let addr = first.addr;
    let proxy = Proxy::start(&cutter, addr);
    let mut client = Watched::connect(client_options(proxy.addr));
    for n in 1..=5 {
        first
            .handle
            .broadcast("/", None, "news", vec![json!(format!("old-{n}"))])
            .expect("the server is running");
    }
    client.run_until_got("news", json!("old-5"));

    first.handle.stop().expect("the server is running");
    client.run_until_fired("disconnect", 1);
    first.stop().expect("the first server stops cleanly");
    let second = start_server(&config, addr, &tx, Some(cutter.clone()));
    client.run_until_fired("reconnect", 1);
    assert!(!client.io().recovered(), "a new server, a new session");
    let sid = client.sid();
    client.inbox.borrow_mut().clear();

    let mut r = Recovery {
        server: second,
        reports: Reports::new(rx),
        proxy,
        client,
        sid: sid.clone(),
    };
    r.cut_and_wait_for_server();
    r.broadcast(None, "news", json!("missed-1"));
    r.broadcast(None, "news", json!("missed-2"));
    ask(&r.handle(), |_| ());
    r.client.run_until_fired("reconnect", 2);
    assert!(r.client.io().recovered());
    assert_eq!(r.client.io().id(), Some(sid.as_str()));
    r.broadcast(None, "fence", json!(1));
    r.client.run_until_got("fence", json!(1));
    assert_eq!(
        r.take_inbox(),
        ["news [\"missed-1\"]", "news [\"missed-2\"]", "fence [1]"],
        "the broadcasts of the new server missed while away, once, in order"
    );
    drop(r.client);
    r.server.stop().expect("the server stops cleanly");
}

/// A volatile broadcast made while the client is away is not replayed (section 9 of
/// docs/protocol.md: volatile emits are never replayed); the ordinary one is.
#[test]
fn recovery_does_not_replay_volatile_broadcasts() {
    let mut r = Recovery::start(server_config(), "room-a");
    r.cut_and_wait_for_server();
    ask(&r.handle(), |io| {
        let _ = io
            .broadcast("/")
            .to("room-a")
            .volatile()
            .emit("position", vec![json!(1)]);
    });
    r.broadcast(Some("room-a"), "news", json!("missed"));
    ask(&r.handle(), |_| ());
    r.client.run_until_fired("reconnect", 1);
    assert!(r.client.io().recovered());
    r.broadcast(None, "fence", json!(1));
    r.client.run_until_got("fence", json!(1));
    assert_eq!(r.take_inbox(), ["news [\"missed\"]", "fence [1]"]);
    drop(r.client);
    r.server.stop().expect("the server stops cleanly");
}

/// Every socket is in the room named after its id, also while it is away: a broadcast to that
/// room made meanwhile is replayed, and one that excludes that room is not.
#[test]
fn recovery_replays_broadcasts_to_the_sockets_own_room() {
    let mut r = Recovery::start(server_config(), "room-a");
    r.cut_and_wait_for_server();
    let sid = r.sid.clone();
    r.broadcast(Some(&sid), "direct", json!("missed"));
    let except = sid.clone();
    ask(&r.handle(), move |io| {
        let _ = io
            .broadcast("/")
            .except(&except)
            .emit("not-you", vec![json!(1)]);
    });
    r.client.run_until_fired("reconnect", 1);
    assert!(r.client.io().recovered());
    r.broadcast(Some(&sid), "fence", json!(1));
    r.client.run_until_got("fence", json!(1));
    assert_eq!(r.take_inbox(), ["direct [\"missed\"]", "fence [1]"]);
    drop(r.client);
    r.server.stop().expect("the server stops cleanly");
}

/// `max_parked_sessions` bounds the sessions kept for clients that are away: with room for
/// two, the third one parked pushes out the first (the oldest), and the other two come back
/// with their ids.
#[test]
fn past_max_parked_sessions_the_oldest_session_is_dropped() {
    let config = ServerConfig {
        max_parked_sessions: 2,
        ..server_config()
    };
    let (tx, rx) = mpsc::channel();
    let server = start_server(&config, any_port(), &tx, None);
    let mut reports = Reports::new(rx);
    let mut away = Vec::new();
    for _ in 0..3 {
        let (stream, reply) = raw_connect(server.addr, None);
        let sid = reply["sid"].as_str().expect("a sid").to_string();
        // End of file without DISCONNECT: an unexpected loss, so the session is parked.
        drop(stream);
        let seen = reports.wait("the lost connection", disconnected_of(&sid));
        assert_eq!(reason_of(&seen), reasons::TRANSPORT_CLOSE);
        away.push((sid, reply["pid"].clone(), reply["offset"].clone()));
    }
    // The connections stay open until the end: one closing now would park its session.
    let mut came_back = Vec::new();
    let mut open = Vec::new();
    for (sid, pid, offset) in &away {
        let auth = json!({ "pid": pid, "offset": offset });
        let (stream, reply) = raw_connect(server.addr, Some(auth));
        let same = reply["sid"].as_str() == Some(sid.as_str());
        came_back.push((reply["recovered"] == json!(true), same));
        open.push(stream);
    }
    assert_eq!(
        came_back,
        [(false, false), (true, true), (true, true)],
        "the first session (the oldest) was dropped; the two later ones were kept"
    );
    drop(open);
    server.stop().expect("the server stops cleanly");
}

/// A client may come back before the server noticed that its old connection died (a NAT box
/// dropped it silently, say). The CONNECT with the session's private id (a secret only that
/// client holds) moves the session to the new connection: the old socket is told why with a
/// DISCONNECT `session replaced`, its connection is closed, and the session is restored on
/// the new one.
#[test]
fn a_client_back_before_its_old_connection_is_noticed_gets_its_session() {
    let (tx, rx) = mpsc::channel();
    let server = start_server(&server_config(), any_port(), &tx, None);
    let mut reports = Reports::new(rx);
    let (mut old, reply) = raw_connect(server.addr, None);
    let sid = reply["sid"].as_str().expect("a sid").to_string();
    let auth = json!({ "pid": reply["pid"], "offset": reply["offset"] });
    let (new, reply) = raw_connect(server.addr, Some(auth));
    assert_eq!(reply["recovered"], json!(true));
    assert_eq!(
        reply["sid"].as_str(),
        Some(sid.as_str()),
        "the same socket id"
    );
    let seen = reports.wait("the old socket's end", disconnected_of(&sid));
    assert_eq!(reason_of(&seen), reasons::SESSION_REPLACED);
    // The old connection hears why, then end of file after what was queued.
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while let Some(p) = read_packet(&mut old).expect("the old connection closes cleanly") {
        last = Some(p);
        assert!(Instant::now() < deadline, "the old connection stays open");
    }
    assert_eq!(
        last,
        Some(Packet::Disconnect {
            ns: "/".into(),
            reason: Some(reasons::SESSION_REPLACED.into())
        }),
        "the replaced connection's last packet says why"
    );
    drop(new);
    server.stop().expect("the server stops cleanly");
}

/// With `replay_limit: 2`, five broadcasts made while the client is away cannot all be
/// replayed. Then the client must not be told that its session was recovered while it silently
/// misses three of them: either it is not recovered, or it gets all five.
#[test]
fn a_recovery_that_cannot_replay_everything_missed_is_not_claimed() {
    let config = ServerConfig {
        replay_limit: 2,
        ..server_config()
    };
    let mut r = Recovery::start(config, "room-a");
    r.cut_and_wait_for_server();
    for n in 1..=5 {
        r.broadcast(Some("room-a"), "news", json!(n));
    }
    ask(&r.handle(), |_| ());
    r.client.run_until_fired("reconnect", 1);
    r.broadcast(None, "fence", json!(1));
    r.client.run_until_got("fence", json!(1));
    let got = r.take_inbox();
    if r.client.io().recovered() {
        assert_eq!(
            got,
            [
                "news [1]",
                "news [2]",
                "news [3]",
                "news [4]",
                "news [5]",
                "fence [1]"
            ],
            "recovered, so nothing missed may be missing"
        );
    } else {
        assert_ne!(r.client.io().id(), Some(r.sid.as_str()), "a new session");
        assert_eq!(got, ["fence [1]"]);
    }
    drop(r.client);
    r.server.stop().expect("the server stops cleanly");
}

/// A quiet client: the only broadcast it ever received is the one to its room, long ago;
/// other rooms were busy meanwhile, and everything older than `max_disconnection_duration`
/// has left the log. Nothing addressed to it is gone, so a short loss is recovered: same id,
/// same room, and the next broadcast to the room arrives once. (Before, the log's age bound
/// refused this session: the offset the client held had been dropped.)
#[test]
fn a_quiet_client_is_recovered_after_its_last_broadcast_aged_out_of_the_log() {
    let config = ServerConfig {
        max_disconnection_duration: Duration::from_millis(600),
        ..server_config()
    };
    let mut r = Recovery::start_quiet(config);
    r.broadcast(Some("busy"), "noise", json!(1));
    // Past the log's age bound (the client keeps answering PINGs meanwhile)...
    r.client.run_for(Duration::from_millis(900));
    // ...so this broadcast drops both earlier ones from the log.
    r.broadcast(Some("busy"), "noise", json!(2));
    ask(&r.handle(), |_| ());
    r.cut_quiet_client_and_expect_recovery();
}

/// The same with the count bound: more broadcasts to other rooms than the log holds, while
/// the client is connected and receives none of them. Its session is restored.
#[test]
fn a_client_is_recovered_after_the_log_overflowed_with_broadcasts_to_other_rooms() {
    let config = ServerConfig {
        replay_limit: 20,
        ..server_config()
    };
    let r = Recovery::start_quiet(config);
    for n in 0..50 {
        r.broadcast(Some("busy"), "noise", json!(n));
    }
    let dropped = ask(&r.handle(), |io| io.stats().replay_dropped);
    assert!(dropped >= 30, "the log dropped {dropped} of 51");
    r.cut_quiet_client_and_expect_recovery();
}

/// The replay log is bounded in bytes as well as in count: large broadcasts to an empty room
/// keep at most `replay_max_bytes` of frames, and what was dropped is counted.
#[test]
fn the_replay_log_is_bounded_in_bytes_and_counts_what_it_drops() {
    let config = ServerConfig {
        replay_max_bytes: 1 << 20,
        ..server_config()
    };
    let (tx, _rx) = mpsc::channel();
    let server = start_server(&config, any_port(), &tx, None);
    let big = "x".repeat(200_000);
    for _ in 0..20 {
        server
            .handle
            .broadcast("/", Some("nobody"), "big", vec![json!(big)])
            .expect("the server is running");
    }
    let stats = ask(&server.handle, |io| io.stats().clone());
    assert_eq!(stats.broadcasts, 20);
    assert!(
        stats.replay_bytes <= 1 << 20 && stats.replay_bytes >= 800_000,
        "the log holds {} bytes",
        stats.replay_bytes
    );
    assert_eq!(stats.replay_dropped, 15, "5 frames of ~200 kB fit in 1 MiB");
    server.stop().expect("the server stops cleanly");
}

// =============================================================================================
// 5. Graceful shutdown, as processes
// =============================================================================================

/// Starts `17_graceful_shutdown serve` on `addr` (a process of its own, acknowledging
/// `tick`s) and returns it, where it listens, and its stdout and stderr lines.
fn serve_lesson_17(addr: SocketAddr) -> (Reaper, SocketAddr, Receiver<String>, Receiver<String>) {
    let mut cmd = Command::new(LESSON_17);
    cmd.args(["serve", "--addr", &addr.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    let (mut child, addr, out) = spawn_listening(&mut cmd, "17_graceful_shutdown serve");
    let err = lines_of(child.0.stderr.take().expect("piped stderr"));
    (child, addr, out, err)
}

/// The server process is killed (SIGKILL: no goodbye, nothing flushed) while a client emits
/// acked `tick`s, and a new process starts on the same address a little later. The client
/// notices the end of file, buffers what it emits meanwhile, reconnects with backoff, and sends
/// again whatever was not answered: every tick's callback runs exactly once, with an answer,
/// and none is lost. (A tick the first process handled but whose answer died with it is
/// handled again by the second: docs/protocol.md, section 9.)
#[test]
fn a_killed_server_process_loses_no_acked_emit() {
    const TICKS: u64 = 60;
    let (mut first, addr, _, _) = serve_lesson_17(any_port());
    let mut c = Watched::connect(client_options(addr));
    let mut slots = Vec::new();
    let mut second = None;
    for n in 1..=TICKS {
        slots.push(c.emit_ack("tick", vec![json!(n)]));
        if n == 20 {
            // Tick 20 leaves (one turn writes it) and the server dies before the client can
            // read any answer: at least this one must be sent again.
            c.client.turn(Some(Duration::ZERO)).expect("client turn");
            assert!(slots[19].borrow().is_empty());
            kill(Pid::from_raw(first.0.id() as i32), Signal::SIGKILL).expect("kill -KILL");
            let status = wait_exit(&mut first.0, "the killed server", WAIT);
            assert!(!status.success(), "killed, not exited: {status}");
        }
        c.run_for(Duration::from_millis(3));
        if n == 40 {
            assert!(
                !c.io().is_connected(),
                "the client noticed the killed server"
            );
            second = Some(serve_lesson_17(addr));
        }
    }
    let all = slots.clone();
    c.run_until("every tick answered", move |_| {
        all.iter().all(|s| !s.borrow().is_empty())
    });
    // A second answer to any tick would have arrived by now.
    c.round_trip("tick", vec![json!(0)]);
    for (n, slot) in (1..).zip(&slots) {
        let answers = slot.borrow();
        assert_eq!(answers.len(), 1, "tick {n}: one callback run: {answers:?}");
        assert!(answers[0].is_ok(), "tick {n}: an answer: {answers:?}");
    }
    assert!(
        c.names().iter().any(|e| e.starts_with("reconnect ")),
        "the client reconnected: {:?}",
        c.names()
    );
    drop(c);
    drop(second);
}

/// `17_graceful_shutdown serve` gets SIGTERM with a raw client connected: the client reads
/// DISCONNECT `server shutting down`, then end of file (FIN), not ECONNRESET; the process
/// prints `stopped cleanly` and exits 0.
#[test]
fn sigterm_says_goodbye_closes_with_fin_and_exits_0() {
    let (mut child, addr, out, err) = serve_lesson_17(any_port());
    let (mut raw, _sid) = raw_peer(addr);
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).expect("kill -TERM");
    let (packets, end) = read_to_end(&mut raw);
    assert_eq!(
        packets,
        [Packet::Disconnect {
            ns: "/".into(),
            reason: Some(reasons::SERVER_SHUTTING_DOWN.into()),
        }]
    );
    assert_eq!(end, End::Eof, "a FIN after the goodbye, not a reset");
    drop(raw); // our FIN: the server's lingering close ends

    let status = wait_exit(&mut child.0, "17_graceful_shutdown serve", EXIT_WAIT);
    let stdout = collect_lines(&out);
    let stderr = collect_lines(&err);
    assert!(status.success(), "exit status {status}; stderr {stderr:?}");
    assert!(
        stdout.iter().any(|l| l == "stopped cleanly"),
        "stdout {stdout:?}"
    );
}

/// The demonstrations of lessons 16 and 17 (no arguments) run to the end and exit 0.
#[test]
fn lessons_16_and_17_demonstrations_exit_0() {
    for bin in [LESSON_16, LESSON_17] {
        let mut child = Reaper(
            Command::new(bin)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {bin}: {e}")),
        );
        let out = lines_of(child.0.stdout.take().expect("piped stdout"));
        let err = lines_of(child.0.stderr.take().expect("piped stderr"));
        let status = wait_exit(&mut child.0, bin, EXIT_WAIT);
        let stdout = collect_lines(&out);
        let stderr = collect_lines(&err);
        assert!(
            status.success(),
            "{bin}: exit status {status}\nstdout {stdout:#?}\nstderr {stderr:#?}"
        );
        assert!(!stdout.is_empty(), "{bin} narrates what it does");
    }
}

/// Socket.IO's backoff, exactly: with no jitter the delays double from the first and stop
/// at the maximum; with the default jitter each stays within half of that either way.
#[test]
fn backoff_doubles_up_to_the_maximum_with_bounded_jitter() {
    use socklab::events::backoff;
    let mut opts = ClientOptions::new("127.0.0.1:9".parse().expect("an address"));
    opts.randomization_factor = 0.0;
    let plain: Vec<u128> = (0..5).map(|a| backoff(&opts, a, 0.3).as_millis()).collect();
    assert_eq!(plain, [1000, 2000, 4000, 5000, 5000]);
    opts.randomization_factor = 0.5;
    for attempt in 0..8 {
        let base = (1000u128 << attempt.min(10)).min(5000);
        for r in [0.0, 0.05, 0.15, 0.5, 0.95, 0.999] {
            let d = backoff(&opts, attempt, r).as_millis();
            assert!(
                d * 2 >= base && d <= 5000,
                "attempt {attempt}, random {r}: {d} ms"
            );
            assert!(d * 2 <= base * 3, "attempt {attempt}, random {r}: {d} ms");
        }
    }
}
