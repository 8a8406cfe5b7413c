//! Reading a connection: its first byte chooses the wire, then each wire's reader turns its
//! bytes into packets for `protocol.rs`.
//!
//! socklab and Socket.IO clients share one port. A socklab frame starts with its length in
//! 4 bytes, big-endian, and no frame is near 16 MiB, so its first byte is `00`; an HTTP
//! request starts with a method, `GET ` (`47 45 54 20`), a letter. So the server waits for
//! the client's first byte before it says anything: `00`, and it answers with its HELLO
//! (socklab clients send theirs at once, without waiting: `docs/protocol.md`, section 5);
//! anything else is read as HTTP, for a WebSocket upgrade to Socket.IO.

use std::borrow::Cow;

use serde_json::json;

use super::protocol::{Action, ServerTimer};
use super::{Io, Reader};
use crate::events::encoder::Wire;
use crate::events::link::Link;
use crate::events::reasons;
use crate::transport::socketio::{End, Got, SioReader};
use crate::wire::packet::{self, Decoded, EventView, Packet};

/// Bytes of the shared buffer WebSocket messages are unmasked into that are kept between
/// reads: a chat message fits many times over; a big upload's buffer is let go.
const KEEP_UNMASKED: usize = 64 * 1024;

impl Io {
    // ANCHOR: first_byte
    /// Reads `bytes` from `conn`; returns how many were used (the rest waits for more).
    pub(super) fn read(&mut self, conn: Link, bytes: &[u8]) -> usize {
        let Some(c) = self.conns.get_mut(&conn) else {
            return bytes.len();
        };
        if let Reader::First = c.reader {
            let Some(&first) = bytes.first() else {
                return 0;
            };
            if first == 0 {
                c.reader = Reader::Socklab;
                self.greet(conn);
            } else {
                c.reader = Reader::SocketIo(Box::new(SioReader::new(self.config.limits)));
            }
        }
        let used = match self.conns.get(&conn).map(|c| &c.reader) {
            Some(Reader::Socklab) => self.read_socklab(conn, bytes),
            Some(Reader::SocketIo(_)) => self.read_socketio(conn, bytes),
            _ => bytes.len(),
        };
        // The wire tap sees what was used: a frame once, whole, however the reads cut it.
        self.wire_in(conn, &bytes[..used.min(bytes.len())]);
        used
    }
    // ANCHOR_END: first_byte

    /// The server's HELLO, and the first PING's timer.
    fn greet(&mut self, conn: Link) {
        let hello = Packet::hello(json!({
            "pingInterval": self.config.ping_interval.as_millis() as u64,
            "pingTimeout": self.config.ping_timeout.as_millis() as u64,
            "maxPayload": self.config.limits.max_frame,
        }));
        self.queue_packet(conn, &hello);
        let ping = self.config.ping_interval;
        self.out.push(Action::Timer(ping, ServerTimer::Ping(conn)));
    }

    fn read_socklab(&mut self, conn: Link, bytes: &[u8]) -> usize {
        let limits = self.config.limits;
        let mut bad = false;
        // Stop after a packet that closed the connection: what follows it is not handled.
        let used = packet::decode_stream(bytes, &limits, |res| match res {
            Ok(p) => {
                self.on_packet(conn, p);
                self.conns.get(&conn).is_some_and(|c| !c.closing)
            }
            Err(_) => {
                bad = true;
                false
            }
        });
        if bad {
            self.protocol_error(conn);
            return bytes.len();
        }
        used
    }

