//! Coming back: the end of a connection (`lost`) or of the client (`finish`), the backoff
//! between attempts, the heartbeat deadline, and the CONNECT that asks for the session.

use std::time::Duration;

use serde_json::{json, Value};

use super::io::{AckCallback, ClientIo};
use super::protocol::{Action, ClientTimer};
use super::{ClientOptions, ClientState};
use crate::events::guard;
use crate::events::{reasons, AckError};
use crate::wire::packet::Packet;

/// The bounds the client puts on the server's `pingInterval` and `pingTimeout`, in
/// milliseconds: 1 ms to 1 hour each. A number outside is taken as the nearest bound, so
/// that no HELLO can make their sum overflow (`u64::MAX` and 1: a panic in a debug build, a
/// deadline of 0 and a reconnection after every HELLO in a release one) or put the deadline
/// out of reach.
const PING_MS_BOUNDS: std::ops::RangeInclusive<u64> = 1..=3_600_000;

// ANCHOR: backoff
/// The delay before reconnection attempt `attempt` (0-based): Socket.IO's backoff.
/// `random` is a number in [0, 1).
pub fn backoff(opts: &ClientOptions, attempt: u32, random: f64) -> Duration {
    let base = opts.reconnection_delay.as_millis() as f64;
    let mut ms = base * 2f64.powi(attempt.min(30) as i32);
    let jitter = opts.randomization_factor.clamp(0.0, 1.0);
    if jitter > 0.0 {
        let deviation = (random * jitter * ms).floor();
        ms = if ((random * 10.0).floor() as u64) & 1 == 0 {
            ms - deviation
        } else {
            ms + deviation
        };
    }
    let max = opts.reconnection_delay_max.as_millis() as f64;
    Duration::from_millis(ms.clamp(0.0, max) as u64)
}
// ANCHOR_END: backoff

impl ClientIo {
    /// Ends for good: fails what waits for an ack, fires `disconnect` if connected.
    pub(super) fn finish(&mut self, reason: &str) {
        if self.state == ClientState::Disconnected {
            return;
        }
        let was_connected = self.state == ClientState::Connected;
        self.state = ClientState::Disconnected;
        self.disconnect_reason = Some(reason.to_string());
        self.unacked.clear();
        let acks: Vec<AckCallback> = self.acks.drain().map(|(_, cb)| cb).collect();
        for cb in acks {
            if let Err(p) = guard::call(|| cb(self, Err(AckError::Disconnected))) {
                self.callback_panicked("ack (disconnected)", &p);
            }
        }
        if was_connected {
            self.fire("disconnect", vec![json!(reason)]);
        }
    }

    // ANCHOR: lost
    /// The connection is gone for `reason` (not by anyone's choice): fire `disconnect`,
    /// then try again with backoff, or end.
    pub(super) fn lost(&mut self, reason: &str) {
        if matches!(self.state, ClientState::Disconnected) {
            return;
        }
        self.conn = None;
        self.ping_gen += 1;
        if !(self.opts.reconnection && reasons::client_reconnects(reason)) {
            self.finish(reason);
            return;
        }
        let was_connected = self.state == ClientState::Connected;
        self.state = ClientState::Reconnecting;
        self.disconnect_reason = Some(reason.to_string());
        if was_connected {
            self.fire("disconnect", vec![json!(reason)]);
        }
        self.schedule_reconnect();
    }
    // ANCHOR_END: lost

    pub(super) fn schedule_reconnect(&mut self) {
        if self.state != ClientState::Reconnecting {
            return;
        }
        if self
            .opts
            .reconnection_attempts
            .is_some_and(|max| self.attempts >= max)
        {
            self.fire("reconnect_failed", Vec::new());
            let reason = self
                .disconnect_reason
                .clone()
                .unwrap_or_else(|| reasons::TRANSPORT_CLOSE.to_string());
            self.finish(&reason);
            return;
        }
        let r = crate::events::ids::unit_random();
        let delay = backoff(&self.opts, self.attempts, r);
        self.out.push(Action::Timer(delay, ClientTimer::Reconnect));
    }

    // ANCHOR: expect_ping
    /// The server's HELLO says how often it pings: expect one within interval + timeout.
    /// Both numbers come from the peer, so each is clamped to [`PING_MS_BOUNDS`] first.
    pub(super) fn expect_ping(&mut self) {
        let ms = |k: &str| {
            let v = self.server_info.get(k).and_then(Value::as_u64)?;
            Some(v.clamp(*PING_MS_BOUNDS.start(), *PING_MS_BOUNDS.end()))
        };
        if let (Some(interval), Some(timeout)) = (ms("pingInterval"), ms("pingTimeout")) {
            self.ping_gen += 1;
            // At most 2 hours after the clamps: no overflow here, nor in `Instant + due`.
            let due = Duration::from_millis(interval.saturating_add(timeout));
            self.out
                .push(Action::Timer(due, ClientTimer::PingDue(self.ping_gen)));
        }
    }
    // ANCHOR_END: expect_ping

    /// The CONNECT for this connection: auth, plus the session to restore if any.
    pub(super) fn connect_packet(&self) -> Packet {
        let mut data = self.opts.auth.clone();
        // Only an object auth (or none) can carry the session fields.
        let object = matches!(data, None | Some(Value::Object(_)));
        if let (Some(pid), true) = (&self.pid, object) {
            let mut obj = match data.take() {
                Some(Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            obj.insert("pid".into(), json!(pid));
            obj.insert("offset".into(), json!(self.offset.unwrap_or(0)));
            data = Some(Value::Object(obj));
        }
        Packet::Connect {
            ns: self.opts.namespace.clone(),
            data,
        }
    }

    pub(super) fn connect_failed(&mut self, message: &str) {
        self.connect_error = Some(message.to_string());
        let reconnecting = self.state == ClientState::Reconnecting;
        self.fire("connect_error", vec![json!(message)]);
        if reconnecting {
            self.fire("reconnect_error", vec![json!(message)]);
        }
        if self.opts.reconnection && self.state != ClientState::Disconnected {
            self.state = ClientState::Reconnecting;
            self.schedule_reconnect();
        } else {
            self.finish(reasons::TRANSPORT_ERROR);
        }
    }
}
