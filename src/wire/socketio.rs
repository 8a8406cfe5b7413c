//! Socket.IO v5 packets, as pure code: what travels inside Engine.IO messages.
//!
//! A packet is one text, in this order (each part but the type optional):
//!
//! ```text
//! <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]
//!   2                                   ["chat message","hi"]      EVENT on /
//!   2        /chat,      12             ["join","lobby"]           EVENT on /chat, ack id 12
//!   3                    12             [["lobby"]]                ACK of it
//!   5  1-                               ["upload",{"_placeholder":true,"num":0}]  + 1 binary message
//! ```
//!
//! | type | name | data |
//! |---|---|---|
//! | 0 | CONNECT | client: the auth object, if any; server: `{"sid": ...}` (and `pid` for recovery) |
//! | 1 | DISCONNECT | none |
//! | 2 | EVENT | an array: the event name, then the arguments |
//! | 3 | ACK | an array: the answer's arguments |
//! | 4 | CONNECT_ERROR | `{"message": ..., "data": ...}` |
//! | 5 | BINARY_EVENT | as EVENT, with placeholders where the binary arguments were |
//! | 6 | BINARY_ACK | as ACK, with placeholders |
//!
//! The namespace is written only when it is not `/`. Binary data never goes inside the JSON:
//! each binary value is replaced by a placeholder `{"_placeholder":true,"num":N}`, the packet
//! says how many there are, and the bytes follow as that many Engine.IO binary messages, in
//! order. [`decode`] checks what the reference parser checks, so a packet it accepts is one
//! that Socket.IO's own server would accept.

use std::fmt;

use serde_json::{json, Value};

/// The event names a peer may not send (they are Socket.IO's own).
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Most binary attachments one packet may announce.
pub const MAX_ATTACHMENTS: usize = 255;

/// A packet's type, with its digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect = 0,
    Disconnect = 1,
    Event = 2,
    Ack = 3,
    ConnectError = 4,
    BinaryEvent = 5,
    BinaryAck = 6,
}

impl Kind {
    fn from_digit(c: u8) -> Option<Kind> {
        Some(match c {
            b'0' => Kind::Connect,
            b'1' => Kind::Disconnect,
            b'2' => Kind::Event,
            b'3' => Kind::Ack,
            b'4' => Kind::ConnectError,
            b'5' => Kind::BinaryEvent,
            b'6' => Kind::BinaryAck,
            _ => return None,
        })
    }

    fn is_binary(self) -> bool {
        matches!(self, Kind::BinaryEvent | Kind::BinaryAck)
    }
}

/// One Socket.IO packet, its binary attachments counted (they travel separately).
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub kind: Kind,
    pub ns: String,
    pub id: Option<u32>,
    pub data: Option<Value>,
    /// How many binary messages follow (BINARY_EVENT and BINARY_ACK only).
    pub attachments: usize,
}

/// A [`Packet`] read in place: its namespace borrowed from the text it was read from, so the
/// common case, `/`, or the namespace of a busy connection, costs no copy.
#[derive(Debug, Clone, PartialEq)]
pub struct PacketRef<'a> {
    pub kind: Kind,
    pub ns: &'a str,
    pub id: Option<u32>,
    pub data: Option<Value>,
    pub attachments: usize,
}

impl PacketRef<'_> {
    /// The same packet with a namespace of its own.
    pub fn into_owned(self) -> Packet {
        Packet {
            kind: self.kind,
            ns: self.ns.to_owned(),
            id: self.id,
            data: self.data,
            attachments: self.attachments,
        }
    }
}

/// Why a text is not a valid Socket.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SioError {
    Empty,
    UnknownType(u8),
    /// The attachment count is missing its `-`, not a number, or over [`MAX_ATTACHMENTS`].
    BadAttachments,
    /// The ack id does not fit in 32 bits.
    BadAckId,
    /// The data is not JSON.
    BadJson,
    /// The data has the wrong shape for the packet's type (an EVENT that is not an array
    /// starting with a name, a CONNECT whose data is not an object, ...).
    BadData(&'static str),
    /// An EVENT named like one of Socket.IO's own events.
    ReservedEvent(String),
}

impl fmt::Display for SioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SioError::Empty => f.write_str("an empty Socket.IO packet"),
            SioError::UnknownType(b) => write!(f, "unknown Socket.IO packet type {:?}", *b as char),
            SioError::BadAttachments => f.write_str("a bad attachment count"),
            SioError::BadAckId => f.write_str("an ack id over 32 bits"),
            SioError::BadJson => f.write_str("data that is not JSON"),
            SioError::BadData(why) => write!(f, "bad data: {why}"),
            SioError::ReservedEvent(n) => write!(f, "the reserved event name {n:?}"),
        }
    }
}

