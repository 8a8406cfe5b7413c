//! The cluster over Redis: the nodes share their broadcasts, rooms, requests and sessions.
//!
//! The format is that of `@socket.io/redis-streams-adapter` 0.3 (the messages of Socket.IO's
//! `ClusterAdapter`, `wire/cluster/`), so that a Node.js Socket.IO server with that adapter
//! can be a member. Three connections to Redis, each a [`RedisConn`] owned by the server
//! (the loop's handler routes their callbacks here):
//!
//! - the **writer**: `XADD socket.io MAXLEN ~ 10000 * uid <node> nsp <ns> type <n> data <..>`
//!   for what every node must see in one order (broadcasts, `socketsJoin`, `socketsLeave`,
//!   `disconnectSockets`); `PUBLISH` for requests and answers; the sessions (`SET`,
//!   `GETDEL`) and the node count (`PUBSUB NUMSUB`). Pipelined.
//! - the **reader**: `XREAD BLOCK 5000 COUNT 100 STREAMS socket.io <last id>`, always one
//!   outstanding (a blocking read holds its connection: every command behind it would wait).
//! - the **subscriber**: `SUBSCRIBE socket.io#<ns>#` (requests to every node) and
//!   `socket.io#<ns>#<uid>#` (answers to this one), per namespace.
//!
//! **A broadcast is delivered as it comes back from the stream**, on this node as on the
//! others, never straight away: every node then delivers every broadcast in the stream's
//! order, and its offset is its entry id (`wire/offset.rs`), the same on every node. That is
//! what lets a client that comes back on another node say what it saw last. The wait is one
//! round trip to Redis (the `XADD`'s and the `XREAD`'s answers leave Redis together).
//! A broadcast with `local()` is delivered at once and has no offset.
//!
//! Faults: what is to be written while the writer is down waits in a bounded buffer (count
//! and bytes; past them it is dropped and counted in `cluster_dropped`); an `XADD` whose
//! reply was lost with its connection is sent again when the writer is back (at least once:
//! Redis may have written it before the connection died). Each connection reconnects with
//! backoff; the reader goes on from the last id it read; the subscriber subscribes again.
//! An entry or a message that is not of this format is skipped and counted
//! (`cluster_bad_entries`).
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | the three connections, their backoff, the write buffer; what is sent at each flush |
//! | `config.rs` | [`ClusterConfig`]: the stream's name and bounds, the buffer, the backoff, the requests' timeout |
//! | `replies.rs` | what the connections report: entries read from the stream, messages on a channel, replies |
//! | `apply.rs` | what a message from the cluster does here |
//! | `requests.rs` | requests that need every node's answer: `fetch_sockets`, `server_side_emit`, the node count; and `sockets_join`/`leave`, `disconnect_sockets` |
//! | `sessions.rs` | sessions kept in Redis, so that a client can recover on another node |

mod apply;
mod config;
mod replies;
mod requests;
mod sessions;

use std::collections::{HashSet, VecDeque};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub use config::ClusterConfig;
pub(super) use requests::ServerEventHandler;
pub use requests::{ClusterError, ServerEvent};

use super::protocol::ServerTimer;
use super::Io;
use crate::event_loop::{ConnId, Ctx, SendError};
use crate::events::ids::Ids;
use crate::transport::redis::{RedisConn, RedisError, RedisEvent};
use serde_json::Value;

use crate::events::names::Names;
use crate::wire::cluster::{Body, EventData, Message, Opts};
use crate::wire::resp::Limits;

/// A command's arguments, shared between the buffer and the tag of an `XADD` that may be
/// sent again: one copy of a broadcast's entry, however often it is handed around.
pub(super) type Args = Rc<[Vec<u8>]>;

/// A command on its way to Redis through the writer.
#[derive(Debug, PartialEq)]
pub(super) struct Outgoing {
    args: Args,
    tag: Tag,
}

impl Outgoing {
    fn bytes(&self) -> usize {
        self.args.iter().map(Vec::len).sum()
    }
}

