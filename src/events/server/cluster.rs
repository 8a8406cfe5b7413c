//! The cluster over Redis: a node's broadcasts go to a shared Redis stream, and the
//! broadcasts other nodes put there are delivered to this node's sockets.
//!
//! The format is that of `@socket.io/redis-streams-adapter` 0.3 (Socket.IO's
//! `ClusterAdapter` messages in one stream, default name `socket.io`), so that a Node.js
//! Socket.IO server with that adapter can share the stream. One entry:
//!
//! ```text
//! XADD socket.io MAXLEN ~ 10000 * uid <node id> nsp /chat type 3 data <JSON>
//! data = {"packet":{"type":2,"data":["event",...args],"nsp":"/chat"},
//!         "opts":{"rooms":[...],"except":[...],"flags":{}}}
//! ```
//!
//! Two connections, both [`RedisConn`]s owned by the server (the loop's handler routes their
//! callbacks here): a *writer* for `XADD`, pipelined, and a *reader* that holds
//! `XREAD BLOCK 5000 COUNT 100 STREAMS socket.io <last id>` (a blocking read holds its
//! connection: every command queued behind it would wait).
//!
//! What crosses so far, and what does not (deliberate simplifications, for the next steps):
//! - Broadcasts (type 3) with rooms and `except`, both ways. A volatile broadcast stays on
//!   its node, and so does one with binary attachments (the adapter would send msgpack in
//!   base64; such entries from other nodes are counted as bad entries).
//! - Not yet: heartbeats and the node count, `socketsJoin`/`fetchSockets`/`serverSideEmit`
//!   (PUB/SUB in the real adapter), broadcasts with acks, sessions kept in Redis.
//!
//! Faults: a broadcast made while the writer is down waits in a bounded buffer (count and
//! bytes; past them it is dropped and counted in `cluster_dropped`); an `XADD` whose reply was
//! lost with its connection is sent again when the writer is back (at least once: Redis may
//! have written it before the connection died). Each connection reconnects with backoff; the
//! reader goes on from the last id it read. An entry that is not a message of this format
//! is skipped and counted (`cluster_bad_entries`).

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cluster_entry::{self as entry, read_entries, Remote, BROADCAST};
use super::protocol::ServerTimer;
use super::Io;
use crate::event_loop::{CloseReason, ConnId, Ctx};
use crate::events::ids::Ids;
use crate::events::names::Names;
use crate::sys;
use crate::transport::redis::{RedisConn, RedisError, RedisEvent};
use crate::wire::resp::Limits;

/// Settings of a node's cluster part (the defaults are the adapter's).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The stream's name (the adapter's `streamName`).
    pub stream: String,
    /// The stream is trimmed to about this many entries (`MAXLEN ~`), so that Redis's memory
    /// stays bounded.
    pub max_len: u64,
    /// Entries per `XREAD`, and how long one blocks.
    pub read_count: u32,
    pub block: Duration,
    /// Broadcasts kept while Redis is unreachable: at most this many...
    pub max_buffered: usize,
    /// ...and this many bytes (of namespace and JSON).
    pub max_buffered_bytes: usize,
    /// The reconnect backoff: the first wait, doubled after each failure up to the last.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            stream: "socket.io".into(),
            max_len: 10_000,
            read_count: 100,
            block: Duration::from_secs(5),
            max_buffered: 1000,
            max_buffered_bytes: 1 << 20,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// A broadcast on its way to the stream.
#[derive(Debug, PartialEq)]
pub(super) struct Outgoing {
    nsp: String,
    data: String,
}

impl Outgoing {
    fn bytes(&self) -> usize {
        self.nsp.len() + self.data.len()
    }
}

/// What each command sent to Redis was, so that its reply finds its way.
#[derive(Debug, PartialEq)]
pub(super) enum Tag {
    Xadd(Outgoing),
    Xread,
    /// The newest entry's id, asked for while the reader has read nothing yet.
    Latest,
}

