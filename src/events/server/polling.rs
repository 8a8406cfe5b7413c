//! Engine.IO over HTTP long-polling (lesson 22): a session that lives across requests, and
//! its upgrade to a WebSocket.
//!
//! ```text
//! GET  /socket.io/?EIO=4&transport=polling            -> 0{"sid":"S","upgrades":["websocket"],...}
//! POST /socket.io/?EIO=4&transport=polling&sid=S  40  -> ok        (client packets, \x1e between)
//! GET  /socket.io/?EIO=4&transport=polling&sid=S      -> held until there is something to send,
//!                                                        then 40{"sid":...}\x1e2 ...
//! GET  /socket.io/?EIO=4&transport=websocket&sid=S    -> 101; 2probe -> 3probe, the held GET gets 6;
//!                                                        5: the session now lives on the WebSocket
//! ```
//!
//! A session is one connection to the event layer ([`Link::Polling`]): what is sent to it
//! waits in its queue, bounded like a TCP connection's outbound buffer, until a GET takes it.
//! It is closed by the same heartbeat as any connection: its pings wait in the queue, and a
//! client that stops polling cannot answer them. The rules, each answered as Engine.IO does:
//! a second GET while one is held closes the session; a bad packet closes it; a request
//! for a session that is unknown, upgraded or closed gets `400`; a body over `maxPayload`
//! gets `413` (the reader's bound).

use serde_json::json;

use super::protocol::{Action, ServerTimer};
use super::sessions::Held;
use super::{ConnState, Io, NsSockets, Reader};
use crate::event_loop::{ConnId, Ctx, SendError};
use crate::events::encoder::Wire;
use crate::events::link::Link;
use crate::events::reasons;
use crate::transport::http::Reply;
use crate::transport::socketio::{End, Got};
use crate::wire::engineio;
use crate::wire::http::{self, Request};

/// Engine.IO's JSON error answer.
pub(super) fn error(code: u8, message: &str) -> Reply {
    Reply {
        status: 400,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    }
}

fn text(body: Vec<u8>) -> Reply {
    let kind = "text/plain; charset=UTF-8";
    Reply {
        status: 200,
        headers: vec![("Content-Type".into(), kind.into())],
        body,
    }
}

impl Io {
    /// A long-polling request on TCP connection `conn` (`http.rs` checked its path, version
    /// and transport). Returns the answer, or `None` when a GET is held.
    /// `headers` go on every answer to it (CORS), a held one's too.
    pub(super) fn polling_request(
        &mut self,
        conn: Link,
        req: &Request,
        body: &[u8],
        headers: &[(String, String)],
    ) -> Option<Reply> {
        let Some(sid) = req.param("sid") else {
            return Some(match req.method.as_str() {
                "GET" => self.open_polling(conn),
                _ => error(2, "Bad handshake method"),
            });
        };
        let Some(&link) = self.polling.by_sid.get(sid) else {
            return Some(error(1, "Session ID unknown"));
        };
        let Some(session) = self.polling.get_mut(link) else {
            return Some(error(1, "Session ID unknown"));
        };
        if session.upgraded {
            return Some(error(3, "Bad request"));
        }
        if session.closing {
            // A session the server closed: what waited, then `1` in a poll of its own (see
            // `close_polling`), then it is gone.
            if req.method != "GET" {
                return Some(error(1, "Session ID unknown"));
            }
            let last = std::mem::take(&mut session.queue);
            if !last.is_empty() {
                return Some(text(last));
            }
            self.forget_session(link);
            return Some(text(b"1".to_vec()));
        }
        match req.method.as_str() {
            "GET" if session.held.is_some() => {
                // Two polls at once: Engine.IO closes the session.
                self.stats.parse_errors += 1;
                self.close_conn(link, reasons::PARSE_ERROR, true);
                Some(error(3, "Bad request"))
            }
            "GET" if !session.queue.is_empty() => Some(text(std::mem::take(&mut session.queue))),
            "GET" => match conn.tcp() {
                Some(tcp) => {
                    let held = Held {
                        conn: tcp,
                        headers: headers.to_vec(),
                        close: !req.keep_alive(),
                    };
                    self.polling.hold(link, held);
                    None
                }
                None => Some(error(3, "Bad request")),
            },
            "POST" => Some(self.polling_post(link, body)),
            _ => Some(error(2, "Bad handshake method")),
        }
    }