/// What each command sent to Redis was, so that its reply finds its way.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tag {
    /// An entry for the stream; it keeps its command, to send it again if the reply is lost.
    Xadd(Args),
    /// A `PUBLISH`, or a session written or deleted: the reply says nothing to act on.
    Quiet,
    /// `PUBSUB NUMSUB` for request `id`.
    Count(String),
    /// `GETDEL` of a session a client asks for (`sessions.rs`).
    Restore(Box<sessions::Restore>),
    Xread,
    /// The newest entry's id, asked for while the reader has read nothing yet.
    Latest,
    /// The id of the entry after the last one read, alone: an entry too big to read.
    SkipId,
    Subscribe,
}

#[derive(Clone, Copy)]
enum Which {
    Writer,
    Reader,
    Subscriber,
}

const LEGS: [Which; 3] = [Which::Writer, Which::Reader, Which::Subscriber];

/// One of the connections, with its backoff.
struct Leg {
    conn: RedisConn<Tag>,
    delay: Duration,
    /// Down (never dialled, or lost): to be dialled at the next flush...
    down: bool,
    /// ...but not before then.
    retry_at: Option<Instant>,
}

/// The id of the first entry after `ARGV[1]` (an exclusive start, `(<id>`), without the
/// entry: what the reader asks for to step over an entry too big to read.
const SKIP_SCRIPT: &str = "local e = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', 1) \
    if e[1] then return e[1][1] end return false";

/// Most commands awaiting their replies at once on the writer; the rest wait in the buffer.
const WRITER_PENDING: usize = 1024;

/// A node's cluster state.
pub(super) struct Cluster {
    config: ClusterConfig,
    uid: String,
    writer: Leg,
    reader: Leg,
    subscriber: Leg,
    queue: VecDeque<Outgoing>,
    queued_bytes: usize,
    /// The id of the last entry read; `$` ("only what comes next") until one was, or until
    /// the reply to `XREVRANGE ... COUNT 1` sent beside the first `XREAD` told the newest.
    /// Without that, a reader lost before it read anything would come back with `$` and miss
    /// what was written while it was away.
    last_id: String,
    /// The offset of the stream's newest entry when this node began to read it: a session
    /// from another node can be replayed here only from there on (`sessions.rs`).
    read_from: Option<u64>,
    reading: bool,
    /// Entries per `XREAD` now: `read_count`, or fewer after a reply too big for the loop's
    /// input buffer (a burst of large broadcasts), back up as replies fit again.
    read_count: u32,
    /// Even one entry was too big: the next one is skipped (its id asked for alone) and
    /// counted as bad, so that the reader does not fail on it forever.
    skip_next: bool,
    /// An `XREAD` that Redis refused (the key is not a stream, say) is not sent again before
    /// then: asked at once, it would be refused at once, in a loop as fast as loopback.
    read_after: Option<Instant>,
    /// Redis answered that it cannot write yet (`-LOADING`): nothing is written before then.
    write_after: Option<Instant>,
    /// The namespaces whose channels the subscriber has subscribed to.
    subscribed: HashSet<String>,
    requests: requests::Pending,
    sessions: sessions::Sessions,
    events: Vec<RedisEvent<Tag>>,
}

