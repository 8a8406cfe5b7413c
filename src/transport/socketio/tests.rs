use super::*;
use serde_json::json;

const UPGRADE: &str = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n\
    Upgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn masked(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    websocket::encode_frame(true, opcode, payload, Some([1, 2, 3, 4]), &mut out);
    out
}

/// Everything `bytes` amounts to, owned (an EVENT as a `Packet`) so that it can be kept.
fn read_all(r: &mut SioReader, bytes: &[u8]) -> Vec<Got<'static>> {
    let mut got = Vec::new();
    let used = r.read(bytes, &mut Vec::new(), |g| {
        got.push(g.into_owned());
        true
    });
    assert_eq!(used, bytes.len());
    got
}

#[test]
fn an_upgrade_then_an_event_with_an_attachment() {
    let mut r = SioReader::new(Limits::default());
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend(masked(Opcode::Text, b"3"));
    bytes.extend(masked(
        Opcode::Text,
        br#"451-/chat,7["up",{"_placeholder":true,"num":0}]"#,
    ));
    bytes.extend(masked(Opcode::Binary, &[9, 9]));
    let got = read_all(&mut r, &bytes);
    assert!(
        matches!(&got[0], Got::Upgraded { answer: b, sid: None } if b.starts_with(b"HTTP/1.1 101"))
    );
    assert_eq!(got[1], Got::Packet(Packet::Pong));
    assert_eq!(
        got[2],
        Got::Packet(Packet::Event {
            ns: "/chat".into(),
            name: "up".into(),
            args: vec![json!({"_placeholder": true, "num": 0})],
            attachments: vec![vec![9, 9]],
            id: Some(7),
            offset: None,
        })
    );
}

#[test]
fn a_head_in_pieces_waits() {
    let mut r = SioReader::new(Limits::default());
    let half = &UPGRADE.as_bytes()[..40];
    assert_eq!(r.read(half, &mut Vec::new(), |_| true), 0);
    assert!(!r.is_open());
    assert_eq!(read_all(&mut r, UPGRADE.as_bytes()).len(), 1);
    assert!(r.is_open());
}

#[test]
fn refusals_and_broken_rules_end_the_connection() {
    let refused: [&[u8]; 3] = [
        b"\x16\x03\x01 not http\r\n\r\n",
        b"GET /socket.io/?EIO=3&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
    ];
    for bytes in refused {
        let mut r = SioReader::new(Limits::default());
        let got = read_all(&mut r, bytes);
        assert!(
            matches!(
                &got[..],
                [Got::End {
                    why: End::Refused,
                    ..
                }]
            ),
            "{got:?}"
        );
    }
    for text in [
        "4abc",
        "42{}",
        "42abc[\"x\"]",
        r#"42["disconnect"]"#,
        "9",
        "44{}",
    ] {
        let mut r = SioReader::new(Limits::default());
        let mut bytes = UPGRADE.as_bytes().to_vec();
        bytes.extend(masked(Opcode::Text, text.as_bytes()));
        bytes.extend(masked(Opcode::Text, b"3")); // not read: the connection ended
        let got = read_all(&mut r, &bytes);
        assert_eq!(got.len(), 2, "{text}: {got:?}");
        assert!(
            matches!(
                got[1],
                Got::End {
                    why: End::Broken(_),
                    ..
                }
            ),
            "{text}"
        );
    }
    let mut r = SioReader::new(Limits::default());
    let mut bytes = UPGRADE.as_bytes().to_vec();
    let mut unmasked = Vec::new();
    websocket::encode_frame(true, Opcode::Text, b"3", None, &mut unmasked);
    bytes.extend(unmasked);
    let got = read_all(&mut r, &bytes);
    let Got::End { bytes, .. } = &got[1] else {
        panic!("{got:?}")
    };
    assert_eq!(&bytes[2..4], &close::PROTOCOL_ERROR.to_be_bytes());
}

#[test]
fn requests_that_are_not_upgrades_go_to_the_server_one_by_one() {
    let mut r = SioReader::new(Limits::default());
    let two = b"GET / HTTP/1.1\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nab";
    let mut got = Vec::new();
    let used = r.read(two, &mut Vec::new(), |g| {
        got.push(g.into_owned());
        true
    });
    // The second body is one byte short: only the first request is used.
    assert_eq!(used, "GET / HTTP/1.1\r\n\r\n".len());
    assert!(matches!(&got[..], [Got::Request { req, body }] if req.path == "/" && body.is_empty()));
    let mut got = Vec::new();
    let rest = b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    let used = r.read(rest, &mut Vec::new(), |g| {
        got.push(g.into_owned());
        true
    });
    assert_eq!(used, rest.len());
    assert!(
        matches!(&got[..], [Got::Request { req, body }] if req.method == "POST" && body == b"abc")
    );
    assert!(!r.is_open());
}

#[test]
fn pings_and_probes_are_answered_here() {
    let mut r = SioReader::new(Limits::default());
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend(masked(Opcode::Ping, b"hi"));
    bytes.extend(masked(Opcode::Text, b"2probe"));
    let got = read_all(&mut r, &bytes);
    assert_eq!(got[1], Got::Reply(frame(Opcode::Pong, b"hi")));
    assert_eq!(got[2], Got::Probe(frame(Opcode::Text, b"3probe")));
}
