//! The event server: namespaces, middleware, sockets, listeners, acks, rooms, broadcasts.
//!
//! [`Io`] is the server's whole state, and what every handler gets: it is owned by the loop
//! thread, so handlers touch it without locks. Handlers do not write to sockets directly:
//! what they emit is encoded at once into one reused buffer and recorded in an outbox, which
//! the server hands to the event loop when the handler returns. A broadcast is encoded once;
//! each recipient gets an outbox entry pointing at the same bytes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::guard::{self, Panicked, Panics};
use super::ids::Ids;
use super::listeners::{self, Event, Listeners};
use super::replay::{self, ReplayLog};
use super::session::{Parked, Session};
use super::{reasons, AckError, AckReply, EmitError};
use crate::event_loop::{self, CloseReason, ConnId, Ctx, SendError};
use crate::wire::packet::{self, Limits, Packet, RESERVED_EVENTS};

/// Settings of an event server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub limits: Limits,
    /// How long a new connection may take to join its first namespace (default 45 s).
    pub handshake_timeout: Duration,
    /// Sent to clients in HELLO; heartbeats use them (see the resilience lessons).
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// The event loop's settings (connection cap, outbound cap, ...).
    pub loop_config: event_loop::Config,
    /// How long a dropped session (id, rooms, missed broadcasts) is kept for its client to
    /// come back (connection state recovery; default 2 minutes).
    pub max_disconnection_duration: Duration,
    /// Most broadcasts kept for replay...
    pub replay_limit: usize,
    /// ...and most bytes of them (default 16 MiB; frames may be up to `max_frame` each).
    /// What either bound drops is counted (`EventStats::replay_dropped`); a session that
    /// would have received a dropped broadcast is not restored.
    pub replay_max_bytes: usize,
    /// Most dropped sessions kept at once (the oldest goes first).
    pub max_parked_sessions: usize,
    /// `None` (the default): socket ids and session secrets come from the operating
    /// system's random generator. A seed gives the same ids every run, for demos whose output
    /// is recorded; such ids are predictable, so anyone could take a session: never use
    /// one in a server that others can reach.
    pub id_seed: Option<u64>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(45),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            loop_config: event_loop::Config::default(),
            max_disconnection_duration: Duration::from_secs(120),
            replay_limit: 10_000,
            replay_max_bytes: 16 << 20,
            max_parked_sessions: 10_000,
            id_seed: None,
        }
    }
}

/// What middleware sees of a connecting client.
#[derive(Debug, Clone, PartialEq)]
pub struct Handshake {
    /// The auth payload the client sent with CONNECT, if any.
    pub auth: Option<Value>,
    pub peer: SocketAddr,
    pub namespace: String,
}

type Middleware = Box<dyn FnMut(&Handshake) -> Result<(), String>>;
type ConnectionHandler = Box<dyn FnMut(&mut Io, &str)>;
type AckCallback = Box<dyn FnOnce(&mut Io, Result<AckReply, AckError>)>;

#[derive(Default)]
struct Namespace {
    middleware: Vec<Middleware>,
    on_connection: Vec<ConnectionHandler>,
}

struct SocketState {
    conn: ConnId,
    namespace: String,
    listeners: Listeners<Io>,
    acks: HashMap<u32, AckCallback>,
    next_ack: u32,
    handshake: Handshake,
    session: Session,
}

struct ConnState {
    peer: SocketAddr,
    hello: bool,
    /// Namespace -> socket id.
    sockets: NsSockets,
    /// Heartbeat: PINGs sent so far, and whether the last one still waits for its PONG.
    pings: u64,
    awaiting_pong: bool,
    /// A close was queued for it: what it sends from now on is not handled.
    closing: bool,
}

/// Namespace -> socket id, for the one or few namespaces a connection joins. A short list
/// costs one 64-byte allocation where the smallest hash table costs over 200 bytes, and
/// ten thousand idle connections have one each (`make bench`, idle connections).
#[derive(Default)]
struct NsSockets(Vec<(String, String)>);

impl NsSockets {
    fn get(&self, ns: &str) -> Option<&String> {
        self.0.iter().find(|(n, _)| n == ns).map(|(_, sid)| sid)
    }

    fn contains_key(&self, ns: &str) -> bool {
        self.get(ns).is_some()
    }

    fn insert(&mut self, ns: String, sid: String) {
        match self.0.iter_mut().find(|(n, _)| *n == ns) {
            Some(slot) => slot.1 = sid,
            None => {
                // One slot at a time: most connections never hold a second namespace.
                self.0.reserve_exact(1);
                self.0.push((ns, sid));
            }
        }
    }

    fn remove(&mut self, ns: &str) -> Option<String> {
        let at = self.0.iter().position(|(n, _)| n == ns)?;
        Some(self.0.swap_remove(at).1)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn values(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(_, sid)| sid)
    }
}

/// The loop's timers for the server.
#[derive(Debug)]
pub enum ServerTimer {
    Handshake(ConnId),
    AckTimeout {
        sid: String,
        id: u32,
    },
    /// Time to send connection `conn` its next PING.
    Ping(ConnId),
    /// The PONG for PING number `seq` is due.
    PongDue(ConnId, u64),
}

enum Out {
    Send {
        conn: ConnId,
        start: usize,
        end: usize,
        volatile: bool,
    },
    Close {
        conn: ConnId,
        flush: bool,
    },
    Timer(Duration, ServerTimer),
    Stop,
}

/// Counters for tests, demos and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventStats {
    pub events_in: u64,
    pub events_out: u64,
    pub broadcasts: u64,
    /// Bytes encoded (each broadcast counted once).
    pub bytes_encoded: u64,
    pub volatile_dropped: u64,
    pub parse_errors: u64,
    pub handler_panics: u64,
    pub connects_refused: u64,
    /// Retried events (same ack id, same session) not handled a second time.
    pub duplicates_dropped: u64,
    /// Sessions restored on reconnect, and the broadcasts replayed to them.
    pub sessions_recovered: u64,
    pub broadcasts_replayed: u64,
    /// Sessions taken over by a CONNECT with their `pid` while their old connection still
    /// looked alive (the old socket is told `session replaced`).
    pub sessions_replaced: u64,
    /// Broadcasts the replay log dropped by its count or byte bound before their age was
    /// up, or never kept because one frame was over the byte bound (from the log itself).
    pub replay_dropped: u64,
    /// Bytes of frames the replay log holds now (from the log itself).
    pub replay_bytes: u64,
}

