//! A WebSocket server as an event-loop handler (lesson 19): the HTTP upgrade, then frames.
//!
//! Each connection starts as HTTP. The first request must be a valid upgrade
//! ([`http::websocket_upgrade`]): the answer is `101 Switching Protocols`, and from the next
//! byte on the connection carries WebSocket frames both ways. Anything else is answered
//! `400` and closed. Bytes that came right behind the request (a client may send its first
//! frame without waiting for the `101`) are frames already.
//!
//! Then, per frame from the client ([`websocket::Decoder`] in the server's role):
//!
//! - a text or binary message (its fragments joined) goes to the application, whose answer,
//!   if any, goes back as one unmasked frame;
//! - a ping is answered with a pong carrying the same bytes (RFC 6455, 5.5.3);
//! - a close is answered with a close carrying the same status code, and the server closes
//!   the TCP connection once that is sent: the server closes first, so the `TIME_WAIT`
//!   (lesson 06) lands on the server, as RFC 6455 (7.1.1) asks;
//! - a broken rule gets a close frame with its code (1002, 1007, 1009) and the reason, then
//!   the TCP close. Nothing the peer sends after that is read.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::event_loop::{CloseReason, ConnId, Ctx, Handler};
use crate::wire::http;
use crate::wire::websocket::{self, close, Decoder, Message, Opcode, Role};

/// The bounds of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of the upgrade request's head (default 8 KiB).
    pub max_head: usize,
    /// Bytes of one message, its fragments together (default 1,000,000, Socket.IO's
    /// `maxPayload`).
    pub max_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 8 * 1024,
            max_message: 1_000_000,
        }
    }
}

/// What the application answers to a message: nothing, or a message back.
pub type OnMessage = Box<dyn FnMut(&Message) -> Option<Message>>;

/// Counters, for lessons and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsStats {
    pub upgrades: u64,
    pub refused_upgrades: u64,
    pub messages: u64,
    pub pings: u64,
    /// Connections closed with a close frame for a broken rule (1002, 1007, 1009).
    pub violations: u64,
}

enum State {
    /// Waiting for the upgrade request.
    Http,
    /// Frames both ways.
    Open(Decoder),
    /// A close frame went out; the connection closes once it is flushed.
    Closing,
}

/// A WebSocket server on the event loop.
pub struct WsServer {
    limits: Limits,
    on_message: OnMessage,
    conns: HashMap<ConnId, State>,
    stats: WsStats,
    /// One buffer for every frame sent, reused.
    out: Vec<u8>,
}

impl WsServer {
    pub fn new(
        limits: Limits,
        on_message: impl FnMut(&Message) -> Option<Message> + 'static,
    ) -> Self {
        WsServer {
            limits,
            on_message: Box::new(on_message),
            conns: HashMap::new(),
            stats: WsStats::default(),
            out: Vec::new(),
        }
    }

    pub fn stats(&self) -> WsStats {
        self.stats
    }

    /// Sends one unmasked frame.
    fn send(&mut self, ctx: &mut Ctx<()>, id: ConnId, opcode: Opcode, payload: &[u8]) {
        self.out.clear();
        websocket::encode_frame(true, opcode, payload, None, &mut self.out);
        let _ = ctx.send(id, &self.out);
    }

    /// Sends a close frame with `code` and `reason`, then closes once it is flushed.
    fn close_with(&mut self, ctx: &mut Ctx<()>, id: ConnId, code: u16, reason: &str) {
        self.out.clear();
        websocket::encode_close(code, reason, None, &mut self.out);
        let _ = ctx.send(id, &self.out);
        self.conns.insert(id, State::Closing);
        ctx.close(id);
    }

    /// Reads the upgrade request; returns the bytes it took (all of them if refused), or
    /// `None` while it is incomplete.
    fn upgrade(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> Option<usize> {
        let req = match http::parse_request(bytes, self.limits.max_head, 0) {
            Ok(None) => return None,
            Ok(Some(req)) => req,
            Err(e) => {
                self.refuse(ctx, id, e.status, e.reason);
                return Some(bytes.len());
            }
        };
        match http::websocket_upgrade(&req) {
            Ok(accept) => {
                let _ = ctx.send(id, &http::switching_protocols(&accept));
                let decoder = Decoder::new(Role::Server, self.limits.max_message);
                self.conns.insert(id, State::Open(decoder));
                self.stats.upgrades += 1;
                Some(req.head_len)
            }
            Err(e) => {
                self.refuse(ctx, id, e.status, e.reason);
                Some(bytes.len())
            }
        }
    }

    fn refuse(&mut self, ctx: &mut Ctx<()>, id: ConnId, status: u16, why: &str) {
        self.stats.refused_upgrades += 1;
        let body = format!("{status} {}: {why}\n", http::reason_phrase(status));
        let _ = ctx.send(id, &http::response(status, &[], body.as_bytes(), true));
        self.conns.insert(id, State::Closing);
        ctx.close(id);
    }

    /// Decodes the frames in `bytes` and acts on each; returns the bytes used.
    fn frames(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        let Some(State::Open(decoder)) = self.conns.get_mut(&id) else {
            return bytes.len();
        };
        // The decoder borrows the table; collect what to do, then do it.
        let mut got = Vec::new();
        let used = decoder.decode(bytes, |m| {
            let stop = matches!(m, Err(_) | Ok(Message::Close(_)));
            got.push(m);
            !stop
        });
        // ANCHOR: frames
        for m in got {
            match m {
                Ok(Message::Ping(payload)) => {
                    self.stats.pings += 1;
                    self.send(ctx, id, Opcode::Pong, &payload);
                }
                Ok(Message::Pong(_)) => {}
                Ok(Message::Close(code)) => {
                    let code = code.map_or(close::NORMAL, |(c, _)| c);
                    self.close_with(ctx, id, code, "");
                    return bytes.len();
                }
                Ok(m) => {
                    self.stats.messages += 1;
                    match (self.on_message)(&m) {
                        Some(Message::Text(t)) => self.send(ctx, id, Opcode::Text, t.as_bytes()),
                        Some(Message::Binary(b)) => self.send(ctx, id, Opcode::Binary, &b),
                        _ => {}
                    }
                }
                Err(e) => {
                    self.stats.violations += 1;
                    self.close_with(ctx, id, e.code, e.reason);
                    return bytes.len();
                }
            }
        }
        // ANCHOR_END: frames
        used
    }
}

impl Handler for WsServer {
    type Timer = ();
    type Message = ();

    fn accepted(&mut self, _: &mut Ctx<()>, id: ConnId, _: SocketAddr) {
        self.conns.insert(id, State::Http);
    }

    fn data(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        match self.conns.get(&id) {
            Some(State::Http) => match self.upgrade(ctx, id, bytes) {
                None => 0,
                Some(n) if n == bytes.len() => n,
                Some(n) => n + self.frames(ctx, id, &bytes[n..]),
            },
            Some(State::Open(_)) => self.frames(ctx, id, bytes),
            Some(State::Closing) | None => bytes.len(),
        }
    }

    fn closed(&mut self, _: &mut Ctx<()>, id: ConnId, _: CloseReason) {
        self.conns.remove(&id);
    }
}
