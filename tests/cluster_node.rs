//! A socklab node and a Node.js Socket.IO node in one cluster over a real `redis-server`: the
//! stream format of `@socket.io/redis-streams-adapter` 0.3.1 (`events/server/cluster/`),
//! checked against the adapter itself.
//!
//! The Node.js node is `tests/interop/cluster_node.js` (Socket.IO 4.8.4 with that adapter,
//! running the chat of `apps/chat.rs`), driven by JSON commands ([`NodeNode`]). Its clients
//! are socket.io-client 4.8.4 (`client.js`'s `member`, `recovery` and `move` scenarios); the
//! socklab node's are raw socklab connections, as in `tests/cluster.rs`, or socket.io-client
//! too.
//!
//! What crosses, both ways: broadcasts with rooms and `except` (a chat message, a mention to
//! a personal room, the `system` lines, a broadcast made by hand), binary ones too (their
//! bytes as attachments); a client recovering on either node gets what the other node
//! broadcast while it was away, and a client moved from one node to the other (the same
//! client, another URL: what a load balancer does) recovers its session there; the node
//! count (`PUBSUB NUMSUB`), `fetchSockets`, `socketsJoin` and `disconnectSockets` from
//! either node act on the other's sockets (`socketsLeave` from the Node.js node too); a
//! `serverSideEmit`, with or without an ack, reaches the other node's handlers and brings
//! their answers back.
//!
//! Each test starts its own Redis and nodes (skipped when `redis-server`, node or the
//! interop packages are missing; a failure under `SOCKLAB_REQUIRE_REDIS=1` /
//! `SOCKLAB_REQUIRE_NODE=1`). Both nodes read the stream from its end (socklab from the
//! newest entry, the adapter from `$`), so every test waits for both readers to block in
//! `XREAD` before anything is broadcast.

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    ask, assert_no_chat_message, chat_client, chat_client_sid, interop_client, next_chat_message,
    next_event, next_event_packet, pseudo_random, raw_connect_ns, read_packet, say, wait_for,
    NodeNode, Proc, RedisServer, Runtime, SocklabNode, SILENCE, WAIT,
};
use serde_json::{json, Value};
use socklab::events::Io;
use socklab::wire::offset::stream_id;
use socklab::wire::packet::Packet;

/// Redis, a socklab node and a Node.js node, both reading the stream; `None` when a tool is
/// missing (the skip was said).
fn cluster(test: &str) -> Option<(RedisServer, SocklabNode, NodeNode)> {
    let redis = RedisServer::start(test)?;
    let node = NodeNode::start(redis.addr)?;
    let socklab = SocklabNode::start(redis.addr);
    redis.wait_readers(2);
    Some((redis, socklab, node))
}

/// A socket.io-client chat member (client.js's `member` scenario) named `name` in `room` on
/// the server at `addr`, connected; and its socket id.
fn member(addr: SocketAddr, name: &str, room: &str) -> (Proc, String) {
    // NodeNode::start found node and the pinned socket.io-client, so this does not skip.
    let mut p = interop_client(Runtime::Node, "member", addr).expect("the Node.js client");
    p.write_stdin(&format!("as {name} {room}\n"));
    let line = p.expect_line("`connect /chat ok`", |l| l.starts_with("connect /chat ok"));
    let sid = line
        .rsplit("sid=")
        .next()
        .expect("rsplit yields one part at least");
    let sid = sid.to_string();
    (p, sid)
}

/// Every line starting with `prefix` that `p` printed, once it stayed quiet (or went on
/// with other lines) for [`SILENCE`]: what a member heard of an event, copies included.
fn all_heard(p: &mut Proc, prefix: &str) -> Vec<String> {
    let deadline = Instant::now() + SILENCE;
    while p
        .next_line(deadline.saturating_duration_since(Instant::now()))
        .is_some()
    {}
    let seen = p.seen().iter().filter(|l| l.starts_with(prefix));
    seen.cloned().collect()
}

/// Ends a member (`done`) and checks that it saw nothing wrong; returns what it printed.
fn finish(mut p: Proc) -> Vec<String> {
    p.write_stdin("done\n");
    let exited = p.finish();
    assert_eq!(exited.code(), Some(0), "{}", exited.describe());
    assert!(exited.has_line("bye"), "{}", exited.describe());
    exited.stdout
}

/// The line a member prints for event `event` with these arguments, sent as a broadcast
/// (Socket.IO 4.8 appends the offset, here the stream entry's id).
fn heard(event: &str, args: Value) -> String {
    format!("{event} {args} offset=string")
}

fn ok(answer: &Value) {
    assert_eq!(answer["ok"], json!(true), "{answer}");
}