impl Cluster {
    /// Checks that Redis answers a connect at `addr` (a plain blocking connect, once, at
    /// start: a node that cannot reach Redis at all should say so rather than run alone).
    fn new(addr: SocketAddr, config: ClusterConfig) -> std::io::Result<Cluster> {
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
        // seed: two seeded nodes would get the same id and ignore each other's messages.
        let uid = Ids::new(None)
            .next_id()
            .ok_or_else(|| std::io::Error::other("no random node id (getrandom failed)"))?;
        // A reply bigger than the loop's input bound closes the connection with
        // `InputOverflow`, which the reader takes as "read fewer entries at a time"
        // (`replies.rs`); a bulk bound above it lets that be the one way a reply is too big.
        let limits = Limits {
            max_bulk: 64 << 20,
            ..Limits::default()
        };
        let leg = |max_pending| Leg {
            conn: RedisConn::new(addr, limits, max_pending),
            delay: config.retry_min,
            down: true,
            retry_at: None,
        };
        Ok(Cluster {
            writer: leg(WRITER_PENDING),
            reader: leg(2),
            subscriber: leg(1024),
            uid,
            queue: VecDeque::new(),
            queued_bytes: 0,
            last_id: "$".into(),
            read_from: None,
            reading: false,
            read_count: config.read_count.max(1),
            skip_next: false,
            read_after: None,
            write_after: None,
            subscribed: HashSet::new(),
            requests: requests::Pending::default(),
            sessions: sessions::Sessions::default(),
            events: Vec::new(),
            config,
        })
    }

    fn leg(&mut self, which: Which) -> &mut Leg {
        match which {
            Which::Writer => &mut self.writer,
            Which::Reader => &mut self.reader,
            Which::Subscriber => &mut self.subscriber,
        }
    }

    fn which(&self, id: ConnId) -> Option<Which> {
        LEGS.into_iter().find(|&w| match w {
            Which::Writer => self.writer.conn.owns(id),
            Which::Reader => self.reader.conn.owns(id),
            Which::Subscriber => self.subscriber.conn.owns(id),
        })
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

    /// Queues a command for the writer. Past the buffer's bounds it is dropped: `false`.
    fn queue(&mut self, args: Args, tag: Tag) -> bool {
        let out = Outgoing { args, tag };
        let full = self.queue.len() >= self.config.max_buffered
            || self.queued_bytes + out.bytes() > self.config.max_buffered_bytes;
        if full {
            return false;
        }
        self.queued_bytes += out.bytes();
        self.queue.push_back(out);
        true
    }

    /// Queues `m` for the stream (`XADD`, trimmed to about `max_len` entries).
    fn queue_entry(&mut self, m: &Message) -> bool {
        let c = &self.config;
        let mut args: Vec<Vec<u8>> = [
            "XADD",
            &c.stream,
            "MAXLEN",
            "~",
            &c.max_len.to_string(),
            "*",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        for (name, value) in m.to_entry() {
            args.push(name.as_bytes().to_vec());
            args.push(value);
        }
        let args: Args = args.into();
        self.queue(Rc::clone(&args), Tag::Xadd(args))
    }

    /// Queues `m` for PUB/SUB: to every node of its namespace, or to node `to` only.
    fn queue_published(&mut self, m: &Message, to: Option<&str>) -> bool {
        let channel = self.channel(&m.nsp, to);
        let args = vec![b"PUBLISH".to_vec(), channel.into_bytes(), m.to_published()];
        self.queue(args.into(), Tag::Quiet)
    }

    /// `socket.io#<ns>#` (every node), or `socket.io#<ns>#<uid>#` (node `uid`'s answers).
    fn channel(&self, ns: &str, uid: Option<&str>) -> String {
        let prefix = &self.config.channel_prefix;
        match uid {
            Some(uid) => format!("{prefix}#{ns}#{uid}#"),
            None => format!("{prefix}#{ns}#"),
        }
    }

    /// A message from this node.
    fn message(&self, nsp: &str, body: Body) -> Message {
        Message {
            uid: self.uid.clone(),
            nsp: nsp.to_string(),
            body,
        }
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

    /// Queues a broadcast for the stream (from `broadcast.rs`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cluster_broadcast(
        &mut self,
        nsp: &str,
        event: &str,
        args: &[Value],
        attachments: &[Vec<u8>],
        to: &Names,
        except: [&Names; 2],
        volatile: bool,
    ) {
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        let strings = |n: &Names| n.as_slice().iter().map(|s| s.to_string()).collect();
        let opts = Opts {
            rooms: strings(to),
            except: except.into_iter().flat_map(strings).collect(),
            volatile,
        };
        let data = EventData {
            event: event.to_string(),
            args: args.to_vec(),
            attachments: attachments.to_vec(),
        };
        let body = Body::Broadcast {
            data,
            opts,
            request_id: None,
        };
        let m = c.message(nsp, body);
        self.cluster_write(&m);
    }

    /// Queues `m` for the stream; past the buffer's bounds it is dropped and counted.
    fn cluster_write(&mut self, m: &Message) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if !c.queue_entry(m) {
            self.stats.cluster_dropped += 1;
        }
    }

    /// Queues `m` for PUB/SUB (see [`Cluster::queue_published`]); dropped and counted past
    /// the buffer's bounds.
    fn cluster_publish_message(&mut self, m: &Message, to: Option<&str>) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if !c.queue_published(m, to) {
            self.stats.cluster_dropped += 1;
        }
    }

