//! The socklab event protocol: packets inside frames (specified byte by byte in
//! `docs/protocol.md`).
//!
//! Every packet travels in one frame of [`super::frame`] (a 4-byte big-endian length, then the
//! payload). The payload's first byte is the packet type; the numbers follow Socket.IO's
//! (CONNECT 0, DISCONNECT 1, EVENT 2, ACK 3, CONNECT_ERROR 4) plus PING 5, PONG 6 and HELLO 7.
//! All integers are big-endian; strings are UTF-8 with a length prefix; event arguments are a
//! JSON array; binary attachments are raw bytes, never base64.
//!
//! Decoding is pure and total: any byte string gives a packet or a [`PacketError`], never a
//! panic, and every length is checked against what is left and against [`Limits`] before
//! anything is allocated for it.

use std::fmt;

use serde_json::Value;

use super::frame;

/// The magic bytes at the start of a HELLO payload (after its type byte).
pub const MAGIC: &[u8; 7] = b"SOCKLAB";
/// The protocol version this code speaks. Version 2 carries a broadcast's offset in the
/// EVENT header (flag bit 2); version 1 carried it as an extra last argument
/// `{"__offset":N}` (docs/protocol.md 6.8 tells both).
pub const VERSION: u8 = 2;
/// The namespace every connection can use.
pub const DEFAULT_NAMESPACE: &str = "/";
/// Event names a program may not emit: the library uses them for its own events.
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
    "reconnect",
    "reconnect_attempt",
    "reconnect_error",
    "reconnect_failed",
];

/// The packet types, with their byte on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Connect = 0,
    Disconnect = 1,
    Event = 2,
    Ack = 3,
    ConnectError = 4,
    Ping = 5,
    Pong = 6,
    Hello = 7,
}

const FLAG_ACK_ID: u8 = 0b001;
const FLAG_ATTACHMENTS: u8 = 0b010;
/// EVENT only: an 8-byte broadcast offset follows the ack id's place.
const FLAG_OFFSET: u8 = 0b100;

/// One protocol packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// The first packet each side sends: magic, version, and a JSON object of settings
    /// (the server's carries `pingInterval`, `pingTimeout` and `maxPayload` in milliseconds
    /// and bytes).
    Hello {
        version: u8,
        info: Value,
    },
    /// Client: join namespace `ns`, with an optional auth payload. Server: accepted; `data`
    /// is `{"sid": "..."}`.
    Connect {
        ns: String,
        data: Option<Value>,
    },
    /// Server: the namespace refused the client (middleware, unknown namespace).
    ConnectError {
        ns: String,
        message: String,
    },
    /// Either side: leave namespace `ns`, with an optional reason for the other side to show.
    Disconnect {
        ns: String,
        reason: Option<String>,
    },
    /// An event: a name, a JSON array of arguments, binary attachments, an ack id when
    /// the sender wants an answer, and an offset when it is a broadcast the server may
    /// replay (connection state recovery).
    Event {
        ns: String,
        name: String,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
        id: Option<u32>,
        offset: Option<u64>,
    },
    /// The answer to an event that carried ack id `id`.
    Ack {
        ns: String,
        id: u32,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
    },
    /// Heartbeat: the server asks, the client answers with PONG.
    Ping,
    Pong,
}

/// Limits a decoder enforces. Each has a documented outcome: the packet is refused with a
/// [`PacketError`] and the connection is closed with reason `parse error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame payload, in bytes (default 1 MB, like Socket.IO's `maxHttpBufferSize`).
    pub max_frame: usize,
    /// Longest event name, in bytes (default 128; at most 255, the field is one byte).
    pub max_event_name: usize,
    /// Most binary attachments in one packet (default 16).
    pub max_attachments: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: frame::DEFAULT_MAX_PAYLOAD,
            max_event_name: 128,
            max_attachments: 16,
        }
    }
}

