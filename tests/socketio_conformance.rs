//! The Socket.IO wire of the event server, rule by rule (issue 12): each test is one rule of
//! RFC 6455 (WebSocket), the Engine.IO v4 protocol or the Socket.IO v5 protocol, checked
//! with raw bytes over a real socket against an in-process [`Server`] on 127.0.0.1 (port 0).
//! The peer is `tests/common/sio_peer.rs`: masked frames out, frames read with the codec's
//! client decoder, every wait bounded.
//!
//! | test | the client sends | what must come back |
//! |---|---|---|
//! | `the_upgrade_is_101_with_the_accept_key` | RFC 6455's sample key | `101`, `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=` |
//! | `permessage_deflate_offered_is_not_echoed` | `Sec-WebSocket-Extensions: permessage-deflate` | `101` without `Sec-WebSocket-Extensions`; frames without RSV1 |
//! | `the_open_packet_has_exactly_its_keys` | the upgrade | `0{"sid","upgrades":[],"pingInterval","pingTimeout","maxPayload"}`, a 20-character sid |
//! | `eio_3_is_refused_with_code_5` | `EIO=3` | `400` `{"code":5,"message":"Unsupported protocol version"}`, closed |
//! | `polling_is_refused_with_transport_unknown` | `transport=polling` | `400` `{"code":0,"message":"Transport unknown"}`, closed (long-polling is not implemented yet) |
//! | `a_wrong_path_is_404` | `/chat/` | `404`, closed |
//! | `no_websocket_key_is_400` | no `Sec-WebSocket-Key` | `400`, closed |
//! | `the_server_pings_every_ping_interval_and_pongs_keep_the_connection` | `3` to each `2` | `2` every pingInterval; still served |
//! | `no_pong_within_ping_timeout_closes_the_connection` | nothing after `2` | closed; reason `ping timeout` |
//! | `no_connect_within_the_handshake_timeout_closes_the_connection` | the upgrade, then nothing | closed after the handshake timeout |
//! | `connect_on_root_and_chat_with_auth` | `40{auth}`, `40/chat,{auth}` | `40{"sid","pid","recovered","offset"}`, `40/chat,{...}`; middleware saw each auth |
//! | `an_unknown_namespace_is_refused` | `40/nope,` | `44/nope,{"message":"Invalid namespace"}`; the connection stays |
//! | `a_middleware_refusal_carries_its_message_and_data` | `40/chat,{"refuse":true}` | `44/chat,{"message","data"}` |
//! | `packet_4abc_is_a_parse_error` ... `a_connect_error_from_the_client_is_a_parse_error` | `4abc`, `42{}`, `42abc["x"]`, `42["disconnect"]`, `9`, `44{}` | close 1008 `parse error`; `parse_errors` + 1; reason `parse error` |
//! | `an_unmasked_frame_is_1002` ... `a_new_data_frame_inside_an_open_message_is_1002` | frames that break section 5 | close 1002 |
//! | `invalid_utf8_text_is_1007` | a text frame `ff fe` | close 1007 |
//! | `a_message_over_max_payload_is_1009_from_the_header` | a header declaring maxPayload + 1 bytes, no payload | close 1009 |
//! | `a_close_with_an_invalid_code_is_1002` | close 1005 (reserved) | close 1002 |
//! | `a_ping_is_answered_with_a_pong_of_the_same_bytes` | ping `hello` | pong `hello`; still served |
//! | `a_close_is_echoed` | close 4000 | close 4000, end of file; reason `transport close` |
//! | `the_probe_is_answered` | `2probe` | `3probe` |
//! | `a_client_event_with_an_ack_id_gets_its_ack` | `421["echo",1]` | `431[1]` |
//! | `a_server_emit_with_an_ack_gets_the_client_answer` | `43/chat,N[...]` to `42/chat,N["ask",...]` | the server's callback gets the arguments |
//! | `a_binary_event_from_the_client_arrives_with_its_attachment` | `451-["up",{placeholder 0}]` + a binary frame | the handler gets the bytes as attachment 0 |
//! | `a_binary_emit_from_the_server_is_a_placeholder_and_a_frame` | (server emits bytes) | `451-["down","x",{placeholder 0}]` + a binary frame |
//! | `a_client_disconnect_is_client_namespace_disconnect` | `41` | reason `client namespace disconnect`; close 1000 |
//! | `a_server_disconnect_sends_41` | (`io.disconnect(sid)`) | `41`, close 1000 |
//! | `engineio_close_from_the_client_closes` | `1` | close 1000, end of file; reason `transport close` |
//! | `the_server_stopping_sends_1001_and_no_41` | (the server stops) | close 1001, no `41` before it |
//! | `one_broadcast_reaches_socklab_and_socketio_clients_in_a_room` | both join a room | the same event and offset on both wires; a non-member gets nothing |
//!
//! Each test starts its own server (heartbeats 30 s apart unless the test is about them), so
//! the counters it reads are its own. The lab (the server, the reports its handlers send, the
//! waits on them) is `tests/common/conformance_lab.rs`, shared with `tests/polling_conformance.rs`; this
//! file adds its own handlers (`RootAndChat`).

