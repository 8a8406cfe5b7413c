//! One connection as the loop keeps it: its socket, where it is in its life (connecting,
//! open, closing, lingering), its two buffers, and why it ended.
//!
//! The flags here are the per-connection state machine; the code that moves a connection
//! through it is the turn's (`read.rs` for input, [`Ctx::flush`](super::Ctx) for output,
//! `turn.rs` for connecting and closing).

use std::fmt;
use std::net::SocketAddr;

use super::outbound::Outbound;
use super::TimerId;
use crate::sys::{self, Fd};

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side (read returned 0); anything queued was flushed first.
    PeerClosed,
    /// The peer closed its side while `unconsumed` bytes it had sent were still waiting for
    /// the handler, which had returned less than everything from [`Handler::data`]: for a
    /// handler that consumes whole messages, the stream ended in the middle of one (an
    /// error, where [`PeerClosed`](CloseReason::PeerClosed) is a clean end). Anything
    /// queued was flushed first, as for `PeerClosed`; the unconsumed bytes are dropped.
    ///
    /// [`Handler::data`]: super::Handler::data
    Truncated { unconsumed: usize },
    /// A read or write failed (ECONNRESET, EPIPE, ...).
    Error(sys::Error),
    /// [`Ctx::close`] or [`Ctx::abort`] asked for it.
    ///
    /// [`Ctx::close`]: super::Ctx::close
    /// [`Ctx::abort`]: super::Ctx::abort
    Local,
    /// The peer sent more than [`Config::max_inbound`] bytes that the handler did not consume.
    ///
    /// [`Config::max_inbound`]: super::Config::max_inbound
    InputOverflow,
    /// The loop is stopping (SIGINT, SIGTERM or [`Ctx::stop`]).
    ///
    /// [`Ctx::stop`]: super::Ctx::stop
    Stopped,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("the peer closed the connection"),
            CloseReason::Truncated { unconsumed } => write!(
                f,
                "the peer closed the connection in the middle of a message \
                 ({unconsumed} bytes unconsumed)"
            ),
            CloseReason::Error(e) => write!(f, "{e}"),
            CloseReason::Local => f.write_str("closed by this side"),
            CloseReason::InputOverflow => f.write_str("the peer sent too much unconsumed input"),
            CloseReason::Stopped => f.write_str("the loop is stopping"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Connecting { timeout: Option<TimerId> },
    Open,
}

pub(super) struct Conn {
    pub(super) fd: Fd,
    pub(super) peer: SocketAddr,
    pub(super) state: State,
    /// Received bytes the handler has not consumed yet.
    pub(super) input: Vec<u8>,
    /// Bytes waiting to be sent.
    pub(super) output: Outbound,
    pub(super) writable_interest: bool,
    /// Already on the loop's list of connections to flush this turn.
    pub(super) dirty: bool,
    /// The peer sent FIN.
    pub(super) read_closed: bool,
    /// Reading stopped for backpressure: input is waiting unconsumed while output is
    /// queued. Reading resumes when the output drains.
    pub(super) read_paused: bool,
    /// Offer the waiting input to the handler again before the next read.
    pub(super) reoffer: bool,
    /// Lingering close: we sent FIN (shutdown SHUT_WR) and now read and drop whatever the
    /// peer still sends until its FIN, so that closing does not turn into RST (which would
    /// throw away what we wrote and the peer has not read yet).
    pub(super) lingering: bool,
    /// Close once the output is flushed (or at once when `flush` is false).
    pub(super) closing: Option<(CloseReason, bool)>,
    /// Listed on `more_to_read` for the next turn (it is listed once at most).
    pub(super) read_later: bool,
    /// The turn it was last read in: a connection is read once per turn, however many
    /// reasons there are to read it.
    pub(super) read_turn: u64,
}

impl Conn {
    /// A connection just taken into the table: connecting, or open (accepted). A connecting
    /// one is watched for WRITABLE from the start, because that is how a non-blocking
    /// connect finishes.
    pub(super) fn new(fd: Fd, peer: SocketAddr, state: State) -> Conn {
        Conn {
            fd,
            peer,
            state,
            input: Vec::new(),
            output: Outbound::default(),
            writable_interest: matches!(state, State::Connecting { .. }),
            dirty: false,
            read_closed: false,
            read_paused: false,
            reoffer: false,
            lingering: false,
            closing: None,
            read_later: false,
            read_turn: 0,
        }
    }

    pub(super) fn is_connecting(&self) -> bool {
        matches!(self.state, State::Connecting { .. })
    }

    /// Bytes queued and not yet taken by the kernel.
    pub(super) fn pending(&self) -> usize {
        self.output.pending()
    }
}
