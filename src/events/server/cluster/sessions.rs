//! Sessions kept in Redis, so that a client can recover on another node: the one it was on
//! stopped, was killed, or a load balancer sent it elsewhere.
//!
//! Each socket's session is written as the adapter writes it,
//! `SET sio:session:<pid> <base64 msgpack {sid, pid, rooms, data}> PX <max disconnection>`:
//! when the socket connects, when its rooms change, when it is parked, and again every half
//! `max_disconnection_duration` while it lives. Node.js's adapter writes it only when the
//! socket disconnects, which a killed process never does; written while the socket lives,
//! it is there when its node dies.
//!
//! A client that comes back with a private id no parked session here has, and an offset
//! from the stream, makes this node take the session out of Redis (`GETDEL`, so that one
//! node only restores it) before it answers the CONNECT. The session is parked here as if
//! it had been, and restored as any other: the broadcasts it missed are the ones this node
//! read from the stream after the client's offset, which are the same on every node, so
//! they come from this node's replay log. A node that began to read the stream after that
//! offset cannot know what came before: the client gets a new session.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::super::protocol::{Action, ServerTimer};
use super::{Io, Tag};
use crate::events::link::Link;
use crate::events::names::Name;
use crate::events::session::{Parked, Session};
use crate::transport::redis::RedisError;
use crate::wire::cluster::{Body, Opts, StoredSession};
use crate::wire::offset;
use crate::wire::resp::Reply;

/// A CONNECT waiting for its session to come out of Redis.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::events::server) struct Restore {
    conn: Link,
    ns: String,
    data: Option<Value>,
    offset: u64,
}

/// What is to be written to Redis about the sessions.
enum Change {
    /// The session of live socket `sid` is to be written.
    Write(String),
    /// A parked session, as it was when its socket left.
    Put(StoredSession),
    /// The session of private id `pid` ended: its key goes.
    Delete(String),
}

#[derive(Default)]
pub(super) struct Sessions {
    changes: VecDeque<Change>,
    /// The sockets in `changes` already (each written once per batch).
    queued: HashSet<String>,
    refresh_armed: bool,
}

/// Session writes waiting at most (each a few hundred bytes).
const MAX_CHANGES: usize = 100_000;

/// Session writes queued per flush at most, so that a refresh of many sockets leaves the
/// write buffer room for broadcasts; the rest go at the next flushes.
const WRITES_PER_FLUSH: usize = 256;

impl Io {
    /// Socket `sid`'s session changed (connected, joined, left, parked): it is written to
    /// Redis at the next flush.
    pub(in crate::events::server) fn cluster_session_changed(&mut self, sid: &str) {
        let fresh = self
            .cluster
            .as_mut()
            .is_some_and(|c| c.sessions.queued.insert(sid.to_string()));
        if fresh {
            self.push_change(Change::Write(sid.to_string()));
        }
    }

