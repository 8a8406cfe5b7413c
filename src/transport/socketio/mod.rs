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
use crate::wire::packet::{EventView, Limits, Packet};
use crate::wire::sio_packet::{self, MapError};
use crate::wire::socketio::Kind;
use crate::wire::websocket::{self, close, Decoder, MessageRef, Opcode, Role};
use crate::wire::{engineio, socketio};

/// The path Socket.IO clients use.
pub const PATH: &str = "/socket.io/";

/// Bytes of an upgrade request's head, at most.
pub const MAX_HEAD: usize = 8 * 1024;

/// What the bytes of a connection amounted to. An EVENT borrows from the bytes it was read
/// from; the rest is owned.
#[derive(Debug, PartialEq)]
pub enum Got<'a> {
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
    /// An EVENT for the event layer, read in place (the common case: a chat message).
    Event(EventView<'a>),
    /// An HTTP request that is not an upgrade, with its body: the server answers it, and
    /// the connection stays HTTP (keep-alive) unless the server closes it.
    Request { req: Request, body: Vec<u8> },
    /// Send these bytes (a refusal, or a close frame), then close: `why` is the reason.
    End { bytes: Vec<u8>, why: End },
}

impl Got<'_> {
    /// The same, owning what it borrowed: an EVENT as a [`Packet`].
    pub fn into_owned(self) -> Got<'static> {
        match self {
            Got::Event(e) => Got::Packet(e.into_owned()),
            Got::Upgraded { answer, sid } => Got::Upgraded { answer, sid },
            Got::Reply(bytes) => Got::Reply(bytes),
            Got::Probe(bytes) => Got::Probe(bytes),
            Got::Ping(data) => Got::Ping(data),
            Got::Upgrade => Got::Upgrade,
            Got::Eio(p) => Got::Eio(p),
            Got::Packet(p) => Got::Packet(p),
            Got::Request { req, body } => Got::Request { req, body },
            Got::End { bytes, why } => Got::End { bytes, why },
        }
    }
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
    /// with more behind it). Each WebSocket message is unmasked into `scratch`, a buffer the
    /// caller lends and keeps (one for every connection), and what is handed over may borrow
    /// it.
    pub fn read(
        &mut self,
        bytes: &[u8],
        scratch: &mut Vec<u8>,
        mut each: impl FnMut(Got<'_>) -> bool,
    ) -> usize {
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
        used += frames.decode_ref(&bytes[used..], scratch, |m| {
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

    fn refuse(
        &mut self,
        each: &mut impl FnMut(Got<'_>) -> bool,
        status: u16,
        kind: &str,
        body: &str,
    ) {
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
fn end_with(code: u16, reason: &str, why: End) -> Got<'static> {
    let mut bytes = Vec::new();
    websocket::encode_close(code, reason, None, &mut bytes);
    Got::End { bytes, why }
}

fn broken(why: &'static str) -> Got<'static> {
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
fn message<'a>(m: MessageRef<'a>, eio: &mut Option<EioReader>, limits: &Limits) -> Option<Got<'a>> {
    // The common case, an Engine.IO message for this connection's own reader: its Socket.IO
    // packet is read from the text in place, not from a copy of it.
    if let (MessageRef::Text(text), Some(eio)) = (m, eio.as_mut()) {
        if let Some(body) = engineio::message_body(text) {
            return eio.message(body, limits);
        }
    }
    let p = match m {
        MessageRef::Ping(payload) => return Some(Got::Reply(frame(Opcode::Pong, payload))),
        MessageRef::Pong(_) => return None,
        MessageRef::Close(code) => {
            let code = code.map_or(close::NORMAL, |(c, _)| c);
            return Some(end_with(code, "", End::Closed));
        }
        MessageRef::Binary(bytes) => engineio::Packet::Binary(bytes.to_vec()),
        MessageRef::Text(text) => match engineio::decode_text(text) {
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
    /// Boxed: most connections never send a binary packet, and each keeps its reader for
    /// its whole life, so the room for one would count in every idle connection's memory
    /// (some 100 bytes).
    pending: Option<Box<(socketio::Packet, Vec<Vec<u8>>)>>,
}

impl EioReader {
    /// What one Engine.IO packet from the client amounts to, if anything.
    pub fn packet(&mut self, p: engineio::Packet, limits: &Limits) -> Option<Got<'static>> {
        let pending = &mut self.pending;
        if let engineio::Packet::Binary(bytes) = p {
            let Some(held) = pending.as_mut() else {
                return Some(broken("a binary message with no packet waiting for it"));
            };
            held.1.push(bytes);
            let (p, got) = *pending.take_if(|held| held.1.len() == held.0.attachments)?;
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
            engineio::Packet::Message(body) => self.message(&body, limits).map(Got::into_owned),
            _ => Some(broken("an Engine.IO packet a client does not send")),
        }
    }

    /// An Engine.IO message's body: a Socket.IO packet, held if attachments follow. An
    /// EVENT without them is handed over in place, borrowing its namespace from `body`.
    pub fn message<'a>(&mut self, body: &'a str, limits: &Limits) -> Option<Got<'a>> {
        if self.pending.is_some() {
            return Some(broken("a text message while attachments were awaited"));
        }
        let p = match socketio::decode_ref(body) {
            Ok(p) => p,
            Err(_) => return Some(broken("not a Socket.IO packet")),
        };
        if let Err(e) = sio_packet::check(p.attachments, limits) {
            return Some(mapped(Err(e)));
        }
        if p.attachments > 0 {
            self.pending = Some(Box::new((p.into_owned(), Vec::with_capacity(0))));
            return None;
        }
        if p.kind == Kind::Event {
            return Some(match sio_packet::to_event_view(p, limits) {
                Ok(e) => Got::Event(e),
                Err(e) => mapped(Err(e)),
            });
        }
        Some(mapped(sio_packet::to_packet(
            p.into_owned(),
            Vec::new(),
            limits,
        )))
    }
}

// ANCHOR_END: layers

fn mapped(r: Result<Packet, MapError>) -> Got<'static> {
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
mod tests;
