//! Hostile peers on Engine.IO long-polling (issue 13), in the manner of `tests/hostile_web.rs`:
//! each test does bad things to an in-process server on 127.0.0.1 (port 0) while three good
//! clients are connected, a socklab one, a Socket.IO one over WebSocket and a Socket.IO one
//! over long-polling, and all three keep doing ack round trips before, during and after the
//! attack (answering the server's pings on the way). Then: the bad peers were dealt with as
//! documented, the good clients are still connected with the same ids, nothing panicked, and
//! the server thread stops cleanly.
//!
//! | test | the bad peers | what must happen |
//! |---|---|---|
//! | `a_thousand_abandoned_polling_sessions_leave_nothing` | 1,000 handshakes never followed up, half of them with a GET held and its TCP connection then closed | each session closed by `handshake_timeout`; descriptors back to the baseline, RSS growth bounded, no session left, each sid unknown |
//! | `a_thousand_abandoned_upgrades_leave_nothing` | 1,000 sessions whose WebSocket upgrade gets its `101` and then says nothing, or probes and closes before `5` | the silent WebSockets closed by the server; the same checks |
//! | `a_post_declaring_ten_megabytes_is_refused_from_its_head` | a POST head with `Content-Length: 10000000`, no body | `413` before any of the body is sent; closed; the session lives on |
//! | `sessions_past_the_cap_are_refused` | handshakes past `max_polling_sessions` (set to 20) | `503`, code 4; once the abandoned ones are reaped, a handshake succeeds again |
//! | `a_flood_of_bad_posts_closes_each_session` | 1,000 sessions, each POSTing one of ten broken bodies | each `400` code 3, each session gone, `parse_errors` + 1,000 |
//!
//! The timeouts are short (handshake 300 ms, upgrade 200 ms, pings every 200 ms), so the
//! abandoned sessions are gone in seconds; the good clients answer pings between round trips,
//! which the main thread does every 20 ms or so while worker threads attack. Descriptors and
//! memory are measured in this process, which the server shares with the test: the tests of
//! this file take one lock ([`common::serial`], held by the lab). The lab (server, good
//! clients, round trips, the final checks) is `tests/common/web_lab.rs`, shared with
//! `tests/hostile_web.rs`; what only this file needs (waiting on workers, descriptor counts,
//! unknown sids) is its own `impl Lab` below. Every wait is bounded by [`WAIT`] (or a stated
//! deadline); no assertion is about speed.

mod common;
use common::{
    ask, assert_ok, open_fds, rss_kib, sio_upgrade, Answer, HttpConn, PollingPeer, SioPeer, WebLab,
    WAIT,
};

use std::net::SocketAddr;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socklab::events::{reasons, ServerConfig};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(300);
const PING_INTERVAL: Duration = Duration::from_millis(200);
/// Long beside the interval: the good clients answer pings between round trips, and on two
/// loaded cores (this file beside the whole suite) a round trip waited over a second behind
/// the attack; no bad peer here is closed by the heartbeat (none joins a namespace but the
/// bad POSTs', closed at once).
const PING_TIMEOUT: Duration = Duration::from_millis(5000);
/// Shorter than the handshake timeout: a silent upgrade is dropped by its own timer.
const UPGRADE_TIMEOUT: Duration = Duration::from_millis(200);

/// Worker threads per attack (the machine has two cores; four keep the server busy).
const THREADS: usize = 4;

// ---------------------------------------------------------------------------------------------
// The lab: a server, its reports, three good clients (`tests/common/web_lab.rs`)
// ---------------------------------------------------------------------------------------------

fn config() -> ServerConfig {
    ServerConfig {
        handshake_timeout: HANDSHAKE_TIMEOUT,
        ping_interval: PING_INTERVAL,
        ping_timeout: PING_TIMEOUT,
        upgrade_timeout: UPGRADE_TIMEOUT,
        ..ServerConfig::default()
    }
}

type Lab = WebLab;

impl Lab {
    /// The lab with all three good clients, the polling one included.
    fn start() -> Lab {
        Lab::serve(config(), true)
    }

