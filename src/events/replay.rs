//! The replay log: recent broadcasts, kept so that a client whose connection dropped gets
//! what it missed when it comes back (connection state recovery, lesson 16).
//!
//! Every broadcast that may be replayed takes the next offset (1, 2, 3, ...); the client
//! remembers the offset of the last one it received. The log is bounded three ways: by age
//! (no session is kept longer than `max_disconnection_duration`, so nothing older can be
//! needed), by count, and by bytes (frames may be up to a megabyte each). What the bounds
//! drop is counted, and remembered as the highest offset dropped, so that a session is not
//! restored when something it would have received is gone.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One logged broadcast: who it was for, and its encoded frame.
struct Logged {
    offset: u64,
    namespace: String,
    to: Vec<String>,
    except_rooms: Vec<String>,
    except_sockets: Vec<String>,
    frame: Vec<u8>,
    at: Instant,
}

impl Logged {
    /// Whether this broadcast was for socket `sid`, given the rooms it was in and since when
    /// (its own room, `sid`, for as long as the session has existed).
    fn reaches(&self, ns: &str, sid: &str, joined: &HashMap<String, u64>) -> bool {
        let member =
            |r: &String| r == sid || joined.get(r).is_some_and(|&since| self.offset > since);
        self.namespace == ns
            && (self.to.is_empty() || self.to.iter().any(member))
            && !self
                .except_rooms
                .iter()
                .any(|r| r == sid || joined.contains_key(r))
            && !self.except_sockets.iter().any(|s| s == sid)
    }
}

/// A broadcast to log: its recipients as chosen, and its frame.
pub(crate) struct Entry<'a> {
    pub namespace: &'a str,
    pub to: &'a [String],
    pub except_rooms: &'a [String],
    pub except_sockets: &'a [String],
    pub frame: &'a [u8],
}

/// The log's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub max_age: Duration,
    pub max_entries: usize,
    pub max_bytes: usize,
}

#[derive(Default)]
pub(crate) struct ReplayLog {
    entries: VecDeque<Logged>,
    /// Bytes of frames held.
    bytes: usize,
    /// The last offset taken (0: none yet).
    last: u64,
    /// The highest offset dropped, for any reason.
    trimmed: u64,
    /// The highest offset dropped by the count or byte bound, before its age was up.
    trimmed_early: u64,
    /// Broadcasts dropped by the count or byte bound (or too big to keep at all).
    dropped_early: u64,
}

impl ReplayLog {
    /// The offset of the last broadcast so far.
    pub(crate) fn last_offset(&self) -> u64 {
        self.last
    }

    /// Bytes of frames held now.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Broadcasts dropped before their age was up (by count or bytes).
    pub(crate) fn dropped_early(&self) -> u64 {
        self.dropped_early
    }

    /// Keeps broadcast `offset`, the one after [`last_offset`](ReplayLog::last_offset),
    /// which it becomes, after dropping what is past the bounds to make room for it.
    pub(crate) fn push(&mut self, offset: u64, e: Entry<'_>, bounds: Bounds, now: Instant) {
        debug_assert_eq!(offset, self.last + 1, "offsets are taken in order");
        self.last = offset;
        let fits = bounds.max_entries > 0 && e.frame.len() <= bounds.max_bytes;
        while let Some(front) = self.entries.front() {
            let old = now.duration_since(front.at) > bounds.max_age;
            let full = fits
                && (self.entries.len() >= bounds.max_entries
                    || self.bytes + e.frame.len() > bounds.max_bytes);
            if !(old || full) {
                break;
            }
            let Some(gone) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= gone.frame.len();
            self.trimmed = self.trimmed.max(gone.offset);
            if !old {
                self.dropped_early += 1;
                self.trimmed_early = self.trimmed_early.max(gone.offset);
            }
        }
        if !fits {
            // Never kept: as if dropped at once.
            self.dropped_early += 1;
            self.trimmed = self.trimmed.max(offset);
            self.trimmed_early = self.trimmed_early.max(offset);
            return;
        }
        self.bytes += e.frame.len();
        self.entries.push_back(Logged {
            offset,
            namespace: e.namespace.to_string(),
            to: e.to.to_vec(),
            except_rooms: e.except_rooms.to_vec(),
            except_sockets: e.except_sockets.to_vec(),
            frame: e.frame.to_vec(),
            at: now,
        });
        // A burst may leave the deque with much more room than it now needs: give back
        // what is over twice the entries held, so that the high-water mark does not stay.
        if self.entries.capacity() > 64 && self.entries.capacity() > 4 * self.entries.len() {
            self.entries.shrink_to(2 * self.entries.len());
        }
    }

