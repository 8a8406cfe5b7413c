//! The outbox: what one side's handlers emitted, waiting to be handed to the event loop.
//!
//! Handlers never write to sockets. What they emit is encoded at once into one reused
//! buffer, the arena, and recorded here as an item pointing at its bytes; a broadcast is
//! encoded once and each recipient gets an item pointing at the same bytes. When the
//! handler returns, its side hands the items to the loop in order ([`Outbox::next`]): a
//! frame is copied into its connection's outbound buffer, an action (close, timer, ...) is
//! done. Both the server and the client use this one outbox; only their actions differ.
//!
//! The flush policy. Handing an item over can run user code again (a tap, or the
//! `disconnect` listeners of a connection closed because its buffer was full), and that
//! code may emit more. What it emits waits for the next round; a flush runs at most
//! [`MAX_ROUNDS`] rounds, so that listeners that keep emitting to connections that keep
//! failing cannot hold the loop. What is left after the last round stays queued, bytes and
//! all, for the next flush. The arena is emptied only when nothing points into it.

use super::encoder::Wire;
use super::error::EmitError;
use crate::event_loop::ConnId;
use crate::wire::packet::{EventRef, Limits, Packet};

/// Rounds of one flush (see the module's text).
pub(super) const MAX_ROUNDS: usize = 4;

/// The arena's capacity kept between flushes: room for a burst of ordinary frames. A frame
/// of a megabyte leaves the arena that large; what is over this is given back.
pub(super) const ARENA_KEEP: usize = 256 << 10;

/// Where an encoded frame's bytes are in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Frame {
    start: usize,
    end: usize,
}

impl Frame {
    pub(super) fn len(self) -> usize {
        self.end - self.start
    }
}

/// One thing for the loop to do.
pub(super) enum Item<A, K = ConnId> {
    /// Copy `frame` into `conn`'s outbound buffer; if `volatile`, drop it instead when the
    /// connection is backed up.
    Send {
        conn: K,
        frame: Frame,
        volatile: bool,
    },
    /// One of the side's own actions.
    Do(A),
}

/// One queued item as the outbox keeps it: a frame to send, or the place of an action in
/// the action list. `Copy`, so that handing a round over reads each item where it lies
/// instead of moving it (a broadcast to a thousand sockets is a thousand items).
#[derive(Clone, Copy)]
enum Slot<K> {
    Send {
        conn: K,
        frame: Frame,
        volatile: bool,
    },
    Do(usize),
}

/// `K` names a connection: the loop's [`ConnId`] for the client, the server's `Link` (a TCP
/// connection, or an Engine.IO session over long-polling).
pub(super) struct Outbox<A, K: Copy = ConnId> {
    arena: Vec<u8>,
    /// Items queued since the current round began, and their actions.
    queued: Vec<Slot<K>>,
    actions: Vec<Option<A>>,
    /// The round being handed over: its items, its actions, and the next item's index.
    round: Vec<Slot<K>>,
    round_actions: Vec<Option<A>>,
    at: usize,
}

impl<A, K: Copy> Default for Outbox<A, K> {
    fn default() -> Self {
        Outbox {
            arena: Vec::new(),
            queued: Vec::new(),
            actions: Vec::new(),
            round: Vec::new(),
            round_actions: Vec::new(),
            at: 0,
        }
    }
}

impl<A, K: Copy> Outbox<A, K> {
    /// Encodes `p` for `wire` into the arena, or refuses it (leaving the arena as it was)
    /// when its payload is over `limits.max_frame`.
    pub(super) fn encode(
        &mut self,
        wire: Wire,
        p: &Packet,
        limits: &Limits,
    ) -> Result<Frame, EmitError> {
        let start = self.arena.len();
        wire.encode(p, &mut self.arena);
        self.checked(wire, start, limits)
    }