#[test]
fn a_message_on_socklab_reaches_the_room_on_node_exactly_once() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_from_socklab") else {
        return;
    };
    let (mut bob, bob_sid) = member(n.addr(), "bob", "lobby");
    let c = n.wait_line(|l| l["connection"]["ns"] == "/chat", WAIT);
    assert_eq!(c["connection"]["id"], json!(bob_sid), "{c}");
    assert_eq!(c["connection"]["recovered"], json!(false), "{c}");
    let (mut carol, _) = member(n.addr(), "carol", "garden");
    let mut alice = chat_client(a.addr, "alice", "lobby");
    let mut dave = chat_client(a.addr, "dave", "lobby");
    // socklab's own broadcasts, read by the adapter: alice's and dave's arrivals.
    let arrived = |name: &str| {
        let text = format!("{name} joined lobby");
        heard("system", json!([{"room": "lobby", "text": text}]))
    };
    let dave_arrived = arrived("dave");
    bob.expect_line(&dave_arrived, |l| l == dave_arrived);

    say(&mut alice, "lobby", "hello across");
    // A mention goes to the personal room `user:carol`, on the other node.
    say(&mut alice, "lobby", "psst @carol");
    let message = |text: &str| json!([{"from": "alice", "room": "lobby", "text": text}]);
    let want = heard("notification", message("psst @carol"));
    carol.expect_line(&want, |l| l == want);

    // Exactly once, and nobody outside the room (nor the sender) hears it.
    assert_eq!(
        all_heard(&mut bob, "chat message"),
        [
            heard("chat message", message("hello across")),
            heard("chat message", message("psst @carol")),
        ],
        "bob, on the Node.js node"
    );
    let arrivals = ["bob", "alice", "dave"].map(arrived);
    assert_eq!(
        all_heard(&mut bob, "system"),
        arrivals,
        "carol is in the garden"
    );
    assert_eq!(all_heard(&mut carol, "chat message"), Vec::<String>::new());
    assert_eq!(all_heard(&mut carol, "notification"), [want]);
    for text in ["hello across", "psst @carol"] {
        let got = next_chat_message(&mut dave, WAIT).expect("dave, on alice's node");
        assert_eq!(got["text"], text);
    }
    assert_no_chat_message(&mut dave, "dave heard one twice");
    assert_no_chat_message(&mut alice, "the sender is left out");

    // The Node.js node's entries (bob's and carol's arrivals) were read without a fault.
    let stats = a.wait_stats("a read bob's and carol's joins", |s| {
        s.cluster_received >= 2
    });
    assert_eq!(stats.cluster_bad_entries, 0, "{stats:?}");
    finish(bob);
    finish(carol);
}

#[test]
fn a_message_on_node_reaches_the_room_on_socklab_exactly_once() {
    let Some((_redis, a, n)) = cluster("cluster_node_to_socklab") else {
        return;
    };
    let mut alice = chat_client(a.addr, "alice", "lobby");
    let (mut bob, _) = member(n.addr(), "bob", "lobby");
    // Her own arrival, then the adapter's broadcast, read by socklab: bob's.
    for name in ["alice", "bob"] {
        let system = next_event(&mut alice, "system", WAIT).expect("an arrival");
        let text = format!("{name} joined lobby");
        assert_eq!(system, vec![json!({"room": "lobby", "text": text})]);
    }
    let mut dave = chat_client(a.addr, "dave", "lobby");
    let mut erin = chat_client(a.addr, "erin", "garden");
    let (mut fay, _) = member(n.addr(), "fay", "lobby");

    bob.write_stdin("say lobby hello back @erin\n");
    bob.expect_line("the ack", |l| l == "ack say [true]");
    let want = json!({"from": "bob", "room": "lobby", "text": "hello back @erin"});
    for (who, stream) in [("alice", &mut alice), ("dave", &mut dave)] {
        let got = next_chat_message(stream, WAIT).unwrap_or_else(|| panic!("{who} hears bob"));
        assert_eq!(got, want, "{who}");
    }
    // The mention reaches erin's personal room on socklab; the message itself does not.
    let note = next_event(&mut erin, "notification", WAIT).expect("erin is mentioned");
    assert_eq!(note, vec![want.clone()]);

    assert_eq!(
        all_heard(&mut fay, "chat message"),
        [heard("chat message", json!([want]))],
        "fay, on bob's node"
    );
    assert_eq!(
        all_heard(&mut bob, "chat message"),
        Vec::<String>::new(),
        "the sender is left out"
    );
    assert_no_chat_message(&mut alice, "alice heard it twice");
    assert_no_chat_message(&mut dave, "dave heard it twice");
    assert_no_chat_message(&mut erin, "erin is in the garden");
    assert_eq!(a.stats().cluster_bad_entries, 0);
    finish(bob);
    finish(fay);
}

/// `io.of("/chat").to(...).except(...).emit(...)` on the Node.js node: socklab's sockets are
/// chosen by the same rooms, personal rooms and socket ids as the Node.js node's own.
#[test]
fn a_broadcast_from_node_with_except_holds_on_socklab() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_except") else {
        return;
    };
    let (mut alice, alice_sid) = chat_client_sid(a.addr, "alice", "lobby");
    let mut dave = chat_client(a.addr, "dave", "lobby");
    let mut erin = chat_client(a.addr, "erin", "garden");
    let (mut bob, _) = member(n.addr(), "bob", "lobby");

    let news = |n: u32| vec![json!({"n": n})];
    // (room, except, who on socklab hears it); bob, on the Node.js node, is in the lobby.
    let cases = [
        (json!("lobby"), json!("user:dave"), vec!["alice"]),
        (Value::Null, json!(alice_sid), vec!["dave", "erin"]),
        (
            Value::Null,
            json!(["garden", "user:bob"]),
            vec!["alice", "dave"],
        ),
        (
            json!(["garden", "lobby"]),
            json!([]),
            vec!["alice", "dave", "erin"],
        ),
    ];
    for (i, (room, except, hear)) in cases.into_iter().enumerate() {
        let i = i as u32 + 1;
        let mut cmd = json!({"cmd": "broadcast", "ns": "/chat", "event": "news",
                             "args": news(i), "except": except});
        if !room.is_null() {
            cmd["room"] = room.clone();
        }
        ok(&n.command(cmd));
        // Those left out are checked by the next case: a copy that reached them would come
        // before the next broadcast, which follows this one in the stream.
        for (name, stream) in [
            ("alice", &mut alice),
            ("dave", &mut dave),
            ("erin", &mut erin),
        ] {
            if hear.contains(&name) {
                let got = next_event(stream, "news", WAIT);
                assert_eq!(
                    got,
                    Some(news(i)),
                    "broadcast {i} to {room} except {except}: {name}"
                );
            }
        }
    }
    for (name, stream) in [
        ("alice", &mut alice),
        ("dave", &mut dave),
        ("erin", &mut erin),
    ] {
        assert_eq!(
            next_event(stream, "news", SILENCE),
            None,
            "{name} heard more"
        );
    }
    let bob_heard = [1, 2, 4].map(|i| heard("news", json!(news(i))));
    assert_eq!(all_heard(&mut bob, "news"), bob_heard);
    assert_eq!(a.stats().cluster_bad_entries, 0);
    finish(bob);
}

