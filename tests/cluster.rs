//! Two event servers in one cluster over a real `redis-server` (`events/server/cluster/`):
//! a chat message sent on one node reaches the room's members on the other exactly once, and
//! nobody else; binary and volatile broadcasts cross; rooms, disconnects, `fetch_sockets`,
//! `server_side_emit` and the node count span the nodes; a client moved to the other node
//! recovers its session and what it missed; garbage written into the stream by hand is
//! skipped and counted; broadcasts made while Redis is down, or across its restart, arrive
//! once each, in order.
//!
//! Each test starts its own Redis (skipped when `redis-server` is missing, a failure under
//! `SOCKLAB_REQUIRE_REDIS=1`) and its own servers, on threads of this process, running the
//! chat application of `socklab serve`. The clients are raw socklab connections.

mod common;

use std::time::{Duration, Instant};

use std::net::TcpStream;

use common::{
    ask, assert_no_chat_message, chat_client, next_chat_message, next_event_packet, raw_connect_ns,
    read_packet, say, session_of, wait_for, RedisServer, SocklabNode, SILENCE, WAIT,
};
use serde_json::json;
use socklab::events::{ClusterConfig, Server, ServerConfig};
use socklab::wire::packet::Packet;

/// A Redis of test `test`'s own, and two socklab nodes in its cluster, both reading the
/// stream; `None` when `redis-server` is missing (the skip was said).
fn two_nodes(test: &str) -> Option<(RedisServer, SocklabNode, SocklabNode)> {
    with_two_nodes(RedisServer::start(test)?)
}

/// [`two_nodes`] on a Redis with its append-only file (for the tests that restart it).
fn two_nodes_persistent(test: &str) -> Option<(RedisServer, SocklabNode, SocklabNode)> {
    with_two_nodes(RedisServer::start_persistent(test)?)
}

fn with_two_nodes(redis: RedisServer) -> Option<(RedisServer, SocklabNode, SocklabNode)> {
    let (a, b) = (
        SocklabNode::start(redis.addr),
        SocklabNode::start(redis.addr),
    );
    redis.wait_readers(2);
    Some((redis, a, b))
}

#[test]
fn a_message_on_one_node_reaches_the_room_on_the_other_exactly_once() {
    let Some((redis, a, b)) = two_nodes("cluster_broadcast") else {
        return;
    };
    let mut alice = chat_client(a.addr, "alice", "lobby");
    let mut bob = chat_client(b.addr, "bob", "lobby");
    let mut carol = chat_client(b.addr, "carol", "garden");
    let mut dave = chat_client(a.addr, "dave", "lobby");
    b.wait_stats("b heard a's joins", |s| s.cluster_received >= 2);

    say(&mut alice, "lobby", "hello across");
    let heard = next_chat_message(&mut bob, WAIT).expect("bob, on the other node, hears it");
    assert_eq!(
        heard,
        json!({"room": "lobby", "from": "alice", "text": "hello across"})
    );
    let local = next_chat_message(&mut dave, WAIT).expect("dave, on alice's node, hears it");
    assert_eq!(local["text"], "hello across");
    // Exactly once, and nobody outside the room (nor the sender) hears it.
    assert_no_chat_message(&mut bob, "bob heard it twice");
    assert_no_chat_message(&mut dave, "dave heard it twice");
    assert_no_chat_message(&mut carol, "carol is in another room");
    assert_no_chat_message(&mut alice, "the sender is left out");

    // The entry as the Socket.IO adapter writes it: node id, namespace, type 3 (BROADCAST),
    // and the EVENT packet with the options that chose its recipients.
    let uid = ask(&a.handle, |io| io.cluster_uid().map(str::to_string)).expect("joined");
    let range = redis.command(&["XRANGE", "socket.io", "-", "+"]);
    let entry = format!(
        "$3\r\nuid\r\n$20\r\n{uid}\r\n$3\r\nnsp\r\n$5\r\n/chat\r\n$4\r\ntype\r\n$1\r\n3\r\n"
    );
    assert!(range.contains(&entry), "{range}");
    let data = r#"{"data":["chat message",{"from":"alice","room":"lobby","text":"hello across"}],"nsp":"/chat","type":2}"#;
    assert!(range.contains(data), "{range}");
    assert!(range.contains(r#""rooms":["lobby"]"#), "{range}");

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.cluster_dropped, sb.cluster_dropped), (0, 0));
    assert_eq!((sa.cluster_bad_entries, sb.cluster_bad_entries), (0, 0));
    assert!(sa.cluster_published >= 3, "{sa:?}");
}