    /// [`encode`](Outbox::encode) for an EVENT given by its parts.
    pub(super) fn encode_event(
        &mut self,
        wire: Wire,
        e: &EventRef<'_>,
        limits: &Limits,
    ) -> Result<Frame, EmitError> {
        let start = self.arena.len();
        wire.encode_event(e, &mut self.arena);
        self.checked(wire, start, limits)
    }

    fn checked(&mut self, wire: Wire, start: usize, limits: &Limits) -> Result<Frame, EmitError> {
        let payload = wire.payload_len(self.arena.len() - start);
        if payload > limits.max_frame {
            self.arena.truncate(start);
            return Err(EmitError::TooLarge {
                bytes: payload,
                limit: limits.max_frame,
            });
        }
        Ok(Frame {
            start,
            end: self.arena.len(),
        })
    }

    /// Puts an already encoded frame (a replay, a repeated answer) into the arena.
    pub(super) fn copy(&mut self, bytes: &[u8]) -> Frame {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        Frame {
            start,
            end: self.arena.len(),
        }
    }

    /// [`copy`](Outbox::copy) for a frame kept in two pieces (a ring's two halves).
    pub(super) fn copy_parts(&mut self, head: &[u8], tail: &[u8]) -> Frame {
        let start = self.arena.len();
        self.arena.extend_from_slice(head);
        self.arena.extend_from_slice(tail);
        Frame {
            start,
            end: self.arena.len(),
        }
    }

    /// The bytes of `frame`.
    pub(super) fn bytes(&self, frame: Frame) -> &[u8] {
        &self.arena[frame.start..frame.end]
    }

    /// Takes the last frame encoded back out of the arena, as a buffer of its own (the
    /// client keeps what it emits while offline).
    pub(super) fn take_back(&mut self, frame: Frame) -> Vec<u8> {
        let bytes = self.arena[frame.start..frame.end].to_vec();
        if frame.end == self.arena.len() {
            self.arena.truncate(frame.start);
        }
        bytes
    }

    /// Queues `frame` for `conn`.
    pub(super) fn send(&mut self, conn: K, frame: Frame, volatile: bool) {
        self.queued.push(Slot::Send {
            conn,
            frame,
            volatile,
        });
    }

    /// Queues one of the side's actions.
    pub(super) fn push(&mut self, action: A) {
        self.queued.push(Slot::Do(self.actions.len()));
        self.actions.push(Some(action));
    }

    /// Whether nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.at >= self.round.len()
    }

    /// Begins a round with what is queued (what the last round left is dropped: a flush
    /// takes every item of a round); `false` when nothing is queued. The two lists swap
    /// places, so neither is copied nor allocated again.
    pub(super) fn start_round(&mut self) -> bool {
        self.round.clear();
        self.round_actions.clear();
        self.at = 0;
        std::mem::swap(&mut self.round, &mut self.queued);
        std::mem::swap(&mut self.round_actions, &mut self.actions);
        !self.round.is_empty()
    }

    /// The round's next item.
    pub(super) fn next(&mut self) -> Option<Item<A, K>> {
        let slot = *self.round.get(self.at)?;
        self.at += 1;
        Some(match slot {
            Slot::Send {
                conn,
                frame,
                volatile,
            } => Item::Send {
                conn,
                frame,
                volatile,
            },
            Slot::Do(i) => Item::Do(self.round_actions[i].take().expect("each action once")),
        })
    }

    /// Ends a flush: once nothing waits, every byte encoded has been handed over and the
    /// arena is emptied (and given back down to [`ARENA_KEEP`]). Emptied here, not after
    /// each send: a broadcast to an empty room queues nothing, and its frame must not stay.
    pub(super) fn settle(&mut self) {
        if self.is_empty() {
            self.arena.clear();
            self.arena.shrink_to(ARENA_KEEP);
        }
    }

    /// Bytes in the arena now (for the tests).
    #[cfg(test)]
    pub(super) fn arena_len(&self) -> (usize, usize) {
        (self.arena.len(), self.arena.capacity())
    }
}
