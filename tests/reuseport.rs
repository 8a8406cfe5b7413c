//! Two real `socklab serve --reuse-port` processes on one port (lesson 23): the kernel gives
//! each of them connections; each keeps its own rooms, so a chat message does not cross to
//! the other process (the "what breaks"), unless both joined a cluster with `--redis` (issue
//! 14's fix: then it does, once); a server without the flag gets EADDRINUSE. And lesson 23's demonstration still prints what the book shows.
//!
//! Every wait is bounded (`common::WAIT`, read timeouts on the raw clients); the servers are
//! this test's children, stopped by their pids (SIGTERM, and SIGKILL by `Reaper` if a test
//! fails first).

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{
    command, raw_connect_ns, read_packet, run, sigterm, spawn_listening, wait_exit, Reaper,
    EXIT_WAIT,
};
use serde_json::{json, Value};
use socklab::wire::packet::{self, Packet};

const SOCKLAB: &str = env!("CARGO_BIN_EXE_socklab");

/// How many chat clients connect: with 20, both processes get some but once in 2^19 runs.
const CLIENTS: usize = 20;

/// How long a client listens for a message that must not come.
const SILENCE: Duration = Duration::from_millis(700);

/// `socklab serve --reuse-port` on `addr` (in the cluster of `redis`, if given): the child
/// and the address it listens on.
fn serve_shared(addr: &str, redis: Option<SocketAddr>) -> (Reaper, SocketAddr) {
    let url = redis.map(|r| format!("redis://{r}"));
    let mut args = vec!["serve", "--reuse-port", "--addr", addr];
    if let Some(url) = &url {
        args.extend(["--redis", url]);
    }
    let mut cmd = command(SOCKLAB, &args);
    let (child, addr, _lines) = spawn_listening(&mut cmd, "socklab serve --reuse-port");
    (child, addr)
}

/// A chat client named `name` in room lobby, over a raw connection.
fn chat_client(addr: SocketAddr, name: &str) -> TcpStream {
    let auth = json!({"name": name, "room": "lobby"});
    let (stream, answer) = raw_connect_ns(addr, "/chat", auth);
    assert!(
        matches!(answer, Packet::Connect { .. }),
        "{name} was refused: {answer:?}"
    );
    stream
}

fn send(stream: &mut TcpStream, p: &Packet) {
    let mut bytes = Vec::new();
    packet::encode(p, &mut bytes);
    stream.write_all(&bytes).expect("a packet sent");
}

/// The names in room lobby on the process that holds `stream` (the chat's `who`, acked).
fn who(stream: &mut TcpStream) -> BTreeSet<String> {
    send(
        stream,
        &Packet::Event {
            ns: "/chat".into(),
            name: "who".into(),
            args: vec![json!("lobby")],
            attachments: Vec::new(),
            id: Some(1),
            offset: None,
        },
    );
    loop {
        match read_packet(stream).expect("an answer to who") {
            Some(Packet::Ack { id: 1, args, .. }) => {
                let names = args.first().and_then(Value::as_array).expect("[NAMES]");
                return names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect();
            }
            Some(_) => continue, // `system` lines about joins
            None => panic!("the server closed the connection"),
        }
    }
}

/// The next `chat message` on `stream` within `wait`, `system` lines skipped; `None` if none.
fn next_chat_message(stream: &mut TcpStream, wait: Duration) -> Option<Vec<Value>> {
    stream.set_read_timeout(Some(wait)).expect("SO_RCVTIMEO");
    loop {
        match read_packet(stream) {
            Ok(Some(Packet::Event { name, args, .. })) if name == "chat message" => {
                return Some(args)
            }
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the server closed the connection"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(e) => panic!("reading a chat client: {e}"),
        }
    }
}

/// Stops a server we started, by its pid, and checks it stopped cleanly.
fn stop(mut server: Reaper) {
    sigterm(&server.0);
    let status = wait_exit(&mut server.0, "socklab serve --reuse-port", EXIT_WAIT);
    assert!(status.success(), "socklab serve ended with {status}");
}