/// One emit, with everything optional spelled out: `Emit::new("name").arg(..).ack(..)`.
pub struct Emit {
    name: String,
    args: Vec<Value>,
    attachments: Vec<Vec<u8>>,
    ack: Option<(Duration, AckCallback)>,
    volatile: bool,
}

impl Emit {
    pub fn new(name: &str) -> Emit {
        Emit {
            name: name.to_string(),
            args: Vec::new(),
            attachments: Vec::new(),
            ack: None,
            volatile: false,
        }
    }

    /// Appends one JSON argument.
    pub fn arg(mut self, v: Value) -> Emit {
        self.args.push(v);
        self
    }

    pub fn args(mut self, args: Vec<Value>) -> Emit {
        self.args = args;
        self
    }

    /// Appends one binary attachment (raw bytes on the wire).
    pub fn binary(mut self, bytes: Vec<u8>) -> Emit {
        self.attachments.push(bytes);
        self
    }

    /// Asks for an acknowledgement: `callback` gets the reply, or `AckError::Timeout` after
    /// `timeout`, or `AckError::Disconnected`.
    pub fn ack(
        mut self,
        timeout: Duration,
        callback: impl FnOnce(&mut Io, Result<AckReply, AckError>) + 'static,
    ) -> Emit {
        self.ack = Some((timeout, Box::new(callback)));
        self
    }

    /// Drop the event for a socket whose output is backed up, instead of queueing it.
    pub fn volatile(mut self) -> Emit {
        self.volatile = true;
        self
    }
}

/// The server's state and the handle every handler gets.
pub struct Io {
    config: ServerConfig,
    namespaces: HashMap<String, Namespace>,
    /// Socket id -> its state. Boxed: a table of ten thousand sockets keeps spare slots
    /// (up to half of it after growing), and a spare slot costs a pointer, not a whole
    /// `SocketState` (some 400 bytes).
    sockets: HashMap<String, Box<SocketState>>,
    conns: HashMap<ConnId, ConnState>,
    /// Private id -> connection, for the sockets in `sockets`: a client that comes back
    /// while its old connection still looks alive is found without searching every socket
    /// (a restarted server meets thousands of such CONNECTs at once). The connection, not
    /// the socket id, to save a copy of the id per socket; the id is the connection's
    /// socket in the namespace.
    live_pids: HashMap<String, ConnId>,
    /// Namespace -> room -> socket ids.
    rooms: HashMap<String, HashMap<String, HashSet<String>>>,
    out: Vec<Out>,
    /// Encoded bytes the outbox entries point into; emptied after every flush.
    arena: Vec<u8>,
    ids: Ids,
    stats: EventStats,
    /// Whatever the application keeps beside the server, one value per type.
    data: HashMap<std::any::TypeId, Box<dyn std::any::Any>>,
    /// Sees every frame handed to the loop (lesson 14 prints them).
    tap: Option<super::Tap>,
    /// User callbacks that panicked (see `guard.rs`).
    panics: Panics,
    /// Sessions whose connection dropped, by private id, waiting for their client.
    parked: HashMap<String, Parked>,
    /// The parked sessions' private ids in the order they were parked, which is also the
    /// order they expire in (one `max_disconnection_duration` for all): expiring and
    /// evicting take from the front instead of searching the table. An id whose session was
    /// restored, or parked again since, stays here until it reaches the front and is skipped.
    parked_order: VecDeque<(Instant, String)>,
    /// Recent broadcasts, for replay, and the offsets they take.
    replay: ReplayLog,
    /// By connection slot: the offset of the last broadcast queued to it (an array write
    /// per recipient, where a table would cost a lookup per delivery).
    last_sent: Vec<u64>,
    /// The recipients of the last broadcast to a whole namespace, kept for the next one.
    /// Emptied whenever a socket comes or goes (`sockets.insert`, `sockets.remove`).
    everyone: Option<Everyone>,
}

/// Every socket of namespace `ns`, as connections in the order of the socket ids (the
/// order `Broadcast::chosen` gives). A burst of broadcasts to a thousand sockets
/// sorts them once, not once per message (`make bench`, fan-out).
struct Everyone {
    ns: String,
    conns: Vec<ConnId>,
}

