//! What the three connections to Redis report (the loop's callbacks for them are routed
//! here), and each reply acted on: entries read from the stream, messages on a channel, the
//! answers to the writer's commands.

use std::time::Instant;

use super::super::protocol::ServerTimer;
use super::{Io, Outgoing, Tag, Which};
use crate::event_loop::{CloseReason, ConnId, Ctx};
use crate::sys;
use crate::transport::redis::{RedisError, RedisEvent};
use crate::wire::cluster::Message;
use crate::wire::offset;
use crate::wire::resp::Reply;

impl Io {
    /// Whether the loop's connection `id` is one of the cluster's.
    pub(in crate::events::server) fn cluster_owns(&self, id: ConnId) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.which(id).is_some())
    }

    pub(in crate::events::server) fn cluster_connected(
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

    pub(in crate::events::server) fn cluster_data(
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

    pub(in crate::events::server) fn cluster_closed(
        &mut self,
        ctx: &mut Ctx<ServerTimer>,
        id: ConnId,
        reason: CloseReason,
    ) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if let Some(which) = c.which(id) {
            // Redis's answer to an `XREAD` did not fit the loop's input buffer: fewer
            // entries at a time, and past one, step over that entry.
            if matches!(which, Which::Reader) && reason == CloseReason::InputOverflow {
                if c.read_count == 1 {
                    c.skip_next = true;
                }
                c.read_count = (c.read_count / 4).max(1);
            }
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
        // XADDs whose replies were lost go back to the front, in their order.
        let mut resend = Vec::new();
        for event in events.drain(..) {
            let Some(c) = self.cluster.as_mut() else {
                return;
            };
            match event {
                RedisEvent::Connected => {
                    let min = c.config.retry_min;
                    c.leg(which).delay = min;
                }
                RedisEvent::Lost(_) => {
                    match which {
                        Which::Reader => c.reading = false,
                        Which::Subscriber => c.subscribed.clear(),
                        Which::Writer => {}
                    }
                    c.lost(ctx, which);
                }
                RedisEvent::Message {
                    channel: _,
                    payload,
                } => self.cluster_published(&payload),
                RedisEvent::Reply(tag, result) => match (tag, result) {
                    (Tag::Xadd(_), Ok(_)) => self.stats.cluster_published += 1,
                    (Tag::Xadd(args), Err(RedisError::Lost(_))) => resend.push(args),
                    // A Redis loading its data again after a restart (or busy with a script)
                    // takes nothing for a moment: written again a little later.
                    (Tag::Xadd(args), Err(RedisError::Server(e))) if transient(&e) => {
                        resend.push(args);
                        let wait = c.config.retry_min;
                        c.write_after = Some(Instant::now() + wait);
                        ctx.set_timer(wait, ServerTimer::ClusterRetry);
                    }
                    (Tag::Xadd(_), Err(_)) => self.stats.cluster_dropped += 1,
                    (Tag::Quiet | Tag::Subscribe, _) => {}
                    (Tag::Count(id), result) => {
                        let n = match result {
                            Ok(reply) => numsub(&reply),
                            Err(_) => None,
                        };
                        self.cluster_counted(&id, n);
                    }
                    (Tag::Restore(r), result) => self.cluster_restore_reply(*r, result),
                    (Tag::Latest, Ok(reply)) if c.last_id == "$" => {
                        let newest = newest_id(reply).unwrap_or_else(|| "0-0".into());
                        c.read_from = offset::from_stream_id(&newest);
                        c.last_id = newest;
                    }
                    (Tag::Latest, _) => {}
                    (Tag::SkipId, Ok(Reply::Bulk(id))) => {
                        (c.skip_next, c.reading) = (false, false);
                        if let Ok(id) = String::from_utf8(id) {
                            c.last_id = id;
                            self.stats.cluster_bad_entries += 1;
                        }
                    }
                    (Tag::SkipId, _) => (c.skip_next, c.reading) = (false, false),
                    (Tag::Xread, result) => {
                        c.reading = false;
                        if result.is_ok() {
                            let full = c.config.read_count.max(1);
                            c.read_count = c.read_count.saturating_mul(2).min(full);
                        }
                        match result {
                            Ok(reply) => self.cluster_entries(reply),
                            Err(RedisError::Server(_)) => {
                                let wait = c.config.retry_max;
                                c.read_after = Some(Instant::now() + wait);
                                ctx.set_timer(wait, ServerTimer::ClusterRetry);
                            }
                            Err(_) => {}
                        }
                    }
                },
            }
        }
        if let Some(c) = self.cluster.as_mut() {
            for args in resend.into_iter().rev() {
                let out = Outgoing {
                    args: std::rc::Rc::clone(&args),
                    tag: Tag::Xadd(args),
                };
                c.queued_bytes += out.bytes();
                c.queue.push_front(out);
            }
            c.events = events;
        }
    }

    /// The entries of an `XREAD` reply, in order: each moves the reader on, and is applied
    /// here (this node's own broadcasts too: they are delivered as they come back).
    fn cluster_entries(&mut self, reply: Reply) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let max_attachments = self.config.limits.max_attachments;
        let (mut bad, mut malformed) = (0, 0);
        let mut read = Vec::new();
        for_each_entry(reply, &mut bad, |id, fields| {
            c.last_id = id.to_string();
            match Message::from_entry(fields, max_attachments) {
                Ok(m) => read.push((offset::from_stream_id(id), m)),
                Err(_) => malformed += 1,
            }
        });
        bad += malformed;
        self.stats.cluster_bad_entries += bad;
        for (offset, m) in read {
            self.cluster_apply(m, offset);
        }
    }

    /// A message that came on a channel this node subscribed to.
    fn cluster_published(&mut self, payload: &[u8]) {
        match Message::from_published(payload, self.config.limits.max_attachments) {
            Ok(m) => self.cluster_apply(m, None),
            Err(_) => self.stats.cluster_bad_entries += 1,
        }
    }
}

