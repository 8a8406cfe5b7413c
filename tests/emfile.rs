//! Out of descriptors: the event loop must back off, not spin, and serve again once
//! descriptors are free. The server runs as a process with a tiny descriptor limit
//! (`ulimit -n`), so the test binary's own limit is untouched.
//!
//! | test | server | what must happen |
//! |---|---|---|
//! | `emfile_backs_off_and_recovers` | lesson 11's echo loop | no spinning; every queued client echoed once descriptors are free |
//! | `socklab_serve_out_of_descriptors_*` | `socklab serve` (the event layer, its feed thread) | no spinning, no crash; EMFILE reported on stderr a bounded number of times; queued clients complete the HELLO/CONNECT handshake once descriptors are free, and so does a new one |

mod common;
use common::{
    connect_raw, cpu_ticks, handshake, lines_of, raw_peer, sigterm, spawn_listening, wait_exit,
    USER_HZ, WAIT,
};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn echo_once(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    back
}

#[test]
fn emfile_backs_off_and_recovers() {
    // 16 descriptors: stdin/out/err, epoll, the waker, the signal pipe, the listener, and
    // room for a handful of connections.
    let bin = env!("CARGO_BIN_EXE_11_mio_loop");
    let mut cmd = Command::new("bash");
    cmd.args([
        "-c",
        &format!("ulimit -n 16 && exec {bin} serve --addr 127.0.0.1:0"),
    ])
    .stdin(Stdio::null())
    .stderr(Stdio::null());
    let (server, addr, _) = spawn_listening(&mut cmd, "11_mio_loop serve under ulimit -n 16");
    let pid = server.0.id();

    // More clients than the server has descriptors for. Their connects succeed (the kernel
    // completes handshakes into the backlog); the server accepts until EMFILE.
    let mut clients: Vec<TcpStream> = (0..20)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
        .collect();
    // The first client is surely accepted: it is served now.
    assert_eq!(echo_once(&mut clients[0], b"first"), b"first");

    // A second of being out of descriptors: a spinning accept loop would burn the whole
    // second of CPU; backing off costs almost nothing. The bound is loose on purpose
    // (half of the second), to catch spinning, not to measure speed.
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(
        used < USER_HZ / 2,
        "the server used {used} ticks in 1 s while out of descriptors: spinning?"
    );

    // Free descriptors: close the served clients. The listener resumes and every waiting
    // client is served, in the end.
    let waiting: Vec<TcpStream> = clients.split_off(10);
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, mut c) in waiting.into_iter().enumerate() {
        let msg = format!("late client {i}");
        assert_eq!(echo_once(&mut c, msg.as_bytes()), msg.as_bytes());
        drop(c); // frees its descriptor on the server for the next one
        assert!(
            Instant::now() < deadline,
            "clients still waiting after 20 s"
        );
    }
}

#[test]
fn socklab_serve_out_of_descriptors_backs_off_reports_and_serves_again() {
    // 24 descriptors: stdin/out/err, epoll, the waker, the signal pipe's two ends, the
    // listener; 16 left for connections. The feed is slowed down so that its broadcasts do
    // not count in the CPU figure.
    let bin = env!("CARGO_BIN_EXE_socklab");
    let mut cmd = Command::new("bash");
    cmd.args([
        "-c",
        &format!("ulimit -n 24 && exec {bin} serve --addr 127.0.0.1:0 --interval-ms 60000"),
    ])
    .stdin(Stdio::null())
    .stderr(Stdio::piped());
    let (mut server, addr, _) = spawn_listening(&mut cmd, "socklab serve under ulimit -n 24");
    let pid = server.0.id();
    let stderr = lines_of(server.0.stderr.take().expect("stderr was piped above"));

    // Twice as many connections as the server has room for. Every connect succeeds (the
    // kernel completes the handshake into the backlog); the server accepts 16 and then gets
    // EMFILE.
    let mut clients: Vec<TcpStream> = (0..32).map(|_| connect_raw(addr)).collect();
    let first = stderr
        .recv_timeout(WAIT)
        .expect("the server reports running out of descriptors");
    assert!(
        first.contains("accept4") && first.contains("EMFILE") && first.contains("paused"),
        "the report names the call, the errno and what the loop does: {first:?}"
    );

    // Out of descriptors for a second. A loop that retried at once would burn the whole
    // second; pausing 100 ms between tries costs almost nothing. The bound is loose on
    // purpose (half the second), to catch spinning, not to measure speed.
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    eprintln!("socklab serve used {used} ticks in 1 s while out of descriptors");
    assert!(
        used < USER_HZ / 2,
        "the server used {used} ticks in 1 s while out of descriptors: spinning?"
    );
    assert!(
        server.0.try_wait().expect("try_wait").is_none(),
        "the server died while out of descriptors"
    );

    // Free descriptors: the first 16 (accepted) clients leave. The listener resumes on its
    // timer and drains the queue: no new connection arrives to wake it (bytes sent on a
    // queued connection do not make the listener readable again), so each queued client
    // completing its handshake proves the resume.
    let queued = clients.split_off(16);
    drop(clients);
    let deadline = Instant::now() + 2 * WAIT;
    for mut c in queued {
        handshake(&mut c);
        drop(c); // frees its descriptor on the server for the next one
        assert!(
            Instant::now() < deadline,
            "queued clients still waiting after {:?}",
            2 * WAIT
        );
    }
    // And a new client, after it all.
    let (_late, _sid) = raw_peer(addr);

    sigterm(&server.0);
    let status = wait_exit(&mut server.0, "socklab serve after SIGTERM", WAIT);
    assert!(status.success(), "exit status {status}");
    // Reported a bounded number of times: the 1st, 2nd, 4th, ... failure of each kind. Some
    // ten failures a second for a few seconds is a handful of lines, not one per failure.
    let reports: Vec<String> = std::iter::once(first)
        .chain(std::iter::from_fn(|| stderr.recv_timeout(WAIT).ok()))
        .filter(|l| l.contains("accept4"))
        .collect();
    eprintln!("{} report lines: {reports:#?}", reports.len());
    assert!(
        reports.len() <= 8,
        "too many reports for a few seconds out of descriptors: {reports:#?}"
    );
}