impl Io {
    pub(crate) fn new(config: ServerConfig) -> Io {
        Io {
            namespaces: HashMap::new(),
            sockets: HashMap::new(),
            conns: HashMap::new(),
            live_pids: HashMap::new(),
            rooms: HashMap::new(),
            out: Vec::new(),
            arena: Vec::new(),
            ids: Ids::new(config.id_seed),
            stats: EventStats::default(),
            data: HashMap::new(),
            tap: None,
            panics: Panics::default(),
            parked: HashMap::new(),
            parked_order: VecDeque::new(),
            replay: ReplayLog::default(),
            last_sent: Vec::new(),
            everyone: None,
            config,
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The counters, with the replay log's own (what it holds and what it dropped).
    pub fn stats(&self) -> EventStats {
        EventStats {
            replay_dropped: self.replay.dropped_early(),
            replay_bytes: self.replay.bytes() as u64,
            ..self.stats.clone()
        }
    }

    /// Keeps `value` beside the server (one per type): state for closures that arrive
    /// through a [`super::ServerHandle`]. It lives on the loop thread, so `Rc` and
    /// `RefCell` are fine.
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

    pub(crate) fn namespace_mut(&mut self, ns: &str) {
        self.namespaces.entry(ns.to_string()).or_default();
    }

    /// Adds middleware to namespace `ns`: it sees each handshake and may refuse it with a
    /// message, which the client receives as `connect_error`.
    pub fn use_middleware(
        &mut self,
        ns: &str,
        f: impl FnMut(&Handshake) -> Result<(), String> + 'static,
    ) {
        self.namespaces
            .entry(ns.to_string())
            .or_default()
            .middleware
            .push(Box::new(f));
    }

    /// Adds a connection handler to namespace `ns`: it gets each new socket's id, and
    /// usually registers the socket's listeners.
    pub fn on_connection(&mut self, ns: &str, f: impl FnMut(&mut Io, &str) + 'static) {
        self.namespaces
            .entry(ns.to_string())
            .or_default()
            .on_connection
            .push(Box::new(f));
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

    // ---- emitting ------------------------------------------------------------------

    fn check_attachments(&self, n: usize) -> Result<(), EmitError> {
        super::check_attachments(n, &self.config.limits)
    }

    fn check_name(&self, name: &str) -> Result<(), EmitError> {
        super::check_name(name, &self.config.limits)
    }

    /// Encodes `p` into the arena; returns its range, or an error if it is over the frame
    /// limit (then nothing stays in the arena).
    fn encode(&mut self, p: &Packet) -> Result<(usize, usize), EmitError> {
        let (start, end) = super::encode_limited(p, &mut self.arena, &self.config.limits)?;
        self.stats.bytes_encoded += (end - start) as u64;
        Ok((start, end))
    }

    /// Queues the close of `conn` for the loop (after flushing its output, if `flush`).
    fn close_later(&mut self, conn: ConnId, flush: bool) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.closing = true;
        }
        self.out.push(Out::Close { conn, flush });
    }

    /// The socket connection `conn` has in namespace `ns`, if any.
    fn sid_of(&self, conn: ConnId, ns: &str) -> Option<String> {
        self.conns.get(&conn)?.sockets.get(ns).cloned()
    }

    fn queue(&mut self, conn: ConnId, range: (usize, usize), volatile: bool) {
        self.out.push(Out::Send {
            conn,
            start: range.0,
            end: range.1,
            volatile,
        });
    }

    /// Remembers that broadcast `offset` was queued to `conn` (see `Parked::last_sent`).
    fn note_sent(&mut self, conn: ConnId, offset: u64) {
        if let Some(last) = self.last_sent.get_mut(conn.slot()) {
            *last = (*last).max(offset);
        }
    }

    /// Encodes `p` and queues it for `conn`; returns where its bytes are (`None` if it was
    /// over the frame limit, which the protocol's own packets never are).
    fn queue_packet(&mut self, conn: ConnId, p: &Packet) -> Option<(usize, usize)> {
        let range = self.encode(p).ok()?;
        self.queue(conn, range, false);
        Some(range)
    }

    /// Emits `event` with JSON `args` to socket `sid`.
    pub fn emit(&mut self, sid: &str, event: &str, args: Vec<Value>) -> Result<(), EmitError> {
        self.send(sid, Emit::new(event).args(args))
    }

    /// Emits an [`Emit`] (attachments, ack, volatile) to socket `sid`.
    pub fn send(&mut self, sid: &str, emit: Emit) -> Result<(), EmitError> {
        self.check_name(&emit.name)?;
        self.check_attachments(emit.attachments.len())?;
        let Some(s) = self.sockets.get_mut(sid) else {
            return Err(EmitError::NoSuchSocket(sid.to_string()));
        };
        let (conn, ns) = (s.conn, s.namespace.clone());
        let id = emit.ack.as_ref().map(|_| {
            s.next_ack = s.next_ack.wrapping_add(1);
            s.next_ack
        });
        let p = Packet::Event {
            ns,
            name: emit.name,
            args: emit.args,
            attachments: emit.attachments,
            id,
        };
        let range = self.encode(&p)?;
        if let (Some(id), Some((timeout, cb))) = (id, emit.ack) {
            if let Some(s) = self.sockets.get_mut(sid) {
                s.acks.insert(id, cb);
            }
            self.out.push(Out::Timer(
                timeout,
                ServerTimer::AckTimeout {
                    sid: sid.to_string(),
                    id,
                },
            ));
        }
        self.stats.events_out += 1;
        self.queue(conn, range, emit.volatile);
        Ok(())
    }

    /// Answers an event that asked for an ack (does nothing if it did not).
    pub fn ack(&mut self, event: &Event, args: Vec<Value>) {
        self.ack_with(event, args, Vec::new());
    }

    /// [`ack`](Io::ack) with binary attachments.
    pub fn ack_with(&mut self, event: &Event, args: Vec<Value>, attachments: Vec<Vec<u8>>) {
        let Some(id) = event.ack else { return };
        if self.check_attachments(attachments.len()).is_err() {
            return;
        }
        let Some(s) = self.sockets.get(&event.socket) else {
            self.ack_parked(event, id, args, attachments);
            return;
        };
        let (conn, ns) = (s.conn, s.namespace.clone());
        let p = Packet::Ack {
            ns,
            id,
            args,
            attachments,
        };
        if let Some(range) = self.queue_packet(conn, &p) {
            // Remember the answer: a retry of this event gets it again, not a second run.
            let frame = self.arena[range.0..range.1].to_vec();
            if let Some(s) = self.sockets.get_mut(&event.socket) {
                s.session.keep_answer(id, frame);
            }
        }
    }

    /// The socket answered is away (its connection dropped; the session is kept): keep the
    /// answer in its session, so the client's retry after reconnecting gets it.
    fn ack_parked(&mut self, event: &Event, id: u32, args: Vec<Value>, attachments: Vec<Vec<u8>>) {
        let Some(parked) = self.parked.values_mut().find(|p| p.sid == event.socket) else {
            return;
        };
        let p = Packet::Ack {
            ns: parked.namespace.clone(),
            id,
            args,
            attachments,
        };
        parked.session.keep_answer(id, packet::encode_to_vec(&p));
    }

    /// A broadcast to namespace `ns`: choose recipients with `to`/`except`, then `emit`.
    pub fn broadcast(&mut self, ns: &str) -> Broadcast<'_> {
        Broadcast {
            io: self,
            ns: ns.to_string(),
            to: Vec::new(),
            except_rooms: Vec::new(),
            except_sockets: Vec::new(),
            volatile: false,
        }
    }

