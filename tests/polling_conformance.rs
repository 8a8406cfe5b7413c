//! Engine.IO v4 over HTTP long-polling, rule by rule (issue 13): each test is one rule of the
//! Engine.IO protocol's polling transport and its upgrade to a WebSocket, checked with raw
//! HTTP requests over real sockets against an in-process [`RunningServer`] on 127.0.0.1
//! (port 0). The peer is `tests/common/polling_peer.rs` (requests by hand, every wait
//! bounded); the WebSocket side of an upgrade is `tests/common/sio_peer.rs`.
//!
//! | test | the client sends | what must come back |
//! |---|---|---|
//! | `the_handshake_is_an_open_packet_with_exactly_its_keys` | `GET ?EIO=4&transport=polling` | `200`, `Content-Type: text/plain; charset=UTF-8`, `0{"sid","upgrades":["websocket"],"pingInterval","pingTimeout","maxPayload"}`, a 20-character sid |
//! | `handshake_refusals_are_engineio_json` | `EIO=3`; `transport=carrier-pigeon`; a POST without `sid` | `400` code 5; code 0; code 2 |
//! | `connect_is_posted_ok_and_its_reply_comes_by_the_next_poll` | `POST 40`, then `GET` | `ok`; `40{"sid":...}`, the socket exists |
//! | `a_poll_is_held_until_there_is_something_then_takes_everything` | `GET` with nothing waiting; the server emits three events, one binary | nothing, then one body: `42[...]`, `42[...]`, `451-[...placeholder...]`, `bAQID`, `\x1e` between |
//! | `a_post_may_carry_several_packets` | `421["echo",1]\x1e422["echo",2]` | both handled: `431[1]\x1e432[2]` |
//! | `a_binary_event_is_posted_with_its_attachment_in_base64` | `451-["up",{placeholder 0}]\x1ebAQID` | the handler gets `[1, 2, 3]` as attachment 0 |
//! | `close_by_post_ends_the_session` | `POST 1` | `ok`; reason `transport close`; the next poll gets `1`, then `400` code 1 |
//! | `a_post_that_is_not_engineio_closes_the_session` | `POST 9` | `400` code 3; the held GET gets `1`; reason `parse error`; `parse_errors` + 1; then `400` code 1 |
//! | `a_post_that_is_not_socketio_closes_the_session` | `POST 4abc` | the same |
//! | `a_second_poll_while_one_is_held_closes_the_session` | two GETs at once | the second `400` code 3, the first `1`; reason `parse error`; then `400` code 1 |
//! | `an_unknown_sid_is_400_code_1` | GET and POST with a sid never given | `400` `{"code":1,"message":"Session ID unknown"}` |
//! | `a_body_over_max_payload_is_413_before_it_is_read` | a POST head declaring maxPayload + 1 bytes | `413`, closed; the session lives on, and a body of exactly maxPayload is taken |
//! | `the_server_pings_by_poll_and_posted_pongs_keep_the_session` | `3` to each `2` | `2` in the polls, well past pingInterval + pingTimeout; still connected |
//! | `a_session_that_neither_polls_nor_pongs_is_closed_by_the_heartbeat` | nothing | reason `ping timeout`; then `400` code 1; no session left |
//! | `the_get_and_the_post_may_come_on_different_connections` | a held GET on one connection, a POST on another | the GET gets the POST's ack |
//! | `keep_alive_serves_every_request_on_one_connection` | handshake, CONNECT, polls, an event, one connection | every answer on it, none says `Connection: close` |
//! | `a_held_poll_outlives_the_handshake_timeout_of_its_connection` | a GET held past `handshake_timeout` | answered when the server emits |
//! | `the_upgrade_probes_then_moves_the_session_to_the_websocket` | WebSocket `&sid=S`, `2probe`, `5` | `101` without an open packet; `3probe`; the held GET gets `6`; what was queued (a binary event too) comes over the WebSocket; emits then do; a poll gets `400` |
//! | `the_probe_noop_does_not_follow_onto_the_websocket` | `2probe` with no poll held, `5` | the first WebSocket message is the next emit, not the `6` |
//! | `an_upgraded_session_outlives_the_handshake_timeout` | the upgrade, then quiet past `handshake_timeout` | still connected, round trips over the WebSocket |
//! | `a_session_that_ends_while_probed_closes_the_probing_websocket` | `2probe`, then `POST 1` | the probing WebSocket closed at once |
//! | `an_upgrade_for_an_unknown_sid_is_400` | WebSocket `&sid=` never given | `400` code 1, closed |
//! | `an_abandoned_upgrade_is_dropped_and_the_session_stays_on_polling` | `2probe`, then no `5` | the WebSocket closed after `upgrade_timeout`; the session still answers by poll and may upgrade again |
//! | `a_server_disconnect_is_41_then_1_in_a_poll_of_its_own` | (`io.disconnect(sid)`) | a held poll gets `41`, the next `1`, then `400`; the same when no poll was held |
//! | `without_cors_origins_no_access_control_headers_and_options_is_400` | `Origin:` on a handshake; `OPTIONS` | no `Access-Control-*`; `400` code 2 |
//! | `an_allowed_origin_gets_cors_headers_on_every_answer` | `Origin: http://example.test` (allowed) | `Access-Control-Allow-Origin: http://example.test`, `-Allow-Credentials: true`, on a held GET's answer too |
//! | `another_origin_gets_no_cors_headers` | `Origin: http://elsewhere.test` | no `Access-Control-*` |
//! | `a_preflight_from_an_allowed_origin_is_204` | `OPTIONS` with `Access-Control-Request-Headers` | `204`, `-Allow-Methods: GET, POST`, `-Allow-Headers` as asked |
//!
//! Each test starts its own server (heartbeats 30 s apart unless the test is about them), so
//! the counters it reads are its own. The lab (the server, the reports its handlers send, the
//! waits on them) is `tests/common/conformance_lab.rs`, shared with `tests/socketio_conformance.rs`; this
//! file adds its own handlers (`OnRoot`) and `hold`.