    /// A new session: its link, its open packet as the answer, its heartbeat.
    fn open_polling(&mut self, conn: Link) -> Reply {
        let Some(peer) = self.conns.get(&conn).map(|c| c.peer) else {
            return error(3, "Bad request");
        };
        if self.polling.by_sid.len() >= self.config.max_polling_sessions {
            let mut full = error(4, "Too many long-polling sessions");
            full.status = 503;
            return full;
        }
        let Some(sid) = self.ids.next_id() else {
            return Reply::text(500, "500 Internal Server Error: no random id\n");
        };
        let link = self.polling.insert(sid.clone());
        self.stats.polling_sessions = self.polling.by_sid.len() as u64;
        self.recovery.connected(link);
        self.conns.insert(
            link,
            ConnState {
                peer,
                wire: Wire::Polling,
                reader: Reader::Session,
                hello: true,
                route: None,
                sockets: NsSockets::default(),
                pings: 0,
                awaiting_pong: false,
                closing: false,
            },
        );
        self.stats.socketio_connections += 1;
        let (handshake, ping) = (self.config.handshake_timeout, self.config.ping_interval);
        self.out
            .push(Action::Timer(handshake, ServerTimer::Handshake(link)));
        self.out.push(Action::Timer(ping, ServerTimer::Ping(link)));
        let open = engineio::Packet::Open(json!({
            "sid": sid,
            "upgrades": ["websocket"],
            "pingInterval": self.config.ping_interval.as_millis() as u64,
            "pingTimeout": self.config.ping_timeout.as_millis() as u64,
            "maxPayload": self.config.limits.max_frame,
        }));
        let mut body = String::new();
        engineio::encode_text(&open, &mut body);
        text(body.into_bytes())
    }

