//! Middleware refuses with its message and admits with auth; reserved event names are refused
//! on both sides, also from a raw peer.

use super::*;

/// Connects to `ns` with `auth`, expecting a refusal; returns the refusal message after
/// checking that the `connect_error` event carried the same and `connect` never fired.
fn refused(addr: SocketAddr, ns: &str, auth: Option<Value>) -> String {
    let mut opts = ClientOptions::new(addr);
    opts.namespace = ns.to_string();
    opts.auth = auth;
    let mut client = Client::connect(opts).expect("Client::connect");
    let errors: Rc<RefCell<Vec<Value>>> = Rc::default();
    let connects = Rc::new(RefCell::new(0));
    let (e, c) = (errors.clone(), connects.clone());
    client.io().on("connect_error", move |_, ev| {
        e.borrow_mut().extend(ev.args.clone())
    });
    client.io().on("connect", move |_, _| *c.borrow_mut() += 1);
    let done = client
        .run_until(WAIT, |io| io.state() == ClientState::Disconnected)
        .expect("client turn");
    assert!(done, "a refused client ends Disconnected within {WAIT:?}");
    let io = client.io();
    let message = io
        .connect_error()
        .unwrap_or_else(|| panic!("connect_error() is set after a refusal from {ns}"))
        .to_string();
    assert_eq!(
        *errors.borrow(),
        vec![json!(message)],
        "the connect_error event"
    );
    assert_eq!(*connects.borrow(), 0, "connect never fired");
    assert_eq!(io.id(), None);
    message
}

#[test]
fn middleware_refuses_with_its_message_and_admits_with_auth() {
    let mut lab = Lab::start();
    assert_eq!(refused(lab.addr(), ADMIN, None), NO_TOKEN);
    assert_eq!(
        refused(lab.addr(), ADMIN, Some(json!({"token": "guess"}))),
        BAD_TOKEN
    );
    assert_eq!(refused(lab.addr(), "/nope", None), "Invalid namespace");

    let auth = json!({"token": "letmein", "user": "ada"});
    let mut opts = ClientOptions::new(lab.addr());
    opts.namespace = ADMIN.to_string();
    opts.auth = Some(auth.clone());
    let admin = Peer::connect_with(opts);
    let sid = admin.sid.clone();
    let r = lab.reports.take(
        "the admission",
        |r| matches!(r, Report::Admitted { sid: s, .. } if *s == sid),
    );
    let Report::Admitted { auth: seen, .. } = r else {
        unreachable!("take returned a report its predicate refused: {r:?}")
    };
    assert_eq!(
        seen,
        Some(auth.clone()),
        "the auth reaches io.handshake(sid).auth"
    );
    let (handshake, refusals) =
        lab.ask(move |io| (io.handshake(&sid).cloned(), io.stats().connects_refused));
    let handshake = handshake.expect("the admitted socket has a handshake");
    assert_eq!(handshake.auth, Some(auth));
    assert_eq!(handshake.namespace, ADMIN);
    assert!(handshake.peer.ip().is_loopback(), "{}", handshake.peer);
    assert_eq!(refusals, 3);
    lab.stop();
}

// ---------------------------------------------------------------------------------------------
// Reserved names
// ---------------------------------------------------------------------------------------------

#[test]
fn reserved_names_are_refused_on_both_sides() {
    let lab = Lab::start();
    let handle = lab.handle();
    let mut a = Peer::connect(lab.addr());
    let called = Rc::new(RefCell::new(false));
    for name in RESERVED {
        let want = Err(EmitError::Reserved(name.to_string()));
        assert_eq!(a.io().emit(name, vec![json!("x")]), want, "client emit");
        let bin = a.io().emit_binary(name, vec![], vec![vec![1]]);
        assert_eq!(bin, want, "client emit_binary");
        let c = called.clone();
        let with_ack = a
            .io()
            .emit_with_ack(name, vec![], vec![], WAIT, move |_, _| {
                *c.borrow_mut() = true;
            });
        assert_eq!(with_ack, want, "client emit_with_ack");
    }

    let sid = a.sid.clone();
    let server_side = lab.ask(move |io| {
        RESERVED
            .iter()
            .map(|name| {
                (
                    io.emit(&sid, name, vec![json!("x")]),
                    io.send(&sid, Emit::new(name).arg(json!(1))),
                    io.broadcast("/").emit(name, vec![]).map(|_| ()),
                )
            })
            .collect::<Vec<_>>()
    });
    for (name, (emit, send, broadcast)) in RESERVED.iter().zip(server_side) {
        let want = Err(EmitError::Reserved(name.to_string()));
        assert_eq!(emit, want, "Io::emit");
        assert_eq!(send, want, "Io::send");
        assert_eq!(broadcast, want, "Broadcast::emit");
    }

    // Nothing went out either way.
    assert_eq!(fence(&handle, &mut [&mut a]), [Vec::<String>::new()]);
    let events_in = lab.ask(|io| io.stats().events_in);
    assert_eq!(events_in, 0, "the server received no event");
    // A refused emit_with_ack left no callback behind: leaving fails every pending ack.
    a.io().disconnect();
    assert!(!*called.borrow(), "a refused emit's ack callback ran");
    lab.stop();
}

#[test]
fn reserved_names_from_a_raw_peer_do_not_reach_server_listeners() {
    let mut lab = Lab::start();
    let mut raw = Raw::connect(lab.addr());
    for name in RESERVED {
        raw.send(&event(name, vec![json!("forged")], None));
        raw.send(&event(name, vec![json!("forged")], Some(1)));
    }
    raw.send(&event("echo", vec![json!("after")], Some(7)));
    // The server handles a connection's packets in order: the echo's answer comes after
    // whatever the forged events caused. Nothing else may come before it.
    match raw.read_packet() {
        Packet::Ack { id: 7, args, .. } => assert_eq!(args, vec![json!("after")]),
        other => panic!("expected the echo's ACK first, got {other}"),
    }
    let sid = raw.sid.clone();
    let (alive, events_in) = lab.ask(move |io| (io.is_connected(&sid), io.stats().events_in));
    assert!(alive, "forged reserved events do not disconnect the socket");
    assert_eq!(events_in, 1, "only the echo counts as an event");
    let about_raw: Vec<Report> = lab
        .reports
        .received()
        .iter()
        .filter(|r| matches!(r, Report::Fired { sid, .. } if *sid == raw.sid))
        .cloned()
        .collect();
    assert!(about_raw.is_empty(), "listeners ran: {about_raw:#?}");

    // The listeners were there all along: a real close fires them, with the real reason.
    let sid = raw.sid.clone();
    drop(raw);
    let r = lab
        .reports
        .take("disconnecting", |r| fired(r, &sid, "disconnecting"));
    assert_eq!(reason_in(&r), reasons::TRANSPORT_CLOSE);
    assert_eq!(
        await_reason(&mut lab.reports, &mut [], &sid),
        reasons::TRANSPORT_CLOSE
    );
    lab.stop();
}
