//! The event layer's packets ([`packet::Packet`]) on the Socket.IO wire, as pure code: each
//! packet as the WebSocket frames that carry its Engine.IO message, and a decoded Socket.IO
//! packet back as the event layer's packet.
//!
//! One chat message, as each wire writes it (lesson 21 counts the bytes):
//!
//! ```text
//! socklab:    00 00 00 2e 02 01 05 2f 63 68 61 74 ...        a frame: length, type, flags, ...
//! Socket.IO:  81 2c 34 32 2f 63 68 61 74 2c 5b ...           a WebSocket text frame holding
//!                   4  2  /  c  h  a  t  ,  [                 Engine.IO `4` + Socket.IO `2/chat,[...]`
//! ```
//!
//! What maps to what:
//!
//! | event layer | Socket.IO over WebSocket |
//! |---|---|
//! | HELLO (the server's settings) | Engine.IO open packet `0{"sid",...}` |
//! | PING / PONG | Engine.IO `2` / `3` |
//! | CONNECT, CONNECT_ERROR, DISCONNECT | `0`, `4`, `1` (the namespace written unless `/`) |
//! | EVENT, ACK | `2` / `3`; with attachments `5N-` / `6N-` and N binary frames |
//!
//! Differences a reader meets:
//! - **Attachments.** socklab keeps an event's binary attachments beside its JSON arguments;
//!   Socket.IO puts a placeholder `{"_placeholder":true,"num":N}` where each binary value
//!   was. Decoding keeps the placeholders where the sender put them and the bytes in order of
//!   `num`; encoding appends a placeholder argument for each attachment that no argument
//!   already points at.
//! - **The broadcast offset** is a header field on socklab's wire; Socket.IO 4.8 sends it as
//!   an extra last argument, a string, which its client keeps for connection state recovery.
//! - **A DISCONNECT for `server shutting down`** is not written: Socket.IO's client would take
//!   `1` for "the server does not want me" and never reconnect; the WebSocket close that
//!   follows (1001, going away) makes it reconnect, as a restart should.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use super::engineio;
use super::offset;
use super::packet::{EventRef, EventView, Limits, Packet, DEFAULT_NAMESPACE};
use super::socketio::{self, Kind, PacketRef, SioError};
use super::websocket::{self, Opcode};
use crate::wire::packet::RESERVED_EVENTS;

/// The reason a server DISCONNECT is not written as Socket.IO's `1` (see the file's notes).
pub const SHUTTING_DOWN: &str = "server shutting down";

/// How Engine.IO messages are carried: one WebSocket frame each, or as the records of a
/// long-polling body (text as it is, binary as `b` + base64, separated by `\x1e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    WebSocket,
    Polling,
}

/// Appends the WebSocket frames of `p` to `out`.
pub fn encode(p: &Packet, out: &mut Vec<u8>) {
    encode_for(Carrier::WebSocket, p, out)
}

/// Appends `p` to `out` as `carrier` carries it.
pub fn encode_for(carrier: Carrier, p: &Packet, out: &mut Vec<u8>) {
    if let Some(e) = EventRef::of(p) {
        return encode_event_for(carrier, &e, out);
    }
    match p {
        Packet::Ack {
            ns,
            id,
            args,
            attachments,
        } => {
            text_frame(carrier, out, |t| {
                write_head(t, attachments.len(), ns, Some(*id), Kind::Ack);
                write_array(t, None, args, attachments.len(), None);
            });
            binary_frames(carrier, attachments, out);
        }
        Packet::Disconnect { reason, .. } if reason.as_deref() == Some(SHUTTING_DOWN) => {}
        other => text_frame(carrier, out, |t| write_text(other, t)),
    }
}

// ANCHOR: encode_event
/// Appends the frames of an EVENT given by its parts to `out`: a broadcast is written once
/// and the same bytes go to every recipient (server frames are never masked).
pub fn encode_event(e: &EventRef<'_>, out: &mut Vec<u8>) {
    encode_event_for(Carrier::WebSocket, e, out)
}

/// [`encode_event`] as `carrier` carries it.
pub fn encode_event_for(carrier: Carrier, e: &EventRef<'_>, out: &mut Vec<u8>) {
    text_frame(carrier, out, |t| {
        write_head(t, e.attachments.len(), e.ns, e.id, Kind::Event);
        write_array(t, Some(e.name), e.args, e.attachments.len(), e.offset);
    });
    binary_frames(carrier, e.attachments, out);
}
// ANCHOR_END: encode_event

