//! Every disconnect reason, each produced by the situation it names.

use super::*;

#[test]
fn reason_transport_close_transport_error_and_parse_error_from_raw_peers() {
    let mut lab = Lab::start();

    // FIN without DISCONNECT: the peer read everything the server sent (HELLO, CONNECT), so
    // closing sends FIN, not RST.
    let closer = Raw::connect(lab.addr());
    let sid = closer.sid.clone();
    drop(closer);
    let reason = await_reason(&mut lab.reports, &mut [], &sid);
    assert_eq!(reason, reasons::TRANSPORT_CLOSE);

    // RST: SO_LINGER 0, then close.
    let resetter = Raw::connect(lab.addr());
    let sid = resetter.sid.clone();
    SockRef::from(&resetter.stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(resetter);
    let reason = await_reason(&mut lab.reports, &mut [], &sid);
    assert_eq!(reason, reasons::TRANSPORT_ERROR);

    // Bytes that are not the protocol, after a good handshake: an HTTP request (its first 4
    // bytes declare a frame of 1.2 GB) and a frame of an unknown packet type.
    let garbage: [&[u8]; 2] = [
        b"GET / HTTP/1.1\r\nHost: socklab\r\n\r\n",
        &[0, 0, 0, 1, 99],
    ];
    for bytes in garbage {
        let mut raw = Raw::connect(lab.addr());
        raw.stream.write_all(bytes).expect("write garbage");
        raw.wait_closed();
        let reason = await_reason(&mut lab.reports, &mut [], &raw.sid);
        assert_eq!(reason, reasons::PARSE_ERROR, "after {bytes:?}");
    }
    assert_eq!(lab.ask(|io| io.stats().parse_errors), 2);
    lab.stop();
}

#[test]
fn reason_client_and_server_namespace_disconnect() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());
    let mut b = Peer::connect(lab.addr());
    let a_saw = record_disconnects(&mut a);
    let b_saw = record_disconnects(&mut b);

    a.io().disconnect();
    assert_eq!(
        a.io().disconnect_reason(),
        Some(reasons::IO_CLIENT_DISCONNECT)
    );
    assert_eq!(*a_saw.borrow(), vec![json!(reasons::IO_CLIENT_DISCONNECT)]);
    let sa = a.sid.clone();
    let reason = await_reason(&mut lab.reports, &mut [&mut a], &sa);
    assert_eq!(reason, reasons::CLIENT_NAMESPACE_DISCONNECT);

    let sb = b.sid.clone();
    lab.ask(move |io| io.disconnect(&sb));
    b.run_until_disconnected();
    assert_eq!(
        b.io().disconnect_reason(),
        Some(reasons::IO_SERVER_DISCONNECT)
    );
    assert_eq!(*b_saw.borrow(), vec![json!(reasons::IO_SERVER_DISCONNECT)]);
    let reason = await_reason(&mut lab.reports, &mut [], &b.sid);
    assert_eq!(reason, reasons::SERVER_NAMESPACE_DISCONNECT);
    lab.stop();
}

#[test]
fn a_client_that_disconnects_in_a_listener_gets_no_more_events() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());
    let seen: Rc<RefCell<Vec<(Value, ClientState)>>> = Rc::default();
    let log = seen.clone();
    a.io().on("n", move |io, ev| {
        log.borrow_mut().push((json!(ev.args), io.state()));
        io.disconnect();
    });
    a.io().emit("burst", vec![]).expect("emit burst");
    let sa = a.sid.clone();
    let reason = await_reason(&mut lab.reports, &mut [&mut a], &sa);
    assert_eq!(reason, reasons::CLIENT_NAMESPACE_DISCONNECT);
    // Whatever else of the burst was read with the first event must not be dispatched.
    assert_eq!(
        *seen.borrow(),
        [(json!([0]), ClientState::Connected)],
        "listeners ran after disconnect()"
    );
    lab.stop();
}

#[test]
fn reason_server_shutting_down() {
    let lab = Lab::start();
    // A client with the default options will try to come back (a stopping server is
    // restarting, not sending it away); one without reconnection ends there.
    let mut a = Peer::connect(lab.addr());
    let mut opts = ClientOptions::new(lab.addr());
    opts.reconnection = false;
    let mut b = Peer::connect_with(opts);
    let a_saw = record_disconnects(&mut a);
    let b_saw = record_disconnects(&mut b);
    let handle = lab.handle();
    let mut reports = lab.stop();

    let saw = a_saw.clone();
    a.run_until("a's disconnect event", move |_| !saw.borrow().is_empty());
    assert_eq!(*a_saw.borrow(), vec![json!(reasons::SERVER_SHUTTING_DOWN)]);
    assert_eq!(
        a.io().disconnect_reason(),
        Some(reasons::SERVER_SHUTTING_DOWN)
    );
    assert_eq!(a.io().state(), ClientState::Reconnecting);

    b.run_until_disconnected();
    assert_eq!(*b_saw.borrow(), vec![json!(reasons::SERVER_SHUTTING_DOWN)]);
    assert_eq!(
        b.io().disconnect_reason(),
        Some(reasons::SERVER_SHUTTING_DOWN)
    );

    for sid in [&a.sid, &b.sid] {
        let reason = await_reason(&mut reports, &mut [], sid);
        assert_eq!(reason, reasons::SERVER_SHUTTING_DOWN);
    }
    assert_eq!(handle.stop(), Err(ServerGone), "the loop is gone");
}

