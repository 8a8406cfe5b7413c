//! Reconnection: attempts, their limit and their doubling delay; a deliberate disconnect by
//! either side never reconnects.

use super::*;

/// The server stops: `disconnect` (`server shutting down`), then attempts 1, 2, 3... each
/// failing with `reconnect_error` while nobody listens. A server starts on the same address:
/// `reconnect` (with the attempt count), then `connect`. Every listener registered once fires
/// once per event afterwards.
#[test]
fn the_client_comes_back_to_a_server_restarted_on_the_same_address() {
    let (tx, rx) = mpsc::channel();
    let mut reports = Reports::new(rx);
    let first = start_server(&server_config(), any_port(), &tx, None);
    let addr = first.addr;
    let mut c = Watched::connect(client_options(addr));
    let first_sid = c.sid();

    // A graceful stop, while the client is stepped (it answers the server's FIN with its own,
    // so the stop does not wait for a grace timer); then the thread is joined.
    first.handle.stop().expect("the server is running");
    c.run_until_fired("disconnect", 1);
    first.stop().expect("the first server stops cleanly");
    c.run_until_fired("reconnect_error", 3);
    assert_eq!(c.io().state(), ClientState::Reconnecting);

    let second = start_server(&server_config(), addr, &tx, None);
    c.run_until_fired("connect", 2);
    let second_sid = c.sid();
    assert_ne!(
        second_sid, first_sid,
        "a new server knows nothing of the old session"
    );
    assert!(!c.io().recovered());
    reports.wait(
        "the new server's connection",
        |s| matches!(s, Seen::Connected { sid } if *sid == second_sid),
    );

    // The exact story: after the first connect, one disconnect, then attempts numbered from
    // 1, each failing (connect_error, reconnect_error) until the last, then reconnect with
    // the number of attempts it took, then connect.
    let names = c.names();
    assert_eq!(names[0], "connect");
    assert_eq!(
        names[1],
        format!("disconnect \"{}\"", reasons::SERVER_SHUTTING_DOWN)
    );
    let attempts = c.count("reconnect_attempt");
    assert!(
        attempts >= 4,
        "three failed attempts, then one that worked: {names:?}"
    );
    let mut want = vec![names[0].clone(), names[1].clone()];
    for n in 1..=attempts {
        want.push(format!("reconnect_attempt {n}"));
        if n < attempts {
            // The error text names the syscall and errno; only the names are compared.
            let errors = &names[want.len()..want.len() + 2];
            assert!(
                errors[0].starts_with("connect_error ")
                    && errors[1].starts_with("reconnect_error "),
                "attempt {n} failed with connect_error, reconnect_error: {names:?}"
            );
            want.extend(errors.iter().cloned());
        }
    }
    want.push(format!("reconnect {attempts}"));
    want.push("connect".into());
    assert_eq!(names, want);

    // Listeners registered once, before the first connect, fire once per event.
    second
        .handle
        .broadcast("/", None, "news", vec![json!("after the restart")])
        .expect("the server is running");
    c.run_until_got("news", json!("after the restart"));
    let echoed = c.round_trip("echo", vec![json!("still here")]);
    assert_eq!(echoed, vec![json!("still here")]);
    c.run_for(Duration::from_millis(100));
    assert_eq!(
        *c.inbox.borrow(),
        vec![("news".to_string(), vec![json!("after the restart")])],
        "one listener call per event"
    );
    assert_eq!(c.count("connect"), 2);
    assert_eq!(c.count("reconnect"), 1);
    assert_eq!(c.count("disconnect"), 1);
    assert_eq!(c.io().state(), ClientState::Connected);
    second.stop().expect("the second server stops cleanly");
}

/// An address where nobody listens: a socket bound to a port and never listening. Connects
/// to it are refused, and while the test holds it no other test running in parallel can be
/// given that port (a port merely closed again could become another test's server).
struct DeadAddress {
    addr: SocketAddr,
    _bound: socket2::Socket,
}

impl DeadAddress {
    fn new() -> DeadAddress {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.bind(&any_port().into()).expect("bind");
        let addr = socket
            .local_addr()
            .expect("getsockname")
            .as_socket()
            .expect("an IPv4 address");
        DeadAddress {
            addr,
            _bound: socket,
        }
    }
}