#[test]
fn a_malformed_entry_is_skipped_and_counted() {
    let Some((redis, a, b)) = two_nodes("cluster_malformed") else {
        return;
    };
    let mut alice = chat_client(a.addr, "alice", "lobby");
    let mut bob = chat_client(b.addr, "bob", "lobby");
    b.wait_stats("b heard a's join", |s| s.cluster_received >= 1);

    // What `redis-cli XADD socket.io '*' foo bar` writes, and an entry that looks right but
    // carries no JSON.
    let reply = redis.command(&["XADD", "socket.io", "*", "foo", "bar"]);
    assert!(reply.starts_with('$'), "{reply}");
    let reply = redis.command(&[
        "XADD",
        "socket.io",
        "*",
        "uid",
        "x",
        "nsp",
        "/chat",
        "type",
        "3",
        "data",
        "{oops",
    ]);
    assert!(reply.starts_with('$'), "{reply}");
    b.wait_stats("b counted both", |s| s.cluster_bad_entries == 2);
    a.wait_stats("a counted both", |s| s.cluster_bad_entries == 2);

    // Both nodes go on.
    say(&mut alice, "lobby", "still here");
    let heard = next_chat_message(&mut bob, WAIT).expect("bob hears alice after the garbage");
    assert_eq!(heard["text"], "still here");
}

#[test]
fn a_broadcast_during_a_redis_outage_arrives_when_it_is_back() {
    let Some((mut redis, a, b)) = two_nodes_persistent("cluster_outage") else {
        return;
    };
    let mut alice = chat_client(a.addr, "alice", "lobby");
    let mut bob = chat_client(b.addr, "bob", "lobby");
    b.wait_stats("b heard a's join", |s| s.cluster_received >= 1);
    say(&mut alice, "lobby", "before");
    assert_eq!(
        next_chat_message(&mut bob, WAIT).expect("before")["text"],
        "before"
    );

    redis.stop();
    // The writer notices only when it next writes or reads; give the loss a moment to show.
    std::thread::sleep(Duration::from_millis(200));
    say(&mut alice, "lobby", "during");
    assert_no_chat_message(&mut bob, "Redis is down");
    let started = Instant::now();
    redis.restart();

    let heard = next_chat_message(&mut bob, WAIT).expect("the message of the outage arrives");
    assert_eq!(heard["text"], "during");
    eprintln!("delivered {:?} after Redis came back", started.elapsed());
    assert_no_chat_message(&mut bob, "once");
    say(&mut alice, "lobby", "after");
    assert_eq!(
        next_chat_message(&mut bob, WAIT).expect("after")["text"],
        "after"
    );
    assert_eq!(a.stats().cluster_dropped, 0);
}

#[test]
fn a_full_buffer_drops_and_counts() {
    let Some(mut redis) = RedisServer::start("cluster_bound") else {
        return;
    };
    let addr = redis.addr;
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut server = Server::new(ServerConfig::default()).expect("a server");
        // A long backoff: the writer stays down while the test broadcasts.
        let config = ClusterConfig {
            max_buffered: 3,
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(30),
            ..ClusterConfig::default()
        };
        server.join_cluster(addr, config).expect("join");
        tx.send(server.handle()).expect("the test waits");
        server.run().expect("runs");
    });
    let handle = rx.recv_timeout(WAIT).expect("started");
    redis.kill();
    std::thread::sleep(Duration::from_millis(200));
    let stats = ask(&handle, |io| {
        for i in 0..5 {
            let _ = io.broadcast("/").emit("tick", vec![json!(i)]);
        }
        io.stats()
    });
    assert_eq!(stats.cluster_dropped, 2, "{stats:?}");
    let _ = handle.stop();
    thread.join().expect("the server thread ends");
}