#[test]
fn reuse_port_spreads_clients_and_a_chat_message_stays_on_its_process() {
    spread_and_speak(None);
}

/// The fix (issue 14): with `--redis`, both processes are nodes of one cluster, and the
/// message reaches the other process's client too, once.
#[test]
fn with_redis_a_chat_message_reaches_the_clients_of_the_other_process() {
    let Some(redis) = common::RedisServer::start("reuseport_redis") else {
        return;
    };
    spread_and_speak(Some(&redis));
}

/// Two processes on one port, 20 chat clients spread between them, and p00 speaks: whether
/// a client on the other process hears it is whether the processes share a cluster.
fn spread_and_speak(redis: Option<&common::RedisServer>) {
    let cross = redis.is_some();
    let redis_addr = redis.map(|r| r.addr);
    let (first, addr) = serve_shared("127.0.0.1:0", redis_addr);
    let (second, same) = serve_shared(&addr.to_string(), redis_addr);
    if let Some(redis) = redis {
        redis.wait_readers(2); // both nodes read the stream before anyone speaks
    }
    assert_eq!(
        same, addr,
        "the second process listens on the first one's port"
    );

    let names: Vec<String> = (0..CLIENTS).map(|i| format!("p{i:02}")).collect();
    let mut clients: Vec<TcpStream> = names.iter().map(|n| chat_client(addr, n)).collect();

    // Each process knows only the clients it accepted: two disjoint halves of the names.
    let one = who(&mut clients[0]);
    let other_at = (0..CLIENTS)
        .find(|&i| !one.contains(&names[i]))
        .expect("the kernel gave the second process at least one of 20 connections");
    let two = who(&mut clients[other_at]);
    assert!(one.is_disjoint(&two), "{one:?} and {two:?} overlap");
    let all: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(
        one.union(&two).cloned().collect::<BTreeSet<_>>(),
        all,
        "every client is on exactly one process"
    );

    // p00 speaks; one client on its process, one on the other, listen.
    let same_at = (1..CLIENTS)
        .find(|&i| one.contains(&names[i]))
        .expect("p00's process got at least two of 20 connections");
    send(
        &mut clients[0],
        &Packet::Event {
            ns: "/chat".into(),
            name: "chat message".into(),
            args: vec![json!("lobby"), json!("hello from p00")],
            attachments: Vec::new(),
            id: None,
            offset: None,
        },
    );
    let heard = next_chat_message(&mut clients[same_at], common::WAIT)
        .expect("a client on the speaker's process hears the message");
    assert_eq!(heard[0]["text"], "hello from p00");
    let wait = if cross { common::WAIT } else { SILENCE };
    let across = next_chat_message(&mut clients[other_at], wait);
    assert_eq!(
        across.is_some(),
        cross,
        "a client on the other process heard {across:?}"
    );
    if cross {
        let again = next_chat_message(&mut clients[other_at], SILENCE);
        assert_eq!(again, None, "the other process's client heard it twice");
    }

    drop(clients);
    stop(first);
    stop(second);
}

#[test]
fn serve_without_reuse_port_beside_one_with_it_gets_eaddrinuse() {
    let (server, addr) = serve_shared("127.0.0.1:0", None);
    let out = run(SOCKLAB, &["serve", "--addr", &addr.to_string()], None);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let want = format!("error: bind({addr}): EADDRINUSE: ");
    assert!(out.stderr.contains(&want), "{}", out.describe());
    stop(server);
}

#[test]
fn serve_help_tells_what_reuse_port_does_and_does_not() {
    let out = run(SOCKLAB, &["serve", "--help"], None);
    let help = out
        .stdout_text()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "--reuse-port",
        "SO_REUSEPORT",
        "own rooms",
        "reaches only the clients of the process",
    ] {
        assert!(
            help.contains(needle),
            "`serve --help` lacks {needle:?}:\n{help}"
        );
    }
}

