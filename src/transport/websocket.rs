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

use crate::event_loop::{CloseReason, ConnId, Ctx, Handler, TimerId};
use crate::wire::http::{self, Request};
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

/// What runs on a WebSocket server's connections: the application behind the frames.
///
/// A closure `FnMut(&Message) -> Option<Message>` is one (lesson 19's echo): its answer, if
/// any, goes back as one frame. Engine.IO (lesson 20) is another, with timers of its own.
pub trait WsApp {
    /// What the application's timers carry.
    type Timer;

    /// Looks at the upgrade request before it is accepted: `Err` refuses it with a status,
    /// a content type and a body.
    fn check(&mut self, _req: &Request) -> Result<(), Refusal> {
        Ok(())
    }

    /// Connection `id` is upgraded: frames may go out.
    fn opened(&mut self, _ws: &mut Frames, _ctx: &mut Ctx<Self::Timer>, _id: ConnId) {}

    /// A text or binary message arrived on `id`.
    fn message(&mut self, ws: &mut Frames, ctx: &mut Ctx<Self::Timer>, id: ConnId, m: Message);

    /// Connection `id` is gone.
    fn closed(&mut self, _id: ConnId) {}

    /// A timer the application set is due.
    fn timer(&mut self, _ws: &mut Frames, _ctx: &mut Ctx<Self::Timer>, _t: Self::Timer) {}

    /// Whether a timer still matters (see `Handler::timer_wanted`).
    fn timer_wanted(&self, _t: &Self::Timer) -> bool {
        true
    }
}

impl<F: FnMut(&Message) -> Option<Message>> WsApp for F {
    type Timer = ();

    fn message(&mut self, ws: &mut Frames, ctx: &mut Ctx<()>, id: ConnId, m: Message) {
        match self(&m) {
            Some(Message::Text(t)) => ws.send(ctx, id, Opcode::Text, t.as_bytes()),
            Some(Message::Binary(b)) => ws.send(ctx, id, Opcode::Binary, &b),
            _ => {}
        }
    }
}

/// An upgrade refused by the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

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

/// The frames side of every connection: their states, the one buffer frames are encoded
/// into, the counters. An application sends through it.
pub struct Frames {
    limits: Limits,
    conns: HashMap<ConnId, State>,
    stats: WsStats,
    /// One buffer for every frame sent, reused.
    out: Vec<u8>,
}

impl Frames {
    /// Sends one unmasked frame on `id`.
    pub fn send<T>(&mut self, ctx: &mut Ctx<T>, id: ConnId, opcode: Opcode, payload: &[u8]) {
        self.out.clear();
        websocket::encode_frame(true, opcode, payload, None, &mut self.out);
        let _ = ctx.send(id, &self.out);
    }

    /// Sends a close frame with `code` and `reason` on `id`, then closes once it is flushed.
    pub fn close_with<T>(&mut self, ctx: &mut Ctx<T>, id: ConnId, code: u16, reason: &str) {
        self.out.clear();
        websocket::encode_close(code, reason, None, &mut self.out);
        let _ = ctx.send(id, &self.out);
        self.conns.insert(id, State::Closing);
        ctx.close(id);
    }

    /// Whether `id` is upgraded and not closing.
    pub fn is_open(&self, id: ConnId) -> bool {
        matches!(self.conns.get(&id), Some(State::Open(_)))
    }

    fn refuse<T>(&mut self, ctx: &mut Ctx<T>, id: ConnId, status: u16, kind: &str, body: &str) {
        self.stats.refused_upgrades += 1;
        let headers = [("Content-Type", kind)];
        let _ = ctx.send(id, &http::response(status, &headers, body.as_bytes(), true));
        self.conns.insert(id, State::Closing);
        ctx.close(id);
    }
}

/// A WebSocket server on the event loop, with application `A` behind the frames.
pub struct WsServer<A: WsApp> {
    ws: Frames,
    app: A,
}

impl<A: WsApp> WsServer<A> {
    pub fn new(limits: Limits, app: A) -> Self {
        WsServer {
            ws: Frames {
                limits,
                conns: HashMap::new(),
                stats: WsStats::default(),
                out: Vec::new(),
            },
            app,
        }
    }

    pub fn stats(&self) -> WsStats {
        self.ws.stats
    }

