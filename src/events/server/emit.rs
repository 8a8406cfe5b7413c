//! Emitting to one socket: the [`Emit`] builder, `emit`/`send`, and answering acks.

use std::time::Duration;

use serde_json::Value;

use super::protocol::{Action, ServerTimer};
use super::{AckCallback, Io};
use crate::events::encoder::Wire;
use crate::events::error::{check_attachments, check_name};
use crate::events::link::Link;
use crate::events::listeners::Event;
use crate::events::outbox::Frame;
use crate::events::{AckError, AckReply, EmitError};
use crate::wire::packet::{EventRef, Packet};
use crate::wire::websocket::{self, close};

/// One emit, with everything optional spelled out: `Emit::new("name").arg(..).ack(..)`.
pub struct Emit {
    name: String,
    args: Vec<Value>,
    attachments: Vec<Vec<u8>>,
    ack: Option<(Duration, AckCallback)>,
    volatile: bool,
}

impl Emit {
    pub fn new(name: &str) -> Emit {
        Emit {
            name: name.to_string(),
            args: Vec::new(),
            attachments: Vec::new(),
            ack: None,
            volatile: false,
        }
    }

    /// Appends one JSON argument.
    pub fn arg(mut self, v: Value) -> Emit {
        self.args.push(v);
        self
    }

    pub fn args(mut self, args: Vec<Value>) -> Emit {
        self.args = args;
        self
    }

    /// Appends one binary attachment (raw bytes on the wire).
    pub fn binary(mut self, bytes: Vec<u8>) -> Emit {
        self.attachments.push(bytes);
        self
    }

    /// Asks for an acknowledgement: `callback` gets the reply, or `AckError::Timeout` after
    /// `timeout`, or `AckError::Disconnected`.
    pub fn ack(
        mut self,
        timeout: Duration,
        callback: impl FnOnce(&mut Io, Result<AckReply, AckError>) + 'static,
    ) -> Emit {
        self.ack = Some((timeout, Box::new(callback)));
        self
    }

    /// Drop the event for a socket whose output is backed up, instead of queueing it.
    pub fn volatile(mut self) -> Emit {
        self.volatile = true;
        self
    }
}

impl Io {
    /// The wire connection `conn` speaks.
    pub(super) fn wire_of(&self, conn: Link) -> Wire {
        self.conns.get(&conn).map(|c| c.wire).unwrap_or_default()
    }

    /// Encodes `p` for `conn`'s wire into the outbox; `None` if it is over the frame limit
    /// (which the protocol's own packets never are).
    fn encode_for(&mut self, conn: Link, p: &Packet) -> Result<Frame, EmitError> {
        let wire = self.wire_of(conn);
        let frame = self.out.encode(wire, p, &self.config.limits)?;
        self.stats.bytes_encoded += frame.len() as u64;
        Ok(frame)
    }

    /// Encodes `p` and queues it for `conn`; returns its frame (`None` if it was over the
    /// frame limit, which the protocol's own packets never are).
    pub(super) fn queue_packet(&mut self, conn: Link, p: &Packet) -> Option<Frame> {
        let frame = self.encode_for(conn, p).ok()?;
        self.out.send(conn, frame, false);
        Some(frame)
    }

    /// Queues the close of `conn` for the loop (after flushing its output, if `flush`). A
    /// Socket.IO connection is told first with a WebSocket close frame: 1001 (going away)
    /// if the server is stopping, 1000 otherwise.
    pub(super) fn close_later(&mut self, conn: Link, flush: bool) {
        let mut farewell = false;
        if let Some(c) = self.conns.get_mut(&conn) {
            farewell = flush && !c.closing && c.wire == Wire::SocketIo;
            c.closing = true;
        }
        if farewell {
            let code = if self.stopping {
                close::GOING_AWAY
            } else {
                close::NORMAL
            };
            let mut bytes = Vec::with_capacity(4);
            websocket::encode_close(code, "", None, &mut bytes);
            let frame = self.out.copy(&bytes);
            self.out.send(conn, frame, false);
        }
        self.out.push(Action::Close { conn, flush });
    }

    /// Emits `event` with JSON `args` to socket `sid`.
    pub fn emit(&mut self, sid: &str, event: &str, args: Vec<Value>) -> Result<(), EmitError> {
        self.send(sid, Emit::new(event).args(args))
    }

    /// Emits an [`Emit`] (attachments, ack, volatile) to socket `sid`.
    pub fn send(&mut self, sid: &str, emit: Emit) -> Result<(), EmitError> {
        check_name(&emit.name, &self.config.limits)?;
        check_attachments(emit.attachments.len(), &self.config.limits)?;
        let Some((key, s)) = self.sockets.get_key_value(sid) else {
            return Err(EmitError::NoSuchSocket(sid.to_string()));
        };
        let (sid, conn, ns) = (key.clone(), s.conn, s.namespace.clone());
        let id = emit.ack.as_ref().map(|_| {
            let s = self.sockets.get_mut(&*sid).expect("found above");
            s.next_ack = s.next_ack.wrapping_add(1);
            s.next_ack
        });
        let event = EventRef {
            ns: &ns,
            name: &emit.name,
            args: &emit.args,
            attachments: &emit.attachments,
            id,
            offset: None,
        };
        let wire = self.wire_of(conn);
        let frame = self.out.encode_event(wire, &event, &self.config.limits)?;
        self.stats.bytes_encoded += frame.len() as u64;
        if let (Some(id), Some((timeout, cb))) = (id, emit.ack) {
            if let Some(s) = self.sockets.get_mut(&*sid) {
                s.acks.insert(id, cb);
            }
            let timer = ServerTimer::AckTimeout { sid, id };
            self.out.push(Action::Timer(timeout, timer));
        }
        self.stats.events_out += 1;
        self.out.send(conn, frame, emit.volatile);
        Ok(())
    }

    /// Answers an event that asked for an ack (does nothing if it did not).
    pub fn ack(&mut self, event: &Event, args: Vec<Value>) {
        self.ack_with(event, args, Vec::new());
    }

    /// [`ack`](Io::ack) with binary attachments.
    pub fn ack_with(&mut self, event: &Event, args: Vec<Value>, attachments: Vec<Vec<u8>>) {
        let Some(id) = event.ack else { return };
        if check_attachments(attachments.len(), &self.config.limits).is_err() {
            return;
        }
        let Some(s) = self.sockets.get(&*event.socket) else {
            self.ack_parked(event, id, args, attachments);
            return;
        };
        let (conn, ns) = (s.conn, s.namespace.to_string());
        let p = Packet::Ack {
            ns,
            id,
            args,
            attachments,
        };
        if let Some(frame) = self.queue_packet(conn, &p) {
            // Remember the answer: a retry of this event gets it again, not a second run.
            let bytes = self.out.bytes(frame).to_vec();
            if let Some(s) = self.sockets.get_mut(&*event.socket) {
                s.session.keep_answer(id, bytes);
            }
        }
    }

    /// The socket answered is away (its connection dropped; the session is kept): keep the
    /// answer in its session, so the client's retry after reconnecting gets it.
    fn ack_parked(&mut self, event: &Event, id: u32, args: Vec<Value>, attachments: Vec<Vec<u8>>) {
        let Some(parked) = self.recovery.parked_by_sid(&event.socket) else {
            return;
        };
        let p = Packet::Ack {
            ns: parked.namespace.to_string(),
            id,
            args,
            attachments,
        };
        // Kept as bytes of the wire the session's connection spoke.
        let mut frame = Vec::new();
        parked.wire.encode(&p, &mut frame);
        parked.session.keep_answer(id, frame);
    }
}