    /// Dials what is down (once its backoff is over), subscribes to each namespace's
    /// channels, writes what waits, and keeps one `XREAD` outstanding. Runs at the end of
    /// every flush.
    pub(super) fn cluster_flush(&mut self, ctx: &mut Ctx<ServerTimer>) {
        if self.cluster.is_none() || ctx.is_stopping() {
            return;
        }
        self.cluster_sessions_flush();
        let namespaces: Vec<String> = self.namespaces.keys().map(|n| n.to_string()).collect();
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let now = Instant::now();
        for which in LEGS {
            let leg = c.leg(which);
            if !leg.down || leg.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            (leg.down, leg.retry_at) = (false, None);
            if leg.conn.connect(ctx, Some(Duration::from_secs(2))).is_err() {
                c.lost(ctx, which);
            }
        }
        if c.subscriber.conn.is_usable() {
            for ns in namespaces {
                if c.subscribed.contains(&ns) {
                    continue;
                }
                for channel in [c.channel(&ns, None), c.channel(&ns, Some(&c.uid))] {
                    let _ = c
                        .subscriber
                        .conn
                        .command(ctx, ["SUBSCRIBE", &channel], Tag::Subscribe);
                }
                c.subscribed.insert(ns);
            }
        }
        let held = c.write_after.is_some_and(|t| t > now);
        while !held && c.writer.conn.is_usable() && c.writer.conn.pending() < WRITER_PENDING {
            let Some(out) = c.queue.pop_front() else {
                break;
            };
            // Usable and under the pending bound, checked above. A connection the peer
            // has just closed refuses it (its `closed` is on its way): it waits for the next
            // one. What else refuses it is the loop's outbound buffer, full of what Redis
            // does not take: dropped, counted.
            match c.writer.conn.command(ctx, out.args.iter(), out.tag.clone()) {
                Ok(()) => c.queued_bytes -= out.bytes(),
                Err(RedisError::Send(SendError::Closed) | RedisError::NotConnected) => {
                    c.queue.push_front(out);
                    break;
                }
                Err(_) => {
                    c.queued_bytes -= out.bytes();
                    self.stats.cluster_dropped += 1;
                }
            }
        }
        let refused = c.read_after.is_some_and(|t| t > now);
        if c.reader.conn.is_usable() && !c.reading && !refused {
            let stream = c.config.stream.clone();
            if c.last_id == "$" {
                let latest = ["XREVRANGE", &stream, "+", "-", "COUNT", "1"];
                let _ = c.reader.conn.command(ctx, latest, Tag::Latest);
            }
            if c.skip_next {
                // Alone: the next `XREAD` must start after the entry it steps over.
                let after = format!("({}", c.last_id);
                let args = ["EVAL", SKIP_SCRIPT, "1", &stream, &after];
                c.reading = c.reader.conn.command(ctx, args, Tag::SkipId).is_ok();
                return;
            }
            let block = c.config.block.as_millis().to_string();
            let count = c.read_count.to_string();
            let args = [
                "XREAD", "BLOCK", &block, "COUNT", &count, "STREAMS", &stream, &c.last_id,
            ];
            c.reading = c.reader.conn.command(ctx, args, Tag::Xread).is_ok();
        }
    }
}
