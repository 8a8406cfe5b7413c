//! The wire inspector behind the `/wire` page: the packets of any socket, as bytes, live.
//!
//! Namespace `/wire`. An inspector `list`s the sockets (ack: `[{sid, ns, transport, conn}]`
//! and how many there are), `watch`es one by its id (ack: `[true, {sid, conn, transport}]` or
//! `[false, why]`) and `unwatch`es it. From then on it receives a `packet` event for every
//! packet in or out of that socket's connection:
//! `{conn, sid, out, at_ms, len, bytes_b64, truncated, transport, dropped}`, where `at_ms`
//! counts from the watch and `dropped` is how many packets the recorder has dropped so far
//! (all connections). A watched socket that goes away (or comes back on another connection)
//! is reported once with `gone` `{sid}`, and its watch ends.
//!
//! How the bytes get here: the server's wire tap ([`Io::set_wire_tap`]) runs inside the
//! flush, where the server is borrowed and nothing can be emitted. So the tap only records,
//! into a [`Recorder`] bounded in packets and in bytes, and only for the connections someone
//! watches; a feed thread ([`start_feed`]) comes back to the loop every 50 ms through a
//! [`ServerHandle`], while anything is watched, and delivers what was recorded.
//!
//! **The feed is never recorded.** The server's own events in namespace `/wire` (the
//! `packet`s and `gone`s it delivers) are left out of every recording. An inspector that
//! watches itself would otherwise record each `packet` it is sent, which makes another
//! `packet`, forever; two inspectors watching each other would do the same between them. So
//! an inspector sees its own requests and their acks, never its feed.
//!
//! Everything is bounded: the recorder ([`MAX_HELD`] packets, [`MAX_HELD_BYTES`] bytes; what
//! does not fit is counted in `dropped`), the bytes kept of one packet ([`MAX_SHOWN`]; `len`
//! keeps the real length), the sockets one inspector watches ([`MAX_WATCHES`]) and listed
//! ([`MAX_LISTED`]). `packet` events are volatile: an inspector that cannot keep up misses
//! some rather than being disconnected.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use super::feed::Feed;
use crate::events::{Emit, Event, Io, ServerHandle};
use crate::wire::engineio::base64;

pub const NAMESPACE: &str = "/wire";
/// Packets the recorder holds between two deliveries.
pub const MAX_HELD: usize = 1024;
/// Bytes the recorder holds between two deliveries (of the packets' kept bytes).
pub const MAX_HELD_BYTES: usize = 1 << 20;
/// Bytes kept of one packet: a 1 MB event is shown by its first 4 KiB and its length.
pub const MAX_SHOWN: usize = 4096;
/// Sockets one inspector may watch at once.
pub const MAX_WATCHES: usize = 4;
/// Sockets one `list` answer names.
pub const MAX_LISTED: usize = 500;
/// How often the feed delivers what was recorded.
pub const DELIVER_EVERY: Duration = Duration::from_millis(50);

/// One packet as recorded: its first [`MAX_SHOWN`] bytes and its real length.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub conn: u64,
    pub out: bool,
    pub at: Instant,
    pub transport: &'static str,
    pub len: usize,
    pub bytes: Vec<u8>,
}

/// What the wire tap records, for the connections watched, until the feed takes it.
#[derive(Debug, Default)]
pub struct Recorder {
    held: VecDeque<Recorded>,
    held_bytes: usize,
    dropped: u64,
    /// The connections someone watches.
    watched: HashSet<u64>,
}

impl Recorder {
    /// Records one packet of `conn` if it is watched, fits, and is not the inspector's own
    /// feed (see the file's notes).
    pub fn record(&mut self, conn: u64, out: bool, transport: &'static str, bytes: &[u8]) {
        if !self.watched.contains(&conn) || (out && is_feed(transport, bytes)) {
            return;
        }
        let kept = &bytes[..bytes.len().min(MAX_SHOWN)];
        if self.held.len() >= MAX_HELD || self.held_bytes + kept.len() > MAX_HELD_BYTES {
            self.dropped += 1;
            return;
        }
        self.held_bytes += kept.len();
        self.held.push_back(Recorded {
            conn,
            out,
            at: Instant::now(),
            transport,
            len: bytes.len(),
            bytes: kept.to_vec(),
        });
    }

    /// Everything recorded so far, oldest first; the recorder is empty after.
    pub fn take(&mut self) -> Vec<Recorded> {
        self.held_bytes = 0;
        self.held.drain(..).collect()
    }

    /// Packets held, bytes held, packets dropped so far.
    pub fn figures(&self) -> (usize, usize, u64) {
        (self.held.len(), self.held_bytes, self.dropped)
    }

    /// Watches `conn` (or not, for an empty set): the tap records only these.
    pub fn set_watched(&mut self, conns: HashSet<u64>) {
        self.held.retain(|r| conns.contains(&r.conn));
        self.held_bytes = self.held.iter().map(|r| r.bytes.len()).sum();
        self.watched = conns;
    }
}

