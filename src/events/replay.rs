//! The replay log: recent broadcasts, kept so that a client whose connection dropped gets
//! what it missed when it comes back (connection state recovery, lesson 16).
//!
//! Every broadcast that may be replayed takes the next offset (1, 2, 3, ...); the client
//! remembers the offset of the last one it received. The log is bounded three ways: by age
//! (no session is kept longer than `max_disconnection_duration`, so nothing older can be
//! needed), by count, and by bytes (frames may be up to a megabyte each). What the bounds
//! drop is counted, and remembered as the highest offset dropped, so that a session is not
//! restored when something it would have received is gone.
//!
//! The frames are kept back to back in one ring of bytes, and each entry's recipients as
//! the broadcast named them (shared names, not copies): logging a broadcast allocates
//! nothing once the ring has grown to its working size.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::names::{Name, Names};

/// One logged broadcast: who it was for, and where its frame is in the ring.
struct Logged {
    offset: u64,
    namespace: Name,
    to: Names,
    except_rooms: Names,
    except_sockets: Names,
    /// Its frame's length; the frames lie in the ring in the order of the entries.
    len: usize,
    at: Instant,
}

impl Logged {
    /// Whether this broadcast was for socket `sid`, given the rooms it was in and since when
    /// (its own room, `sid`, for as long as the session has existed).
    fn reaches(&self, ns: &str, sid: &str, joined: &HashMap<String, u64>) -> bool {
        let member =
            |r: &Name| &**r == sid || joined.get(&**r).is_some_and(|&since| self.offset > since);
        &*self.namespace == ns
            && (self.to.is_empty() || self.to.as_slice().iter().any(member))
            && !self
                .except_rooms
                .as_slice()
                .iter()
                .any(|r| &**r == sid || joined.contains_key(&**r))
            && !self.except_sockets.contains(sid)
    }
}

/// A broadcast to log: its recipients as chosen, and its frame.
pub(crate) struct Entry<'a> {
    pub namespace: Name,
    pub to: Names,
    pub except_rooms: Names,
    pub except_sockets: Names,
    pub frame: &'a [u8],
}

/// The log's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub max_age: Duration,
    pub max_entries: usize,
    pub max_bytes: usize,
}

/// The ring's capacity kept however empty it gets.
const RING_KEEP: usize = 64 << 10;

#[derive(Default)]
pub(crate) struct ReplayLog {
    entries: VecDeque<Logged>,
    /// The frames of `entries`, back to back, oldest first.
    ring: VecDeque<u8>,
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
        self.ring.len()
    }

    /// Broadcasts dropped before their age was up (by count or bytes).
    pub(crate) fn dropped_early(&self) -> u64 {
        self.dropped_early
    }

    /// Keeps broadcast `offset`, one after [`last_offset`](ReplayLog::last_offset) (the
    /// next one alone; in a cluster, the stream's next id), which it becomes, after dropping
    /// what is past the bounds to make room for it.
    pub(crate) fn push(&mut self, offset: u64, e: Entry<'_>, bounds: Bounds, now: Instant) {
        debug_assert!(offset > self.last, "offsets are taken in order");
        self.last = offset;
        let fits = bounds.max_entries > 0 && e.frame.len() <= bounds.max_bytes;
        while let Some(front) = self.entries.front() {
            let old = now.duration_since(front.at) > bounds.max_age;
            let full = fits
                && (self.entries.len() >= bounds.max_entries
                    || self.ring.len() + e.frame.len() > bounds.max_bytes);
            if !(old || full) {
                break;
            }
            let Some(gone) = self.entries.pop_front() else {
                break;
            };
            self.ring.drain(..gone.len);
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
        self.ring.extend(e.frame);
        self.entries.push_back(Logged {
            offset,
            namespace: e.namespace,
            to: e.to,
            except_rooms: e.except_rooms,
            except_sockets: e.except_sockets,
            len: e.frame.len(),
            at: now,
        });
        // A burst may leave the deques with much more room than they now need: give back
        // what is over twice what is held, so that the high-water mark does not stay.
        if self.entries.capacity() > 64 && self.entries.capacity() > 4 * self.entries.len() {
            self.entries.shrink_to(2 * self.entries.len());
        }
        if self.ring.capacity() > RING_KEEP && self.ring.capacity() > 4 * self.ring.len() {
            self.ring.shrink_to((2 * self.ring.len()).max(RING_KEEP));
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
    /// offset with its frame, in two pieces (where the ring wraps; the second is often
    /// empty).
    pub(crate) fn missed<'a>(
        &'a self,
        ns: &'a str,
        sid: &'a str,
        joined: &'a HashMap<String, u64>,
        offset: u64,
    ) -> impl Iterator<Item = (u64, (&'a [u8], &'a [u8]))> + 'a {
        let (head, tail) = self.ring.as_slices();
        let mut at = 0;
        self.entries.iter().filter_map(move |l| {
            let start = at;
            at += l.len;
            (l.offset > offset && l.reaches(ns, sid, joined))
                .then(|| (l.offset, pieces(head, tail, start, l.len)))
        })
    }
}

/// Bytes `start..start + len` of the ring whose two halves are `head` and `tail`.
fn pieces<'a>(head: &'a [u8], tail: &'a [u8], start: usize, len: usize) -> (&'a [u8], &'a [u8]) {
    let end = start + len;
    if end <= head.len() {
        (&head[start..end], &[])
    } else if start >= head.len() {
        (&tail[start - head.len()..end - head.len()], &[])
    } else {
        (&head[start..], &tail[..end - head.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(frame: &'a [u8], to: &[&str]) -> Entry<'a> {
        let mut names = Names::None;
        for room in to {
            names.push(Name::from(*room));
        }
        Entry {
            namespace: Name::from("/"),
            to: names,
            except_rooms: Names::None,
            except_sockets: Names::None,
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
        log.push(o2, entry(b"x", &["other"]), bounds(10, 1 << 20), later);
        assert_eq!(log.trimmed, 1);
        assert!(log.complete(1, 1, 2), "it saw all that was sent to it");
        assert!(!log.complete(0, 1, 2), "it missed offset 1, which is gone");
    }

    #[test]
    fn frames_come_back_whole_when_the_ring_wraps() {
        let mut log = ReplayLog::default();
        let now = Instant::now();
        let joined = HashMap::new();
        // Frames of 7 bytes under a 30-byte bound: the ring drops from the front and
        // wraps around its storage.
        for i in 0..50u8 {
            let o = log.last_offset() + 1;
            log.push(o, entry(&[i; 7], &[]), bounds(1000, 30), now);
            let frames: Vec<(u64, Vec<u8>)> = log
                .missed("/", "s", &joined, 0)
                .map(|(o, (a, b))| (o, [a, b].concat()))
                .collect();
            let first = i.saturating_sub(3);
            let want: Vec<(u64, Vec<u8>)> =
                (first..=i).map(|k| (k as u64 + 1, vec![k; 7])).collect();
            assert_eq!(frames, want, "after broadcast {i}");
        }
    }
}
