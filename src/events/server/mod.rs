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
//! | `config.rs` | [`ServerConfig`], [`Handshake`], [`EventStats`] |
//! | `emit.rs` | [`Emit`], emits to one socket, acks |
//! | `broadcast.rs` | [`Broadcast`]: choosing recipients, encoding once, the offset |
//! | `rooms.rs` | `Rooms`: who is in which room of which namespace |
//! | `recovery.rs` | `Recovery`: parked sessions, the replay log, what was sent to whom |
//! | `sockets.rs` | a socket's end: `disconnecting`, leaving rooms, parking, `disconnect` |
//! | `reading.rs` | a connection's first byte chooses its wire; each wire's reader hands packets to `protocol.rs` |
//! | `http.rs` | HTTP requests that are not an upgrade: Engine.IO's refusals, the application's routes (`on_http`) |
//! | `polling.rs` | Engine.IO sessions over HTTP long-polling, and their upgrade to a WebSocket |
//! | `protocol.rs` | the packets, as the event loop's handler: HELLO, CONNECT, EVENT, ACK, heartbeat |
//! | `flush.rs` | handing the outbox to the loop |
//! | `run.rs` | [`Server`], [`RunningServer`], [`ServerHandle`] |

mod broadcast;
mod config;
mod emit;
mod flush;
mod http;
mod polling;
mod protocol;
mod reading;
mod recovery;
mod rooms;
mod run;
mod sockets;

use std::collections::HashMap;
use std::net::SocketAddr;

pub use broadcast::Broadcast;
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
use crate::events::link::Link;
use broadcast::Everyone;
use protocol::Action;
use recovery::Recovery;
use rooms::Rooms;

type Middleware = Box<dyn FnMut(&Handshake) -> Result<(), Refused>>;
type ConnectionHandler = Box<dyn FnMut(&mut Io, &str)>;
type AckCallback = Box<dyn FnOnce(&mut Io, Result<AckReply, AckError>)>;

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

/// One connection.
struct ConnState {
    peer: SocketAddr,
    /// How its packets are written...
    wire: Wire,
    /// ...and read (`reading.rs`).
    reader: Reader,
    /// A WebSocket that probes or carries a long-polling session: its packets are the
    /// session's (`polling.rs`).
    route: Option<Link>,
    /// Its handshake is done: socklab's HELLO, or Socket.IO's upgrade.
    hello: bool,
    /// Namespace -> socket id.
    sockets: NsSockets,
    /// Heartbeat: PINGs sent so far, and whether the last one still waits for its PONG.
    pings: u64,
    awaiting_pong: bool,
    /// A close was queued for it: what it sends from now on is not handled.
    closing: bool,
}

/// How a connection's bytes are read: chosen by its first byte (`reading.rs`).
enum Reader {
    /// Nothing read yet.
    First,
    /// socklab frames.
    Socklab,
    /// Socket.IO: an HTTP upgrade, then WebSocket frames.
    SocketIo(Box<crate::transport::socketio::SioReader>),
    /// A long-polling session: read through the HTTP requests that name it.
    Session,
}

/// Namespace -> socket id, for the one or few namespaces a connection joins. A short list
/// costs one small allocation where the smallest hash table costs over 200 bytes, and
/// ten thousand idle connections have one each (`make bench`, idle connections).
#[derive(Default)]
struct NsSockets(Vec<(Name, Name)>);

impl NsSockets {
    fn get(&self, ns: &str) -> Option<&Name> {
        self.0.iter().find(|(n, _)| &**n == ns).map(|(_, sid)| sid)
    }

    fn contains_key(&self, ns: &str) -> bool {
        self.get(ns).is_some()
    }

    fn insert(&mut self, ns: Name, sid: Name) {
        match self.0.iter_mut().find(|(n, _)| *n == ns) {
            Some(slot) => slot.1 = sid,
            None => {
                // One slot at a time: most connections never hold a second namespace.
                self.0.reserve_exact(1);
                self.0.push((ns, sid));
            }
        }
    }

    fn remove(&mut self, ns: &str) -> Option<Name> {
        let at = self.0.iter().position(|(n, _)| &**n == ns)?;
        Some(self.0.swap_remove(at).1)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn values(&self) -> impl Iterator<Item = &Name> {
        self.0.iter().map(|(_, sid)| sid)
    }
}

/// The server's state and the handle every handler gets.
pub struct Io {
    config: ServerConfig,
    namespaces: HashMap<Name, Namespace>,
    /// Socket id -> its state. Boxed: a table of ten thousand sockets keeps spare slots
    /// (up to half of it after growing), and a spare slot costs a pointer, not a whole
    /// `SocketState` (some 400 bytes).
    sockets: HashMap<Name, Box<SocketState>>,
    conns: HashMap<Link, ConnState>,
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
    /// The server is stopping: Socket.IO connections are closed with 1001 (going away).
    stopping: bool,
    /// The application's HTTP routes (`http.rs`).
    http_routes: Option<http::HttpRoutes>,
    /// Engine.IO sessions over long-polling (`polling.rs`).
    polling: polling::Sessions,
}

impl Io {
    pub(crate) fn new(config: ServerConfig) -> Io {
        Io {
            namespaces: HashMap::new(),
            sockets: HashMap::new(),
            conns: HashMap::new(),
            live_pids: HashMap::new(),
            rooms: Rooms::default(),
            out: Outbox::default(),
            ids: Ids::new(config.id_seed),
            stats: EventStats::default(),
            data: HashMap::new(),
            tap: None,
            panics: Panics::default(),
            recovery: Recovery::default(),
            everyone: None,
            chosen: Vec::new(),
            stopping: false,
            http_routes: None,
            polling: polling::Sessions::default(),
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