/// Whether `bytes`, sent by the server, are an event of namespace `/wire`: the feed.
fn is_feed(transport: &str, bytes: &[u8]) -> bool {
    const SIO: &[u8] = b"42/wire,";
    match transport {
        // length (4), type 2 = EVENT, flags, then the namespace as a str8.
        "socklab" => {
            bytes.get(4) == Some(&2)
                && bytes.get(6) == Some(&(NAMESPACE.len() as u8))
                && bytes.get(7..7 + NAMESPACE.len()) == Some(NAMESPACE.as_bytes())
        }
        // A server's frame is not masked: 2 header bytes, or 4 or 10 with a longer length.
        "websocket" => {
            let start = match bytes.get(1).map(|b| b & 0x7f) {
                Some(126) => 4,
                Some(127) => 10,
                Some(_) => 2,
                None => return false,
            };
            bytes.get(start..).is_some_and(|p| p.starts_with(SIO))
        }
        _ => bytes.starts_with(SIO),
    }
}

/// One inspector's watch of one socket.
#[derive(Debug, Clone)]
struct Watch {
    inspector: String,
    sid: String,
    conn: u64,
    since: Instant,
}

/// The app's state, on the loop thread (in [`Io`]'s data).
struct Shared {
    recorder: Rc<RefCell<Recorder>>,
    watches: Rc<RefCell<Vec<Watch>>>,
    /// Whether anything is watched: the feed thread only wakes the loop then.
    active: Arc<AtomicBool>,
}

/// Whether anything is watched, for [`start_feed`]: returned by [`install`].
#[derive(Clone)]
pub struct Active(Arc<AtomicBool>);

/// Registers namespace `/wire` and the wire tap; pass the result to [`start_feed`].
pub fn install(io: &mut Io) -> Active {
    let recorder = Rc::new(RefCell::new(Recorder::default()));
    let active = Arc::new(AtomicBool::new(false));
    let tap = recorder.clone();
    io.set_wire_tap(move |seen| {
        // Never busy here (the tap runs in the flush, after every handler returned); if it
        // were, the packet would be lost, not the server.
        if let Ok(mut r) = tap.try_borrow_mut() {
            r.record(seen.conn, seen.out, seen.transport, seen.bytes);
        }
    });
    io.insert_data(Shared {
        recorder,
        watches: Rc::new(RefCell::new(Vec::new())),
        active: active.clone(),
    });
    io.on_connection(NAMESPACE, |io, sid| {
        io.on(sid, "list", list);
        io.on(sid, "watch", watch);
        io.on(sid, "unwatch", |io, ev| {
            let target = ev.args.first().and_then(Value::as_str).unwrap_or("");
            let found = change_watches(io, |w| {
                let before = w.len();
                w.retain(|w| !(w.inspector == *ev.socket && w.sid == target));
                before != w.len()
            });
            match found {
                true => io.ack(ev, vec![json!(true)]),
                false => io.ack(ev, vec![json!(false), json!("not watched")]),
            }
        });
        io.on(sid, "disconnect", |io, ev| {
            change_watches(io, |w| w.retain(|w| w.inspector != *ev.socket));
        });
    });
    Active(active)
}

/// `list`: every socket, its namespace and transport.
fn list(io: &mut Io, ev: &Event) {
    let all = io.all_sockets();
    let total = all.len();
    let rows: Vec<Value> = all
        .into_iter()
        .take(MAX_LISTED)
        .map(|(sid, ns)| {
            let transport = io.transport(&sid);
            let conn = io.conn_number(&sid);
            json!({"sid": sid, "ns": ns, "transport": transport, "conn": conn})
        })
        .collect();
    io.ack(ev, vec![json!(rows), json!(total)]);
}

/// `watch`: follow a socket's connection from now on.
fn watch(io: &mut Io, ev: &Event) {
    let target = ev.args.first().and_then(Value::as_str).unwrap_or("");
    let Some(conn) = io.conn_number(target) else {
        return io.ack(ev, vec![json!(false), json!(format!("no socket {target}"))]);
    };
    let transport = io.transport(target);
    let me = ev.socket.to_string();
    let answer = change_watches(io, |w| {
        if w.iter().any(|w| w.inspector == me && w.sid == target) {
            return Ok(()); // watched already: the same answer, and the clock goes on
        }
        if w.iter().filter(|w| w.inspector == me).count() >= MAX_WATCHES {
            return Err(format!("at most {MAX_WATCHES} sockets at once"));
        }
        w.push(Watch {
            inspector: me.clone(),
            sid: target.to_string(),
            conn,
            since: Instant::now(),
        });
        Ok(())
    });
    match answer {
        Ok(()) => {
            let about = json!({"sid": target, "conn": conn, "transport": transport});
            io.ack(ev, vec![json!(true), about]);
        }
        Err(why) => io.ack(ev, vec![json!(false), json!(why)]),
    }
}

