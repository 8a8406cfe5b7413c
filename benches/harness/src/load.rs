//! socklab's side of `make bench` (see [`crate::compare`]): the raw-socket limit, and the
//! load generators for the event server.
//!
//! | figure | function | what plays the clients |
//! |---|---|---|
//! | 1, the limit | [`limit`] against [`limit_server`] | one blocking socket each side, no protocol |
//! | 2, ack round trip | [`acks`] | socklab's own [`Client`] |
//! | 3, fan-out | [`fanout`] | N connections on one [`EventLoop`], speaking the packets directly |
//! | 4, idle connections | [`idle`] | the same, C connections doing nothing but answer PINGs |
//! | 5, latency under load | [`Probe`] beside [`fanout`] | a [`Client`] on a thread of its own |
//! | 6, the cluster | [`fanout`] with its clients spread over the nodes | as for figure 3, and paced messages timed from send to delivery |
//!
//! The many-connection generators speak the protocol themselves instead of running N
//! [`Client`]s: a thousand clients cost a thousand sockets on one loop, not a thousand loops.
//! They only look at each frame's type byte (an EVENT is counted, a PING answered); decoding
//! the JSON of a million deliveries would measure the load generator, not the server.
//! For the same reason a burst is timed as a whole; only the paced messages of figure 6, one
//! in flight at a time, are timed delivery by delivery (an EVENT that arrives then is the
//! one in flight).
//!
//! Every wait is bounded in time, and every loop in count.

use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use socklab::blocking::{self, ListenOptions};
use socklab::event_loop::{CloseReason, Config, ConnId, Ctx, EventLoop, Handler};
use socklab::events::{Client, ClientOptions};
use socklab::sys::{self, IntOpt};
use socklab::wire::frame;
use socklab::wire::packet::{self, Kind, Packet};

use crate::proc_info;
pub use crate::stats::RoundTrips;

/// Bytes in every message of the benchmark: the ping of the limit, the string of an ack
/// round trip, the chat message of the fan-out.
pub const MESSAGE_LEN: usize = 32;

/// The 32-byte string every figure sends (the Node scripts send the same one).
pub fn message() -> String {
    "x".repeat(MESSAGE_LEN)
}

/// How long a fan-out may take before it is called incomplete.
pub const FANOUT_LIMIT: Duration = Duration::from_secs(300);

/// How long one ack may take before the run is called failed.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

// ---- 1. the limit: blocking ping-pong on raw sockets ---------------------------------------

/// The server of the limit: accepts connections one after another and echoes each until the
/// peer closes. A read, a write, nothing else: no framing, no readiness, no buffering.
pub fn limit_server(listener: &sys::Fd) -> sys::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    blocking::serve_forever(listener, |conn, _| {
        sys::setsockopt(&conn, IntOpt::NoDelay, 1)?;
        loop {
            let n = sys::read(&conn, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            blocking::write_all(&conn, &buf[..n])?;
        }
    })
}

/// Listens for [`limit_server`] on `addr`; returns the socket and its real address.
pub fn limit_listen(addr: SocketAddr) -> sys::Result<(sys::Fd, SocketAddr)> {
    blocking::listen_tcp(
        addr,
        ListenOptions {
            reuseaddr: true,
            ..ListenOptions::default()
        },
    )
}

/// The client of the limit: write 32 bytes, read until all 32 are back, again; `warmup`
/// round trips, then `count` measured ones.
pub fn limit(addr: SocketAddr, warmup: usize, count: usize) -> io::Result<RoundTrips> {
    let fd = blocking::connect_tcp(addr)?;
    sys::setsockopt(&fd, IntOpt::NoDelay, 1)?;
    let ping = message().into_bytes();
    let mut buf = [0u8; MESSAGE_LEN];
    let mut one = || -> io::Result<()> {
        blocking::write_all(&fd, &ping)?;
        let mut got = 0;
        while got < buf.len() {
            match sys::read(&fd, &mut buf[got..])? {
                0 => return Err(io::Error::other("the limit server closed the connection")),
                n => got += n,
            }
        }
        Ok(())
    };
    for _ in 0..warmup {
        one()?;
    }
    let mut rt = RoundTrips::new();
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        one()?;
        rt.record(t.elapsed().as_nanos() as u64);
    }
    rt.seconds = start.elapsed().as_secs_f64();
    Ok(rt)
}

// ---- 2. ack round trips with socklab's own client --------------------------------------------