mod common;
use common::{
    ask, assert_open_packet, frame, http_exchange, quiet_config, raw_peer, read_packet, report,
    socketio_request, upgrade_request, wait_closed, ConformanceLab, Ending, Handlers, Seen,
    SioPeer, MASK, SAMPLE_KEY, WAIT,
};

use std::io::Write;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socklab::events::{reasons, AckError, AckReply, Emit, Io, Refused, ServerConfig};
use socklab::wire::packet::Packet;
use socklab::wire::websocket::{close, encode_frame, Message, Opcode};

// ---------------------------------------------------------------------------------------------
// The lab: a server with handlers that report what they saw
// ---------------------------------------------------------------------------------------------

/// On `/` and `/chat`: middleware reports each auth (and `/chat` refuses `{"refuse":true}`),
/// `echo` acks its arguments, `join` joins the room it names and acks, `up` is reported,
/// and so is each `disconnect`.
struct RootAndChat;

impl Handlers for RootAndChat {
    fn install(io: &mut Io, tx: Sender<Seen>) {
        for ns in ["/", "/chat"] {
            let t = tx.clone();
            io.use_middleware(ns, move |hs| {
                let _ = t.send(Seen::Auth {
                    ns: hs.namespace.clone(),
                    auth: hs.auth.clone(),
                });
                if hs.auth.as_ref().and_then(|a| a.get("refuse")) == Some(&json!(true)) {
                    return Err(Refused::with_data(
                        "not allowed",
                        json!({"why": "asked to be"}),
                    ));
                }
                Ok(())
            });
            let t = tx.clone();
            io.on_connection(ns, move |io, sid| {
                report(io, sid, &t);
                io.on(sid, "join", |io, ev| {
                    let room = ev.args.first().and_then(Value::as_str).unwrap_or("");
                    io.join(&ev.socket, room);
                    io.ack(ev, vec![json!(room)]);
                });
            });
        }
    }
}

type Lab = ConformanceLab<RootAndChat>;

/// Sends `request`, expects `status` with `body` (any body if `None`), then the close; the
/// server counts the refusal.
fn refused(request: &str, status: u16, body: Option<&str>) {
    let lab = Lab::start();
    let (mut stream, res, got, rest) = http_exchange(lab.addr(), request.as_bytes());
    assert_eq!(res.status, status, "{res:?}");
    assert_eq!(res.header("sec-websocket-accept"), None);
    if let Some(body) = body {
        assert_eq!(String::from_utf8_lossy(&got), body);
        assert_eq!(res.header("content-type"), Some("application/json"));
    }
    assert!(rest.is_empty(), "nothing after the response: {rest:?}");
    let after = wait_closed(&mut stream, "after the refusal");
    assert!(after.is_empty(), "nothing after the response: {after:?}");
    assert_eq!(lab.stats().http_refused, 1);
}

