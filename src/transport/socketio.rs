//! One connection of the Socket.IO wire, read side (lesson 21): the bytes a client sends,
//! layer by layer, up to the event layer's packets. Pure: bytes in, [`Got`]s out, no I/O.
//!
//! ```text
//! bytes ── HTTP upgrade ──> WebSocket frames ──> Engine.IO packets ──> Socket.IO packets ──> Packet
//!          (once: 101)      ping/pong/close      2 3 1 (4 = message)   5N-/6N- wait for N
//!                           answered here        answered here         binary frames
//! ```
//!
//! What each layer answers itself, the event layer never sees: a WebSocket ping (pong), a
//! close frame (closed), Engine.IO's probe (`2probe` -> `3probe`). A broken rule at any
//! layer ends the connection with its reason: a WebSocket violation with the close code
//! RFC 6455 gives it (1002, 1007, 1009), a packet that is not Engine.IO or Socket.IO with
//! 1008 and `parse error`, like a bad socklab frame. Every number a client sends is bounded
//! before it is used: the head's bytes, a message's bytes (`maxPayload`), the attachments a
//! packet announces (the server's limit, 16 by default), an event name's bytes.

use super::engineio::handshake_refusal;
use super::websocket::Refusal;
use crate::wire::http::{self, Request};
use crate::wire::packet::{Limits, Packet};
use crate::wire::sio_packet::{self, MapError};
use crate::wire::websocket::{self, close, Decoder, Message, Opcode, Role};
use crate::wire::{engineio, socketio};

/// The path Socket.IO clients use.
pub const PATH: &str = "/socket.io/";

/// Bytes of an upgrade request's head, at most.
pub const MAX_HEAD: usize = 8 * 1024;

/// What the bytes of a connection amounted to.
#[derive(Debug, PartialEq)]
pub enum Got {
    /// A valid upgrade: send `answer` (`101 Switching Protocols`), then the Engine.IO open
    /// packet; or, with a `sid`, the upgrade of that long-polling session (no open packet:
    /// the session has one), if the server knows it.
    Upgraded {
        answer: Vec<u8>,
        sid: Option<String>,
    },
    /// Send these bytes now (a WebSocket pong, an answer to Engine.IO's ping).
    Reply(Vec<u8>),
    /// Engine.IO's `2probe` on a WebSocket that upgrades a long-polling session: send
    /// these bytes (`3probe`), and end the session's pending poll.
    Probe(Vec<u8>),
    /// Engine.IO's ping, with its data (from [`EioReader`]; the WebSocket reader answers it
    /// itself).
    Ping(String),
    /// Engine.IO's `5`: the session switches to this WebSocket.
    Upgrade,
    /// An Engine.IO packet for the long-polling session this WebSocket upgrades, to be read
    /// by the session's own reader (a binary event's attachments may come over either).
    Eio(engineio::Packet),
    /// A packet for the event layer.
    Packet(Packet),
    /// An HTTP request that is not an upgrade, with its body: the server answers it, and
    /// the connection stays HTTP (keep-alive) unless the server closes it.
    Request { req: Request, body: Vec<u8> },
    /// Send these bytes (a refusal, or a close frame), then close: `why` is the reason.
    End { bytes: Vec<u8>, why: End },
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The HTTP request was not a Socket.IO upgrade.
    Refused,
    /// The client closed: a WebSocket close frame, or Engine.IO's `1`.
    Closed,
    /// The client broke a rule; the text says which.
    Broken(&'static str),
}

enum State {
    /// Waiting for the upgrade request.
    Http,
    /// WebSocket frames, and the binary event waiting for its attachments, if any.
    Open {
        frames: Decoder,
        /// `None` on the WebSocket of a long-polling session (see `message`).
        eio: Option<EioReader>,
    },
    /// Ended: nothing more is read.
    Done,
}

/// The read side of one Socket.IO connection.
pub struct SioReader {
    state: State,
    limits: Limits,
}

impl SioReader {
    /// A connection whose messages are bounded by `limits.max_frame` bytes (Engine.IO's
    /// `maxPayload`) and whose packets by the rest of `limits`.
    pub fn new(limits: Limits) -> SioReader {
        SioReader {
            state: State::Http,
            limits,
        }
    }