/// The same socket.io-client session on each node prints the same lines: the Node.js
/// fixture is the chat of `apps/chat.rs`, argument for argument. Compared as sets of lines:
/// the Node.js node delivers its own broadcasts only once Redis took them (the adapter awaits
/// the `XADD`), so an ack can overtake a `system` line there.
#[test]
fn the_chat_answers_alike_on_either_node() {
    let Some((_redis, a, n)) = cluster("cluster_node_alike") else {
        return;
    };
    let session = |addr: SocketAddr| -> Vec<String> {
        let (mut p, sid) = member(addr, "ann", "lobby");
        let steps: [(&str, &str); 6] = [
            ("join kitchen", "ack join"),
            ("who kitchen", "ack who"),
            ("say kitchen hello @ann and @zed", "ack say"),
            ("leave kitchen", "ack leave"),
            ("join user:ann", "ack join"),
            ("who", "ack who"),
        ];
        for (command, answer) in steps {
            p.write_stdin(&format!("{command}\n"));
            p.expect_line(answer, |l| l.starts_with(answer));
        }
        expect_seen(&mut p, "the kitchen's system line", |l| {
            l.contains("ann joined kitchen")
        });
        let mut lines: Vec<String> = finish(p)
            .into_iter()
            .map(|l| l.replace(&sid, "SID"))
            .collect();
        lines.sort();
        lines
    };
    let on_socklab = session(a.addr);
    let on_node = session(n.addr());
    assert_eq!(on_node, on_socklab);
    let want = [
        r#"ack join [["kitchen","lobby"]]"#,
        r#"ack join [["lobby"]]"#,
        r#"ack leave [["lobby"]]"#,
        r#"ack say [true]"#,
        r#"ack who [["ann"]]"#,
        r#"ack who [["ann"]]"#,
        "bye",
        "connect /chat ok sid=SID",
        r#"system [{"room":"kitchen","text":"ann joined kitchen"}] offset=string"#,
        r#"system [{"room":"lobby","text":"ann joined lobby"}] offset=string"#,
    ];
    assert_eq!(on_socklab, want);

    // A name the middleware refuses, with the same message.
    let refused = |addr: SocketAddr| -> Vec<String> {
        let mut p = interop_client(Runtime::Node, "member", addr).expect("the Node.js client");
        p.write_stdin("as no!way lobby\n");
        p.expect_line("connect_error", |l| l.starts_with("connect_error"));
        finish(p)
    };
    let on_socklab = refused(a.addr);
    assert_eq!(refused(n.addr()), on_socklab);
    assert_eq!(
        on_socklab,
        [
            "connect_error /chat a name of 1 to 32 letters, digits, - or _ is required",
            "bye"
        ]
    );
}

/// A Node.js client that lost its connection comes back to the Node.js node with what socklab
/// broadcast meanwhile: the adapter restores the session from the stream (`XRANGE` from the
/// client's offset, an entry id), reading socklab's entries like its own.
#[test]
fn a_client_recovering_on_node_gets_what_socklab_broadcast_meanwhile() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_recover_node") else {
        return;
    };
    let mut client = interop_client(Runtime::Node, "recovery", n.addr()).expect("the client");
    let sid = connected_to_root(&mut client);
    let c = n.wait_line(|l| l["connection"]["ns"] == "/", WAIT);
    assert_eq!(
        c["connection"],
        json!({"ns": "/", "id": sid, "recovered": false})
    );

    // A first broadcast gives the client an offset to come back with.
    a.handle
        .broadcast("/", None, "news", vec![json!("one")])
        .expect("a runs");
    client.expect_line("news one", |l| l == r#"news ["one"] offset=string"#);

    client.write_stdin("drop\n");
    let gone = n.wait_line(|l| l["disconnect"]["ns"] == "/", WAIT);
    assert_eq!(gone["disconnect"]["id"], json!(sid), "{gone}");
    // The client waits 2 s before it comes back.
    a.handle
        .broadcast("/", None, "news", vec![json!("two")])
        .expect("a runs");

    let again = n.wait_line(|l| l["connection"]["ns"] == "/", WAIT);
    assert_eq!(
        again["connection"],
        json!({"ns": "/", "id": sid, "recovered": true})
    );
    recovered_with_one_and_two(client);
}

/// The recovery scenario's end: the client recovered, and heard `news` "one" (before it left)
/// and "two" (replayed), once each.
fn recovered_with_one_and_two(mut client: Proc) {
    client.expect_line("recovered true", |l| l == "recovered true");
    expect_seen(&mut client, "news two, replayed", |l| {
        l.starts_with(r#"news ["two"]"#)
    });
    let lines = finish_recovery(client);
    let news: Vec<&String> = lines.iter().filter(|l| l.starts_with("news ")).collect();
    assert_eq!(
        news,
        [
            r#"news ["one"] offset=string"#,
            r#"news ["two"] offset=string"#
        ]
    );
}

/// A client recovering on socklab gets what the Node.js node broadcast while it was away:
/// socklab delivers a broadcast read from the stream like its own, into its replay log.
#[test]
fn a_client_recovering_on_socklab_gets_what_node_broadcast_meanwhile() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_recover_socklab") else {
        return;
    };
    let mut client = interop_client(Runtime::Node, "recovery", a.addr).expect("the client");
    let sid = connected_to_root(&mut client);
    let news = |text: &str| json!({"cmd": "broadcast", "ns": "/", "event": "news", "args": [text]});
    ok(&n.command(news("one")));
    client.expect_line("news one", |l| l == r#"news ["one"] offset=string"#);

    client.write_stdin("drop\n");
    wait_for(&a, "socklab sees the client go", move |io| {
        !io.is_connected(&sid)
    });
    ok(&n.command(news("two")));

    recovered_with_one_and_two(client);
    let stats = a.stats();
    assert_eq!(
        (stats.sessions_recovered, stats.broadcasts_replayed),
        (1, 1),
        "{stats:?}"
    );
}