    /// A broadcast to everyone in `sid`'s namespace but `sid` (Socket.IO's
    /// `socket.broadcast`).
    pub fn broadcast_from(&mut self, sid: &str) -> Broadcast<'_> {
        let ns = self
            .sockets
            .get(sid)
            .map(|s| s.namespace.clone())
            .unwrap_or_else(|| packet::DEFAULT_NAMESPACE.to_string());
        let mut b = self.broadcast(&ns);
        b.except_sockets.push(sid.to_string());
        b
    }

    // ---- rooms ---------------------------------------------------------------------

    /// Puts socket `sid` in `room` (of its namespace).
    ///
    /// Every socket is always in the room named after its id. That room is not stored: a
    /// table of one member per socket would cost each idle connection about 580 bytes
    /// (`make bench`), so it is answered from the table of sockets instead.
    pub fn join(&mut self, sid: &str, room: &str) {
        let Some(s) = self.sockets.get_mut(sid).filter(|_| room != sid) else {
            return;
        };
        s.session
            .joined
            .entry(room.to_string())
            .or_insert(self.replay.last_offset());
        self.rooms
            .entry(s.namespace.clone())
            .or_default()
            .entry(room.to_string())
            .or_default()
            .insert(sid.to_string());
    }

    /// Takes socket `sid` out of `room`. A socket does not leave its own room (`sid`).
    pub fn leave(&mut self, sid: &str, room: &str) {
        let Some(s) = self.sockets.get_mut(sid).filter(|_| room != sid) else {
            return;
        };
        s.session.joined.remove(room);
        let ns = s.namespace.clone();
        self.drop_member(&ns, room, sid);
    }

    /// Takes `sid` out of the members of `room` in namespace `ns`; an empty room goes.
    fn drop_member(&mut self, ns: &str, room: &str, sid: &str) {
        if let Some(rooms) = self.rooms.get_mut(ns) {
            if let Some(members) = rooms.get_mut(room) {
                members.remove(sid);
                if members.is_empty() {
                    rooms.remove(room);
                }
            }
        }
    }

    /// Whether socket `sid` is in `room` (its own room included).
    pub fn in_room(&self, sid: &str, room: &str) -> bool {
        self.sockets
            .get(sid)
            .is_some_and(|s| room == sid || s.session.joined.contains_key(room))
    }

    /// The rooms socket `sid` is in (its own id among them), sorted.
    pub fn rooms_of(&self, sid: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .sockets
            .get(sid)
            .map(|s| {
                let joined = s.session.joined.keys().cloned();
                joined.chain([sid.to_string()]).collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The sockets in `room` of namespace `ns`, sorted.
    pub fn sockets_in(&self, ns: &str, room: &str) -> Vec<String> {
        let mut v: Vec<String> = self.members(ns, room).cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    /// The sockets in `room` of namespace `ns`: those that joined it, then the socket whose
    /// own room it is, if any. A socket may come twice (when a room named after a socket's
    /// id was also joined explicitly), so callers collect into a set or dedup.
    fn members<'a>(&'a self, ns: &'a str, room: &'a str) -> impl Iterator<Item = &'a String> {
        let joined = self.rooms.get(ns).and_then(|r| r.get(room));
        let owner = self
            .sockets
            .get_key_value(room)
            .filter(|(_, s)| s.namespace == ns)
            .map(|(id, _)| id);
        joined.into_iter().flatten().chain(owner)
    }

    /// Every socket of namespace `ns`, sorted.
    pub fn sockets(&self, ns: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.namespace == ns)
            .map(|(id, _)| id.clone())
            .collect();
        v.sort();
        v
    }

    pub fn handshake(&self, sid: &str) -> Option<&Handshake> {
        self.sockets.get(sid).map(|s| &s.handshake)
    }

    pub fn is_connected(&self, sid: &str) -> bool {
        self.sockets.contains_key(sid)
    }

    // ---- disconnecting -------------------------------------------------------------

    /// Disconnects socket `sid` from its namespace (reason `server namespace disconnect`;
    /// the client sees `io server disconnect` and does not reconnect). The connection closes
    /// when it has no namespace left.
    pub fn disconnect(&mut self, sid: &str) {
        if let Some(conn) = self.say_goodbye(sid, reasons::SERVER_NAMESPACE_DISCONNECT) {
            self.close_if_unused(conn, true);
        }
    }

    // ANCHOR: say_goodbye
    /// Sends socket `sid` a DISCONNECT with `reason` and removes it; returns its connection.
    fn say_goodbye(&mut self, sid: &str, reason: &str) -> Option<ConnId> {
        let s = self.sockets.get(sid)?;
        let (conn, ns) = (s.conn, s.namespace.clone());
        let p = Packet::Disconnect {
            ns,
            reason: Some(reason.into()),
        };
        self.queue_packet(conn, &p);
        self.remove_socket(sid, reason);
        Some(conn)
    }
    // ANCHOR_END: say_goodbye

    /// Closes `conn` (after flushing, if `flush`) once no namespace is left on it.
    fn close_if_unused(&mut self, conn: ConnId, flush: bool) {
        if self.conns.get(&conn).is_some_and(|c| c.sockets.is_empty()) {
            self.close_later(conn, flush);
        }
    }

    /// Begins the server's graceful stop from a handler (as SIGTERM would).
    pub fn stop(&mut self) {
        self.out.push(Out::Stop);
    }

    /// Drops the oldest parked session, or with `expired_at`, the oldest only if it expired
    /// by then. Returns its private id, or `None` when there was none to drop.
    fn unpark_oldest(&mut self, expired_at: Option<Instant>) -> Option<String> {
        while let Some((expires, pid)) = self.parked_order.front() {
            if expired_at.is_some_and(|now| *expires > now) {
                return None;
            }
            let (expires, pid) = (*expires, pid.clone());
            self.parked_order.pop_front();
            // Skip an entry whose session was restored, or parked again later.
            if self.parked.get(&pid).is_some_and(|p| p.expires == expires) {
                self.parked.remove(&pid);
                return Some(pid);
            }
        }
        None
    }

    /// Removes a socket: `disconnecting` (still in its rooms), leave all rooms, pending
    /// acks fail, `disconnect`.
    fn remove_socket(&mut self, sid: &str, reason: &str) {
        if !self.sockets.contains_key(sid) {
            return;
        }
        let ev = |name: &str| Event {
            socket: sid.to_string(),
            name: name.to_string(),
            args: vec![json!(reason)],
            attachments: Vec::new(),
            ack: None,
        };
        // A panic in a `disconnecting` listener is recorded; the socket is going anyway.
        let event = ev("disconnecting");
        if let Err(p) = self.dispatch(&event) {
            self.callback_panicked("\"disconnecting\" listener", None, &p);
        }
        self.everyone = None;
        let Some(mut s) = self.sockets.remove(sid) else {
            return;
        };
        self.live_pids.remove(&s.session.pid);
        for room in s.session.joined.keys() {
            self.drop_member(&s.namespace, room, sid);
        }
        // Kept for the client's return, unless someone ended the socket on purpose.
        if reasons::session_kept(reason) && !s.session.pid.is_empty() {
            let parked = Parked {
                sid: sid.to_string(),
                namespace: s.namespace.clone(),
                session: std::mem::take(&mut s.session),
                expires: Instant::now() + self.config.max_disconnection_duration,
                last_sent: self.last_sent.get(s.conn.slot()).copied().unwrap_or(0),
                left_at: self.replay.last_offset(),
            };
            // Bounded by count as well as by time: the oldest goes first.
            while self.parked.len() >= self.config.max_parked_sessions.max(1) {
                if self.unpark_oldest(None).is_none() {
                    break;
                }
            }
            let pid = parked.session.pid.clone();
            self.parked_order.push_back((parked.expires, pid.clone()));
            self.parked.insert(pid, parked);
        }
        if let Some(c) = self.conns.get_mut(&s.conn) {
            c.sockets.remove(&s.namespace);
        }
        // Every pending ack fails; each callback runs, whatever the one before it did.
        for (_, cb) in s.acks.drain() {
            if let Err(p) = guard::call(|| cb(self, Err(AckError::Disconnected))) {
                self.callback_panicked("ack (disconnected)", None, &p);
            }
        }
        // The socket is gone from the table; its `disconnect` listeners run from here.
        let event = ev("disconnect");
        for p in s.listeners.call_detached(self, &event) {
            self.callback_panicked("\"disconnect\" listener", None, &p);
        }
    }

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
            io.sockets.get_mut(&event.socket).map(|s| &mut s.listeners)
        })
    }

    /// Ends connection `conn`: every socket on it is removed with `reason`, then the loop
    /// closes it (after flushing, if `flush`).
    fn close_conn(&mut self, conn: ConnId, reason: &str, flush: bool) {
        self.remove_conn_sockets(conn, reason);
        if self.conns.contains_key(&conn) {
            self.close_later(conn, flush);
        }
    }

    // ---- the protocol, from the loop's side ----------------------------------------

    fn accepted(&mut self, conn: ConnId, peer: SocketAddr) {
        // Slots are reused: a new connection has been sent nothing yet.
        let slot = conn.slot();
        if self.last_sent.len() <= slot {
            self.last_sent.resize(slot + 1, 0);
        }
        self.last_sent[slot] = 0;
        self.conns.insert(
            conn,
            ConnState {
                peer,
                hello: false,
                sockets: NsSockets::default(),
                pings: 0,
                awaiting_pong: false,
                closing: false,
            },
        );
        let hello = Packet::hello(json!({
            "pingInterval": self.config.ping_interval.as_millis() as u64,
            "pingTimeout": self.config.ping_timeout.as_millis() as u64,
            "maxPayload": self.config.limits.max_frame,
        }));
        self.queue_packet(conn, &hello);
        self.out.push(Out::Timer(
            self.config.handshake_timeout,
            ServerTimer::Handshake(conn),
        ));
        self.out.push(Out::Timer(
            self.config.ping_interval,
            ServerTimer::Ping(conn),
        ));
    }

    fn refuse(&mut self, conn: ConnId, ns: &str, message: &str) {
        self.stats.connects_refused += 1;
        let p = Packet::ConnectError {
            ns: ns.to_string(),
            message: message.to_string(),
        };
        self.queue_packet(conn, &p);
    }

    fn protocol_error(&mut self, conn: ConnId) {
        self.stats.parse_errors += 1;
        self.close_conn(conn, reasons::PARSE_ERROR, true);
    }

    fn on_packet(&mut self, conn: ConnId, p: Packet) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.hello {
            // The first packet must be the client's HELLO (checked for magic and version
            // by the decoder).
            if matches!(p, Packet::Hello { .. }) {
                c.hello = true;
            } else {
                self.protocol_error(conn);
            }
            return;
        }
        match p {
            Packet::Connect { ns, data } => self.on_connect(conn, ns, data),
            Packet::Event {
                ns,
                name,
                args,
                attachments,
                id,
            } => {
                let Some(sid) = self.sid_of(conn, &ns) else {
                    return; // not connected to that namespace: ignored, as Socket.IO does
                };
                if RESERVED_EVENTS.contains(&name.as_str()) {
                    return;
                }
                if let Some(ack) = id {
                    // A retry after a reconnect: answer it again, do not handle it twice.
                    let Some(s) = self.sockets.get_mut(&sid) else {
                        return;
                    };
                    if let Some(done) = s.session.handled(ack) {
                        if let Some(frame) = done {
                            push_frame(&mut self.arena, &mut self.out, conn, frame);
                        }
                        self.stats.duplicates_dropped += 1;
                        return;
                    }
                    s.session.note_handled(ack);
                }
                self.stats.events_in += 1;
                let event = Event {
                    socket: sid,
                    name,
                    args,
                    attachments,
                    ack: id,
                };
                self.dispatch_guarded(&event);
            }
            Packet::Ack {
                ns,
                id,
                args,
                attachments,
            } => {
                let Some(sid) = self.sid_of(conn, &ns) else {
                    return;
                };
                // An ack for an id never sent (or already timed out) is ignored.
                let cb = self.sockets.get_mut(&sid).and_then(|s| s.acks.remove(&id));
                if let Some(cb) = cb {
                    let reply = AckReply { args, attachments };
                    if let Err(p) = guard::call(|| cb(self, Ok(reply))) {
                        self.callback_panicked("ack", Some(&sid), &p);
                    }
                }
            }
            Packet::Disconnect { ns, .. } => {
                let sid = self.sid_of(conn, &ns);
                if let Some(sid) = sid {
                    self.remove_socket(&sid, reasons::CLIENT_NAMESPACE_DISCONNECT);
                }
                self.close_if_unused(conn, true);
            }
            Packet::Pong => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    if c.awaiting_pong {
                        c.awaiting_pong = false;
                        let next = self.config.ping_interval;
                        self.out.push(Out::Timer(next, ServerTimer::Ping(conn)));
                    }
                }
            }
            Packet::Ping => {}
            Packet::Hello { .. } | Packet::ConnectError { .. } => self.protocol_error(conn),
        }
    }

    fn on_connect(&mut self, conn: ConnId, ns: String, data: Option<Value>) {
        // The client's session to restore, if it names one; the rest is its auth payload.
        let (auth, pid, offset) = split_connect_data(data);
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.sockets.contains_key(&ns) {
            return; // already connected to it
        }
        let peer = c.peer;
        let Some(mut namespace) = self.namespaces.remove(&ns) else {
            self.refuse(conn, &ns, "Invalid namespace");
            return;
        };
        let handshake = Handshake {
            auth,
            peer,
            namespace: ns.clone(),
        };
        let verdict = guard::call(|| {
            namespace
                .middleware
                .iter_mut()
                .try_for_each(|mw| mw(&handshake))
        })
        .unwrap_or_else(|p| {
            // The client is refused with `server error`; no socket exists yet.
            self.callback_panicked("middleware", None, &p);
            Err("server error".to_string())
        });
        if let Err(message) = verdict {
            self.namespaces.insert(ns.clone(), namespace);
            self.refuse(conn, &ns, &message);
            return;
        }
        let now = Instant::now();
        while self.unpark_oldest(Some(now)).is_some() {}
        // ANCHOR: replaced
        // The `pid` is a secret that only the client it was given to holds (120 random
        // bits), so a CONNECT naming the session of a socket that still looks alive is that
        // client on a new connection, back before this side noticed that the old one died (a
        // half-open connection). The new connection takes the session over: the old socket
        // is told why (if it can still hear it) and is parked, to be restored just below.
        let live = pid.as_ref().and_then(|p| {
            let conn = *self.live_pids.get(p)?;
            let sid = self.conns.get(&conn)?.sockets.get(&ns)?;
            let s = self.sockets.get(sid)?;
            (&s.session.pid == p).then(|| (sid.clone(), conn))
        });
        if let Some((old_sid, old_conn)) = live {
            self.stats.sessions_replaced += 1;
            self.say_goodbye(&old_sid, reasons::SESSION_REPLACED);
            self.close_if_unused(old_conn, true);
        }
        // ANCHOR_END: replaced
        let restored = pid
            .filter(|p| {
                self.parked
                    .get(p)
                    .is_some_and(|k| k.namespace == ns && !self.sockets.contains_key(&k.sid))
            })
            .and_then(|p| self.parked.remove(&p))
            .filter(|p| self.replay.complete(offset, p.last_sent, p.left_at));
        let recovered = restored.is_some();
        let last_sent = restored.as_ref().map_or(0, |p| p.last_sent);
        let (sid, session) = match restored {
            Some(p) => (p.sid, p.session),
            None => {
                let ids = self.ids.next_id().zip(self.ids.next_id());
                let Some((pid, sid)) = ids else {
                    // No id without the operating system's generator: refuse rather than
                    // hand out a guessable one.
                    self.namespaces.insert(ns.clone(), namespace);
                    self.refuse(conn, &ns, "server error");
                    return;
                };
                (sid, Session::new(pid))
            }
        };
        // A restored session is back in its rooms, with the offsets it joined them at.
        let rooms: Vec<String> = session.joined.keys().cloned().collect();
        let pid = session.pid.clone();
        self.everyone = None;
        self.live_pids.insert(pid.clone(), conn);
        self.sockets.insert(
            sid.clone(),
            Box::new(SocketState {
                conn,
                namespace: ns.clone(),
                listeners: Listeners::default(),
                acks: HashMap::new(),
                next_ack: 0,
                handshake,
                session,
            }),
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.sockets.insert(ns.clone(), sid.clone());
        }
        for room in &rooms {
            self.join(&sid, room);
        }
        let reply = Packet::Connect {
            ns: ns.clone(),
            // `offset`: the last broadcast so far; a new session starts counting from it.
            data: Some(json!({
                "sid": sid,
                "pid": pid,
                "recovered": recovered,
                "offset": self.replay.last_offset(),
            })),
        };
        self.queue_packet(conn, &reply);
        if recovered {
            // The broadcasts this socket missed while away, in order, after its offset.
            self.stats.sessions_recovered += 1;
            // What it was sent before is owed again until its client says it saw it.
            let mut last = last_sent;
            if let Some(s) = self.sockets.get(&sid) {
                for (o, frame) in self.replay.missed(&ns, &sid, &s.session.joined, offset) {
                    self.stats.broadcasts_replayed += 1;
                    push_frame(&mut self.arena, &mut self.out, conn, frame);
                    last = last.max(o);
                }
            }
            self.note_sent(conn, last);
        }
        // Run the connection handlers; handlers added meanwhile are kept.
        let mut handlers = std::mem::take(&mut namespace.on_connection);
        self.namespaces.insert(ns.clone(), namespace);
        for h in handlers.iter_mut() {
            if let Err(p) = guard::call(|| h(self, &sid)) {
                self.callback_panicked("connection handler", Some(&sid), &p);
                break;
            }
        }
        if let Some(n) = self.namespaces.get_mut(&ns) {
            handlers.append(&mut n.on_connection);
            n.on_connection = handlers;
        }
    }

    fn loop_closed(&mut self, conn: ConnId, reason: &CloseReason) {
        let why = match reason {
            CloseReason::PeerClosed => reasons::TRANSPORT_CLOSE,
            CloseReason::Error(_) => reasons::TRANSPORT_ERROR,
            CloseReason::InputOverflow => reasons::PARSE_ERROR,
            CloseReason::Truncated { .. } => {
                self.stats.parse_errors += 1; // end of file inside a frame (section 2)
                reasons::PARSE_ERROR
            }
            CloseReason::Stopped => reasons::SERVER_SHUTTING_DOWN,
            CloseReason::Local => reasons::FORCED_CLOSE,
        };
        self.remove_conn_sockets(conn, why);
        self.conns.remove(&conn);
    }

    /// Removes every socket of connection `conn`, with `reason`.
    fn remove_conn_sockets(&mut self, conn: ConnId, reason: &str) {
        let sids: Vec<String> = self
            .conns
            .get(&conn)
            .map(|c| c.sockets.values().cloned().collect())
            .unwrap_or_default();
        for sid in sids {
            self.remove_socket(&sid, reason);
        }
    }

    fn timer(&mut self, t: ServerTimer) {
        match t {
            // Still no namespace joined: the handshake timed out.
            ServerTimer::Handshake(conn) => self.close_if_unused(conn, false),
            // ANCHOR: heartbeat
            ServerTimer::Ping(conn) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.pings += 1;
                c.awaiting_pong = true;
                let seq = c.pings;
                self.queue_packet(conn, &Packet::Ping);
                let due = self.config.ping_timeout;
                self.out
                    .push(Out::Timer(due, ServerTimer::PongDue(conn, seq)));
            }
            ServerTimer::PongDue(conn, seq) => {
                let late = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.awaiting_pong && c.pings == seq);
                if late {
                    self.close_conn(conn, reasons::PING_TIMEOUT, false);
                }
            }
            // ANCHOR_END: heartbeat
            ServerTimer::AckTimeout { sid, id } => {
                let cb = self.sockets.get_mut(&sid).and_then(|s| s.acks.remove(&id));
                if let Some(cb) = cb {
                    if let Err(p) = guard::call(|| cb(self, Err(AckError::Timeout))) {
                        self.callback_panicked("ack (timeout)", Some(&sid), &p);
                    }
                }
            }
        }
    }

    // ANCHOR: shutting_down
    fn shutting_down(&mut self) {
        let sids: Vec<String> = self.sockets.keys().cloned().collect();
        for sid in sids {
            self.say_goodbye(&sid, reasons::SERVER_SHUTTING_DOWN);
        }
    }
    // ANCHOR_END: shutting_down

    /// Hands the outbox to the loop. A send refused because a connection's outbound buffer
    /// is full disconnects that connection (reason `outbound buffer full`); volatile sends to
    /// a backed-up connection are dropped instead.
    pub(crate) fn flush(&mut self, ctx: &mut Ctx<ServerTimer>) {
        for _ in 0..4 {
            if self.out.is_empty() {
                break;
            }
            let mut out = std::mem::take(&mut self.out);
            let mut full = Vec::new();
            for o in out.drain(..) {
                match o {
                    Out::Send {
                        conn,
                        start,
                        end,
                        volatile,
                    } => {
                        if volatile && ctx.backed_up(conn) {
                            self.stats.volatile_dropped += 1;
                            continue;
                        }
                        if let Err(p) = guard::tap(&mut self.tap, &self.arena[start..end]) {
                            self.callback_panicked("tap", None, &p);
                        }
                        if let Err(SendError::Full { .. }) = ctx.send(conn, &self.arena[start..end])
                        {
                            full.push(conn);
                        }
                    }
                    Out::Close { conn, flush } => {
                        if flush {
                            ctx.close(conn)
                        } else {
                            ctx.abort(conn)
                        }
                    }
                    Out::Timer(after, t) => {
                        ctx.set_timer(after, t);
                    }
                    Out::Stop => ctx.stop(),
                }
            }
            self.out = out; // keep the allocation
            self.arena.clear();
            full.dedup();
            for conn in full {
                self.close_conn(conn, reasons::OUTBOUND_FULL, false);
            }
        }
        // Once nothing waits, every byte encoded has been handed over. The arena is emptied
        // here too, not only after a round that sent something: a broadcast to an empty
        // room queues nothing, and its frame stayed, so a server broadcasting to nobody
        // grew without end (90 MB after 100 broadcasts of 900 kB). A frame of a megabyte
        // also leaves the arena that large: what is over the usual size is given back.
        if self.out.is_empty() {
            self.arena.clear();
            self.arena.shrink_to(ARENA_KEEP);
        }
    }
}

