//! One connection as the server keeps it: how its packets are written and read, the sockets
//! it holds (one per namespace), its heartbeat, whether it is closing.

use std::net::SocketAddr;

use crate::events::encoder::Wire;
use crate::events::link::Link;
use crate::events::names::Name;

/// One connection.
pub(super) struct ConnState {
    pub(super) peer: SocketAddr,
    /// How its packets are written...
    pub(super) wire: Wire,
    /// ...and read (`reading.rs`).
    pub(super) reader: Reader,
    /// A WebSocket that probes or carries a long-polling session: its packets are the
    /// session's (`polling.rs`).
    pub(super) route: Option<Link>,
    /// Its handshake is done: socklab's HELLO, or Socket.IO's upgrade.
    pub(super) hello: bool,
    /// Namespace -> socket id.
    pub(super) sockets: NsSockets,
    /// Heartbeat: PINGs sent so far, and whether the last one still waits for its PONG.
    pub(super) pings: u64,
    pub(super) awaiting_pong: bool,
    /// A close was queued for it: what it sends from now on is not handled.
    pub(super) closing: bool,
}

/// How a connection's bytes are read: chosen by its first byte (`reading.rs`).
pub(super) enum Reader {
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
pub(super) struct NsSockets(Vec<(Name, Name)>);

impl NsSockets {
    pub(super) fn get(&self, ns: &str) -> Option<&Name> {
        self.0.iter().find(|(n, _)| &**n == ns).map(|(_, sid)| sid)
    }

    pub(super) fn contains_key(&self, ns: &str) -> bool {
        self.get(ns).is_some()
    }

    pub(super) fn insert(&mut self, ns: Name, sid: Name) {
        match self.0.iter_mut().find(|(n, _)| *n == ns) {
            Some(slot) => slot.1 = sid,
            None => {
                // One slot at a time: most connections never hold a second namespace.
                self.0.reserve_exact(1);
                self.0.push((ns, sid));
            }
        }
    }

    pub(super) fn remove(&mut self, ns: &str) -> Option<Name> {
        let at = self.0.iter().position(|(n, _)| &**n == ns)?;
        Some(self.0.swap_remove(at).1)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Name> {
        self.0.iter().map(|(_, sid)| sid)
    }
}