/// Waits for a line `want` accepts, unless one was seen already (the order of a client's
/// lines is not always the test's business: Socket.IO's server sends a recovered session's
/// missed packets before its CONNECT, socklab after it).
fn expect_seen(p: &mut Proc, desc: &str, want: impl Fn(&str) -> bool) {
    if !p.seen().iter().any(|l| want(l)) {
        p.expect_line(desc, want);
    }
}

/// The `recovery` scenario's first connection: its socket id.
fn connected_to_root(client: &mut Proc) -> String {
    let line = client.expect_line("`connect / ok`", |l| l.starts_with("connect / ok sid="));
    line["connect / ok sid=".len()..].to_string()
}

/// Ends the `recovery` scenario and checks its exit; what it printed.
fn finish_recovery(mut client: Proc) -> Vec<String> {
    client.write_stdin("done\n");
    let exited = client.finish();
    assert_eq!(exited.code(), Some(0), "{}", exited.describe());
    assert!(exited.has_line("recovered true"), "{}", exited.describe());
    exited.stdout
}

// ---------------------------------------------------------------------------------------------
// Requests from the Node.js node: the node count, fetchSockets, socketsJoin/Leave, disconnect
// ---------------------------------------------------------------------------------------------

#[test]
fn node_counts_socklab_among_the_servers() {
    let Some((_redis, _a, mut n)) = cluster("cluster_node_count") else {
        return;
    };
    wait_server_count(&mut n, 2);
}

/// Waits until the Node.js node counts `want` servers in `/chat` (the adapter counts the
/// subscribers of the namespace's channel: a node counts once it subscribed).
fn wait_server_count(n: &mut NodeNode, want: u64) {
    wait_count("the Node.js node", want, || {
        let answer = n.command(json!({"cmd": "serverCount", "ns": "/chat"}));
        answer["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("{answer}"))
    });
}

/// Asks `count` until it gives `want`, for at most [`WAIT`].
fn wait_count(who: &str, want: u64, mut count: impl FnMut() -> u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = count();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who} counts {got} servers, not {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fetch_sockets_on_node_lists_socklab_sockets() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_fetch") else {
        return;
    };
    let (_alice, alice_sid) = chat_client_sid(a.addr, "alice", "lobby");
    let (_erin, _) = chat_client_sid(a.addr, "erin", "garden");
    let (bob, bob_sid) = member(n.addr(), "bob", "lobby");
    // Until socklab counts, the adapter asks nobody else.
    wait_server_count(&mut n, 2);
    let answer = n.command(json!({"cmd": "fetchSockets", "ns": "/chat", "room": "lobby"}));
    ok(&answer);
    let mut got: Vec<(Value, Value)> = answer["sockets"]
        .as_array()
        .expect("sockets")
        .iter()
        .map(|s| (s["id"].clone(), s["rooms"].clone()))
        .collect();
    got.sort_by_key(|(id, _)| id.to_string());
    let rooms = |sid: &str, name: &str| {
        let mut r = vec![sid.to_string(), "lobby".into(), format!("user:{name}")];
        r.sort();
        json!(r)
    };
    let mut want = vec![
        (json!(alice_sid), rooms(&alice_sid, "alice")),
        (json!(bob_sid), rooms(&bob_sid, "bob")),
    ];
    want.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(got, want, "{answer}");
    finish(bob);
}

#[test]
fn sockets_join_on_node_moves_socklab_sockets_too() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_join") else {
        return;
    };
    let mut alice = chat_client(a.addr, "alice", "lobby");
    let mut erin = chat_client(a.addr, "erin", "garden");
    ok(&n.command(json!({"cmd": "socketsJoin", "ns": "/chat", "in": "lobby", "rooms": ["news"]})));
    // Written after the join in the same stream: read after it.
    ok(
        &n.command(json!({"cmd": "broadcast", "ns": "/chat", "room": "news",
                          "event": "headline", "args": [1]})),
    );
    assert_eq!(
        next_event(&mut alice, "headline", WAIT),
        Some(vec![json!(1)])
    );
    assert_eq!(next_event(&mut erin, "headline", SILENCE), None);
}

#[test]
fn sockets_leave_on_node_moves_socklab_sockets_too() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_leave") else {
        return;
    };
    let mut alice = chat_client(a.addr, "alice", "lobby");
    let mut dave = chat_client(a.addr, "dave", "lobby");
    ok(&n.command(
        json!({"cmd": "socketsLeave", "ns": "/chat", "in": "user:alice",
                          "rooms": ["lobby"]}),
    ));
    let headline = |room: Value, n: u32| json!({"cmd": "broadcast", "ns": "/chat", "room": room, "event": "headline", "args": [n]});
    ok(&n.command(headline(json!("lobby"), 1)));
    ok(&n.command(headline(json!(["lobby", "user:alice"]), 2)));
    // In stream order: alice, out of the lobby, hears the second only.
    assert_eq!(
        next_event(&mut alice, "headline", WAIT),
        Some(vec![json!(2)])
    );
    assert_eq!(
        next_event(&mut dave, "headline", WAIT),
        Some(vec![json!(1)])
    );
    assert_eq!(
        next_event(&mut dave, "headline", WAIT),
        Some(vec![json!(2)])
    );
}

