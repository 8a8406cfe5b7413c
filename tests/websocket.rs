//! The WebSocket server of lesson 19 (`src/transport/websocket.rs`) on a real loop:
//!
//! - `tungstenite`, a real client, upgrades, sends text and binary, pings, and closes;
//! - raw bytes break each rule the server enforces, and each gets its close code, then the
//!   server's end of file: an unmasked frame (1002), RSV bits (1002), an unknown opcode
//!   (1002), a fragmented ping (1002), a continuation with no message (1002), text that is
//!   not UTF-8 (1007), a frame over the limit, refused from its header (1009);
//! - requests that are not upgrades get `400`; a compression offer is declined.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Served, WAIT};
use socklab::transport::websocket::{Limits, WsServer};
use socklab::wire::http;
use socklab::wire::websocket::{self, Decoder, Message, Opcode, Role};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;

/// An echo server whose messages may be 1,000 bytes at most.
fn start() -> Served {
    Served::start(|| {
        let limits = Limits {
            max_message: 1000,
            ..Limits::default()
        };
        WsServer::new(limits, |m: &Message| Some(m.clone()))
    })
}

fn connect(server: &Served) -> TcpStream {
    let s = TcpStream::connect(server.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    s
}

#[test]
fn tungstenite_upgrades_echoes_pings_and_closes() {
    let server = start();
    let url = format!("ws://{}/chat", server.addr);
    let (mut ws, response) =
        tungstenite::client(url.as_str(), connect(&server)).expect("the upgrade");
    assert_eq!(response.status(), 101);
    ws.send(tungstenite::Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("hello"));
    ws.send(tungstenite::Message::binary(vec![0u8, 1, 2, 255]))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        tungstenite::Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.send(tungstenite::Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        tungstenite::Message::Pong(b"are you there".to_vec().into())
    );
    // A message of exactly the limit passes.
    let big = "x".repeat(1000);
    ws.send(tungstenite::Message::text(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text(big));
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    // The server answers with the same code, then closes.
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Normal),
            Ok(other) => panic!("expected the close answer, got {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("after the close: {e}"),
        }
    }
}

/// Upgrades a raw connection by hand; returns it with whatever came after the `101`.
fn raw_upgrade(server: &Served) -> (TcpStream, Vec<u8>) {
    let mut s = connect(server);
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    )
    .unwrap();
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    let res = loop {
        if let Some(res) = http::parse_response(&kept).expect("an HTTP response") {
            break res;
        }
        let n = s.read(&mut buf).expect("read the 101");
        assert!(n > 0, "end of file before the 101");
        kept.extend_from_slice(&buf[..n]);
    };
    assert_eq!(res.status, 101);
    assert_eq!(
        res.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(
        res.header("sec-websocket-extensions"),
        None,
        "compression declined"
    );
    kept.drain(..res.head_len);
    (s, kept)
}

/// Reads the server's close frame and then its end of file; returns the close code.
fn close_code(s: &mut TcpStream, mut kept: Vec<u8>) -> u16 {
    let mut d = Decoder::new(Role::Client, 1 << 20);
    let mut buf = [0u8; 4096];
    loop {
        let mut got = None;
        let used = d.decode(&kept, |m| {
            got = Some(m);
            false
        });
        kept.drain(..used);
        match got {
            Some(Ok(Message::Close(Some((code, _))))) => {
                let n = s.read(&mut buf).expect("read to the end");
                assert_eq!(n, 0, "end of file after the close frame");
                return code;
            }
            Some(other) => panic!("expected a close frame, got {other:?}"),
            None => {}
        }
        let n = s.read(&mut buf).expect("read the close frame");
        assert!(n > 0, "end of file before a close frame");
        kept.extend_from_slice(&buf[..n]);
    }
}

fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [9, 8, 7, 6];
    let mut v = vec![b0, 0x80 | payload.len() as u8];
    v.extend_from_slice(&key);
    let at = v.len();
    v.extend_from_slice(payload);
    websocket::apply_mask(&mut v[at..], key, 0);
    v
}

#[test]
fn every_broken_rule_gets_its_close_code() {
    let server = start();
    let too_big = {
        let mut v = vec![0x82, 0xfe, 0x03, 0xe9]; // binary, masked, 1,001 bytes
        v.extend_from_slice(&[1, 2, 3, 4]); // the key; no payload follows
        v
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("an unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("RSV1 set", masked(0xc1, b"hi"), 1002),
        ("opcode 3", masked(0x83, b"hi"), 1002),
        ("a ping without FIN", masked(0x09, b""), 1002),
        ("a continuation with no message", masked(0x80, b"x"), 1002),
        (
            "a new message inside one",
            [masked(0x01, b"a"), masked(0x81, b"b")].concat(),
            1002,
        ),
        ("text that is not UTF-8", masked(0x81, &[0xc3, 0x28]), 1007),
        ("a close of 1 byte", masked(0x88, &[0x03]), 1002),
        ("a close with code 1005", masked(0x88, &[0x03, 0xed]), 1002),
        ("a message over the limit", too_big, 1009),
    ];
    for (what, bytes, want) in cases {
        let (mut s, kept) = raw_upgrade(&server);
        s.write_all(&bytes).unwrap();
        assert_eq!(close_code(&mut s, kept), want, "{what}");
    }
}

#[test]
fn a_frame_sent_with_the_upgrade_request_is_read() {
    let server = start();
    let mut s = connect(&server);
    let mut bytes = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    let mut frame = Vec::new();
    websocket::encode_frame(true, Opcode::Text, b"early", Some([1, 2, 3, 4]), &mut frame);
    bytes.extend_from_slice(&frame);
    s.write_all(&bytes).unwrap();
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    let want: &[u8] = b"\x81\x05early";
    while !kept.ends_with(want) {
        let n = s.read(&mut buf).expect("read the 101 and the echo");
        assert!(n > 0, "end of file: {:?}", String::from_utf8_lossy(&kept));
        kept.extend_from_slice(&buf[..n]);
    }
    assert!(kept.starts_with(b"HTTP/1.1 101 "));
}

#[test]
fn requests_that_are_not_upgrades_get_400() {
    let server = start();
    for request in [
        &b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
        b"POST / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ] {
        let mut s = connect(&server);
        s.write_all(request).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all)
            .expect("the answer, then end of file");
        let res = http::parse_response(&all).unwrap().expect("a whole head");
        assert_eq!(res.status, 400, "{}", String::from_utf8_lossy(request));
    }
}
