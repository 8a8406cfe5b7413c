//! The server as a process: a killed one loses no acked emit; SIGTERM says goodbye, closes with
//! FIN and exits 0; the lesson 16 and 17 demonstrations exit 0.

use super::*;

/// Starts `17_graceful_shutdown serve` on `addr` (a process of its own, acknowledging
/// `tick`s) and returns it, where it listens, and its stdout and stderr lines.
fn serve_lesson_17(addr: SocketAddr) -> (Reaper, SocketAddr, Receiver<String>, Receiver<String>) {
    let mut cmd = Command::new(LESSON_17);
    cmd.args(["serve", "--addr", &addr.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    let (mut child, addr, out) = spawn_listening(&mut cmd, "17_graceful_shutdown serve");
    let err = lines_of(child.0.stderr.take().expect("piped stderr"));
    (child, addr, out, err)
}

/// The server process is killed (SIGKILL: no goodbye, nothing flushed) while a client emits
/// acked `tick`s, and a new process starts on the same address a little later. The client
/// notices the end of file, buffers what it emits meanwhile, reconnects with backoff, and sends
/// again whatever was not answered: every tick's callback runs exactly once, with an answer,
/// and none is lost. (A tick the first process handled but whose answer died with it is
/// handled again by the second: docs/protocol.md, section 9.)
#[test]
fn a_killed_server_process_loses_no_acked_emit() {
    const TICKS: u64 = 60;
    let (mut first, addr, _, _) = serve_lesson_17(any_port());
    let mut c = Watched::connect(client_options(addr));
    let mut slots = Vec::new();
    let mut second = None;
    for n in 1..=TICKS {
        slots.push(c.emit_ack("tick", vec![json!(n)]));
        if n == 20 {
            // Tick 20 leaves (one turn writes it) and the server dies before the client can
            // read any answer: at least this one must be sent again.
            c.client.turn(Some(Duration::ZERO)).expect("client turn");
            assert!(slots[19].borrow().is_empty());
            kill(Pid::from_raw(first.0.id() as i32), Signal::SIGKILL).expect("kill -KILL");
            let status = wait_exit(&mut first.0, "the killed server", WAIT);
            assert!(!status.success(), "killed, not exited: {status}");
        }
        c.run_for(Duration::from_millis(3));
        if n == 40 {
            assert!(
                !c.io().is_connected(),
                "the client noticed the killed server"
            );
            second = Some(serve_lesson_17(addr));
        }
    }
    let all = slots.clone();
    c.run_until("every tick answered", move |_| {
        all.iter().all(|s| !s.borrow().is_empty())
    });
    // A second answer to any tick would have arrived by now.
    c.round_trip("tick", vec![json!(0)]);
    for (n, slot) in (1..).zip(&slots) {
        let answers = slot.borrow();
        assert_eq!(answers.len(), 1, "tick {n}: one callback run: {answers:?}");
        assert!(answers[0].is_ok(), "tick {n}: an answer: {answers:?}");
    }
    assert!(
        c.names().iter().any(|e| e.starts_with("reconnect ")),
        "the client reconnected: {:?}",
        c.names()
    );
    drop(c);
    drop(second);
}

/// `17_graceful_shutdown serve` gets SIGTERM with a raw client connected: the client reads
/// DISCONNECT `server shutting down`, then end of file (FIN), not ECONNRESET; the process
/// prints `stopped cleanly` and exits 0.
#[test]
fn sigterm_says_goodbye_closes_with_fin_and_exits_0() {
    let (mut child, addr, out, err) = serve_lesson_17(any_port());
    let (mut raw, _sid) = raw_peer(addr);
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).expect("kill -TERM");
    let (packets, end) = read_to_end(&mut raw);
    assert_eq!(
        packets,
        [Packet::Disconnect {
            ns: "/".into(),
            reason: Some(reasons::SERVER_SHUTTING_DOWN.into()),
        }]
    );
    assert_eq!(end, End::Eof, "a FIN after the goodbye, not a reset");
    drop(raw); // our FIN: the server's lingering close ends

    let status = wait_exit(&mut child.0, "17_graceful_shutdown serve", EXIT_WAIT);
    let stdout = collect_lines(&out);
    let stderr = collect_lines(&err);
    assert!(status.success(), "exit status {status}; stderr {stderr:?}");
    assert!(
        stdout.iter().any(|l| l == "stopped cleanly"),
        "stdout {stdout:?}"
    );
}

/// The demonstrations of lessons 16 and 17 (no arguments) run to the end and exit 0.
#[test]
fn lessons_16_and_17_demonstrations_exit_0() {
    for bin in [LESSON_16, LESSON_17] {
        let mut child = Reaper(
            Command::new(bin)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {bin}: {e}")),
        );
        let out = lines_of(child.0.stdout.take().expect("piped stdout"));
        let err = lines_of(child.0.stderr.take().expect("piped stderr"));
        let status = wait_exit(&mut child.0, bin, EXIT_WAIT);
        let stdout = collect_lines(&out);
        let stderr = collect_lines(&err);
        assert!(
            status.success(),
            "{bin}: exit status {status}\nstdout {stdout:#?}\nstderr {stderr:#?}"
        );
        assert!(!stdout.is_empty(), "{bin} narrates what it does");
    }
}
