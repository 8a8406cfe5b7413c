//! Connection state recovery: sessions kept after their connection dropped (parked), the
//! replay log of recent broadcasts, and the offset of the last broadcast queued to each
//! connection. A client that comes back with its private id and offset gets its socket id,
//! its rooms and what it missed (docs/protocol.md 11.3).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::config::ServerConfig;
use super::Io;
use crate::events::encoder::Wire;
use crate::events::link::Link;
use crate::events::names::Name;
use crate::events::replay::{Bounds, Entry, ReplayLog};
use crate::events::session::{Parked, Session};

#[derive(Default)]
pub(super) struct Recovery {
    /// Sessions whose connection dropped, by private id, waiting for their client.
    parked: HashMap<String, Parked>,
    /// The parked sessions' private ids in the order they were parked, which is also the
    /// order they expire in (one `max_disconnection_duration` for all): expiring and
    /// evicting take from the front instead of searching the table. An id whose session was
    /// restored, or parked again since, stays here until it reaches the front and is skipped.
    parked_order: VecDeque<(Instant, String)>,
    /// Recent broadcasts, for replay, and the offsets they take.
    replay: ReplayLog,
    /// By connection slot: the offset of the last broadcast queued to it (an array write
    /// per recipient, where a table would cost a lookup per delivery).
    last_sent: Vec<u64>,
}

impl Recovery {
    /// What the replay log dropped early, and the bytes it holds (for `EventStats`).
    pub(super) fn replay_figures(&self) -> (u64, u64) {
        (self.replay.dropped_early(), self.replay.bytes() as u64)
    }

    /// The offset of the last broadcast so far.
    pub(super) fn last_offset(&self) -> u64 {
        self.replay.last_offset()
    }

    /// Logs broadcast `offset` for replay, within the bounds `config` sets.
    pub(super) fn log(
        &mut self,
        offset: u64,
        entry: Entry<'_>,
        config: &ServerConfig,
        now: Instant,
    ) {
        let bounds = Bounds {
            max_age: config.max_disconnection_duration,
            max_entries: config.replay_limit,
            max_bytes: config.replay_max_bytes,
        };
        self.replay.push(offset, entry, bounds, now);
    }

    /// A new connection at index `conn.index()` (slots are reused): sent nothing yet.
    pub(super) fn connected(&mut self, conn: Link) {
        let slot = conn.index();
        if self.last_sent.len() <= slot {
            self.last_sent.resize(slot + 1, 0);
        }
        self.last_sent[slot] = 0;
    }

    /// Remembers that broadcast `offset` was queued to `conn` (see `Parked::last_sent`).
    pub(super) fn note_sent(&mut self, conn: Link, offset: u64) {
        if let Some(last) = self.last_sent.get_mut(conn.index()) {
            *last = (*last).max(offset);
        }
    }

    fn last_sent(&self, conn: Link) -> u64 {
        self.last_sent.get(conn.index()).copied().unwrap_or(0)
    }

    /// The parked session of socket `sid`, if it is away.
    pub(super) fn parked_by_sid(&mut self, sid: &str) -> Option<&mut Parked> {
        self.parked.values_mut().find(|p| &*p.sid == sid)
    }

    /// Drops the parked session of private id `pid` (another node restored it).
    pub(super) fn forget(&mut self, pid: &str) {
        self.parked.remove(pid);
    }

    /// Drops the parked session of socket `sid`, if any (a search: rare, see
    /// `cluster/apply.rs`).
    pub(super) fn forget_sid(&mut self, sid: &str) {
        self.parked.retain(|_, p| &*p.sid != sid);
    }

    /// Whether the session of private id `pid` is parked here.
    pub(super) fn is_parked(&self, pid: &str) -> bool {
        self.parked.contains_key(pid)
    }

    /// Keeps `parked` for its client, dropping the oldest past `max` sessions.
    pub(super) fn park(&mut self, parked: Parked, max: usize) {
        while self.parked.len() >= max.max(1) {
            if self.unpark_oldest(None).is_none() {
                break;
            }
        }
        let pid = parked.session.pid.clone();
        self.parked_order.push_back((parked.expires, pid.clone()));
        self.parked.insert(pid, parked);
    }

    /// Drops the sessions that expired by `now`.
    pub(super) fn expire(&mut self, now: Instant) {
        while self.unpark_oldest(Some(now)).is_some() {}
    }

    /// Drops the oldest parked session, or with `expired_at`, the oldest only if it expired
    /// by then. Returns its private id, or `None` when there was none to drop.
    fn unpark_oldest(&mut self, expired_at: Option<Instant>) -> Option<String> {
        while let Some((expires, pid)) = self.parked_order.front() {
            if expired_at.is_some_and(|now| *expires > now) {
                return None;
            }
            let (expires, pid) = (*expires, pid.clone());
            self.parked_order.pop_front();
            // Skip an entry whose session was restored, or parked again later.
            if self.parked.get(&pid).is_some_and(|p| p.expires == expires) {
                self.parked.remove(&pid);
                return Some(pid);
            }
        }
        None
    }

    /// Takes out the parked session `pid` of namespace `ns` if restoring it loses nothing:
    /// its socket id is free (`taken` says whether a live socket has it) and every broadcast
    /// it would have received after the client's `offset` is still in the log.
    pub(super) fn restore(
        &mut self,
        pid: &str,
        ns: &str,
        offset: u64,
        taken: impl Fn(&str) -> bool,
    ) -> Option<Parked> {
        let k = self.parked.get(pid)?;
        if &*k.namespace != ns || taken(&k.sid) {
            return None;
        }
        let p = self.parked.remove(pid)?;
        self.replay
            .complete(offset, p.last_sent, p.left_at)
            .then_some(p)
    }
}

impl Io {
    /// Parks the session of socket `sid`, just removed from connection `conn`, for its
    /// client's return.
    pub(super) fn park(&mut self, sid: Name, ns: Name, conn: Link, session: Session) {
        let p = Parked {
            sid,
            namespace: ns,
            wire: self.wire_of(conn),
            session,
            expires: Instant::now() + self.config.max_disconnection_duration,
            last_sent: self.recovery.last_sent(conn),
            left_at: self.recovery.last_offset(),
        };
        self.cluster_session_parked(&p);
        let max = self.config.max_parked_sessions;
        self.recovery.park(p, max);
    }

    /// Queues to restored socket `sid` on `conn` the broadcasts it missed while away, in
    /// order, after the client's `offset`. What it was sent before it left (up to
    /// `last_sent`) is owed again until its client says it saw it.
    pub(super) fn replay_missed(&mut self, conn: Link, sid: &str, offset: u64, last_sent: u64) {
        let Some(s) = self.sockets.get(sid) else {
            return;
        };
        let mut last = last_sent;
        let missed = self
            .recovery
            .replay
            .missed(&s.namespace, sid, &s.session.joined, offset);
        let wire = s.wire;
        let mut joined = Vec::new();
        for (o, (head, tail)) in missed {
            self.stats.broadcasts_replayed += 1;
            // The log keeps socklab's bytes; another wire gets them re-encoded.
            let frame = if wire == Wire::Socklab {
                self.out.copy_parts(head, tail)
            } else {
                joined.clear();
                joined.extend_from_slice(head);
                joined.extend_from_slice(tail);
                let mut bytes = Vec::new();
                if !wire.transcode_event(&joined, &mut bytes) {
                    continue;
                }
                self.out.copy(&bytes)
            };
            self.out.send(conn, frame, false);
            last = last.max(o);
        }
        self.recovery.note_sent(conn, last);
    }
}
