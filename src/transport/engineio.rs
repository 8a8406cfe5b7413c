//! Engine.IO v4 over WebSocket, as the application behind a [`WsServer`] (lesson 20).
//!
//! Engine.IO is the layer Socket.IO runs on: a session with an id, a heartbeat, and
//! messages, over whatever transport the browser can open. Over WebSocket it is:
//!
//! 1. **The handshake.** `GET /engine.io/?EIO=4&transport=websocket` (Socket.IO uses the path
//!    `/socket.io/`) upgrades to a WebSocket; a request without `EIO=4` or with another
//!    transport is refused with `400` and the JSON body Engine.IO uses
//!    (`{"code":5,"message":"Unsupported protocol version"}`, `{"code":0,"message":"Transport
//!    unknown"}`). Query parameters it does not know (a client's `t=` cache buster) are ignored.
//! 2. **The open packet.** The server's first message, text `0{...}`: the session id (20
//!    characters from the operating system's random generator), the transports it could
//!    upgrade to (none, from WebSocket), and the heartbeat's two numbers and the message size
//!    limit.
//! 3. **The heartbeat**, the other way round from lesson 16's client-driven timeout: the
//!    server sends `2` (ping) every `pingInterval`, the client answers `3` (pong), and a
//!    client silent for `pingTimeout` after a ping is closed.
//! 4. **Messages:** text `4` + the message; binary messages as binary frames, bytes alone.
//!    `1` closes the session.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::websocket::{Frames, Refusal, WsApp, WsServer};
use crate::event_loop::{ConnId, Ctx};
use crate::wire::engineio::{self, Packet};
use crate::wire::http::Request;
use crate::wire::websocket::{close, Message, Opcode};

/// The heartbeat's numbers and the message limit, sent in the open packet.
#[derive(Debug, Clone, Copy)]
pub struct EioConfig {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub max_payload: usize,
    /// Number the sessions (`session-000000000001`, ...) instead of drawing their ids at
    /// random: for demos whose output is recorded. Such ids are predictable; never in a
    /// server that others can reach.
    pub numbered_ids: bool,
}

impl Default for EioConfig {
    /// Engine.IO's defaults: a ping every 25 s, 20 s to answer, messages up to 1,000,000
    /// bytes.
    fn default() -> Self {
        EioConfig {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            numbered_ids: false,
        }
    }
}

/// The session's timers.
#[derive(Debug)]
pub enum EioTimer {
    /// Time to send connection `conn` its next ping.
    Ping(ConnId),
    /// The pong for ping number `seq` is due.
    PongDue(ConnId, u64),
}

/// One Engine.IO session.
struct Session {
    sid: String,
    pings: u64,
    awaiting_pong: bool,
}

/// What the application answers to a text message: nothing, or a message back.
pub type OnText = Box<dyn FnMut(&str, &str) -> Option<String>>;

/// Counters, for lessons and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EioStats {
    pub sessions: u64,
    pub pings: u64,
    pub pongs: u64,
    pub messages: u64,
    pub ping_timeouts: u64,
}

/// Engine.IO sessions on WebSocket connections.
pub struct EngineIo {
    config: EioConfig,
    sessions: HashMap<ConnId, Session>,
    on_text: OnText,
    stats: EioStats,
}

impl EngineIo {
    /// Sessions whose text messages go to `on_text` (with the session id); its answer, if
    /// any, goes back as a message.
    pub fn new(
        config: EioConfig,
        on_text: impl FnMut(&str, &str) -> Option<String> + 'static,
    ) -> Self {
        EngineIo {
            config,
            sessions: HashMap::new(),
            on_text: Box::new(on_text),
            stats: EioStats::default(),
        }
    }

    pub fn stats(&self) -> EioStats {
        self.stats
    }

    /// A WebSocket server carrying these sessions; its message limit is `max_payload`.
    pub fn server(self) -> WsServer<EngineIo> {
        let limits = super::websocket::Limits {
            max_message: self.config.max_payload,
            ..Default::default()
        };
        WsServer::new(limits, self)
    }

    fn send(ws: &mut Frames, ctx: &mut Ctx<EioTimer>, id: ConnId, p: &Packet) {
        let mut text = String::new();
        engineio::encode_text(p, &mut text);
        ws.send(ctx, id, Opcode::Text, text.as_bytes());
    }
}

