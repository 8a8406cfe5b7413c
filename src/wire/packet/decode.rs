//! Bytes to packets: every length checked against what is left and against [`Limits`]
//! before anything is allocated for it; an EVENT's names read in place.

use std::borrow::Cow;

use serde_json::Value;

use super::Kind;
use super::{
    frame, Limits, Packet, PacketError, FLAG_ACK_ID, FLAG_ATTACHMENTS, FLAG_OFFSET, MAGIC, VERSION,
};

/// A cursor over a payload: every read checks what is left first.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], PacketError> {
        if self.rest.len() < n {
            return Err(PacketError::Short { field });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, PacketError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, PacketError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, PacketError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, PacketError> {
        let b = self.take(8, field)?;
        let mut be = [0u8; 8];
        be.copy_from_slice(b);
        Ok(u64::from_be_bytes(be))
    }

    fn str_ref(&mut self, len: usize, field: &'static str) -> Result<&'a str, PacketError> {
        let b = self.take(len, field)?;
        std::str::from_utf8(b).map_err(|_| PacketError::NotUtf8 { field })
    }

    fn str_with(&mut self, len: usize, field: &'static str) -> Result<String, PacketError> {
        self.str_ref(len, field).map(str::to_owned)
    }

    fn u16_str(&mut self, field: &'static str) -> Result<String, PacketError> {
        let len = self.u16(field)? as usize;
        self.str_with(len, field)
    }

    fn namespace_ref(&mut self) -> Result<&'a str, PacketError> {
        let len = self.u8("namespace")? as usize;
        let ns = self.str_ref(len, "namespace")?;
        if !ns.starts_with('/') {
            return Err(PacketError::BadNamespace);
        }
        Ok(ns)
    }

    fn namespace(&mut self) -> Result<String, PacketError> {
        self.namespace_ref().map(str::to_owned)
    }

    fn json(&mut self, field: &'static str) -> Result<Option<Value>, PacketError> {
        let len = self.u32(field)? as usize;
        let b = self.take(len, field)?;
        if b.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(b)
            .map(Some)
            .map_err(|e| PacketError::BadJson {
                field,
                detail: e.to_string(),
            })
    }

    fn args(&mut self) -> Result<Vec<Value>, PacketError> {
        let len = self.u32("arguments")? as usize;
        let b = self.take(len, "arguments")?;
        serde_json::from_slice::<Vec<Value>>(b).map_err(|e| PacketError::BadJson {
            field: "arguments",
            detail: format!("not a JSON array ({e})"),
        })
    }

    /// The attachments, if `flags` says there are any (none otherwise).
    fn attachments(&mut self, flags: u8, limits: &Limits) -> Result<Vec<Vec<u8>>, PacketError> {
        if flags & FLAG_ATTACHMENTS == 0 {
            return Ok(Vec::new());
        }
        let count = self.u8("attachment count")? as usize;
        if count > limits.max_attachments {
            return Err(PacketError::TooManyAttachments {
                count,
                limit: limits.max_attachments,
            });
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let len = self.u32("attachment length")? as usize;
            out.push(self.take(len, "attachment")?.to_vec());
        }
        Ok(out)
    }

    /// An EVENT's fields after its type byte, the namespace and the name read in place.
    fn event(&mut self, limits: &Limits) -> Result<EventView<'a>, PacketError> {
        let flags = self.flags(FLAG_ACK_ID | FLAG_ATTACHMENTS | FLAG_OFFSET)?;
        let ns = self.namespace_ref()?;
        let id = if flags & FLAG_ACK_ID != 0 {
            Some(self.u32("ack id")?)
        } else {
            None
        };
        let offset = if flags & FLAG_OFFSET != 0 {
            Some(self.u64("offset")?)
        } else {
            None
        };
        let name_len = self.u8("event name")? as usize;
        if name_len == 0 || name_len > limits.max_event_name {
            return Err(PacketError::BadEventName {
                len: name_len,
                limit: limits.max_event_name,
            });
        }
        let name = self.str_ref(name_len, "event name")?;
        let args = self.args()?;
        let attachments = self.attachments(flags, limits)?;
        Ok(EventView {
            ns,
            name: Cow::Borrowed(name),
            args,
            attachments,
            id,
            offset,
        })
    }

    /// The flags byte, refused if it has a bit outside `allowed`.
    fn flags(&mut self, allowed: u8) -> Result<u8, PacketError> {
        let flags = self.u8("flags")?;
        if flags & !allowed != 0 {
            return Err(PacketError::BadFlags(flags));
        }
        Ok(flags)
    }
}

/// An EVENT as decoded in place: the namespace and the name borrowed from the payload, the
/// arguments and attachments owned (the application keeps those). A server finds the socket
/// and the listeners by the borrowed names, so an event costs no copy of either. The name
/// is owned when the decoder had to make it anyway (the Socket.IO wire's JSON parser does):
/// then the event the application gets takes it over instead of copying it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView<'a> {
    pub ns: &'a str,
    pub name: Cow<'a, str>,
    pub args: Vec<Value>,
    pub attachments: Vec<Vec<u8>>,
    pub id: Option<u32>,
    pub offset: Option<u64>,
}

