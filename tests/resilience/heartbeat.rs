//! Heartbeats: a peer that never answers PING is dropped, a live one is kept; a client drops a
//! server that stops PINGing.

use super::*;

/// A raw peer that speaks HELLO and CONNECT and then never answers PING is disconnected with
/// `ping timeout`; a library client on the same server, answering every PING, stays connected
/// across many intervals.
#[test]
fn server_drops_a_peer_that_never_pongs_and_keeps_a_live_client() {
    let (tx, rx) = mpsc::channel();
    let mut reports = Reports::new(rx);
    let config = ServerConfig {
        ping_interval: FAST_PING_INTERVAL,
        ping_timeout: FAST_PING_TIMEOUT,
        ..server_config()
    };
    let server = start_server(&config, any_port(), &tx, None);

    let (mut silent, silent_sid) = raw_peer(server.addr);
    // The silent peer reads on a thread of its own while the test thread steps the client.
    let reader = thread::spawn(move || read_to_end(&mut silent));

    let mut live = Watched::connect(client_options(server.addr));
    let live_sid = live.sid();
    let pongs = Rc::new(RefCell::new(0usize));
    let count = pongs.clone();
    live.io().set_tap(move |bytes| {
        if bytes.get(HEADER_LEN) == Some(&(packet::Kind::Pong as u8)) {
            *count.borrow_mut() += 1;
        }
    });
    // Ten PONGs are ten PINGs answered: ten intervals at least, each of which would have
    // ended a peer that did not answer.
    let p = pongs.clone();
    live.run_until("ten PINGs answered", move |_| *p.borrow() >= 10);

    let silent_end = reports.wait("the silent peer's disconnect", disconnected_of(&silent_sid));
    assert_eq!(reason_of(&silent_end), reasons::PING_TIMEOUT);
    let (packets, _) = reader.join().expect("the silent peer's reader");
    assert!(
        packets.contains(&Packet::Ping),
        "the silent peer was PINGed before it was dropped: {packets:?}"
    );

    assert!(live.io().is_connected());
    assert_eq!(live.count("disconnect"), 0, "{:?}", live.names());
    assert!(
        !reports.has(disconnected_of(&live_sid)),
        "the live client was dropped: {:?}",
        reports.all()
    );
    assert!(ask(&server.handle, move |io| io.is_connected(&live_sid)));
    server.stop().expect("the server stops cleanly");
}

/// A server of our own that sends HELLO (PING every 50 ms, PONG within 50 ms) and the CONNECT
/// reply to every connection, then never sends anything again and never closes: a server
/// behind a dead link, as the client sees it.
fn silent_server() -> FakeServer {
    FakeServer::start(|n, mut stream| {
        let _ = stream.set_read_timeout(Some(WAIT));
        // The client's HELLO and CONNECT, then ours.
        let heard = (read_packet(&mut stream), read_packet(&mut stream));
        if !matches!(heard, (Ok(Some(_)), Ok(Some(_)))) {
            return None;
        }
        let mut reply = frame(&Packet::hello(
            json!({"pingInterval": 50, "pingTimeout": 50}),
        ));
        reply.extend(frame(&Packet::Connect {
            ns: "/".into(),
            // Counted from 1 here, from 0 by the fake server.
            data: Some(json!({"sid": format!("silent-{}", n + 1), "pid": "p"})),
        }));
        let _ = stream.write_all(&reply);
        // The connection stays open, silent, until the test ends.
        Some(stream)
    })
}

/// A client whose server stops PINGing (and does not close) decides the server is gone:
/// `disconnect` with `ping timeout`, then it reconnects (`reconnect_attempt` 1, and a new
/// TCP connection reaches the server).
#[test]
fn a_client_drops_a_server_that_stops_pinging_and_reconnects() {
    let fake = silent_server();
    let mut c = Watched::connect(client_options(fake.addr));
    assert_eq!(c.io().id(), Some("silent-1"));

    c.run_until_fired("disconnect", 1);
    let life = c.life.borrow().clone();
    let gone = life.iter().find(|l| l.name == "disconnect").expect("fired");
    assert_eq!(gone.arg, json!(reasons::PING_TIMEOUT), "{:?}", c.names());
    assert_eq!(c.io().disconnect_reason(), Some(reasons::PING_TIMEOUT));

    c.run_until_fired("reconnect_attempt", 1);
    let first_attempt = c
        .life
        .borrow()
        .iter()
        .find(|l| l.name == "reconnect_attempt")
        .map(|l| l.arg.clone());
    assert_eq!(first_attempt, Some(json!(1)));
    let accepted = fake.accepted.clone();
    c.run_until("the reconnect reaches the server", move |_| {
        accepted.load(Ordering::SeqCst) >= 2
    });
    // The order of the client's own events: connected, dropped, trying again.
    let names = c.names();
    let first = |n: &str| names.iter().position(|l| l.starts_with(n));
    assert!(
        first("connect") < first("disconnect") && first("disconnect") < first("reconnect_attempt"),
        "{names:?}"
    );
}