/// A [`Client`] connected to `addr`, namespace `/`, that does not reconnect (a benchmark
/// client that lost its server has nothing left to measure).
fn bench_client(addr: SocketAddr) -> io::Result<Client> {
    let opts = ClientOptions {
        reconnection: false,
        ..ClientOptions::new(addr)
    };
    let mut client = Client::connect(opts)?;
    if !client.run_until(Duration::from_secs(10), |io| io.is_connected())? {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client did not connect to {addr} within 10 s"),
        ));
    }
    Ok(client)
}

/// One `echo` emit with an ack, and the turns of the loop until the ack is back; returns
/// how long it took.
fn ack_once(client: &mut Client, msg: &str) -> io::Result<Duration> {
    let done = Rc::new(Cell::new(None::<bool>));
    let flag = Rc::clone(&done);
    let want = msg.to_string();
    let start = Instant::now();
    client
        .io()
        .emit_with_ack(
            "echo",
            vec![json!(msg)],
            Vec::new(),
            ACK_TIMEOUT,
            move |_, reply| {
                let good =
                    reply.is_ok_and(|r| r.args.first().and_then(|v| v.as_str()) == Some(&want));
                flag.set(Some(good));
            },
        )
        .map_err(io::Error::other)?;
    client.run_until(ACK_TIMEOUT + Duration::from_secs(1), |_| {
        done.get().is_some()
    })?;
    match done.get() {
        Some(true) => Ok(start.elapsed()),
        Some(false) => Err(io::Error::other("the echo ack failed or came back changed")),
        None => Err(io::Error::new(io::ErrorKind::TimedOut, "no ack")),
    }
}

/// Figure 2: one [`Client`], `warmup` then `count` sequential `echo` round trips with an ack.
pub fn acks(addr: SocketAddr, warmup: usize, count: usize) -> io::Result<RoundTrips> {
    let mut client = bench_client(addr)?;
    let msg = message();
    for _ in 0..warmup {
        ack_once(&mut client, &msg)?;
    }
    let mut rt = RoundTrips::new();
    let start = Instant::now();
    for _ in 0..count {
        rt.record(ack_once(&mut client, &msg)?.as_nanos() as u64);
    }
    rt.seconds = start.elapsed().as_secs_f64();
    client.io().disconnect();
    let _ = client.turn(Some(Duration::ZERO));
    Ok(rt)
}

// ---- 5. the probe: ack round trips from a thread of its own ---------------------------------

pub(crate) const PROBE_WARMUP: u8 = 0;
pub(crate) const PROBE_MEASURE: u8 = 1;
pub(crate) const PROBE_STOP: u8 = 2;

/// Longest a probe thread runs, whatever happens to the rest of the benchmark (this one's
/// and `sio_load::start_probe`'s).
pub(crate) const PROBE_LIMIT: Duration = Duration::from_secs(600);

/// A [`Client`] on its own thread making `echo` round trips one after another, counted only
/// between [`go`](Probe::go) and [`stop`](Probe::stop): the latency a user sees while
/// something else loads the server.
pub struct Probe {
    state: Arc<AtomicU8>,
    thread: Option<JoinHandle<io::Result<RoundTrips>>>,
}