/// Calls `f` with the id and the fields (name, value) of each entry of an `XREAD` reply;
/// counts in `bad` what is not an entry.
fn for_each_entry(reply: Reply, bad: &mut u64, mut f: impl FnMut(&str, &[(&[u8], &[u8])])) {
    let streams = match reply {
        Reply::Nil => return, // the block timed out: nothing new
        Reply::Array(streams) => streams,
        _ => {
            *bad += 1;
            return;
        }
    };
    for stream in streams {
        let Reply::Array(mut parts) = stream else {
            *bad += 1;
            continue;
        };
        let Some(Reply::Array(entries)) = parts.pop() else {
            *bad += 1;
            continue;
        };
        for entry in entries {
            let Reply::Array(parts) = entry else {
                *bad += 1;
                continue;
            };
            let (Some(id), Some(Reply::Array(fields))) =
                (parts.first().and_then(Reply::as_bytes), parts.get(1))
            else {
                *bad += 1;
                continue;
            };
            let Ok(id) = std::str::from_utf8(id) else {
                *bad += 1;
                continue;
            };
            let pairs: Vec<(&[u8], &[u8])> = fields
                .chunks(2)
                .filter_map(|kv| Some((kv[0].as_bytes()?, kv.get(1)?.as_bytes()?)))
                .collect();
            f(id, &pairs);
        }
    }
}

/// The id of the one entry of an `XREVRANGE ... COUNT 1` reply; `None` for an empty stream.
fn newest_id(reply: Reply) -> Option<String> {
    let Reply::Array(mut entries) = reply else {
        return None;
    };
    let Some(Reply::Array(mut entry)) = entries.pop() else {
        return None;
    };
    entry.truncate(1);
    let id = entry.pop()?;
    id.as_bytes()
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_string)
}

/// Whether Redis's error `e` says "not now" rather than "never": loading its data after a
/// restart, busy with a script, a cluster slot moving.
fn transient(e: &str) -> bool {
    ["LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN"]
        .iter()
        .any(|p| e.starts_with(p))
}

/// The subscriber count of `PUBSUB NUMSUB <channel>`'s reply `[channel, n]`.
fn numsub(reply: &Reply) -> Option<usize> {
    match reply {
        Reply::Array(parts) => match parts.get(1)? {
            Reply::Integer(n) => usize::try_from(*n).ok(),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn entries_are_read_in_order_and_garbage_counted() {
        let entry = |id: &str, fields: &[&str]| {
            Reply::Array(vec![
                bulk(id),
                Reply::Array(fields.iter().map(|f| bulk(f)).collect()),
            ])
        };
        let reply = Reply::Array(vec![Reply::Array(vec![
            bulk("socket.io"),
            Reply::Array(vec![
                entry("1-0", &["uid", "a", "nsp", "/", "type", "3"]),
                Reply::Integer(7),
                entry("2-0", &["foo", "bar"]),
            ]),
        ])]);
        let (mut bad, mut seen) = (0, Vec::new());
        for_each_entry(reply, &mut bad, |id, fields| {
            seen.push((id.to_string(), fields.len()))
        });
        assert_eq!(bad, 1);
        assert_eq!(seen, vec![("1-0".to_string(), 3), ("2-0".to_string(), 1)]);
        let numsub_reply = Reply::Array(vec![bulk("socket.io#/#"), Reply::Integer(3)]);
        assert_eq!(numsub(&numsub_reply), Some(3));
    }
}