#[derive(Clone, Copy)]
enum Which {
    Writer,
    Reader,
}

/// One of the two connections, with its backoff.
struct Leg {
    conn: RedisConn<Tag>,
    delay: Duration,
    /// Down (never dialled, or lost): to be dialled at the next flush...
    down: bool,
    /// ...but not before then.
    retry_at: Option<Instant>,
}

/// Most `XADD`s awaiting their replies at once; the rest wait in the buffer.
const WRITER_PENDING: usize = 1024;

/// A node's cluster state: its id, the two connections, the broadcasts waiting to be sent
/// and where the reader is in the stream.
pub(super) struct Cluster {
    config: ClusterConfig,
    uid: String,
    writer: Leg,
    reader: Leg,
    queue: VecDeque<Outgoing>,
    queued_bytes: usize,
    /// The id of the last entry read; `$` ("only what comes next") until one was, or until
    /// the reply to `XREVRANGE ... COUNT 1` sent beside the first `XREAD` told the newest.
    /// Without that, a reader lost before it read anything would come back with `$` and miss
    /// what was written while it was away.
    last_id: String,
    reading: bool,
    /// An `XREAD` that Redis refused (the key is not a stream, say) is not sent again before
    /// then: asked at once, it would be refused at once, in a loop as fast as loopback.
    read_after: Option<Instant>,
    events: Vec<RedisEvent<Tag>>,
}

impl Cluster {
    /// Checks that Redis answers a connect at `addr` (a plain blocking connect, once, at
    /// start: a node that cannot reach Redis at all should say so rather than run alone).
    pub(super) fn new(addr: SocketAddr, config: ClusterConfig) -> std::io::Result<Cluster> {
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "Redis is not reachable at {addr} ({e}): start redis-server there, \
                     or run without --redis"
                ),
            )
        })?;
        // The node id always comes from the operating system, even for a server with a
        // seed: two seeded nodes would get the same id and ignore each other's entries.
        let uid = Ids::new(None)
            .next_id()
            .ok_or_else(|| std::io::Error::other("no random node id (getrandom failed)"))?;
        let leg = |max_pending| Leg {
            conn: RedisConn::new(addr, Limits::default(), max_pending),
            delay: config.retry_min,
            down: true,
            retry_at: None,
        };
        Ok(Cluster {
            writer: leg(WRITER_PENDING),
            reader: leg(2),
            uid,
            queue: VecDeque::new(),
            queued_bytes: 0,
            last_id: "$".into(),
            reading: false,
            read_after: None,
            events: Vec::new(),
            config,
        })
    }

    fn leg(&mut self, which: Which) -> &mut Leg {
        match which {
            Which::Writer => &mut self.writer,
            Which::Reader => &mut self.reader,
        }
    }

    fn which(&self, id: ConnId) -> Option<Which> {
        if self.writer.conn.owns(id) {
            Some(Which::Writer)
        } else if self.reader.conn.owns(id) {
            Some(Which::Reader)
        } else {
            None
        }
    }

    /// The leg is down: dial again after its backoff (a timer wakes the loop for it).
    fn lost(&mut self, ctx: &mut Ctx<ServerTimer>, which: Which) {
        let max = self.config.retry_max;
        let leg = self.leg(which);
        let delay = leg.delay;
        leg.down = true;
        leg.retry_at = Some(Instant::now() + delay);
        leg.delay = (delay * 2).min(max);
        ctx.set_timer(delay, ServerTimer::ClusterRetry);
    }
}

