//! A session: what the server keeps of a socket beyond its connection, so that a client
//! that comes back gets it again (docs/protocol.md 11.3 and 11.4): its private id, its
//! rooms and since when, and the acked events it already handled with their answers, so
//! that a retry is answered again instead of run twice. While the client is away the
//! session waits as [`Parked`].

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::encoder::Wire;
use super::names::Name;

/// What survives a dropped connection for `max_disconnection_duration`: the socket's rooms
/// and the acked events it already handled (to drop a client's retries).
#[derive(Default)]
pub(super) struct Session {
    pub(super) pid: String,
    /// The client's acked events already handled, by ack id, lowest first. A client numbers
    /// its acked emits with a counter, so a new one is almost always the highest so far: it
    /// goes at the back, a lookup is a binary search, and the lowest is the oldest. No hash
    /// table: a lookup per acked event costs a few comparisons, and nothing else is stored
    /// per entry.
    handled: VecDeque<Handled>,
    /// What the answers in `handled` hold, counted as [`answer_cost`] says.
    answer_bytes: usize,
    /// The rooms the socket joined (its own room aside), each with the broadcast offset when
    /// it joined: a replay skips what was sent to a room before the socket was in it.
    pub(super) joined: HashMap<String, u64>,
}

/// An acked event the session handled: its ack id, and the ACK frame once answered.
struct Handled {
    id: u32,
    answer: Option<Box<[u8]>>,
}

/// Retries remembered per session (24 bytes each, 24 KiB at most)...
const HANDLED_MEMORY: usize = 1024;
/// ...and bytes of stored answers per session: with frames of up to a megabyte, the count
/// alone would let one client make the server keep a gigabyte per session.
const HANDLED_BYTES: usize = 64 << 10;

/// What an answer of `len` bytes holds in memory: its bytes and the allocator's header
/// around them (16 bytes in glibc's malloc), so that a session of many small answers is
/// bounded by what it really takes, not by its payload alone.
fn answer_cost(len: usize) -> usize {
    len + 16
}

impl Session {
    /// A new session, known by private id `pid`.
    pub(super) fn new(pid: String) -> Session {
        Session {
            pid,
            ..Session::default()
        }
    }

    /// Where ack id `id` is in `handled`, or where it would go.
    fn find(&self, id: u32) -> Result<usize, usize> {
        // The common case first: the newest is asked about (a retry of the last emit).
        match self.handled.back() {
            Some(last) if last.id < id => Err(self.handled.len()),
            _ => self.handled.binary_search_by_key(&id, |h| h.id),
        }
    }

    /// Whether the client's acked event `id` was handled already, and if so, its answer
    /// (`None` while the handler has not answered).
    pub(super) fn handled(&self, id: u32) -> Option<Option<&[u8]>> {
        let at = self.find(id).ok()?;
        Some(self.handled[at].answer.as_deref())
    }

    /// Remembers that the client's acked event `id` is being handled (not answered yet).
    /// Past [`HANDLED_MEMORY`] the lowest id is forgotten: a retry of it would run again.
    pub(super) fn note_handled(&mut self, id: u32) {
        if let Err(at) = self.find(id) {
            self.handled.insert(at, Handled { id, answer: None });
        }
        if self.handled.len() > HANDLED_MEMORY {
            self.forget_oldest();
        }
    }

    /// Keeps the ACK `frame` sent for event `id`, for its retries. Past [`HANDLED_BYTES`] of
    /// answers the oldest are forgotten, ids and all; an answer larger than that on its own
    /// is not kept, and its id is forgotten (a retry runs the event again rather than wait
    /// for an answer that will never come).
    pub(super) fn keep_answer(&mut self, id: u32, frame: Vec<u8>) {
        let Ok(at) = self.find(id) else {
            return;
        };
        let cost = answer_cost(frame.len());
        if cost > HANDLED_BYTES {
            self.forget(at);
            return;
        }
        self.forget_answer(at);
        self.answer_bytes += cost;
        self.handled[at].answer = Some(frame.into_boxed_slice());
        while self.answer_bytes > HANDLED_BYTES && self.handled.front().is_some_and(|h| h.id != id)
        {
            self.forget_oldest();
        }
    }

