//! The event server: namespaces, middleware, sockets, listeners, acks, rooms, broadcasts.
//!
//! [`Io`] is the server's whole state, and what every handler gets: it is owned by the loop
//! thread, so handlers touch it without locks. Handlers do not write to sockets directly:
//! what they emit is encoded at once and recorded in the outbox (`../outbox.rs`), which the
//! server hands to the event loop when the handler returns.
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | [`Io`]: the tables of namespaces, sockets and connections; listeners; the one policy for callbacks that panic |
//! | `conn.rs` | one connection's state: its wire and reader, its sockets, its heartbeat |
//! | `config.rs` | [`ServerConfig`], [`Handshake`], [`EventStats`] |
//! | `emit.rs` | [`Emit`], emits to one socket, acks |
//! | `broadcast.rs` | [`Broadcast`]: choosing recipients, encoding once, the offset |
//! | `cluster/` | [`ClusterConfig`]: the other nodes over Redis: broadcasts through a stream, requests (`fetch_sockets`, `server_side_emit`, the node count), rooms and disconnects across nodes, sessions kept in Redis |
//! | `rooms.rs` | `Rooms`: who is in which room of which namespace |
//! | `recovery.rs` | `Recovery`: parked sessions, the replay log, what was sent to whom |
//! | `sockets.rs` | a socket's end: `disconnecting`, leaving rooms, parking, `disconnect` |
//! | `reading.rs` | a connection's first byte chooses its wire; each wire's reader hands packets to `protocol.rs` |
//! | `http.rs` | HTTP requests that are not an upgrade: Engine.IO's refusals, the application's routes (`on_http`) |
//! | `polling.rs` | Engine.IO sessions over HTTP long-polling: the handshake, held GETs, POSTs, the end of a session |
//! | `sessions.rs` | the long-polling sessions' table: queues, held GETs, readers, by id |
//! | `timers.rs` | the timers when due: handshake, heartbeat, ack timeouts, upgrades, last polls |
//! | `upgrade.rs` | a long-polling session's move to a WebSocket: probe, noop, `5`, the upgrade timeout |
//! | `protocol.rs` | the packets, as the event loop's handler: HELLO, CONNECT, EVENT, ACK, heartbeat |
//! | `flush.rs` | handing the outbox to the loop (the taps see what leaves; the wire tap also what comes in, in `reading.rs` and `polling.rs`) |
//! | `run.rs` | [`Server`], [`RunningServer`], [`ServerHandle`] |

mod broadcast;
mod cluster;
mod config;
mod conn;
mod emit;
mod flush;
mod http;
mod polling;
mod protocol;
mod reading;
mod recovery;
mod rooms;
mod run;
mod sessions;
mod sockets;
mod timers;
mod upgrade;

use std::collections::HashMap;
use std::time::Instant;

pub use crate::wire::cluster::RemoteSocket;
pub use broadcast::Broadcast;
pub use cluster::{ClusterConfig, ClusterError, ServerEvent};
pub use config::{EventStats, Handshake, Refused, ServerConfig};
pub use emit::Emit;
pub use run::{RunningServer, Server, ServerHandle};

use super::encoder::Wire;
use super::guard::{Panicked, Panics};
use super::ids::Ids;
use super::listeners::{self, Event, Listeners};
use super::names::Name;
use super::outbox::Outbox;
use super::session::Session;
use super::{reasons, AckError, AckReply};
use crate::event_loop::IdMap;
use crate::events::link::Link;
use broadcast::Everyone;
use conn::{ConnState, NsSockets, Reader};
use protocol::Action;
use recovery::Recovery;
use rooms::Rooms;

type Middleware = Box<dyn FnMut(&Handshake) -> Result<(), Refused>>;
type ConnectionHandler = Box<dyn FnMut(&mut Io, &str)>;
type AckCallback = Box<dyn FnOnce(&mut Io, Result<AckReply, AckError>)>;
type WireTap = Box<dyn FnMut(&WireSeen)>;

/// What the wire tap is shown (see [`Io::set_wire_tap`]): bytes that crossed one connection.
#[derive(Debug, Clone, Copy)]
pub struct WireSeen<'a> {
    /// The connection, as [`Io::conn_number`] numbers it.
    pub conn: u64,
    /// Sent by the server (`true`), or received.
    pub out: bool,
    pub bytes: &'a [u8],
    pub at: Instant,
    /// How these bytes travel: `"socklab"` (frames on TCP), `"websocket"` (HTTP, then
    /// WebSocket frames, on TCP) or `"polling"` (the records of a long-polling session).
    pub transport: &'static str,
}

#[derive(Default)]
struct Namespace {
    middleware: Vec<Middleware>,
    on_connection: Vec<ConnectionHandler>,
}

