//! The wire inspector (`src/apps/wire.rs`, the `/wire` page's server side) against a real
//! server: what an inspector receives must be the very bytes that crossed the watched
//! connection, and it must stay bounded whatever the traffic.
//!
//! The server runs in-process on 127.0.0.1:0 with the chat, the pages and the inspector, and
//! its feed thread. A raw socklab client and a raw Socket.IO client chat; the inspector is a
//! raw Socket.IO client too, so that each test sees the `packet` events exactly as a page
//! would. Every read is bounded by [`WAIT`] (the peers' own timeouts).

mod common;
use common::{any_port, raw_connect_ns, read_packet, SioPeer, WAIT};

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socklab::apps::{chat, web, wire};
use socklab::events::{Io, RunningServer, ServerConfig};
use socklab::wire::engineio::unbase64;
use socklab::wire::packet::{encode_to_vec, Packet};
use socklab::wire::websocket::{self, Opcode};

/// The inspector's server: chat, pages, `/wire`, and `/noise`, whose `burst` [n, size]
/// answers with n events of size bytes (a flood on demand).
fn start() -> (RunningServer, wire::Feed) {
    let (tx, rx) = mpsc::channel();
    let server = RunningServer::start(ServerConfig::default(), any_port(), move |io: &mut Io| {
        chat::install(io);
        web::install(io);
        let _ = tx.send(wire::install(io));
        io.on_connection("/noise", |io, sid| {
            io.on(sid, "burst", |io, ev| {
                let n = ev.args.first().and_then(Value::as_u64).unwrap_or(0);
                let size = ev.args.get(1).and_then(Value::as_u64).unwrap_or(0);
                let text = "x".repeat(size as usize);
                for _ in 0..n {
                    let _ = io.emit(&ev.socket, "noise", vec![json!(text)]);
                }
            });
        });
    })
    .expect("the server starts");
    let active = rx.recv_timeout(WAIT).expect("the inspector installed");
    let feed = wire::start_feed(server.handle.clone(), active);
    (server, feed)
}

/// The exact frame a server sends for a text message (unmasked).
fn server_text_frame(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    websocket::encode_frame(true, Opcode::Text, text.as_bytes(), None, &mut out);
    out
}

/// The exact frame a test peer sends for a text message (masked with its fixed key).
fn peer_text_frame(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mask = Some(common::MASK);
    websocket::encode_frame(true, Opcode::Text, text.as_bytes(), mask, &mut out);
    out
}

/// An inspector's request with ack id `id`: the ack's arguments.
fn ask(inspector: &mut SioPeer, id: u32, args: Value) -> Value {
    inspector.round_trip("/wire", id, &args)
}

/// The `packet` event in a message from the server, if it is one.
fn as_packet(m: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(m.strip_prefix("42/wire,")?).ok()?;
    (v[0] == "packet").then(|| v[1].clone())
}

fn bytes_of(p: &Value) -> Vec<u8> {
    unbase64(p["bytes_b64"].as_str().expect("bytes_b64")).expect("base64")
}

/// Reads the inspector's `packet` events until `done` holds for what came so far (each
/// read bounded by WAIT): all of them.
fn packets_until(inspector: &mut SioPeer, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while !done(&got) {
        assert!(Instant::now() < deadline, "not all packets came: {got:#?}");
        if let Some(p) = as_packet(&inspector.expect_text("a packet event")) {
            got.push(p);
        }
    }
    got
}

