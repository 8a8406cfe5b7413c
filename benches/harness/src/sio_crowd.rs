//! The clients of the Socket.IO load generators ([`crate::sio_load`], [`crate::sio_rate`]):
//! N Engine.IO v4 + Socket.IO v5 clients over WebSocket on one socklab [`EventLoop`], what
//! each one is and what the crowd counts. The figures drive them from outside, by turning
//! the loop and reading the [`Tally`].
//!
//! Each client does what socket.io-client does over WebSocket, and nothing more:
//!
//! ```text
//!   connect (TCP_NODELAY)
//!   GET /socket.io/?EIO=4&transport=websocket      Sec-WebSocket-Key: 16 random bytes
//!   <- 101, Sec-WebSocket-Accept checked
//!   <- 0{"sid":...,"pingInterval":...}             Engine.IO open
//!   -> 40                                          Socket.IO CONNECT to `/`
//!   <- 40{"sid":...}                               joined
//!   <- 2   -> 3                                    Engine.IO heartbeat, answered
//!   <- 42["chat message",...]                      counted, never parsed
//!   -> 42<id>["echo",...]   <- 43<id>[...]         an ack round trip, matched by its id
//! ```
//!
//! What it reads of a frame: the header (opcode, length) and the first bytes of the payload
//! (the Engine.IO and Socket.IO packet types, and for an ack its id). Decoding the JSON of a
//! million deliveries would measure the load generator, not the server, as `load.rs` says of
//! socklab's own protocol.
//!
//! What it sends is encoded once ([`Templates`]) and only masked per frame: RFC 6455 wants
//! every client frame masked with a key the server cannot predict. The keys here come from
//! a xorshift64* generator per connection, seeded from `getrandom(2)` when the connection
//! is made: a new key for every frame at the cost of three shifts and a multiplication. A
//! deliberate simplification: xorshift is not a cryptographic generator, and a server that
//! watched enough keys could predict the next. The masking exists against scripts in
//! browsers that choose the bytes a proxy sees; a load generator's own frames have no such
//! attacker, and the server unmasks the same way whatever the key.
//!
//! Every wait is bounded in time, every frame and buffer in size.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socklab::event_loop::{CloseReason, Config, ConnId, Ctx, EventLoop, Handler};
use socklab::sys;
use socklab::wire::websocket::apply_mask;
use socklab::wire::{engineio, http};

use crate::load::{self, turn_until, RoundTrips};
/// The request path of socket.io-client over WebSocket.
pub const UPGRADE_TARGET: &str = "/socket.io/?EIO=4&transport=websocket";

/// The largest frame a client takes from the server; a larger one closes the connection.
/// The benchmark's frames are some 40 bytes; the open packet is the largest, under 200.
pub const MAX_FRAME: usize = 64 * 1024;

/// The largest response head to the upgrade request.
pub(crate) const MAX_HEAD: usize = 8 * 1024;

/// How long one client may take from `connect` to the answer of its CONNECT.
pub(crate) const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects and handshakes under way at once: enough to fill the pipe, few enough for the
/// server's accept queue (`listen` backlog 1024), as in `load.rs`.
pub(crate) const CONNECTS_IN_FLIGHT: usize = 256;

/// Deliveries of the measured burst kept whole, from one client ([`crate::sio_load::SioFanout::samples`]).
pub const MAX_SAMPLES: usize = 1000;

// ---- masking -------------------------------------------------------------------------------

/// A connection's masking keys: xorshift64* seeded from the operating system (see the
/// module's comment for why that is enough here).
#[derive(Debug)]
pub(crate) struct Masker(u64);

impl Masker {
    fn new() -> io::Result<Masker> {
        let seed = getrandom::u64().map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
        // xorshift's one fixed point is 0.
        Ok(Masker(seed | 1))
    }