/// The arena's capacity kept between flushes: room for a burst of ordinary frames.
const ARENA_KEEP: usize = 256 << 10;

/// Queues a copy of an already encoded `frame` for `conn` (a replay, a repeated answer).
/// A free function so that callers can borrow the frame from elsewhere in `Io`.
fn push_frame(arena: &mut Vec<u8>, out: &mut Vec<Out>, conn: ConnId, frame: &[u8]) {
    let start = arena.len();
    arena.extend_from_slice(frame);
    out.push(Out::Send {
        conn,
        start,
        end: arena.len(),
        volatile: false,
    });
}

/// Splits a CONNECT payload into the auth the application sees and the session fields
/// (`pid`, `offset`) the protocol uses.
fn split_connect_data(data: Option<Value>) -> (Option<Value>, Option<String>, u64) {
    let Some(Value::Object(mut obj)) = data else {
        return (data, None, 0);
    };
    let pid = obj
        .remove("pid")
        .and_then(|v| v.as_str().map(str::to_string));
    let offset = obj.remove("offset").and_then(|v| v.as_u64()).unwrap_or(0);
    let auth = (!obj.is_empty()).then_some(Value::Object(obj));
    (auth, pid, offset)
}

/// A broadcast being put together: `io.broadcast("/").to("room").except("x").emit(...)`.
pub struct Broadcast<'a> {
    io: &'a mut Io,
    ns: String,
    to: Vec<String>,
    except_rooms: Vec<String>,
    except_sockets: Vec<String>,
    volatile: bool,
}