impl std::error::Error for SioError {}

/// The placeholder that stands for binary attachment `num`.
pub fn placeholder(num: usize) -> Value {
    json!({"_placeholder": true, "num": num})
}

/// The attachment number of `v` if it is a placeholder.
pub fn placeholder_num(v: &Value) -> Option<usize> {
    let o = v.as_object()?;
    if o.get("_placeholder")? != &Value::Bool(true) {
        return None;
    }
    o.get("num")?.as_u64().map(|n| n as usize)
}

/// The attachments among `count` that no placeholder inside `args` points at: Socket.IO
/// carries each of them as a placeholder argument of its own, after the others.
pub fn unreferenced(args: &[Value], count: usize) -> impl Iterator<Item = usize> {
    let mut used = vec![false; count];
    if count > 0 {
        args.iter().for_each(|a| mark_placeholders(a, &mut used));
    }
    used.into_iter()
        .enumerate()
        .filter(|(_, u)| !u)
        .map(|(num, _)| num)
}

/// Marks in `used` the attachments that placeholders inside `v` point at.
fn mark_placeholders(v: &Value, used: &mut [bool]) {
    if let Some(num) = placeholder_num(v) {
        if let Some(u) = used.get_mut(num) {
            *u = true;
        }
        return;
    }
    match v {
        Value::Array(a) => a.iter().for_each(|v| mark_placeholders(v, used)),
        Value::Object(o) => o.values().for_each(|v| mark_placeholders(v, used)),
        _ => {}
    }
}

/// Appends `p` as text to `out`.
pub fn encode(p: &Packet, out: &mut String) {
    out.push((b'0' + p.kind as u8) as char);
    if p.kind.is_binary() {
        out.push_str(&p.attachments.to_string());
        out.push('-');
    }
    if p.ns != "/" {
        out.push_str(&p.ns);
        out.push(',');
    }
    if let Some(id) = p.id {
        out.push_str(&id.to_string());
    }
    if let Some(d) = &p.data {
        out.push_str(&d.to_string());
    }
}

/// Decodes one packet from an Engine.IO text message.
pub fn decode(text: &str) -> Result<Packet, SioError> {
    decode_ref(text).map(PacketRef::into_owned)
}

/// [`decode`], the namespace borrowed from `text`.
pub fn decode_ref(text: &str) -> Result<PacketRef<'_>, SioError> {
    let b = text.as_bytes();
    let kind =
        Kind::from_digit(*b.first().ok_or(SioError::Empty)?).ok_or(SioError::UnknownType(b[0]))?;
    let mut at = 1;
    let mut attachments = 0;
    if kind.is_binary() {
        let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 3 || b.get(at + digits) != Some(&b'-') {
            return Err(SioError::BadAttachments);
        }
        attachments = text[at..at + digits]
            .parse::<usize>()
            .ok()
            .filter(|&n| n <= MAX_ATTACHMENTS)
            .ok_or(SioError::BadAttachments)?;
        at += digits + 1;
    }
    let mut ns = "/";
    if b.get(at) == Some(&b'/') {
        let end = text[at..].find(',').map_or(text.len(), |i| at + i);
        ns = &text[at..end];
        at = (end + 1).min(text.len());
    }
    let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    let id = if digits > 0 {
        let id = text[at..at + digits]
            .parse::<u32>()
            .map_err(|_| SioError::BadAckId)?;
        at += digits;
        Some(id)
    } else {
        None
    };
    let data = if at < text.len() {
        Some(serde_json::from_str::<Value>(&text[at..]).map_err(|_| SioError::BadJson)?)
    } else {
        None
    };
    check(kind, data.as_ref())?;
    Ok(PacketRef {
        kind,
        ns,
        id,
        data,
        attachments,
    })
}