    /// Queues a change; past [`MAX_CHANGES`] (Redis away a long while, sockets coming and
    /// going) the oldest is dropped and counted.
    fn push_change(&mut self, change: Change) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.sessions.changes.push_back(change);
        if c.sessions.changes.len() > MAX_CHANGES {
            if let Some(Change::Write(sid)) = c.sessions.changes.pop_front() {
                c.sessions.queued.remove(&sid);
            }
            self.stats.cluster_dropped += 1;
        }
    }

    /// Session `p` was parked: written again, so that its key lives from now on.
    pub(in crate::events::server) fn cluster_session_parked(&mut self, p: &Parked) {
        if self.cluster.is_none() {
            return;
        }
        if let Some(s) = stored(&p.sid, &p.session) {
            self.push_change(Change::Put(s));
        }
    }

    /// The session of private id `pid` ended for good: its key is deleted.
    pub(in crate::events::server) fn cluster_session_ended(&mut self, pid: &str) {
        if let Some(c) = self.cluster.as_mut() {
            c.sessions
                .changes
                .push_back(Change::Delete(pid.to_string()));
        }
    }

    /// Every live socket's session is written again (a timer, every half
    /// `max_disconnection_duration`), so that its key outlives the socket by that long.
    pub(in crate::events::server) fn cluster_refresh_sessions(&mut self) {
        let sids: Vec<Name> = self.sockets.keys().cloned().collect();
        for sid in sids {
            self.cluster_session_changed(&sid);
        }
        let every = self.refresh_every();
        self.out
            .push(Action::Timer(every, ServerTimer::ClusterRefresh));
    }

    fn refresh_every(&self) -> Duration {
        (self.config.max_disconnection_duration / 2).max(Duration::from_millis(100))
    }

    /// Queues the writes waiting (part of `cluster_flush`).
    pub(super) fn cluster_sessions_flush(&mut self) {
        let every = self.refresh_every();
        let px = self
            .config
            .max_disconnection_duration
            .as_millis()
            .max(1)
            .to_string();
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if !c.sessions.refresh_armed {
            c.sessions.refresh_armed = true;
            self.out
                .push(Action::Timer(every, ServerTimer::ClusterRefresh));
        }
        let room = c.config.max_buffered.saturating_sub(c.queue.len()) / 2;
        for _ in 0..room.min(WRITES_PER_FLUSH) {
            let Some(change) = c.sessions.changes.pop_front() else {
                break;
            };
            let args: Vec<Vec<u8>> = match change {
                Change::Write(sid) => {
                    c.sessions.queued.remove(&sid);
                    let live = self.sockets.get_key_value(sid.as_str());
                    let Some(s) = live.and_then(|(sid, s)| stored(sid, &s.session)) else {
                        continue;
                    };
                    set(&c.config.session_prefix, &s, &px)
                }
                Change::Put(s) => set(&c.config.session_prefix, &s, &px),
                Change::Delete(pid) => {
                    let key = format!("{}{pid}", c.config.session_prefix);
                    ["DEL", &key].map(|a| a.as_bytes().to_vec()).into()
                }
            };
            if !c.queue(args.into(), Tag::Quiet) {
                self.stats.cluster_dropped += 1;
            }
        }
    }

    /// Whether the CONNECT of `conn` to `ns` with `data` waits for a session from Redis
    /// first (see the top of this file). If so, it is answered when the reply comes.
    pub(in crate::events::server) fn cluster_restore_first(
        &mut self,
        conn: Link,
        ns: &str,
        data: &Option<Value>,
    ) -> bool {
        let Some(c) = self.cluster.as_mut() else {
            return false;
        };
        let field = |k: &str| data.as_ref().and_then(|d| d.get(k));
        let Some(pid) = field("pid").and_then(Value::as_str) else {
            return false;
        };
        let offset = match field("offset") {
            Some(Value::String(s)) => offset::parse(s),
            Some(v) => v.as_u64(),
            None => None,
        };
        // A session parked here is asked for too: Redis gives it to one node only, and a
        // node that finds it gone there knows another one restored it.
        let replayable = offset.zip(c.read_from).is_some_and(|(o, from)| o >= from);
        let parked = self.recovery.is_parked(pid);
        if !(replayable || parked) || self.live_pids.contains_key(pid) {
            return false;
        }
        let key = format!("{}{pid}", c.config.session_prefix);
        let restore = Restore {
            conn,
            ns: ns.to_string(),
            data: data.clone(),
            offset: offset.unwrap_or(0),
        };
        let args = ["GETDEL", &key].map(|a| a.as_bytes().to_vec());
        c.queue(args.into(), Tag::Restore(Box::new(restore)))
    }

    /// The session asked for came out of Redis (or did not): parked here, then the CONNECT
    /// goes on as any other.
    pub(super) fn cluster_restore_reply(&mut self, r: Restore, reply: Result<Reply, RedisError>) {
        if !self.conns.contains_key(&r.conn) {
            return; // the client left meanwhile
        }
        let pid = r
            .data
            .as_ref()
            .and_then(|d| d["pid"].as_str())
            .map(str::to_string);
        let parked_here = pid.as_ref().is_some_and(|p| self.recovery.is_parked(p));
        let reply_ok = reply.is_ok();
        let stored = match reply {
            Ok(Reply::Bulk(text)) => StoredSession::from_text(&text).ok(),
            _ => None,
        };
        // What Redis holds is the newest (written at every change); Redis without it means
        // another node restored it, or it expired. Only with Redis away is a session parked
        // here restored as it is.
        if let Some(p) = pid.filter(|_| parked_here && reply_ok) {
            self.recovery.forget(&p.to_string());
        }
        let free = |s: &StoredSession| !self.sockets.contains_key(s.sid.as_str());
        if let Some(s) = stored.filter(free) {
            // Wherever else the socket still looks alive (a connection not yet known to be
            // dead), or is parked, it ends: one node has it.
            let took_over = Body::DisconnectSockets {
                opts: Opts {
                    rooms: vec![s.sid.clone()],
                    ..Opts::default()
                },
                close: true,
            };
            self.cluster_tell(&r.ns, took_over);
            let mut session = Session::new(s.pid);
            for room in s.rooms.into_iter().filter(|room| *room != s.sid) {
                session.joined.insert(room, 0);
            }
            let p = Parked {
                sid: Name::from(s.sid),
                namespace: self.ns_name(&r.ns),
                wire: self.wire_of(r.conn),
                session,
                expires: Instant::now() + self.config.max_disconnection_duration,
                last_sent: r.offset,
                left_at: r.offset,
            };
            self.stats.cluster_sessions_restored += 1;
            let max = self.config.max_parked_sessions;
            self.recovery.park(p, max);
        }
        self.connect_socket(r.conn, r.ns, r.data);
    }
}

/// `SET <prefix><pid> <session> PX <px>`.
fn set(prefix: &str, s: &StoredSession, px: &str) -> Vec<Vec<u8>> {
    let key = format!("{prefix}{}", s.pid);
    let value = s.to_text();
    ["SET", &key, &value, "PX", px]
        .map(|a| a.as_bytes().to_vec())
        .into()
}

/// Socket `sid`'s session as Redis keeps it (none for a socket without a private id).
fn stored(sid: &str, session: &Session) -> Option<StoredSession> {
    if session.pid.is_empty() {
        return None;
    }
    let mut rooms: Vec<String> = session.joined.keys().cloned().collect();
    rooms.push(sid.to_string());
    rooms.sort();
    Some(StoredSession {
        sid: sid.to_string(),
        pid: session.pid.clone(),
        rooms,
    })
}
