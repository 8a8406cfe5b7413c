//! The seam between the event layer and the bytes on the wire.
//!
//! Everything above this file works on packets: a namespace, an event name, JSON arguments,
//! binary attachments, an ack id, a broadcast's offset. Each connection has a [`Wire`] that
//! turns those packets into bytes; nothing else in the event layer writes them. There are
//! two: socklab's own protocol (`docs/protocol.md`), and the real Socket.IO protocol
//! (Engine.IO v4 over WebSocket, `wire/sio_packet.rs`). A broadcast is encoded once per
//! wire among its recipients, and the same bytes go to every recipient of that wire.
//!
//! Reading is per connection, since the Socket.IO wire keeps state between reads (the
//! upgrade, a fragmented message, a binary event waiting for its attachments): the server's
//! `server/reading.rs` holds a reader for each connection.

use crate::wire::frame;
use crate::wire::packet::{self, EventRef, Packet};
use crate::wire::sio_packet::{self, Carrier};

/// How one connection's packets become bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Wire {
    /// socklab's binary protocol: length-prefixed frames, one packet each.
    #[default]
    Socklab,
    /// Socket.IO v5 in Engine.IO v4 messages, in WebSocket frames.
    SocketIo,
    /// The same messages as the records of HTTP long-polling bodies.
    Polling,
}

impl Wire {
    /// The number of wires, and this one's index among them (a broadcast keeps one
    /// encoding per wire).
    pub(crate) const COUNT: usize = 3;

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Appends the bytes of `p` to `out`.
    pub(crate) fn encode(self, p: &Packet, out: &mut Vec<u8>) {
        match self {
            Wire::Socklab => packet::encode(p, out),
            Wire::SocketIo => sio_packet::encode(p, out),
            Wire::Polling => sio_packet::encode_for(Carrier::Polling, p, out),
        }
    }

    /// Appends the bytes of an EVENT given by its parts to `out`.
    pub(crate) fn encode_event(self, e: &EventRef<'_>, out: &mut Vec<u8>) {
        match self {
            Wire::Socklab => packet::encode_event(e, out),
            Wire::SocketIo => sio_packet::encode_event(e, out),
            Wire::Polling => sio_packet::encode_event_for(Carrier::Polling, e, out),
        }
    }

    /// About how many bytes of `len` encoded bytes count against the peer's payload limit
    /// (the frame headers are not payload).
    pub(crate) fn payload_len(self, len: usize) -> usize {
        match self {
            Wire::Socklab => len.saturating_sub(frame::HEADER_LEN),
            Wire::SocketIo => len.saturating_sub(2),
            Wire::Polling => len,
        }
    }

    /// A socklab frame (a broadcast from the replay log, which keeps socklab's bytes) in
    /// this wire's bytes, appended to `out`; `false` if it is not an EVENT frame.
    pub(crate) fn transcode_event(self, socklab: &[u8], out: &mut Vec<u8>) -> bool {
        if self == Wire::Socklab {
            out.extend_from_slice(socklab);
            return true;
        }
        let Some(payload) = socklab.get(frame::HEADER_LEN..) else {
            return false;
        };
        let limits = packet::Limits {
            max_frame: usize::MAX,
            max_event_name: 255,
            max_attachments: 255,
        };
        match packet::decode_in_place(payload, &limits) {
            Ok(packet::Decoded::Event(e)) => {
                let e = EventRef {
                    ns: e.ns,
                    name: &e.name,
                    args: &e.args,
                    attachments: &e.attachments,
                    id: e.id,
                    offset: e.offset,
                };
                self.encode_event(&e, out);
                true
            }
            _ => false,
        }
    }
}
