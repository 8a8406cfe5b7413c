//! Connection state recovery through a [`Proxy`] that cuts connections: id, rooms and missed
//! broadcasts come back; an acked emit whose answer was lost is answered once.

use super::*;

/// A server, a proxy in front of it, and a client through the proxy that has joined `room`.
pub(crate) struct Recovery {
    pub(crate) server: RunningServer,
    pub(crate) reports: Reports,
    pub(crate) proxy: Proxy,
    pub(crate) client: Watched,
    pub(crate) sid: String,
}

impl Recovery {
    pub(crate) fn start(config: ServerConfig, room: &str) -> Recovery {
        let mut r = Recovery::connect(config, |_| {});
        let rooms = r.client.round_trip("join", vec![json!(room)]);
        let mut want = vec![room.to_string(), r.sid.clone()];
        want.sort();
        assert_eq!(rooms, vec![json!(want)]);
        r
    }

    /// The server, the proxy and the client, in no room yet; `before` runs with the server
    /// before the client connects.
    pub(crate) fn connect(config: ServerConfig, before: impl FnOnce(&RunningServer)) -> Recovery {
        let (tx, rx) = mpsc::channel();
        let cutter = Cutter::default();
        let server = start_server(&config, any_port(), &tx, Some(cutter.clone()));
        before(&server);
        let proxy = Proxy::start(&cutter, server.addr);
        let mut client = Watched::connect(client_options(proxy.addr));
        assert!(!client.io().recovered(), "a first connect recovers nothing");
        let sid = client.sid();
        Recovery {
            server,
            reports: Reports::new(rx),
            proxy,
            client,
            sid,
        }
    }

    pub(crate) fn handle(&self) -> ServerHandle {
        self.server.handle.clone()
    }

    /// A client in room `quiet`, which gets one broadcast ("only") and then nothing.
    pub(crate) fn start_quiet(config: ServerConfig) -> Recovery {
        let mut r = Recovery::start(config, "quiet");
        r.broadcast(Some("quiet"), "news", json!("only"));
        r.client.run_until_got("news", json!("only"));
        r
    }

    /// Cuts the quiet client's connection; it must come back recovered (nothing it would
    /// have received is gone), with its id and its room, and get the next broadcast once.
    pub(crate) fn cut_quiet_client_and_expect_recovery(mut self) {
        self.cut_and_wait_for_server();
        self.client.run_until_fired("reconnect", 1);
        assert!(
            self.client.io().recovered(),
            "nothing it would have received is gone"
        );
        assert_eq!(self.client.io().id(), Some(self.sid.as_str()));
        self.broadcast(Some("quiet"), "news", json!("after"));
        self.client.run_until_got("news", json!("after"));
        assert_eq!(self.take_inbox(), ["news [\"only\"]", "news [\"after\"]"]);
        drop(self.client);
        self.server.stop().expect("the server stops cleanly");
    }