#[test]
fn joining_an_unreachable_redis_says_so() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut server = Server::new(ServerConfig::default()).expect("a server");
    let err = server
        .join_cluster(free, ClusterConfig::default())
        .expect_err("nothing listens there");
    let text = err.to_string();
    assert!(text.contains("Redis is not reachable at"), "{text}");
}

/// `socklab serve --redis`: only `redis://HOST:PORT` is taken, and a Redis that does not
/// answer at start is an error that says so (exit 1), not a node that runs alone.
#[test]
fn serve_refuses_a_bad_url_and_an_unreachable_redis() {
    let socklab = env!("CARGO_BIN_EXE_socklab");
    for url in [
        "127.0.0.1:6379",
        "http://127.0.0.1:6379",
        "redis://u:p@127.0.0.1:6379/0",
    ] {
        let out = common::run(
            socklab,
            &["serve", "--addr", "127.0.0.1:0", "--redis", url],
            None,
        );
        assert_eq!(out.code(), Some(2), "{}", out.describe());
        assert!(
            out.stderr.contains("expected redis://HOST:PORT"),
            "{}",
            out.describe()
        );
    }
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let url = format!("redis://{free}");
    let out = common::run(
        socklab,
        &["serve", "--addr", "127.0.0.1:0", "--redis", &url],
        None,
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let want = format!("error: Redis is not reachable at {free}");
    assert!(out.stderr.contains(&want), "{}", out.describe());
}

/// A node that has read nothing from the stream yet (its reader started at `$`) and loses
/// Redis still gets, once Redis is back, what another node wrote meanwhile: it learnt the
/// newest id when it joined, so it does not come back at `$` (which would skip those).
#[test]
fn a_quiet_node_gets_what_was_written_while_redis_was_down() {
    let Some(redis) = RedisServer::start_persistent("cluster_quiet") else {
        return;
    };
    redis.command(&[
        "XADD",
        "socket.io",
        "*",
        "uid",
        "old",
        "nsp",
        "/",
        "type",
        "2",
    ]);
    let Some((mut redis, a, b)) = with_two_nodes(redis) else {
        return;
    };
    // A client of the default namespace: joining it broadcasts nothing.
    let mut client = joined(b.addr);

    redis.stop();
    std::thread::sleep(Duration::from_millis(200));
    a.handle
        .broadcast("/", None, "tick", vec![json!(1)])
        .expect("a runs");
    redis.restart();

    client.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    loop {
        match read_packet(&mut client).expect("the tick arrives") {
            Some(Packet::Event { name, args, .. }) if name == "tick" => {
                assert_eq!(args, vec![json!(1)]);
                break;
            }
            Some(_) => continue,
            None => panic!("b closed the connection"),
        }
    }
    assert_eq!(b.stats().cluster_received, 1);
}

/// A stream key that is not a stream (`SET socket.io x`): Redis refuses every `XREAD`, and
/// the nodes wait before they ask again instead of asking as fast as loopback answers.
#[test]
fn a_refused_read_is_not_retried_in_a_tight_loop() {
    let Some(redis) = RedisServer::start("cluster_wrongtype") else {
        return;
    };
    // Short blocks, so that the reader asks again within the test's time.
    let config = ClusterConfig {
        block: Duration::from_millis(50),
        retry_max: Duration::from_secs(1),
        ..ClusterConfig::default()
    };
    let _node = SocklabNode::start_with(redis.addr, config);
    redis.wait_readers(1);
    redis.command(&["SET", "socket.io", "not a stream"]);
    std::thread::sleep(Duration::from_millis(600));
    let info = redis.command(&["INFO", "commandstats"]);
    let calls: u64 = info
        .split("cmdstat_xread:calls=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(calls <= 5, "{calls} XREADs in 600 ms:\n{info}");
}

/// A socklab protocol client of the node at `addr`, connected to `/`.
fn joined(addr: std::net::SocketAddr) -> TcpStream {
    let (client, answer) = raw_connect_ns(addr, "/", json!({}));
    assert!(matches!(answer, Packet::Connect { .. }), "{answer:?}");
    client
}

/// The next event named `name` (others skipped), and its offset (0: none).
fn next_with_offset(stream: &mut TcpStream, name: &str, wait: Duration) -> Option<(Packet, u64)> {
    let p = next_event_packet(stream, name, wait)?;
    let offset = match &p {
        Packet::Event { offset, .. } => offset.unwrap_or(0),
        _ => 0,
    };
    Some((p, offset))
}

#[test]
fn binary_and_volatile_broadcasts_cross_nodes() {
    let Some((redis, a, b)) = two_nodes("cluster_binary") else {
        return;
    };
    let mut client = joined(b.addr);
    let blob: Vec<u8> = (0..=255).collect();
    let sent = blob.clone();
    ask(&a.handle, move |io| {
        let args = vec![json!({"name": "bytes"})];
        io.broadcast("/")
            .emit_with("blob", args, vec![sent])
            .unwrap();
        io.broadcast("/")
            .volatile()
            .emit("tick", vec![json!(1)])
            .unwrap();
    });
    let (p, offset) = next_with_offset(&mut client, "blob", WAIT).expect("the binary broadcast");
    let Packet::Event {
        args, attachments, ..
    } = p
    else {
        unreachable!()
    };
    assert_eq!(attachments, vec![blob]);
    // An attachment no argument pointed at travels as a placeholder argument of its own,
    // as on the Socket.IO wire.
    let placeholder = json!({"_placeholder": true, "num": 0});
    assert_eq!(args, vec![json!({"name": "bytes"}), placeholder]);
    // Its offset is the stream entry's id, packed (socklab::wire::offset).
    let id = socklab::wire::offset::stream_id(offset).expect("a stream id");
    let range = redis.command(&["XRANGE", "socket.io", &id, &id]);
    // With binary, `data` is msgpack in base64, not JSON.
    assert!(range.contains("$4\r\ndata\r\n"), "{range}");
    assert!(!range.contains("{\"packet\""), "{range}");
    let (_, tick_offset) = next_with_offset(&mut client, "tick", WAIT).expect("the volatile one");
    assert_eq!(tick_offset, 0, "a volatile broadcast has no offset");
    assert_eq!(b.stats().cluster_bad_entries, 0);
}

#[test]
fn rooms_and_disconnects_span_nodes() {
    let Some((_redis, a, b)) = two_nodes("cluster_rooms") else {
        return;
    };
    let (mut bob, answer) = raw_connect_ns(b.addr, "/chat", json!({"name": "bob"}));
    let (bob_sid, _, _) = session_of(&answer);
    let _carol = chat_client(b.addr, "carol", "garden");

    ask(&a.handle, |io| {
        io.sockets_join("/chat", &["lobby"], &["vip"])
    });
    let sid = bob_sid.clone();
    wait_for(&b, "bob joined vip", move |io| io.in_room(&sid, "vip"));
    let carol_in_vip = ask(&b.handle, |io| io.sockets_in("/chat", "vip"));
    assert_eq!(carol_in_vip, vec![bob_sid.clone()], "only lobby's members");

    ask(&a.handle, |io| io.sockets_leave("/chat", &[], &["vip"]));
    let sid = bob_sid.clone();
    wait_for(&b, "bob left vip", move |io| !io.in_room(&sid, "vip"));

    ask(&a.handle, move |io| {
        io.disconnect_sockets("/chat", &["lobby"], false)
    });
    bob.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    loop {
        match read_packet(&mut bob).expect("bob reads") {
            Some(Packet::Disconnect { .. }) | None => break,
            Some(_) => continue,
        }
    }
    let sid = bob_sid.clone();
    wait_for(&b, "bob is gone", move |io| !io.is_connected(&sid));
    assert_eq!(
        ask(&b.handle, |io| io.sockets("/chat")).len(),
        1,
        "carol stays"
    );
}

#[test]
fn fetch_sockets_server_side_emit_and_the_node_count_span_nodes() {
    let Some((_redis, a, b)) = two_nodes("cluster_requests") else {
        return;
    };
    let (_bob, answer) = raw_connect_ns(b.addr, "/chat", json!({"name": "bob"}));
    let (bob_sid, _, _) = session_of(&answer);
    let (_alice, answer) = raw_connect_ns(a.addr, "/chat", json!({"name": "alice"}));
    let (alice_sid, _, _) = session_of(&answer);
    let (heard_tx, heard) = std::sync::mpsc::channel();
    ask(&b.handle, move |io| {
        io.on_server_event("/chat", move |_, ev| {
            let _ = heard_tx.send((ev.name.clone(), ev.args.clone(), ev.answer_wanted));
            json!({"from": "b", "event": ev.name})
        })
    });

    // Both nodes subscribe to /chat's channels: the count comes from PUBSUB NUMSUB.
    let (tx, rx) = std::sync::mpsc::channel();
    let deadline = Instant::now() + WAIT;
    loop {
        let tx = tx.clone();
        ask(&a.handle, move |io| {
            io.server_count("/chat", move |_, n| tx.send(n).unwrap())
        });
        if rx.recv_timeout(WAIT).expect("a count") == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "never two nodes");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (tx, rx) = std::sync::mpsc::channel();
    ask(&a.handle, move |io| {
        io.fetch_sockets("/chat", &[], move |_, r| tx.send(r).unwrap())
    });
    let mut sockets = rx
        .recv_timeout(WAIT)
        .expect("fetched")
        .expect("every node answered");
    sockets.sort_by(|x, y| x.id.cmp(&y.id));
    let mut want = vec![
        (
            alice_sid.clone(),
            vec![alice_sid.clone(), "lobby".to_string(), "user:alice".into()],
        ),
        (
            bob_sid.clone(),
            vec![bob_sid.clone(), "lobby".to_string(), "user:bob".into()],
        ),
    ];
    want.iter_mut().for_each(|(_, r)| r.sort());
    want.sort();
    let got: Vec<(String, Vec<String>)> = sockets
        .iter()
        .map(|s| (s.id.clone(), s.rooms.clone()))
        .collect();
    assert_eq!(got, want);
    assert!(
        sockets[0].handshake["auth"]["name"].is_string(),
        "{:?}",
        sockets[0]
    );

    ask(&a.handle, |io| {
        io.server_side_emit("/chat", "hello", vec![json!(1)])
    });
    let heard_one = heard.recv_timeout(WAIT).expect("b heard the server event");
    assert_eq!(heard_one, ("hello".to_string(), vec![json!(1)], false));

    let (tx, rx) = std::sync::mpsc::channel();
    ask(&a.handle, move |io| {
        io.server_side_emit_with_ack("/chat", "ping", vec![], move |_, r| tx.send(r).unwrap())
    });
    let answers = rx.recv_timeout(WAIT).expect("answered").expect("in time");
    assert_eq!(answers, vec![json!({"from": "b", "event": "ping"})]);
    assert!(heard.recv_timeout(WAIT).expect("b heard the ping").2);
}

#[test]
fn a_client_moved_to_another_node_recovers_its_session_and_what_it_missed() {
    let Some((_redis, a, b)) = two_nodes("cluster_recovery") else {
        return;
    };
    let (mut alice, answer) = raw_connect_ns(a.addr, "/chat", json!({"name": "alice"}));
    let (sid, pid, _) = session_of(&answer);
    let mut dave = chat_client(b.addr, "dave", "lobby");
    say(&mut dave, "lobby", "one");
    let (_, offset) = next_with_offset(&mut alice, "chat message", WAIT).expect("alice hears one");
    // alice's connection drops; two messages go to the room while she is away.
    drop(alice);
    let s = sid.clone();
    wait_for(&a, "alice is away", move |io| !io.is_connected(&s));
    say(&mut dave, "lobby", "two");
    say(&mut dave, "lobby", "three");
    std::thread::sleep(Duration::from_millis(200));

    // She comes back on the other node, with her private id and the offset she saw last.
    let auth = json!({"name": "alice", "pid": pid, "offset": offset});
    let (mut alice, answer) = raw_connect_ns(b.addr, "/chat", auth);
    let Packet::Connect { data: Some(d), .. } = &answer else {
        panic!("{answer:?}");
    };
    assert_eq!(d["recovered"], json!(true), "{d}");
    assert_eq!(d["sid"], json!(sid));
    let mut texts = Vec::new();
    while let Some((p, _)) = next_with_offset(&mut alice, "chat message", SILENCE) {
        if let Packet::Event { args, .. } = p {
            texts.push(args[0]["text"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(texts, vec!["two", "three"]);
    let s = sid.clone();
    assert!(ask(&b.handle, move |io| io.in_room(&s, "lobby")));
    assert_eq!(b.stats().cluster_sessions_restored, 1);

    // And back on the first node: it finds the session in Redis, as the second node wrote it
    // when she left (its own parked copy was dropped when the second node took over).
    drop(alice);
    let s = sid.clone();
    wait_for(&b, "alice is away again", move |io| !io.is_connected(&s));
    std::thread::sleep(Duration::from_millis(200));
    let auth = json!({"name": "alice", "pid": pid, "offset": offset});
    let (_alice, answer) = raw_connect_ns(a.addr, "/chat", auth);
    let Packet::Connect { data: Some(d), .. } = &answer else {
        panic!("{answer:?}");
    };
    assert_eq!(d["recovered"], json!(true), "{d}");
    assert_eq!(d["sid"], json!(sid));
    assert_eq!(
        a.stats().cluster_sessions_restored,
        1,
        "from Redis, not its stale copy"
    );
}

/// Redis restarted (append-only file on) in the middle of a stream of broadcasts: each of
/// them reaches the other node's client once, in order: those made while it was down waited
/// in the node's buffer, the reader went on from the last entry it had read.
#[test]
fn redis_restarted_in_a_stream_of_broadcasts_loses_and_repeats_none() {
    let Some((mut redis, a, b)) = two_nodes_persistent("cluster_restart_stream") else {
        return;
    };
    let mut client = joined(b.addr);
    const COUNT: u64 = 60;
    for i in 0..COUNT {
        if i == COUNT / 2 {
            redis.stop();
        }
        if i == COUNT / 2 + 10 {
            redis.restart();
        }
        a.handle
            .broadcast("/", None, "n", vec![json!(i)])
            .expect("a runs");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut got = Vec::new();
    while let Some((p, _)) = next_with_offset(
        &mut client,
        "n",
        if got.len() as u64 == COUNT {
            SILENCE
        } else {
            WAIT
        },
    ) {
        if let Packet::Event { args, .. } = p {
            got.push(args[0].as_u64().expect("a number"));
        }
    }
    eprintln!(
        "XLEN {} a={:?}",
        redis.command(&["XLEN", "socket.io"]),
        a.stats()
    );
    assert_eq!(got, (0..COUNT).collect::<Vec<_>>());
    assert_eq!(a.stats().cluster_dropped, 0);
}

/// An entry too big for a node's input buffer (3 MiB, written by hand): the reader asks for
/// fewer entries at a time, then steps over that one entry and counts it, and what comes
/// after it is delivered; the reader does not fail on it forever.
#[test]
fn an_entry_too_big_to_read_is_stepped_over_and_counted() {
    let Some((redis, a, b)) = two_nodes("cluster_huge_entry") else {
        return;
    };
    let mut client = joined(b.addr);
    let huge = "x".repeat(3 << 20);
    let reply = redis.command(&[
        "XADD",
        "socket.io",
        "*",
        "uid",
        "x",
        "nsp",
        "/",
        "type",
        "3",
        "data",
        &huge,
    ]);
    assert!(reply.starts_with('$'), "{reply}");
    a.handle
        .broadcast("/", None, "after", vec![json!(1)])
        .expect("a runs");
    let args = common::next_event(&mut client, "after", WAIT).expect("what came after it");
    assert_eq!(args, vec![json!(1)]);
    b.wait_stats("b counted the entry", |s| s.cluster_bad_entries == 1);
}
