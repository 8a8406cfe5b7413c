//! Broadcasts: choosing the recipients (rooms, unions, exceptions), encoding the event
//! once, queueing the same bytes to every recipient, and logging it for replay.

use std::time::Instant;

use serde_json::Value;

use super::Io;
use crate::events::encoder::Wire;
use crate::events::error::{check_attachments, check_name};
use crate::events::link::Link;
use crate::events::names::{Name, Names};
use crate::events::replay::Entry;
use crate::events::EmitError;
use crate::wire::packet::{self, EventRef};

/// Every socket of namespace `ns`, as connections in the order of the socket ids (the
/// order a broadcast's recipients are chosen in). A burst of broadcasts to a thousand
/// sockets sorts them once, not once per message (`make bench`, fan-out).
pub(super) struct Everyone {
    ns: Name,
    conns: Vec<(Link, Wire)>,
}

/// A broadcast being put together: `io.broadcast("/").to("room").except("x").emit(...)`.
pub struct Broadcast<'a> {
    io: &'a mut Io,
    ns: Name,
    to: Names,
    except_rooms: Names,
    except_sockets: Names,
    volatile: bool,
    /// For this node's sockets only: read from the cluster's stream (not to be published
    /// again), or asked for with `local`.
    local: bool,
    /// Read from the cluster's stream at this offset (`Some(None)`: with none, volatile).
    from_stream: Option<Option<u64>>,
}

impl Io {
    /// A broadcast to namespace `ns`: choose recipients with `to`/`except`, then `emit`.
    pub fn broadcast(&mut self, ns: &str) -> Broadcast<'_> {
        let ns = self.ns_name(ns);
        Broadcast {
            io: self,
            ns,
            to: Names::None,
            except_rooms: Names::None,
            except_sockets: Names::None,
            volatile: false,
            local: false,
            from_stream: None,
        }
    }

    /// A broadcast to everyone in `sid`'s namespace but `sid` (Socket.IO's
    /// `socket.broadcast`).
    pub fn broadcast_from(&mut self, sid: &str) -> Broadcast<'_> {
        let ns = match self.sockets.get(sid) {
            Some(s) => s.namespace.clone(),
            None => self.ns_name(packet::DEFAULT_NAMESPACE),
        };
        let except = self.sid_name(sid).unwrap_or_else(|| Name::from(sid));
        let mut b = self.broadcast(&ns);
        b.except_sockets.push(except);
        b
    }
}

