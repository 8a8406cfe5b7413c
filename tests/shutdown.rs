//! Stopping on time (issue 9): `socklab serve` stopped with SIGTERM must exit within the
//! loop's `stop_grace` (5 s), whatever else it runs. Its score feed is a thread of its own
//! that waits `--interval-ms` between two balls; a feed that slept through its wait kept the
//! process alive for up to a whole interval after the loop had stopped (some 14.5 s with
//! `--interval-ms 15000`).
//!
//! The server is the real binary, a process of its own, and the signal is a real SIGTERM sent
//! by pid: the signal handler, the self-pipe, the loop's stop and every thread's end are all
//! on the path.

mod common;
use common::{raw_peer, read_packet, sigterm, spawn_listening, wait_exit, WAIT};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use socklab::wire::packet::Packet;

const SOCKLAB: &str = env!("CARGO_BIN_EXE_socklab");

/// The longest the exit may take after SIGTERM. A correctness bound, not a speed target:
/// the stop itself is bounded by `stop_grace` (5 s) and here takes a few milliseconds, since
/// the one client closes as soon as it is told to; the old feed took the rest of its 15 s
/// wait.
const EXIT_BOUND: Duration = Duration::from_secs(5);

#[test]
fn serve_with_a_slow_feed_exits_promptly_on_sigterm() {
    let mut cmd = Command::new(SOCKLAB);
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--interval-ms", "15000"])
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let (mut server, addr, lines) = spawn_listening(&mut cmd, "socklab serve");

    // A client in the middle of its session: connected to the default namespace. (The feed
    // is asleep in its first 15-second wait.)
    let (mut client, _sid) = raw_peer(addr);

    sigterm(&server.0);
    let sent = Instant::now();

    // The server says goodbye at once: DISCONNECT, then its FIN. The client closes in turn,
    // as a well-behaved one does, so nothing on the network side holds the stop up.
    let mut told = false;
    loop {
        match read_packet(&mut client) {
            Ok(Some(Packet::Disconnect { .. })) => told = true,
            Ok(Some(_)) => {}
            Ok(None) => break, // the server's FIN
            Err(e) => panic!("reading the goodbye: {e}"),
        }
    }
    assert!(told, "the server sent DISCONNECT before closing");
    drop(client);

    let status = wait_exit(&mut server.0, "socklab serve after SIGTERM", WAIT);
    let took = sent.elapsed();
    eprintln!("socklab serve --interval-ms 15000 exited {took:?} after SIGTERM");
    assert!(
        took < EXIT_BOUND,
        "socklab serve took {took:?} to exit after SIGTERM (stop_grace is 5 s): a thread that \
         does not wake on stop?"
    );
    assert!(status.success(), "exit status {status}");
    // The rest of its stdout, up to the end of the pipe (the process is gone).
    let printed: Vec<String> = std::iter::from_fn(|| lines.recv_timeout(WAIT).ok()).collect();
    assert!(
        printed.iter().any(|l| l == "stopped"),
        "the server printed {printed:?}"
    );
}
