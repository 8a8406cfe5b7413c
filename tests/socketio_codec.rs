//! The event layer's packets on the Socket.IO wire (`src/wire/sio_packet.rs`): each packet as
//! Socket.IO writes it, attachments as placeholders and binary frames, every WebSocket length
//! form, and a client's packets mapped back to the event layer's, limits included.

use serde_json::json;
use socklab::wire::packet::{Limits, Packet};
use socklab::wire::sio_packet::{check, encode, to_packet, MapError, SHUTTING_DOWN};
use socklab::wire::{socketio, websocket};

/// The payloads of the frames in `bytes` (server frames: unmasked).
fn payloads(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut d = websocket::Decoder::new(websocket::Role::Client, 1 << 24);
    let mut out = Vec::new();
    let used = d.decode(bytes, |m| {
        out.push(match m.expect("a frame") {
            websocket::Message::Text(t) => (1, t.into_bytes()),
            websocket::Message::Binary(b) => (2, b),
            other => panic!("{other:?}"),
        });
        true
    });
    assert_eq!(used, bytes.len());
    out
}

fn text(p: &Packet) -> String {
    let mut out = Vec::new();
    encode(p, &mut out);
    let mut frames = payloads(&out);
    assert_eq!(frames.len(), 1);
    String::from_utf8(frames.remove(0).1).unwrap()
}

#[test]
fn the_packets_as_socket_io_writes_them() {
    let hello = Packet::hello(json!({"sid": "abc", "upgrades": []}));
    assert_eq!(text(&hello), r#"0{"sid":"abc","upgrades":[]}"#);
    assert_eq!(text(&Packet::Ping), "2");
    let connect = Packet::Connect {
        ns: "/chat".into(),
        data: Some(json!({"sid": "x"})),
    };
    assert_eq!(text(&connect), r#"40/chat,{"sid":"x"}"#);
    let refused = Packet::ConnectError {
        ns: "/".into(),
        message: "no".into(),
        data: Some(json!({"why": 1})),
    };
    // (serde_json writes an object's keys in order)
    assert_eq!(text(&refused), r#"44{"data":{"why":1},"message":"no"}"#);
    let bye = Packet::Disconnect {
        ns: "/chat".into(),
        reason: Some("server namespace disconnect".into()),
    };
    assert_eq!(text(&bye), "41/chat,");
    let event = Packet::Event {
        ns: "/".into(),
        name: "chat message".into(),
        args: vec![json!("hi")],
        attachments: vec![],
        id: Some(12),
        offset: Some(7),
    };
    assert_eq!(text(&event), r#"4212["chat message","hi","7"]"#);
    let ack = Packet::Ack {
        ns: "/chat".into(),
        id: 3,
        args: vec![],
        attachments: vec![],
    };
    assert_eq!(text(&ack), "43/chat,3[]");
}

#[test]
fn shutting_down_is_not_written_as_a_disconnect() {
    let mut out = Vec::new();
    let p = Packet::Disconnect {
        ns: "/".into(),
        reason: Some(SHUTTING_DOWN.into()),
    };
    encode(&p, &mut out);
    assert!(out.is_empty());
}

#[test]
fn attachments_follow_as_binary_frames_with_placeholders_appended() {
    let p = Packet::Event {
        ns: "/".into(),
        name: "file".into(),
        args: vec![json!("a.bin"), socketio::placeholder(1)],
        attachments: vec![vec![1, 2], vec![3]],
        id: None,
        offset: None,
    };
    let mut out = Vec::new();
    encode(&p, &mut out);
    let frames = payloads(&out);
    assert_eq!(frames.len(), 3);
    assert_eq!(
        String::from_utf8(frames[0].1.clone()).unwrap(),
        r#"452-["file","a.bin",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(frames[1], (2, vec![1, 2]));
    assert_eq!(frames[2], (2, vec![3]));
}

#[test]
fn lengths_over_125_and_65535_get_the_longer_headers() {
    for n in [0, 1, 120, 125, 126, 200, 65_535, 65_536, 70_000] {
        let p = Packet::Event {
            ns: "/".into(),
            name: "x".into(),
            args: vec![json!("y".repeat(n))],
            attachments: vec![],
            id: None,
            offset: None,
        };
        let t = text(&p);
        assert_eq!(t.len(), n + r#"42["x",""]"#.len(), "{n}");
    }
}

#[test]
fn client_packets_map_to_the_event_layer() {
    let limits = Limits::default();
    let p = socketio::decode(r#"2/chat,5["join","lobby"]"#).unwrap();
    assert_eq!(
        to_packet(p, vec![], &limits),
        Ok(Packet::Event {
            ns: "/chat".into(),
            name: "join".into(),
            args: vec![json!("lobby")],
            attachments: vec![],
            id: Some(5),
            offset: None,
        })
    );
    let long = format!(r#"2["{}"]"#, "n".repeat(129));
    let p = socketio::decode(&long).unwrap();
    assert_eq!(to_packet(p, vec![], &limits), Err(MapError::LongName(129)));
    let p = socketio::decode(r#"4{"message":"x"}"#).unwrap();
    assert_eq!(to_packet(p, vec![], &limits), Err(MapError::ServerOnly));
    let p = socketio::decode(r#"517-["x"]"#).unwrap();
    assert_eq!(
        check(p.attachments, &limits),
        Err(MapError::TooManyAttachments(17))
    );
}
