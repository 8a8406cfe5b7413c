//! A connection's outbound buffer: bytes queued by [`Ctx::send`](super::Ctx::send) and not yet
//! taken by the kernel, with its cap, and the write loop that empties it.

use std::fmt;

use super::classify::{interrupted, would_block};
use super::config::KEEP_CAPACITY;
use super::Stats;
use crate::sys::{self, Fd, MsgFlags};

/// Why [`Ctx::send`](super::Ctx::send) did not queue the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection is closed or closing.
    Closed,
    /// The outbound buffer would pass its cap: the peer does not read fast enough.
    Full { pending: usize, cap: usize },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the connection is closed"),
            SendError::Full { pending, cap } => write!(
                f,
                "the outbound buffer is full ({pending} bytes waiting, cap {cap})"
            ),
        }
    }
}

impl std::error::Error for SendError {}

/// Bytes waiting to be sent: `buf[sent..]`. What was sent stays at the front until the
/// buffer empties (or grows too large), so a short write costs no copy.
#[derive(Debug, Default)]
pub(super) struct Outbound {
    buf: Vec<u8>,
    sent: usize,
}

impl Outbound {
    /// Bytes queued and not yet taken by the kernel.
    pub(super) fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Queues all of `bytes`, or none of them if that would put more than `cap` bytes in
    /// waiting: a send is never half-queued.
    pub(super) fn push(&mut self, bytes: &[u8], cap: usize) -> Result<(), SendError> {
        let pending = self.pending();
        if pending + bytes.len() > cap {
            return Err(SendError::Full { pending, cap });
        }
        if self.sent > 0 && self.sent == self.buf.len() {
            self.buf.clear();
            self.sent = 0;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    // ANCHOR: write_to
    /// Writes to `fd` until the buffer is empty or the kernel says EAGAIN, then tidies the
    /// buffer up. An error other than EAGAIN or EINTR is returned as it is: the connection
    /// is broken.
    pub(super) fn write_to(&mut self, fd: &Fd, stats: &mut Stats) -> sys::Result<()> {
        while self.pending() > 0 {
            let chunk = &self.buf[self.sent..];
            match sys::send(fd, chunk, MsgFlags::NOSIGNAL) {
                Ok(n) => {
                    stats.writes += 1;
                    stats.bytes_out += n as u64;
                    if n < chunk.len() {
                        stats.short_writes += 1;
                    }
                    self.sent += n;
                }
                Err(e) if would_block(&e) => {
                    stats.writes_would_block += 1;
                    break;
                }
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        if self.pending() == 0 {
            self.buf.clear();
            self.sent = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf.shrink_to(KEEP_CAPACITY);
            }
        } else if self.sent > KEEP_CAPACITY && self.sent * 2 > self.buf.len() {
            // Keep the buffer from growing without bound under a steady trickle.
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
        Ok(())
    }
    // ANCHOR_END: write_to
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_is_all_or_nothing() {
        let mut out = Outbound::default();
        assert_eq!(out.push(b"hello", 8), Ok(()));
        assert_eq!(
            out.push(b"world", 8),
            Err(SendError::Full { pending: 5, cap: 8 })
        );
        assert_eq!(out.pending(), 5);
    }
}
