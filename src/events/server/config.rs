//! The server's settings, what middleware sees of a connecting client, and the counters.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::event_loop;
use crate::wire::packet::Limits;

/// Settings of an event server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub limits: Limits,
    /// How long a new connection may take to join its first namespace (default 45 s, like
    /// Socket.IO's `connectTimeout`): a Socket.IO client's HTTP upgrade request counts in
    /// it, so a head that never ends is closed by then too.
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
    /// Origins whose pages may poll this server from another origin (CORS, as Socket.IO's
    /// `cors.origin`): their long-polling answers carry `Access-Control-Allow-Origin` and
    /// a preflight is answered. Empty by default: only pages of the server's own origin;
    /// `"*"` allows any. A WebSocket is not held back by CORS.
    pub cors_origins: Vec<String>,
    /// How long a WebSocket that upgrades a long-polling session may take from its `101`
    /// to the client's `5` (default 10 s, Engine.IO's `upgradeTimeout`); after it the
    /// WebSocket is dropped and the session stays on polling.
    pub upgrade_timeout: Duration,
    /// Most long-polling sessions at once (default 10,000). A session holds no descriptor
    /// while no GET is held, so `max_connections` does not bound them: this does. A handshake
    /// past it is answered `503`, and the client tries again later.
    pub max_polling_sessions: usize,
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
            cors_origins: Vec::new(),
            upgrade_timeout: Duration::from_secs(10),
            max_polling_sessions: 10_000,
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

/// Why middleware refused a client: the message, and details for the client. A string
/// converts into one, so middleware may return `Err("...")`.
///
/// A Socket.IO client sees both (`err.message`, `err.data`); socklab's CONNECT_ERROR
/// carries the message only.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub message: String,
    pub data: Option<Value>,
}

impl Refused {
    /// A refusal with details.
    pub fn with_data(message: impl Into<String>, data: Value) -> Refused {
        Refused {
            message: message.into(),
            data: Some(data),
        }
    }
}

impl From<String> for Refused {
    fn from(message: String) -> Refused {
        Refused {
            message,
            data: None,
        }
    }
}

impl From<&str> for Refused {
    fn from(message: &str) -> Refused {
        Refused::from(message.to_string())
    }
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
    /// Connections upgraded to the Socket.IO wire (the others speak socklab's).
    pub socketio_connections: u64,
    /// HTTP requests refused (not a Socket.IO upgrade, or a bad request).
    pub http_refused: u64,
    /// HTTP requests that were not an upgrade (the application's routes, refusals).
    pub http_requests: u64,
    /// Long-polling sessions the server holds now (open, or closed and waiting for their
    /// last poll; an upgraded one counts until it ends).
    pub polling_sessions: u64,
    /// Broadcasts this node wrote to the cluster's stream, and those of other nodes it
    /// delivered here.
    pub cluster_published: u64,
    pub cluster_received: u64,
    /// Broadcasts that never reached the stream: the buffer kept while Redis is away was
    /// full, or Redis refused the `XADD`.
    pub cluster_dropped: u64,
    /// Stream entries and PUB/SUB messages that are not messages of the adapter's format
    /// (skipped).
    pub cluster_bad_entries: u64,
    /// Messages from other nodes this one does not act on (broadcasts waiting for acks).
    pub cluster_unsupported: u64,
    /// Requests to the cluster (`fetch_sockets`, ...) that timed out.
    pub cluster_requests_failed: u64,
    /// Sessions taken over from Redis (parked by another node, or left by a dead one).
    pub cluster_sessions_restored: u64,
}