    pub(crate) fn key(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        // The high half of the product: the best bits of xorshift64*.
        ((x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32).to_ne_bytes()
    }
}

/// Appends one masked text frame (FIN, opcode 1) whose payload is `parts` one after another.
pub(crate) fn push_text(out: &mut Vec<u8>, parts: &[&[u8]], key: [u8; 4]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.push(0x81);
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    let start = out.len();
    for p in parts {
        out.extend_from_slice(p);
    }
    apply_mask(&mut out[start..], key, 0);
}

// ---- what is sent, encoded once --------------------------------------------------------------

/// The payloads the clients send, encoded once; each frame only adds a header and a mask.
#[derive(Debug)]
pub(crate) struct Templates {
    /// `40`: Socket.IO CONNECT to `/`.
    join: Vec<u8>,
    /// `3`: the Engine.IO pong.
    pong: Vec<u8>,
    /// `["echo","xx..."]`: what follows `42<id>` in an ack request.
    echo_args: Vec<u8>,
    /// `42["chat message","xx..."]`: the fan-out's message.
    pub(crate) chat: Vec<u8>,
    /// The `Host` header of the upgrade request.
    host: String,
}

impl Templates {
    pub(crate) fn new(addr: SocketAddr) -> Templates {
        let msg = serde_json::Value::String(load::message());
        Templates {
            join: b"40".to_vec(),
            pong: b"3".to_vec(),
            echo_args: format!("[\"echo\",{msg}]").into_bytes(),
            chat: format!("42[\"chat message\",{msg}]").into_bytes(),
            host: addr.to_string(),
        }
    }
}

/// `n` in decimal into `buf`; returns the digits (at the end of `buf`).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The ack id at the start of `bytes` (the digits after `43`), if any.
fn ack_id(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    bytes[..digits].iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

// ---- one client ------------------------------------------------------------------------------

/// Where a client is in its handshake.
#[derive(Debug)]
enum Phase {
    /// The upgrade request is sent; the 101 must carry this accept key.
    Upgrade {
        accept: String,
    },
    /// Upgraded; waiting for the Engine.IO open packet.
    Open,
    /// CONNECT sent; waiting for its answer.
    Join,
    Joined,
}

#[derive(Debug)]
pub(crate) struct Peer {
    phase: Phase,
    pub(crate) masker: Masker,
    pub(crate) node: usize,
    /// `42` packets received in this round.
    pub(crate) events: u64,
    /// The ack in flight: its id and when it was sent.
    pub(crate) ack: Option<(u64, Instant)>,
    pub(crate) next_id: u64,
}

/// What the crowd counted.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) pending: usize,
    pub(crate) failed: usize,
    /// Connections that closed after joining.
    pub(crate) lost: usize,
    /// Protocol errors (a bad 101, a masked or oversized frame, a refused CONNECT), and the
    /// first one's reason.
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) joined: Vec<ConnId>,
    pub(crate) first_joined: Option<Instant>,
    pub(crate) last_joined: Option<Instant>,
    /// Fan-out: `42` packets each client should receive in this round, clients that have
    /// them all, and every `42` received, overall and by node.
    pub(crate) target: u64,
    pub(crate) complete: usize,
    pub(crate) deliveries: u64,
    pub(crate) by_node: Vec<u64>,
    /// The `42` payloads one client (`sample_from`) received, in order, up to
    /// [`MAX_SAMPLES`]: the only deliveries the generator keeps whole.
    pub(crate) sample_from: Option<ConnId>,
    pub(crate) samples: Vec<Vec<u8>>,
    /// Acks: how many may still be started, how many came back, their times.
    pub(crate) ack_budget: u64,
    pub(crate) acks_done: u64,
    pub(crate) acks: RoundTrips,
    /// A paced round ([`crate::sio_rate`]): when each of its messages was due to be sent, in
    /// order, and every delivery's delay from that moment. Empty in a burst, which is timed
    /// as a whole: its deliveries are not timed one by one.
    pub(crate) scheduled: Vec<Instant>,
    pub(crate) delays: RoundTrips,
}