    /// Whether the upgrade happened and the connection has not ended.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// Reads what `bytes` holds, handing each result to `each` until it returns `false` or
    /// the connection ends; returns the bytes used (the rest is incomplete: offer it again
    /// with more behind it).
    pub fn read(&mut self, bytes: &[u8], mut each: impl FnMut(Got) -> bool) -> usize {
        let mut used = 0;
        // Requests that are not an upgrade go to the server one by one (keep-alive).
        while let State::Http = self.state {
            let rest = &bytes[used..];
            let req = match http::parse_request(rest, MAX_HEAD, self.limits.max_frame) {
                Ok(None) => return used,
                Ok(Some(req)) => req,
                Err(e) => {
                    let text = format!(
                        "{} {}: {}\n",
                        e.status,
                        http::reason_phrase(e.status),
                        e.reason
                    );
                    self.refuse(&mut each, e.status, "text/plain; charset=utf-8", &text);
                    return bytes.len();
                }
            };
            if req.header("Upgrade").is_none() {
                let end = req.head_len + req.content_length;
                let Some(body) = rest.get(req.head_len..end) else {
                    return used; // the body is still on its way
                };
                let body = body.to_vec();
                used += end;
                if !each(Got::Request { req, body }) {
                    return used;
                }
                continue;
            }
            let req_len = req.head_len;
            match upgrade(&req) {
                Ok(answer) => {
                    let sid = req.param("sid").map(str::to_string);
                    self.state = State::Open {
                        frames: Decoder::new(Role::Server, self.limits.max_frame),
                        eio: sid.is_none().then(EioReader::default),
                    };
                    used += req_len;
                    if !each(Got::Upgraded { answer, sid }) {
                        return used;
                    }
                }
                Err(r) => {
                    self.refuse(&mut each, r.status, r.content_type, &r.body);
                    return bytes.len();
                }
            }
        }
        let State::Open { frames, eio } = &mut self.state else {
            return bytes.len();
        };
        let limits = &self.limits;
        let mut ended = false;
        used += frames.decode(&bytes[used..], |m| {
            let got = match m {
                Ok(m) => message(m, eio, limits),
                Err(e) => Some(end_with(e.code, e.reason, End::Broken(e.reason))),
            };
            match got {
                None => true,
                Some(got) => {
                    ended = matches!(got, Got::End { .. });
                    each(got) && !ended
                }
            }
        });
        if ended {
            self.state = State::Done;
            return bytes.len();
        }
        used
    }

    fn refuse(&mut self, each: &mut impl FnMut(Got) -> bool, status: u16, kind: &str, body: &str) {
        let headers = [("Content-Type", kind)];
        let bytes = http::response(status, &headers, body.as_bytes(), true);
        self.state = State::Done;
        each(Got::End {
            bytes,
            why: End::Refused,
        });
    }
}

/// The answer to an upgrade request: `101` with its accept key, or the refusal.
fn upgrade(req: &Request) -> Result<Vec<u8>, Refusal> {
    if req.path != PATH {
        return Err(Refusal {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: format!("404 Not Found: {} (Socket.IO is at {PATH})\n", req.path),
        });
    }
    if let Some(r) = handshake_refusal(req, &[PATH], &["websocket"]) {
        return Err(r);
    }
    match http::websocket_upgrade(req) {
        Ok(accept) => Ok(http::switching_protocols(&accept)),
        Err(e) => Err(Refusal {
            status: e.status,
            content_type: "text/plain; charset=utf-8",
            body: format!(
                "{} {}: {}\n",
                e.status,
                http::reason_phrase(e.status),
                e.reason
            ),
        }),
    }
}

/// A close frame with `code` and `reason`, then the end.
fn end_with(code: u16, reason: &str, why: End) -> Got {
    let mut bytes = Vec::new();
    websocket::encode_close(code, reason, None, &mut bytes);
    Got::End { bytes, why }
}

fn broken(why: &'static str) -> Got {
    end_with(close::POLICY_VIOLATION, "parse error", End::Broken(why))
}

fn frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    websocket::encode_frame(true, opcode, payload, None, &mut out);
    out
}

