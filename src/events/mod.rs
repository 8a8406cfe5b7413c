//! Layer 4: a Socket.IO-style event API on the event loop (lessons 14 and after).
//!
//! What Socket.IO gives a JavaScript programmer, in plain Rust on socklab's own loop:
//! namespaces with middleware, sockets with `on`/`once`/`off`/`on_any`, `emit` with JSON
//! arguments and raw binary attachments, acknowledgements with timeouts, rooms, broadcasts
//! (to rooms, unions of rooms, all but the sender, volatile), and a thread-safe handle for
//! code outside the loop.
//!
//! | file | what it holds |
//! |---|---|
//! | `server/` | [`Io`] (the server's state, handed to every handler), [`Emit`], [`Broadcast`], [`Server`]: see its own map |
//! | `client/` | [`Client`] and [`ClientIo`]: see its own map |
//! | `listeners.rs` | `on`/`once`/`off`/`on_any` tables shared by both sides, and [`Event`] |
//! | `outbox.rs` | what handlers emitted, waiting for the loop: one arena of encoded frames, and the flush policy (both sides) |
//! | `encoder.rs` | the seam to the wire: a connection's `Wire` turns packets into frames and back |
//! | `link.rs` | what the server calls a connection: a TCP connection, or a long-polling session across several |
//! | `names.rs` | shared names (namespaces, rooms, socket ids) instead of copies |
//! | `session.rs` | a session kept beyond its connection: private id, rooms, handled acks with their answers (bounded) |
//! | `replay.rs` | the replay log for connection state recovery, bounded by age, count and bytes |
//! | `guard.rs` | one policy for user callbacks that panic: caught, counted, printed once, only their socket closed |
//! | `ids.rs` | socket ids and session secrets from the OS random generator (seeded for demos) |
//! | `reasons.rs` | the disconnect reasons, and who comes back after which |
//! | `error.rs` | [`AckError`], [`EmitError`], [`ServerGone`], and the checks before an emit |
//!
//! The API does not know the wire format: it works on packets (a namespace, an event name,
//! arguments, attachments, an ack id, an offset), and each connection's wire
//! (`encoder.rs`) turns them into bytes, so another transport can sit behind the same
//! handlers.
//!
//! Handlers run on the loop thread, one at a time, with `&mut Io`: the state they share is
//! owned by that one thread, so there are no locks on the hot path. Other threads reach it
//! only through a [`ServerHandle`], which queues a closure and wakes the loop.

mod client;
mod encoder;
mod error;
mod guard;
mod ids;
mod link;
mod listeners;
mod names;
mod outbox;
pub mod reasons;
mod replay;
mod server;
mod session;

pub use client::{backoff, Client, ClientHandle, ClientIo, ClientOptions, ClientState};
pub use error::{AckError, AckReply, EmitError, ServerGone};
pub use listeners::Event;
pub use names::Name;
pub use server::{
    Broadcast, ClusterConfig, ClusterError, Emit, EventStats, Handshake, Io, Refused, RemoteSocket,
    RunningServer, Server, ServerConfig, ServerEvent, ServerHandle,
};

/// A function that sees every frame one side sends (see `Io::set_tap`).
pub type Tap = Box<dyn FnMut(&[u8])>;
