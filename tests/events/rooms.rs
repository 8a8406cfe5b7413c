//! Rooms and broadcasts reach exactly their recipients, also from another thread.

use super::*;

#[test]
fn rooms_and_broadcasts_reach_exactly_their_recipients() {
    let mut lab = Lab::start();
    let handle = lab.handle();
    let mut a = Peer::connect(lab.addr());
    let mut b = Peer::connect(lab.addr());
    let mut c = Peer::connect(lab.addr());
    let (sa, sb, sc) = (a.sid.clone(), b.sid.clone(), c.sid.clone());

    // A handler's `broadcast_from(sender)`: the two others, not the sender. The ack is queued
    // after the broadcast, so a copy for the sender would have arrived before it.
    let slot = a.emit_ack("shout", vec![json!("hi from a")], vec![], WAIT);
    let reply = a.wait_ack(&slot).expect("shout is acknowledged");
    assert_eq!(
        reply.args,
        vec![json!(2)],
        "broadcast_from counts 2 recipients"
    );
    let got = fence(&handle, &mut [&mut a, &mut b, &mut c]);
    assert_eq!(got[0], Vec::<String>::new(), "the sender gets no copy");
    assert_eq!(got[1], ["shout [\"hi from a\"]"]);
    assert_eq!(got[2], ["shout [\"hi from a\"]"]);

    // `broadcast("/")` from a handler: all three, the sender too.
    let slot = b.emit_ack("everyone", vec![json!("to all")], vec![], WAIT);
    let reply = b.wait_ack(&slot).expect("everyone is acknowledged");
    assert_eq!(reply.args, vec![json!(3)]);
    let got = fence(&handle, &mut [&mut a, &mut b, &mut c]);
    for g in &got {
        assert_eq!(*g, ["everyone [\"to all\"]"]);
    }

    // Rooms: a in red; b in red and blue; c in blue. Every socket is in its own id's room.
    let (ja, jb, jc) = (sa.clone(), sb.clone(), sc.clone());
    let (rooms_a, red, own_b) = lab.ask(move |io| {
        io.join(&ja, "red");
        io.join(&jb, "red");
        io.join(&jb, "blue");
        io.join(&jc, "blue");
        (
            io.rooms_of(&ja),
            io.sockets_in("/", "red"),
            io.sockets_in("/", &jb),
        )
    });
    assert_eq!(rooms_a, sorted(vec![sa.clone(), "red".into()]));
    assert_eq!(red, sorted(vec![sa.clone(), sb.clone()]));
    assert_eq!(own_b, [sb.as_str()], "b's own room holds b alone");

    let (xa, xb, xc) = (sa.clone(), sb.clone(), sc.clone());
    let counts = lab.ask(move |io| {
        let to = |io: &mut Io, rooms: &[&str], event: &str, n: i32| {
            let mut b = io.broadcast("/");
            for r in rooms {
                b = b.to(r);
            }
            b.emit(event, vec![json!(n)])
        };
        vec![
            to(io, &["red"], "r", 1),
            to(io, &["red", "blue"], "rb", 2),
            io.broadcast("/")
                .to("red")
                .except("blue")
                .emit("r-b", vec![json!(3)]),
            io.broadcast("/")
                .except_socket(&xa)
                .emit("not-a", vec![json!(4)]),
            io.broadcast("/")
                .to("blue")
                .except_socket(&xc)
                .emit("b-c", vec![json!(5)]),
            to(io, &[xb.as_str()], "only-b", 6),
            io.broadcast("/")
                .except("red")
                .emit("not-red", vec![json!(7)]),
        ]
    });
    let counts: Vec<usize> = counts
        .into_iter()
        .map(|r| r.expect("the broadcast is accepted"))
        .collect();
    assert_eq!(counts, [2, 3, 1, 2, 1, 1, 1], "recipients per broadcast");
    let got = fence(&handle, &mut [&mut a, &mut b, &mut c]);
    assert_eq!(got[0], ["r [1]", "rb [2]", "r-b [3]"], "a (red)");
    assert_eq!(
        got[1],
        ["r [1]", "rb [2]", "not-a [4]", "b-c [5]", "only-b [6]"],
        "b (red and blue): the union delivers once"
    );
    assert_eq!(got[2], ["rb [2]", "not-a [4]", "not-red [7]"], "c (blue)");

    // A socket's own room cannot be left, and others may join it: c joins b's room.
    let (lb, lc) = (sb.clone(), sc.clone());
    let (members, sent) = lab.ask(move |io| {
        io.leave(&lb, &lb);
        io.join(&lc, &lb);
        let members = io.sockets_in("/", &lb);
        let sent = (
            io.broadcast("/").to(&lb).emit("b-room", vec![]),
            io.broadcast("/").except(&lb).emit("not-b-room", vec![]),
        );
        io.leave(&lc, &lb);
        (members, sent)
    });
    assert_eq!(members, sorted(vec![sb.clone(), sc.clone()]));
    assert_eq!(
        sent,
        (Ok(2), Ok(1)),
        "b's room is b and c; only a is outside it"
    );
    let got = fence(&handle, &mut [&mut a, &mut b, &mut c]);
    assert_eq!(got[0], ["not-b-room []"], "a");
    assert_eq!(got[1], ["b-room []"], "b, still in its own room");
    assert_eq!(got[2], ["b-room []"], "c, in b's room for a while");

    // b leaves: out of every room, its own included. `disconnecting` still sees its rooms.
    b.io().disconnect();
    let reason = await_reason(&mut lab.reports, &mut [&mut b], &sb);
    assert_eq!(reason, reasons::CLIENT_NAMESPACE_DISCONNECT);
    match lab
        .reports
        .take("b's disconnecting", |r| fired(r, &sb, "disconnecting"))
    {
        Report::Fired { rooms, args, .. } => {
            assert_eq!(args, vec![json!(reasons::CLIENT_NAMESPACE_DISCONNECT)]);
            assert_eq!(rooms, sorted(vec![sb.clone(), "blue".into(), "red".into()]));
        }
        other => unreachable!("take returned a report its predicate refused: {other:?}"),
    }
    let qb = sb.clone();
    let after = lab.ask(move |io| {
        (
            io.sockets_in("/", "red"),
            io.sockets_in("/", "blue"),
            io.sockets_in("/", &qb),
            io.rooms_of(&qb),
            io.is_connected(&qb),
        )
    });
    assert_eq!(
        after,
        (vec![sa.clone()], vec![sc.clone()], vec![], vec![], false)
    );
    let n = lab.ask(|io| io.broadcast("/").to("red").to("blue").emit("left", vec![]));
    assert_eq!(n, Ok(2), "a and c remain");
    let got = fence(&handle, &mut [&mut a, &mut c]);
    assert_eq!(got, [["left []"], ["left []"]]);

    lab.stop();
}

