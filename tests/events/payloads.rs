//! Binary attachments round trip exactly; a frame or an emit over the limit is refused.

use super::*;

#[test]
fn binary_attachments_round_trip_exactly() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());
    // 900 KiB: most of the 1 MB frame limit, so it takes many reads and writes.
    let big = pseudo_random(900 * 1024, 0xb16);
    let pair = vec![Vec::new(), big.clone()];

    // Client -> server with emit_binary.
    a.io()
        .emit_binary("upload", vec![json!("pair")], pair.clone())
        .expect("emit_binary");
    let attachments = await_upload(&mut lab.reports, &mut a);
    assert_same_attachments(&attachments, &pair, "client -> server, emit_binary");

    // Server -> client with an ack_with answer (the server echoes what it got).
    let slot = a.emit_ack("echo-bin", vec![], pair.clone(), WAIT);
    let reply = a.wait_ack(&slot).expect("echo-bin is answered");
    assert_eq!(reply.args, vec![json!(0), json!(big.len())]);
    assert_same_attachments(&reply.attachments, &pair, "server -> client, ack_with");

    // Server -> client with Emit::binary.
    let (sid, sent_pair) = (a.sid.clone(), pair.clone());
    let sent = lab.ask(move |io| {
        let mut e = Emit::new("bin").arg(json!("pair"));
        for part in sent_pair {
            e = e.binary(part);
        }
        io.send(&sid, e)
    });
    assert_eq!(sent, Ok(()));
    let inbox = a.inbox.clone();
    a.run_until("the binary event", move |_| !inbox.borrow().is_empty());
    let got = a.inbox.borrow_mut().remove(0);
    assert_eq!(got.line(), "bin [\"pair\"]");
    assert_same_attachments(&got.attachments, &pair, "server -> client, Emit::binary");

    // Client -> server with the client's ack_with answer.
    let answer = pair.clone();
    a.io().on("want-bin", move |io, ev| {
        io.ack_with(ev, vec![json!("here")], answer.clone());
    });
    let sid = a.sid.clone();
    let sent = lab.ask(move |io| {
        let cb = ack_reporter(lab_tx(io), "want-bin");
        io.send(&sid, Emit::new("want-bin").ack(WAIT, cb))
    });
    assert_eq!(sent, Ok(()));
    let reply = await_ack(&mut lab.reports, &mut [&mut a], "want-bin").expect("answered");
    assert_eq!(reply.args, vec![json!("here")]);
    assert_same_attachments(&reply.attachments, &pair, "client -> server, ack_with");

    // Several attachments, each different in length and content, keep their order.
    let parts = vec![
        b"first".to_vec(),
        Vec::new(),
        pseudo_random(70_000, 2),
        vec![0xff],
        Vec::new(),
        pseudo_random(3, 3),
        b"last".to_vec(),
    ];
    let slot = a.emit_ack("echo-bin", vec![], parts.clone(), WAIT);
    let reply = a.wait_ack(&slot).expect("echo-bin is answered");
    let lens: Vec<Value> = parts.iter().map(|p| json!(p.len())).collect();
    assert_eq!(reply.args, lens, "the server saw them in order");
    assert_same_attachments(&reply.attachments, &parts, "seven attachments");
    lab.stop();
}

// ---------------------------------------------------------------------------------------------
// The frame limit
// ---------------------------------------------------------------------------------------------

#[test]
fn a_frame_over_the_limit_closes_only_that_connection() {
    let mut lab = Lab::start();
    let mut other = Peer::connect(lab.addr());
    let mut raw = Raw::connect(lab.addr());

    // 2,000,000 bytes declared (twice the limit), and sent, from a thread: the server refuses
    // the frame from its 4 header bytes and closes, so the rest may fail to go out.
    let mut writer = raw.stream.try_clone().expect("clone the raw stream");
    let sender = thread::spawn(move || {
        let mut frame = 2_000_000u32.to_be_bytes().to_vec();
        frame.extend(pseudo_random(2_000_000, 0xf4a));
        let _ = writer.write_all(&frame);
    });
    raw.wait_closed();
    sender
        .join()
        .expect("the writer thread ends (write timeout)");
    let reason = await_reason(&mut lab.reports, &mut [], &raw.sid);
    assert_eq!(reason, reasons::PARSE_ERROR);

    // The client connected meanwhile is untouched: an ack round trip after the event.
    other.assert_echo("still fine");
    let sid = raw.sid.clone();
    let (parse_errors, raw_alive) =
        lab.ask(move |io| (io.stats().parse_errors, io.is_connected(&sid)));
    assert_eq!(parse_errors, 1);
    assert!(!raw_alive);
    lab.stop();
}

#[test]
fn an_emit_over_the_limit_is_refused_locally_and_one_at_the_limit_goes_through() {
    let mut lab = Lab::start();
    let handle = lab.handle();
    let mut a = Peer::connect(lab.addr());
    let limit = Limits::default().max_frame;

    let over = vec![0u8; limit + 1];
    let refused = a.io().emit_binary("upload", vec![], vec![over.clone()]);
    let Err(EmitError::TooLarge { bytes, limit: l }) = refused else {
        panic!("a packet over the limit: expected TooLarge, got {refused:?}");
    };
    assert_eq!(l, limit);
    assert!(
        bytes > limit + 1,
        "the packet counts its header fields too: {bytes}"
    );
    let called = Rc::new(RefCell::new(false));
    let c = called.clone();
    let refused = a
        .io()
        .emit_with_ack("upload", vec![], vec![over], WAIT, move |_, _| {
            *c.borrow_mut() = true;
        });
    assert!(
        matches!(refused, Err(EmitError::TooLarge { .. })),
        "{refused:?}"
    );

    // The same packet with an attachment `bytes - limit` bytes smaller is exactly at the
    // limit, and that is allowed on both ends.
    let at = pseudo_random(limit + 1 - (bytes - limit), 7);
    a.io()
        .emit_binary("upload", vec![], vec![at.clone()])
        .expect("a packet of exactly the limit is allowed");
    let attachments = await_upload(&mut lab.reports, &mut a);
    assert_same_attachments(&attachments, &[at], "a packet at the limit");

    // The server refuses to send over the limit too, and the client keeps working.
    let sid = a.sid.clone();
    let sent = lab.ask(move |io| io.send(&sid, Emit::new("huge").binary(vec![1; limit + 1])));
    assert!(matches!(sent, Err(EmitError::TooLarge { .. })), "{sent:?}");
    assert_eq!(fence(&handle, &mut [&mut a]), [Vec::<String>::new()]);
    a.assert_echo("after");
    // A refused emit_with_ack registered no callback: leaving fails every pending ack.
    a.io().disconnect();
    assert!(!*called.borrow(), "the refused emit's ack callback ran");
    let uploads = lab
        .reports
        .received()
        .iter()
        .filter(|r| matches!(r, Report::Upload { .. }))
        .count();
    assert_eq!(uploads, 0, "nothing over the limit reached the server");
    lab.stop();
}