impl Broadcast<'_> {
    /// The shared copy of room name `room` (a new one if no socket is in it).
    fn room_name(&self, room: &str) -> Name {
        let io = &*self.io;
        match io.rooms.name(&self.ns, room) {
            Some(n) => n,
            None => io.sid_name(room).unwrap_or_else(|| Name::from(room)),
        }
    }

    /// Only sockets in `room` (several `to`s: the union, each socket once).
    pub fn to(mut self, room: &str) -> Self {
        let name = self.room_name(room);
        self.to.push(name);
        self
    }

    /// Not the sockets in `room`.
    pub fn except(mut self, room: &str) -> Self {
        let name = self.room_name(room);
        self.except_rooms.push(name);
        self
    }

    /// Not socket `sid`.
    pub fn except_socket(mut self, sid: &str) -> Self {
        let name = self.io.sid_name(sid).unwrap_or_else(|| Name::from(sid));
        self.except_sockets.push(name);
        self
    }

    /// Drop the event for sockets whose output is backed up.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// For this server's sockets only, even in a cluster (Socket.IO's `io.local`): a feed
    /// that every node runs for its own clients, say. Outside a cluster it changes nothing.
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// A broadcast the cluster's stream brought, at `offset` (`cluster/apply.rs`): delivered
    /// here, not published again.
    pub(super) fn streamed(mut self, offset: Option<u64>) -> Self {
        self.local = true;
        self.from_stream = Some(offset);
        self
    }

    /// Whether the broadcast goes to the whole namespace.
    fn whole(&self) -> bool {
        self.to.is_empty() && self.except_rooms.is_empty() && self.except_sockets.is_empty()
    }

    /// Whether socket `sid` is left out by `except`/`except_socket`.
    fn excluded(&self, sid: &str) -> bool {
        self.except_sockets.contains(sid)
            || self
                .except_rooms
                .as_slice()
                .iter()
                .any(|room| self.io.in_room(sid, room))
    }

    /// Puts the recipients in `io.chosen`: each socket once, with its connection, in the
    /// order of the socket ids (so that a recorded demo sends in the same order every run).
    /// No temporary set: the candidates are sorted and their repeats dropped.
    fn choose(&mut self) {
        let mut chosen = std::mem::take(&mut self.io.chosen);
        chosen.clear();
        let io = &*self.io;
        if self.to.is_empty() {
            let of_ns = io.sockets.iter().filter(|(_, s)| s.namespace == self.ns);
            chosen.extend(
                of_ns
                    .filter(|(sid, _)| !self.excluded(sid))
                    .map(|(sid, s)| (sid.clone(), s.conn, s.wire)),
            );
        } else {
            for room in self.to.as_slice() {
                for sid in io.members(&self.ns, room) {
                    if let Some(s) = io.sockets.get(&**sid) {
                        if !self.excluded(sid) {
                            chosen.push((sid.clone(), s.conn, s.wire));
                        }
                    }
                }
            }
        }
        // Ids are unique, so an unstable sort gives the one order there is.
        chosen.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        chosen.dedup_by(|a, b| a.0 == b.0);
        self.io.chosen = chosen;
    }

    /// Emits to every recipient: encoded once, the same bytes queued to each. Returns how
    /// many sockets it was queued to.
    pub fn emit(self, event: &str, args: Vec<Value>) -> Result<usize, EmitError> {
        self.emit_parts(event, &args, &[])
    }

    /// [`emit`](Broadcast::emit) with the arguments borrowed: a handler that passes on
    /// what it received copies nothing.
    pub fn emit_args(self, event: &str, args: &[Value]) -> Result<usize, EmitError> {
        self.emit_parts(event, args, &[])
    }

    /// [`emit`](Broadcast::emit) with binary attachments.
    pub fn emit_with(
        self,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
    ) -> Result<usize, EmitError> {
        self.emit_parts(event, &args, &attachments)
    }

    // ANCHOR: broadcast_emit
    fn emit_parts(
        mut self,
        event: &str,
        args: &[Value],
        attachments: &[Vec<u8>],
    ) -> Result<usize, EmitError> {
        check_name(event, &self.io.config.limits)?;
        check_attachments(attachments.len(), &self.io.config.limits)?;
        // In a cluster, a broadcast goes to the stream, and is delivered here as it comes
        // back, with the other nodes' (`cluster/mod.rs`): none is queued to anyone yet.
        if self.io.cluster.is_some() && !self.local {
            let except = [&self.except_rooms, &self.except_sockets];
            let volatile = self.volatile;
            self.io.cluster_broadcast(
                &self.ns,
                event,
                args,
                attachments,
                &self.to,
                except,
                volatile,
            );
            return Ok(0);
        }
        // Every broadcast carries its offset in the EVENT header, so that a client coming
        // back can say what it saw last. Volatile broadcasts are never replayed, so they
        // take no offset; in a cluster the offset is the stream's, and one this node's
        // `local` broadcast does not have.
        let offset = match self.from_stream {
            Some(offset) => offset,
            None if self.volatile || self.io.cluster.is_some() => None,
            None => Some(self.io.recovery.last_offset() + 1),
        };
        let ns = self.ns.clone();
        let e = EventRef {
            ns: &ns,
            name: event,
            args,
            attachments,
            id: None,
            offset,
        };
        // Encoded once per wire: socklab's bytes always (the replay log keeps them), the
        // Socket.IO bytes when the first recipient that speaks it is met.
        let frame = self
            .io
            .out
            .encode_event(Wire::Socklab, &e, &self.io.config.limits)?;
        let io_stats = &mut self.io.stats;
        io_stats.broadcasts += 1;
        io_stats.bytes_encoded += frame.len() as u64;
        let mut frames = [None; Wire::COUNT];
        frames[Wire::Socklab.index()] = Some(frame);

        // The recipients: the list kept from the last broadcast to this whole namespace
        // if no socket came or went since, or chosen now (and kept, if whole).
        let whole = self.whole();
        let cached = self.io.everyone.take().filter(|e| whole && e.ns == self.ns);
        if cached.is_none() {
            self.choose();
        }
        let io = &mut *self.io;
        let everyone = cached.or_else(|| {
            whole.then(|| Everyone {
                ns: self.ns.clone(),
                conns: io.chosen.iter().map(|&(_, conn, w)| (conn, w)).collect(),
            })
        });
        let limits = io.config.limits;
        let mut deliver = |conn: Link, wire: Wire| {
            let frame = match frames[wire.index()] {
                Some(f) => f,
                None => match io.out.encode_event(wire, &e, &limits) {
                    Ok(f) => {
                        io.stats.bytes_encoded += f.len() as u64;
                        *frames[wire.index()].insert(f)
                    }
                    Err(_) => return, // over the limit in this wire's encoding only
                },
            };
            if let Some(offset) = offset {
                io.recovery.note_sent(conn, offset);
            }
            io.out.send(conn, frame, self.volatile);
        };
        let count = match &everyone {
            Some(everyone) => {
                everyone.conns.iter().for_each(|&(c, w)| deliver(c, w));
                everyone.conns.len()
            }
            None => {
                io.chosen.iter().for_each(|&(_, c, w)| deliver(c, w));
                io.chosen.len()
            }
        };
        io.stats.events_out += count as u64;
        io.everyone = everyone;
        if let Some(offset) = offset {
            // Kept for sessions that may come back (bounded by age, count and bytes).
            let entry = Entry {
                namespace: self.ns,
                to: self.to,
                except_rooms: self.except_rooms,
                except_sockets: self.except_sockets,
                frame: io.out.bytes(frame),
            };
            io.recovery.log(offset, entry, &io.config, Instant::now());
        }
        Ok(count)
    }
    // ANCHOR_END: broadcast_emit
}