    pub fn app(&mut self) -> &mut A {
        &mut self.app
    }

    /// Reads the upgrade request; returns the bytes it took (all of them if refused), or
    /// `None` while it is incomplete.
    fn upgrade(&mut self, ctx: &mut Ctx<A::Timer>, id: ConnId, bytes: &[u8]) -> Option<usize> {
        let refused = |e: http::HttpError| {
            let text = format!(
                "{} {}: {}\n",
                e.status,
                http::reason_phrase(e.status),
                e.reason
            );
            Refusal {
                status: e.status,
                content_type: "text/plain; charset=utf-8",
                body: text,
            }
        };
        let req = match http::parse_request(bytes, self.ws.limits.max_head, 0) {
            Ok(None) => return None,
            Ok(Some(req)) => req,
            Err(e) => {
                let r = refused(e);
                self.ws.refuse(ctx, id, r.status, r.content_type, &r.body);
                return Some(bytes.len());
            }
        };
        // The application looks first: a request it refuses is refused in its own terms
        // (Engine.IO's JSON body), whatever else is wrong with it.
        let verdict = self
            .app
            .check(&req)
            .and_then(|()| http::websocket_upgrade(&req).map_err(refused));
        match verdict {
            Ok(accept) => {
                let _ = ctx.send(id, &http::switching_protocols(&accept));
                let decoder = Decoder::new(Role::Server, self.ws.limits.max_message);
                self.ws.conns.insert(id, State::Open(decoder));
                self.ws.stats.upgrades += 1;
                self.app.opened(&mut self.ws, ctx, id);
                Some(req.head_len)
            }
            Err(r) => {
                self.ws.refuse(ctx, id, r.status, r.content_type, &r.body);
                Some(bytes.len())
            }
        }
    }

    /// Decodes the frames in `bytes` and acts on each; returns the bytes used.
    fn frames(&mut self, ctx: &mut Ctx<A::Timer>, id: ConnId, bytes: &[u8]) -> usize {
        let Some(State::Open(decoder)) = self.ws.conns.get_mut(&id) else {
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
                    self.ws.stats.pings += 1;
                    self.ws.send(ctx, id, Opcode::Pong, &payload);
                }
                Ok(Message::Pong(_)) => {}
                Ok(Message::Close(code)) => {
                    let code = code.map_or(close::NORMAL, |(c, _)| c);
                    self.ws.close_with(ctx, id, code, "");
                    return bytes.len();
                }
                Ok(m) => {
                    self.ws.stats.messages += 1;
                    self.app.message(&mut self.ws, ctx, id, m);
                    if !self.ws.is_open(id) {
                        return bytes.len(); // the application closed it
                    }
                }
                Err(e) => {
                    self.ws.stats.violations += 1;
                    self.ws.close_with(ctx, id, e.code, e.reason);
                    return bytes.len();
                }
            }
        }
        // ANCHOR_END: frames
        used
    }
}

impl<A: WsApp> Handler for WsServer<A> {
    type Timer = A::Timer;
    type Message = ();

    fn accepted(&mut self, _: &mut Ctx<A::Timer>, id: ConnId, _: SocketAddr) {
        self.ws.conns.insert(id, State::Http);
    }

    fn data(&mut self, ctx: &mut Ctx<A::Timer>, id: ConnId, bytes: &[u8]) -> usize {
        match self.ws.conns.get(&id) {
            Some(State::Http) => match self.upgrade(ctx, id, bytes) {
                None => 0,
                Some(n) if n == bytes.len() => n,
                Some(n) => n + self.frames(ctx, id, &bytes[n..]),
            },
            Some(State::Open(_)) => self.frames(ctx, id, bytes),
            Some(State::Closing) | None => bytes.len(),
        }
    }

    fn timer(&mut self, ctx: &mut Ctx<A::Timer>, _: TimerId, t: A::Timer) {
        self.app.timer(&mut self.ws, ctx, t);
    }

    fn timer_wanted(&self, t: &A::Timer) -> bool {
        self.app.timer_wanted(t)
    }

    fn closed(&mut self, _: &mut Ctx<A::Timer>, id: ConnId, _: CloseReason) {
        if self.ws.conns.remove(&id).is_some() {
            self.app.closed(id);
        }
    }
}