    /// The client's packets in a POST body.
    fn polling_post(&mut self, link: Link, body: &[u8]) -> Reply {
        self.wire_in(link, body);
        let packets = std::str::from_utf8(body)
            .ok()
            .and_then(|b| engineio::decode_polling(b).ok());
        let Some(packets) = packets else {
            self.stats.parse_errors += 1;
            self.close_conn(link, reasons::PARSE_ERROR, true);
            return error(3, "Bad request");
        };
        for p in packets {
            if !self.session_packet(link, p) {
                return error(3, "Bad request");
            }
        }
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: b"ok".to_vec(),
        }
    }

    /// One Engine.IO packet of session `link` (from a POST, or from the WebSocket that
    /// upgrades it), read by the session's own reader; `false` if it broke the protocol
    /// (the session is then closed).
    pub(super) fn session_packet(&mut self, link: Link, p: engineio::Packet) -> bool {
        let limits = self.config.limits;
        let Some(s) = self.polling.get_mut(link) else {
            return true;
        };
        let Some(got) = s.eio.packet(p, &limits) else {
            return true;
        };
        match got {
            Got::Packet(p) => self.on_owned_packet(link, p),
            Got::End {
                why: End::Closed, ..
            } => {
                self.close_conn(link, reasons::TRANSPORT_CLOSE, true);
            }
            Got::End { .. } | Got::Upgrade => {
                self.stats.parse_errors += 1;
                self.close_conn(link, reasons::PARSE_ERROR, true);
                return false;
            }
            // A ping over polling is not Engine.IO v4's; nothing else comes from here.
            _ => {}
        }
        true
    }

    /// TCP connection `tcp` is gone: a GET it held is forgotten (the session lives on, and
    /// its heartbeat ends it if no other poll comes).
    pub(super) fn polling_conn_closed(&mut self, tcp: ConnId) {
        self.polling.release(tcp);
    }

    /// Ends session `link` for the loop: a held GET gets what is queued and `1`; an
    /// upgraded one closes its WebSocket. The event layer's side of it goes as for a closed
    /// TCP connection.
    pub(super) fn close_polling(&mut self, ctx: &mut Ctx<ServerTimer>, link: Link, flush: bool) {
        let Some(s) = self.polling.get_mut(link) else {
            return;
        };
        let mut keep = false;
        match (s.upgraded, s.ws) {
            (true, Some(ws)) if flush => ctx.close(ws),
            (true, Some(ws)) => ctx.abort(ws),
            (_, probing) => {
                // A WebSocket still probing goes with its session: nothing else would close
                // it before its own timers.
                if let Some(ws) = probing {
                    ctx.close(ws);
                }
                // Engine.IO's close `1` goes in a poll of its own: socket.io-client handles
                // the packets of a payload a tick later than a close, so a `41` (the server's
                // DISCONNECT) in the same payload would reach it as `transport close`.
                let waiting = std::mem::take(&mut s.queue);
                match s.held.take() {
                    Some(h) => {
                        // What waited now and `1` at the next poll; or `1` now.
                        let last_poll = waiting.is_empty();
                        let body = if last_poll { b"1".to_vec() } else { waiting };
                        let bytes = held_response(&h, body);
                        let _ = ctx.send(h.conn, &bytes);
                        if h.close {
                            ctx.close(h.conn);
                        }
                        s.closing = flush && !last_poll;
                        keep = s.closing;
                    }
                    None if flush => {
                        // What waited at the next poll, then `1`. Not `1` queued: a closing
                        // session answers `1` itself once its queue is empty, and a queued
                        // one would come twice.
                        s.queue = waiting;
                        s.closing = true;
                        keep = true;
                    }
                    None => {}
                }
                if keep {
                    // Kept for the client's last polls, at most a ping timeout.
                    let after = self.config.ping_timeout;
                    ctx.set_timer(after, ServerTimer::PollingGone(link));
                }
            }
        }
        if !keep {
            self.forget_session(link);
        }
        self.loop_closed(link, &crate::event_loop::CloseReason::Local);
    }

    /// Removes session `link` from the table (its slot is reused), and counts what is left.
    fn forget_session(&mut self, link: Link) {
        self.polling.remove(link);
        self.stats.polling_sessions = self.polling.by_sid.len() as u64;
    }

    /// A closed session's last poll did not come in time.
    pub(super) fn polling_gone(&mut self, link: Link) {
        if self.polling.get_mut(link).is_some_and(|s| s.closing) {
            self.forget_session(link);
        }
    }

    /// Answers the held GETs of the sessions that got records during the flush.
    pub(super) fn answer_polls(&mut self, ctx: &mut Ctx<ServerTimer>) {
        let ready = std::mem::take(&mut self.polling.ready);
        for link in ready {
            let Some(s) = self.polling.get_mut(link) else {
                continue;
            };
            if s.queue.is_empty() {
                continue;
            }
            let Some(h) = s.held.take() else {
                continue;
            };
            let body = std::mem::take(&mut s.queue);
            let bytes = held_response(&h, body);
            if let Err(SendError::Full { .. }) = ctx.send(h.conn, &bytes) {
                ctx.abort(h.conn);
            }
            if h.close {
                ctx.close(h.conn);
            }
        }
    }

    pub(super) fn answer_held(&mut self, h: Held, body: Vec<u8>) {
        let bytes = held_response(&h, body);
        self.queue_bytes(Link::Tcp(h.conn), &bytes);
        if h.close {
            self.close_later(Link::Tcp(h.conn), true);
        }
    }
}

fn held_response(h: &Held, body: Vec<u8>) -> Vec<u8> {
    let mut reply = text(body);
    reply.headers.extend(h.headers.iter().cloned());
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    http::response(200, &headers, &reply.body, h.close)
}