mod common;
use common::{
    assert_ok, assert_open_packet, http_exchange, quiet_config, report, sio_upgrade, Answer,
    ConformanceLab, Handlers, HttpConn, PollingPeer, Seen, SioPeer, POLLING, WAIT,
};

use std::sync::mpsc::Sender;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socklab::events::{reasons, Emit, Io, ServerConfig};
use socklab::wire::packet::Limits;

// ---------------------------------------------------------------------------------------------
// The lab: a server with handlers that report what they saw
// ---------------------------------------------------------------------------------------------

/// On `/`: `echo` acks its arguments, `up` is reported, and so is each `disconnect`.
struct OnRoot;

impl Handlers for OnRoot {
    fn install(io: &mut Io, tx: Sender<Seen>) {
        io.on_connection("/", move |io, sid| report(io, sid, &tx));
    }
}

/// An allowed origin, and one that is not.
const ORIGIN: &str = "http://example.test";
const OTHER_ORIGIN: &str = "http://elsewhere.test";

type Lab = ConformanceLab<OnRoot>;

impl Lab {
    /// A poll for `peer` on a new connection (with `extra` header lines), once the server
    /// has read it (its request count went up) and held it (no answer within 100 ms): the
    /// fence that lets a test act "while a GET is held".
    fn hold(&self, peer: &PollingPeer, extra: &str) -> HttpConn {
        let before = self.stats().http_requests;
        let mut conn = HttpConn::connect(peer.addr);
        conn.send("GET", &peer.query(), b"", extra);
        let deadline = Instant::now() + WAIT;
        while self.stats().http_requests == before {
            assert!(Instant::now() < deadline, "the poll not read in {WAIT:?}");
            thread::sleep(Duration::from_millis(5));
        }
        let early = conn.answer_within(Duration::from_millis(100));
        assert!(early.is_none(), "the poll is held, not answered: {early:?}");
        conn
    }
}

/// `400` with Engine.IO's JSON error `code` and `message`.
fn assert_refused(a: &Answer, code: u8, message: &str) {
    assert_eq!(a.status(), 400, "{a:?}");
    assert_eq!(a.header("content-type"), Some("application/json"));
    let want = json!({"code": code, "message": message});
    let got: Value = serde_json::from_slice(&a.body).expect("a JSON error body");
    assert_eq!(got, want);
}

/// The JSON of a record after its `prefix` (`42`, `451-`, ...).
fn json_after(record: &str, prefix: &str) -> Value {
    let json = record
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix}..., got {record}"));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{record}: {e}"))
}

// =============================================================================================
// The handshake (Engine.IO v4, "Handshake")
// =============================================================================================

/// The open packet: exactly these five keys; the sid is 20 characters of base64url; the
/// only upgrade offered is `websocket`; the body is plain text.
#[test]
fn the_handshake_is_an_open_packet_with_exactly_its_keys() {
    let lab = Lab::start();
    let a = HttpConn::connect(lab.addr()).request("GET", POLLING, b"", "");
    assert_eq!(a.status(), 200, "{a:?}");
    assert_eq!(a.header("content-type"), Some("text/plain; charset=UTF-8"));
    let data = json_after(&a.text(), "0");
    assert_open_packet(&data, json!(["websocket"]));
    assert_eq!(lab.stats().polling_sessions, 1);
}