/// One socket: a connection's membership of one namespace.
struct SocketState {
    conn: Link,
    /// Its connection's wire (kept here too: a broadcast picks each recipient's encoding
    /// without a second lookup).
    wire: Wire,
    namespace: Name,
    listeners: Listeners<Io>,
    acks: HashMap<u32, AckCallback>,
    next_ack: u32,
    handshake: Handshake,
    session: Session,
}

/// The server's state and the handle every handler gets.
pub struct Io {
    config: ServerConfig,
    namespaces: HashMap<Name, Namespace>,
    /// Socket id -> its state. Boxed: a table of ten thousand sockets keeps spare slots
    /// (up to half of it after growing), and a spare slot costs a pointer, not a whole
    /// `SocketState` (some 400 bytes).
    sockets: IdMap<Name, Box<SocketState>>,
    /// Connection -> its state. This table and `sockets` are keyed by ids the server made,
    /// so they use the cheap hash of `event_loop/id_hash.rs`: an acked event looks its
    /// connection up a dozen times on its way through.
    conns: IdMap<Link, ConnState>,
    /// Private id -> connection, for the sockets in `sockets`: a client that comes back
    /// while its old connection still looks alive is found without searching every socket
    /// (a restarted server meets thousands of such CONNECTs at once). The connection, not
    /// the socket id: the id is the connection's socket in the namespace.
    live_pids: HashMap<String, Link>,
    rooms: Rooms,
    out: Outbox<Action, Link>,
    ids: Ids,
    stats: EventStats,
    /// Whatever the application keeps beside the server, one value per type.
    data: HashMap<std::any::TypeId, Box<dyn std::any::Any>>,
    /// Sees every frame handed to the loop (lesson 14 prints them).
    tap: Option<super::Tap>,
    /// Sees the bytes of every connection, both ways (the `/wire` inspector).
    wire_tap: Option<WireTap>,
    /// User callbacks that panicked (see `guard.rs`).
    panics: Panics,
    /// Parked sessions, the replay log, and what was sent to each connection.
    recovery: Recovery,
    /// The recipients of the last broadcast to a whole namespace, kept for the next one.
    /// Emptied whenever a socket comes or goes.
    everyone: Option<Everyone>,
    /// A broadcast's recipients while they are chosen: kept between broadcasts, so that
    /// choosing them allocates nothing once it has grown.
    chosen: Vec<(Name, Link, Wire)>,
    /// The Socket.IO wire's WebSocket messages are unmasked into this one buffer, kept
    /// between reads, instead of into a new one each (`reading.rs`).
    unmasked: Vec<u8>,
    /// The server is stopping: Socket.IO connections are closed with 1001 (going away).
    stopping: bool,
    /// The application's HTTP routes (`http.rs`).
    http_routes: Option<http::HttpRoutes>,
    /// Engine.IO sessions over long-polling (`polling.rs`).
    polling: sessions::Sessions,
    /// The cluster over Redis, if the server joined one (`cluster/`).
    cluster: Option<Box<cluster::Cluster>>,
    /// Handlers of the events other servers send (`server_side_emit`), by namespace.
    server_events: HashMap<String, Vec<cluster::ServerEventHandler>>,
}

