//! What a recovery replays: only what was missed (not volatile broadcasts), after a server
//! restart too; parked sessions and the replay log are bounded, and a recovery that cannot
//! replay everything is not claimed.

use super::*;

/// The server restarts (a new process would do the same: offsets start again at 1); the client
/// comes back to a new session. Then its connection is cut, and the new server broadcasts
/// while it is away: the recovery must replay those, although their offsets are lower than
/// the last offset the client saw from the old server.
#[test]
fn recovery_after_a_server_restart_replays_what_was_missed() {
    let (tx, rx) = mpsc::channel();
    let cutter = Cutter::default();
    let config = server_config();
    let first = start_server(&config, any_port(), &tx, Some(cutter.clone()));
    let addr = first.addr;
    let proxy = Proxy::start(&cutter, addr);
    let mut client = Watched::connect(client_options(proxy.addr));
    for n in 1..=5 {
        first
            .handle
            .broadcast("/", None, "news", vec![json!(format!("old-{n}"))])
            .expect("the server is running");
    }
    client.run_until_got("news", json!("old-5"));

    first.handle.stop().expect("the server is running");
    client.run_until_fired("disconnect", 1);
    first.stop().expect("the first server stops cleanly");
    let second = start_server(&config, addr, &tx, Some(cutter.clone()));
    client.run_until_fired("reconnect", 1);
    assert!(!client.io().recovered(), "a new server, a new session");
    let sid = client.sid();
    client.inbox.borrow_mut().clear();

    let mut r = Recovery {
        server: second,
        reports: Reports::new(rx),
        proxy,
        client,
        sid: sid.clone(),
    };
    r.cut_and_wait_for_server();
    r.broadcast(None, "news", json!("missed-1"));
    r.broadcast(None, "news", json!("missed-2"));
    ask(&r.handle(), |_| ());
    r.client.run_until_fired("reconnect", 2);
    assert!(r.client.io().recovered());
    assert_eq!(r.client.io().id(), Some(sid.as_str()));
    r.broadcast(None, "fence", json!(1));
    r.client.run_until_got("fence", json!(1));
    assert_eq!(
        r.take_inbox(),
        ["news [\"missed-1\"]", "news [\"missed-2\"]", "fence [1]"],
        "the broadcasts of the new server missed while away, once, in order"
    );
    r.finish();
}

/// A volatile broadcast made while the client is away is not replayed (section 9 of
/// docs/protocol.md: volatile emits are never replayed); the ordinary one is.
#[test]
fn recovery_does_not_replay_volatile_broadcasts() {
    let mut r = Recovery::start(server_config(), "room-a");
    r.cut_and_wait_for_server();
    ask(&r.handle(), |io| {
        let _ = io
            .broadcast("/")
            .to("room-a")
            .volatile()
            .emit("position", vec![json!(1)]);
    });
    r.broadcast(Some("room-a"), "news", json!("missed"));
    assert_eq!(r.recovered_inbox(), ["news [\"missed\"]", "fence [1]"]);
    r.finish();
}

/// Every socket is in the room named after its id, also while it is away: a broadcast to that
/// room made meanwhile is replayed, and one that excludes that room is not.
#[test]
fn recovery_replays_broadcasts_to_the_sockets_own_room() {
    let mut r = Recovery::start(server_config(), "room-a");
    r.cut_and_wait_for_server();
    let sid = r.sid.clone();
    r.broadcast(Some(&sid), "direct", json!("missed"));
    let except = sid.clone();
    ask(&r.handle(), move |io| {
        let _ = io
            .broadcast("/")
            .except(&except)
            .emit("not-you", vec![json!(1)]);
    });
    r.client.run_until_fired("reconnect", 1);
    assert!(r.client.io().recovered());
    r.broadcast(Some(&sid), "fence", json!(1));
    r.client.run_until_got("fence", json!(1));
    assert_eq!(r.take_inbox(), ["direct [\"missed\"]", "fence [1]"]);
    r.finish();
}