/// What Engine.IO refuses before a session exists, each with its code.
#[test]
fn handshake_refusals_are_engineio_json() {
    let lab = Lab::start();
    let old = HttpConn::connect(lab.addr()).request("GET", "EIO=3&transport=polling", b"", "");
    assert_refused(&old, 5, "Unsupported protocol version");
    let q = "EIO=4&transport=carrier-pigeon";
    let unknown = HttpConn::connect(lab.addr()).request("GET", q, b"", "");
    assert_refused(&unknown, 0, "Transport unknown");
    let post = HttpConn::connect(lab.addr()).request("POST", POLLING, b"40", "");
    assert_refused(&post, 2, "Bad handshake method");
    assert_eq!(lab.stats().polling_sessions, 0);
}

// =============================================================================================
// Packets both ways (Engine.IO v4, "Transports: HTTP long-polling")
// =============================================================================================

/// The client's packets go by POST (answered `ok` at once); the server's answer waits for
/// the next GET.
#[test]
fn connect_is_posted_ok_and_its_reply_comes_by_the_next_poll() {
    let lab = Lab::start();
    let peer = PollingPeer::open(lab.addr());
    let a = peer.post(b"40");
    assert_ok(&a);
    assert_eq!(a.header("content-type"), Some("text/html"));
    let reply = peer.get();
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    let records = reply.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let data = json_after(&records[0], "40");
    let sid = data["sid"].as_str().expect("the CONNECT reply's sid");
    assert!(lab.connected(sid));
}

