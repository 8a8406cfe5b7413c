//! The client's state and its API: listeners, emits (with and without ack), the offline
//! buffer, `disconnect`, and the one policy for callbacks that panic.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde_json::Value;

use super::protocol::{Action, ClientTimer};
use super::{ClientOptions, ClientState};
use crate::event_loop::ConnId;
use crate::events::encoder::Wire;
use crate::events::error::{check_attachments, check_name};
use crate::events::guard::{Panicked, Panics};
use crate::events::listeners::{self, Event, Listeners};
use crate::events::names::Name;
use crate::events::outbox::Outbox;
use crate::events::{reasons, AckError, AckReply, EmitError};
use crate::wire::packet::Packet;

pub(super) type AckCallback = Box<dyn FnOnce(&mut ClientIo, Result<AckReply, AckError>)>;

/// The client's state and the handle every listener gets.
pub struct ClientIo {
    pub(super) opts: ClientOptions,
    pub(super) state: ClientState,
    pub(super) conn: Option<ConnId>,
    pub(super) sid: Option<Name>,
    /// The session's private id, from the server: presented again on reconnecting so the
    /// server can restore the session.
    pub(super) pid: Option<String>,
    /// The offset of the last broadcast received (for connection state recovery).
    pub(super) offset: Option<u64>,
    pub(super) recovered: bool,
    pub(super) server_info: Value,
    pub(super) listeners: Listeners<ClientIo>,
    pub(super) acks: HashMap<u32, AckCallback>,
    pub(super) next_ack: u32,
    /// Frames of acked emits already sent and not yet answered: sent again after a
    /// reconnect (the server drops duplicates).
    pub(super) unacked: BTreeMap<u32, Vec<u8>>,
    /// Frames waiting for the connection, with their ack id if they asked for one.
    pub(super) offline: VecDeque<(Option<u32>, Vec<u8>)>,
    pub(super) disconnect_reason: Option<String>,
    pub(super) connect_error: Option<String>,
    pub(super) attempts: u32,
    pub(super) ping_gen: u64,
    /// Counts TCP connections made: a CONNECT reply deadline is for one attempt only.
    pub(super) attempt_gen: u64,
    pub(super) out: Outbox<Action>,
    pub(super) tap: Option<crate::events::Tap>,
    /// User callbacks that panicked (see `guard.rs`).
    pub(super) panics: Panics,
    /// Events received, for counters in demos and benchmarks.
    pub events_in: u64,
}

impl ClientIo {
    pub(super) fn new(opts: ClientOptions) -> ClientIo {
        ClientIo {
            opts,
            state: ClientState::Connecting,
            conn: None,
            sid: None,
            pid: None,
            offset: None,
            recovered: false,
            unacked: BTreeMap::new(),
            attempts: 0,
            ping_gen: 0,
            attempt_gen: 0,
            server_info: Value::Null,
            listeners: Listeners::default(),
            acks: HashMap::new(),
            next_ack: 0,
            offline: VecDeque::new(),
            disconnect_reason: None,
            connect_error: None,
            out: Outbox::default(),
            tap: None,
            panics: Panics::default(),
            events_in: 0,
        }
    }