/// `max_parked_sessions` bounds the sessions kept for clients that are away: with room for
/// two, the third one parked pushes out the first (the oldest), and the other two come back
/// with their ids.
#[test]
fn past_max_parked_sessions_the_oldest_session_is_dropped() {
    let config = ServerConfig {
        max_parked_sessions: 2,
        ..server_config()
    };
    let (tx, rx) = mpsc::channel();
    let server = start_server(&config, any_port(), &tx, None);
    let mut reports = Reports::new(rx);
    let mut away = Vec::new();
    for _ in 0..3 {
        let (stream, reply) = raw_connect(server.addr, None);
        let sid = reply["sid"].as_str().expect("a sid").to_string();
        // End of file without DISCONNECT: an unexpected loss, so the session is parked.
        drop(stream);
        let seen = reports.wait("the lost connection", disconnected_of(&sid));
        assert_eq!(reason_of(&seen), reasons::TRANSPORT_CLOSE);
        away.push((sid, reply["pid"].clone(), reply["offset"].clone()));
    }
    // The connections stay open until the end: one closing now would park its session.
    let mut came_back = Vec::new();
    let mut open = Vec::new();
    for (sid, pid, offset) in &away {
        let auth = json!({ "pid": pid, "offset": offset });
        let (stream, reply) = raw_connect(server.addr, Some(auth));
        let same = reply["sid"].as_str() == Some(sid.as_str());
        came_back.push((reply["recovered"] == json!(true), same));
        open.push(stream);
    }
    assert_eq!(
        came_back,
        [(false, false), (true, true), (true, true)],
        "the first session (the oldest) was dropped; the two later ones were kept"
    );
    drop(open);
    server.stop().expect("the server stops cleanly");
}

/// A client may come back before the server noticed that its old connection died (a NAT box
/// dropped it silently, say). The CONNECT with the session's private id (a secret only that
/// client holds) moves the session to the new connection: the old socket is told why with a
/// DISCONNECT `session replaced`, its connection is closed, and the session is restored on
/// the new one.
#[test]
fn a_client_back_before_its_old_connection_is_noticed_gets_its_session() {
    let (tx, rx) = mpsc::channel();
    let server = start_server(&server_config(), any_port(), &tx, None);
    let mut reports = Reports::new(rx);
    let (mut old, reply) = raw_connect(server.addr, None);
    let sid = reply["sid"].as_str().expect("a sid").to_string();
    let auth = json!({ "pid": reply["pid"], "offset": reply["offset"] });
    let (new, reply) = raw_connect(server.addr, Some(auth));
    assert_eq!(reply["recovered"], json!(true));
    assert_eq!(
        reply["sid"].as_str(),
        Some(sid.as_str()),
        "the same socket id"
    );
    let seen = reports.wait("the old socket's end", disconnected_of(&sid));
    assert_eq!(reason_of(&seen), reasons::SESSION_REPLACED);
    // The old connection hears why, then end of file after what was queued.
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while let Some(p) = read_packet(&mut old).expect("the old connection closes cleanly") {
        last = Some(p);
        assert!(Instant::now() < deadline, "the old connection stays open");
    }
    assert_eq!(
        last,
        Some(Packet::Disconnect {
            ns: "/".into(),
            reason: Some(reasons::SESSION_REPLACED.into())
        }),
        "the replaced connection's last packet says why"
    );
    drop(new);
    server.stop().expect("the server stops cleanly");
}

/// The chat's middleware refuses a name that is taken. A client back over a new connection
/// before its old one is noticed dead presents its session's private id: the old socket is
/// replaced before the middleware looks, so the client's own name is free for it, and only
/// for it.
#[test]
fn a_chat_name_is_free_for_its_own_client_back_over_a_new_connection() {
    let server = RunningServer::start(server_config(), any_port(), socklab::apps::chat::install)
        .expect("a chat server");
    let (_old, first) = raw_connect_ns(server.addr, "/chat", json!({"name": "ada"}));
    let Packet::Connect { data: Some(d), .. } = first else {
        panic!("ada joins the chat: {first:?}");
    };
    let (_other, taken) = raw_connect_ns(server.addr, "/chat", json!({"name": "ada"}));
    assert!(
        matches!(taken, Packet::ConnectError { .. }),
        "someone else cannot take the name: {taken:?}"
    );
    let auth = json!({"name": "ada", "pid": d["pid"], "offset": d["offset"]});
    let (_new, back) = raw_connect_ns(server.addr, "/chat", auth);
    let Packet::Connect { data: Some(b), .. } = back else {
        panic!("ada is back with her session: {back:?}");
    };
    assert_eq!(b["recovered"], json!(true));
    assert_eq!(b["sid"], d["sid"], "the same socket id");
    server.stop().expect("the server stops cleanly");
}