    /// The session with its rooms and private id, but no handled events or answers.
    pub(super) fn without_answers(self) -> Session {
        Session {
            pid: self.pid,
            joined: self.joined,
            ..Session::default()
        }
    }

    fn forget_oldest(&mut self) {
        if !self.handled.is_empty() {
            self.forget(0);
        }
    }

    /// Forgets the event at `at`, its answer with it.
    fn forget(&mut self, at: usize) {
        self.forget_answer(at);
        self.handled.remove(at);
    }

    fn forget_answer(&mut self, at: usize) {
        if let Some(old) = self.handled.get_mut(at).and_then(|h| h.answer.take()) {
            self.answer_bytes -= answer_cost(old.len());
        }
    }

    #[cfg(test)]
    fn ids(&self) -> Vec<u32> {
        self.handled.iter().map(|h| h.id).collect()
    }
}

/// A session whose connection was lost, waiting for its client until `expires`.
pub(super) struct Parked {
    pub(super) sid: Name,
    pub(super) namespace: Name,
    /// The wire its connection spoke (the answers it keeps are frames of that wire).
    pub(super) wire: Wire,
    pub(super) session: Session,
    pub(super) expires: Instant,
    /// The offset of the last broadcast queued to the socket before it left: the client
    /// may have missed the ones after its own offset up to this.
    pub(super) last_sent: u64,
    /// The last offset taken when it left: what came after was sent while it was away.
    pub(super) left_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_answers_are_bounded_in_bytes_oldest_forgotten_first() {
        let mut s = Session::default();
        for id in 1..=10 {
            s.note_handled(id);
            s.keep_answer(id, vec![0u8; 20 << 10]);
        }
        assert!(s.answer_bytes <= HANDLED_BYTES, "{}", s.answer_bytes);
        assert_eq!(s.ids(), [8, 9, 10], "the newest three fit in 64 KiB");
        // An answer over the bound on its own is not kept, and its id is forgotten.
        s.note_handled(11);
        s.keep_answer(11, vec![0u8; HANDLED_BYTES + 1]);
        assert_eq!(s.handled(11), None);
        assert_eq!(s.ids(), [8, 9, 10]);
        // An answer for an id never noted (or forgotten) is not kept.
        s.keep_answer(99, vec![1]);
        assert_eq!(s.handled(99), None);
        assert_eq!(s.handled(9), Some(Some(&[0u8; 20 << 10][..])));
    }

    #[test]
    fn many_small_answers_are_bounded_by_what_they_hold() {
        let mut s = Session::default();
        for id in 0..1000 {
            s.note_handled(id);
            s.keep_answer(id, vec![7u8; 100]);
        }
        // 116 bytes each as counted: 564 of them fit in 64 KiB, the newest.
        let ids = s.ids();
        assert_eq!(ids.len(), HANDLED_BYTES / answer_cost(100));
        assert_eq!(ids.last(), Some(&999));
        assert!(s.answer_bytes <= HANDLED_BYTES);
        assert_eq!(s.handled(0), None);
        assert_eq!(s.handled(999), Some(Some(&[7u8; 100][..])));
    }

    #[test]
    fn ids_out_of_order_are_found_and_the_count_is_bounded() {
        let mut s = Session::default();
        for id in [5, 3, 9, 1, 7] {
            s.note_handled(id);
        }
        assert_eq!(s.ids(), [1, 3, 5, 7, 9]);
        assert_eq!(s.handled(7), Some(None));
        assert_eq!(s.handled(4), None);
        // Noting an id twice keeps one entry.
        s.note_handled(7);
        assert_eq!(s.ids().len(), 5);
        for id in 100..100 + HANDLED_MEMORY as u32 {
            s.note_handled(id);
        }
        assert_eq!(s.ids().len(), HANDLED_MEMORY);
        assert_eq!(s.handled(9), None, "the lowest ids go first");
    }
}