    fn read_socketio(&mut self, conn: Link, bytes: &[u8]) -> usize {
        // The reader is taken out while it reads, so that what it hands over can use `self`.
        let Some(c) = self.conns.get_mut(&conn) else {
            return bytes.len();
        };
        let Reader::SocketIo(mut reader) = std::mem::replace(&mut c.reader, Reader::First) else {
            return bytes.len();
        };
        // So is the buffer its messages are unmasked into, shared by every connection.
        let mut unmasked = std::mem::take(&mut self.unmasked);
        let used = reader.read(bytes, &mut unmasked, |got| self.got(conn, got));
        if unmasked.capacity() > KEEP_UNMASKED {
            unmasked = Vec::new(); // one big message is not kept for the rest of the run
        }
        self.unmasked = unmasked;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.reader = Reader::SocketIo(reader);
        }
        used
    }

    /// One result of the Socket.IO reader; `false` once the connection is closing.
    fn got(&mut self, conn: Link, got: Got<'_>) -> bool {
        // A WebSocket that probes or carries a long-polling session reads for the session.
        let route = self.conns.get(&conn).and_then(|c| c.route);
        let to = route.unwrap_or(conn);
        match got {
            Got::Upgraded { answer, sid: None } => {
                self.queue_bytes(conn, &answer);
                self.open_session(conn);
            }
            Got::Upgraded {
                answer,
                sid: Some(sid),
            } => self.upgrade_polling(conn, &sid, &answer),
            Got::Reply(bytes) => self.queue_bytes(conn, &bytes),
            Got::Probe(bytes) => {
                self.queue_bytes(conn, &bytes);
                if let Some(link) = route {
                    self.probed(link);
                }
            }
            Got::Upgrade => match (route, conn) {
                (Some(link), Link::Tcp(tcp)) => self.upgraded(link, tcp),
                _ => self.protocol_error(conn),
            },
            Got::Ping(_) => {}
            Got::Eio(p) => match route {
                Some(link) => {
                    self.session_packet(link, p);
                }
                None => self.protocol_error(conn),
            },
            Got::Request { req, body } => self.http_request(conn, req, body),
            Got::Packet(p) => self.on_owned_packet(to, p),
            Got::Event(e) => self.on_packet(to, Decoded::Event(e)),
            Got::End { bytes, why } => {
                self.queue_bytes(conn, &bytes);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.closing = true; // its last bytes are queued: no close frame after them
                }
                if let (Some(link), Link::Tcp(tcp)) = (route, conn) {
                    let reason = match why {
                        End::Closed => reasons::TRANSPORT_CLOSE,
                        _ => reasons::PARSE_ERROR,
                    };
                    // Its close frame is the one queued above.
                    self.websocket_ended(link, tcp, reason, true);
                }
                match why {
                    End::Refused => {
                        self.stats.http_refused += 1;
                        self.close_conn(conn, reasons::PARSE_ERROR, true);
                    }
                    End::Closed => self.close_conn(conn, reasons::TRANSPORT_CLOSE, true),
                    End::Broken(_) => {
                        self.stats.parse_errors += 1;
                        self.close_conn(conn, reasons::PARSE_ERROR, true);
                    }
                }
            }
        }
        self.conns.get(&conn).is_some_and(|c| !c.closing)
    }

    /// A packet a reader handed over whole: an EVENT is looked at in place, as socklab's
    /// frames are (`EventView`), so that its names are not copied again (its name is taken
    /// over by the event the handlers get).
    pub(super) fn on_owned_packet(&mut self, conn: Link, p: Packet) {
        match p {
            Packet::Event {
                ns,
                name,
                args,
                attachments,
                id,
                offset,
            } => {
                let e = EventView {
                    ns: &ns,
                    name: Cow::Owned(name),
                    args,
                    attachments,
                    id,
                    offset,
                };
                self.on_packet(conn, Decoded::Event(e));
            }
            p => self.on_packet(conn, Decoded::Other(p)),
        }
    }

    /// The WebSocket is open: the Engine.IO open packet (the Socket.IO wire's HELLO), and the
    /// first ping's timer. Socket.IO's handshake takes the place of socklab's HELLO.
    fn open_session(&mut self, conn: Link) {
        let Some(sid) = self.ids.next_id() else {
            // No id without the operating system's generator.
            self.close_conn(conn, reasons::PARSE_ERROR, false);
            return;
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.wire = Wire::SocketIo;
            c.hello = true;
        }
        self.stats.socketio_connections += 1;
        let open = Packet::hello(json!({
            "sid": sid,
            "upgrades": [],
            "pingInterval": self.config.ping_interval.as_millis() as u64,
            "pingTimeout": self.config.ping_timeout.as_millis() as u64,
            "maxPayload": self.config.limits.max_frame,
        }));
        self.queue_packet(conn, &open);
        let ping = self.config.ping_interval;
        self.out.push(Action::Timer(ping, ServerTimer::Ping(conn)));
    }

    /// Queues bytes already in their wire's form.
    pub(super) fn queue_bytes(&mut self, conn: Link, bytes: &[u8]) {
        let frame = self.out.copy(bytes);
        self.out.send(conn, frame, false);
    }
}
