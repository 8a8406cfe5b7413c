//! What a token means. Every registration with the poll carries a token, and the token is
//! all an event says about where it comes from:
//!
//! | token | what |
//! |---|---|
//! | 0 | mio's waker (other threads' messages) |
//! | 1 | the stop pipe (SIGINT, SIGTERM) |
//! | 2 to 15 | listeners, one per slot |
//! | 16 and up | connections: 16 + the slot in the table |

use mio::Token;

use super::ConnId;

/// mio's waker, an `eventfd`: other threads have posted messages.
pub(super) const WAKER: Token = Token(0);
/// The read end of the self-pipe that SIGINT and SIGTERM write to.
pub(super) const SIGNALS: Token = Token(1);
const LISTENER_BASE: usize = 2;
/// Listeners one loop can have at once.
pub(super) const MAX_LISTENERS: usize = 14;
const CONN_BASE: usize = LISTENER_BASE + MAX_LISTENERS;

/// Where an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Waker,
    Signals,
    /// The listener in this slot.
    Listener(usize),
    /// The connection in this slot of the table (maybe closed by now).
    Conn(usize),
}

/// Reads a token back.
pub(super) fn source(token: Token) -> Source {
    match token {
        WAKER => Source::Waker,
        SIGNALS => Source::Signals,
        Token(t) if t < CONN_BASE => Source::Listener(t - LISTENER_BASE),
        Token(t) => Source::Conn(t - CONN_BASE),
    }
}

/// The token of the listener in slot `index`.
pub(super) fn listener_token(index: usize) -> Token {
    Token(LISTENER_BASE + index)
}

/// The token a connection is registered with.
pub(super) fn conn_token(id: ConnId) -> Token {
    Token(CONN_BASE + id.slot())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_back_as_their_source() {
        assert_eq!(source(WAKER), Source::Waker);
        assert_eq!(source(SIGNALS), Source::Signals);
        assert_eq!(source(listener_token(0)), Source::Listener(0));
        assert_eq!(
            source(listener_token(MAX_LISTENERS - 1)),
            Source::Listener(MAX_LISTENERS - 1)
        );
        assert_eq!(source(Token(16)), Source::Conn(0));
    }
}
