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

mod decode;
mod encode;

pub use decode::{decode, decode_in_place, decode_stream, Decoded, EventView, PacketDecoder};
pub use encode::{encode, encode_event, encode_to_vec, greeting, EventRef};

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
    /// Server: the namespace refused the client (middleware, unknown namespace). `data` is
    /// the middleware's details for the client: Socket.IO's wire carries it, socklab's
    /// carries the message only (section 4.2 of `docs/protocol.md`).
    ConnectError {
        ns: String,
        message: String,
        data: Option<Value>,
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
            Packet::ConnectError { ns, message, .. } => write!(f, "CONNECT_ERROR {ns} {message:?}"),
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
            data: None,
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