/// The Engine.IO text of a packet that is not an EVENT or ACK.
fn write_text(p: &Packet, t: &mut Vec<u8>) {
    match p {
        Packet::Hello { info, .. } => {
            t.push(b'0');
            let _ = serde_json::to_writer(&mut *t, info);
        }
        Packet::Ping => t.push(b'2'),
        Packet::Pong => t.push(b'3'),
        Packet::Connect { ns, data } => {
            write_head(t, 0, ns, None, Kind::Connect);
            if let Some(d) = data {
                let _ = serde_json::to_writer(&mut *t, d);
            }
        }
        Packet::ConnectError { ns, message, data } => {
            write_head(t, 0, ns, None, Kind::ConnectError);
            let mut body = serde_json::Map::new();
            body.insert("message".into(), Value::from(message.as_str()));
            if let Some(d) = data {
                body.insert("data".into(), d.clone());
            }
            let _ = serde_json::to_writer(&mut *t, &body);
        }
        Packet::Disconnect { ns, .. } => write_head(t, 0, ns, None, Kind::Disconnect),
        // Written by `encode` itself.
        Packet::Event { .. } | Packet::Ack { .. } => {}
    }
}

/// `4` (Engine.IO message), the Socket.IO type (binary if there are attachments), their
/// count, the namespace unless `/`, the ack id.
fn write_head(t: &mut Vec<u8>, attachments: usize, ns: &str, id: Option<u32>, kind: Kind) {
    let kind = match (kind, attachments > 0) {
        (Kind::Event, true) => Kind::BinaryEvent,
        (Kind::Ack, true) => Kind::BinaryAck,
        (k, _) => k,
    };
    t.push(b'4');
    t.push(b'0' + kind as u8);
    if attachments > 0 {
        t.extend_from_slice(attachments.to_string().as_bytes());
        t.push(b'-');
    }
    if ns != DEFAULT_NAMESPACE {
        t.extend_from_slice(ns.as_bytes());
        t.push(b',');
    }
    if let Some(id) = id {
        t.extend_from_slice(id.to_string().as_bytes());
    }
}

/// `[name?, args..., a placeholder for each attachment no argument points at, "offset"?]`.
fn write_array(
    t: &mut Vec<u8>,
    name: Option<&str>,
    args: &[Value],
    attachments: usize,
    offset: Option<u64>,
) {
    // Writing JSON into a Vec cannot fail.
    let mut open = false;
    let mut next = |t: &mut Vec<u8>| {
        t.push(if open { b',' } else { b'[' });
        open = true;
    };
    if let Some(n) = name {
        next(t);
        let _ = serde_json::to_writer(&mut *t, n);
    }
    for a in args {
        next(t);
        let _ = serde_json::to_writer(&mut *t, a);
    }
    for num in socketio::unreferenced(args, attachments) {
        next(t);
        let _ = serde_json::to_writer(&mut *t, &socketio::placeholder(num));
    }
    if let Some(o) = offset {
        next(t);
        offset::write_json(o, t);
    }
    if !open {
        t.push(b'[');
    }
    t.push(b']');
}