/// A GET with nothing to send waits; when the server emits, the held GET is answered with
/// everything that waits, one record each, `\x1e` between them, a binary attachment as `b`
/// and base64.
#[test]
fn a_poll_is_held_until_there_is_something_then_takes_everything() {
    let lab = Lab::start();
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let mut held = lab.hold(&peer, "");
    let early = held.answer_within(Duration::from_millis(300));
    assert!(early.is_none(), "nothing to send yet: {early:?}");
    lab.run(move |io| {
        io.emit(&sid, "a", vec![json!(1)]).expect("emit a");
        io.emit(&sid, "b", vec![]).expect("emit b");
        let down = Emit::new("down").binary(vec![1, 2, 3]);
        io.send(&sid, down).expect("emit down");
    });
    let a = held.answer("the held poll");
    assert_eq!(a.status(), 200);
    let records = a.records();
    assert_eq!(records.len(), 4, "{records:?}");
    assert_eq!(records[0], r#"42["a",1]"#);
    assert_eq!(records[1], r#"42["b"]"#);
    assert_eq!(
        json_after(&records[2], "451-"),
        json!(["down", {"_placeholder": true, "num": 0}])
    );
    assert_eq!(records[3], "bAQID", "[1, 2, 3] in base64");
}

/// One POST body may hold several packets: each is handled, in order.
#[test]
fn a_post_may_carry_several_packets() {
    let lab = Lab::start();
    let (peer, _) = PollingPeer::connect(lab.addr());
    assert_ok(&peer.post(b"421[\"echo\",1]\x1e422[\"echo\",2]"));
    assert_eq!(peer.get().records(), ["431[1]", "432[2]"]);
}

/// A binary event: its text record, then its attachment as `b` + base64, in one body.
#[test]
fn a_binary_event_is_posted_with_its_attachment_in_base64() {
    let mut lab = Lab::start();
    let (peer, _) = PollingPeer::connect(lab.addr());
    let body = "451-[\"up\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID";
    assert_ok(&peer.post(body.as_bytes()));
    let (args, attachments) = lab.wait_for("the up event", |s| match s {
        Seen::Event {
            name,
            args,
            attachments,
        } if name == "up" => Some((args.clone(), attachments.clone())),
        _ => None,
    });
    assert_eq!(args, vec![json!({"_placeholder": true, "num": 0})]);
    assert_eq!(attachments, vec![vec![1, 2, 3]]);
}

// =============================================================================================
// Ending a session
// =============================================================================================

/// Engine.IO's `1` from the client ends the session: its sockets go with `transport close`,
/// the next poll gets the server's `1`, and the session is then unknown.
#[test]
fn close_by_post_ends_the_session() {
    let mut lab = Lab::start();
    let (peer, sid) = PollingPeer::connect(lab.addr());
    assert_ok(&peer.post(b"1"));
    assert_eq!(lab.reason(&sid), reasons::TRANSPORT_CLOSE);
    assert_eq!(peer.get().text(), "1");
    assert_refused(&peer.get(), 1, "Session ID unknown");
    assert_eq!(lab.stats().polling_sessions, 0);
}

/// A POST that breaks the protocol: `400` `Bad request`, the held GET gets `1`, the
/// session's sockets go with `parse error`, `parse_errors` counts it, the session is gone.
fn bad_post(body: &[u8]) {
    let mut lab = Lab::start();
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let before = lab.stats().parse_errors;
    let mut held = lab.hold(&peer, "");
    assert_refused(&peer.post(body), 3, "Bad request");
    assert_eq!(held.answer("the held poll").text(), "1");
    assert_eq!(lab.reason(&sid), reasons::PARSE_ERROR);
    assert_eq!(lab.stats().parse_errors, before + 1);
    assert_refused(&peer.get(), 1, "Session ID unknown");
    assert_eq!(lab.stats().polling_sessions, 0);
}

#[test]
fn a_post_that_is_not_engineio_closes_the_session() {
    bad_post(b"9");
}

#[test]
fn a_post_that_is_not_socketio_closes_the_session() {
    bad_post(b"4abc");
}

/// Two GETs at once: Engine.IO closes the session (the second gets `400`, the first `1`).
#[test]
fn a_second_poll_while_one_is_held_closes_the_session() {
    let mut lab = Lab::start();
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let before = lab.stats().parse_errors;
    let mut first = lab.hold(&peer, "");
    assert_refused(&peer.get(), 3, "Bad request");
    assert_eq!(first.answer("the first poll").text(), "1");
    assert_eq!(lab.reason(&sid), reasons::PARSE_ERROR);
    assert_eq!(lab.stats().parse_errors, before + 1);
    assert_refused(&peer.get(), 1, "Session ID unknown");
}

/// A sid the server never gave, by GET and by POST.
#[test]
fn an_unknown_sid_is_400_code_1() {
    let lab = Lab::start();
    let query = format!("{POLLING}&sid=AAAAAAAAAAAAAAAAAAAA");
    let get = HttpConn::connect(lab.addr()).request("GET", &query, b"", "");
    assert_refused(&get, 1, "Session ID unknown");
    let post = HttpConn::connect(lab.addr()).request("POST", &query, b"40", "");
    assert_refused(&post, 1, "Session ID unknown");
    assert_eq!(lab.stats().http_refused, 2);
}

/// A body declared over maxPayload is refused from its head (`413`, nothing of it read);
/// the session itself is not harmed, and a body of exactly maxPayload is taken.
#[test]
fn a_body_over_max_payload_is_413_before_it_is_read() {
    const MAX: usize = 1000;
    let lab = Lab::with(ServerConfig {
        limits: Limits {
            max_frame: MAX,
            ..Limits::default()
        },
        ..quiet_config()
    });
    let (peer, _) = PollingPeer::connect(lab.addr());
    assert_eq!(peer.open["maxPayload"], json!(MAX));
    let mut conn = HttpConn::connect(lab.addr());
    let head = format!(
        "POST /socket.io/?{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        peer.query(),
        MAX + 1
    );
    conn.send_raw(head.as_bytes());
    let a = conn.answer("the 413");
    assert_eq!(a.status(), 413, "{a:?}");
    assert!(conn.closed(), "the connection is closed after the 413");
    // Exactly MAX bytes: `421["echo","aaa..."]`.
    let frame = "421[\"echo\",\"\"]".len();
    let body = format!("421[\"echo\",\"{}\"]", "a".repeat(MAX - frame));
    assert_eq!(body.len(), MAX);
    assert_ok(&peer.post(body.as_bytes()));
    let answer = peer.get().text();
    assert!(answer.starts_with("431[\"aaa"), "{answer:.40}");
}

// =============================================================================================
// The heartbeat over polling (Engine.IO v4, "Heartbeat")
// =============================================================================================

/// The server's `2` waits in the session and comes with a poll; a `3` posted each time keeps
/// the session, well past pingInterval + pingTimeout (600 ms here).
#[test]
fn the_server_pings_by_poll_and_posted_pongs_keep_the_session() {
    const INTERVAL: Duration = Duration::from_millis(200);
    let mut lab = Lab::with(ServerConfig {
        ping_interval: INTERVAL,
        ping_timeout: Duration::from_millis(400),
        ..quiet_config()
    });
    let peer = PollingPeer::open(lab.addr());
    assert_ok(&peer.post(b"40"));
    let started = Instant::now();
    let (mut pings, mut sid) = (0, None);
    while pings < 5 {
        assert!(started.elapsed() < WAIT, "5 pings not seen in {WAIT:?}");
        let a = peer.get();
        assert_eq!(a.status(), 200, "poll after {pings} pings: {a:?}");
        for r in a.records() {
            if r == "2" {
                pings += 1;
                assert_ok(&peer.post(b"3"));
            } else {
                let data = json_after(&r, "40");
                sid = data["sid"].as_str().map(str::to_string);
            }
        }
    }
    let took = started.elapsed();
    assert!(
        took >= INTERVAL * 4,
        "five pings, pingInterval apart: {took:?}"
    );
    let sid = sid.expect("the CONNECT reply came by poll");
    assert!(lab.connected(&sid));
    assert!(lab.kept.is_empty(), "nothing disconnected: {:?}", lab.kept);
    assert_ok(&peer.post(b"1"));
    assert_eq!(lab.reason(&sid), reasons::TRANSPORT_CLOSE);
}

/// A session that does not poll cannot see the ping, nor answer it: it is closed once
/// pingInterval + pingTimeout have passed, its socket goes with `ping timeout`, and its sid
/// is then unknown.
#[test]
fn a_session_that_neither_polls_nor_pongs_is_closed_by_the_heartbeat() {
    const FAST: Duration = Duration::from_millis(200);
    let mut lab = Lab::with(ServerConfig {
        ping_interval: FAST,
        ping_timeout: FAST,
        ..quiet_config()
    });
    let started = Instant::now();
    let (peer, sid) = PollingPeer::connect(lab.addr());
    assert_eq!(lab.reason(&sid), reasons::PING_TIMEOUT);
    let took = started.elapsed();
    assert!(
        took >= FAST * 2,
        "not before the heartbeat window: {took:?}"
    );
    assert_refused(&peer.get(), 1, "Session ID unknown");
    assert_refused(&peer.post(b"3"), 1, "Session ID unknown");
    assert_eq!(lab.stats().polling_sessions, 0);
}

// =============================================================================================
// Connections: a session is not a TCP connection
// =============================================================================================

/// The GET and the POST of one session on two connections (a browser opens two): the POST's
/// ack comes in the GET held on the other.
#[test]
fn the_get_and_the_post_may_come_on_different_connections() {
    let lab = Lab::start();
    let (peer, _) = PollingPeer::connect(lab.addr());
    let mut held = lab.hold(&peer, "");
    let mut other = HttpConn::connect(lab.addr());
    let a = other.request("POST", &peer.query(), b"421[\"echo\",\"x\"]", "");
    assert_ok(&a);
    assert_eq!(held.answer("the held poll").text(), r#"431["x"]"#);
}

/// HTTP/1.1 keeps the connection for the next request: the whole life of a session, one
/// connection, no `Connection: close`.
#[test]
fn keep_alive_serves_every_request_on_one_connection() {
    let lab = Lab::start();
    let mut conn = HttpConn::connect(lab.addr());
    let mut answers = Vec::new();
    let open = conn.request("GET", POLLING, b"", "");
    let data = json_after(&open.text(), "0");
    let query = format!("{POLLING}&sid={}", data["sid"].as_str().expect("a sid"));
    answers.push(open);
    answers.push(conn.request("POST", &query, b"40", ""));
    let reply = conn.request("GET", &query, b"", "");
    assert!(reply.text().starts_with("40{"), "{reply:?}");
    answers.push(reply);
    answers.push(conn.request("POST", &query, b"421[\"echo\",\"k\"]", ""));
    let ack = conn.request("GET", &query, b"", "");
    assert_eq!(ack.text(), r#"431["k"]"#);
    answers.push(ack);
    for a in &answers {
        assert_eq!(a.status(), 200, "{a:?}");
        let connection = a.header("connection").unwrap_or("");
        assert!(!connection.eq_ignore_ascii_case("close"), "{a:?}");
    }
    assert_eq!(lab.stats().http_requests, 5);
}

/// A TCP connection that carries polls joins no namespace itself (the session does): its own
/// handshake timer must not cut a GET held on it. (Engine.IO holds a poll up to
/// pingInterval, and a browser reuses a keep-alive connection well past 45 s.)
#[test]
fn a_held_poll_outlives_the_handshake_timeout_of_its_connection() {
    const HANDSHAKE: Duration = Duration::from_millis(300);
    let mut lab = Lab::with(ServerConfig {
        handshake_timeout: HANDSHAKE,
        ..quiet_config()
    });
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let mut held = lab.hold(&peer, "");
    thread::sleep(HANDSHAKE * 3);
    let to = sid.clone();
    lab.run(move |io| io.emit(&to, "late", vec![]).expect("emit late"));
    assert_eq!(held.answer("the held poll").text(), r#"42["late"]"#);
    lab.kept.extend(lab.seen.try_iter());
    assert!(lab.kept.is_empty(), "{:?}", lab.kept);
}

// =============================================================================================
// The upgrade (Engine.IO v4, "Upgrade")
// =============================================================================================

/// The whole upgrade: the WebSocket names the session (`101`, and no open packet: the
/// session has one); `2probe` is answered `3probe` and the held GET `6`, so the client
/// stops polling; `5` moves the session: what was queued meanwhile (a binary event too)
/// comes over the WebSocket, and so does everything after; a poll is now refused.
#[test]
fn the_upgrade_probes_then_moves_the_session_to_the_websocket() {
    let lab = Lab::start();
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let mut held = lab.hold(&peer, "");
    let (mut ws, res) = SioPeer::upgrade_with(lab.addr(), &sio_upgrade(&peer.sid));
    assert_eq!(res.status, 101);
    ws.send_text("2probe");
    // The first message after the 101: no open packet came before it.
    assert_eq!(ws.expect_text("the probe's answer"), "3probe");
    assert_eq!(held.answer("the held poll").text(), "6");
    // Queued while the client switches: no poll is held to take it.
    let to = sid.clone();
    lab.run(move |io| {
        io.emit(&to, "queued", vec![json!(1)]).expect("emit queued");
        let bin = Emit::new("bin").binary(vec![4, 5]);
        io.send(&to, bin).expect("emit bin");
    });
    ws.send_text("5");
    assert_eq!(ws.expect_text("what was queued"), r#"42["queued",1]"#);
    let text = ws.expect_text("the queued binary event");
    assert_eq!(
        json_after(&text, "451-"),
        json!(["bin", {"_placeholder": true, "num": 0}])
    );
    assert_eq!(ws.expect_binary("its attachment"), vec![4, 5]);
    let to = sid.clone();
    lab.run(move |io| io.emit(&to, "after", vec![]).expect("emit after"));
    assert_eq!(ws.expect_text("an emit after 5"), r#"42["after"]"#);
    assert_eq!(ws.round_trip("/", 9, &json!(["echo", "ws"])), json!(["ws"]));
    assert_refused(&peer.get(), 3, "Bad request");
    assert!(lab.connected(&sid));
}

/// The `6` that ends a poll during the probe is for the polling transport: when no poll was
/// held to take it, it is not carried over to the WebSocket with what else waited.
#[test]
fn the_probe_noop_does_not_follow_onto_the_websocket() {
    let lab = Lab::start();
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let (mut ws, _) = SioPeer::upgrade_with(lab.addr(), &sio_upgrade(&peer.sid));
    ws.send_text("2probe");
    assert_eq!(ws.expect_text("the probe's answer"), "3probe");
    ws.send_text("5");
    lab.run(move |io| io.emit(&sid, "first", vec![]).expect("emit first"));
    assert_eq!(
        ws.expect_text("the first message after 5"),
        r#"42["first"]"#
    );
}

/// A session that ends while a WebSocket probes it takes that WebSocket with it, at once:
/// neither the upgrade timeout nor the handshake timeout is left to close it.
#[test]
fn a_session_that_ends_while_probed_closes_the_probing_websocket() {
    let mut lab = Lab::with(ServerConfig {
        upgrade_timeout: Duration::from_secs(30),
        ..quiet_config()
    });
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let (mut ws, _) = SioPeer::upgrade_with(lab.addr(), &sio_upgrade(&peer.sid));
    ws.send_text("2probe");
    assert_eq!(ws.expect_text("the probe's answer"), "3probe");
    let started = Instant::now();
    assert_ok(&peer.post(b"1"));
    assert_eq!(lab.reason(&sid), reasons::TRANSPORT_CLOSE);
    let ending = ws.ending("the probing WebSocket");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "closed after {took:?} ({ending:?})"
    );
}

/// A WebSocket that names a session the server does not know: `400` code 1, closed.
#[test]
fn an_upgrade_for_an_unknown_sid_is_400() {
    let lab = Lab::start();
    let request = sio_upgrade("AAAAAAAAAAAAAAAAAAAA");
    let (mut stream, res, body, _) = http_exchange(lab.addr(), request.as_bytes());
    assert_eq!(res.status, 400, "{res:?}");
    let got: Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_eq!(got, json!({"code": 1, "message": "Session ID unknown"}));
    let mut rest = Vec::new();
    use std::io::Read;
    stream.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    let end = stream.read_to_end(&mut rest);
    assert!(
        end.is_ok() || end.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "closed"
    );
    assert!(rest.is_empty(), "{rest:?}");
}

/// An upgrade that probes and never sends `5` is dropped after `upgrade_timeout`; the
/// session was never moved: it goes on by poll, and may upgrade again.
#[test]
fn an_abandoned_upgrade_is_dropped_and_the_session_stays_on_polling() {
    const UPGRADE: Duration = Duration::from_millis(300);
    let lab = Lab::with(ServerConfig {
        upgrade_timeout: UPGRADE,
        ..quiet_config()
    });
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let mut held = lab.hold(&peer, "");
    let started = Instant::now();
    let (mut ws, _) = SioPeer::upgrade_with(lab.addr(), &sio_upgrade(&peer.sid));
    ws.send_text("2probe");
    assert_eq!(ws.expect_text("the probe's answer"), "3probe");
    assert_eq!(held.answer("the held poll").text(), "6");
    let ending = ws.ending("the abandoned upgrade");
    let took = started.elapsed();
    assert!(
        took >= UPGRADE,
        "not before upgrade_timeout: {took:?} ({ending:?})"
    );
    assert!(lab.connected(&sid));
    assert_ok(&peer.post(b"421[\"echo\",\"still\"]"));
    assert_eq!(peer.get().text(), r#"431["still"]"#);
    // A second upgrade is taken.
    let (mut ws, _) = SioPeer::upgrade_with(lab.addr(), &sio_upgrade(&peer.sid));
    ws.send_text("2probe");
    assert_eq!(ws.expect_text("the second probe's answer"), "3probe");
}

// =============================================================================================
// The server ends a socket over polling
// =============================================================================================

/// `io.disconnect(sid)`: `41` in one poll, Engine.IO's `1` in the next, then the session is
/// unknown. (socket.io-client reads a payload's close before its other packets: `41\x1e1`
/// would reach it as `transport close`, and it would reconnect.)
#[test]
fn a_server_disconnect_is_41_then_1_in_a_poll_of_its_own() {
    let mut lab = Lab::start();
    // With a poll held when it happens...
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let mut held = lab.hold(&peer, "");
    let target = sid.clone();
    lab.run(move |io| io.disconnect(&target));
    assert_eq!(held.answer("the held poll").text(), "41");
    assert_eq!(lab.reason(&sid), reasons::SERVER_NAMESPACE_DISCONNECT);
    assert_eq!(peer.get().text(), "1");
    assert_refused(&peer.get(), 1, "Session ID unknown");
    // ...and with none.
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let target = sid.clone();
    lab.run(move |io| io.disconnect(&target));
    assert_eq!(lab.reason(&sid), reasons::SERVER_NAMESPACE_DISCONNECT);
    assert_eq!(peer.get().text(), "41");
    assert_eq!(peer.get().text(), "1");
    assert_refused(&peer.get(), 1, "Session ID unknown");
    assert_eq!(lab.stats().polling_sessions, 0);
}

// =============================================================================================
// CORS (`ServerConfig::cors_origins`, as Socket.IO's `cors.origin`)
// =============================================================================================

fn origin(o: &str) -> String {
    format!("Origin: {o}\r\n")
}

fn cors_config() -> ServerConfig {
    ServerConfig {
        cors_origins: vec![ORIGIN.into()],
        ..quiet_config()
    }
}

/// By default no origin is allowed: no `Access-Control-*` header, and a preflight is not a
/// method Engine.IO takes.
#[test]
fn without_cors_origins_no_access_control_headers_and_options_is_400() {
    let lab = Lab::start();
    let mut conn = HttpConn::connect(lab.addr());
    let open = conn.request("GET", POLLING, b"", &origin(ORIGIN));
    assert_eq!(open.status(), 200);
    assert_eq!(open.cors(), Vec::<String>::new(), "{open:?}");
    let extra = format!("{}Access-Control-Request-Method: POST\r\n", origin(ORIGIN));
    let pre = conn.request("OPTIONS", POLLING, b"", &extra);
    assert_refused(&pre, 2, "Bad handshake method");
    assert_eq!(pre.cors(), Vec::<String>::new(), "{pre:?}");
}

/// An allowed origin gets the two headers on every answer: the handshake, a POST, and a
/// GET that was held (its headers were kept while it waited).
#[test]
fn an_allowed_origin_gets_cors_headers_on_every_answer() {
    let lab = Lab::with(cors_config());
    let allowed = |a: &Answer| {
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some(ORIGIN),
            "{a:?}"
        );
        assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
    };
    let mut conn = HttpConn::connect(lab.addr());
    let open = conn.request("GET", POLLING, b"", &origin(ORIGIN));
    allowed(&open);
    let data = json_after(&open.text(), "0");
    let peer = PollingPeer {
        addr: lab.addr(),
        sid: data["sid"].as_str().expect("a sid").to_string(),
        open: data,
    };
    let post = conn.request("POST", &peer.query(), b"40", &origin(ORIGIN));
    assert_ok(&post);
    allowed(&post);
    let reply = conn.request("GET", &peer.query(), b"", &origin(ORIGIN));
    allowed(&reply);
    let sid = json_after(&reply.text(), "40")["sid"]
        .as_str()
        .expect("a sid")
        .to_string();
    let mut held = lab.hold(&peer, &origin(ORIGIN));
    lab.run(move |io| io.emit(&sid, "late", vec![]).expect("emit late"));
    let late = held.answer("the held poll");
    assert_eq!(late.text(), r#"42["late"]"#);
    allowed(&late);
}

/// An origin not in the list gets no CORS header (the browser then hides the answer from
/// the page); the server still answers, as Engine.IO does.
#[test]
fn another_origin_gets_no_cors_headers() {
    let lab = Lab::with(cors_config());
    let mut conn = HttpConn::connect(lab.addr());
    let open = conn.request("GET", POLLING, b"", &origin(OTHER_ORIGIN));
    assert_eq!(open.status(), 200);
    assert_eq!(open.cors(), Vec::<String>::new(), "{open:?}");
    let data = json_after(&open.text(), "0");
    let query = format!("{POLLING}&sid={}", data["sid"].as_str().expect("a sid"));
    let post = conn.request("POST", &query, b"40", &origin(OTHER_ORIGIN));
    assert_eq!(post.cors(), Vec::<String>::new(), "{post:?}");
    let pre = conn.request("OPTIONS", POLLING, b"", &origin(OTHER_ORIGIN));
    assert_refused(&pre, 2, "Bad handshake method");
}

/// The preflight a browser sends before a cross-origin POST with `Content-Type:
/// text/plain;charset=UTF-8`: `204`, the methods and the headers asked for.
#[test]
fn a_preflight_from_an_allowed_origin_is_204() {
    let lab = Lab::with(cors_config());
    let extra = format!(
        "{}Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n",
        origin(ORIGIN)
    );
    let pre = HttpConn::connect(lab.addr()).request("OPTIONS", POLLING, b"", &extra);
    assert_eq!(pre.status(), 204, "{pre:?}");
    assert!(pre.body.is_empty());
    assert_eq!(pre.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
    let methods = pre.header("access-control-allow-methods").unwrap_or("");
    let methods: Vec<&str> = methods.split(',').map(str::trim).collect();
    assert!(
        methods.contains(&"GET") && methods.contains(&"POST"),
        "{pre:?}"
    );
    assert_eq!(
        pre.header("access-control-allow-headers"),
        Some("content-type")
    );
}

/// The WebSocket that carries an upgraded session has joined no namespace itself (its
/// sockets are the session's): its own handshake timer must not end it.
#[test]
fn an_upgraded_session_outlives_the_handshake_timeout() {
    const HANDSHAKE: Duration = Duration::from_millis(300);
    let mut lab = Lab::with(ServerConfig {
        handshake_timeout: HANDSHAKE,
        ..quiet_config()
    });
    let (peer, sid) = PollingPeer::connect(lab.addr());
    let (mut ws, _) = SioPeer::upgrade_with(lab.addr(), &sio_upgrade(&peer.sid));
    ws.send_text("2probe");
    assert_eq!(ws.expect_text("the probe's answer"), "3probe");
    ws.send_text("5");
    thread::sleep(HANDSHAKE * 3);
    lab.kept.extend(lab.seen.try_iter());
    assert!(lab.kept.is_empty(), "{:?}", lab.kept);
    assert!(lab.connected(&sid));
    assert_eq!(
        ws.round_trip("/", 3, &json!(["echo", "later"])),
        json!(["later"])
    );
}