#[test]
fn disconnect_sockets_on_node_disconnects_socklab_sockets_too() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_disconnect") else {
        return;
    };
    let mut alice = chat_client(a.addr, "alice", "lobby");
    let mut erin = chat_client(a.addr, "erin", "garden");
    ok(&n.command(
        json!({"cmd": "disconnectSockets", "ns": "/chat", "in": "garden",
                          "close": false}),
    ));
    assert!(
        next_disconnect(&mut erin, WAIT),
        "erin is told to leave /chat"
    );
    assert!(!next_disconnect(&mut alice, SILENCE), "alice stays");
}

/// Whether a DISCONNECT for `/chat` comes on `stream` within `wait` (other packets skipped).
fn next_disconnect(stream: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).expect("SO_RCVTIMEO");
        match read_packet(stream) {
            Ok(Some(Packet::Disconnect { ns, .. })) if ns == "/chat" => return true,
            Ok(Some(_)) => continue,
            Ok(None) => return false,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(e) => panic!("reading a chat client: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests from socklab: serverSideEmit both ways, fetchSockets, the node count,
// socketsJoin and disconnectSockets on the Node.js node's sockets
// ---------------------------------------------------------------------------------------------

/// Runs `start` on socklab's thread with a sender for its callback's result, and waits (at
/// most [`WAIT`]) for that result: the requests' answers come in a callback, later.
fn answer_of<T: Send + 'static>(
    a: &SocklabNode,
    start: impl FnOnce(&mut Io, mpsc::Sender<T>) + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    ask(&a.handle, move |io| start(io, tx));
    rx.recv_timeout(WAIT)
        .expect("socklab calls the request's callback within WAIT")
}

/// Waits until socklab counts `want` servers in `/chat` (as the Node.js node counts them:
/// the subscribers of the namespace's channel).
fn wait_socklab_count(a: &SocklabNode, want: u64) {
    wait_count("socklab", want, || {
        let count = answer_of(a, |io, tx| {
            io.server_count("/chat", move |_, n| {
                let _ = tx.send(n);
            })
        });
        count as u64
    });
}

/// A server event as socklab's handler saw it: name, arguments, whether an answer is wanted.
type Heard = (String, Vec<Value>, bool);

/// Registers a handler of `/chat`'s server events on socklab that reports each event and
/// answers `{"from": "socklab", "event", "args"}`.
fn socklab_hears_server_events(a: &SocklabNode) -> mpsc::Receiver<Heard> {
    let (tx, rx) = mpsc::channel();
    ask(&a.handle, move |io| {
        io.on_server_event("/chat", move |_, ev| {
            let _ = tx.send((ev.name.clone(), ev.args.clone(), ev.answer_wanted));
            json!({"from": "socklab", "event": ev.name, "args": ev.args})
        })
    });
    rx
}

#[test]
fn server_side_emit_from_node_reaches_socklab_handlers() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_emit_to_socklab") else {
        return;
    };
    let heard = socklab_hears_server_events(&a);
    // The adapter publishes to the namespace's channel: socklab must have subscribed, and
    // an emit with an ack waits for as many answers as it counts other servers.
    wait_server_count(&mut n, 2);

    let emit = json!({"cmd": "serverSideEmit", "ns": "/chat", "event": "hello",
                      "args": [1, {"text": "hi"}]});
    ok(&n.command(emit));
    let got = heard
        .recv_timeout(WAIT)
        .expect("socklab's handler got hello");
    assert_eq!(
        got,
        ("hello".into(), vec![json!(1), json!({"text": "hi"})], false)
    );

    let emit = json!({"cmd": "serverSideEmit", "ns": "/chat", "event": "ping", "args": ["x"],
                      "ack": true});
    let answer = n.command(emit);
    ok(&answer);
    assert_eq!(
        answer["responses"],
        json!([{"from": "socklab", "event": "ping", "args": ["x"]}]),
        "socklab's handler's answer, back in Node's callback"
    );
    let got = heard
        .recv_timeout(WAIT)
        .expect("socklab's handler got ping");
    assert_eq!(got, ("ping".into(), vec![json!("x")], true));
    assert!(
        heard.recv_timeout(SILENCE).is_err(),
        "each event reached the handler once"
    );
}

#[test]
fn server_side_emit_from_socklab_reaches_node() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_emit_to_node") else {
        return;
    };
    wait_socklab_count(&a, 2);
    let is_emit = |l: &Value| l.get("serverSideEmit").is_some();

    ask(&a.handle, |io| {
        io.server_side_emit("/chat", "hello", vec![json!(1), json!({"text": "hi"})])
    });
    let line = n.wait_line(is_emit, WAIT);
    assert_eq!(
        line["serverSideEmit"],
        json!({"ns": "/chat", "event": "hello", "args": [1, {"text": "hi"}]})
    );

    let answers = answer_of(&a, |io, tx| {
        io.server_side_emit_with_ack("/chat", "ping", vec![json!("x")], move |_, r| {
            let _ = tx.send(r);
        })
    });
    let answers = answers.expect("every other server answered in time");
    assert_eq!(answers, vec![json!({"from": "node", "event": "ping"})]);
    let line = n.wait_line(is_emit, WAIT);
    assert_eq!(
        line["serverSideEmit"],
        json!({"ns": "/chat", "event": "ping", "args": ["x"]})
    );
    assert_eq!(
        n.try_wait_line(is_emit, SILENCE),
        None,
        "each event reached Node once"
    );
}