// ---------------------------------------------------------------------------------------------
// The thread-safe handle
// ---------------------------------------------------------------------------------------------

#[test]
fn server_handle_broadcast_from_another_thread_reaches_the_room() {
    let lab = Lab::start();
    let handle = lab.handle();
    let mut a = Peer::connect(lab.addr());
    let mut b = Peer::connect(lab.addr());
    let mut c = Peer::connect(lab.addr());
    let (sa, sb) = (a.sid.clone(), b.sid.clone());
    lab.ask(move |io| {
        io.join(&sa, "ops");
        io.join(&sb, "ops");
    });

    let h = lab.handle();
    let feed = thread::spawn(move || {
        let room = h.broadcast("/", Some("ops"), "alert", vec![json!("disk full")]);
        let all = h.broadcast("/", None, "all", vec![json!(1)]);
        (room, all)
    });
    let sent = feed.join().expect("the feed thread");
    assert_eq!(sent, (Ok(()), Ok(())));
    let got = fence(&handle, &mut [&mut a, &mut b, &mut c]);
    assert_eq!(got[0], ["alert [\"disk full\"]", "all [1]"]);
    assert_eq!(got[1], ["alert [\"disk full\"]", "all [1]"]);
    assert_eq!(got[2], ["all [1]"], "not in the room");

    lab.stop();
    assert_eq!(handle.broadcast("/", None, "late", vec![]), Err(ServerGone));
}
