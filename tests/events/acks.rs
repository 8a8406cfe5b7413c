//! Acks both ways: answers, timeouts, and `Disconnected` when the peer leaves first.

use super::*;

#[test]
fn acks_carry_answers_both_ways() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());

    // Client -> server: the server computes the answer from the arguments.
    let slot = a.emit_ack("sum", vec![json!(1), json!(2), json!(39)], vec![], WAIT);
    let reply = a.wait_ack(&slot).expect("sum is answered");
    assert_eq!(reply.args, vec![json!(42), json!("sum")]);
    assert!(reply.attachments.is_empty());

    // Server -> client: the client's listener answers with `io.ack`.
    a.io().on("question", |io, ev| {
        let n = ev.args.first().and_then(Value::as_i64).unwrap_or(0);
        io.ack(ev, vec![json!(n * 2), json!("doubled")]);
    });
    let sid = a.sid.clone();
    let sent = lab.ask(move |io| {
        let cb = ack_reporter(lab_tx(io), "question");
        io.send(&sid, Emit::new("question").arg(json!(21)).ack(WAIT, cb))
    });
    assert_eq!(sent, Ok(()));
    let reply = await_ack(&mut lab.reports, &mut [&mut a], "question").expect("answered");
    assert_eq!(reply.args, vec![json!(42), json!("doubled")]);
    lab.stop();
}

#[test]
fn acks_time_out_both_ways_when_nobody_answers() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());

    // Client side: the server has no `silent` listener.
    let slot = a.emit_ack("silent", vec![json!(1)], vec![], Duration::from_millis(300));
    assert_eq!(a.wait_ack(&slot), Err(AckError::Timeout));

    // Server side: the client has no `unanswered` listener (its on_any only records).
    let sid = a.sid.clone();
    let sent = lab.ask(move |io| {
        let cb = ack_reporter(lab_tx(io), "unanswered");
        let e = Emit::new("unanswered").arg(json!("?"));
        io.send(&sid, e.ack(Duration::from_millis(300), cb))
    });
    assert_eq!(sent, Ok(()));
    let result = await_ack(&mut lab.reports, &mut [&mut a], "unanswered");
    assert_eq!(result, Err(AckError::Timeout));
    // The event itself did arrive: the ack was asked for and left unanswered.
    let lines: Vec<String> = a.inbox.borrow().iter().map(Got::line).collect();
    assert_eq!(lines, ["unanswered [\"?\"]"]);

    // Both ends are still connected after their timeouts.
    a.assert_echo("still here");
    lab.stop();
}

#[test]
fn acks_fail_with_disconnected_when_the_peer_leaves_first() {
    let mut lab = Lab::start();
    let mut a = Peer::connect(lab.addr());
    let mut b = Peer::connect(lab.addr());

    // Client side: an ack with a long timeout is pending when the server disconnects a.
    let slot = a.emit_ack("silent", vec![], vec![], Duration::from_secs(60));
    // The echo is answered after `silent` was handled: the server has it before it acts.
    a.assert_echo("before");
    let sa = a.sid.clone();
    lab.ask(move |io| io.disconnect(&sa));
    assert_eq!(a.wait_ack(&slot), Err(AckError::Disconnected));
    assert_eq!(
        a.io().disconnect_reason(),
        Some(reasons::IO_SERVER_DISCONNECT)
    );

    // Server side: an ack pending on b when b leaves.
    let sb = b.sid.clone();
    let sent = lab.ask(move |io| {
        let cb = ack_reporter(lab_tx(io), "left");
        let e = Emit::new("unanswered").ack(Duration::from_secs(60), cb);
        io.send(&sb, e)
    });
    assert_eq!(sent, Ok(()));
    b.io().disconnect();
    let result = await_ack(&mut lab.reports, &mut [&mut b], "left");
    assert_eq!(result, Err(AckError::Disconnected));
    lab.stop();
}