    /// The socket id events carry on this side: the client's own (empty before the first
    /// CONNECT reply).
    pub(super) fn socket_name(&self) -> Name {
        self.sid.clone().unwrap_or_else(|| Name::from(""))
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    pub fn is_connected(&self) -> bool {
        self.state == ClientState::Connected
    }

    /// The socket id the server gave, once connected.
    pub fn id(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// Whether the last connect restored the previous session (same id, rooms, and the
    /// broadcasts missed meanwhile).
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The settings the server sent in its HELLO (`pingInterval`, `pingTimeout`,
    /// `maxPayload`).
    pub fn server_info(&self) -> &Value {
        &self.server_info
    }

    /// Why the client last disconnected.
    pub fn disconnect_reason(&self) -> Option<&str> {
        self.disconnect_reason.as_deref()
    }

    /// The server's refusal message (or the last connect error), if any.
    pub fn connect_error(&self) -> Option<&str> {
        self.connect_error.as_deref()
    }

    /// Emits waiting for a connection.
    pub fn offline_len(&self) -> usize {
        self.offline.len()
    }

    /// Calls `f` with every frame the client sends, as it goes to the loop.
    pub fn set_tap(&mut self, f: impl FnMut(&[u8]) + 'static) {
        self.tap = Some(Box::new(f));
    }

    pub fn on(&mut self, event: &str, f: impl FnMut(&mut ClientIo, &Event) + 'static) {
        self.listeners.on(event, Box::new(f));
    }

    pub fn once(&mut self, event: &str, f: impl FnMut(&mut ClientIo, &Event) + 'static) {
        self.listeners.once(event, Box::new(f));
    }

    pub fn off(&mut self, event: &str) {
        self.listeners.off(event);
    }

    pub fn on_any(&mut self, f: impl FnMut(&mut ClientIo, &Event) + 'static) {
        self.listeners.on_any(Box::new(f));
    }

    pub fn off_any(&mut self) {
        self.listeners.off_any();
    }

    /// Sends `p` now if connected, else keeps it for when the connection is up. An acked
    /// emit (`ack`) is also kept until answered, to be sent again after a reconnect.
    pub(super) fn send_packet(&mut self, p: &Packet, ack: Option<u32>) -> Result<(), EmitError> {
        let frame = self.out.encode(Wire::Socklab, p, &self.opts.limits)?;
        if let (ClientState::Connected, Some(conn)) = (self.state, self.conn) {
            if let Some(id) = ack {
                self.unacked.insert(id, self.out.bytes(frame).to_vec());
            }
            self.out.send(conn, frame, false);
            return Ok(());
        }
        let frame = self.out.take_back(frame);
        if self.state == ClientState::Disconnected {
            return Err(EmitError::NoSuchSocket(
                "this client has disconnected".into(),
            ));
        }
        if self.offline.len() >= self.opts.offline_buffer {
            return Err(EmitError::BufferFull(self.offline.len()));
        }
        self.offline.push_back((ack, frame));
        Ok(())
    }

    /// Emits `event` with JSON `args`.
    pub fn emit(&mut self, event: &str, args: Vec<Value>) -> Result<(), EmitError> {
        self.emit_binary(event, args, Vec::new())
    }

    /// Emits `event` with JSON `args` and binary attachments.
    pub fn emit_binary(
        &mut self,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
    ) -> Result<(), EmitError> {
        check_name(event, &self.opts.limits)?;
        check_attachments(attachments.len(), &self.opts.limits)?;
        let p = Packet::Event {
            ns: self.opts.namespace.clone(),
            name: event.to_string(),
            args,
            attachments,
            id: None,
            offset: None,
        };
        self.send_packet(&p, None)
    }

    /// Emits `event` and asks for an ack: `callback` gets the server's answer, or
    /// `AckError::Timeout` after `timeout`. Until then the emit survives reconnects: it is
    /// sent again on each new connection, and the server handles it once.
    pub fn emit_with_ack(
        &mut self,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
        timeout: Duration,
        callback: impl FnOnce(&mut ClientIo, Result<AckReply, AckError>) + 'static,
    ) -> Result<(), EmitError> {
        check_name(event, &self.opts.limits)?;
        check_attachments(attachments.len(), &self.opts.limits)?;
        self.next_ack = self.next_ack.wrapping_add(1);
        let id = self.next_ack;
        let p = Packet::Event {
            ns: self.opts.namespace.clone(),
            name: event.to_string(),
            args,
            attachments,
            id: Some(id),
            offset: None,
        };
        self.send_packet(&p, Some(id))?;
        self.acks.insert(id, Box::new(callback));
        self.out
            .push(Action::Timer(timeout, ClientTimer::AckTimeout(id)));
        Ok(())
    }

    /// Answers an event from the server that asked for an ack.
    pub fn ack(&mut self, event: &Event, args: Vec<Value>) {
        self.ack_with(event, args, Vec::new());
    }

    pub fn ack_with(&mut self, event: &Event, args: Vec<Value>, attachments: Vec<Vec<u8>>) {
        let Some(id) = event.ack else { return };
        if check_attachments(attachments.len(), &self.opts.limits).is_err() {
            return;
        }
        let p = Packet::Ack {
            ns: self.opts.namespace.clone(),
            id,
            args,
            attachments,
        };
        let _ = self.send_packet(&p, None);
    }

    /// Leaves the namespace and closes the connection (reason `io client disconnect`; no
    /// reconnection follows).
    pub fn disconnect(&mut self) {
        if self.state == ClientState::Connected {
            let p = Packet::Disconnect {
                ns: self.opts.namespace.clone(),
                reason: None,
            };
            let _ = self.send_packet(&p, None);
        }
        self.finish(reasons::IO_CLIENT_DISCONNECT);
        self.out.push(Action::Close(self.conn));
    }

    pub(super) fn fire(&mut self, name: &str, args: Vec<Value>) {
        let event = Event {
            socket: self.socket_name(),
            name: name.to_string(),
            args,
            attachments: Vec::new(),
            ack: None,
        };
        self.dispatch(&event);
    }

    pub(super) fn dispatch(&mut self, event: &Event) {
        if let Err(p) = listeners::dispatch(self, event, |c| Some(&mut c.listeners)) {
            self.callback_panicked(&format!("\"{}\" listener", event.name), &p);
        }
    }

    /// How many of this client's listeners and callbacks panicked.
    pub fn callback_panics(&self) -> u64 {
        self.panics.count()
    }

    // ANCHOR: callback_panicked
    /// The one policy for a user callback that panicked (see `guard.rs`): counted, printed
    /// once per callback name, and the client's connection, if it has one, closed with
    /// reason `client error`: it comes back as after any lost connection.
    pub(super) fn callback_panicked(&mut self, what: &str, p: &Panicked) {
        // A client that has just ended (a callback of `disconnect()` panicked) closes as it
        // was closing: an abort would reset a connection whose DISCONNECT is still queued.
        let live = self.conn.is_some() && self.state != ClientState::Disconnected;
        let action = if live {
            "closing the connection (the client reconnects)"
        } else {
            "the client goes on"
        };
        self.panics.record("client", what, p, action);
        if live {
            self.out.push(Action::Abort(self.conn));
            self.lost(reasons::CLIENT_ERROR);
        }
    }
    // ANCHOR_END: callback_panicked
}