#[test]
fn fetch_sockets_on_socklab_lists_node_sockets() {
    let Some((_redis, a, n)) = cluster("cluster_node_fetch_from_socklab") else {
        return;
    };
    let (_alice, alice_sid) = chat_client_sid(a.addr, "alice", "lobby");
    let _erin = chat_client(a.addr, "erin", "garden");
    let (bob, bob_sid) = member(n.addr(), "bob", "lobby");
    let (carol, _) = member(n.addr(), "carol", "garden");
    // Until the Node.js node counts, socklab asks nobody else.
    wait_socklab_count(&a, 2);

    let sockets = answer_of(&a, |io, tx| {
        io.fetch_sockets("/chat", &["lobby"], move |_, r| {
            let _ = tx.send(r);
        })
    });
    let mut sockets = sockets.expect("every server answered in time");
    sockets.sort_by(|x, y| x.id.cmp(&y.id));
    let got: Vec<(String, Vec<String>)> = sockets
        .iter()
        .map(|s| {
            let mut rooms = s.rooms.clone();
            rooms.sort();
            (s.id.clone(), rooms)
        })
        .collect();
    let rooms = |sid: &str, name: &str| {
        let mut r = vec![sid.to_string(), "lobby".into(), format!("user:{name}")];
        r.sort();
        r
    };
    let mut want = vec![
        (alice_sid.clone(), rooms(&alice_sid, "alice")),
        (bob_sid.clone(), rooms(&bob_sid, "bob")),
    ];
    want.sort();
    assert_eq!(got, want, "{sockets:#?}");
    // What the Node.js node knows of bob: its `socket.data` and its handshake's auth.
    let seen = sockets.iter().find(|s| s.id == bob_sid);
    let seen = seen.expect("bob is among them (checked above)");
    assert_eq!(seen.data, json!({"name": "bob"}), "{seen:?}");
    assert_eq!(
        seen.handshake["auth"],
        json!({"name": "bob", "room": "lobby"}),
        "{seen:?}"
    );
    finish(bob);
    finish(carol);
}

#[test]
fn sockets_join_on_socklab_moves_node_sockets_too() {
    let Some((_redis, a, n)) = cluster("cluster_node_join_from_socklab") else {
        return;
    };
    let (mut bob, _) = member(n.addr(), "bob", "lobby");
    let (mut carol, _) = member(n.addr(), "carol", "garden");
    ask(&a.handle, |io| {
        io.sockets_join("/chat", &["lobby"], &["news"])
    });
    // Written after the join in the same stream: the Node.js node reads it after the join.
    a.handle
        .broadcast("/chat", Some("news"), "headline", vec![json!(1)])
        .expect("a runs");
    let want = heard("headline", json!([1]));
    bob.expect_line(&want, |l| l == want);
    assert_eq!(all_heard(&mut bob, "headline"), [want], "bob, once");
    assert_eq!(
        all_heard(&mut carol, "headline"),
        Vec::<String>::new(),
        "carol is in the garden"
    );
    finish(bob);
    finish(carol);
}

#[test]
fn disconnect_sockets_on_socklab_disconnects_node_sockets_too() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_disconnect_from_socklab") else {
        return;
    };
    let (mut bob, _) = member(n.addr(), "bob", "lobby");
    let (mut carol, carol_sid) = member(n.addr(), "carol", "garden");
    ask(&a.handle, |io| {
        io.disconnect_sockets("/chat", &["garden"], false)
    });
    carol.expect_line("carol's disconnect", |l| l.starts_with("disconnect "));
    assert_eq!(
        carol.seen().last(),
        Some(&"disconnect io server disconnect".to_string())
    );
    let gone = n.wait_line(|l| l["disconnect"]["ns"] == "/chat", WAIT);
    assert_eq!(
        gone["disconnect"],
        json!({"ns": "/chat", "id": carol_sid, "reason": "server namespace disconnect"})
    );

    // A broadcast to everyone afterwards: bob, still there, hears it; carol's socket is gone.
    a.handle
        .broadcast("/chat", None, "headline", vec![json!(1)])
        .expect("a runs");
    let want = heard("headline", json!([1]));
    bob.expect_line(&want, |l| l == want);
    assert_eq!(
        all_heard(&mut bob, "disconnect"),
        Vec::<String>::new(),
        "bob stays"
    );
    assert_eq!(all_heard(&mut carol, "headline"), Vec::<String>::new());
    let other = n.try_wait_line(|l| l["disconnect"]["ns"] == "/chat", SILENCE);
    assert_eq!(other, None, "nobody else was disconnected");
    finish(bob);
    finish(carol);
}

// ---------------------------------------------------------------------------------------------
// Binary broadcasts
// ---------------------------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An argument of a Node.js command that `cluster_node.js` turns into a Buffer.
fn node_bytes(bytes: &[u8]) -> Value {
    json!({"$bytes": hex(bytes)})
}

fn placeholder(num: u32) -> Value {
    json!({"_placeholder": true, "num": num})
}

/// A Node.js broadcast with Buffers (in an object and as an argument) arrives on socklab's
/// wire as attachments, the same bytes, in order, where the placeholders say.
#[test]
fn a_binary_broadcast_from_node_reaches_socklab_with_its_bytes() {
    let Some((_redis, a, mut n)) = cluster("cluster_node_binary_to_socklab") else {
        return;
    };
    let mut alice = chat_client(a.addr, "alice", "lobby");
    let small = vec![0u8, 1, 2, 127, 128, 253, 254, 255];
    let big = pseudo_random(3000, 7);
    let args = json!([{"data": node_bytes(&small), "name": "blob"}, node_bytes(&big)]);
    let cmd = json!({"cmd": "broadcast", "ns": "/chat", "room": "lobby", "event": "blob",
                     "args": args});
    ok(&n.command(cmd));

    let got = next_event_packet(&mut alice, "blob", WAIT).expect("alice gets the blob");
    let Packet::Event {
        args,
        attachments,
        offset,
        ..
    } = got
    else {
        panic!("next_event_packet returns an event: {got:?}");
    };
    assert_eq!(attachments, vec![small, big], "the bytes, in order");
    assert_eq!(
        args,
        vec![
            json!({"data": placeholder(0), "name": "blob"}),
            placeholder(1)
        ]
    );
    let offset = offset.expect("a broadcast in a cluster has an offset");
    assert!(stream_id(offset).is_some(), "an entry id: {offset:#x}");
    assert_eq!(
        next_event(&mut alice, "blob", SILENCE),
        None,
        "alice got it twice"
    );
    assert_eq!(a.stats().cluster_bad_entries, 0);
}

