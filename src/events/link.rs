//! What the server calls a connection: a TCP connection of the event loop, or an Engine.IO
//! session over HTTP long-polling, which lives across several TCP connections (a held `GET`
//! on one, `POST`s on another) and is the same connection to everything above it.

use std::fmt;

use crate::event_loop::ConnId;

/// One connection of the server, however it is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Link {
    /// A TCP connection (socklab's frames, or Socket.IO over one WebSocket).
    Tcp(ConnId),
    /// A long-polling session: its slot among the sessions, and the slot's generation.
    Polling { slot: u32, gen: u32 },
}

impl Link {
    /// A small number unique among the links alive at once (the two kinds interleaved), for
    /// tables indexed by connection.
    pub(crate) fn index(self) -> usize {
        match self {
            Link::Tcp(c) => c.slot() * 2,
            Link::Polling { slot, .. } => slot as usize * 2 + 1,
        }
    }

    /// The loop's connection, if this is one.
    pub(crate) fn tcp(self) -> Option<ConnId> {
        match self {
            Link::Tcp(c) => Some(c),
            Link::Polling { .. } => None,
        }
    }
}

impl From<ConnId> for Link {
    fn from(c: ConnId) -> Link {
        Link::Tcp(c)
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::Tcp(c) => c.fmt(f),
            Link::Polling { slot, gen } => write!(f, "polling session {slot}.{gen}"),
        }
    }
}