impl Probe {
    /// Starts the probe thread; returns once it is connected and has made `warmup` round
    /// trips. The thread inherits this thread's CPU placement.
    pub fn start(addr: SocketAddr, warmup: usize) -> io::Result<Probe> {
        Probe::spawn(move |shared, ready_tx| {
            let mut client = match bench_client(addr) {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let msg = message();
            for _ in 0..warmup {
                if let Err(e) = ack_once(&mut client, &msg) {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            }
            let _ = ready_tx.send(Ok(()));
            let mut rt = RoundTrips::new();
            let mut started = None;
            let limit = Instant::now() + PROBE_LIMIT;
            while Instant::now() < limit {
                let phase = shared.load(Ordering::Acquire);
                if phase == PROBE_STOP {
                    break;
                }
                let took = ack_once(&mut client, &msg)?;
                if phase == PROBE_MEASURE {
                    started.get_or_insert_with(Instant::now);
                    rt.record(took.as_nanos() as u64);
                }
            }
            rt.seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
            client.io().disconnect();
            let _ = client.turn(Some(Duration::ZERO));
            Ok(rt)
        })
    }

    /// Runs probe `body` on a thread of its own, which inherits this thread's CPU placement;
    /// returns once the body said on its channel that it is ready (or why it is not). The
    /// body reads the shared state (`PROBE_WARMUP`, `PROBE_MEASURE`, `PROBE_STOP`): the
    /// control of socklab's probe and of the Socket.IO one (`sio_load::start_probe`).
    pub(crate) fn spawn(
        body: impl FnOnce(Arc<AtomicU8>, mpsc::Sender<Result<(), String>>) -> io::Result<RoundTrips>
            + Send
            + 'static,
    ) -> io::Result<Probe> {
        let state = Arc::new(AtomicU8::new(PROBE_WARMUP));
        let (ready_tx, ready_rx) = mpsc::channel();
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || body(shared, ready_tx));
        match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => Ok(Probe {
                state,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(io::Error::other(format!("the probe failed: {e}"))),
            Err(_) => {
                state.store(PROBE_STOP, Ordering::Release);
                Err(io::Error::other("the probe was not ready within 30 s"))
            }
        }
    }

    /// From now on, round trips count.
    pub fn go(&self) {
        self.state.store(PROBE_MEASURE, Ordering::Release);
    }

    /// Stops the probe; returns the round trips made since [`go`](Probe::go).
    pub fn stop(mut self) -> io::Result<RoundTrips> {
        self.state.store(PROBE_STOP, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(io::Error::other("the probe thread panicked")),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.state.store(PROBE_STOP, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---- many connections on one loop: fan-out and idle --------------------------------------

/// One connection of a [`Crowd`].
#[derive(Debug, Default)]
struct Member {
    /// Which of the crowd's servers it connected to (an index into its list of nodes).
    node: usize,
    joined: bool,
    /// EVENT packets received in this round.
    events: u64,
}

/// N protocol clients on one loop: each sends HELLO and CONNECT, answers PING with PONG, and
/// counts the EVENTs it receives.
struct Crowd {
    members: HashMap<ConnId, Member>,
    /// Connections in the order they joined.
    joined: Vec<ConnId>,
    /// Connects under way, and handshakes not finished yet.
    pending: usize,
    failed: usize,
    /// Connections that closed after joining.
    lost: usize,
    /// EVENTs each member should receive in this round, and how many members have them all.
    target: u64,
    complete: usize,
    /// EVENTs received by all members in this round, and by the members of each node.
    deliveries: u64,
    by_node: Vec<u64>,
    /// While a paced message is on its way (see [`fanout`]): when it was sent. Each delivery
    /// of it is timed into `same_node` or `other_node`, by whether the receiver is a client
    /// of node 0, the sender's. `None` during a burst, which is not timed message by message.
    sent_at: Option<Instant>,
    same_node: RoundTrips,
    other_node: RoundTrips,
    greeting: Vec<u8>,
    pong: Vec<u8>,
}

impl Crowd {
    fn new(nodes: usize) -> Crowd {
        let greeting = packet::greeting(None);
        Crowd {
            members: HashMap::new(),
            joined: Vec::new(),
            pending: 0,
            failed: 0,
            lost: 0,
            target: 0,
            complete: 0,
            deliveries: 0,
            by_node: vec![0; nodes],
            sent_at: None,
            same_node: RoundTrips::new(),
            other_node: RoundTrips::new(),
            greeting,
            pong: packet::encode_to_vec(&Packet::Pong),
        }
    }

    /// Starts a round: every member should now receive `target` EVENTs.
    fn begin_round(&mut self, target: u64) {
        for m in self.members.values_mut() {
            m.events = 0;
        }
        self.target = target;
        self.complete = 0;
        self.deliveries = 0;
        self.by_node.iter_mut().for_each(|d| *d = 0);
    }

    /// Joined members of each node.
    fn clients_by_node(&self) -> Vec<u64> {
        let mut v = vec![0; self.by_node.len()];
        for id in &self.joined {
            if let Some(m) = self.members.get(id) {
                v[m.node] += 1;
            }
        }
        v
    }
}

impl Handler for Crowd {
    type Timer = ();
    type Message = ();

    fn connected(&mut self, ctx: &mut Ctx<()>, id: ConnId, result: sys::Result<()>) {
        match result {
            Ok(()) => {
                // A refused send means the connection is closing: `closed` counts it.
                let _ = ctx.send(id, &self.greeting);
            }
            Err(_) => {
                // Gone already: `closed` will not be called for it.
                self.members.remove(&id);
                self.failed += 1;
                self.pending = self.pending.saturating_sub(1);
            }
        }
    }

    fn data(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        let Some(member) = self.members.get_mut(&id) else {
            return bytes.len();
        };
        let mut used = 0;
        // Whole frames only; an incomplete one stays for the next read. The server's limit
        // is its own business: any length a u32 can declare is taken.
        while let Ok(Some((payload, n))) = frame::split(&bytes[used..], u32::MAX as usize) {
            used += n;
            // The first payload byte is the packet type (an empty payload has none).
            let kind = payload.first().copied().unwrap_or(u8::MAX);
            if kind == Kind::Event as u8 {
                member.events += 1;
                self.deliveries += 1;
                self.by_node[member.node] += 1;
                if let Some(sent) = self.sent_at {
                    let ns = sent.elapsed().as_nanos() as u64;
                    match member.node {
                        0 => self.same_node.record(ns),
                        _ => self.other_node.record(ns),
                    }
                }
                if member.events == self.target {
                    self.complete += 1;
                }
            } else if kind == Kind::Connect as u8 && !member.joined {
                member.joined = true;
                self.joined.push(id);
                self.pending = self.pending.saturating_sub(1);
            } else if kind == Kind::Ping as u8 {
                let _ = ctx.send(id, &self.pong);
            }
        }
        used
    }

    fn closed(&mut self, _: &mut Ctx<()>, id: ConnId, _: CloseReason) {
        if let Some(m) = self.members.remove(&id) {
            if m.joined {
                self.lost += 1;
                self.joined.retain(|&j| j != id);
            } else {
                self.failed += 1;
                self.pending = self.pending.saturating_sub(1);
            }
        }
    }
}

/// How many connects (and handshakes) a crowd keeps under way at once: enough to fill the
/// pipe, few enough for the server's accept queue (`listen` backlog 1024).
const CONNECTS_IN_FLIGHT: usize = 256;

/// Opens a crowd of `n` connections, the i-th to `nodes[i % nodes.len()]`; returns once all
/// joined or failed, or after `limit`. `max_outbound` bounds what one connection may have
/// queued.
fn open_crowd(
    nodes: &[SocketAddr],
    n: usize,
    max_outbound: usize,
    limit: Duration,
) -> io::Result<EventLoop<Crowd>> {
    if nodes.is_empty() {
        return Err(io::Error::other("a crowd needs a server to connect to"));
    }
    let config = Config {
        max_connections: n + 16,
        max_outbound,
        stop_grace: Duration::from_secs(2),
        // A sink that only counts frames: it takes more per turn than the loop's default,
        // so that it turns (and calls epoll_wait) less often on CPU 1, which it shares with
        // the latency probe.
        reads_per_event: 16,
        ..Config::default()
    };
    let mut ev = EventLoop::new(Crowd::new(nodes.len()), config)?;
    let deadline = Instant::now() + limit;
    let mut started = 0;
    while Instant::now() < deadline {
        let h = ev.handler();
        if h.joined.len() + h.failed + h.lost >= n {
            break;
        }
        let room = CONNECTS_IN_FLIGHT.saturating_sub(h.pending);
        for _ in 0..room.min(n - started) {
            let node = started % nodes.len();
            match ev.ctx().connect(nodes[node], Some(Duration::from_secs(10))) {
                Ok(id) => {
                    let h = ev.handler();
                    h.members.insert(
                        id,
                        Member {
                            node,
                            ..Member::default()
                        },
                    );
                    h.pending += 1;
                }
                // Out of descriptors or ports: counted as failed, reported by the caller.
                Err(_) => ev.handler().failed += 1,
            }
            started += 1;
        }
        ev.turn(Some(Duration::from_millis(20)))?;
    }
    Ok(ev)
}

/// Turns `ev` until `done` or `limit`; returns whether `done` said so (both generators).
pub(crate) fn turn_until<H: Handler>(
    ev: &mut EventLoop<H>,
    limit: Duration,
    mut done: impl FnMut(&mut H) -> bool,
) -> io::Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        if done(ev.handler()) {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        ev.turn(Some((deadline - now).min(Duration::from_millis(20))))?;
    }
}

/// A fan-out: where its clients connect, what the sender sends, which processes' CPU time
/// is read. [`FanoutPlan::new`] gives one server and a burst with nothing else.
#[derive(Debug, Clone)]
pub struct FanoutPlan {
    /// The servers: client i connects to `nodes[i % nodes.len()]`, so the clients are spread
    /// evenly; the sender is a client of `nodes[0]`. More than one node makes sense for the
    /// nodes of a cluster, where a broadcast on one reaches the clients of all.
    pub nodes: Vec<SocketAddr>,
    pub clients: usize,
    /// Messages of the measured burst.
    pub messages: usize,
    /// Messages of the warm-up burst before everything else (0: none).
    pub warmup: usize,
    /// Messages sent one at a time after the warm-up, each once every client has the one
    /// before; every delivery of them is timed ([`Fanout::hop`]). 0: none.
    pub paced: usize,
    /// The server processes whose CPU time over the measured burst is added up (`/proc`).
    pub server_pids: Vec<u32>,
    /// The longest the burst may take, and the longest it may go without a delivery: what
    /// has not come by then is lost. A paced message waits for its deliveries up to `stall`
    /// too.
    pub limit: Duration,
    pub stall: Duration,
}

impl FanoutPlan {
    /// `clients` clients of the server at `addr`, a burst of `messages`, nothing else.
    pub fn new(addr: SocketAddr, clients: usize, messages: usize) -> FanoutPlan {
        FanoutPlan {
            nodes: vec![addr],
            clients,
            messages,
            warmup: 0,
            paced: 0,
            server_pids: Vec::new(),
            limit: FANOUT_LIMIT,
            stall: FANOUT_STALL,
        }
    }
}

/// How long a fan-out may go without a single delivery before the missing ones count as lost.
/// A burst delivers millions per second and a hop through Redis takes a millisecond or so;
/// nothing that is still coming waits this long.
pub const FANOUT_STALL: Duration = Duration::from_secs(3);

/// What one fan-out measured.
#[derive(Debug, Clone, Default)]
pub struct Fanout {
    /// Connections that joined (the sender is one of them, and receives too).
    pub clients: usize,
    pub messages: usize,
    /// Messages received by all clients in the burst: `clients × messages` when complete.
    pub deliveries: u64,
    /// Deliveries of the burst that never came, for the clients of each node (all 0 when
    /// complete).
    pub lost_by_node: Vec<u64>,
    /// From the first message sent to the last delivery.
    pub seconds: f64,
    /// CPU time the servers used over the same span (from /proc), if their pids were given.
    pub server_cpu: Option<Duration>,
    /// Whether every client got every message before the time limit.
    pub complete: bool,
    /// The paced messages, if any were sent.
    pub hop: Option<Hop>,
}

/// The send-to-delivery times of the paced messages of a fan-out: from the moment the
/// sender sends to the moment a client has the message, for the clients of the sender's node
/// and for those of the other nodes.
#[derive(Debug, Clone, Default)]
pub struct Hop {
    pub same_node: RoundTrips,
    pub other_node: RoundTrips,
    /// Paced messages sent, and their deliveries that did not come within the stall time
    /// (the paced part ends at the first such message).
    pub sent: usize,
    pub lost: u64,
}

impl Fanout {
    pub fn per_second(&self) -> f64 {
        self.deliveries as f64 / self.seconds.max(1e-9)
    }

    /// Server CPU time per delivery, in nanoseconds.
    pub fn cpu_ns_per_delivery(&self) -> Option<f64> {
        self.server_cpu
            .map(|c| c.as_nanos() as f64 / self.deliveries.max(1) as f64)
    }

    /// Deliveries of the burst that never came.
    pub fn lost(&self) -> u64 {
        self.lost_by_node.iter().sum()
    }
}

/// CPU time used so far by all of `pids` (`None` for none, or if one cannot be read).
pub(crate) fn cpu_of(pids: &[u32]) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| proc_info::cpu_time(p)).sum()
}

/// Figure 3, and figure 6 spread over the nodes of a cluster: `plan.clients` connections
/// join; one of `plan.nodes[0]` sends `plan.messages` chat messages at once, as fast as its
/// socket takes them; the servers send each to every client (the sender included). The clock
/// runs until every client has every message, or until nothing came for `plan.stall`. First
/// come a warm-up burst of `plan.warmup` messages and `plan.paced` messages one at a time
/// (timed, [`Hop`]); `ready` is called just before the measured burst (to start a
/// [`Probe`]).
pub fn fanout(plan: &FanoutPlan, ready: impl FnOnce()) -> io::Result<Fanout> {
    let (clients, messages) = (plan.clients, plan.messages);
    let frame = packet::encode_to_vec(&Packet::Event {
        ns: packet::DEFAULT_NAMESPACE.into(),
        name: "chat message".into(),
        args: vec![json!(message())],
        attachments: Vec::new(),
        id: None,
        offset: None,
    });
    let burst = frame.len() * messages.max(plan.warmup);
    let mut ev = open_crowd(
        &plan.nodes,
        clients,
        (burst + (1 << 16)).max(1 << 20),
        Duration::from_secs(60),
    )?;
    let joined = ev.handler().joined.len();
    if joined < clients {
        return Err(io::Error::other(format!(
            "only {joined} of {clients} clients joined ({} failed)",
            ev.handler().failed
        )));
    }
    let h = ev.handler();
    let sender = *h
        .joined
        .iter()
        .find(|id| h.members.get(id).is_some_and(|m| m.node == 0))
        .ok_or_else(|| io::Error::other("no client of the first node joined"))?;
    let stall = plan.stall;
    // One burst of `m`; returns its time to the last delivery and whether it was complete.
    let round = |ev: &mut EventLoop<Crowd>, m: usize| -> io::Result<(f64, bool)> {
        ev.handler().begin_round(m as u64);
        let start = Instant::now();
        ev.ctx()
            .send(sender, &frame.repeat(m))
            .map_err(|e| io::Error::other(format!("the sender could not send: {e}")))?;
        // Deliveries seen at the last turn, and when that count was first seen: checked once
        // per turn, not once per delivery.
        let mut last = (0, start);
        let complete = turn_until(ev, plan.limit, |h| {
            if h.deliveries != last.0 {
                last = (h.deliveries, Instant::now());
            }
            h.complete >= joined || h.lost > 0 || last.1.elapsed() >= stall
        })?;
        let h = ev.handler();
        if complete && h.complete >= joined && h.lost == 0 {
            return Ok((start.elapsed().as_secs_f64(), true));
        }
        Ok(((last.1 - start).as_secs_f64(), false))
    };
    if plan.warmup > 0 {
        round(&mut ev, plan.warmup)?;
    }
    let hop = if plan.paced > 0 {
        let mut hop = Hop::default();
        for _ in 0..plan.paced {
            let h = ev.handler();
            h.begin_round(1);
            h.sent_at = Some(Instant::now());
            ev.ctx()
                .send(sender, &frame)
                .map_err(|e| io::Error::other(format!("the sender could not send: {e}")))?;
            hop.sent += 1;
            turn_until(&mut ev, stall, |h| h.complete >= joined || h.lost > 0)?;
            let h = ev.handler();
            h.sent_at = None;
            if h.complete < joined {
                // A late one would be taken for the next message's: stop here.
                hop.lost = (joined - h.complete) as u64;
                break;
            }
        }
        let h = ev.handler();
        hop.same_node = std::mem::take(&mut h.same_node);
        hop.other_node = std::mem::take(&mut h.other_node);
        Some(hop)
    } else {
        None
    };
    ready();
    let cpu0 = cpu_of(&plan.server_pids);
    let (seconds, complete) = round(&mut ev, messages)?;
    let cpu1 = cpu_of(&plan.server_pids);
    let h = ev.handler();
    let lost_by_node = h
        .clients_by_node()
        .iter()
        .zip(&h.by_node)
        .map(|(n, got)| (n * messages as u64).saturating_sub(*got))
        .collect();
    Ok(Fanout {
        clients: joined,
        messages,
        deliveries: h.deliveries,
        lost_by_node,
        seconds,
        server_cpu: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
        complete,
        hop,
    })
}

/// What an idle-connections run saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Idle {
    pub wanted: usize,
    pub connected: usize,
    pub failed: usize,
}

/// Figure 4: `warm` connections join and leave (so that what a first connection sets up
/// once is not counted); `before` is called; then `count` connections join and sit idle,
/// answering the server's PINGs, for `settle`; `after` is called while they are all still
/// connected; then they close.
pub fn idle<T>(
    addr: SocketAddr,
    warm: usize,
    count: usize,
    settle: Duration,
    before: impl FnOnce(),
    after: impl FnOnce() -> T,
) -> io::Result<(Idle, T)> {
    if warm > 0 {
        let ev = open_crowd(&[addr], warm, 1 << 16, Duration::from_secs(20))?;
        drop(ev); // every connection closes
        std::thread::sleep(Duration::from_millis(200));
    }
    before();
    let mut ev = open_crowd(&[addr], count, 1 << 16, Duration::from_secs(120))?;
    let settle_until = Instant::now() + settle;
    turn_until(&mut ev, settle, |_| Instant::now() >= settle_until)?;
    let measured = after();
    let h = ev.handler();
    Ok((
        Idle {
            wanted: count,
            connected: h.joined.len(),
            failed: h.failed + h.lost,
        },
        measured,
    ))
}