/// socklab's broadcast with attachments (one an object points at, one an argument of its
/// own) reaches a socket.io-client on the Node.js node as Buffers with the same bytes.
#[test]
fn a_binary_broadcast_from_socklab_reaches_node_with_its_bytes() {
    let Some((_redis, a, n)) = cluster("cluster_node_binary_to_node") else {
        return;
    };
    let (mut bob, _) = member(n.addr(), "bob", "lobby");
    let (mut carol, _) = member(n.addr(), "carol", "garden");
    // 16 bytes each: client.js prints up to 16 bytes in hex, so the line shows them all.
    let first: Vec<u8> = vec![
        0, 1, 2, 127, 128, 253, 254, 255, 9, 10, 13, 32, 34, 92, 200, 7,
    ];
    let second = pseudo_random(16, 11);
    let want = format!(
        r#"blob [{{"data":"<bytes 16 {}>"}},"<bytes 16 {}>"] offset=string"#,
        hex(&first),
        hex(&second)
    );
    ask(&a.handle, move |io| {
        let args = vec![json!({"data": placeholder(0)})];
        io.broadcast("/chat")
            .to("lobby")
            .emit_with("blob", args, vec![first, second])
            .expect("a broadcast within the limits")
    });
    bob.expect_line(&want, |l| l.starts_with("blob "));
    assert_eq!(all_heard(&mut bob, "blob"), [want], "bob, once");
    assert_eq!(all_heard(&mut carol, "blob"), Vec::<String>::new());
    finish(bob);
    finish(carol);
}

// ---------------------------------------------------------------------------------------------
// A client moved from one node to the other
// ---------------------------------------------------------------------------------------------

/// One of the two nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Socklab,
    Node,
}

#[test]
fn a_client_moved_from_socklab_to_node_recovers_what_it_missed() {
    client_moved("cluster_node_move_to_node", Side::Socklab);
}

#[test]
fn a_client_moved_from_node_to_socklab_recovers_what_it_missed() {
    client_moved("cluster_node_move_to_socklab", Side::Node);
}