/// With `replay_limit: 2`, five broadcasts made while the client is away cannot all be
/// replayed. Then the client must not be told that its session was recovered while it silently
/// misses three of them: either it is not recovered, or it gets all five.
#[test]
fn a_recovery_that_cannot_replay_everything_missed_is_not_claimed() {
    let config = ServerConfig {
        replay_limit: 2,
        ..server_config()
    };
    let mut r = Recovery::start(config, "room-a");
    r.cut_and_wait_for_server();
    for n in 1..=5 {
        r.broadcast(Some("room-a"), "news", json!(n));
    }
    ask(&r.handle(), |_| ());
    r.client.run_until_fired("reconnect", 1);
    r.broadcast(None, "fence", json!(1));
    r.client.run_until_got("fence", json!(1));
    let got = r.take_inbox();
    if r.client.io().recovered() {
        assert_eq!(
            got,
            [
                "news [1]",
                "news [2]",
                "news [3]",
                "news [4]",
                "news [5]",
                "fence [1]"
            ],
            "recovered, so nothing missed may be missing"
        );
    } else {
        assert_ne!(r.client.io().id(), Some(r.sid.as_str()), "a new session");
        assert_eq!(got, ["fence [1]"]);
    }
    r.finish();
}

/// A quiet client: the only broadcast it ever received is the one to its room, long ago;
/// other rooms were busy meanwhile, and everything older than `max_disconnection_duration`
/// has left the log. Nothing addressed to it is gone, so a short loss is recovered: same id,
/// same room, and the next broadcast to the room arrives once. (Before, the log's age bound
/// refused this session: the offset the client held had been dropped.)
#[test]
fn a_quiet_client_is_recovered_after_its_last_broadcast_aged_out_of_the_log() {
    let config = ServerConfig {
        max_disconnection_duration: Duration::from_millis(600),
        ..server_config()
    };
    let mut r = Recovery::start_quiet(config);
    r.broadcast(Some("busy"), "noise", json!(1));
    // Past the log's age bound (the client keeps answering PINGs meanwhile)...
    r.client.run_for(Duration::from_millis(900));
    // ...so this broadcast drops both earlier ones from the log.
    r.broadcast(Some("busy"), "noise", json!(2));
    ask(&r.handle(), |_| ());
    r.cut_quiet_client_and_expect_recovery();
}

/// The same with the count bound: more broadcasts to other rooms than the log holds, while
/// the client is connected and receives none of them. Its session is restored.
#[test]
fn a_client_is_recovered_after_the_log_overflowed_with_broadcasts_to_other_rooms() {
    let config = ServerConfig {
        replay_limit: 20,
        ..server_config()
    };
    let r = Recovery::start_quiet(config);
    for n in 0..50 {
        r.broadcast(Some("busy"), "noise", json!(n));
    }
    let dropped = ask(&r.handle(), |io| io.stats().replay_dropped);
    assert!(dropped >= 30, "the log dropped {dropped} of 51");
    r.cut_quiet_client_and_expect_recovery();
}

/// The replay log is bounded in bytes as well as in count: large broadcasts to an empty room
/// keep at most `replay_max_bytes` of frames, and what was dropped is counted.
#[test]
fn the_replay_log_is_bounded_in_bytes_and_counts_what_it_drops() {
    let config = ServerConfig {
        replay_max_bytes: 1 << 20,
        ..server_config()
    };
    let (tx, _rx) = mpsc::channel();
    let server = start_server(&config, any_port(), &tx, None);
    let big = "x".repeat(200_000);
    for _ in 0..20 {
        server
            .handle
            .broadcast("/", Some("nobody"), "big", vec![json!(big)])
            .expect("the server is running");
    }
    let stats = ask(&server.handle, |io| io.stats().clone());
    assert_eq!(stats.broadcasts, 20);
    assert!(
        stats.replay_bytes <= 1 << 20 && stats.replay_bytes >= 800_000,
        "the log holds {} bytes",
        stats.replay_bytes
    );
    assert_eq!(stats.replay_dropped, 15, "5 frames of ~200 kB fit in 1 MiB");
    server.stop().expect("the server stops cleanly");
}
