//! No lost messages: emits made while disconnected arrive once and in order, acked emits are
//! handled and answered once across restarts, the offline buffer refuses past its size.

use super::*;

/// Where the server of the no-loss test is.
enum Phase {
    /// Serving; the next stop comes once `next` passes `stop_at` and the client is connected.
    Up { stop_at: u64 },
    /// Stopping; waiting for the client to notice.
    Stopping(RunningServer),
    /// Stopped; starts again once `next` reaches `start_at`.
    Down { start_at: u64 },
    /// The last server is up.
    Done,
}

type Answers = Rc<RefCell<BTreeMap<u64, Vec<Result<AckReply, AckError>>>>>;

/// Emits `plain` and `acked` numbered `n`; every answer to the acked one goes into `answers`.
fn emit_pair(c: &mut Watched, n: u64, answers: &Answers) {
    c.io()
        .emit("plain", vec![json!(n)])
        .expect("plain emit (the offline buffer holds 1000)");
    let fill = answers.clone();
    c.io()
        .emit_with_ack("acked", vec![json!(n)], vec![], ACK_TIMEOUT, move |_, r| {
            fill.borrow_mut().entry(n).or_default().push(r)
        })
        .expect("acked emit");
}

/// Waits until nothing listens on `addr` any more: a stopping server closes its listener
/// first, after it has queued its goodbyes and stopped handling what connections send.
fn wait_listener_closed(addr: SocketAddr) {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect_timeout(&addr, WAIT) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
            _ => {} // still listening (the connection is dropped at once)
        }
        assert!(
            Instant::now() < deadline,
            "the listener on {addr} stays open"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// A client emits `plain` and `acked` events numbered 1 to 200, one of each every few
/// milliseconds, while the server is stopped and restarted on the same address twice. At each
/// stop, five pairs are emitted after the server stopped reading and before the client has
/// heard its goodbye: they are in flight and the server drops them. Every plain event emitted
/// while disconnected arrives exactly once and in order; no plain event arrives twice or out of
/// order, and only in-flight ones may be lost (at most once); every acked event, in-flight ones
/// included, is handled exactly once by the servers together, and its callback gets exactly
/// one answer, its own.
#[test]
fn no_event_is_lost_or_doubled_across_two_server_restarts() {
    const LAST: u64 = 200;
    let (tx, rx) = mpsc::channel();
    let mut reports = Reports::new(rx);
    let config = server_config();
    let mut server = Some(start_server(&config, any_port(), &tx, None));
    let addr = server.as_ref().map(|s| s.addr).expect("started");
    let mut c = Watched::connect(client_options(addr));

    let answers: Answers = Rc::default();
    // Plain events emitted while not connected, per outage; and those sent into a stopping
    // server.
    let mut offline: Vec<Vec<u64>> = vec![Vec::new(), Vec::new()];
    let mut in_flight: Vec<u64> = Vec::new();
    let mut outages = 0usize;
    let mut phase = Phase::Up { stop_at: 40 };
    let mut next = 1u64;
    let deadline = Instant::now() + WAIT * 3;
    loop {
        assert!(
            Instant::now() < deadline,
            "the emits and restarts did not finish; events {:?}",
            c.names()
        );
        if next <= LAST {
            if !c.io().is_connected() {
                offline[outages.saturating_sub(1).min(1)].push(next);
            } else if matches!(phase, Phase::Stopping(_)) {
                // Connected, as far as the client knows, to a server that no longer reads.
                in_flight.push(next);
            }
            emit_pair(&mut c, next, &answers);
            next += 1;
        }
        // A turn with output to flush returns at once: pace the emits by the clock, so that
        // the outages below last long enough for several reconnection attempts.
        c.run_for(Duration::from_millis(4));
        phase = match phase {
            Phase::Up { stop_at } if next > stop_at && c.io().is_connected() => {
                let s = server.take().expect("a server is up");
                s.handle.stop().expect("the server is running");
                outages += 1;
                // The client is not stepped until the server has stopped reading: these
                // leave while the client still thinks it is connected.
                wait_listener_closed(addr);
                assert!(c.io().is_connected());
                for _ in 0..5 {
                    in_flight.push(next);
                    emit_pair(&mut c, next, &answers);
                    next += 1;
                }
                Phase::Stopping(s)
            }
            Phase::Stopping(s) if c.io().state() == ClientState::Reconnecting => {
                s.stop().expect("the server stops cleanly");
                // Twenty rounds of emits with nobody listening.
                Phase::Down {
                    start_at: next + 20,
                }
            }
            Phase::Down { start_at } if next >= start_at => {
                server = Some(start_server(&config, addr, &tx, None));
                if outages < 2 {
                    Phase::Up { stop_at: next + 40 }
                } else {
                    Phase::Done
                }
            }
            Phase::Done if next > LAST => break,
            other => other,
        };
    }
    let server = server.expect("the third server is up");

    // Every acked emit answered; then one more round trip: the plain events emitted before it
    // on this connection have been handled by then.
    let a = answers.clone();
    c.run_until("every acked emit answered", move |_| {
        a.borrow().len() == LAST as usize
    });
    c.round_trip("echo", vec![json!("fence")]);
    c.run_for(Duration::from_millis(50));

    for (n, got) in answers.borrow().iter() {
        assert_eq!(got.len(), 1, "acked {n}: one callback run, got {got:?}");
        match &got[0] {
            Ok(reply) => assert_eq!(reply.args, vec![json!(n)], "acked {n}: its own answer"),
            Err(e) => panic!("acked {n}: {e}"),
        }
    }
    let mut acked: Vec<u64> = reports
        .handled("acked")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    acked.sort_unstable();
    assert_eq!(
        acked,
        (1..=LAST).collect::<Vec<_>>(),
        "each acked event handled exactly once by the three servers together"
    );

    let plain: Vec<u64> = reports
        .handled("plain")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        plain.windows(2).all(|w| w[0] < w[1]),
        "plain events arrive in order, none twice: {plain:?}"
    );
    for (i, outage) in offline.iter().enumerate() {
        assert!(
            outage.len() >= 10,
            "outage {} had emits made while disconnected: {outage:?}",
            i + 1
        );
        for n in outage {
            assert!(
                plain.contains(n),
                "plain {n}, emitted while disconnected (outage {}), never arrived; \
                 arrived: {plain:?}",
                i + 1
            );
        }
    }
    // At most once: plain events in flight when a server stopped are lost; no others.
    let lost: Vec<u64> = (1..=LAST).filter(|n| !plain.contains(n)).collect();
    assert!(
        lost.iter().all(|n| in_flight.contains(n)),
        "only in-flight plain events may be lost: lost {lost:?}, in flight {in_flight:?}"
    );
    assert_eq!(c.count("reconnect"), 2, "{:?}", c.names());
    server.stop().expect("the third server stops cleanly");
}