/// What a load balancer does when it sends a client to another server (client.js's `move`):
/// a socket.io-client on `/` of node `from` gets a broadcast, its connection is cut, the
/// cluster broadcasts twice while it is away (once from each node), and the same client
/// connects to the other node with its private id and its last offset. Its session comes
/// back there: `recovered`, the same socket id, and the two broadcasts it missed, once each,
/// with their stream entry ids as offsets (the same ids socklab's own client saw).
fn client_moved(test: &str, from: Side) {
    let Some((redis, a, mut n)) = cluster(test) else {
        return;
    };
    // socklab delivers a broadcast only once it read it back from the stream: when this
    // client of socklab's got one, the entry is in Redis and in socklab's replay log.
    let (mut witness, answer) = raw_connect_ns(a.addr, "/", json!({}));
    assert!(matches!(answer, Packet::Connect { .. }), "{answer:?}");
    let (from_addr, to_addr) = match from {
        Side::Socklab => (a.addr, n.addr()),
        Side::Node => (n.addr(), a.addr),
    };
    let mut client = interop_client(Runtime::Node, "move", from_addr).expect("the client");
    let sid = connected_to_root(&mut client);
    if from == Side::Node {
        let c = n.wait_line(|l| l["connection"]["ns"] == "/", WAIT);
        assert_eq!(c["connection"]["recovered"], json!(false), "{c}");
    }
    let one = news(&a, &mut n, &mut witness, Side::Socklab, "one");
    client.expect_line("news one", |l| l.starts_with(r#"news ["one"]"#));

    client.write_stdin("cut\n");
    let left = client.expect_line("`left`", |l| l.starts_with("left pid="));
    let (pid, offset) = left["left pid=".len()..]
        .split_once(" offset=")
        .unwrap_or_else(|| panic!("`left pid=PID offset=OFFSET`: {left}"));
    let pid = pid.to_string();
    assert_eq!(offset, one, "the client's last offset: the entry it got");
    client.expect_line("the cut", |l| l.starts_with("disconnect "));
    // The client closed its transport itself: "forced close" to it, "transport close" to
    // the server (a connection lost, so the session is kept).
    let cut = client.seen().last().map(String::as_str);
    assert_eq!(cut, Some("disconnect forced close"));
    // The node it left saw it go, and its session is in Redis for the other one.
    match from {
        Side::Socklab => wait_for(&a, "socklab sees the client go", {
            let sid = sid.clone();
            move |io| !io.is_connected(&sid)
        }),
        Side::Node => {
            let gone = n.wait_line(|l| l["disconnect"]["ns"] == "/", WAIT);
            let want = json!({"ns": "/", "id": sid, "reason": "transport close"});
            assert_eq!(gone["disconnect"], want);
        }
    }
    wait_session_in_redis(&redis, &pid);
    let two = news(&a, &mut n, &mut witness, Side::Socklab, "two");
    let three = news(&a, &mut n, &mut witness, Side::Node, "three");

    client.write_stdin(&format!("to http://{to_addr}\n"));
    let line = client.expect_line("the connect to the other node", |l| {
        l.starts_with("connect / ok recovered=")
    });
    assert_eq!(line, format!("connect / ok recovered=true sid={sid}"));
    expect_seen(&mut client, "news three", |l| {
        l.starts_with(r#"news ["three"]"#)
    });
    let news_lines: Vec<String> = finish(client)
        .into_iter()
        .filter(|l| l.starts_with("news "))
        .collect();
    let want = [("one", &one), ("two", &two), ("three", &three)]
        .map(|(text, id)| format!(r#"news ["{text}"] offset={id}"#));
    assert_eq!(news_lines, want, "each once, in the stream's order");
    for id in [&one, &two, &three] {
        let entry = redis.command(&["XRANGE", "socket.io", id, id]);
        assert!(entry.contains(id.as_str()), "{id} is an entry: {entry}");
    }
    match from {
        Side::Socklab => {
            let c = n.wait_line(|l| l["connection"]["ns"] == "/", WAIT);
            let want = json!({"ns": "/", "id": sid, "recovered": true});
            assert_eq!(c["connection"], want);
        }
        Side::Node => {
            let stats = a.stats();
            let got = (stats.sessions_recovered, stats.broadcasts_replayed);
            assert_eq!(got, (1, 2), "{stats:?}");
        }
    }
}

/// Broadcasts `news [text]` to `/` from node `side`, and waits for socklab's `witness` to get
/// it: its offset, the stream entry id `<ms>-<seq>`.
fn news(
    a: &SocklabNode,
    n: &mut NodeNode,
    witness: &mut TcpStream,
    side: Side,
    text: &str,
) -> String {
    match side {
        Side::Socklab => a
            .handle
            .broadcast("/", None, "news", vec![json!(text)])
            .expect("a runs"),
        Side::Node => {
            ok(&n.command(json!({"cmd": "broadcast", "ns": "/", "event": "news", "args": [text]})))
        }
    }
    let got = next_event_packet(witness, "news", WAIT).expect("the witness gets the news");
    let Packet::Event { args, offset, .. } = got else {
        panic!("next_event_packet returns an event: {got:?}");
    };
    assert_eq!(args, vec![json!(text)]);
    let offset = offset.expect("a broadcast in a cluster has an offset");
    stream_id(offset).expect("an offset packed from a stream entry id")
}

/// Waits until Redis holds the session of private id `pid`: the node a client left keeps it
/// there (socklab while the socket lives, Node.js's adapter when it disconnects).
fn wait_session_in_redis(redis: &RedisServer, pid: &str) {
    let key = format!("sio:session:{pid}");
    let deadline = Instant::now() + WAIT;
    while redis.command(&["EXISTS", &key]) != ":1\r\n" {
        assert!(Instant::now() < deadline, "no {key} in Redis");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two socklab nodes and a Node.js node on one Redis, a member of room `lobby` and one of
/// `garden` on each: a chat message from each node's lobby member reaches the lobby members
/// of every node exactly once (not its sender), and nobody in the garden.
#[test]
fn three_nodes_a_message_from_each_reaches_every_member_once() {
    let Some(redis) = RedisServer::start("cluster_three_nodes") else {
        return;
    };
    let Some(n) = NodeNode::start(redis.addr) else {
        return;
    };
    let (a, b) = (
        SocklabNode::start(redis.addr),
        SocklabNode::start(redis.addr),
    );
    redis.wait_readers(3);
    let mut alice = chat_client(a.addr, "alice", "lobby");
    let mut gus = chat_client(a.addr, "gus", "garden");
    let mut beth = chat_client(b.addr, "beth", "lobby");
    let mut hal = chat_client(b.addr, "hal", "garden");
    let (mut cid, _) = member(n.addr(), "cid", "lobby");
    let (mut zed, _) = member(n.addr(), "zed", "garden");
    // Everyone's arrival has crossed before anyone speaks.
    let zed_arrived = heard(
        "system",
        json!([{"room": "garden", "text": "zed joined garden"}]),
    );
    zed.expect_line(&zed_arrived, |l| l == zed_arrived);
    for node in [&a, &b] {
        node.wait_stats("both of Node.js's joins read", |s| s.cluster_received >= 2);
    }

    say(&mut alice, "lobby", "from a");
    say(&mut beth, "lobby", "from b");
    cid.write_stdin("say lobby from-n\n");
    let message = |from: &str, text: &str| json!({"from": from, "room": "lobby", "text": text});

    // The socklab members: the two others' messages, once each, in any order.
    for (who, stream, others) in [
        ("alice", &mut alice, [("beth", "from b"), ("cid", "from-n")]),
        ("beth", &mut beth, [("alice", "from a"), ("cid", "from-n")]),
    ] {
        let mut got = Vec::new();
        while let Some(m) = next_chat_message(stream, SILENCE.max(Duration::from_secs(2))) {
            got.push(m);
        }
        got.sort_by_key(|m| m["from"].to_string());
        let want: Vec<Value> = others.iter().map(|(f, t)| message(f, t)).collect();
        assert_eq!(got, want, "{who}");
    }
    // The Node.js member: alice's and beth's, once each.
    let mut heard_by_cid = all_heard(&mut cid, "chat message");
    heard_by_cid.sort();
    assert_eq!(
        heard_by_cid,
        [
            heard("chat message", json!([message("alice", "from a")])),
            heard("chat message", json!([message("beth", "from b")])),
        ]
    );
    // The garden heard no chat message, on any node.
    assert_no_chat_message(&mut gus, "gus");
    assert_no_chat_message(&mut hal, "hal");
    assert_eq!(all_heard(&mut zed, "chat message"), Vec::<String>::new());
    for node in [&a, &b] {
        let s = node.stats();
        assert_eq!((s.cluster_bad_entries, s.cluster_dropped), (0, 0), "{s:?}");
    }
    finish(cid);
    finish(zed);
}
