//! The timer heap: deadlines in a binary heap, the nearest one on top. Its deadline is the
//! poll timeout, so one thread sleeps exactly until the next thing is due: no thread per
//! timer, no busy waiting.
//!
//! Cancelling is lazy: the entry's payload is removed from the map, and the heap entry is
//! skipped when it comes to the top.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::id_hash::IdMap;

/// Names a timer, to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

pub(crate) struct Timers<T> {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Keyed by ids counted here: the cheap hash (`id_hash.rs`) is safe.
    live: IdMap<u64, T>,
    next: u64,
}

impl<T> Timers<T> {
    pub(crate) fn new() -> Timers<T> {
        Timers {
            heap: BinaryHeap::new(),
            live: IdMap::default(),
            next: 0,
        }
    }

    pub(crate) fn insert(&mut self, deadline: Instant, value: T) -> TimerId {
        let id = self.next;
        self.next += 1;
        self.heap.push(Reverse((deadline, id)));
        self.live.insert(id, value);
        TimerId(id)
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<T> {
        self.live.remove(&id.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// The nearest live deadline (dropping cancelled entries from the top on the way).
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, id))) = self.heap.peek().copied() {
            if self.live.contains_key(&id) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Drops timers from the top of the heap while `moot` says they no longer matter, so
    /// that the next deadline is one worth waking for.
    pub(crate) fn drop_moot(&mut self, mut moot: impl FnMut(&T) -> bool) {
        while let Some(Reverse((_, id))) = self.heap.peek().copied() {
            match self.live.get(&id) {
                Some(value) if !moot(value) => return,
                Some(_) => {
                    self.live.remove(&id);
                }
                None => {}
            }
            self.heap.pop();
        }
    }

    /// One timer whose deadline is at or before `now`, if any.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<(TimerId, T)> {
        while let Some(Reverse((deadline, id))) = self.heap.peek().copied() {
            if deadline > now {
                return None;
            }
            self.heap.pop();
            if let Some(value) = self.live.remove(&id) {
                return Some((TimerId(id), value));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_and_skips_cancelled() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.insert(t0 + Duration::from_millis(30), "c");
        let b = t.insert(t0 + Duration::from_millis(20), "b");
        t.insert(t0 + Duration::from_millis(10), "a");
        assert_eq!(t.cancel(b), Some("b"));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(10)));
        let later = t0 + Duration::from_millis(100);
        let fired: Vec<_> = std::iter::from_fn(|| t.pop_expired(later).map(|(_, v)| v)).collect();
        assert_eq!(fired, ["a", "c"]);
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.pop_expired(t0), None);
    }

    #[test]
    fn moot_timers_on_top_are_dropped_and_the_rest_kept() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.insert(t0 + Duration::from_millis(10), "stale");
        t.insert(t0 + Duration::from_millis(20), "live");
        t.insert(
            t0 + Duration::from_millis(30),
            "stale too, but behind a live one",
        );
        t.drop_moot(|v| v.starts_with("stale"));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(20)));
        assert_eq!(t.len(), 2);
    }
}