/// With `offline_buffer: 5` and no connection, five emits wait (plain and acked alike) and
/// the sixth is refused with `BufferFull`, for both kinds: nothing is dropped silently. The
/// five arrive in order when a server is back; the refused ones never do.
#[test]
fn the_offline_buffer_refuses_the_sixth_emit_and_delivers_five() {
    let (tx, rx) = mpsc::channel();
    let mut reports = Reports::new(rx);
    let first = start_server(&server_config(), any_port(), &tx, None);
    let addr = first.addr;
    let mut opts = client_options(addr);
    opts.offline_buffer = 5;
    let mut c = Watched::connect(opts);
    first.handle.stop().expect("the server is running");
    c.run_until("the client notices the stop", |io| {
        io.state() == ClientState::Reconnecting
    });
    first.stop().expect("the server stops cleanly");

    for n in 1..=3 {
        c.io().emit("plain", vec![json!(n)]).expect("buffered");
    }
    let slot4 = c.emit_ack("acked", vec![json!(4)]);
    c.io().emit("plain", vec![json!(5)]).expect("buffered");
    assert_eq!(c.io().offline_len(), 5);
    assert_eq!(
        c.io().emit("plain", vec![json!(6)]),
        Err(EmitError::BufferFull(5))
    );
    let refused_ack_ran = Rc::new(RefCell::new(false));
    let flag = refused_ack_ran.clone();
    let refused =
        c.io()
            .emit_with_ack("acked", vec![json!(6)], vec![], ACK_TIMEOUT, move |_, _| {
                *flag.borrow_mut() = true
            });
    assert_eq!(refused, Err(EmitError::BufferFull(5)));
    assert_eq!(c.io().offline_len(), 5);

    let second = start_server(&server_config(), addr, &tx, None);
    c.run_until_fired("reconnect", 1);
    let s = slot4.clone();
    c.run_until("the buffered acked emit is answered", move |_| {
        !s.borrow().is_empty()
    });
    // A plain emit after the buffer was flushed: once it has arrived, the five have.
    c.io().emit("plain", vec![json!(7)]).expect("connected");
    c.round_trip("echo", vec![json!("fence")]);
    assert_eq!(c.io().offline_len(), 0);
    assert_eq!(
        reports.handled("plain"),
        [json!(1), json!(2), json!(3), json!(5), json!(7)]
    );
    assert_eq!(reports.handled("acked"), [json!(4)]);
    assert_eq!(slot4.borrow().len(), 1);
    assert!(
        !*refused_ack_ran.borrow(),
        "a refused emit's callback never runs"
    );
    second.stop().expect("the server stops cleanly");
}