/// N Socket.IO clients on one loop.
pub(crate) struct SioCrowd {
    pub(crate) peers: HashMap<ConnId, Peer>,
    pub(crate) tally: Tally,
    pub(crate) tpl: Templates,
    /// Where frames are built before they are queued.
    pub(crate) scratch: Vec<u8>,
}

/// What handling one client uses beside the client itself, borrowed from the crowd.
pub(crate) struct Beside<'a> {
    pub(crate) tally: &'a mut Tally,
    pub(crate) tpl: &'a Templates,
    /// Where a frame is built before it is queued (the crowd's `scratch`).
    pub(crate) out: &'a mut Vec<u8>,
}

impl Beside<'_> {
    /// Sends `parts` as one masked text frame from `peer`. A refused send means the
    /// connection is closing: `closed` counts it.
    fn send_text(&mut self, ctx: &mut Ctx<()>, id: ConnId, peer: &mut Peer, parts: &[&[u8]]) {
        self.out.clear();
        push_text(self.out, parts, peer.masker.key());
        let _ = ctx.send(id, self.out);
    }
}

impl SioCrowd {
    /// Client `id` with what handling it uses beside it; `None` once it is gone.
    pub(crate) fn peer(&mut self, id: ConnId) -> Option<(&mut Peer, Beside<'_>)> {
        let peer = self.peers.get_mut(&id)?;
        let beside = Beside {
            tally: &mut self.tally,
            tpl: &self.tpl,
            out: &mut self.scratch,
        };
        Some((peer, beside))
    }

    fn fail(tally: &mut Tally, ctx: &mut Ctx<()>, id: ConnId, why: String) {
        tally.errors += 1;
        tally.first_error.get_or_insert(why);
        ctx.close(id);
    }
}

/// Sends the next `echo` with an ack from `peer`, if the budget allows.
pub(crate) fn start_ack(ctx: &mut Ctx<()>, id: ConnId, peer: &mut Peer, b: &mut Beside) {
    if b.tally.ack_budget == 0 || peer.ack.is_some() {
        return;
    }
    b.tally.ack_budget -= 1;
    peer.next_id += 1;
    peer.ack = Some((peer.next_id, Instant::now()));
    let mut digits = [0u8; 20];
    let id_text = decimal(peer.next_id, &mut digits);
    let tpl = b.tpl;
    b.send_text(ctx, id, peer, &[b"42", id_text, &tpl.echo_args]);
}

/// One text frame from the server: its payload, of which only the first bytes are read.
/// `now` is when the read that brought it returned, in a paced round only.
fn on_text(
    ctx: &mut Ctx<()>,
    id: ConnId,
    peer: &mut Peer,
    b: &mut Beside,
    payload: &[u8],
    now: Option<Instant>,
) -> Result<(), String> {
    let tpl = b.tpl;
    match (payload, &peer.phase) {
        ([b'4', b'2', ..], Phase::Joined) => {
            peer.events += 1;
            // One sender, so every client receives the round's messages in the order they
            // were sent: the k-th this client has is the k-th scheduled.
            let due = b.tally.scheduled.get(peer.events as usize - 1);
            if let Some((now, due)) = now.zip(due) {
                b.tally
                    .delays
                    .record(now.saturating_duration_since(*due).as_nanos() as u64);
            }
            b.tally.deliveries += 1;
            b.tally.by_node[peer.node] += 1;
            if peer.events == b.tally.target {
                b.tally.complete += 1;
            }
            if b.tally.sample_from == Some(id) && b.tally.samples.len() < MAX_SAMPLES {
                b.tally.samples.push(payload.to_vec());
            }
        }
        ([b'2'], _) => {
            b.send_text(ctx, id, peer, &[&tpl.pong]);
        }
        ([b'4', b'3', rest @ ..], Phase::Joined) => {
            let got = ack_id(rest);
            match peer.ack {
                Some((want, sent)) if got == Some(want) => {
                    peer.ack = None;
                    b.tally.acks.record(sent.elapsed().as_nanos() as u64);
                    b.tally.acks_done += 1;
                    start_ack(ctx, id, peer, b);
                }
                _ => return Err(format!("an ack nobody waits for: 43{got:?}")),
            }
        }
        ([b'0', b'{', ..], Phase::Open) => {
            b.send_text(ctx, id, peer, &[&tpl.join]);
            peer.phase = Phase::Join;
        }
        ([b'4', b'0', b'{', ..], Phase::Join) => {
            peer.phase = Phase::Joined;
            b.tally.joined.push(id);
            b.tally.pending = b.tally.pending.saturating_sub(1);
            let now = Instant::now();
            b.tally.first_joined.get_or_insert(now);
            b.tally.last_joined = Some(now);
        }
        ([b'4', b'4', ..], _) => return Err("the server refused the CONNECT (44)".into()),
        ([b'4', b'1', ..], _) => return Err("the server disconnected the socket (41)".into()),
        // Anything else (a `6` noop, events before joining) is not this client's business.
        _ => {}
    }
    Ok(())
}