/// `reconnection_attempts: Some(2)` and no server: the first connect fails, attempts 1 and 2
/// fail, `reconnect_failed` fires once, and the client ends `Disconnected`.
#[test]
fn limited_attempts_end_in_reconnect_failed() {
    let dead = DeadAddress::new();
    let mut opts = client_options(dead.addr);
    opts.reconnection_attempts = Some(2);
    let mut c = Watched::start(opts);
    c.run_until("the client gives up", |io| {
        io.state() == ClientState::Disconnected
    });
    let names: Vec<String> = c
        .names()
        .into_iter()
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        names,
        [
            "connect_error",
            "reconnect_attempt",
            "connect_error",
            "reconnect_error",
            "reconnect_attempt",
            "connect_error",
            "reconnect_error",
            "reconnect_failed",
        ]
    );
    let attempts: Vec<Value> = c
        .life
        .borrow()
        .iter()
        .filter(|l| l.name == "reconnect_attempt")
        .map(|l| l.arg.clone())
        .collect();
    assert_eq!(attempts, [json!(1), json!(2)]);
    // It stays given up: no third attempt, whatever the time.
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.count("reconnect_attempt"), 2);
    assert_eq!(c.io().state(), ClientState::Disconnected);
    assert!(matches!(
        c.io().emit("late", vec![]),
        Err(EmitError::NoSuchSocket(_))
    ));
}

/// After a deliberate disconnect, the client stays disconnected for ten times the longest
/// reconnection delay: no `reconnect_attempt`, its last reason is `client_reason`, the server
/// saw `server_reason` and only the one connection, and no socket is left.
fn assert_never_reconnects(
    (mut c, sid): (Watched, String),
    mut reports: Reports,
    server: RunningServer,
    client_reason: &str,
    server_reason: &str,
) {
    c.run_until("the client is disconnected", |io| {
        io.state() == ClientState::Disconnected
    });
    c.run_for(RECONNECT_DELAY_MAX * 10);
    assert_eq!(c.io().state(), ClientState::Disconnected);
    assert_eq!(c.io().disconnect_reason(), Some(client_reason));
    assert_eq!(
        c.names(),
        [
            "connect".to_string(),
            format!("disconnect \"{client_reason}\"")
        ]
    );
    let gone = reports.wait("the disconnect", disconnected_of(&sid));
    assert_eq!(reason_of(&gone), server_reason);
    let sockets = ask(&server.handle, |io| io.sockets("/").len());
    assert_eq!(sockets, 0);
    let seen = reports.all();
    let connects = seen
        .iter()
        .filter(|s| matches!(s, Seen::Connected { .. }))
        .count();
    assert_eq!(
        connects, 1,
        "no second connection reached the server: {seen:?}"
    );
    server.stop().expect("the server stops cleanly");
}

/// `disconnect()` by the client ends the connection for good: no `reconnect_attempt`, and the
/// server sees one connection and `client namespace disconnect`.
#[test]
fn a_deliberate_client_disconnect_never_reconnects() {
    let (tx, rx) = mpsc::channel();
    let server = start_server(&server_config(), any_port(), &tx, None);
    let mut c = Watched::connect(client_options(server.addr));
    let sid = c.sid();
    c.io().disconnect();
    assert_never_reconnects(
        (c, sid),
        Reports::new(rx),
        server,
        reasons::IO_CLIENT_DISCONNECT,
        reasons::CLIENT_NAMESPACE_DISCONNECT,
    );
}

/// `io.disconnect(sid)` on the server ends the connection for good: the client sees
/// `io server disconnect` and does not reconnect.
#[test]
fn a_server_side_disconnect_never_reconnects() {
    let (tx, rx) = mpsc::channel();
    let server = start_server(&server_config(), any_port(), &tx, None);
    let mut c = Watched::connect(client_options(server.addr));
    let sid = c.sid();
    let target = sid.clone();
    server
        .handle
        .run(move |io| io.disconnect(&target))
        .expect("the server is running");
    assert_never_reconnects(
        (c, sid),
        Reports::new(rx),
        server,
        reasons::IO_SERVER_DISCONNECT,
        reasons::SERVER_NAMESPACE_DISCONNECT,
    );
}