/// Why bytes are not a valid packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// The frame is over the size limit (from [`frame::FrameError::TooLarge`]).
    FrameTooLarge { declared: u64, limit: usize },
    /// The stream ended inside a frame.
    Truncated,
    /// The payload is empty.
    Empty,
    /// The first byte is not a packet type.
    UnknownKind(u8),
    /// A field runs past the end of the payload.
    Short { field: &'static str },
    /// Bytes are left over after the last field.
    Trailing(usize),
    /// A string is not UTF-8.
    NotUtf8 { field: &'static str },
    /// The event arguments are not a JSON array, or JSON is malformed.
    BadJson { field: &'static str, detail: String },
    /// The HELLO does not start with the magic bytes.
    BadMagic,
    /// The peer speaks another protocol version.
    Version { theirs: u8 },
    /// An event name over the limit, or empty.
    BadEventName { len: usize, limit: usize },
    /// More attachments than the limit.
    TooManyAttachments { count: usize, limit: usize },
    /// A namespace that does not start with `/`.
    BadNamespace,
    /// An ACK without its id flag, or flags with unknown bits.
    BadFlags(u8),
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::FrameTooLarge { declared, limit } => {
                write!(f, "frame of {declared} bytes is over the limit of {limit}")
            }
            PacketError::Truncated => f.write_str("the stream ended inside a frame"),
            PacketError::Empty => f.write_str("empty packet"),
            PacketError::UnknownKind(b) => write!(f, "unknown packet type {b}"),
            PacketError::Short { field } => write!(f, "packet ends inside its {field}"),
            PacketError::Trailing(n) => write!(f, "{n} unexpected bytes after the packet"),
            PacketError::NotUtf8 { field } => write!(f, "{field} is not valid UTF-8"),
            PacketError::BadJson { field, detail } => write!(f, "{field}: {detail}"),
            PacketError::BadMagic => f.write_str("not a socklab peer (no SOCKLAB magic)"),
            PacketError::Version { theirs } => write!(
                f,
                "the peer speaks protocol version {theirs}; this side speaks {VERSION}"
            ),
            PacketError::BadEventName { len, limit } => {
                write!(f, "event name of {len} bytes (allowed: 1 to {limit})")
            }
            PacketError::TooManyAttachments { count, limit } => {
                write!(f, "{count} attachments (limit {limit})")
            }
            PacketError::BadNamespace => f.write_str("a namespace must start with '/'"),
            PacketError::BadFlags(b) => write!(f, "invalid flags {b:#04x}"),
        }
    }
}

impl std::error::Error for PacketError {}

impl From<frame::FrameError> for PacketError {
    fn from(e: frame::FrameError) -> Self {
        match e {
            frame::FrameError::TooLarge { declared, limit } => {
                PacketError::FrameTooLarge { declared, limit }
            }
            frame::FrameError::Truncated { .. } => PacketError::Truncated,
        }
    }
}

impl Packet {
    pub fn kind(&self) -> Kind {
        match self {
            Packet::Hello { .. } => Kind::Hello,
            Packet::Connect { .. } => Kind::Connect,
            Packet::ConnectError { .. } => Kind::ConnectError,
            Packet::Disconnect { .. } => Kind::Disconnect,
            Packet::Event { .. } => Kind::Event,
            Packet::Ack { .. } => Kind::Ack,
            Packet::Ping => Kind::Ping,
            Packet::Pong => Kind::Pong,
        }
    }

    /// This side's HELLO.
    pub fn hello(info: Value) -> Packet {
        Packet::Hello {
            version: VERSION,
            info,
        }
    }
}

impl fmt::Display for Packet {
    /// One line a person can read: `EVENT / "chat message" id=1 ["hi"] +1 attachment`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = |args: &[Value]| serde_json::to_string(args).unwrap_or_default();
        let bins = |a: &[Vec<u8>]| match a.len() {
            0 => String::new(),
            1 => format!(" +1 attachment ({} bytes)", a[0].len()),
            n => format!(" +{n} attachments"),
        };
        match self {
            Packet::Hello { version, info } => write!(f, "HELLO v{version} {info}"),
            Packet::Connect { ns, data: Some(d) } => write!(f, "CONNECT {ns} {d}"),
            Packet::Connect { ns, data: None } => write!(f, "CONNECT {ns}"),
            Packet::ConnectError { ns, message } => write!(f, "CONNECT_ERROR {ns} {message:?}"),
            Packet::Disconnect { ns, reason } => match reason {
                Some(r) => write!(f, "DISCONNECT {ns} {r:?}"),
                None => write!(f, "DISCONNECT {ns}"),
            },
            Packet::Event {
                ns,
                name,
                args,
                attachments,
                id,
                offset,
            } => {
                write!(f, "EVENT {ns} {name:?}")?;
                if let Some(id) = id {
                    write!(f, " id={id}")?;
                }
                if let Some(o) = offset {
                    write!(f, " offset={o}")?;
                }
                write!(f, " {}{}", json(args), bins(attachments))
            }
            Packet::Ack {
                ns,
                id,
                args,
                attachments,
            } => write!(f, "ACK {ns} id={id} {}{}", json(args), bins(attachments)),
            Packet::Ping => f.write_str("PING"),
            Packet::Pong => f.write_str("PONG"),
        }
    }
}