#[test]
fn watched_sockets_show_the_exact_bytes_of_their_chat_messages() {
    let (server, _feed) = start();
    let (mut ada, reply) = raw_connect_ns(server.addr, "/chat", json!({"name": "ada"}));
    let Packet::Connect { data: Some(d), .. } = reply else {
        panic!("ada is accepted: {reply:?}")
    };
    let ada_sid = d["sid"].as_str().expect("a sid").to_string();
    let (mut bob, bob_sid) = SioPeer::connect(server.addr, "/chat", Some(&json!({"name": "bob"})));
    let (mut inspector, me) = SioPeer::connect(server.addr, "/wire", None);

    let listed = ask(&mut inspector, 0, json!(["list"]));
    let rows = listed[0].as_array().expect("a list of sockets");
    let row = |sid: &str| rows.iter().find(|r| r["sid"] == sid).cloned();
    let a = row(&ada_sid).expect("ada is listed");
    assert_eq!(
        (&a["ns"], &a["transport"]),
        (&json!("/chat"), &json!("socklab"))
    );
    let b = row(&bob_sid).expect("bob is listed");
    assert_eq!(
        (&b["ns"], &b["transport"]),
        (&json!("/chat"), &json!("websocket"))
    );
    assert!(row(&me).is_some(), "the inspector lists itself");

    let watched = ask(&mut inspector, 1, json!(["watch", ada_sid]));
    assert_eq!(watched[0], json!(true), "{watched}");
    assert_eq!(watched[1]["conn"], a["conn"]);
    assert_eq!(
        ask(&mut inspector, 2, json!(["watch", bob_sid]))[0],
        json!(true)
    );
    let nobody = ask(&mut inspector, 3, json!(["watch", "nobody"]));
    assert_eq!(nobody[0], json!(false), "an unknown socket is refused");

    // Ada says hello: her frame in, as encoded here; the server's ack out to her; the
    // broadcast out to bob, as one WebSocket frame.
    let hello = Packet::Event {
        ns: "/chat".into(),
        name: "chat message".into(),
        args: vec![json!("lobby"), json!("hello bob")],
        attachments: vec![],
        id: Some(1),
        offset: None,
    };
    let ada_frame = encode_to_vec(&hello);
    ada.write_all(&ada_frame).expect("ada sends");
    // (Bob hears the chat's `system` line about his own arrival first.)
    let heard = loop {
        let m = bob.expect_text("ada's message at bob");
        if m.starts_with("42/chat,[\"chat message\"") {
            break m;
        }
    };
    let to_bob = server_text_frame(&heard);
    let is = |p: &Value, sid: &str, out: bool| p["sid"] == sid && p["out"] == out;
    let got = packets_until(&mut inspector, |got| {
        got.iter()
            .any(|p| is(p, &ada_sid, false) && bytes_of(p) == ada_frame)
            && got
                .iter()
                .any(|p| is(p, &bob_sid, true) && bytes_of(p) == to_bob)
            && got.iter().any(|p| is(p, &ada_sid, true))
    });
    let ack = got
        .iter()
        .find(|p| is(p, &ada_sid, true))
        .unwrap_or_else(|| panic!("ada's ack: {got:#?}"));
    let ack_bytes = bytes_of(ack);
    assert_eq!(ack_bytes[4], 3, "an ACK packet: {ack_bytes:?}");
    for p in &got {
        let conn = if p["sid"] == ada_sid {
            &a["conn"]
        } else {
            &b["conn"]
        };
        assert_eq!(&p["conn"], conn);
        assert_eq!(p["len"], json!(bytes_of(p).len()));
        assert_eq!(p["truncated"], json!(false));
        assert!(p["at_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{p}");
    }

    // Bob answers: his masked frame is what comes in, byte for byte.
    let answer = r#"42/chat,["chat message","lobby","hi ada"]"#;
    bob.send_text(answer);
    let from_bob = peer_text_frame(answer);
    packets_until(&mut inspector, |got| {
        got.iter()
            .any(|p| is(p, &bob_sid, false) && bytes_of(p) == from_bob)
    });
    let at_ada = read_packet(&mut ada).expect("a packet for ada");
    assert!(matches!(
        at_ada,
        Some(Packet::Ack { .. } | Packet::Event { .. })
    ));
}

#[test]
fn an_inspector_watching_itself_does_not_loop() {
    let (server, _feed) = start();
    let (mut inspector, me) = SioPeer::connect(server.addr, "/wire", None);
    assert_eq!(ask(&mut inspector, 0, json!(["watch", me]))[0], json!(true));
    ask(&mut inspector, 1, json!(["list"]));
    // Several deliveries' time: a loop would add a packet at every one.
    std::thread::sleep(Duration::from_millis(500));
    inspector.send_text(r#"42/wire,2["unwatch"]"#); // a bad unwatch: answered, not watched
    let mut packets = Vec::new();
    loop {
        let m = inspector.expect_text("packets, then the unwatch's ack");
        if m.starts_with("43/wire,2") {
            break;
        }
        packets.extend(as_packet(&m));
    }
    // The watch's ack, the list and its ack: never the packet events themselves.
    let shown: Vec<_> = packets.iter().map(bytes_of).collect();
    assert!(
        (2..=4).contains(&packets.len()),
        "a few packets, not a loop: {shown:?}"
    );
    assert!(shown
        .iter()
        .all(|b| !String::from_utf8_lossy(b).contains("\"packet\"")));
}

/// The figures of the recorder, read on the loop thread.
fn figures(server: &RunningServer) -> (usize, usize, u64) {
    let (tx, rx) = mpsc::channel();
    server
        .handle
        .run(move |io| {
            let _ = tx.send(wire::figures(io).expect("installed"));
        })
        .expect("the server runs");
    rx.recv_timeout(WAIT).expect("the figures")
}

#[test]
fn a_flood_is_dropped_and_counted_and_big_packets_are_cut() {
    let (server, _feed) = start();
    let (mut noisy, reply) = raw_connect_ns(server.addr, "/noise", json!({}));
    let Packet::Connect { data: Some(d), .. } = reply else {
        panic!("accepted: {reply:?}")
    };
    let sid = d["sid"].as_str().expect("a sid").to_string();
    let (mut inspector, _) = SioPeer::connect(server.addr, "/wire", None);
    assert_eq!(
        ask(&mut inspector, 0, json!(["watch", sid]))[0],
        json!(true)
    );

    // 5000 frames in one handler, one flush: more than the recorder holds.
    let burst = |n: u64, size: u64| Packet::Event {
        ns: "/noise".into(),
        name: "burst".into(),
        args: vec![json!(n), json!(size)],
        attachments: vec![],
        id: None,
        offset: None,
    };
    noisy
        .write_all(&encode_to_vec(&burst(5000, 10)))
        .expect("ask for a flood");
    let dropped_at_least = 5000 - wire::MAX_HELD as u64;
    let got = packets_until(&mut inspector, |got| {
        got.iter()
            .any(|p| p["dropped"].as_u64() >= Some(dropped_at_least))
    });
    assert!(got.len() <= wire::MAX_HELD + 1, "{}", got.len());
    let (held, bytes, dropped) = figures(&server);
    assert!(held <= wire::MAX_HELD && bytes <= wire::MAX_HELD_BYTES);
    assert!(dropped >= dropped_at_least, "{dropped}");
    // Drain the noisy peer's flood (it must not fill the server's buffer for it).
    for _ in 0..5000 {
        read_packet(&mut noisy).expect("a noise event");
    }

    // Big packets: 4 KiB of each is shown, with its real length.
    noisy
        .write_all(&encode_to_vec(&burst(3, 100_000)))
        .expect("ask for big ones");
    let big = packets_until(&mut inspector, |got| {
        got.iter().filter(|p| p["truncated"] == json!(true)).count() >= 3
    });
    for p in big.iter().filter(|p| p["truncated"] == json!(true)) {
        assert_eq!(bytes_of(p).len(), wire::MAX_SHOWN);
        assert!(p["len"].as_u64() > Some(100_000), "{}", p["len"]);
    }
    let (_, bytes, _) = figures(&server);
    assert!(bytes <= wire::MAX_HELD_BYTES);
}

#[test]
fn a_watched_socket_that_leaves_is_reported_gone() {
    let (server, _feed) = start();
    let (bob, bob_sid) = SioPeer::connect(server.addr, "/chat", Some(&json!({"name": "bob"})));
    let (mut inspector, _) = SioPeer::connect(server.addr, "/wire", None);
    assert_eq!(
        ask(&mut inspector, 0, json!(["watch", bob_sid]))[0],
        json!(true)
    );
    drop(bob);
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no gone event");
        let m = inspector.expect_text("gone");
        if m.starts_with("42/wire,[\"gone\"") {
            assert!(m.contains(&bob_sid), "{m}");
            break;
        }
    }
}

/// The page's decoder (`wire-decode.js`, under Node) on frames made by the Rust encoders:
/// what it says each field is must be what the encoder wrote.
#[test]
fn the_page_decodes_the_servers_frames_field_by_field() {
    use std::process::{Command, Stdio};
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node
        && !common::skip_or_require(
            "SOCKLAB_REQUIRE_NODE",
            "wire-decode.js under Node",
            "node not found on PATH",
            "apt-get install nodejs",
        )
    {
        return;
    }
    let event = Packet::Event {
        ns: "/chat".into(),
        name: "chat message".into(),
        args: vec![json!("lobby"), json!("hi")],
        attachments: vec![vec![1, 2, 3]],
        id: Some(7),
        offset: Some(42),
    };
    let socklab = encode_to_vec(&event);
    let text = r#"42/chat,7["chat message","lobby","hi"]"#;
    let mut two = peer_text_frame(text); // masked, as a client sends it
    two.extend(server_text_frame("3"));
    let b64 = |b: &[u8]| socklab::wire::engineio::base64(b);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/apps/web/assets");
    let script = r#"
        const W = require(process.argv[1] + "/wire-decode.js");
        const b = (s) => new Uint8Array(Buffer.from(s, "base64"));
        const out = [
            W.describe(b(process.argv[2]), "socklab"),
            W.describe(b(process.argv[3]), "websocket"),
            W.describe(new TextEncoder().encode(process.argv[4]), "polling"),
        ];
        console.log(JSON.stringify(out));
    "#;
    let mut child = Command::new("node")
        .args(["-e", script, "--"])
        .arg(&dir)
        .arg(b64(&socklab))
        .arg(b64(&two))
        .arg(format!("4{}\u{1e}2", &text[1..]))
        .stdout(Stdio::piped())
        .spawn()
        .expect("node starts");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait for node").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("node did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("node's output");
    assert!(out.status.success());
    let parts: Value = serde_json::from_slice(&out.stdout).expect("JSON from the script");
    let field = |part: &Value, label: &str| {
        let f = part["fields"].as_array().expect("fields");
        let f = f.iter().find(|f| f["label"] == label);
        f.map(|f| f["value"].clone())
            .unwrap_or_else(|| panic!("{label} in {part}"))
    };
    let s = &parts[0][0];
    assert_eq!(
        s["title"],
        json!("EVENT /chat ack 7 \"chat message\""),
        "{s}"
    );
    assert_eq!(
        field(s, "frame length"),
        json!((socklab.len() - 4).to_string())
    );
    assert_eq!(field(s, "offset (broadcast)"), json!("42"));
    assert_eq!(field(s, "attachment 0"), json!("01 02 03"));
    assert!(s.get("error").is_none(), "{s}");
    let (ws, pong) = (&parts[1][0], &parts[1][1]);
    assert_eq!(field(ws, "masking key"), json!("37 fa 21 3d"));
    assert_eq!(
        field(ws, "payload as text"),
        json!(text),
        "unmasked with its key"
    );
    assert_eq!(field(ws, "ack id"), json!("7"));
    assert_eq!(field(pong, "Engine.IO type"), json!("3 pong"));
    let records = parts[2].as_array().expect("records");
    assert_eq!(records.len(), 2);
    assert_eq!(field(&records[0], "namespace"), json!("/chat"));
}

/// A long-polling socket: what comes in is each POST body, what goes out each record as it
/// is queued for the next poll.
#[test]
fn a_polling_socket_shows_its_post_bodies_and_records() {
    use common::http_exchange;
    let (server, _feed) = start();
    let path = "/socket.io/?EIO=4&transport=polling";
    let request = |method: &str, sid: Option<&str>, body: &str| {
        let target = sid.map_or(path.to_string(), |s| format!("{path}&sid={s}"));
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
             Content-Type: text/plain;charset=UTF-8\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let (_, res, answer, _) = http_exchange(server.addr, format!("{head}{body}").as_bytes());
        assert_eq!(res.status, 200, "{method} {body}: {answer:?}");
        String::from_utf8(answer).expect("a text body")
    };
    let open = request("GET", None, "");
    let open: Value = serde_json::from_str(&open[1..]).expect("the open packet");
    let session = open["sid"].as_str().expect("a session id");
    request("POST", Some(session), r#"40/chat,{"name":"cy"}"#);
    let reply = request("GET", Some(session), "");
    let connect = reply.split('\u{1e}').next().expect("a record");
    let json = connect.strip_prefix("40/chat,").expect("the CONNECT reply");
    let sid = serde_json::from_str::<Value>(json).expect("JSON")["sid"]
        .as_str()
        .expect("a sid")
        .to_string();

    let (mut inspector, _) = SioPeer::connect(server.addr, "/wire", None);
    let watched = ask(&mut inspector, 0, json!(["watch", sid]));
    assert_eq!(watched[1]["transport"], json!("polling"), "{watched}");
    let body = r#"42/chat,5["who","lobby"]"#;
    request("POST", Some(session), body);
    let got = packets_until(&mut inspector, |got| {
        got.iter().any(|p| p["out"] == json!(true))
    });
    let came = got
        .iter()
        .find(|p| p["out"] == json!(false))
        .expect("the POST");
    assert_eq!(bytes_of(came), body.as_bytes());
    assert_eq!(came["transport"], json!("polling"));
    let went = got
        .iter()
        .find(|p| p["out"] == json!(true))
        .expect("the ack");
    assert_eq!(bytes_of(went), br#"43/chat,5[["cy"]]"#);
    assert_eq!(request("GET", Some(session), ""), r#"43/chat,5[["cy"]]"#);
}