impl Broadcast<'_> {
    /// Only sockets in `room` (several `to`s: the union, each socket once).
    pub fn to(mut self, room: &str) -> Self {
        self.to.push(room.to_string());
        self
    }

    /// Not the sockets in `room`.
    pub fn except(mut self, room: &str) -> Self {
        self.except_rooms.push(room.to_string());
        self
    }

    /// Not socket `sid`.
    pub fn except_socket(mut self, sid: &str) -> Self {
        self.except_sockets.push(sid.to_string());
        self
    }

    /// Drop the event for sockets whose output is backed up.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// The recipients' ids, sorted, each with its socket's connection (borrowed, not
    /// cloned: a broadcast to a thousand sockets would otherwise copy a thousand ids).
    fn chosen(&self) -> Vec<(&String, Option<ConnId>)> {
        let io = &*self.io;
        let ns = self.ns.as_str();
        let excluded: HashSet<&String> = self
            .except_rooms
            .iter()
            .flat_map(|room| io.members(ns, room))
            .chain(self.except_sockets.iter())
            .collect();
        let mut chosen: Vec<(&String, Option<ConnId>)> = if self.to.is_empty() {
            io.sockets
                .iter()
                .filter(|(_, s)| s.namespace == self.ns)
                .filter(|(id, _)| !excluded.contains(id))
                .map(|(id, s)| (id, Some(s.conn)))
                .collect()
        } else {
            let set: HashSet<&String> = self
                .to
                .iter()
                .flat_map(|room| io.members(ns, room))
                .filter(|id| !excluded.contains(id))
                .collect();
            set.into_iter()
                .map(|id| (id, io.sockets.get(id).map(|s| s.conn)))
                .collect()
        };
        // Ids are unique, so an unstable sort gives the one order there is.
        chosen.sort_unstable_by(|a, b| a.0.cmp(b.0));
        chosen
    }

    /// The recipients' connections in the order of [`chosen`](Broadcast::chosen),
    /// and how many recipients there are. A broadcast to a whole namespace takes the list
    /// kept from the one before, if no socket came or went since, and says which namespace
    /// to keep the list for.
    fn recipient_conns(&mut self) -> (Vec<ConnId>, usize, Option<String>) {
        let whole =
            self.to.is_empty() && self.except_rooms.is_empty() && self.except_sockets.is_empty();
        if whole {
            if let Some(e) = self.io.everyone.take().filter(|e| e.ns == self.ns) {
                let n = e.conns.len();
                return (e.conns, n, Some(e.ns));
            }
        }
        let chosen = self.chosen();
        let n = chosen.len();
        let conns = chosen.into_iter().filter_map(|(_, conn)| conn).collect();
        (conns, n, whole.then(|| self.ns.clone()))
    }

    /// Emits to every recipient: encoded once, the same bytes queued to each. Returns how
    /// many sockets it was queued to.
    pub fn emit(self, event: &str, args: Vec<Value>) -> Result<usize, EmitError> {
        self.emit_with(event, args, Vec::new())
    }

    // ANCHOR: broadcast_emit
    /// [`emit`](Broadcast::emit) with binary attachments.
    pub fn emit_with(
        mut self,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
    ) -> Result<usize, EmitError> {
        self.io.check_name(event)?;
        self.io.check_attachments(attachments.len())?;
        let (recipients, count, keep) = self.recipient_conns();
        let io = self.io;
        // Every broadcast carries its offset, as a last extra argument the client takes
        // off, so that a client coming back can say what it saw last.
        // Volatile broadcasts are never replayed, so they take no offset.
        let mut args = args;
        let offset = (!self.volatile).then(|| io.replay.last_offset() + 1);
        if let Some(offset) = offset {
            args.push(json!({ super::client::OFFSET_KEY: offset }));
        }
        let p = Packet::Event {
            ns: self.ns.clone(),
            name: event.to_string(),
            args,
            attachments,
            id: None,
        };
        let range = io.encode(&p)?;
        io.stats.broadcasts += 1;
        if let Some(offset) = offset {
            // Taken only now that the broadcast is sure to go out, and kept for sessions
            // that may come back (bounded by age, count and bytes).
            let entry = replay::Entry {
                namespace: &self.ns,
                to: &self.to,
                except_rooms: &self.except_rooms,
                except_sockets: &self.except_sockets,
                frame: &io.arena[range.0..range.1],
            };
            let bounds = replay::Bounds {
                max_age: io.config.max_disconnection_duration,
                max_entries: io.config.replay_limit,
                max_bytes: io.config.replay_max_bytes,
            };
            io.replay.push(offset, entry, bounds, Instant::now());
        }
        for &conn in &recipients {
            io.stats.events_out += 1;
            if let Some(offset) = offset {
                io.note_sent(conn, offset);
            }
            io.queue(conn, range, self.volatile);
        }
        if let Some(ns) = keep {
            io.everyone = Some(Everyone {
                ns,
                conns: recipients,
            });
        }
        Ok(count)
    }
    // ANCHOR_END: broadcast_emit
}