impl Io {
    pub(crate) fn new(config: ServerConfig) -> Io {
        Io {
            namespaces: HashMap::new(),
            sockets: IdMap::default(),
            conns: IdMap::default(),
            live_pids: HashMap::new(),
            rooms: Rooms::default(),
            out: Outbox::default(),
            ids: Ids::new(config.id_seed),
            stats: EventStats::default(),
            data: HashMap::new(),
            tap: None,
            wire_tap: None,
            panics: Panics::default(),
            recovery: Recovery::default(),
            everyone: None,
            chosen: Vec::new(),
            unmasked: Vec::new(),
            stopping: false,
            http_routes: None,
            polling: sessions::Sessions::default(),
            cluster: None,
            server_events: HashMap::new(),
            config,
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The counters, with the replay log's own (what it holds and what it dropped).
    pub fn stats(&self) -> EventStats {
        let (replay_dropped, replay_bytes) = self.recovery.replay_figures();
        EventStats {
            replay_dropped,
            replay_bytes,
            ..self.stats.clone()
        }
    }

    /// Keeps `value` beside the server (one per type): state for closures that arrive
    /// through a [`ServerHandle`]. It lives on the loop thread, so `Rc` and `RefCell` are
    /// fine.
    pub fn insert_data<T: 'static>(&mut self, value: T) {
        self.data
            .insert(std::any::TypeId::of::<T>(), Box::new(value));
    }

    /// Calls `f` with every frame the server sends, as it goes to the loop (once per
    /// recipient). For lessons and debugging.
    pub fn set_tap(&mut self, f: impl FnMut(&[u8]) + 'static) {
        self.tap = Some(Box::new(f));
    }

    /// Calls `f` with the raw bytes of every connection as they cross the wire, both ways:
    /// for the `/wire` inspector. Out: each frame as the flush hands it to its TCP connection
    /// (a socklab frame; an HTTP answer or a WebSocket frame), or, for a long-polling session,
    /// each record as it is queued for the next poll (the poll's answer carries the records
    /// queued by then, `\x1e` between them). In: the bytes a TCP read used (whole frames, for
    /// socklab), and each POST body of a long-polling session. A WebSocket that probes or
    /// carries a long-polling session counts as the session's connection.
    ///
    /// `f` runs inside the flush, while the server is borrowed: it records, it cannot emit.
    /// A tap that panics is removed (it would panic again on every frame).
    pub fn set_wire_tap(&mut self, f: impl FnMut(&WireSeen) + 'static) {
        self.wire_tap = Some(Box::new(f));
    }

    /// The number the wire tap gives socket `sid`'s connection.
    pub fn conn_number(&self, sid: &str) -> Option<u64> {
        self.sockets.get(sid).map(|s| conn_number(s.conn))
    }

    /// Every socket, with its namespace: `(id, namespace)`, sorted by namespace, then id.
    pub fn all_sockets(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .sockets
            .iter()
            .map(|(id, s)| (id.to_string(), s.namespace.to_string()))
            .collect();
        v.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        v
    }

    /// How socket `sid`'s connection is carried now: `"socklab"`, `"websocket"` or
    /// `"polling"`.
    pub fn transport(&self, sid: &str) -> Option<&'static str> {
        self.sockets.get(sid).map(|s| match s.wire {
            Wire::Socklab => "socklab",
            Wire::SocketIo => "websocket",
            Wire::Polling => "polling",
        })
    }

    /// Shows bytes that came in on `conn` to the wire tap, if there is one.
    fn wire_in(&mut self, conn: Link, bytes: &[u8]) {
        if self.wire_tap.is_none() {
            return;
        }
        let on_tcp = conn.tcp().is_some();
        if let Err(p) = show_wire(&mut self.wire_tap, &self.conns, conn, on_tcp, false, bytes) {
            self.callback_panicked("wire tap", None, &p);
        }
    }

