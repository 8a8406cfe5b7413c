//! The seam between the event layer and the bytes on the wire.
//!
//! Everything above this file works on packets: a namespace, an event name, JSON arguments,
//! binary attachments, an ack id, a broadcast's offset. Each connection has a [`Wire`] that
//! turns those packets into frames and frames back into packets; nothing else in the event
//! layer knows the bytes. Today there is one wire, socklab's own protocol
//! (`docs/protocol.md`); the Socket.IO wire (Engine.IO over WebSocket) is another variant
//! here, and a broadcast is encoded once per wire among its recipients.

use crate::wire::frame;
use crate::wire::packet::{self, Decoded, EventRef, Limits, Packet, PacketError};

/// How one connection's packets become bytes, and bytes packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Wire {
    /// socklab's binary protocol: length-prefixed frames, one packet each.
    #[default]
    Socklab,
}

impl Wire {
    /// Appends the frame of `p` to `out`.
    pub(crate) fn encode(self, p: &Packet, out: &mut Vec<u8>) {
        match self {
            Wire::Socklab => packet::encode(p, out),
        }
    }

    /// Appends the frame of an EVENT given by its parts to `out`.
    pub(crate) fn encode_event(self, e: &EventRef<'_>, out: &mut Vec<u8>) {
        match self {
            Wire::Socklab => packet::encode_event(e, out),
        }
    }

    /// How many bytes of a frame of `len` bytes count against the peer's payload limit.
    pub(crate) fn payload_len(self, len: usize) -> usize {
        match self {
            Wire::Socklab => len.saturating_sub(frame::HEADER_LEN),
        }
    }

    /// Decodes the whole packets at the start of `input`, handing each to `each` until it
    /// returns `false`; returns how many bytes they used (see [`packet::decode_stream`]).
    pub(crate) fn decode_stream<'a>(
        self,
        input: &'a [u8],
        limits: &Limits,
        each: impl FnMut(Result<Decoded<'a>, PacketError>) -> bool,
    ) -> usize {
        match self {
            Wire::Socklab => packet::decode_stream(input, limits, each),
        }
    }
}
