use super::*;
use crate::wire::socketio::placeholder;

fn broadcast(attachments: Vec<Vec<u8>>) -> Message {
    let mut args = vec![json!({"text": "hi"})];
    args.extend((0..attachments.len()).map(placeholder));
    Message {
        uid: "node-a".into(),
        nsp: "/chat".into(),
        body: Body::Broadcast {
            data: EventData {
                event: "chat message".into(),
                args,
                attachments,
            },
            opts: Opts {
                rooms: vec!["lobby".into()],
                except: vec!["x".into()],
                volatile: false,
            },
            request_id: None,
        },
    }
}

fn entry_round_trip(m: &Message) -> Message {
    let fields = m.to_entry();
    let pairs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_slice()))
        .collect();
    Message::from_entry(&pairs, 16).unwrap()
}

#[test]
fn a_broadcast_is_json_in_the_stream_as_the_adapter_writes_it() {
    let m = broadcast(Vec::new());
    let fields = m.to_entry();
    let data: Value = serde_json::from_slice(&fields[3].1).unwrap();
    assert_eq!(
        data,
        json!({"packet": {"type": 2, "data": ["chat message", {"text": "hi"}], "nsp": "/chat"},
               "opts": {"rooms": ["lobby"], "except": ["x"], "flags": {}}})
    );
    assert_eq!(fields[2], ("type", b"3".to_vec()));
    assert_eq!(entry_round_trip(&m), m);
}

#[test]
fn binary_goes_as_base64_msgpack_and_comes_back_as_attachments() {
    let m = broadcast(vec![vec![0, 255, 10], vec![]]);
    let fields = m.to_entry();
    assert_ne!(fields[3].1[0], b'{');
    assert_eq!(entry_round_trip(&m), m);
    let published = Message::from_published(&m.to_published(), 16).unwrap();
    assert_eq!(published, m);
    assert!(Message::from_published(&m.to_published(), 1).is_err());
}

#[test]
fn requests_and_answers_round_trip_on_pubsub() {
    let bodies = [
        Body::FetchSockets {
            opts: Opts::default(),
            request_id: "r1".into(),
        },
        Body::FetchSocketsResponse {
            request_id: "r1".into(),
            sockets: vec![RemoteSocket {
                id: "s1".into(),
                rooms: vec!["s1".into(), "lobby".into()],
                data: json!({"name": "ann"}),
                handshake: json!({"auth": {}}),
            }],
        },
        Body::ServerSideEmit {
            data: EventData {
                event: "hello".into(),
                args: vec![json!(1.5), json!(-3), json!(u64::MAX)],
                attachments: vec![],
            },
            request_id: Some("r2".into()),
        },
        Body::ServerSideEmitResponse {
            request_id: "r2".into(),
            answer: json!("ok"),
        },
        Body::SocketsJoin {
            opts: Opts {
                rooms: vec!["a".into()],
                ..Opts::default()
            },
            rooms: vec!["b".into()],
        },
        Body::DisconnectSockets {
            opts: Opts::default(),
            close: true,
        },
        Body::Other(2),
    ];
    for body in bodies {
        let m = Message {
            uid: "u".into(),
            nsp: "/".into(),
            body,
        };
        assert_eq!(Message::from_published(&m.to_published(), 16).unwrap(), m);
        assert_eq!(entry_round_trip(&m), m);
    }
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let entries: [&[(&[u8], &[u8])]; 6] = [
        &[(b"foo", b"bar")],
        &[(b"uid", b"a"), (b"nsp", b"/"), (b"type", b"x")],
        &[
            (b"uid", b"a"),
            (b"nsp", b"/"),
            (b"type", b"3"),
            (b"data", b"{no"),
        ],
        &[
            (b"uid", b"a"),
            (b"nsp", b"/"),
            (b"type", b"3"),
            (b"data", b"gAA="),
        ],
        &[
            (b"uid", b"a"),
            (b"nsp", b"/"),
            (b"type", b"3"),
            (b"data", b"@@@"),
        ],
        &[
            (b"uid", b"a"),
            (b"nsp", b"/"),
            (b"type", b"7"),
            (b"data", b"{}"),
        ],
    ];
    for e in entries {
        assert!(Message::from_entry(e, 16).is_err(), "{e:?}");
    }
    for bytes in [
        &b""[..],
        b"\xc1",
        b"\x80",
        b"\x81\xa3uid\x01",
        b"\x91\x91\x91",
    ] {
        assert!(Message::from_published(bytes, 16).is_err(), "{bytes:?}");
    }
}

#[test]
fn a_session_round_trips_and_garbage_is_refused() {
    let s = StoredSession {
        sid: "s".into(),
        pid: "p".into(),
        rooms: vec!["s".into(), "lobby".into()],
    };
    assert_eq!(StoredSession::from_text(s.to_text().as_bytes()).unwrap(), s);
    for bad in [&b"!!"[..], b"gA==", b""] {
        assert!(StoredSession::from_text(bad).is_err());
    }
}

#[test]
fn opts_select_by_rooms_and_except() {
    let o = Opts {
        rooms: vec!["a".into()],
        except: vec!["x".into()],
        volatile: false,
    };
    assert!(o.selects(["s", "a"].into_iter()));
    assert!(!o.selects(["s", "b"].into_iter()));
    assert!(!o.selects(["s", "a", "x"].into_iter()));
    assert!(Opts::default().selects(["s"].into_iter()));
}
