//! Packets to bytes: each packet as one complete frame, appended to the caller's buffer.

use serde_json::Value;

use super::{
    frame, Kind, Packet, DEFAULT_NAMESPACE, FLAG_ACK_ID, FLAG_ATTACHMENTS, FLAG_OFFSET, MAGIC,
};

/// `s` cut to at most `max` bytes, at a character boundary (so it stays valid UTF-8).
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_short_str(out: &mut Vec<u8>, s: &str) {
    // Event names are checked against their limit on emit; a longer namespace is cut.
    let bytes = cut(s, 255).as_bytes();
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn put_u16_str(out: &mut Vec<u8>, s: &str) {
    let bytes = cut(s, u16::MAX as usize).as_bytes();
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_json(out: &mut Vec<u8>, v: Option<&Value>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    if let Some(v) = v {
        // Writing JSON into a Vec cannot fail: Value always serialises.
        let _ = serde_json::to_writer(&mut *out, v);
    }
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_args(out: &mut Vec<u8>, args: &[Value]) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    let _ = serde_json::to_writer(&mut *out, args);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_attachments(out: &mut Vec<u8>, attachments: &[Vec<u8>]) {
    out.push(attachments.len().min(255) as u8);
    for a in attachments.iter().take(255) {
        out.extend_from_slice(&(a.len() as u32).to_be_bytes());
        out.extend_from_slice(a);
    }
}

/// Appends `packet` to `out` as one complete frame (length prefix included).
pub fn encode(packet: &Packet, out: &mut Vec<u8>) {
    if let Some(event) = EventRef::of(packet) {
        return encode_event(&event, out);
    }
    let start = out.len();
    out.extend_from_slice(&[0; frame::HEADER_LEN]);
    out.push(packet.kind() as u8);
    match packet {
        Packet::Hello { version, info } => {
            out.extend_from_slice(MAGIC);
            out.push(*version);
            put_json(out, Some(info));
        }
        Packet::Connect { ns, data } => {
            put_short_str(out, ns);
            put_json(out, data.as_ref());
        }
        Packet::ConnectError { ns, message, .. } => {
            put_short_str(out, ns);
            put_u16_str(out, message);
        }
        Packet::Disconnect { ns, reason } => {
            put_short_str(out, ns);
            put_u16_str(out, reason.as_deref().unwrap_or(""));
        }
        Packet::Event { .. } => unreachable!("encoded by encode_event above"),
        Packet::Ack {
            ns,
            id,
            args,
            attachments,
        } => {
            let mut flags = FLAG_ACK_ID;
            if !attachments.is_empty() {
                flags |= FLAG_ATTACHMENTS;
            }
            out.push(flags);
            put_short_str(out, ns);
            out.extend_from_slice(&id.to_be_bytes());
            put_args(out, args);
            if !attachments.is_empty() {
                put_attachments(out, attachments);
            }
        }
        Packet::Ping | Packet::Pong => {}
    }
    let len = (out.len() - start - frame::HEADER_LEN) as u32;
    out[start..start + frame::HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

/// An EVENT with borrowed parts: what [`encode_event`] writes without the caller building
/// a [`Packet`] (a server relaying the arguments it received copies nothing).
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    pub args: &'a [Value],
    pub attachments: &'a [Vec<u8>],
    pub id: Option<u32>,
    pub offset: Option<u64>,
}

impl<'a> EventRef<'a> {
    /// The parts of `p`, if it is an EVENT.
    pub fn of(p: &'a Packet) -> Option<EventRef<'a>> {
        match p {
            Packet::Event {
                ns,
                name,
                args,
                attachments,
                id,
                offset,
            } => Some(EventRef {
                ns,
                name,
                args,
                attachments,
                id: *id,
                offset: *offset,
            }),
            _ => None,
        }
    }
}

/// Appends an EVENT to `out` as one complete frame (length prefix included).
pub fn encode_event(e: &EventRef<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; frame::HEADER_LEN]);
    out.push(Kind::Event as u8);
    let mut flags = 0;
    if e.id.is_some() {
        flags |= FLAG_ACK_ID;
    }
    if !e.attachments.is_empty() {
        flags |= FLAG_ATTACHMENTS;
    }
    if e.offset.is_some() {
        flags |= FLAG_OFFSET;
    }
    out.push(flags);
    put_short_str(out, e.ns);
    if let Some(id) = e.id {
        out.extend_from_slice(&id.to_be_bytes());
    }
    if let Some(offset) = e.offset {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    put_short_str(out, e.name);
    put_args(out, e.args);
    if !e.attachments.is_empty() {
        put_attachments(out, e.attachments);
    }
    let len = (out.len() - start - frame::HEADER_LEN) as u32;
    out[start..start + frame::HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

/// The frame for `packet`, as a new buffer.
pub fn encode_to_vec(packet: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    encode(packet, &mut out);
    out
}

/// What a client sends first, in one buffer: its HELLO (no settings) and a CONNECT to the
/// default namespace carrying `data` (the auth payload, or `pid` and `offset` to resume).
pub fn greeting(data: Option<serde_json::Value>) -> Vec<u8> {
    let mut out = encode_to_vec(&Packet::hello(serde_json::json!({})));
    encode(
        &Packet::Connect {
            ns: DEFAULT_NAMESPACE.into(),
            data,
        },
        &mut out,
    );
    out
}