impl EventView<'_> {
    pub fn into_owned(self) -> Packet {
        Packet::Event {
            ns: self.ns.to_owned(),
            name: self.name.into_owned(),
            args: self.args,
            attachments: self.attachments,
            id: self.id,
            offset: self.offset,
        }
    }
}

/// A decoded packet: an EVENT in place (the common case, see [`EventView`]), any other
/// packet owned.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<'a> {
    Event(EventView<'a>),
    Other(Packet),
}

impl Decoded<'_> {
    pub fn into_owned(self) -> Packet {
        match self {
            Decoded::Event(e) => e.into_owned(),
            Decoded::Other(p) => p,
        }
    }
}

/// Decodes one frame payload (the bytes after the length prefix).
pub fn decode(payload: &[u8], limits: &Limits) -> Result<Packet, PacketError> {
    decode_in_place(payload, limits).map(Decoded::into_owned)
}

/// [`decode`], with an EVENT's names left in `payload`.
pub fn decode_in_place<'a>(payload: &'a [u8], limits: &Limits) -> Result<Decoded<'a>, PacketError> {
    let mut c = Cursor { rest: payload };
    let kind = c.take(1, "type").map_err(|_| PacketError::Empty)?[0];
    if kind == Kind::Event as u8 {
        let event = c.event(limits)?;
        if !c.rest.is_empty() {
            return Err(PacketError::Trailing(c.rest.len()));
        }
        return Ok(Decoded::Event(event));
    }
    let packet = match kind {
        7 => {
            if c.take(MAGIC.len(), "magic").ok() != Some(&MAGIC[..]) {
                return Err(PacketError::BadMagic);
            }
            let version = c.u8("version")?;
            if version != VERSION {
                return Err(PacketError::Version { theirs: version });
            }
            let info = c.json("settings")?.unwrap_or(Value::Null);
            Packet::Hello { version, info }
        }
        0 => Packet::Connect {
            ns: c.namespace()?,
            data: c.json("connect data")?,
        },
        4 => Packet::ConnectError {
            ns: c.namespace()?,
            message: c.u16_str("message")?,
            data: None,
        },
        1 => {
            let ns = c.namespace()?;
            let reason = c.u16_str("reason")?;
            Packet::Disconnect {
                ns,
                reason: (!reason.is_empty()).then_some(reason),
            }
        }
        3 => {
            let flags = c.flags(FLAG_ACK_ID | FLAG_ATTACHMENTS)?;
            if flags & FLAG_ACK_ID == 0 {
                return Err(PacketError::BadFlags(flags));
            }
            let ns = c.namespace()?;
            let id = c.u32("ack id")?;
            let args = c.args()?;
            let attachments = c.attachments(flags, limits)?;
            Packet::Ack {
                ns,
                id,
                args,
                attachments,
            }
        }
        5 => Packet::Ping,
        6 => Packet::Pong,
        other => return Err(PacketError::UnknownKind(other)),
    };
    if !c.rest.is_empty() {
        return Err(PacketError::Trailing(c.rest.len()));
    }
    Ok(Decoded::Other(packet))
}

/// Frames in, packets out: a [`frame::Decoder`] and [`decode`] together, incremental.
#[derive(Debug)]
pub struct PacketDecoder {
    frames: frame::Decoder,
    limits: Limits,
}

impl PacketDecoder {
    pub fn new(limits: Limits) -> PacketDecoder {
        PacketDecoder {
            frames: frame::Decoder::new(limits.max_frame),
            limits,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.frames.feed(bytes);
    }

    /// The next whole packet, `Ok(None)` if more bytes are needed.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, PacketError> {
        let limits = self.limits;
        match self.frames.next_frame()? {
            None => Ok(None),
            Some(payload) => decode(payload, &limits).map(Some),
        }
    }

    /// Bytes received but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.frames.buffered()
    }

    /// At end of file: an error if a frame was cut off.
    pub fn finish(&self) -> Result<(), PacketError> {
        self.frames.finish().map_err(PacketError::from)
    }
}

/// Decodes as many whole packets as `input` holds, straight from the caller's buffer (no
/// copy): returns the packets' results and how many bytes they used. What is left is an
/// incomplete frame; the caller keeps it and offers it again with more. An oversized frame
/// header is an error as soon as its 4 bytes are there.
pub fn decode_stream<'a>(
    input: &'a [u8],
    limits: &Limits,
    mut each: impl FnMut(Result<Decoded<'a>, PacketError>) -> bool,
) -> usize {
    let mut used = 0;
    loop {
        match frame::split(&input[used..], limits.max_frame) {
            Ok(None) => return used,
            Err(e) => {
                each(Err(e.into()));
                return used;
            }
            Ok(Some((payload, n))) => {
                used += n;
                if !each(decode_in_place(payload, limits)) {
                    return used;
                }
            }
        }
    }
}