impl Io {
    /// This node's id in the cluster, if it joined one.
    pub fn cluster_uid(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.uid.as_str())
    }

    pub(super) fn join_cluster(
        &mut self,
        addr: SocketAddr,
        config: ClusterConfig,
    ) -> std::io::Result<()> {
        self.cluster = Some(Box::new(Cluster::new(addr, config)?));
        Ok(())
    }

    /// Queues broadcast `event` for the stream (from `broadcast.rs`); past the buffer's bounds
    /// it is dropped and counted.
    pub(super) fn cluster_publish(
        &mut self,
        nsp: &str,
        event: &str,
        args: &[Value],
        to: &Names,
        except: [&Names; 2],
    ) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let strings = |n: &Names| n.as_slice().iter().map(|s| s.to_string()).collect();
        let rooms: Vec<String> = strings(to);
        let except: Vec<String> = except.into_iter().flat_map(strings).collect();
        let out = Outgoing {
            nsp: nsp.to_string(),
            data: entry::broadcast_data(nsp, event, args, &rooms, &except),
        };
        let full = c.queue.len() >= c.config.max_buffered
            || c.queued_bytes + out.bytes() > c.config.max_buffered_bytes;
        if full {
            self.stats.cluster_dropped += 1;
            return;
        }
        c.queued_bytes += out.bytes();
        c.queue.push_back(out);
    }

    /// Whether the loop's connection `id` is one of the cluster's.
    pub(super) fn cluster_owns(&self, id: ConnId) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.which(id).is_some())
    }

    pub(super) fn cluster_connected(
        &mut self,
        ctx: &mut Ctx<ServerTimer>,
        id: ConnId,
        result: sys::Result<()>,
    ) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if let Some(which) = c.which(id) {
            let mut events = std::mem::take(&mut c.events);
            c.leg(which).conn.connected(ctx, result, &mut events);
            self.cluster_events(ctx, which, events);
        }
    }

    pub(super) fn cluster_data(
        &mut self,
        ctx: &mut Ctx<ServerTimer>,
        id: ConnId,
        bytes: &[u8],
    ) -> usize {
        let Some(c) = self.cluster.as_mut() else {
            return bytes.len();
        };
        let Some(which) = c.which(id) else {
            return bytes.len();
        };
        let mut events = std::mem::take(&mut c.events);
        let used = c.leg(which).conn.data(ctx, bytes, &mut events);
        self.cluster_events(ctx, which, events);
        used
    }

    pub(super) fn cluster_closed(
        &mut self,
        ctx: &mut Ctx<ServerTimer>,
        id: ConnId,
        reason: CloseReason,
    ) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if let Some(which) = c.which(id) {
            let mut events = std::mem::take(&mut c.events);
            c.leg(which).conn.closed(ctx, reason, &mut events);
            self.cluster_events(ctx, which, events);
        }
    }

    /// Acts on what one connection reported.
    fn cluster_events(
        &mut self,
        ctx: &mut Ctx<ServerTimer>,
        which: Which,
        mut events: Vec<RedisEvent<Tag>>,
    ) {
        let mut remotes = Vec::new();
        let mut bad = 0;
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        // XADDs whose replies were lost go back to the front, in their order.
        let mut resend = Vec::new();
        for event in events.drain(..) {
            match event {
                RedisEvent::Connected => {
                    let min = c.config.retry_min;
                    c.leg(which).delay = min;
                }
                RedisEvent::Lost(_) => {
                    if matches!(which, Which::Reader) {
                        c.reading = false;
                    }
                    c.lost(ctx, which);
                }
                RedisEvent::Reply(Tag::Xadd(_), Ok(_)) => self.stats.cluster_published += 1,
                RedisEvent::Reply(Tag::Xadd(out), Err(RedisError::Lost(_))) => resend.push(out),
                RedisEvent::Reply(Tag::Xadd(_), Err(_)) => self.stats.cluster_dropped += 1,
                RedisEvent::Reply(Tag::Latest, Ok(reply)) if c.last_id == "$" => {
                    c.last_id = entry::newest_id(reply).unwrap_or_else(|| "0-0".into());
                }
                RedisEvent::Reply(Tag::Latest, _) => {}
                RedisEvent::Reply(Tag::Xread, result) => {
                    c.reading = false;
                    match result {
                        Ok(reply) => {
                            bad += read_entries(reply, &c.uid, &mut c.last_id, &mut remotes)
                        }
                        Err(RedisError::Server(_)) => {
                            let wait = c.config.retry_max;
                            c.read_after = Some(Instant::now() + wait);
                            ctx.set_timer(wait, ServerTimer::ClusterRetry);
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        for out in resend.into_iter().rev() {
            c.queued_bytes += out.bytes();
            c.queue.push_front(out);
        }
        c.events = events;
        self.stats.cluster_bad_entries += bad;
        for r in remotes {
            self.deliver_remote(r);
        }
    }

    /// Delivers a broadcast from another node to the matching sockets here, without
    /// publishing it again.
    fn deliver_remote(&mut self, r: Remote) {
        if !self.namespaces.contains_key(r.nsp.as_str()) {
            return; // no socket here can be in it
        }
        let mut b = self.broadcast(&r.nsp).local(); // not published again
        for room in &r.rooms {
            b = b.to(room);
        }
        for room in &r.except {
            b = b.except(room);
        }
        if r.volatile {
            b = b.volatile();
        }
        match b.emit(&r.event, r.args) {
            Ok(_) => self.stats.cluster_received += 1,
            Err(_) => self.stats.cluster_bad_entries += 1,
        }
    }

    /// Dials what is down (once its backoff is over), sends the waiting broadcasts, and keeps
    /// one `XREAD` outstanding. Runs at the end of every flush.
    pub(super) fn cluster_flush(&mut self, ctx: &mut Ctx<ServerTimer>) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if ctx.is_stopping() {
            return;
        }
        let now = Instant::now();
        for which in [Which::Writer, Which::Reader] {
            let leg = c.leg(which);
            if !leg.down || leg.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            (leg.down, leg.retry_at) = (false, None);
            if leg.conn.connect(ctx, Some(Duration::from_secs(2))).is_err() {
                c.lost(ctx, which);
            }
        }
        let stream = c.config.stream.clone();
        let max_len = c.config.max_len.to_string();
        while c.writer.conn.is_usable() && c.writer.conn.pending() < WRITER_PENDING {
            let Some(out) = c.queue.pop_front() else {
                break;
            };
            c.queued_bytes -= out.bytes();
            let args: [&[u8]; 13] = [
                b"XADD",
                stream.as_bytes(),
                b"MAXLEN",
                b"~",
                max_len.as_bytes(),
                b"*",
                b"uid",
                c.uid.as_bytes(),
                b"nsp",
                out.nsp.as_bytes(),
                b"type",
                BROADCAST.as_bytes(),
                b"data",
            ];
            let args: Vec<&[u8]> = args.into_iter().chain([out.data.as_bytes()]).collect();
            // The tag keeps a copy, to send it again if the reply is lost with the connection.
            let (nsp, data) = (out.nsp.clone(), out.data.clone());
            // Usable and under the pending bound, checked above: what can still refuse it is
            // the loop's outbound buffer, full of what Redis does not take. Dropped, counted.
            let sent = c
                .writer
                .conn
                .command(ctx, args, Tag::Xadd(Outgoing { nsp, data }));
            if sent.is_err() {
                self.stats.cluster_dropped += 1;
            }
        }
        let refused = c.read_after.is_some_and(|t| t > now);
        if c.reader.conn.is_usable() && !c.reading && !refused {
            if c.last_id == "$" {
                let latest = ["XREVRANGE", &stream, "+", "-", "COUNT", "1"];
                let _ = c.reader.conn.command(ctx, latest, Tag::Latest);
            }
            let block = c.config.block.as_millis().to_string();
            let count = c.config.read_count.to_string();
            let args = [
                "XREAD", "BLOCK", &block, "COUNT", &count, "STREAMS", &stream, &c.last_id,
            ];
            c.reading = c.reader.conn.command(ctx, args, Tag::Xread).is_ok();
        }
    }
}