/// A session id: 20 URL-safe characters from the operating system's random generator.
pub(crate) fn session_id() -> Option<String> {
    use base64::Engine as _;
    let mut raw = [0u8; 15];
    getrandom::fill(&mut raw).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

// ANCHOR: check
/// Engine.IO's refusal of a handshake request, if it is one: a path not in `paths`, a
/// protocol version other than 4, a transport not in `transports`.
pub fn handshake_refusal(req: &Request, paths: &[&str], transports: &[&str]) -> Option<Refusal> {
    if !paths.contains(&req.path.as_str()) {
        return Some(refusal(0, "Transport unknown"));
    }
    if req.param("EIO") != Some("4") {
        return Some(refusal(5, "Unsupported protocol version"));
    }
    if !req
        .param("transport")
        .is_some_and(|t| transports.contains(&t))
    {
        return Some(refusal(0, "Transport unknown"));
    }
    None
}
// ANCHOR_END: check

/// Engine.IO's refusal: `400` with its JSON error body.
pub(crate) fn refusal(code: u8, message: &str) -> Refusal {
    Refusal {
        status: 400,
        content_type: "application/json",
        body: json!({"code": code, "message": message}).to_string(),
    }
}

impl WsApp for EngineIo {
    type Timer = EioTimer;

    fn check(&mut self, req: &Request) -> Result<(), Refusal> {
        handshake_refusal(req, &["/engine.io/", "/socket.io/"], &["websocket"]).map_or(Ok(()), Err)
    }

    // ANCHOR: opened
    fn opened(&mut self, ws: &mut Frames, ctx: &mut Ctx<EioTimer>, id: ConnId) {
        let sid = if self.config.numbered_ids {
            Some(format!("session-{:012}", self.stats.sessions + 1))
        } else {
            session_id()
        };
        let Some(sid) = sid else {
            ws.close_with(ctx, id, close::INTERNAL_ERROR, "no random session id");
            return;
        };
        let open = json!({
            "sid": sid,
            "upgrades": [],
            "pingInterval": self.config.ping_interval.as_millis() as u64,
            "pingTimeout": self.config.ping_timeout.as_millis() as u64,
            "maxPayload": self.config.max_payload,
        });
        Self::send(ws, ctx, id, &Packet::Open(open));
        self.sessions.insert(
            id,
            Session {
                sid,
                pings: 0,
                awaiting_pong: false,
            },
        );
        self.stats.sessions += 1;
        ctx.set_timer(self.config.ping_interval, EioTimer::Ping(id));
    }
    // ANCHOR_END: opened

    fn message(&mut self, ws: &mut Frames, ctx: &mut Ctx<EioTimer>, id: ConnId, m: Message) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let text = match m {
            Message::Text(t) => t,
            // Binary messages are Socket.IO's attachments; this lesson has no use for them.
            _ => return,
        };
        match engineio::decode_text(&text) {
            Ok(Packet::Pong(_)) if session.awaiting_pong => {
                session.awaiting_pong = false;
                self.stats.pongs += 1;
                ctx.set_timer(self.config.ping_interval, EioTimer::Ping(id));
            }
            Ok(Packet::Pong(_)) => {}
            Ok(Packet::Message(body)) => {
                self.stats.messages += 1;
                let sid = session.sid.clone();
                if let Some(answer) = (self.on_text)(&sid, &body) {
                    Self::send(ws, ctx, id, &Packet::Message(answer));
                }
            }
            Ok(Packet::Close) => ws.close_with(ctx, id, close::NORMAL, ""),
            Ok(_) | Err(_) => ws.close_with(ctx, id, close::PROTOCOL_ERROR, "not Engine.IO"),
        }
    }

    // ANCHOR: heartbeat
    fn timer(&mut self, ws: &mut Frames, ctx: &mut Ctx<EioTimer>, t: EioTimer) {
        match t {
            EioTimer::Ping(id) => {
                let Some(s) = self.sessions.get_mut(&id) else {
                    return;
                };
                s.pings += 1;
                s.awaiting_pong = true;
                let seq = s.pings;
                self.stats.pings += 1;
                Self::send(ws, ctx, id, &Packet::Ping(String::new()));
                ctx.set_timer(self.config.ping_timeout, EioTimer::PongDue(id, seq));
            }
            EioTimer::PongDue(id, seq) => {
                let late = self
                    .sessions
                    .get(&id)
                    .is_some_and(|s| s.awaiting_pong && s.pings == seq);
                if late {
                    self.stats.ping_timeouts += 1;
                    ws.close_with(ctx, id, close::NORMAL, "ping timeout");
                }
            }
        }
    }
    // ANCHOR_END: heartbeat

    /// A ping for a session that is gone, or a pong deadline already met, wakes no one.
    fn timer_wanted(&self, t: &EioTimer) -> bool {
        match t {
            EioTimer::Ping(id) => self.sessions.contains_key(id),
            EioTimer::PongDue(id, seq) => self
                .sessions
                .get(id)
                .is_some_and(|s| s.awaiting_pong && s.pings == *seq),
        }
    }

    fn closed(&mut self, id: ConnId) {
        self.sessions.remove(&id);
    }
}

/// The open packet's data, as a client reads it (for the lesson's client and the tests).
pub fn open_data(text: &str) -> Option<Value> {
    match engineio::decode_text(text) {
        Ok(Packet::Open(v)) => Some(v),
        _ => None,
    }
}
