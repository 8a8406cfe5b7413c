//! What the loop counts, for lessons and tests to show what it did.

use super::AcceptErrors;

/// Counters, for lessons and tests to show what the loop did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub accepted: u64,
    /// Connections closed at once because [`Config::max_connections`] was reached.
    ///
    /// [`Config::max_connections`]: super::Config::max_connections
    pub refused: u64,
    /// Times a listener paused for [`Config::accept_backoff`] after `accept4` failed (out of
    /// descriptors or memory, or an error the loop does not know).
    ///
    /// [`Config::accept_backoff`]: super::Config::accept_backoff
    pub accept_backoffs: u64,
    /// `accept4` failures, by errno.
    pub accept_errors: AcceptErrors,
    pub closed: u64,
    pub reads: u64,
    pub bytes_in: u64,
    /// Reads that found nothing (EAGAIN): the end of each drain, or a spurious event.
    pub reads_would_block: u64,
    pub writes: u64,
    pub bytes_out: u64,
    /// Writes that took fewer bytes than offered.
    pub short_writes: u64,
    /// Writes that took nothing (EAGAIN): the send buffer was full.
    pub writes_would_block: u64,
    /// Times WRITABLE interest was turned on for a connection.
    pub writable_on: u64,
    /// Times a send was refused because the outbound buffer was full.
    pub sends_refused: u64,
    pub events: u64,
    pub turns: u64,
}