/// Appends one unmasked text frame whose payload `fill` writes, without a second buffer:
/// the payload is written after room for the longest header, then moved up against the
/// header its length needs.
fn text_frame(carrier: Carrier, out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    if carrier == Carrier::Polling {
        return fill(out); // a text record is the text alone
    }
    const ROOM: usize = 10; // 2 bytes + a 64-bit length: the longest unmasked header
    let start = out.len();
    out.extend_from_slice(&[0; ROOM]);
    fill(out);
    let len = out.len() - start - ROOM;
    let mut head = [0u8; ROOM];
    head[0] = 0x80 | Opcode::Text as u8; // FIN, text
    let h = match len {
        0..=125 => {
            head[1] = len as u8;
            2
        }
        126..=0xffff => {
            head[1] = 126;
            head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            head[1] = 127;
            head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    };
    out[start..start + h].copy_from_slice(&head[..h]);
    if h < ROOM {
        out.copy_within(start + ROOM.., start + h);
        out.truncate(start + h + len);
    }
}

/// One binary frame per attachment, in order; on long-polling, one record each, `b` and the
/// bytes in base64, after the separator.
fn binary_frames(carrier: Carrier, attachments: &[Vec<u8>], out: &mut Vec<u8>) {
    for a in attachments {
        match carrier {
            Carrier::WebSocket => websocket::encode_frame(true, Opcode::Binary, a, None, out),
            Carrier::Polling => {
                out.push(engineio::RECORD_SEPARATOR as u8);
                out.push(b'b');
                out.extend_from_slice(engineio::base64(a).as_bytes());
            }
        }
    }
}

/// Why a Socket.IO packet from a client is not one the event layer takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapError {
    Sio(SioError),
    /// An event name over the server's limit.
    LongName(usize),
    /// More attachments than the server's limit.
    TooManyAttachments(usize),
    /// A packet only a server sends (CONNECT_ERROR).
    ServerOnly,
    /// An ACK without its id.
    AckWithoutId,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Sio(e) => e.fmt(f),
            MapError::LongName(n) => write!(f, "an event name of {n} bytes"),
            MapError::TooManyAttachments(n) => write!(f, "{n} attachments"),
            MapError::ServerOnly => f.write_str("a CONNECT_ERROR from a client"),
            MapError::AckWithoutId => f.write_str("an ACK without an id"),
        }
    }
}

/// Checks a decoded packet's header against the server's limits (before its attachments
/// are waited for): `count`, the attachments it announces.
pub fn check(count: usize, limits: &Limits) -> Result<(), MapError> {
    if count > limits.max_attachments {
        return Err(MapError::TooManyAttachments(count));
    }
    Ok(())
}

/// A client's Socket.IO packet, with its attachments, as the event layer's packet. How many
/// attachments it announced was checked ([`check`]) when its header arrived, before they
/// were waited for.
pub fn to_packet(
    p: socketio::Packet,
    attachments: Vec<Vec<u8>>,
    limits: &Limits,
) -> Result<Packet, MapError> {
    let ns = p.ns;
    Ok(match p.kind {
        Kind::Connect => Packet::Connect { ns, data: p.data },
        Kind::Disconnect => Packet::Disconnect { ns, reason: None },
        Kind::ConnectError => return Err(MapError::ServerOnly),
        Kind::Event | Kind::BinaryEvent => {
            let (name, args) = name_and_args(p.data, limits)?;
            Packet::Event {
                ns,
                name,
                args,
                attachments,
                id: p.id,
                offset: None,
            }
        }
        Kind::Ack | Kind::BinaryAck => {
            let id = p.id.ok_or(MapError::AckWithoutId)?;
            let Some(Value::Array(args)) = p.data else {
                return Err(MapError::Sio(SioError::BadData(
                    "ACK data must be an array",
                )));
            };
            Packet::Ack {
                ns,
                id,
                args,
                attachments,
            }
        }
    })
}

/// A client's EVENT without attachments, as the event layer reads it in place: the
/// namespace borrowed from the text, the name the JSON parser made taken over, not copied.
/// Any other packet: [`to_packet`].
pub fn to_event_view<'a>(p: PacketRef<'a>, limits: &Limits) -> Result<EventView<'a>, MapError> {
    if p.kind != Kind::Event || p.attachments > 0 {
        return Err(MapError::Sio(SioError::BadData(
            "not an EVENT without attachments",
        )));
    }
    let (name, args) = name_and_args(p.data, limits)?;
    Ok(EventView {
        ns: p.ns,
        name: Cow::Owned(name),
        args,
        attachments: Vec::new(),
        id: p.id,
        offset: None,
    })
}

/// An EVENT's data split into its name, checked against the limits, and its arguments.
fn name_and_args(data: Option<Value>, limits: &Limits) -> Result<(String, Vec<Value>), MapError> {
    let Some(Value::Array(mut a)) = data else {
        return Err(MapError::Sio(SioError::BadData(
            "EVENT data must be an array",
        )));
    };
    let name = match a.first() {
        Some(Value::String(_)) => match a.remove(0) {
            Value::String(s) => s,
            _ => unreachable!("checked above"),
        },
        _ => return Err(MapError::Sio(SioError::BadData("an event needs a name"))),
    };
    if name.len() > limits.max_event_name {
        return Err(MapError::LongName(name.len()));
    }
    if RESERVED_EVENTS.contains(&name.as_str()) {
        return Err(MapError::Sio(SioError::ReservedEvent(name)));
    }
    Ok((name, a))
}