/// A masked frame's bytes.
fn masked(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(fin, opcode, payload, Some(MASK), &mut out);
    out
}

/// A connected socket on `/` sends `bytes`: the server closes with `code` (and `reason`, if
/// given), the socket goes with `parse error`, and `parse_errors` counts it.
fn closed_with(bytes: &[u8], code: u16, reason: Option<&str>) {
    let mut lab = Lab::start();
    let (mut peer, sid) = SioPeer::connect(lab.addr(), "/", None);
    let before = lab.stats().parse_errors;
    peer.send_raw(bytes);
    peer.expect_close(&format!("{bytes:02x?}"), code, reason);
    assert_eq!(lab.reason(&sid), reasons::PARSE_ERROR);
    assert_eq!(lab.stats().parse_errors, before + 1);
    assert!(!lab.connected(&sid));
}

/// A Socket.IO packet (Engine.IO text) that is not valid: close 1008 `parse error`.
fn parse_error(text: &str) {
    closed_with(
        &masked(true, Opcode::Text, text.as_bytes()),
        1008,
        Some("parse error"),
    );
}

// =============================================================================================
// The handshake (RFC 6455 4.2; Engine.IO v4, "Handshake")
// =============================================================================================

/// RFC 6455's own example: key `dGhlIHNhbXBsZSBub25jZQ==`, accept
/// `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=` (written here, not computed with the server's function).
#[test]
fn the_upgrade_is_101_with_the_accept_key() {
    let lab = Lab::start();
    let (_, res, body, _) = http_exchange(lab.addr(), socketio_request().as_bytes());
    assert_eq!(res.status, 101);
    assert!(body.is_empty());
    assert_eq!(SAMPLE_KEY, "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(
        res.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert!(res
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert!(res
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")));
    assert_eq!(lab.stats().socketio_connections, 1);
}

/// An extension the server does not take is declined by not naming it in the answer (RFC
/// 6455 9.1); its frames then have RSV1 clear (the client decoder refuses RSV bits).
#[test]
fn permessage_deflate_offered_is_not_echoed() {
    let lab = Lab::start();
    let request = upgrade_request(
        "/socket.io/?EIO=4&transport=websocket",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    let (mut peer, res) = SioPeer::upgrade_with(lab.addr(), &request);
    assert_eq!(res.header("sec-websocket-extensions"), None, "{res:?}");
    let open = peer.expect_text("the open packet, uncompressed");
    assert!(open.starts_with("0{"), "{open}");
}

/// The open packet: exactly these five keys, with these types; the sid is 20 characters
/// of base64url (like Engine.IO's own).
#[test]
fn the_open_packet_has_exactly_its_keys() {
    let lab = Lab::start();
    let (_, data) = SioPeer::open(lab.addr());
    assert_open_packet(&data, json!([]));
}

#[test]
fn eio_3_is_refused_with_code_5() {
    refused(
        &upgrade_request("/socket.io/?EIO=3&transport=websocket", ""),
        400,
        Some(r#"{"code":5,"message":"Unsupported protocol version"}"#),
    );
}

/// Long-polling is not implemented yet: refused as Engine.IO refuses a transport it does
/// not know.
#[test]
fn polling_is_refused_with_transport_unknown() {
    refused(
        &upgrade_request("/socket.io/?EIO=4&transport=polling", ""),
        400,
        Some(r#"{"code":0,"message":"Transport unknown"}"#),
    );
}

#[test]
fn a_wrong_path_is_404() {
    refused(
        &upgrade_request("/chat/?EIO=4&transport=websocket", ""),
        404,
        None,
    );
}

#[test]
fn no_websocket_key_is_400() {
    let request = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                   Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    refused(request, 400, None);
}

// =============================================================================================
// The heartbeat and the timeouts (Engine.IO v4, "Heartbeat"; Socket.IO's connectTimeout)
// =============================================================================================

const FAST_PING: Duration = Duration::from_millis(200);

fn fast_heartbeat() -> ServerConfig {
    ServerConfig {
        ping_interval: FAST_PING,
        ping_timeout: FAST_PING,
        ..ServerConfig::default()
    }
}

/// The server sends `2` every pingInterval (counted from the open packet, then from each
/// pong); a `3` each time keeps the connection, well past pingInterval + pingTimeout.
#[test]
fn the_server_pings_every_ping_interval_and_pongs_keep_the_connection() {
    let mut lab = Lab::with(fast_heartbeat());
    let (mut peer, sid) = SioPeer::connect(lab.addr(), "/", None);
    let mut last = Instant::now();
    for n in 0..4 {
        let text = peer.expect_text(&format!("ping {n}"));
        assert_eq!(text, "2");
        let waited = last.elapsed();
        // The connect took a little of the first interval; timers never fire early.
        if n > 0 {
            assert!(waited >= FAST_PING, "ping {n} after {waited:?}");
        }
        peer.send_text("3");
        last = Instant::now();
    }
    assert!(lab.connected(&sid));
    assert_eq!(
        peer.round_trip("/", 7, &json!(["echo", "alive"])),
        json!(["alive"])
    );
    assert!(lab.kept.iter().all(|s| !matches!(s, Seen::Gone { .. })));
    drop(peer);
    assert_eq!(lab.reason(&sid), reasons::TRANSPORT_CLOSE);
}

/// A `2` left unanswered: the connection is closed once pingTimeout has passed.
#[test]
fn no_pong_within_ping_timeout_closes_the_connection() {
    let mut lab = Lab::with(fast_heartbeat());
    let (mut peer, sid) = SioPeer::connect(lab.addr(), "/", None);
    assert_eq!(peer.expect_text("the ping"), "2");
    let pinged = Instant::now();
    let end = peer.ending("no pong");
    let waited = pinged.elapsed();
    assert!(
        waited >= FAST_PING - Duration::from_millis(20),
        "{waited:?}"
    );
    assert_eq!(lab.reason(&sid), reasons::PING_TIMEOUT);
    eprintln!("no pong: {end:?} after {waited:?}");
}

/// An upgrade and the open packet, then no CONNECT: closed by the handshake timeout
/// (Socket.IO's `connectTimeout`).
#[test]
fn no_connect_within_the_handshake_timeout_closes_the_connection() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let lab = Lab::with(ServerConfig {
        handshake_timeout: TIMEOUT,
        ..quiet_config()
    });
    let started = Instant::now();
    let (mut peer, _) = SioPeer::open(lab.addr());
    let end = peer.ending("no CONNECT");
    let waited = started.elapsed();
    assert!(waited >= TIMEOUT - Duration::from_millis(20), "{waited:?}");
    assert!(waited < WAIT, "{waited:?}");
    eprintln!("no CONNECT: {end:?} after {waited:?}");
    assert_eq!(lab.stats().socketio_connections, 1);
}

// =============================================================================================
// Namespaces (Socket.IO v5, "Connection to a namespace")
// =============================================================================================

/// `40{auth}` and `40/chat,{auth}` on one connection: each answered with its own sid (not
/// the Engine.IO one); each middleware saw its auth.
#[test]
fn connect_on_root_and_chat_with_auth() {
    let mut lab = Lab::start();
    let (mut peer, open) = SioPeer::open(lab.addr());
    let root = peer.join("/", Some(&json!({"token": "a"})));
    let mut keys: Vec<&str> = root
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["offset", "pid", "recovered", "sid"]);
    assert_eq!(root["recovered"], json!(false));
    let sid = root["sid"].as_str().expect("sid");
    assert_eq!(sid.len(), 20);
    assert_ne!(
        Some(sid),
        open["sid"].as_str(),
        "the Socket.IO sid is not Engine.IO's"
    );
    let auth = lab.wait_for("the auth on /", |s| match s {
        Seen::Auth { ns, auth } if ns == "/" => Some(auth.clone()),
        _ => None,
    });
    assert_eq!(auth, Some(json!({"token": "a"})));

    let chat = peer.join("/chat", Some(&json!({"token": "b"})));
    let chat_sid = chat["sid"].as_str().expect("sid");
    assert_ne!(chat_sid, sid);
    let auth = lab.wait_for("the auth on /chat", |s| match s {
        Seen::Auth { ns, auth } if ns == "/chat" => Some(auth.clone()),
        _ => None,
    });
    assert_eq!(auth, Some(json!({"token": "b"})));
    assert!(lab.connected(sid) && lab.connected(chat_sid));
}

/// A namespace nobody registered: CONNECT_ERROR `Invalid namespace`; the connection stays
/// and may join another.
#[test]
fn an_unknown_namespace_is_refused() {
    let lab = Lab::start();
    let (mut peer, _) = SioPeer::open(lab.addr());
    peer.send_text("40/nope,");
    assert_eq!(
        peer.expect_text("the refusal"),
        r#"44/nope,{"message":"Invalid namespace"}"#
    );
    let root = peer.join("/", None);
    assert!(root["sid"].is_string());
    assert_eq!(lab.stats().connects_refused, 1);
}

/// Middleware's `Refused::with_data`: the client gets `message` and `data` (its `err.data`).
#[test]
fn a_middleware_refusal_carries_its_message_and_data() {
    let lab = Lab::start();
    let (mut peer, _) = SioPeer::open(lab.addr());
    peer.send_text(r#"40/chat,{"refuse":true}"#);
    let text = peer.expect_text("the refusal");
    let json = text
        .strip_prefix("44/chat,")
        .unwrap_or_else(|| panic!("{text}"));
    let body: Value = serde_json::from_str(json).expect("JSON");
    assert_eq!(
        body,
        json!({"message": "not allowed", "data": {"why": "asked to be"}})
    );
    assert_eq!(lab.stats().connects_refused, 1);
}

// =============================================================================================
// Malformed packets: close 1008 `parse error`
// =============================================================================================

/// An Engine.IO message whose Socket.IO type is not a digit.
#[test]
fn packet_4abc_is_a_parse_error() {
    parse_error("4abc");
}

/// An EVENT's payload must be an array.
#[test]
fn event_arguments_that_are_an_object_are_a_parse_error() {
    parse_error("42{}");
}

/// Between the type (and namespace) and the array, only an ack id (digits) may come.
#[test]
fn an_ack_id_that_is_not_digits_is_a_parse_error() {
    parse_error(r#"42abc["x"]"#);
}

/// `connect`, `connect_error`, `disconnect`, `disconnecting`, `newListener`,
/// `removeListener` may not be emitted by a client.
#[test]
fn a_reserved_event_name_is_a_parse_error() {
    parse_error(r#"42["disconnect"]"#);
}

/// Engine.IO's types are 0-6; `9` is none of them.
#[test]
fn an_unknown_engineio_type_is_a_parse_error() {
    parse_error("9");
}

/// CONNECT_ERROR (`4`) is the server's to send.
#[test]
fn a_connect_error_from_the_client_is_a_parse_error() {
    parse_error(r#"44{"message":"no"}"#);
}

// =============================================================================================
// WebSocket (RFC 6455, sections 5 and 7)
// =============================================================================================

/// 5.1: a server closes the connection on an unmasked client frame.
#[test]
fn an_unmasked_frame_is_1002() {
    let mut bytes = Vec::new();
    encode_frame(true, Opcode::Text, b"3", None, &mut bytes);
    closed_with(&bytes, close::PROTOCOL_ERROR, None);
}

/// 5.2: RSV1-3 must be 0 unless an extension was agreed (none was).
#[test]
fn rsv_bits_are_1002() {
    let mut bytes = masked(true, Opcode::Text, b"3");
    bytes[0] |= 0x40;
    closed_with(&bytes, close::PROTOCOL_ERROR, None);
}

/// 5.2: opcodes 3-7 and 0xB-0xF are reserved.
#[test]
fn an_unknown_opcode_is_1002() {
    let mut bytes = masked(true, Opcode::Text, b"3");
    bytes[0] = 0x80 | 0x3;
    closed_with(&bytes, close::PROTOCOL_ERROR, None);
}

/// 5.5: a control frame carries at most 125 bytes.
#[test]
fn a_control_frame_over_125_bytes_is_1002() {
    closed_with(
        &masked(true, Opcode::Ping, &[b'p'; 126]),
        close::PROTOCOL_ERROR,
        None,
    );
}

/// 5.5: control frames are never fragmented.
#[test]
fn a_fragmented_control_frame_is_1002() {
    closed_with(
        &masked(false, Opcode::Ping, b"half"),
        close::PROTOCOL_ERROR,
        None,
    );
}

/// 5.4: a continuation frame continues an open message; there is none.
#[test]
fn a_continuation_with_no_message_open_is_1002() {
    closed_with(
        &masked(true, Opcode::Continuation, b"3"),
        close::PROTOCOL_ERROR,
        None,
    );
}

/// 5.4: the fragments of one message may not be interleaved with another data message.
#[test]
fn a_new_data_frame_inside_an_open_message_is_1002() {
    let mut bytes = masked(false, Opcode::Text, b"42[\"echo\"");
    bytes.extend(masked(true, Opcode::Text, b"3"));
    closed_with(&bytes, close::PROTOCOL_ERROR, None);
}

/// 8.1: a text message that is not UTF-8 fails the connection with 1007.
#[test]
fn invalid_utf8_text_is_1007() {
    closed_with(
        &masked(true, Opcode::Text, &[0xff, 0xfe]),
        close::INVALID_PAYLOAD,
        None,
    );
}

/// 7.4.1: a message too big to process is 1009, decided from the header: only the header
/// is sent (declaring maxPayload + 1 bytes), and the close comes without the payload.
#[test]
fn a_message_over_max_payload_is_1009_from_the_header() {
    let mut lab = Lab::start();
    let (mut peer, open) = SioPeer::open(lab.addr());
    let sid = peer.join("/", None)["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let max = open["maxPayload"].as_u64().expect("maxPayload");
    let mut header = vec![0x80 | Opcode::Text as u8, 0x80 | 127];
    header.extend_from_slice(&(max + 1).to_be_bytes());
    header.extend_from_slice(&MASK);
    peer.send_raw(&header);
    peer.expect_close("a header over maxPayload", close::MESSAGE_TOO_BIG, None);
    assert_eq!(lab.reason(&sid), reasons::PARSE_ERROR);
}

/// 7.4.1: 1005 is reserved and never sent in a close frame.
#[test]
fn a_close_with_an_invalid_code_is_1002() {
    closed_with(
        &masked(true, Opcode::Close, &1005u16.to_be_bytes()),
        close::PROTOCOL_ERROR,
        None,
    );
}

/// 5.5.2/5.5.3: a ping is answered with a pong carrying the same bytes; nothing else moves.
#[test]
fn a_ping_is_answered_with_a_pong_of_the_same_bytes() {
    let lab = Lab::start();
    let (mut peer, sid) = SioPeer::connect(lab.addr(), "/", None);
    peer.send_frame(true, Opcode::Ping, b"hello");
    assert_eq!(peer.next(), Some(Message::Pong(b"hello".to_vec())));
    assert_eq!(peer.round_trip("/", 1, &json!(["echo", 5])), json!([5]));
    assert!(lab.connected(&sid));
}

/// 5.5.1: a close frame is answered with a close frame (the same code), then the server
/// closes the TCP connection.
#[test]
fn a_close_is_echoed() {
    let mut lab = Lab::start();
    let (mut peer, sid) = SioPeer::connect(lab.addr(), "/", None);
    let mut payload = 4000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    peer.send_frame(true, Opcode::Close, &payload);
    peer.expect_close("the echoed close", 4000, None);
    assert_eq!(lab.reason(&sid), reasons::TRANSPORT_CLOSE);
}

/// Engine.IO's upgrade probe over WebSocket: `2probe` is answered `3probe`.
#[test]
fn the_probe_is_answered() {
    let lab = Lab::start();
    let (mut peer, _) = SioPeer::open(lab.addr());
    peer.send_text("2probe");
    assert_eq!(peer.expect_text("the probe's answer"), "3probe");
}

// =============================================================================================
// Events, acks, attachments (Socket.IO v5, "Sending and receiving data", "Acknowledgement")
// =============================================================================================

#[test]
fn a_client_event_with_an_ack_id_gets_its_ack() {
    let lab = Lab::start();
    let (mut peer, _) = SioPeer::connect(lab.addr(), "/", None);
    peer.send_text(r#"421["echo",1]"#);
    assert_eq!(peer.expect_text("the ack"), "431[1]");
}

/// The server asks (`42/chat,N["ask","q"]`), the client answers `43/chat,N[...]`, and the
/// server's callback gets the answer's arguments.
#[test]
fn a_server_emit_with_an_ack_gets_the_client_answer() {
    let lab = Lab::start();
    let (mut peer, sid) = SioPeer::connect(lab.addr(), "/chat", None);
    let (tx, rx) = mpsc::channel::<Result<AckReply, AckError>>();
    let sent = ask(&lab.server.handle, move |io| {
        let emit = Emit::new("ask")
            .arg(json!("q"))
            .ack(WAIT, move |_, r| drop(tx.send(r)));
        io.send(&sid, emit)
    });
    assert_eq!(sent, Ok(()));
    let text = peer.expect_text("the server's event");
    let rest = text
        .strip_prefix("42/chat,")
        .unwrap_or_else(|| panic!("{text}"));
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    assert!(digits > 0, "an ack id: {text}");
    let (id, args) = rest.split_at(digits);
    assert_eq!(
        serde_json::from_str::<Value>(args).expect("JSON"),
        json!(["ask", "q"])
    );
    peer.send_text(&format!(r#"43/chat,{id}["a",2]"#));
    let reply = rx.recv_timeout(WAIT).expect("the callback ran");
    assert_eq!(reply.expect("answered").args, vec![json!("a"), json!(2)]);
}

/// `451-[...]` announces one attachment: the next binary frame is it, and the handler gets
/// it as attachment 0, the placeholder where the client put it.
#[test]
fn a_binary_event_from_the_client_arrives_with_its_attachment() {
    let mut lab = Lab::start();
    let (mut peer, _) = SioPeer::connect(lab.addr(), "/", None);
    peer.send_text(r#"451-["up",{"_placeholder":true,"num":0}]"#);
    peer.send_binary(&[1, 2, 3]);
    let got = lab.wait_for("the up event", |s| match s {
        Seen::Event { .. } => Some(s.clone()),
        _ => None,
    });
    assert_eq!(
        got,
        Seen::Event {
            name: "up".into(),
            args: vec![json!({"_placeholder": true, "num": 0})],
            attachments: vec![vec![1, 2, 3]],
        }
    );
}

/// An emit with bytes: `451-[name, args..., placeholder 0]`, then the bytes in a binary
/// frame.
#[test]
fn a_binary_emit_from_the_server_is_a_placeholder_and_a_frame() {
    let lab = Lab::start();
    let (mut peer, sid) = SioPeer::connect(lab.addr(), "/", None);
    let sent = ask(&lab.server.handle, move |io| {
        io.send(
            &sid,
            Emit::new("down").arg(json!("x")).binary(vec![9, 8, 7]),
        )
    });
    assert_eq!(sent, Ok(()));
    let text = peer.expect_text("the binary event");
    let json = text
        .strip_prefix("451-")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        serde_json::from_str::<Value>(json).expect("JSON"),
        json!(["down", "x", {"_placeholder": true, "num": 0}])
    );
    assert_eq!(peer.expect_binary("the attachment"), vec![9, 8, 7]);
}

// =============================================================================================
// Leaving (Socket.IO v5, "Disconnection from a namespace"; Engine.IO `1`)
// =============================================================================================

/// `41` leaves `/`; with no namespace left, the server closes the connection (1000).
#[test]
fn a_client_disconnect_is_client_namespace_disconnect() {
    let mut lab = Lab::start();
    let (mut peer, sid) = SioPeer::connect(lab.addr(), "/", None);
    peer.send_text("41");
    assert_eq!(lab.reason(&sid), reasons::CLIENT_NAMESPACE_DISCONNECT);
    peer.expect_close("after 41", close::NORMAL, None);
}

/// `io.disconnect(sid)`: the client is told `41`, then the connection closes (1000).
#[test]
fn a_server_disconnect_sends_41() {
    let mut lab = Lab::start();
    let (mut peer, sid) = SioPeer::connect(lab.addr(), "/", None);
    let target = sid.clone();
    ask(&lab.server.handle, move |io| io.disconnect(&target));
    assert_eq!(peer.expect_text("the DISCONNECT"), "41");
    peer.expect_close("after 41", close::NORMAL, None);
    assert_eq!(lab.reason(&sid), reasons::SERVER_NAMESPACE_DISCONNECT);
}

/// Engine.IO's CLOSE from the client: the server closes (1000).
#[test]
fn engineio_close_from_the_client_closes() {
    let mut lab = Lab::start();
    let (mut peer, sid) = SioPeer::connect(lab.addr(), "/", None);
    peer.send_text("1");
    peer.expect_close("after 1", close::NORMAL, None);
    assert_eq!(lab.reason(&sid), reasons::TRANSPORT_CLOSE);
}

/// A server stopping says 1001 (going away), not `41`: a `41` would tell socket.io-client
/// not to reconnect.
#[test]
fn the_server_stopping_sends_1001_and_no_41() {
    let lab = Lab::start();
    let (mut peer, _) = SioPeer::connect(lab.addr(), "/", None);
    lab.server.handle.stop().expect("the server is running");
    match peer.ending("the server stopping") {
        Ending::Close(Some((code, _))) => assert_eq!(code, close::GOING_AWAY),
        other => panic!("expected close 1001, got {other:?}"),
    }
    // The server lingers for our FIN (up to its stop grace) before its thread ends.
    drop(peer);
    lab.server.stop().expect("the server thread ends cleanly");
}

// =============================================================================================
// Both wires in one room
// =============================================================================================

/// A socklab client and a Socket.IO client join room `r`; a third (Socket.IO) does not. One
/// broadcast to `r` reaches both members, each in its wire's form, with the same offset;
/// the third gets nothing (its next message is the answer to its own later event).
#[test]
fn one_broadcast_reaches_socklab_and_socketio_clients_in_a_room() {
    let lab = Lab::start();
    let (mut raw, _) = raw_peer(lab.addr());
    raw.write_all(&frame(&Packet::Event {
        ns: "/".into(),
        name: "join".into(),
        args: vec![json!("r")],
        attachments: vec![],
        id: Some(1),
        offset: None,
    }))
    .expect("join r");
    assert!(matches!(
        read_packet(&mut raw),
        Ok(Some(Packet::Ack { id: 1, .. }))
    ));
    let (mut sio, _) = SioPeer::connect(lab.addr(), "/", None);
    assert_eq!(sio.round_trip("/", 1, &json!(["join", "r"])), json!(["r"]));
    let (mut outsider, _) = SioPeer::connect(lab.addr(), "/", None);

    lab.server
        .handle
        .broadcast("/", Some("r"), "news", vec![json!("hi"), json!({"n": 1})])
        .expect("the server is running");
    let offset = match read_packet(&mut raw) {
        Ok(Some(Packet::Event {
            name, args, offset, ..
        })) => {
            assert_eq!(name, "news");
            assert_eq!(args, vec![json!("hi"), json!({"n": 1})]);
            offset.expect("a broadcast carries its offset")
        }
        other => panic!("expected the broadcast, got {other:?}"),
    };
    assert_eq!(
        sio.expect_text("the broadcast"),
        format!(r#"42["news","hi",{{"n":1}},"{offset}"]"#)
    );
    assert_eq!(
        outsider.round_trip("/", 3, &json!(["echo", "only this"])),
        json!(["only this"])
    );
}
