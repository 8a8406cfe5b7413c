//! Helpers shared by the integration tests: a raw peer's frames, its handshake and reading
//! packets back; child processes, their output and their signals; running code on a
//! server's thread; reproducible bytes; CPU time and resident memory from /proc.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use socklab::events::{Io, ServerHandle};
use socklab::wire::frame::HEADER_LEN;
use socklab::wire::packet::{self, Limits, Packet};

/// How long any one wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn frame(p: &Packet) -> Vec<u8> {
    let mut bytes = Vec::new();
    packet::encode(p, &mut bytes);
    bytes
}

pub fn hello_and_connect() -> Vec<u8> {
    packet::greeting(None)
}

/// Reads one packet; `Ok(None)` is end of file before a frame began.
pub fn read_packet(stream: &mut TcpStream) -> std::io::Result<Option<Packet>> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match stream.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload)?;
    let limits = Limits {
        max_frame: 8 << 20,
        ..Limits::default()
    };
    packet::decode(&payload, &limits)
        .map(Some)
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e.to_string()))
}

pub fn connect_raw(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    stream.set_write_timeout(Some(WAIT)).expect("SO_SNDTIMEO");
    stream
}

/// Sends HELLO and CONNECT to `/` (with `auth` as the CONNECT's data) on `stream`, reads
/// the server's HELLO and CONNECT reply, and returns the reply's data (`sid`, `pid`,
/// `recovered`, `offset`). Panics on anything else: the handshake is what the calling test
/// relies on, not what it tests.
pub fn handshake_with(
    stream: &mut TcpStream,
    auth: Option<serde_json::Value>,
) -> serde_json::Value {
    stream
        .write_all(&packet::greeting(auth))
        .expect("HELLO and CONNECT sent");
    // The server's HELLO comes first, then its CONNECT reply.
    for _ in 0..2 {
        match read_packet(stream) {
            Ok(Some(Packet::Connect { data: Some(d), .. })) => return d,
            Ok(Some(Packet::Hello { .. })) => continue,
            other => panic!("expected HELLO, then CONNECT; got {other:?}"),
        }
    }
    panic!("no CONNECT reply from the server")
}

/// [`handshake_with`] without auth; returns the socket id the server gave.
pub fn handshake(stream: &mut TcpStream) -> String {
    let reply = handshake_with(stream, None);
    let sid = reply.get("sid").and_then(serde_json::Value::as_str);
    sid.expect("CONNECT carries the sid").to_string()
}

/// A new raw connection that has completed HELLO and CONNECT with `auth`: the stream and the
/// CONNECT reply's data.
pub fn raw_connect(
    addr: SocketAddr,
    auth: Option<serde_json::Value>,
) -> (TcpStream, serde_json::Value) {
    let mut stream = connect_raw(addr);
    let reply = handshake_with(&mut stream, auth);
    (stream, reply)
}

/// A raw peer that has completed HELLO and CONNECT: the stream and its socket id.
pub fn raw_peer(addr: SocketAddr) -> (TcpStream, String) {
    let mut stream = connect_raw(addr);
    let sid = handshake(&mut stream);
    (stream, sid)
}

/// Owns a child process and kills it when dropped, so a failing assertion (which unwinds
/// through here) never leaves one running. Only this child is touched, by its handle.
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        // Both fail harmlessly if the child already exited and was reaped.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a child's pipe line by line on a thread of its own, into a channel that ends at end
/// of file (at the latest when the child dies). Lines are cut of trailing white space; bytes
/// that are not UTF-8 are replaced, not an error.
pub fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = BufReader::new(pipe);
        let mut line = Vec::new();
        while matches!(out.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            if tx.send(text).is_err() {
                return;
            }
            line.clear();
        }
    });
    rx
}

/// Runs `f` on the server's thread and returns what it returned. The server handles its work
/// in order, so this is also a fence: whatever was queued on `handle` before has been done.
pub fn ask<T: Send + 'static>(
    handle: &ServerHandle,
    f: impl FnOnce(&mut Io) -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    handle
        .run(move |io| {
            let _ = tx.send(f(io));
        })
        .expect("the server is running");
    rx.recv_timeout(WAIT)
        .expect("the server thread answers within WAIT")
}

/// `len` bytes from a xorshift64 generator: looks random to a stream or a parser (no
/// repeating pattern that a bug shifting bytes around could reproduce by accident), yet the
/// same every run for a seed.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Reads a child's pipe to the end on a thread of its own and hands the bytes over a
/// channel, so the caller can wait for them with a deadline instead of blocking on a pipe.
pub fn collect(mut from: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut all = Vec::new();
        // An error here only shortens the output; the assertions on it will say so.
        let _ = from.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    rx
}

/// Starts `cmd` with stdout piped and waits (at most [`WAIT`]) for its first line, `listening
/// on ADDR`: returns the child, that address (on 127.0.0.1), and the lines that follow.
pub fn spawn_listening(cmd: &mut Command, what: &str) -> (Reaper, SocketAddr, Receiver<String>) {
    let mut child = Reaper(
        cmd.stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}")),
    );
    let lines = lines_of(child.0.stdout.take().expect("stdout was piped above"));
    let first = lines
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what} printed no line within {WAIT:?}"));
    let addr: SocketAddr = first
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{what}: first line {first:?} is not `listening on ADDR`"));
    assert_eq!(addr.ip().to_string(), "127.0.0.1", "{what}: {first}");
    (child, addr, lines)
}

/// Sends SIGTERM to our own child, by its pid.
pub fn sigterm(child: &Child) {
    let pid = i32::try_from(child.id()).expect("a pid fits in an i32");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill -TERM our own child");
}

/// Waits (at most `limit`, polling) for the child to exit.
pub fn wait_exit(child: &mut Child, what: &str, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait on our own child") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not exit within {limit:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Clock ticks per second in /proc's CPU times (`USER_HZ`, 100 on Linux whatever the
/// kernel's own tick rate).
pub const USER_HZ: u64 = 100;

/// User + system CPU time, in clock ticks, from a `/proc/.../stat` file (0 if unreadable).
/// The command name in field 2 may hold spaces and parentheses, so fields are counted after
/// its last `) `.
fn stat_ticks(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12) // utime and stime, fields 14 and 15 of stat(5)
}

/// CPU time process `pid` has used, in ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    stat_ticks(&format!("/proc/{pid}/stat"))
}

/// CPU time the calling thread has used, in ticks: unlike the process's, it does not count
/// the other tests running on other threads of the same test binary.
pub fn thread_cpu_ticks() -> u64 {
    stat_ticks("/proc/thread-self/stat")
}

/// VmRSS of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a VmRSS line")
}