    /// Round trips every 20 ms until `done` (at most `limit`): the good clients keep
    /// answering their pings while the test waits. Returns the time it took.
    fn meanwhile(&mut self, what: &str, limit: Duration, mut done: impl FnMut(&Lab) -> bool) {
        let started = Instant::now();
        let mut n = 0;
        while !done(self) {
            assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
            self.round_trip(&format!("{what} {n}"));
            n += 1;
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Round trips until every worker is done; then joins them (a failed worker fails the
    /// test).
    fn while_running<T>(&mut self, what: &str, workers: Vec<JoinHandle<T>>) -> Vec<T> {
        self.meanwhile(what, Duration::from_secs(300), |_| {
            workers.iter().all(|w| w.is_finished())
        });
        workers
            .into_iter()
            .map(|w| w.join().expect("a worker failed"))
            .collect()
    }

    /// This process's descriptors when no request of the good clients is under way: the
    /// polling client's requests each take a new connection, whose server side closes a
    /// moment after the client's, so the fewest of a few samples 30 ms after a round trip.
    fn quiet_fds(&mut self) -> usize {
        let pid = std::process::id();
        (0..5)
            .map(|_| {
                self.round_trip("quiet");
                thread::sleep(Duration::from_millis(30));
                open_fds(pid)
            })
            .min()
            .expect("five samples")
    }

    /// Waits (doing round trips) until the server holds only the good polling session and
    /// this process has `fds` descriptors open; returns the last count of each.
    fn settle(&mut self, fds: usize) -> (u64, usize) {
        let pid = std::process::id();
        let limit = WAIT;
        let started = Instant::now();
        loop {
            let sessions = self.stats().polling_sessions;
            let open = open_fds(pid);
            if (sessions == 1 && open == fds) || started.elapsed() >= limit {
                return (sessions, open);
            }
            self.round_trip("settling");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every sid in `sids` is unknown to the server now: one in ten asked, each by a poll on
    /// a new connection (a round trip every ten, for the good clients' pings).
    fn all_unknown(&mut self, sids: &[String]) {
        for (n, sid) in sids.iter().step_by(10).enumerate() {
            let peer = PollingPeer {
                addr: self.addr(),
                sid: sid.clone(),
                open: Value::Null,
            };
            assert_refused(&peer.get(), 1);
            if n % 10 == 9 {
                self.round_trip("unknown sids");
            }
        }
    }
}

/// `400` with Engine.IO's JSON error `code`.
fn assert_refused(a: &Answer, code: u8) {
    assert_eq!(a.status(), 400, "{a:?}");
    let got: Value = serde_json::from_slice(&a.body).expect("a JSON error body");
    assert_eq!(got["code"], json!(code), "{a:?}");
}

/// Runs `each(addr, n)` for `n` in `0..count` on [`THREADS`] threads (n, n + THREADS, ...);
/// each thread returns what its calls returned.
fn spawn<T: Send + 'static>(
    addr: SocketAddr,
    count: usize,
    each: fn(SocketAddr, usize) -> T,
) -> Vec<JoinHandle<Vec<T>>> {
    (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(300);
                (t..count)
                    .step_by(THREADS)
                    .map(|n| {
                        assert!(Instant::now() < deadline, "{n}: not finished in time");
                        each(addr, n)
                    })
                    .collect()
            })
        })
        .collect()
}

/// How much VmRSS may grow over an attack, in KiB; why, at each test.
const RSS_MARGIN_KIB: u64 = 8 * 1024;

/// The measure around one attack: descriptors and VmRSS before (after a warm-up with the same
/// attack, so that the allocator's arenas, the connection and session tables and the timer
/// heap have grown to their working size), the attack while the good clients do round trips,
/// then the wait until its sessions and descriptors are gone; then every sid is unknown.
/// `workers(n)` starts an attack of `n` sessions; each worker returns the sids it made.
fn measured(
    lab: &mut Lab,
    what: &str,
    count: usize,
    workers: impl Fn(usize) -> Vec<JoinHandle<Vec<String>>>,
) {
    let pid = std::process::id();
    let fds_idle = lab.quiet_fds();
    lab.while_running("warm-up", workers(count / 5));
    let (sessions, fds_before) = lab.settle(fds_idle);
    assert_eq!((sessions, fds_before), (1, fds_idle), "after the warm-up");
    let rss_before = rss_kib(pid);
    let started = Instant::now();
    let sids: Vec<String> = lab
        .while_running(what, workers(count))
        .into_iter()
        .flatten()
        .collect();
    let attacked = started.elapsed();
    let (sessions, fds_after) = lab.settle(fds_before);
    let took = started.elapsed();
    let rss_after = rss_kib(pid);
    eprintln!(
        "{count} {what} in {attacked:?}, all gone {took:?} after the first: {fds_after} \
         descriptors (before: {fds_before}), VmRSS {rss_after} KiB (before: {rss_before} KiB, \
         +{} KiB), {sessions} polling session(s) left (the good one), {} round trips so far",
        rss_after.saturating_sub(rss_before),
        lab.round_trips,
    );
    assert_eq!(sids.len(), count);
    assert_eq!(sessions, 1, "only the good polling session is left");
    assert_eq!(fds_after, fds_before, "no descriptor left open");
    assert!(
        rss_after < rss_before + RSS_MARGIN_KIB,
        "VmRSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    lab.all_unknown(&sids);
}

// =============================================================================================
// Abandoned sessions
// =============================================================================================

/// A handshake, then nothing (even numbers); or a handshake and a GET held, whose TCP
/// connection is then closed (odd numbers). Returns the sid.
fn abandon_session(addr: SocketAddr, n: usize) -> String {
    let peer = PollingPeer::open(addr);
    if n % 2 == 1 {
        let mut conn = HttpConn::connect(addr);
        conn.send("GET", &peer.query(), b"", "");
        // Nothing waits for it: held (20 ms is for the server to read it; if it reads the
        // GET and the FIN together, it holds the GET and forgets it at once, also fine).
        let early = conn.answer_within(Duration::from_millis(20));
        assert!(
            early.is_none(),
            "a poll with nothing to send is held: {early:?}"
        );
    }
    peer.sid
}

/// 1,000 sessions opened and abandoned, 4 at a time, while the good clients do round
/// trips: each is closed by the handshake timeout (no CONNECT came); then this process holds
/// the descriptors it held before, the server holds no session but the good one, and every
/// sid is unknown.
///
/// Why 8 MiB of VmRSS (as in `hostile_web.rs`): once they are gone, what abandoned sessions
/// leave is the room they made in tables that keep their capacity (the session slots, the
/// sid map, the connection map, the recovery offsets by slot, the loop's connection slab),
/// sized by the most sessions and connections alive at once (at most a few thousand here,
/// under 1 MiB in all), plus the allocator's slack; measured: +0.5 MiB for 1,000 abandoned
/// sessions, +1.2 MiB for 1,000 abandoned upgrades. A session leaked whole is caught by the
/// session count and its connections by the descriptors; the margin catches what leaks
/// beside them (queues, held-poll headers, readers) once it passes some 8 KiB a session.
#[test]
fn a_thousand_abandoned_polling_sessions_leave_nothing() {
    let mut lab = Lab::start();
    let before = lab.stats();
    let addr = lab.addr();
    measured(&mut lab, "abandoned sessions", 1000, |n| {
        spawn(addr, n, abandon_session)
    });
    let stats = lab.stats();
    assert_eq!(stats.parse_errors, before.parse_errors);
    lab.kept.extend(lab.reports.try_iter());
    assert!(lab.kept.is_empty(), "no socket was made: {:?}", lab.kept);
    lab.finish();
}

/// A session whose WebSocket upgrade gets its `101` and then says nothing (even numbers:
/// the WebSocket is kept open, for the server to drop); or probes, gets `3probe`, and closes
/// before `5` (odd numbers). Returns the sid; the silent WebSockets go back to the caller.
fn abandon_upgrade(addr: SocketAddr, n: usize) -> (String, Option<SioPeer>) {
    let peer = PollingPeer::open(addr);
    let (mut ws, res) = SioPeer::upgrade_with(addr, &sio_upgrade(&peer.sid));
    assert_eq!(res.status, 101);
    if n % 2 == 0 {
        return (peer.sid, Some(ws));
    }
    ws.send_text("2probe");
    assert_eq!(ws.expect_text("the probe's answer"), "3probe");
    (peer.sid, None)
}

/// Each worker opens its upgrades, then waits for the server to drop each silent one (end
/// of file within [`WAIT`]): only then does it close its own end.
fn abandon_upgrades(addr: SocketAddr, t: usize, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut sids = Vec::new();
    let mut silent = Vec::new();
    for n in (t..count).step_by(THREADS) {
        assert!(Instant::now() < deadline, "{n}: not finished in time");
        let (sid, ws) = abandon_upgrade(addr, n);
        sids.push(sid);
        silent.extend(ws);
    }
    for mut ws in silent {
        // `ending` panics if a data frame comes, or nothing within WAIT.
        ws.ending("a silent upgrade");
    }
    sids
}

/// 1,000 upgrades abandoned, half silent after their `101` (dropped by the server's upgrade
/// timeout, or its handshake timeout), half closed by the client after the probe, while the
/// good clients do round trips; their sessions (never joined) end by the handshake timeout.
/// Then the same checks as for abandoned sessions, with the same margin and the same reasons
/// for it (a WebSocket adds one TCP connection per session).
#[test]
fn a_thousand_abandoned_upgrades_leave_nothing() {
    const COUNT: usize = 1000;
    let mut lab = Lab::start();
    let addr = lab.addr();
    let workers = |count: usize| -> Vec<JoinHandle<Vec<String>>> {
        (0..THREADS)
            .map(|t| thread::spawn(move || abandon_upgrades(addr, t, count)))
            .collect()
    };
    measured(&mut lab, "abandoned upgrades", COUNT, workers);
    lab.kept.extend(lab.reports.try_iter());
    assert!(lab.kept.is_empty(), "no socket was made: {:?}", lab.kept);
    lab.finish();
}

// =============================================================================================
// Bodies
// =============================================================================================

/// A POST head declaring 10 MB (maxPayload is 1 MB): `413` comes before a byte of the body
/// is sent, and the connection is closed; the session is not harmed.
#[test]
fn a_post_declaring_ten_megabytes_is_refused_from_its_head() {
    let mut lab = Lab::start();
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let before = lab.stats().http_refused;
    let mut conn = HttpConn::connect(lab.addr());
    let head = format!(
        "POST /socket.io/?{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000\r\n\r\n",
        peer.query()
    );
    conn.send_raw(head.as_bytes());
    let a = conn.answer("the 413");
    assert_eq!(a.status(), 413, "{a:?}");
    assert!(conn.closed(), "closed after the 413");
    assert_eq!(lab.stats().http_refused, before + 1);
    lab.round_trip("after the 413");
    // The session goes on (its pings answered meanwhile).
    let echo = format!("421{}", json!(["echo", "fine"]));
    assert_ok(&peer.post(echo.as_bytes()));
    peer.poll_for(r#"431["fine"]"#, "the echo after the 413");
    let target = sid.clone();
    assert!(ask(&lab.server.handle, move |io| io.is_connected(&target)));
    assert_ok(&peer.post(b"1"));
    lab.finish();
}

/// Ten ways to break a POST: not Engine.IO, not Socket.IO, not UTF-8, not base64, an
/// attachment nobody announced, text where an attachment was due, packets a client never
/// sends.
const BAD_BODIES: [&[u8]; 10] = [
    b"9",
    b"4abc",
    b"\xff\xfe",
    b"b!!!",
    b"bAQID",
    b"451-[\"up\",{\"_placeholder\":true,\"num\":0}]\x1e42[\"x\"]",
    b"5",
    b"6",
    b"0{}",
    b"",
];

/// A session (joined to `/` for odd numbers) POSTs one broken body: `400` code 3.
fn bad_post(addr: SocketAddr, n: usize) -> String {
    let peer = if n % 2 == 1 {
        PollingPeer::connect(addr).0
    } else {
        PollingPeer::open(addr)
    };
    let body = BAD_BODIES[n % BAD_BODIES.len()];
    let a = peer.post(body);
    assert_refused(&a, 3);
    peer.sid
}

/// 1,000 sessions, each POSTing a broken body, 4 at a time, while the good clients do round
/// trips: each is refused and its session closed (`parse_errors` counts each one, and each
/// joined socket goes with `parse error`); then no session is left but the good one, no
/// descriptor is left open, and every sid is unknown.
#[test]
fn a_flood_of_bad_posts_closes_each_session() {
    const COUNT: usize = 1000;
    let mut lab = Lab::start();
    let before = lab.stats();
    let fds_before = lab.quiet_fds();
    let started = Instant::now();
    let sids: Vec<String> = lab
        .while_running("bad posts", spawn(lab.addr(), COUNT, bad_post))
        .into_iter()
        .flatten()
        .collect();
    let (sessions, fds_after) = lab.settle(fds_before);
    let stats = lab.stats();
    eprintln!(
        "{COUNT} bad POSTs, all sessions gone {:?} after the first: {fds_after} descriptors \
         (before: {fds_before}), {sessions} polling session(s) left, parse_errors +{}",
        started.elapsed(),
        stats.parse_errors - before.parse_errors
    );
    assert_eq!(sids.len(), COUNT);
    assert_eq!(sessions, 1, "only the good polling session is left");
    assert_eq!(fds_after, fds_before, "no descriptor left open");
    assert_eq!(stats.parse_errors, before.parse_errors + COUNT as u64);
    // Each joined socket went with `parse error`.
    let deadline = Instant::now() + WAIT;
    loop {
        lab.kept.extend(lab.reports.try_iter());
        if lab.kept.len() >= COUNT / 2 || Instant::now() >= deadline {
            break;
        }
        lab.round_trip("reports");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lab.kept.len(), COUNT / 2);
    assert!(lab.kept.iter().all(|(_, r)| r == reasons::PARSE_ERROR));
    lab.kept.clear();
    lab.all_unknown(&sids);
    lab.finish();
}

/// A session holds no descriptor while no GET is held, so `max_connections` does not bound
/// sessions: `max_polling_sessions` does. Past it a handshake is answered `503` (Engine.IO's
/// code 4); once the handshake timeout has reaped the abandoned sessions, a new one is taken.
#[test]
fn sessions_past_the_cap_are_refused() {
    const CAP: usize = 20;
    let mut lab = Lab::serve(
        ServerConfig {
            max_polling_sessions: CAP,
            ..config()
        },
        true,
    );
    let addr = lab.addr();
    // The good polling client holds one session: CAP - 1 more fit.
    let open: Vec<String> = (1..CAP).map(|_| PollingPeer::open(addr).sid).collect();
    assert_eq!(open.len(), CAP - 1);
    let handshake = "EIO=4&transport=polling";
    let refused = HttpConn::connect(addr).request("GET", handshake, b"", "");
    assert_eq!(refused.status(), 503, "{refused:?}");
    let body: Value = serde_json::from_slice(&refused.body).expect("a JSON error body");
    assert_eq!(body["code"], json!(4), "{refused:?}");
    lab.round_trip("at the cap");
    // The abandoned ones go at their handshake timeout; then there is room again.
    let deadline = Instant::now() + WAIT;
    let answer = loop {
        let a = HttpConn::connect(addr).request("GET", handshake, b"", "");
        if a.status() == 200 || Instant::now() > deadline {
            break a;
        }
        lab.round_trip("waiting for room");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        answer.status(),
        200,
        "a handshake once the abandoned were reaped: {answer:?}"
    );
    lab.finish();
}
