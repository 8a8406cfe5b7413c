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
    /// Ack ids of the client's events already handled, with the ACK frame once answered.
    handled: HashMap<u32, Option<Vec<u8>>>,
    handled_order: VecDeque<u32>,
    /// Bytes of the ACK frames in `handled`.
    answer_bytes: usize,
    /// The rooms the socket joined (its own room aside), each with the broadcast offset when
    /// it joined: a replay skips what was sent to a room before the socket was in it.
    pub(super) joined: HashMap<String, u64>,
}

/// Retries remembered per session...
const HANDLED_MEMORY: usize = 1024;
/// ...and bytes of stored answers per session: with frames of up to a megabyte, the count
/// alone would let one client make the server keep a gigabyte per session.
const HANDLED_BYTES: usize = 64 << 10;

impl Session {
    /// A new session, known by private id `pid`.
    pub(super) fn new(pid: String) -> Session {
        Session {
            pid,
            ..Session::default()
        }
    }

    /// Whether the client's acked event `id` was handled already, and if so, its answer
    /// (`None` while the handler has not answered).
    pub(super) fn handled(&self, id: u32) -> Option<Option<&[u8]>> {
        self.handled.get(&id).map(Option::as_deref)
    }

    /// Remembers that the client's acked event `id` is being handled (not answered yet).
    /// Past [`HANDLED_MEMORY`] the oldest is forgotten: a retry of it would run again.
    pub(super) fn note_handled(&mut self, id: u32) {
        self.handled.insert(id, None);
        self.handled_order.push_back(id);
        if self.handled_order.len() > HANDLED_MEMORY {
            self.forget_oldest();
        }
    }

    /// Keeps the ACK `frame` sent for event `id`, for its retries. Past [`HANDLED_BYTES`] of
    /// answers the oldest are forgotten, ids and all; an answer larger than that on its own
    /// is not kept, and its id is forgotten (a retry runs the event again rather than wait
    /// for an answer that will never come).
    pub(super) fn keep_answer(&mut self, id: u32, frame: Vec<u8>) {
        if !self.handled.contains_key(&id) {
            return;
        }
        if frame.len() > HANDLED_BYTES {
            self.handled.remove(&id);
            self.handled_order.retain(|&x| x != id);
            return;
        }
        self.answer_bytes += frame.len();
        self.handled.insert(id, Some(frame));
        while self.answer_bytes > HANDLED_BYTES && self.handled_order.front() != Some(&id) {
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
        if let Some(old) = self.handled_order.pop_front() {
            if let Some(Some(frame)) = self.handled.remove(&old) {
                self.answer_bytes -= frame.len();
            }
        }
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
        assert_eq!(
            s.handled_order,
            [8, 9, 10],
            "the newest three fit in 64 KiB"
        );
        // An answer over the bound on its own is not kept, and its id is forgotten.
        s.note_handled(11);
        s.keep_answer(11, vec![0u8; HANDLED_BYTES + 1]);
        assert!(!s.handled.contains_key(&11));
        assert_eq!(s.handled_order, [8, 9, 10]);
        // An answer for an id never noted (or forgotten) is not kept.
        s.keep_answer(99, vec![1]);
        assert!(!s.handled.contains_key(&99));
    }
}