/// Changes the watches with `f`, then tells the recorder and the feed what is watched now.
fn change_watches<R>(io: &mut Io, f: impl FnOnce(&mut Vec<Watch>) -> R) -> R {
    let Some(shared) = io.data::<Shared>() else {
        // install() stores it before any listener can run.
        return f(&mut Vec::new());
    };
    let mut watches = shared.watches.borrow_mut();
    let r = f(&mut watches);
    let conns: HashSet<u64> = watches.iter().map(|w| w.conn).collect();
    shared.active.store(!conns.is_empty(), Ordering::Relaxed);
    shared.recorder.borrow_mut().set_watched(conns);
    r
}

/// Packets held, bytes held, packets dropped so far (for tests and `socklab serve`'s
/// curious): `None` if the app is not installed.
pub fn figures(io: &Io) -> Option<(usize, usize, u64)> {
    io.data::<Shared>().map(|s| s.recorder.borrow().figures())
}

/// Delivers what was recorded to the inspectors that watch it, then ends the watches of
/// sockets that are gone. Runs on the loop thread, outside the tap.
pub fn deliver(io: &mut Io) {
    let Some(shared) = io.data::<Shared>() else {
        return;
    };
    let (recorder, watches) = (shared.recorder.clone(), shared.watches.clone());
    let packets = recorder.borrow_mut().take();
    let dropped = recorder.borrow().figures().2;
    let list = watches.borrow().clone();
    for p in &packets {
        for w in list.iter().filter(|w| w.conn == p.conn) {
            let Some(after) = p.at.checked_duration_since(w.since) else {
                continue; // recorded for an earlier watch of the same connection
            };
            let packet = json!({
                "conn": p.conn,
                "sid": w.sid,
                "out": p.out,
                "at_ms": after.as_secs_f64() * 1000.0,
                "len": p.len,
                "bytes_b64": base64(&p.bytes),
                "truncated": p.len > p.bytes.len(),
                "transport": p.transport,
                "dropped": dropped,
            });
            let _ = io.send(&w.inspector, Emit::new("packet").arg(packet).volatile());
        }
    }
    let gone: Vec<Watch> = list
        .into_iter()
        .filter(|w| io.conn_number(&w.sid) != Some(w.conn))
        .collect();
    if gone.is_empty() {
        return;
    }
    change_watches(io, |ws| {
        ws.retain(|w| {
            !gone
                .iter()
                .any(|g| g.inspector == w.inspector && g.sid == w.sid)
        })
    });
    for g in gone {
        let _ = io.emit(&g.inspector, "gone", vec![json!({"sid": g.sid})]);
    }
}

/// Every [`DELIVER_EVERY`], while anything is watched, runs [`deliver`] on the loop. An idle
/// server is not woken. Ends on [`Feed::stop`], or when the server is gone.
pub fn start_feed(handle: ServerHandle, active: Active) -> Feed {
    Feed::every(DELIVER_EVERY, move || {
        !active.0.load(Ordering::Relaxed) || handle.run(deliver).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorder_is_bounded_in_packets_and_bytes() {
        let mut r = Recorder::default();
        r.set_watched([7].into_iter().collect());
        r.record(8, false, "socklab", b"not watched");
        assert_eq!(r.figures(), (0, 0, 0));
        for _ in 0..MAX_HELD + 10 {
            r.record(7, false, "socklab", b"x");
        }
        assert_eq!(r.figures(), (MAX_HELD, MAX_HELD, 10));
        r.take();
        let big = vec![1u8; 10 * MAX_SHOWN];
        for _ in 0..MAX_HELD {
            r.record(7, true, "polling", &big);
        }
        let (held, bytes, dropped) = r.figures();
        assert!(bytes <= MAX_HELD_BYTES, "{bytes}");
        assert_eq!(held, MAX_HELD_BYTES / MAX_SHOWN);
        assert_eq!(dropped, 10 + (MAX_HELD - held) as u64);
        let first = &r.take()[0];
        assert_eq!((first.len, first.bytes.len()), (10 * MAX_SHOWN, MAX_SHOWN));
    }

    #[test]
    fn the_feed_is_recognised_on_every_wire() {
        let mut frame = Vec::new();
        let feed = crate::wire::packet::Packet::Event {
            ns: NAMESPACE.into(),
            name: "packet".into(),
            args: vec![json!({})],
            attachments: vec![],
            id: None,
            offset: None,
        };
        crate::wire::packet::encode(&feed, &mut frame);
        assert!(is_feed("socklab", &frame));
        let mut ws = Vec::new();
        crate::wire::sio_packet::encode(&feed, &mut ws);
        assert!(is_feed("websocket", &ws));
        assert!(is_feed("polling", br#"42/wire,["packet",{}]"#));
        assert!(!is_feed("polling", br#"42/chat,["chat message","hi"]"#));
        assert!(!is_feed("polling", br#"43/wire,0[[]]"#), "acks are shown");
    }
}