/// `tests/trace.rs` does not run lesson 23 (its self-trace mixes three processes, and their
/// descriptor numbers follow the split), so its output is checked here, as that test checks
/// the others: ports numbered in order, lines marked `varies` masked.
#[test]
fn lesson_23_prints_what_the_book_shows() {
    common::assert_prints_recorded_output(env!("CARGO_BIN_EXE_23_reuseport"), "23");
}

#[test]
fn lesson_23_help_shows_its_default_address_and_the_option() {
    let bin = env!("CARGO_BIN_EXE_23_reuseport");
    for side in ["serve", "client"] {
        let out = run(bin, &[side, "--help"], None);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        let text = out.stdout_text();
        assert!(text.contains("[default: 127.0.0.1:7023]"), "{text}");
        assert!(text.contains("--trace"), "{text}");
    }
    let serve = run(bin, &["serve", "--help"], None).stdout_text();
    assert!(serve.contains("--reuse-port"), "{serve}");
}

/// A node killed with SIGKILL writes nothing on its way out: its clients' sessions are in
/// Redis because each node writes a socket's session while it lives. Alice, whose node was
/// killed, comes back on the other node (a load balancer would send her there) with her
/// private id and the offset she saw last: same socket id, same room, and the messages she
/// missed while she was away.
#[test]
fn a_killed_nodes_client_recovers_its_session_on_the_other_node() {
    let Some(redis) = common::RedisServer::start("reuseport_killed") else {
        return;
    };
    let (mut doomed, first) = serve_shared("127.0.0.1:0", Some(redis.addr));
    let (survivor, second) = serve_shared("127.0.0.1:0", Some(redis.addr));
    redis.wait_readers(2);
    let (mut alice, answer) =
        raw_connect_ns(first, "/chat", json!({"name": "alice", "room": "lobby"}));
    let Packet::Connect { data: Some(d), .. } = answer else {
        panic!("alice was refused: {answer:?}");
    };
    let (sid, pid) = (d["sid"].clone(), d["pid"].clone());
    let mut bob = chat_client(second, "bob");
    let say = |stream: &mut TcpStream, text: &str| {
        let p = Packet::Event {
            ns: "/chat".into(),
            name: "chat message".into(),
            args: vec![json!("lobby"), json!(text)],
            attachments: Vec::new(),
            id: None,
            offset: None,
        };
        send(stream, &p);
    };
    say(&mut bob, "one");
    alice
        .set_read_timeout(Some(common::WAIT))
        .expect("SO_RCVTIMEO");
    let offset = loop {
        match read_packet(&mut alice).expect("alice reads") {
            Some(Packet::Event { name, offset, .. }) if name == "chat message" => {
                break offset.expect("a broadcast has an offset")
            }
            Some(_) => continue,
            None => panic!("alice's node closed her connection"),
        }
    };

    doomed.0.kill().expect("SIGKILL");
    let _ = doomed.0.wait();
    say(&mut bob, "two");
    say(&mut bob, "three");
    std::thread::sleep(Duration::from_millis(300));

    let auth = json!({"name": "alice", "room": "lobby", "pid": pid, "offset": offset});
    let (mut alice, answer) = raw_connect_ns(second, "/chat", auth);
    let Packet::Connect { data: Some(d), .. } = answer else {
        panic!("alice was refused on the other node: {answer:?}");
    };
    assert_eq!(d["recovered"], json!(true), "{d}");
    assert_eq!(d["sid"], sid);
    let mut missed = Vec::new();
    while let Some(args) = next_chat_message(&mut alice, SILENCE) {
        missed.push(args[0]["text"].clone());
    }
    assert_eq!(missed, vec![json!("two"), json!("three")]);
    drop((alice, bob));
    stop(survivor);
}