// ---- encoding -------------------------------------------------------------------------

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
    if let Packet::Event {
        ns,
        name,
        args,
        attachments,
        id,
        offset,
    } = packet
    {
        let event = EventRef {
            ns,
            name,
            args,
            attachments,
            id: *id,
            offset: *offset,
        };
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
        Packet::ConnectError { ns, message } => {
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

// ---- decoding -------------------------------------------------------------------------

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
            name,
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
/// and the listeners by the borrowed names, so an event costs no copy of either.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    pub args: Vec<Value>,
    pub attachments: Vec<Vec<u8>>,
    pub id: Option<u32>,
    pub offset: Option<u64>,
}

impl EventView<'_> {
    pub fn into_owned(self) -> Packet {
        Packet::Event {
            ns: self.ns.to_owned(),
            name: self.name.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(p: Packet) {
        let bytes = encode_to_vec(&p);
        let mut d = PacketDecoder::new(Limits::default());
        d.feed(&bytes);
        assert_eq!(d.next_packet().unwrap(), Some(p));
        assert_eq!(d.next_packet().unwrap(), None);
    }

    #[test]
    fn every_kind_round_trips() {
        roundtrip(Packet::hello(json!({"pingInterval": 25000})));
        roundtrip(Packet::Connect {
            ns: "/".into(),
            data: Some(json!({"token": "abc"})),
        });
        roundtrip(Packet::Connect {
            ns: "/chat".into(),
            data: None,
        });
        roundtrip(Packet::ConnectError {
            ns: "/".into(),
            message: "not authorized".into(),
        });
        roundtrip(Packet::Disconnect {
            ns: "/".into(),
            reason: Some("server shutting down".into()),
        });
        roundtrip(Packet::Disconnect {
            ns: "/".into(),
            reason: None,
        });
        roundtrip(Packet::Event {
            ns: "/".into(),
            name: "chat message".into(),
            args: vec![json!("hi"), json!({"n": 1})],
            attachments: vec![vec![], vec![1, 2, 3]],
            id: Some(7),
            offset: None,
        });
        roundtrip(Packet::Event {
            ns: "/".into(),
            name: "news".into(),
            args: vec![json!("hi")],
            attachments: vec![],
            id: None,
            offset: Some(u64::MAX - 1),
        });
        roundtrip(Packet::Ack {
            ns: "/".into(),
            id: 7,
            args: vec![json!(true)],
            attachments: vec![],
        });
        roundtrip(Packet::Ping);
        roundtrip(Packet::Pong);
    }

    #[test]
    fn an_event_byte_by_byte() {
        let p = Packet::Event {
            ns: "/".into(),
            name: "hi".into(),
            args: vec![json!(1)],
            attachments: vec![],
            id: None,
            offset: None,
        };
        assert_eq!(
            encode_to_vec(&p),
            [
                0, 0, 0, 14, // frame length
                2,  // EVENT
                0,  // flags
                1, b'/', // namespace
                2, b'h', b'i', // name
                0, 0, 0, 3, b'[', b'1', b']', // arguments
            ]
        );
    }

    #[test]
    fn a_broadcast_carries_its_offset_in_the_header() {
        let p = Packet::Event {
            ns: "/".into(),
            name: "hi".into(),
            args: vec![json!(1)],
            attachments: vec![],
            id: None,
            offset: Some(3),
        };
        assert_eq!(
            encode_to_vec(&p),
            [
                0, 0, 0, 22, // frame length
                2,  // EVENT
                4,  // flags: offset
                1, b'/', // namespace
                0, 0, 0, 0, 0, 0, 0, 3, // offset
                2, b'h', b'i', // name
                0, 0, 0, 3, b'[', b'1', b']', // arguments
            ]
        );
        // An ACK has no offset: the bit is refused there.
        assert_eq!(
            decode(b"\x03\x05\x01/\0\0\0\x01\0\0\0\x02[]", &Limits::default()),
            Err(PacketError::BadFlags(5))
        );
    }

    #[test]
    fn refusals() {
        let l = Limits::default();
        assert_eq!(decode(&[], &l), Err(PacketError::Empty));
        assert_eq!(decode(&[9], &l), Err(PacketError::UnknownKind(9)));
        assert_eq!(decode(b"\x07NOTSOCK\x01", &l), Err(PacketError::BadMagic));
        // Version 1 (the offset as an extra argument) is refused, like any other.
        assert_eq!(
            decode(b"\x07SOCKLAB\x01\0\0\0\0", &l),
            Err(PacketError::Version { theirs: 1 })
        );
        // JSON that is not an array.
        let not_array = b"\x02\x00\x01/\x01e\x00\x00\x00\x02{}";
        assert!(matches!(
            decode(not_array, &l),
            Err(PacketError::BadJson { .. })
        ));
        // Invalid UTF-8 in an event name.
        let bad_name = b"\x02\x00\x01/\x02\xff\xfe\x00\x00\x00\x02[]";
        assert_eq!(
            decode(bad_name, &l),
            Err(PacketError::NotUtf8 {
                field: "event name"
            })
        );
        // An ack id the flags promise but the bytes lack.
        assert!(matches!(
            decode(b"\x02\x01\x01/", &l),
            Err(PacketError::Short { .. })
        ));
    }

    #[test]
    fn too_many_attachments_refused_before_reading_them() {
        let l = Limits {
            max_attachments: 1,
            ..Limits::default()
        };
        let p = Packet::Event {
            ns: "/".into(),
            name: "x".into(),
            args: vec![],
            attachments: vec![vec![1], vec![2]],
            id: None,
            offset: None,
        };
        let bytes = encode_to_vec(&p);
        assert_eq!(
            decode(&bytes[4..], &l),
            Err(PacketError::TooManyAttachments { count: 2, limit: 1 })
        );
    }
}