    // ANCHOR: complete
    /// Whether every broadcast a returning session would have received after the client's
    /// `offset` is still here, so that restoring it loses nothing. `last_sent` is the last
    /// broadcast queued to the socket before it left, `left_at` the last offset taken then.
    ///
    /// - Before it left: nothing is missing if the client saw the last one sent to it
    ///   (`offset >= last_sent`), however old that was (a quiet room); otherwise all after
    ///   `offset` must still be here.
    /// - While it was away: a session is kept no longer than an entry lives, so only the
    ///   count and byte bounds can have dropped a broadcast logged since it left. If they
    ///   did, that broadcast might have been for it, and the session is not restored.
    pub(crate) fn complete(&self, offset: u64, last_sent: u64, left_at: u64) -> bool {
        let before = offset >= last_sent || self.trimmed <= offset;
        let away = self.trimmed_early <= left_at;
        before && away
    }
    // ANCHOR_END: complete

    /// The broadcasts for socket `sid` of namespace `ns` after `offset`, in order: each
    /// offset with its frame.
    pub(crate) fn missed<'a>(
        &'a self,
        ns: &'a str,
        sid: &'a str,
        joined: &'a HashMap<String, u64>,
        offset: u64,
    ) -> impl Iterator<Item = (u64, &'a [u8])> + 'a {
        self.entries
            .iter()
            .filter(move |l| l.offset > offset && l.reaches(ns, sid, joined))
            .map(|l| (l.offset, l.frame.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(frame: &'a [u8], to: &'a [String]) -> Entry<'a> {
        Entry {
            namespace: "/",
            to,
            except_rooms: &[],
            except_sockets: &[],
            frame,
        }
    }

    fn bounds(max_entries: usize, max_bytes: usize) -> Bounds {
        Bounds {
            max_age: Duration::from_secs(120),
            max_entries,
            max_bytes,
        }
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_and_counts_it() {
        let mut log = ReplayLog::default();
        let now = Instant::now();
        for _ in 0..10 {
            let o = log.last_offset() + 1;
            log.push(o, entry(&[0u8; 100], &[]), bounds(1000, 350), now);
        }
        assert_eq!(log.bytes(), 300);
        assert_eq!(log.dropped_early(), 7);
        // A frame larger than the whole bound is not kept, and counted.
        let o = log.last_offset() + 1;
        log.push(o, entry(&[0u8; 400], &[]), bounds(1000, 350), now);
        assert_eq!(log.bytes(), 300);
        assert_eq!(log.dropped_early(), 8);
        assert!(!log.complete(10, 11, 10), "the dropped one was sent to it");
    }

    #[test]
    fn a_quiet_session_is_complete_after_its_last_broadcast_aged_out() {
        let mut log = ReplayLog::default();
        let t0 = Instant::now();
        let o = log.last_offset() + 1; // its own join, which it received
        log.push(o, entry(b"join", &[]), bounds(10, 1 << 20), t0);
        // 130 s later, another broadcast trims the first by age.
        let later = t0 + Duration::from_secs(130);
        let o2 = log.last_offset() + 1;
        log.push(
            o2,
            entry(b"x", &["other".to_string()]),
            bounds(10, 1 << 20),
            later,
        );
        assert_eq!(log.trimmed, 1);
        assert!(log.complete(1, 1, 2), "it saw all that was sent to it");
        assert!(!log.complete(0, 1, 2), "it missed offset 1, which is gone");
    }
}