    /// The value of type `T` stored with [`insert_data`](Io::insert_data).
    pub fn data<T: 'static>(&self) -> Option<&T> {
        self.data
            .get(&std::any::TypeId::of::<T>())
            .and_then(|b| b.downcast_ref())
    }

    // ---- namespaces ----------------------------------------------------------------

    fn namespace_entry(&mut self, ns: &str) -> &mut Namespace {
        if !self.namespaces.contains_key(ns) {
            self.namespaces.insert(Name::from(ns), Namespace::default());
        }
        self.namespaces.get_mut(ns).expect("inserted above")
    }

    pub(crate) fn namespace_mut(&mut self, ns: &str) {
        self.namespace_entry(ns);
    }

    /// The shared copy of namespace name `ns` (a new one if no handler registered it).
    fn ns_name(&self, ns: &str) -> Name {
        match self.namespaces.get_key_value(ns) {
            Some((name, _)) => name.clone(),
            None => Name::from(ns),
        }
    }

    /// The shared copy of socket id `sid`, if the socket exists.
    fn sid_name(&self, sid: &str) -> Option<Name> {
        self.sockets.get_key_value(sid).map(|(k, _)| k.clone())
    }

    /// Adds middleware to namespace `ns`: it sees each handshake and may refuse it with a
    /// [`Refused`] (`Err("message".into())`, or with details), which the client receives
    /// as `connect_error`.
    pub fn use_middleware(
        &mut self,
        ns: &str,
        f: impl FnMut(&Handshake) -> Result<(), Refused> + 'static,
    ) {
        self.namespace_entry(ns).middleware.push(Box::new(f));
    }

    /// Adds a connection handler to namespace `ns`: it gets each new socket's id, and
    /// usually registers the socket's listeners.
    pub fn on_connection(&mut self, ns: &str, f: impl FnMut(&mut Io, &str) + 'static) {
        self.namespace_entry(ns).on_connection.push(Box::new(f));
    }

    // ---- listeners -----------------------------------------------------------------

    /// Calls `f` for every `event` from socket `sid`. `disconnecting` and `disconnect` are
    /// events too, with the reason as their one argument.
    pub fn on(&mut self, sid: &str, event: &str, f: impl FnMut(&mut Io, &Event) + 'static) {
        if let Some(s) = self.sockets.get_mut(sid) {
            s.listeners.on(event, Box::new(f));
        }
    }

    /// Like [`on`](Io::on), for the next `event` only.
    pub fn once(&mut self, sid: &str, event: &str, f: impl FnMut(&mut Io, &Event) + 'static) {
        if let Some(s) = self.sockets.get_mut(sid) {
            s.listeners.once(event, Box::new(f));
        }
    }

    /// Removes the listeners for `event` from socket `sid`.
    pub fn off(&mut self, sid: &str, event: &str) {
        if let Some(s) = self.sockets.get_mut(sid) {
            s.listeners.off(event);
        }
    }

    /// Calls `f` for every event from socket `sid`, whatever its name.
    pub fn on_any(&mut self, sid: &str, f: impl FnMut(&mut Io, &Event) + 'static) {
        if let Some(s) = self.sockets.get_mut(sid) {
            s.listeners.on_any(Box::new(f));
        }
    }

    /// Removes socket `sid`'s catch-all listeners.
    pub fn off_any(&mut self, sid: &str) {
        if let Some(s) = self.sockets.get_mut(sid) {
            s.listeners.off_any();
        }
    }

    pub fn handshake(&self, sid: &str) -> Option<&Handshake> {
        self.sockets.get(sid).map(|s| &s.handshake)
    }

    pub fn is_connected(&self, sid: &str) -> bool {
        self.sockets.contains_key(sid)
    }

    // ---- user callbacks ------------------------------------------------------------

    // ANCHOR: callback_panicked
    /// The one policy for a user callback that panicked (see `guard.rs`): counted, printed
    /// once per callback name, and the connection of the socket it concerns (if any, and
    /// still there) closed with reason `server error`. Everyone else goes on.
    fn callback_panicked(&mut self, what: &str, sid: Option<&str>, p: &Panicked) {
        self.stats.handler_panics += 1;
        let conn = sid.and_then(|sid| Some((sid, self.sockets.get(sid)?.conn)));
        let action = match conn {
            Some((sid, _)) => format!("closing the connection of socket {sid}"),
            None => "the server goes on".to_string(),
        };
        self.panics.record("server", what, p, &action);
        if let Some((_, conn)) = conn {
            self.close_conn(conn, reasons::SERVER_ERROR, false);
        }
    }
    // ANCHOR_END: callback_panicked

    /// Dispatches `event` to its socket's listeners; a panicking listener disconnects that
    /// socket (reason `server error`) and the server goes on.
    fn dispatch_guarded(&mut self, event: &Event) {
        if let Err(p) = self.dispatch(event) {
            let what = format!("\"{}\" listener", event.name);
            self.callback_panicked(&what, Some(&event.socket), &p);
        }
    }

    /// Calls the listeners of `event`'s socket for it.
    fn dispatch(&mut self, event: &Event) -> Result<usize, Panicked> {
        listeners::dispatch(self, event, |io| {
            io.sockets.get_mut(&*event.socket).map(|s| &mut s.listeners)
        })
    }
}

/// A connection's number for the wire tap: its link's slot and generation, and which kind of
/// link it is, in one integer. A JavaScript page reads it exactly below 2^53: for the first
/// million generations of a slot.
fn conn_number(link: Link) -> u64 {
    match link {
        Link::Tcp(c) => c.as_u64() << 1,
        Link::Polling { slot, gen } => (u64::from(gen) << 33) | (u64::from(slot) << 1) | 1,
    }
}

/// Shows `bytes` of `conn` to the wire tap (see [`Io::set_wire_tap`]); `on_tcp` says whether
/// they go on a TCP connection (a long-polling session's do once it upgraded). A tap that
/// panics is removed.
fn show_wire(
    tap: &mut Option<WireTap>,
    conns: &IdMap<Link, ConnState>,
    conn: Link,
    on_tcp: bool,
    out: bool,
    bytes: &[u8],
) -> Result<(), Panicked> {
    let Some(f) = tap.as_mut() else {
        return Ok(());
    };
    if bytes.is_empty() {
        return Ok(());
    }
    let state = conns.get(&conn);
    let transport = match (conn, state.map(|c| &c.reader)) {
        (Link::Polling { .. }, _) if !on_tcp => "polling",
        (_, Some(Reader::Socklab)) => "socklab",
        // Before the reader is chosen (or after the connection's state is gone), the first
        // byte says it, as it does for the reader.
        (Link::Tcp(_), Some(Reader::First) | None) if bytes[0] == 0 => "socklab",
        _ => "websocket",
    };
    let seen = WireSeen {
        conn: conn_number(state.and_then(|c| c.route).unwrap_or(conn)),
        out,
        bytes,
        at: Instant::now(),
        transport,
    };
    super::guard::call(|| f(&seen)).inspect_err(|_| *tap = None)
}
