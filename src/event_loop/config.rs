//! The loop's knobs, and the limits it keeps that are not knobs.

use std::time::Duration;

/// Reads one connection gets per turn by default ([`Config::reads_per_event`]).
///
/// Four reads of the default 64 KiB chunk let a busy sender move 256 KiB per turn while
/// everyone else still gets a go in between. It also bounds what handling one connection's
/// input can queue for others before the turn's flush: a broadcast server turns 4 reads of
/// 64 KiB of chat messages into some 300 KiB of frames for every recipient, well under
/// [`Config::max_outbound`]. With 16, one burst could queue more than `max_outbound` for every
/// recipient in one turn and cut off even those that read as fast as they can.
pub const READS_PER_EVENT: usize = 4;

/// The loop's knobs. `Config::default()` suits a server with up to 10,000 connections.
#[derive(Debug, Clone)]
pub struct Config {
    /// Connections past this many are accepted and closed at once.
    pub max_connections: usize,
    /// Bytes a connection may have waiting to be sent before [`Ctx::send`] refuses more.
    ///
    /// [`Ctx::send`]: super::Ctx::send
    pub max_outbound: usize,
    /// Bytes a connection may have received and not yet consumed before it is closed.
    pub max_inbound: usize,
    /// Size of the one read buffer the loop shares among all connections.
    pub read_chunk: usize,
    /// Reads one connection gets per turn before the others have their go
    /// ([`READS_PER_EVENT`], 4, by default; see there why 4).
    pub reads_per_event: usize,
    /// How long a listener rests after `accept4` failed with EMFILE, ENFILE, ENOBUFS, ENOMEM
    /// or an error the loop does not know.
    pub accept_backoff: Duration,
    /// How long a graceful stop (or a close that waits for a flush) may take.
    pub stop_grace: Duration,
    /// Set TCP_NODELAY on every connection (small messages leave at once).
    pub nodelay: bool,
    /// Capacity of the epoll event array.
    pub events_capacity: usize,
}

// ANCHOR: defaults
impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 10_000,
            max_outbound: 1 << 20,
            max_inbound: (1 << 20) + 64 * 1024,
            read_chunk: 64 * 1024,
            reads_per_event: READS_PER_EVENT,
            accept_backoff: Duration::from_millis(100),
            stop_grace: Duration::from_secs(5),
            nodelay: true,
            events_capacity: 1024,
        }
    }
}
// ANCHOR_END: defaults

/// The backlog passed to `listen(2)`: connections the kernel may hold, handshake done,
/// until the loop accepts them. The loop drains the queue on every event, so it only fills
/// while a turn is busy or accepting is paused; Linux caps it at `net.core.somaxconn`
/// (4096 by default since 5.4).
pub(super) const LISTEN_BACKLOG: i32 = 1024;

/// Rounds of flushing at the end of a turn. A flush that empties a buffer calls
/// `Handler::drained`, which may queue more, which needs another flush: a few rounds cover
/// that without letting one handler keep the turn going for ever.
pub(super) const FLUSH_ROUNDS: usize = 8;

/// The longest a lingering close waits for the peer's FIN (and never longer than
/// [`Config::stop_grace`]). A deliberate simplification: a real server might tune it per
/// peer.
pub(super) const LINGER_GRACE: Duration = Duration::from_secs(2);

/// Buffers above this capacity are given back when they empty: a connection keeps what a
/// normal burst needs, not what its largest burst ever needed.
pub(super) const KEEP_CAPACITY: usize = 64 * 1024;