impl Handler for SioCrowd {
    type Timer = ();
    type Message = ();

    fn connected(&mut self, ctx: &mut Ctx<()>, id: ConnId, result: sys::Result<()>) {
        if result.is_err() {
            // Gone already: `closed` will not be called for it.
            self.peers.remove(&id);
            self.tally.failed += 1;
            self.tally.pending = self.tally.pending.saturating_sub(1);
            return;
        }
        let mut raw = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut raw) {
            return SioCrowd::fail(&mut self.tally, ctx, id, format!("getrandom: {e}"));
        }
        let key = engineio::base64(&raw);
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.phase = Phase::Upgrade {
                accept: http::websocket_accept(&key),
            };
        }
        let request = format!(
            "GET {UPGRADE_TARGET} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.tpl.host
        );
        let _ = ctx.send(id, request.as_bytes());
    }

    fn data(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        let Some((peer, mut b)) = self.peer(id) else {
            return bytes.len();
        };
        // One clock reading per read, not per frame: a read brings many deliveries at once.
        let now = (!b.tally.scheduled.is_empty()).then(Instant::now);
        let mut used = 0;
        if let Phase::Upgrade { accept } = &peer.phase {
            let res = match http::parse_response(bytes) {
                Ok(Some(res)) => res,
                Ok(None) if bytes.len() <= MAX_HEAD => return 0,
                Ok(None) => {
                    SioCrowd::fail(b.tally, ctx, id, "an endless response head".into());
                    return bytes.len();
                }
                Err(e) => {
                    SioCrowd::fail(b.tally, ctx, id, format!("the upgrade's answer: {e}"));
                    return bytes.len();
                }
            };
            if res.status != 101 || res.header("sec-websocket-accept") != Some(accept) {
                let why = format!(
                    "the upgrade was answered {} with accept {:?}",
                    res.status,
                    res.header("sec-websocket-accept")
                );
                SioCrowd::fail(b.tally, ctx, id, why);
                return bytes.len();
            }
            peer.phase = Phase::Open;
            used = res.head_len;
        }
        // Whole frames only, check then take: an incomplete one stays for the next read.
        loop {
            let rest = &bytes[used..];
            let [b0, b1, ..] = *rest else { break };
            let (len, head) = match b1 {
                0..=125 => (b1 as usize, 2),
                126 => match rest.get(2..4) {
                    Some(b) => (u16::from_be_bytes([b[0], b[1]]) as usize, 4),
                    None => break,
                },
                127 => match rest.get(2..10) {
                    Some(b) => {
                        let mut be = [0u8; 8];
                        be.copy_from_slice(b);
                        (u64::from_be_bytes(be).min(u64::MAX >> 1) as usize, 10)
                    }
                    None => break,
                },
                // The mask bit: a server's frames are never masked.
                _ => {
                    SioCrowd::fail(b.tally, ctx, id, "a masked frame from the server".into());
                    return bytes.len();
                }
            };
            if len > MAX_FRAME || b0 & 0x70 != 0 || b0 & 0x80 == 0 {
                let why = format!("a frame this client does not take (byte 0 {b0:#x}, {len} B)");
                SioCrowd::fail(b.tally, ctx, id, why);
                return bytes.len();
            }
            let Some(payload) = rest.get(head..head + len) else {
                break;
            };
            used += head + len;
            let result = match b0 & 0x0f {
                1 => on_text(ctx, id, peer, &mut b, payload, now),
                // A WebSocket ping (socklab's server sends none; a proxy might): its pong.
                9 => {
                    b.out.clear();
                    let key = peer.masker.key();
                    socklab::wire::websocket::encode_frame(
                        true,
                        socklab::wire::websocket::Opcode::Pong,
                        payload,
                        Some(key),
                        b.out,
                    );
                    let _ = ctx.send(id, b.out);
                    Ok(())
                }
                10 => Ok(()),
                8 => Err("the server sent a close frame".into()),
                op => Err(format!("a frame of opcode {op}")),
            };
            if let Err(why) = result {
                SioCrowd::fail(b.tally, ctx, id, why);
                return bytes.len();
            }
        }
        used
    }

    fn closed(&mut self, _: &mut Ctx<()>, id: ConnId, _: CloseReason) {
        if let Some(p) = self.peers.remove(&id) {
            if matches!(p.phase, Phase::Joined) {
                self.tally.lost += 1;
                self.tally.joined.retain(|&j| j != id);
            } else {
                self.tally.failed += 1;
                self.tally.pending = self.tally.pending.saturating_sub(1);
            }
        }
    }
}