    /// Cuts the connection and waits until the server has noticed (and parked the session).
    /// The client is not stepped meanwhile: it is "away" until the next step.
    pub(crate) fn cut_and_wait_for_server(&mut self) -> String {
        let parked_before = self
            .reports
            .all()
            .iter()
            .filter(|s| disconnected_of(&self.sid)(s))
            .count();
        self.proxy.cut();
        let sid = self.sid.clone();
        let deadline = Instant::now() + WAIT;
        loop {
            let seen: Vec<Seen> = self
                .reports
                .all()
                .iter()
                .filter(|s| disconnected_of(&sid)(s))
                .cloned()
                .collect();
            if seen.len() > parked_before {
                let reason = reason_of(&seen[seen.len() - 1]);
                assert!(
                    reason == reasons::TRANSPORT_CLOSE || reason == reasons::TRANSPORT_ERROR,
                    "a cut connection ends with transport close or error, not {reason:?}"
                );
                return reason;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not notice the cut"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    pub(crate) fn broadcast(&self, room: Option<&str>, event: &str, arg: Value) {
        self.server
            .handle
            .broadcast("/", room, event, vec![arg])
            .expect("the server is running");
    }

    /// Steps the client only until the server has handled `event` (and no further: a test
    /// cuts the connection at that point).
    pub(crate) fn step_until_handled(&mut self, event: &str) {
        let handled = |s: &Seen| matches!(s, Seen::Handled { event: e, .. } if e == event);
        let deadline = Instant::now() + WAIT;
        while !self.reports.has(handled) {
            assert!(
                Instant::now() < deadline,
                "the server never handled {event}"
            );
            self.client
                .client
                .turn(Some(Duration::from_millis(5)))
                .expect("client turn");
        }
    }

    /// After a cut, the acked emit of `event` with `arg` is retried on the recovered session:
    /// its callback runs once, with `reply`, the handler ran once, the retry was dropped as a
    /// duplicate (`duplicates_before` is the count before the emit), and the server stops.
    pub(crate) fn expect_one_answer_after_recovery(
        mut self,
        slot: &AckSlot,
        event: &str,
        arg: Value,
        reply: Vec<Value>,
        duplicates_before: u64,
    ) {
        let s = slot.clone();
        self.client
            .run_until("the retried emit is answered", move |_| {
                !s.borrow().is_empty()
            });
        assert!(self.client.io().recovered());
        assert_eq!(self.client.io().id(), Some(self.sid.as_str()));
        // One more round trip: a second run of the handler would have been reported by now.
        self.client.round_trip("echo", vec![json!("fence")]);
        self.client.run_for(Duration::from_millis(50));
        let answers = slot.borrow().clone();
        assert_eq!(answers.len(), 1, "one callback run: {answers:?}");
        let got = answers[0].as_ref().expect("an answer, not an error");
        assert_eq!(got.args, reply);
        assert_eq!(self.reports.handled(event), [arg], "handled once");
        let after = ask(&self.handle(), |io| io.stats().duplicates_dropped);
        assert_eq!(
            after,
            duplicates_before + 1,
            "the retry was recognised as a duplicate"
        );
        drop(self.client);
        self.server.stop().expect("the server stops cleanly");
    }

    /// Lets the cut client come back, after a round trip to the server so that whatever the
    /// test queued there has been done; it must be recovered. Returns what it received, up to
    /// a fence broadcast after the recovery.
    pub(crate) fn recovered_inbox(&mut self) -> Vec<String> {
        ask(&self.handle(), |_| ());
        self.client.run_until_fired("reconnect", 1);
        assert!(self.client.io().recovered());
        self.broadcast(None, "fence", json!(1));
        self.client.run_until_got("fence", json!(1));
        self.take_inbox()
    }

    /// Closes the client, then stops the server, which must stop cleanly.
    pub(crate) fn finish(self) {
        drop(self.client);
        self.server.stop().expect("the server stops cleanly");
    }

    /// The events the client received since the inbox was last cleared, as `name arg`.
    pub(crate) fn take_inbox(&mut self) -> Vec<String> {
        self.client
            .inbox
            .borrow_mut()
            .drain(..)
            .map(|(n, a)| format!("{n} {}", json!(a)))
            .collect()
    }
}

/// Three times: the connection is cut; while the client is away, three broadcasts go to its
/// room; it comes back with the same id, `recovered()`, still in its room, and gets the three
/// it missed exactly once and in order, before a new one.
#[test]
fn recovery_restores_id_room_and_missed_broadcasts_on_every_reconnect() {
    let mut r = Recovery::start(server_config(), "room-a");
    let sid = r.sid.clone();
    // A broadcast received live, before any cut.
    r.broadcast(Some("room-a"), "news", json!("live-0"));
    r.client.run_until_got("news", json!("live-0"));
    r.take_inbox();

    for round in 1..=3u64 {
        r.cut_and_wait_for_server();
        for k in 1..=3 {
            r.broadcast(Some("room-a"), "news", json!(format!("missed-{round}-{k}")));
        }
        // Broadcasts to a room the client is not in are not for it, now or on replay.
        r.broadcast(Some("room-b"), "news", json!(format!("other-{round}")));
        let parked = ask(&r.handle(), {
            let sid = sid.clone();
            move |io| !io.is_connected(&sid)
        });
        assert!(parked, "the broadcasts went out while the client was away");

        r.client.run_until_fired("reconnect", round as usize);
        assert!(r.client.io().recovered(), "round {round}: recovered");
        assert_eq!(
            r.client.io().id(),
            Some(sid.as_str()),
            "round {round}: same id"
        );
        let rooms = ask(&r.handle(), {
            let sid = sid.clone();
            move |io| io.rooms_of(&sid)
        });
        assert!(
            rooms.contains(&"room-a".to_string()),
            "round {round}: {rooms:?}"
        );

        r.broadcast(Some("room-a"), "news", json!(format!("live-{round}")));
        r.client
            .run_until_got("news", json!(format!("live-{round}")));
        assert_eq!(
            r.take_inbox(),
            [
                format!("news [\"missed-{round}-1\"]"),
                format!("news [\"missed-{round}-2\"]"),
                format!("news [\"missed-{round}-3\"]"),
                format!("news [\"live-{round}\"]"),
            ],
            "round {round}: the missed broadcasts once, in order, then the new one"
        );
        let stats = ask(&r.handle(), |io| io.stats().clone());
        assert_eq!(stats.sessions_recovered, round);
        assert_eq!(stats.broadcasts_replayed, 3 * round);
    }
    assert_eq!(r.client.count("disconnect"), 3, "{:?}", r.client.names());
    assert_eq!(r.client.count("connect"), 4);
    assert_eq!(r.proxy.accepted(), 4, "one proxied connection per connect");
    // The server ran its connection handler for the same socket id each time.
    let connects: Vec<String> = r
        .reports
        .all()
        .iter()
        .filter_map(|s| match s {
            Seen::Connected { sid } => Some(sid.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(connects, vec![sid.clone(); 4]);
    r.finish();
}

/// An acked emit whose ACK is lost in a cut (the handler ran, then the connection died before
/// the answer left) is sent again after the recovery; the server recognises it and answers
/// again without running the handler again, and the client's callback runs once.
#[test]
fn an_acked_emit_whose_answer_was_lost_is_handled_once_and_answered_once() {
    let mut r = Recovery::start(server_config(), "room-a");
    let sid = r.sid.clone();
    let before = ask(&r.handle(), |io| io.stats().duplicates_dropped);

    let slot = r.client.emit_ack("flaky", vec![json!(42)]);
    // The handler cuts the connection before it answers.
    r.step_until_handled("flaky");
    r.reports
        .wait("the cut connection's disconnect", disconnected_of(&sid));
    assert!(
        slot.borrow().is_empty(),
        "the first answer was lost in the cut"
    );
    r.expect_one_answer_after_recovery(
        &slot,
        "flaky",
        json!(42),
        vec![json!("done"), json!(42)],
        before,
    );
}

/// Past `max_disconnection_duration` the session is gone: the client gets a new id,
/// `recovered()` is false, it is in no room of the old session, and the broadcast it missed
/// is not replayed.
#[test]
fn a_session_past_max_disconnection_duration_is_not_recovered() {
    let config = ServerConfig {
        max_disconnection_duration: Duration::from_millis(200),
        ..server_config()
    };
    let mut r = Recovery::start(config, "room-a");
    let old = r.sid.clone();
    r.cut_and_wait_for_server();
    r.broadcast(Some("room-a"), "news", json!("missed"));
    // The session expires while the client is away (it is not stepped meanwhile).
    thread::sleep(Duration::from_millis(400));

    r.client.run_until_fired("reconnect", 1);
    assert!(!r.client.io().recovered());
    let new = r.client.sid();
    assert_ne!(new, old, "a new session, a new id");
    let (rooms, members) = ask(&r.handle(), {
        let new = new.clone();
        move |io| (io.rooms_of(&new), io.sockets_in("/", "room-a"))
    });
    assert_eq!(rooms, vec![new.clone()], "only its own room");
    assert!(members.is_empty(), "room-a is empty: {members:?}");
    // After a broadcast to everyone arrives, anything replayed would have arrived before it.
    r.broadcast(None, "fence", json!(1));
    r.client.run_until_got("fence", json!(1));
    assert_eq!(r.take_inbox(), ["fence [1]"]);
    let stats = ask(&r.handle(), |io| io.stats().clone());
    assert_eq!(
        (stats.sessions_recovered, stats.broadcasts_replayed),
        (0, 0)
    );
    r.finish();
}

/// A client that has received no broadcast yet has no offset to present. When it comes back,
/// it must get what it missed and nothing older: not a broadcast to everyone made before it
/// connected.
#[test]
fn recovery_without_an_earlier_broadcast_replays_only_what_was_missed() {
    let mut r = Recovery::connect(server_config(), |server| {
        // Before the client exists.
        server
            .handle
            .broadcast("/", None, "news", vec![json!("before-you-came")])
            .expect("the server is running");
    });
    assert!(r.take_inbox().is_empty());
    r.cut_and_wait_for_server();
    r.broadcast(None, "news", json!("missed"));
    assert_eq!(
        r.recovered_inbox(),
        ["news [\"missed\"]", "fence [1]"],
        "what was missed, once; not what was sent before the client connected"
    );
    r.finish();
}

/// A broadcast to a room made before the client joined that room was never the client's; it
/// must not be replayed to it as "missed" when it comes back.
#[test]
fn recovery_does_not_replay_a_room_broadcast_from_before_the_join() {
    let mut r = Recovery::connect(server_config(), |_| {});
    // The client has an offset: it received this one.
    r.broadcast(None, "news", json!("to-everyone"));
    r.client.run_until_got("news", json!("to-everyone"));
    // Sent to room-a while the client is not in it.
    r.broadcast(Some("room-a"), "news", json!("room-a-before-join"));
    r.client.round_trip("join", vec![json!("room-a")]);
    r.take_inbox();
    r.cut_and_wait_for_server();
    r.broadcast(Some("room-a"), "news", json!("missed"));
    assert_eq!(
        r.recovered_inbox(),
        ["news [\"missed\"]", "fence [1]"],
        "only the broadcast sent while the client was away"
    );
    r.finish();
}

/// The handler runs, then the connection is lost, and only then does the handler answer (the
/// socket is away, its session kept). The client's retry after the recovery must get that
/// answer, once, without a second run of the handler.
#[test]
fn an_answer_given_while_the_client_is_away_reaches_it_after_the_recovery() {
    let mut r = Recovery::start(server_config(), "room-a");
    let before = ask(&r.handle(), |io| io.stats().duplicates_dropped);
    let slot = r.client.emit_ack("later", vec![json!(7)]);
    r.step_until_handled("later");
    r.cut_and_wait_for_server();
    assert_eq!(
        answer_later(&r.handle()),
        1,
        "answered while the socket is away"
    );
    r.expect_one_answer_after_recovery(
        &slot,
        "later",
        json!(7),
        vec![json!("later"), json!(7)],
        before,
    );
}