// ANCHOR: layers
/// One WebSocket message or control frame: what it amounts to, if anything. Without an
/// Engine.IO reader of its own (the WebSocket of a long-polling session, whose reader is the
/// session's), its Engine.IO packets are handed over as they are.
fn message(m: Message, eio: &mut Option<EioReader>, limits: &Limits) -> Option<Got> {
    let p = match m {
        Message::Ping(payload) => return Some(Got::Reply(frame(Opcode::Pong, &payload))),
        Message::Pong(_) => return None,
        Message::Close(code) => {
            let code = code.map_or(close::NORMAL, |(c, _)| c);
            return Some(end_with(code, "", End::Closed));
        }
        Message::Binary(bytes) => engineio::Packet::Binary(bytes),
        // The common case, an Engine.IO message (`4...`) for this connection's own reader:
        // its Socket.IO packet is read from the text in place, not from a copy of it.
        Message::Text(text) if text.starts_with('4') && eio.is_some() => {
            return eio.as_mut()?.message(&text[1..], limits);
        }
        Message::Text(text) => match engineio::decode_text(&text) {
            Ok(p) => p,
            Err(_) => return Some(broken("not an Engine.IO packet")),
        },
    };
    let got = match (eio, p) {
        (Some(eio), p) => eio.packet(p, limits)?,
        (None, engineio::Packet::Ping(data)) => Got::Ping(data),
        (None, engineio::Packet::Upgrade) => Got::Upgrade,
        (None, engineio::Packet::Close) => end_with(close::NORMAL, "", End::Closed),
        (None, p) => Got::Eio(p),
    };
    match got {
        // Engine.IO's own ping (the probe of an upgrade) is answered on this WebSocket.
        Got::Ping(data) => {
            let mut pong = String::new();
            engineio::encode_text(&engineio::Packet::Pong(data.clone()), &mut pong);
            let pong = frame(Opcode::Text, pong.as_bytes());
            Some(if data == "probe" {
                Got::Probe(pong)
            } else {
                Got::Reply(pong)
            })
        }
        got => Some(got),
    }
}

/// The Engine.IO level of one session, the same over a WebSocket and over long-polling:
/// its packets up to the event layer's, a binary packet held until its attachments came.
#[derive(Debug, Default)]
pub struct EioReader {
    pending: Option<(socketio::Packet, Vec<Vec<u8>>)>,
}

impl EioReader {
    /// What one Engine.IO packet from the client amounts to, if anything.
    pub fn packet(&mut self, p: engineio::Packet, limits: &Limits) -> Option<Got> {
        let pending = &mut self.pending;
        if let engineio::Packet::Binary(bytes) = p {
            let Some((_, got)) = pending.as_mut() else {
                return Some(broken("a binary message with no packet waiting for it"));
            };
            got.push(bytes);
            let (p, got) = pending.take_if(|(p, got)| got.len() == p.attachments)?;
            return Some(mapped(sio_packet::to_packet(p, got, limits)));
        }
        if pending.is_some() {
            return Some(broken("a text message while attachments were awaited"));
        }
        match p {
            engineio::Packet::Pong(_) => Some(Got::Packet(Packet::Pong)),
            engineio::Packet::Ping(data) => Some(Got::Ping(data)),
            engineio::Packet::Close => Some(end_with(close::NORMAL, "", End::Closed)),
            engineio::Packet::Upgrade => Some(Got::Upgrade),
            engineio::Packet::Message(body) => self.message(&body, limits),
            _ => Some(broken("an Engine.IO packet a client does not send")),
        }
    }

    /// An Engine.IO message's body: a Socket.IO packet, held if attachments follow.
    pub fn message(&mut self, body: &str, limits: &Limits) -> Option<Got> {
        if self.pending.is_some() {
            return Some(broken("a text message while attachments were awaited"));
        }
        let p = match socketio::decode(body) {
            Ok(p) => p,
            Err(_) => return Some(broken("not a Socket.IO packet")),
        };
        if let Err(e) = sio_packet::check(&p, limits) {
            return Some(mapped(Err(e)));
        }
        if p.attachments > 0 {
            self.pending = Some((p, Vec::with_capacity(0)));
            return None;
        }
        Some(mapped(sio_packet::to_packet(p, Vec::new(), limits)))
    }
}

// ANCHOR_END: layers

