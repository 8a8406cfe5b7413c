//! The long-polling sessions' table (`polling.rs` reads and writes it): each session's
//! queue of records, its held GET, its reader, the WebSocket that probes or carries it; the
//! sessions by id, those with records for their poll, and the connections holding a GET.

use std::collections::HashMap;

use crate::event_loop::ConnId;
use crate::events::link::Link;
use crate::transport::socketio::EioReader;
use crate::wire::engineio::RECORD_SEPARATOR;

/// A GET held open: its connection, and the headers and close its answer takes.
pub(super) struct Held {
    pub(super) conn: ConnId,
    pub(super) headers: Vec<(String, String)>,
    pub(super) close: bool,
}

/// One long-polling session.
pub(super) struct Session {
    pub(super) sid: String,
    /// Records for the next poll, `\x1e` between them.
    pub(super) queue: Vec<u8>,
    pub(super) held: Option<Held>,
    /// The client's packets across POSTs (a binary event's attachments may come later).
    pub(super) eio: EioReader,
    /// The WebSocket probing it, or carrying it once `upgraded`.
    pub(super) ws: Option<ConnId>,
    pub(super) upgraded: bool,
    /// Closed by the server while no GET was held: its last records (and `1`) wait for the
    /// client's next poll, which ends it.
    pub(super) closing: bool,
}

/// Every session, in slots that are reused with a new generation.
#[derive(Default)]
pub(super) struct Sessions {
    slots: Vec<(u32, Option<Session>)>,
    free: Vec<u32>,
    pub(super) by_sid: HashMap<String, Link>,
    /// Sessions that got bytes since the last flush ended: their held GET is answered.
    pub(super) ready: Vec<Link>,
    /// The TCP connections that held a GET, with their session: a connection's end, or its
    /// handshake timer, finds its poll without a search. An entry may be stale (the GET was
    /// answered since); it goes when its connection closes.
    held_on: HashMap<ConnId, Link>,
}

impl Sessions {
    pub(super) fn get_mut(&mut self, link: Link) -> Option<&mut Session> {
        let Link::Polling { slot, gen } = link else {
            return None;
        };
        match self.slots.get_mut(slot as usize)? {
            (g, Some(s)) if *g == gen => Some(s),
            _ => None,
        }
    }

    pub(super) fn insert(&mut self, sid: String) -> Link {
        let session = Session {
            sid: sid.clone(),
            queue: Vec::new(),
            held: None,
            eio: EioReader::default(),
            ws: None,
            upgraded: false,
            closing: false,
        };
        let link = match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                entry.0 = entry.0.wrapping_add(1);
                entry.1 = Some(session);
                Link::Polling { slot, gen: entry.0 }
            }
            None => {
                self.slots.push((0, Some(session)));
                let slot = (self.slots.len() - 1) as u32;
                Link::Polling { slot, gen: 0 }
            }
        };
        self.by_sid.insert(sid, link);
        link
    }

    pub(super) fn remove(&mut self, link: Link) -> Option<Session> {
        let Link::Polling { slot, gen } = link else {
            return None;
        };
        let entry = self.slots.get_mut(slot as usize)?;
        if entry.0 != gen {
            return None;
        }
        let s = entry.1.take()?;
        self.free.push(slot);
        self.by_sid.remove(&s.sid);
        Some(s)
    }

    /// The WebSocket connection that carries `link` now, if it upgraded.
    pub(super) fn carrier(&mut self, link: Link) -> Option<ConnId> {
        self.get_mut(link)
            .and_then(|s| s.upgraded.then_some(s.ws).flatten())
    }

    /// Whether a volatile packet for `link` is dropped: no GET is held to take it.
    pub(super) fn backed_up(&mut self, link: Link) -> bool {
        self.get_mut(link).is_some_and(|s| s.held.is_none())
    }

    /// Queues the records `bytes` for `link`; `Err` past `max` bytes waiting.
    pub(super) fn queue(&mut self, link: Link, bytes: &[u8], max: usize) -> Result<(), ()> {
        let Some(s) = self.get_mut(link) else {
            return Ok(());
        };
        if bytes.is_empty() {
            return Ok(());
        }
        if s.queue.len() + 1 + bytes.len() > max {
            return Err(());
        }
        if !s.queue.is_empty() {
            s.queue.push(RECORD_SEPARATOR as u8);
        }
        s.queue.extend_from_slice(bytes);
        self.ready.push(link);
        Ok(())
    }

    /// Holds `h`, a GET of session `link` with nothing to answer yet.
    pub(super) fn hold(&mut self, link: Link, h: Held) {
        let conn = h.conn;
        if let Some(s) = self.get_mut(link) {
            s.held = Some(h);
            self.held_on.insert(conn, link);
        }
    }

    /// Whether TCP connection `tcp` holds a GET now.
    pub(super) fn holds(&mut self, tcp: ConnId) -> bool {
        let Some(&link) = self.held_on.get(&tcp) else {
            return false;
        };
        self.get_mut(link)
            .is_some_and(|s| s.held.as_ref().is_some_and(|h| h.conn == tcp))
    }

    /// TCP connection `tcp` is gone: the GET it held, if any, is forgotten.
    pub(super) fn release(&mut self, tcp: ConnId) {
        let Some(link) = self.held_on.remove(&tcp) else {
            return;
        };
        if let Some(s) = self.get_mut(link) {
            if s.held.as_ref().is_some_and(|h| h.conn == tcp) {
                s.held = None;
            }
        }
    }
}