#[test]
fn reason_server_error_when_a_listener_panics() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());
    let mut b = Peer::connect(lab.addr());
    a.io().emit("boom", vec![]).expect("emit boom");
    let sa = a.sid.clone();
    let reason = await_reason(&mut lab.reports, &mut [&mut a], &sa);
    assert_eq!(reason, reasons::SERVER_ERROR);
    // The server closed a's connection under it: to a it is a lost connection (and, with
    // the default options, one to come back from).
    a.run_until("a loses its connection", |io| !io.is_connected());
    let seen = a.io().disconnect_reason();
    assert!(
        matches!(
            seen,
            Some(reasons::TRANSPORT_CLOSE | reasons::TRANSPORT_ERROR)
        ),
        "{seen:?}"
    );

    b.assert_echo("b is fine");
    let sb = b.sid.clone();
    let (panics, a_alive, b_alive) = lab.ask(move |io| {
        (
            io.stats().handler_panics,
            io.is_connected(&sa),
            io.is_connected(&sb),
        )
    });
    assert_eq!((panics, a_alive, b_alive), (1, false, true));
    lab.stop();
}

#[test]
fn reason_outbound_buffer_full_and_volatile_drops() {
    const BIG: usize = 48 * 1024;
    let config = ServerConfig {
        loop_config: socklab::event_loop::Config {
            max_outbound: 64 * 1024,
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let mut lab = Lab::with(config);
    let mut reader = Peer::connect(lab.addr());
    // Never reads after the handshake; a small receive buffer fills the kernel's side sooner.
    let stuck = Raw::connect_with(lab.addr(), Some(4096));
    let (sr, ss) = (reader.sid.clone(), stuck.sid.clone());

    // Each round: a volatile broadcast `tick`, then a 48 KiB `big` to each socket. The reader
    // takes all of it before the next round, so the server holds nothing for it when the
    // next tick goes out. The stuck socket's kernel buffers fill, then the loop's buffer: a
    // tick meets a backed-up socket and is dropped, and a big one over the 64 KiB cap
    // disconnects it.
    let mut round: u64 = 0;
    let reason = loop {
        assert!(round < 4000, "the stuck socket was never disconnected");
        let (r, s) = (sr.clone(), ss.clone());
        lab.ask(move |io| {
            let _ = io
                .broadcast("/")
                .volatile()
                .emit("tick", vec![json!(round)]);
            for sid in [r, s] {
                let e = Emit::new("big").arg(json!(round));
                let _ = io.send(&sid, e.binary(vec![round as u8; BIG]));
            }
        });
        let inbox = reader.inbox.clone();
        reader.run_until("the reader gets its round", move |_| {
            inbox.borrow().iter().any(|g| g.name == "big")
        });
        let got: Vec<Got> = reader.inbox.borrow_mut().drain(..).collect();
        let lines: Vec<String> = got.iter().map(Got::line).collect();
        assert_eq!(
            lines,
            [format!("tick [{round}]"), format!("big [{round}]")],
            "the reader gets every tick"
        );
        assert_eq!(got[1].attachments, [vec![round as u8; BIG]]);
        // The disconnect is reported while the server hands that round to the loop, before
        // the reader's copy is written: it is in the channel by now if it happened.
        if lab
            .reports
            .received()
            .iter()
            .any(|r| fired(r, &ss, "disconnect"))
        {
            break await_reason(&mut lab.reports, &mut [], &ss);
        }
        round += 1;
    };
    assert_eq!(reason, reasons::OUTBOUND_FULL);
    let (dropped, stuck_alive) =
        lab.ask(move |io| (io.stats().volatile_dropped, io.is_connected(&ss)));
    assert!(dropped >= 1, "no volatile tick was dropped");
    assert!(
        dropped <= round + 1,
        "only the stuck socket's ticks are dropped"
    );
    assert!(!stuck_alive);
    reader.assert_echo("the reader is fine");
    drop(stuck);
    lab.stop();
}