/// The shape each type's data must have.
fn check(kind: Kind, data: Option<&Value>) -> Result<(), SioError> {
    match (kind, data) {
        (Kind::Connect, None | Some(Value::Object(_))) => Ok(()),
        (Kind::Connect, _) => Err(SioError::BadData("CONNECT data must be an object")),
        (Kind::Disconnect, None) => Ok(()),
        (Kind::Disconnect, _) => Err(SioError::BadData("DISCONNECT carries no data")),
        (Kind::ConnectError, Some(Value::Object(_) | Value::String(_))) => Ok(()),
        (Kind::ConnectError, _) => Err(SioError::BadData("CONNECT_ERROR needs a message")),
        (Kind::Event | Kind::BinaryEvent, Some(Value::Array(a))) => match a.first() {
            Some(Value::String(name)) if RESERVED_EVENTS.contains(&name.as_str()) => {
                Err(SioError::ReservedEvent(name.clone()))
            }
            Some(Value::String(_) | Value::Number(_)) => Ok(()),
            _ => Err(SioError::BadData("an EVENT starts with its name")),
        },
        (Kind::Event | Kind::BinaryEvent, _) => Err(SioError::BadData("EVENT data is an array")),
        (Kind::Ack | Kind::BinaryAck, Some(Value::Array(_))) => Ok(()),
        (Kind::Ack | Kind::BinaryAck, _) => Err(SioError::BadData("ACK data is an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kind: Kind, ns: &str, id: Option<u32>, data: Option<Value>, attachments: usize) -> Packet {
        Packet {
            kind,
            ns: ns.into(),
            id,
            data,
            attachments,
        }
    }

    /// The examples of the Socket.IO v5 specification, both ways.
    #[test]
    fn the_examples_of_the_specification() {
        let cases = [
            ("0", p(Kind::Connect, "/", None, None, 0)),
            (
                "0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}",
                p(
                    Kind::Connect,
                    "/admin",
                    None,
                    Some(json!({"sid": "oSO0OpakMV_3jnilAAAA"})),
                    0,
                ),
            ),
            (
                "4{\"message\":\"Not authorized\"}",
                p(
                    Kind::ConnectError,
                    "/",
                    None,
                    Some(json!({"message": "Not authorized"})),
                    0,
                ),
            ),
            ("1/admin,", p(Kind::Disconnect, "/admin", None, None, 0)),
            (
                "2[\"foo\"]",
                p(Kind::Event, "/", None, Some(json!(["foo"])), 0),
            ),
            (
                "2/admin,456[\"project:delete\",123]",
                p(
                    Kind::Event,
                    "/admin",
                    Some(456),
                    Some(json!(["project:delete", 123])),
                    0,
                ),
            ),
            (
                "3/admin,456[]",
                p(Kind::Ack, "/admin", Some(456), Some(json!([])), 0),
            ),
            (
                "51-[\"baz\",{\"_placeholder\":true,\"num\":0}]",
                p(
                    Kind::BinaryEvent,
                    "/",
                    None,
                    Some(json!(["baz", placeholder(0)])),
                    1,
                ),
            ),
            (
                "61-/admin,456[{\"_placeholder\":true,\"num\":0}]",
                p(
                    Kind::BinaryAck,
                    "/admin",
                    Some(456),
                    Some(json!([placeholder(0)])),
                    1,
                ),
            ),
        ];
        for (text, packet) in cases {
            assert_eq!(decode(text).as_ref(), Ok(&packet), "{text}");
            let mut out = String::new();
            encode(&packet, &mut out);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn malformed_packets_are_refused() {
        assert_eq!(decode(""), Err(SioError::Empty));
        assert_eq!(decode("7"), Err(SioError::UnknownType(b'7')));
        assert_eq!(decode("4abc"), Err(SioError::BadJson));
        assert!(matches!(decode("2{}"), Err(SioError::BadData(_))));
        assert_eq!(decode("2abc[\"x\"]"), Err(SioError::BadJson));
        assert!(matches!(decode("2[]"), Err(SioError::BadData(_))));
        assert!(matches!(decode("2[{}]"), Err(SioError::BadData(_))));
        assert_eq!(
            decode("2[\"disconnect\"]"),
            Err(SioError::ReservedEvent("disconnect".into()))
        );
        assert!(matches!(decode("0[]"), Err(SioError::BadData(_))));
        assert!(matches!(decode("1\"x\""), Err(SioError::BadData(_))));
        assert_eq!(decode("5[\"x\"]"), Err(SioError::BadAttachments));
        assert_eq!(decode("5999-[\"x\"]"), Err(SioError::BadAttachments));
        assert_eq!(decode("24294967296[\"x\"]"), Err(SioError::BadAckId));
        assert!(
            decode("24294967295[\"x\"]").is_ok(),
            "u32::MAX is an ack id"
        );
    }

    #[test]
    fn placeholders() {
        assert_eq!(placeholder_num(&placeholder(3)), Some(3));
        assert_eq!(
            placeholder_num(&json!({"_placeholder": false, "num": 3})),
            None
        );
        assert_eq!(placeholder_num(&json!("x")), None);
    }
}
