//! Engine.IO v4 packets, as pure code: the layer between a transport (a WebSocket, or HTTP
//! long-polling) and Socket.IO.
//!
//! Every Engine.IO packet is a type, one ASCII digit, then its data:
//!
//! | type | name | data | sent by |
//! |---|---|---|---|
//! | `0` | open | JSON: `sid`, `upgrades`, `pingInterval`, `pingTimeout`, `maxPayload` | server, first |
//! | `1` | close | none | either |
//! | `2` | ping | optional text (`probe` while upgrading) | server (and the client while probing) |
//! | `3` | pong | the ping's text | the other side |
//! | `4` | message | text: a Socket.IO packet | either |
//! | `5` | upgrade | none | client, switching from polling to WebSocket |
//! | `6` | noop | none | server, to end a poll during an upgrade |
//!
//! Over WebSocket each packet is one text frame (`4` + the message), except a binary message,
//! which is a binary frame holding the bytes alone (no type digit). Over HTTP long-polling,
//! one body carries several packets separated by the record separator `\x1e`, and a binary
//! message is written as `b` followed by its bytes in base64.

use std::fmt;

use serde_json::Value;

/// The separator between packets in a long-polling body.
pub const RECORD_SEPARATOR: char = '\u{1e}';

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// The handshake's answer (its JSON object, as sent).
    Open(Value),
    Close,
    Ping(String),
    Pong(String),
    /// A text message (a Socket.IO packet).
    Message(String),
    /// A binary message (a Socket.IO attachment).
    Binary(Vec<u8>),
    Upgrade,
    Noop,
}

/// Why a text is not an Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioError {
    Empty,
    UnknownType(char),
    /// An open packet whose data is not a JSON object.
    BadOpen,
    /// Data after a type that takes none.
    Trailing(char),
}

impl fmt::Display for EioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EioError::Empty => f.write_str("an empty Engine.IO packet"),
            EioError::UnknownType(c) => write!(f, "unknown Engine.IO packet type {c:?}"),
            EioError::BadOpen => f.write_str("an open packet whose data is not a JSON object"),
            EioError::Trailing(c) => write!(f, "Engine.IO packet type {c} takes no data"),
        }
    }
}

impl std::error::Error for EioError {}

/// The body of a text packet if it is a message (`4...`), borrowed: what a reader that
/// decodes the Socket.IO packet inside at once needs, without [`decode_text`]'s copy.
pub fn message_body(text: &str) -> Option<&str> {
    text.strip_prefix('4')
}

/// Decodes one text packet (a WebSocket text frame, or one record of a polling body).
pub fn decode_text(text: &str) -> Result<Packet, EioError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(EioError::Empty)?;
    let data = chars.as_str();
    let none = |p: Packet| {
        if data.is_empty() {
            Ok(p)
        } else {
            Err(EioError::Trailing(kind))
        }
    };
    match kind {
        '0' => match serde_json::from_str::<Value>(data) {
            Ok(v @ Value::Object(_)) => Ok(Packet::Open(v)),
            _ => Err(EioError::BadOpen),
        },
        '1' => none(Packet::Close),
        '2' => Ok(Packet::Ping(data.to_string())),
        '3' => Ok(Packet::Pong(data.to_string())),
        '4' => Ok(Packet::Message(data.to_string())),
        '5' => none(Packet::Upgrade),
        '6' => none(Packet::Noop),
        other => Err(EioError::UnknownType(other)),
    }
}

/// Appends `p` as text to `out` (a WebSocket text frame's payload, or one polling record).
/// A binary message has no text form over WebSocket: use [`encode_polling`] for polling, and
/// a binary frame holding the bytes for WebSocket.
pub fn encode_text(p: &Packet, out: &mut String) {
    match p {
        Packet::Open(v) => {
            out.push('0');
            out.push_str(&v.to_string());
        }
        Packet::Close => out.push('1'),
        Packet::Ping(d) => {
            out.push('2');
            out.push_str(d);
        }
        Packet::Pong(d) => {
            out.push('3');
            out.push_str(d);
        }
        Packet::Message(m) => {
            out.push('4');
            out.push_str(m);
        }
        Packet::Binary(b) => {
            // Only in a polling body; see `encode_polling`.
            out.push('b');
            out.push_str(&base64(b));
        }
        Packet::Upgrade => out.push('5'),
        Packet::Noop => out.push('6'),
    }
}

/// A long-polling body: the packets' text forms joined by [`RECORD_SEPARATOR`], a binary
/// message as `b` and its base64.
pub fn encode_polling(packets: &[Packet]) -> String {
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        encode_text(p, &mut out);
    }
    out
}

/// Splits a long-polling body into its packets; `b` records are binary messages in base64.
/// Stops at the first bad record.
pub fn decode_polling(body: &str) -> Result<Vec<Packet>, EioError> {
    body.split(RECORD_SEPARATOR)
        .map(|record| match record.strip_prefix('b') {
            Some(b64) => unbase64(b64)
                .map(Packet::Binary)
                .ok_or(EioError::UnknownType('b')),
            None => decode_text(record),
        })
        .collect()
}

/// Standard base64 with padding (RFC 4648, 4), as Engine.IO's polling bodies use it.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The bytes of standard base64 text; `None` if it is not that.
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_packets_of_the_specification() {
        let open = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        match decode_text(open) {
            Ok(Packet::Open(v)) => assert_eq!(v["pingInterval"], json!(25000)),
            other => panic!("{other:?}"),
        }
        assert_eq!(decode_text("2"), Ok(Packet::Ping(String::new())));
        assert_eq!(decode_text("2probe"), Ok(Packet::Ping("probe".into())));
        assert_eq!(decode_text("3probe"), Ok(Packet::Pong("probe".into())));
        assert_eq!(decode_text("4hello"), Ok(Packet::Message("hello".into())));
        assert_eq!(decode_text("5"), Ok(Packet::Upgrade));
        assert_eq!(decode_text("6"), Ok(Packet::Noop));
        assert_eq!(decode_text(""), Err(EioError::Empty));
        assert_eq!(decode_text("7"), Err(EioError::UnknownType('7')));
        assert_eq!(decode_text("1x"), Err(EioError::Trailing('1')));
        assert_eq!(decode_text("0[]"), Err(EioError::BadOpen));
        let mut out = String::new();
        encode_text(&Packet::Message("2[\"hi\"]".into()), &mut out);
        assert_eq!(out, "42[\"hi\"]");
    }

    /// The specification's polling example: "hello", the bytes 1 2 3 4, and "€" in one body.
    #[test]
    fn a_polling_body() {
        let packets = [
            Packet::Message("hello".into()),
            Packet::Binary(vec![1, 2, 3, 4]),
            Packet::Message("€".into()),
        ];
        let body = encode_polling(&packets);
        assert_eq!(body, "4hello\u{1e}bAQIDBA==\u{1e}4€");
        assert_eq!(decode_polling(&body), Ok(packets.to_vec()));
    }

    #[test]
    fn base64_round_trips_every_length() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(unbase64(&base64(&bytes)), Some(bytes), "length {len}");
        }
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(unbase64("Zm9v!mFy"), None);
        assert_eq!(unbase64("Zm8"), None);
    }
}