impl SioCrowd {
    /// Starts a fan-out round: every joined client should now receive `target` events.
    pub(crate) fn begin_round(&mut self, target: u64) {
        for p in self.peers.values_mut() {
            p.events = 0;
        }
        let t = &mut self.tally;
        t.target = target;
        t.complete = 0;
        t.deliveries = 0;
        t.by_node.iter_mut().for_each(|d| *d = 0);
    }

    pub(crate) fn error(&self) -> String {
        match &self.tally.first_error {
            Some(e) => format!(" ({} protocol errors, the first: {e})", self.tally.errors),
            None => String::new(),
        }
    }
}

// ---- the crowd's life ------------------------------------------------------------------------

/// CPU time this thread has used so far (`getrusage(RUSAGE_THREAD)`, user and system).
pub fn thread_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(u) => Duration::from_micros(
            (u.user_time().num_microseconds() + u.system_time().num_microseconds()).max(0) as u64,
        ),
        Err(_) => Duration::ZERO,
    }
}

/// Opens `n` clients, the i-th to `nodes[i % nodes.len()]`; returns once all joined or
/// failed, or after `limit`. `max_outbound` bounds what one client may have queued.
pub(crate) fn open(
    nodes: &[SocketAddr],
    n: usize,
    max_outbound: usize,
    limit: Duration,
) -> io::Result<EventLoop<SioCrowd>> {
    let first = *nodes
        .first()
        .ok_or_else(|| io::Error::other("the clients need a server to connect to"))?;
    let config = Config {
        max_connections: n + 16,
        max_outbound,
        stop_grace: Duration::from_secs(2),
        // A sink that mostly counts frames takes more per turn than a server would (see
        // `load.rs`, which does the same).
        reads_per_event: 16,
        // TCP_NODELAY on every connection, as socket.io-client's `ws` does.
        nodelay: true,
        ..Config::default()
    };
    let crowd = SioCrowd {
        peers: HashMap::new(),
        tally: Tally {
            by_node: vec![0; nodes.len()],
            ..Tally::default()
        },
        tpl: Templates::new(first),
        scratch: Vec::with_capacity(256),
    };
    let mut ev = EventLoop::new(crowd, config)?;
    let deadline = Instant::now() + limit;
    let mut started = 0;
    while Instant::now() < deadline {
        let t = &ev.handler().tally;
        if t.joined.len() + t.failed + t.lost >= n {
            break;
        }
        let room = CONNECTS_IN_FLIGHT.saturating_sub(t.pending);
        for _ in 0..room.min(n - started) {
            let node = started % nodes.len();
            started += 1;
            let masker = Masker::new()?;
            match ev.ctx().connect(nodes[node], Some(JOIN_TIMEOUT)) {
                Ok(id) => {
                    let h = ev.handler();
                    h.peers.insert(
                        id,
                        Peer {
                            // Set with the key when the TCP connection is up.
                            phase: Phase::Upgrade {
                                accept: String::new(),
                            },
                            masker,
                            node,
                            events: 0,
                            ack: None,
                            next_id: 0,
                        },
                    );
                    h.tally.pending += 1;
                }
                // Out of descriptors or ports: counted as failed, reported by the caller.
                Err(_) => ev.handler().tally.failed += 1,
            }
        }
        ev.turn(Some(Duration::from_millis(20)))?;
    }
    Ok(ev)
}