/// The server as an event loop handler.
pub struct ServerCore {
    pub(crate) io: Io,
}

/// Work for the loop thread from other threads (see [`super::ServerHandle`]).
pub type ServerMsg = Box<dyn FnOnce(&mut Io) + Send>;

impl event_loop::Handler for ServerCore {
    type Timer = ServerTimer;
    type Message = ServerMsg;

    fn accepted(&mut self, ctx: &mut Ctx<ServerTimer>, id: ConnId, peer: SocketAddr) {
        self.io.accepted(id, peer);
        self.io.flush(ctx);
    }

    fn data(&mut self, ctx: &mut Ctx<ServerTimer>, conn: ConnId, bytes: &[u8]) -> usize {
        let limits = self.io.config.limits;
        let io = &mut self.io;
        let mut bad = false;
        // Stop after a packet that closed the connection: what follows it is not handled.
        let used = packet::decode_stream(bytes, &limits, |res| match res {
            Ok(p) => {
                io.on_packet(conn, p);
                io.conns.get(&conn).is_some_and(|c| !c.closing)
            }
            Err(_) => {
                bad = true;
                false
            }
        });
        if bad {
            io.protocol_error(conn);
            io.flush(ctx);
            return bytes.len();
        }
        io.flush(ctx);
        used
    }

