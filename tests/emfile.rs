//! Out of descriptors: the event loop must back off, not spin, and serve again once
//! descriptors are free. The server runs as a process with a tiny descriptor limit
//! (`ulimit -n`), so the test binary's own limit is untouched.

mod common;
use common::{cpu_ticks, spawn_listening, TICKS_PER_SECOND};

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
        used < TICKS_PER_SECOND / 2,
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
