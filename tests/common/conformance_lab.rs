//! The conformance tests' lab (`tests/socketio_conformance.rs`, `tests/polling_conformance.rs`):
//! an in-process server whose handlers report what they saw over a channel, and the waits on
//! those reports. Each test file names its own handlers (its namespaces, a middleware, an
//! extra event) with a [`Handlers`] type, built from [`report`], the listeners both files
//! share, and calls its lab `ConformanceLab<ItsHandlers>`.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socklab::events::{EventStats, Io, RunningServer, ServerConfig};
use socklab::wire::packet::Limits;

use super::{any_port, ask, WAIT};

/// What the server's middleware and listeners saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Auth {
        ns: String,
        auth: Option<Value>,
    },
    Gone {
        sid: String,
        reason: String,
    },
    Event {
        name: String,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
    },
}

/// The listeners of socket `sid`: `echo` acks its arguments, `up` is reported, and so is the
/// `disconnect`.
pub fn report(io: &mut Io, sid: &str, tx: &Sender<Seen>) {
    let gone = tx.clone();
    io.on(sid, "disconnect", move |_, ev| {
        let reason = ev.args.first().and_then(Value::as_str).unwrap_or("");
        let _ = gone.send(Seen::Gone {
            sid: ev.socket.to_string(),
            reason: reason.to_string(),
        });
    });
    io.on(sid, "echo", |io, ev| io.ack(ev, ev.args.clone()));
    let up = tx.clone();
    io.on(sid, "up", move |_, ev| {
        let _ = up.send(Seen::Event {
            name: ev.name.clone(),
            args: ev.args.clone(),
            attachments: ev.attachments.clone(),
        });
    });
}

/// Heartbeats 30 s apart: no `2` comes in the middle of a test that is not about them.
pub fn quiet_config() -> ServerConfig {
    ServerConfig {
        ping_interval: Duration::from_secs(30),
        ping_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    }
}

/// An Engine.IO open packet's JSON: exactly its five keys, a sid of 20 base64url characters
/// (like Engine.IO's own), `upgrades` as given.
pub fn assert_open_keys(data: &Value, upgrades: Value) {
    let obj = data.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    let sid = data["sid"].as_str().expect("sid is a string");
    assert_eq!(sid.len(), 20, "{sid}");
    assert!(
        sid.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{sid}"
    );
    assert_eq!(data["upgrades"], upgrades);
}

/// An Engine.IO open packet's JSON, from a server with [`quiet_config`]: exactly its five
/// keys, a sid of 20 base64url characters (like Engine.IO's own), `upgrades` as given, the
/// heartbeats 30 s apart, the default maxPayload.
pub fn assert_open_packet(data: &Value, upgrades: Value) {
    assert_open_keys(data, upgrades);
    assert_eq!(data["pingInterval"], json!(30_000));
    assert_eq!(data["pingTimeout"], json!(30_000));
    assert_eq!(data["maxPayload"], json!(Limits::default().max_frame));
}

/// A test file's handlers: what its server does, with [`report`] for what both files share.
pub trait Handlers {
    /// Sets the handlers up on a starting server; the reports go to `tx`.
    fn install(io: &mut Io, tx: Sender<Seen>);
}

/// A server with the handlers `H`, and what they reported.
pub struct ConformanceLab<H> {
    pub server: RunningServer,
    pub seen: Receiver<Seen>,
    /// Reports taken from `seen` and not yet asked for.
    pub kept: Vec<Seen>,
    handlers: PhantomData<fn() -> H>,
}

impl<H: Handlers> ConformanceLab<H> {
    /// A server with [`quiet_config`].
    pub fn start() -> ConformanceLab<H> {
        ConformanceLab::with(quiet_config())
    }

    pub fn with(config: ServerConfig) -> ConformanceLab<H> {
        let (tx, rx) = mpsc::channel();
        let server = RunningServer::start(config, any_port(), move |io| H::install(io, tx))
            .expect("the server starts on 127.0.0.1:0");
        ConformanceLab {
            server,
            seen: rx,
            kept: Vec::new(),
            handlers: PhantomData,
        }
    }
}

impl<H> ConformanceLab<H> {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn stats(&self) -> EventStats {
        ask(&self.server.handle, |io| io.stats())
    }

    /// The first report `pick` accepts (waits at most [`WAIT`]); the others are kept.
    pub fn wait_for<T>(&mut self, what: &str, mut pick: impl FnMut(&Seen) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(at) = self.kept.iter().position(|s| pick(s).is_some()) {
                let s = self.kept.remove(at);
                return pick(&s).expect("picked above");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(s) => self.kept.push(s),
                Err(_) => panic!("{what}: not seen within {WAIT:?}; seen {:?}", self.kept),
            }
        }
    }

    /// The reason socket `sid` was disconnected with.
    pub fn reason(&mut self, sid: &str) -> String {
        self.wait_for(&format!("the disconnect of {sid}"), |s| match s {
            Seen::Gone { sid: s, reason } if s == sid => Some(reason.clone()),
            _ => None,
        })
    }

    /// Whether socket `sid` is still connected, as the server sees it.
    pub fn connected(&self, sid: &str) -> bool {
        let sid = sid.to_string();
        ask(&self.server.handle, move |io| io.is_connected(&sid))
    }

    /// Runs `f` on the server thread (an emit, a disconnect).
    pub fn run(&self, f: impl FnOnce(&mut Io) + Send + 'static) {
        ask(&self.server.handle, f);
    }
}