/// Turns `ev` until every joined client has the round's messages ([`SioCrowd::begin_round`]),
/// a client was lost or failed, nothing came for `stall`, or `limit` passed; returns whether
/// every client had them all, and when the last delivery came.
pub(crate) fn await_round(
    ev: &mut EventLoop<SioCrowd>,
    limit: Duration,
    stall: Duration,
) -> io::Result<(bool, Instant)> {
    let joined = ev.handler().tally.joined.len();
    let mut last = (ev.handler().tally.deliveries, Instant::now());
    turn_until(ev, limit, |h| {
        if h.tally.deliveries != last.0 {
            last = (h.tally.deliveries, Instant::now());
        }
        h.tally.complete >= joined
            || h.tally.lost > 0
            || h.tally.errors > 0
            || last.1.elapsed() >= stall
    })?;
    let t = &ev.handler().tally;
    Ok((t.complete >= joined && t.lost == 0 && t.errors == 0, last.1))
}

/// [`open`], and an error unless all `n` joined.
pub(crate) fn open_all(
    nodes: &[SocketAddr],
    n: usize,
    max_outbound: usize,
) -> io::Result<EventLoop<SioCrowd>> {
    let mut ev = open(nodes, n, max_outbound, Duration::from_secs(60))?;
    let joined = ev.handler().tally.joined.len();
    if joined < n {
        let h = ev.handler();
        return Err(io::Error::other(format!(
            "only {joined} of {n} Socket.IO clients joined ({} failed){}",
            h.tally.failed,
            h.error()
        )));
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use socklab::wire::websocket::{Decoder, Message, Role};

    #[test]
    fn a_masked_frame_is_what_the_servers_decoder_reads() {
        let mut m = Masker::new().unwrap();
        for parts in [
            &[&b"42"[..], b"7", b"[\"echo\",\"x\"]"][..],
            &[&[b'a'; 300][..]],
        ] {
            let mut out = Vec::new();
            push_text(&mut out, parts, m.key());
            let mut got = None;
            let used = Decoder::new(Role::Server, 1 << 20).decode(&out, |msg| {
                got = Some(msg);
                false
            });
            assert_eq!(used, out.len());
            let want = String::from_utf8(parts.concat()).unwrap();
            assert_eq!(got, Some(Ok(Message::Text(want))));
        }
    }

    #[test]
    fn keys_change_from_frame_to_frame() {
        let mut m = Masker(1);
        let keys: Vec<_> = (0..100).map(|_| m.key()).collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
    }

    #[test]
    fn ack_ids_are_read_from_their_digits() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(1234, &mut buf), b"1234");
        assert_eq!(ack_id(b"1234[\"x\"]"), Some(1234));
        assert_eq!(ack_id(b"[\"x\"]"), None);
        assert_eq!(ack_id(b"99999999999999999999[]"), None);
    }
}