    fn closed(&mut self, ctx: &mut Ctx<ServerTimer>, id: ConnId, reason: CloseReason) {
        self.io.loop_closed(id, &reason);
        self.io.flush(ctx);
    }

    fn timer(&mut self, ctx: &mut Ctx<ServerTimer>, _: event_loop::TimerId, t: ServerTimer) {
        self.io.timer(t);
        self.io.flush(ctx);
    }

    fn message(&mut self, ctx: &mut Ctx<ServerTimer>, msg: ServerMsg) {
        let io = &mut self.io;
        if let Err(p) = guard::call(|| msg(io)) {
            self.io
                .callback_panicked("ServerHandle::run closure", None, &p);
        }
        self.io.flush(ctx);
    }

    fn stopping(&mut self, ctx: &mut Ctx<ServerTimer>) {
        self.io.shutting_down();
        self.io.flush(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broadcasts to a room nobody is in queue nothing; their frames must not stay in the
    /// arena (they did, and 100 of 900 kB kept 90 MB until something else was sent).
    #[test]
    fn broadcasts_to_nobody_leave_nothing_in_the_arena() {
        let mut server = super::super::Server::new(ServerConfig::default()).expect("a server");
        let big = "x".repeat(900_000);
        for _ in 0..10 {
            let b = server.io().broadcast("/").to("nobody");
            assert_eq!(b.emit("big", vec![json!(big)]), Ok(0));
            server.turn(Some(Duration::ZERO)).expect("a turn");
        }
        let io = server.io();
        assert_eq!(io.arena.len(), 0);
        assert!(io.arena.capacity() <= ARENA_KEEP, "{}", io.arena.capacity());
        assert!(io.stats().replay_bytes >= 9_000_000, "all ten are logged");
    }
}
