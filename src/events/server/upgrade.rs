//! Moving a long-polling session to a WebSocket (lesson 22): the `101` for a session's id,
//! the probe that ends the held GET with a noop, the `5` after which the session lives on the
//! WebSocket, and the upgrade that never finishes.

use super::polling::error;
use super::protocol::{Action, ServerTimer};
use super::Io;
use crate::event_loop::ConnId;
use crate::events::encoder::Wire;
use crate::events::link::Link;
use crate::events::reasons;
use crate::wire::engineio::{self, RECORD_SEPARATOR};
use crate::wire::http;
use crate::wire::websocket::{self, Opcode};

impl Io {
    /// A WebSocket on TCP connection `conn` asks to carry session `sid`: `101` if the
    /// session is there and not upgrading yet, `400` otherwise.
    pub(super) fn upgrade_polling(&mut self, conn: Link, sid: &str, answer: &[u8]) {
        let link = self.polling.by_sid.get(sid).copied();
        let tcp = conn.tcp();
        let ok = match (link.and_then(|l| self.polling.get_mut(l)), tcp) {
            (Some(s), Some(tcp)) if s.ws.is_none() && !s.upgraded => {
                s.ws = Some(tcp);
                true
            }
            _ => false,
        };
        let (Some(link), Some(tcp), true) = (link, tcp, ok) else {
            let r = error(1, "Session ID unknown");
            let kind = [("Content-Type", "application/json")];
            self.queue_bytes(conn, &http::response(400, &kind, &r.body, true));
            self.stats.http_refused += 1;
            self.close_later(conn, true);
            return;
        };
        self.queue_bytes(conn, answer);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.route = Some(link);
            c.hello = true;
        }
        let due = ServerTimer::UpgradeDue(link, tcp);
        let after = self.config.upgrade_timeout;
        self.out.push(Action::Timer(after, due));
    }

    /// The probe came on the WebSocket: the held GET ends with a noop, so that the client
    /// stops polling and can switch.
    pub(super) fn probed(&mut self, link: Link) {
        let _ = self.polling.queue(link, b"6", usize::MAX);
    }

    /// The client sent `5` on WebSocket `tcp`: from now on the session lives there. What
    /// waited for a poll goes over the WebSocket, each record as a frame.
    pub(super) fn upgraded(&mut self, link: Link, tcp: ConnId) {
        let Some(s) = self.polling.get_mut(link) else {
            return;
        };
        if s.ws != Some(tcp) {
            return;
        }
        s.upgraded = true;
        let waiting = std::mem::take(&mut s.queue);
        let held = s.held.take();
        self.polling.ready.retain(|l| *l != link);
        if let Some(h) = held {
            self.answer_held(h, b"6".to_vec());
        }
        if let Some(c) = self.conns.get_mut(&link) {
            c.wire = Wire::SocketIo;
        }
        let sids: Vec<_> = self
            .conns
            .get(&link)
            .map(|c| c.sockets.values().cloned().collect())
            .unwrap_or_default();
        for sid in sids {
            if let Some(s) = self.sockets.get_mut(&*sid) {
                s.wire = Wire::SocketIo;
            }
        }
        self.everyone = None; // it keeps each recipient's wire
        let mut frames = Vec::new();
        for record in waiting.split(|&b| b == RECORD_SEPARATOR as u8) {
            match record.strip_prefix(b"b") {
                Some(b64) => {
                    let bytes = std::str::from_utf8(b64).ok().and_then(engineio::unbase64);
                    let bytes = bytes.unwrap_or_default();
                    websocket::encode_frame(true, Opcode::Binary, &bytes, None, &mut frames);
                }
                // The probe's noop, left for a poll that never came: it is the polling
                // transport's, not a packet for the WebSocket.
                None if record.is_empty() || record == b"6" => {}
                None => websocket::encode_frame(true, Opcode::Text, record, None, &mut frames),
            }
        }
        if !frames.is_empty() {
            self.queue_bytes(Link::Tcp(tcp), &frames);
        }
    }

    /// The upgrade's time is up: a WebSocket that has not sent `5` is dropped.
    pub(super) fn upgrade_due(&mut self, link: Link, tcp: ConnId) {
        let abandoned = self
            .polling
            .get_mut(link)
            .is_some_and(|s| s.ws == Some(tcp) && !s.upgraded);
        if abandoned {
            self.abandon_upgrade(link, tcp);
            self.close_conn(Link::Tcp(tcp), reasons::TRANSPORT_CLOSE, true);
        }
    }

    /// WebSocket `tcp` of long-polling session `link` ended (its client closed it or broke a
    /// rule, or the connection went): an upgraded session ends with it, for `reason` (after
    /// its close frame, if `said`: none is added); one still probing stays on polling.
    pub(super) fn websocket_ended(&mut self, link: Link, tcp: ConnId, reason: &str, said: bool) {
        if self.polling.carrier(link) != Some(tcp) {
            self.abandon_upgrade(link, tcp);
            return;
        }
        if let Some(c) = self.conns.get_mut(&link) {
            c.closing |= said;
        }
        self.close_conn(link, reason, said);
    }

    /// The WebSocket that was probing `link` is gone: the session stays on polling.
    pub(super) fn abandon_upgrade(&mut self, link: Link, tcp: ConnId) {
        if let Some(s) = self.polling.get_mut(link) {
            if s.ws == Some(tcp) && !s.upgraded {
                s.ws = None;
            }
        }
    }
}