/// The backoff, seen from outside: with no randomization, the time between one attempt and
/// the next is never shorter than the delay, and the delay doubles (20, 40, 80 ms), up to the
/// maximum (100 ms). Only lower bounds are checked: a busy machine makes gaps longer, never
/// shorter, so this cannot fail for slowness. (The function itself, `backoff`, is `pub` in
/// the private module `events::client` and not re-exported, so a test outside the crate
/// cannot call it with chosen random numbers.)
/// A client pointed at an address where nobody listens, with delays of 20 ms doubling up to
/// 100 ms, the jitter given and `attempts` attempts: its lifecycle events once it gave up,
/// and when each `reconnect_attempt` came.
fn failed_attempts(jitter: f64, attempts: u32) -> (Vec<Life>, Vec<Instant>) {
    let dead = DeadAddress::new();
    let mut opts = client_options(dead.addr);
    opts.randomization_factor = jitter;
    opts.reconnection_delay = Duration::from_millis(20);
    opts.reconnection_delay_max = Duration::from_millis(100);
    opts.reconnection_attempts = Some(attempts);
    let mut c = Watched::start(opts);
    c.run_until("the last attempt", |io| {
        io.state() == ClientState::Disconnected
    });
    let life = c.life.borrow().clone();
    let times: Vec<Instant> = life
        .iter()
        .filter(|l| l.name == "reconnect_attempt")
        .map(|l| l.at)
        .collect();
    assert_eq!(times.len(), attempts as usize, "{:?}", c.names());
    (life, times)
}

#[test]
fn reconnection_attempts_wait_at_least_the_doubling_delay() {
    let (life, times) = failed_attempts(0.0, 5);
    // The first connect failed (its connect_error) before the first delay began.
    let failed = life.first().expect("connect_error fired");
    assert_eq!(failed.name, "connect_error");
    let first_wait = times[0].duration_since(failed.at);
    assert!(
        first_wait >= Duration::from_millis(20),
        "attempt 1 came {first_wait:?} after the failed connect: before its delay of 20 ms"
    );
    // The wait before attempt n+1 starts when attempt n has failed, after its event.
    for (n, want_ms) in [(0usize, 40u64), (1, 80), (2, 100), (3, 100)] {
        let gap = times[n + 1].duration_since(times[n]);
        assert!(
            gap >= Duration::from_millis(want_ms),
            "attempt {} came {gap:?} after attempt {}: before its delay of {want_ms} ms",
            n + 2,
            n + 1
        );
    }

    // With the default 0.5 jitter, no wait is shorter than half the delay.
    let (_, times) = failed_attempts(0.5, 4);
    for (n, full_ms) in [(0usize, 40u64), (1, 80), (2, 100)] {
        let gap = times[n + 1].duration_since(times[n]);
        assert!(
            gap >= Duration::from_millis(full_ms / 2),
            "attempt {} came {gap:?} after attempt {}: under half of {full_ms} ms",
            n + 2,
            n + 1
        );
    }
}

/// Socket.IO's backoff, exactly: with no jitter the delays double from the first and stop
/// at the maximum; with the default jitter each stays within half of that either way.
#[test]
fn backoff_doubles_up_to_the_maximum_with_bounded_jitter() {
    use socklab::events::backoff;
    let mut opts = ClientOptions::new("127.0.0.1:9".parse().expect("an address"));
    opts.randomization_factor = 0.0;
    let plain: Vec<u128> = (0..5).map(|a| backoff(&opts, a, 0.3).as_millis()).collect();
    assert_eq!(plain, [1000, 2000, 4000, 5000, 5000]);
    opts.randomization_factor = 0.5;
    for attempt in 0..8 {
        let base = (1000u128 << attempt.min(10)).min(5000);
        for r in [0.0, 0.05, 0.15, 0.5, 0.95, 0.999] {
            let d = backoff(&opts, attempt, r).as_millis();
            assert!(
                d * 2 >= base && d <= 5000,
                "attempt {attempt}, random {r}: {d} ms"
            );
            assert!(d * 2 <= base * 3, "attempt {attempt}, random {r}: {d} ms");
        }
    }
}