fn mapped(r: Result<Packet, MapError>) -> Got {
    match r {
        Ok(p) => Got::Packet(p),
        Err(MapError::Sio(_)) => broken("not a Socket.IO packet"),
        Err(MapError::LongName(_)) => broken("an event name over the limit"),
        Err(MapError::TooManyAttachments(_)) => broken("more attachments than the limit"),
        Err(MapError::ServerOnly) => broken("a CONNECT_ERROR from a client"),
        Err(MapError::AckWithoutId) => broken("an ACK without an id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UPGRADE: &str = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n\
        Upgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn masked(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        websocket::encode_frame(true, opcode, payload, Some([1, 2, 3, 4]), &mut out);
        out
    }

    fn read_all(r: &mut SioReader, bytes: &[u8]) -> Vec<Got> {
        let mut got = Vec::new();
        let used = r.read(bytes, |g| {
            got.push(g);
            true
        });
        assert_eq!(used, bytes.len());
        got
    }

    #[test]
    fn an_upgrade_then_an_event_with_an_attachment() {
        let mut r = SioReader::new(Limits::default());
        let mut bytes = UPGRADE.as_bytes().to_vec();
        bytes.extend(masked(Opcode::Text, b"3"));
        bytes.extend(masked(
            Opcode::Text,
            br#"451-/chat,7["up",{"_placeholder":true,"num":0}]"#,
        ));
        bytes.extend(masked(Opcode::Binary, &[9, 9]));
        let got = read_all(&mut r, &bytes);
        assert!(
            matches!(&got[0], Got::Upgraded { answer: b, sid: None } if b.starts_with(b"HTTP/1.1 101"))
        );
        assert_eq!(got[1], Got::Packet(Packet::Pong));
        assert_eq!(
            got[2],
            Got::Packet(Packet::Event {
                ns: "/chat".into(),
                name: "up".into(),
                args: vec![json!({"_placeholder": true, "num": 0})],
                attachments: vec![vec![9, 9]],
                id: Some(7),
                offset: None,
            })
        );
    }

    #[test]
    fn a_head_in_pieces_waits() {
        let mut r = SioReader::new(Limits::default());
        let half = &UPGRADE.as_bytes()[..40];
        assert_eq!(r.read(half, |_| true), 0);
        assert!(!r.is_open());
        assert_eq!(read_all(&mut r, UPGRADE.as_bytes()).len(), 1);
        assert!(r.is_open());
    }

    #[test]
    fn refusals_and_broken_rules_end_the_connection() {
        let refused: [&[u8]; 3] = [
            b"\x16\x03\x01 not http\r\n\r\n",
            b"GET /socket.io/?EIO=3&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        ];
        for bytes in refused {
            let mut r = SioReader::new(Limits::default());
            let got = read_all(&mut r, bytes);
            assert!(
                matches!(
                    &got[..],
                    [Got::End {
                        why: End::Refused,
                        ..
                    }]
                ),
                "{got:?}"
            );
        }
        for text in [
            "4abc",
            "42{}",
            "42abc[\"x\"]",
            r#"42["disconnect"]"#,
            "9",
            "44{}",
        ] {
            let mut r = SioReader::new(Limits::default());
            let mut bytes = UPGRADE.as_bytes().to_vec();
            bytes.extend(masked(Opcode::Text, text.as_bytes()));
            bytes.extend(masked(Opcode::Text, b"3")); // not read: the connection ended
            let got = read_all(&mut r, &bytes);
            assert_eq!(got.len(), 2, "{text}: {got:?}");
            assert!(
                matches!(
                    got[1],
                    Got::End {
                        why: End::Broken(_),
                        ..
                    }
                ),
                "{text}"
            );
        }
        let mut r = SioReader::new(Limits::default());
        let mut bytes = UPGRADE.as_bytes().to_vec();
        let mut unmasked = Vec::new();
        websocket::encode_frame(true, Opcode::Text, b"3", None, &mut unmasked);
        bytes.extend(unmasked);
        let got = read_all(&mut r, &bytes);
        let Got::End { bytes, .. } = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(&bytes[2..4], &close::PROTOCOL_ERROR.to_be_bytes());
    }

    #[test]
    fn requests_that_are_not_upgrades_go_to_the_server_one_by_one() {
        let mut r = SioReader::new(Limits::default());
        let two = b"GET / HTTP/1.1\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nab";
        let mut got = Vec::new();
        let used = r.read(two, |g| {
            got.push(g);
            true
        });
        // The second body is one byte short: only the first request is used.
        assert_eq!(used, "GET / HTTP/1.1\r\n\r\n".len());
        assert!(
            matches!(&got[..], [Got::Request { req, body }] if req.path == "/" && body.is_empty())
        );
        let mut got = Vec::new();
        let rest = b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        let used = r.read(rest, |g| {
            got.push(g);
            true
        });
        assert_eq!(used, rest.len());
        assert!(
            matches!(&got[..], [Got::Request { req, body }] if req.method == "POST" && body == b"abc")
        );
        assert!(!r.is_open());
    }

    #[test]
    fn pings_and_probes_are_answered_here() {
        let mut r = SioReader::new(Limits::default());
        let mut bytes = UPGRADE.as_bytes().to_vec();
        bytes.extend(masked(Opcode::Ping, b"hi"));
        bytes.extend(masked(Opcode::Text, b"2probe"));
        let got = read_all(&mut r, &bytes);
        assert_eq!(got[1], Got::Reply(frame(Opcode::Pong, b"hi")));
        assert_eq!(got[2], Got::Probe(frame(Opcode::Text, b"3probe")));
    }
}
