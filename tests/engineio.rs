//! Engine.IO v4 over WebSocket (lesson 20, `src/transport/engineio.rs`) on a real loop, with
//! `tungstenite` as the client: the open packet and its exact keys, messages, the server's
//! ping and the client's pong keeping the session, a silent client closed with `ping
//! timeout`, and the refusals in Engine.IO's own JSON.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{assert_open_keys, Served, WAIT};
use serde_json::{json, Value};
use socklab::transport::engineio::{EioConfig, EngineIo};
use socklab::wire::http;
use tungstenite::Message;

/// An echo server with a fast heartbeat: a ping every 100 ms, 100 ms to answer.
fn start() -> Served {
    Served::start(|| {
        let config = EioConfig {
            ping_interval: Duration::from_millis(100),
            ping_timeout: Duration::from_millis(100),
            ..EioConfig::default()
        };
        EngineIo::new(config, |_, text| Some(format!("echo {text}"))).server()
    })
}

type Ws = tungstenite::WebSocket<TcpStream>;

fn open(server: &Served, query: &str) -> Ws {
    let stream = TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    let url = format!("ws://{}/engine.io/?{query}", server.addr);
    let (ws, res) = tungstenite::client(url.as_str(), stream).expect("the upgrade");
    assert_eq!(res.status(), 101);
    ws
}

fn text(ws: &mut Ws) -> String {
    match ws.read().expect("a message") {
        Message::Text(t) => t.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

#[test]
fn the_open_packet_then_messages_then_the_heartbeat() {
    let server = start();
    let mut ws = open(&server, "EIO=4&transport=websocket&t=NxJ4x1R");
    let open = text(&mut ws);
    let data: Value =
        serde_json::from_str(open.strip_prefix('0').expect("an open packet")).expect("JSON");
    assert_open_keys(&data, json!([]));
    assert_eq!(data["pingInterval"], json!(100));
    assert_eq!(data["maxPayload"], json!(1_000_000));

    ws.send(Message::text("4hi")).unwrap();
    assert_eq!(text(&mut ws), "4echo hi");
    // Answering three pings keeps the session well past one interval and timeout.
    for _ in 0..3 {
        assert_eq!(text(&mut ws), "2", "a ping");
        ws.send(Message::text("3")).unwrap();
    }
    ws.send(Message::text("4still here")).unwrap();
    loop {
        match text(&mut ws).as_str() {
            "2" => ws.send(Message::text("3")).unwrap(),
            t => {
                assert_eq!(t, "4echo still here");
                break;
            }
        }
    }
    // `1` closes the session.
    ws.send(Message::text("1")).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "the session did not close");
        match ws.read() {
            Ok(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1000),
            Ok(Message::Text(t)) if t.as_str() == "2" => {}
            Ok(other) => panic!("expected the close, got {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("after the close: {e}"),
        }
    }
}

#[test]
fn a_client_that_does_not_answer_the_ping_is_closed() {
    let server = start();
    let mut ws = open(&server, "EIO=4&transport=websocket");
    assert!(text(&mut ws).starts_with('0'));
    let started = Instant::now();
    assert_eq!(text(&mut ws), "2");
    match ws.read().expect("the close") {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 1000);
            assert_eq!(f.reason.as_str(), "ping timeout");
        }
        other => panic!("expected the close, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "not before pingTimeout"
    );
}

#[test]
fn refusals_are_engine_io_json() {
    let server = start();
    for (target, code, message) in [
        (
            "/engine.io/?EIO=3&transport=websocket",
            5,
            "Unsupported protocol version",
        ),
        (
            "/engine.io/?transport=websocket",
            5,
            "Unsupported protocol version",
        ),
        (
            "/engine.io/?EIO=4&transport=polling",
            0,
            "Transport unknown",
        ),
        (
            "/elsewhere/?EIO=4&transport=websocket",
            0,
            "Transport unknown",
        ),
    ] {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all)
            .expect("the answer, then end of file");
        let res = http::parse_response(&all).unwrap().expect("a whole head");
        assert_eq!(res.status, 400, "{target}");
        assert_eq!(res.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_slice(&all[res.head_len..]).expect("JSON");
        assert_eq!(body, json!({"code": code, "message": message}), "{target}");
    }
}
