//! The lesson binaries, run as a learner runs them: real processes, real sockets on
//! 127.0.0.1, servers on port 0.
//!
//! - `demo_NN_*`: each lesson's demonstration (no arguments, stdin from /dev/null) exits 0,
//!   narrates on stdout, keeps stderr empty unless `--trace` is given, and states the fact the
//!   lesson is about.
//! - `pair_NN_*`: a `serve` process and a `client` process talking to each other.
//! - `echo_server_*`, `framing_server_*`: a server driven by a raw std `TcpStream`, so the test
//!   chooses exactly which bytes go on the wire and how they are split.
//!
//! Their `--help` and their error paths (`help_*`, `error_*`) are tested in tests/cli.rs.
//!
//! Nothing here waits without a limit: every process is killed by its guard when a test ends
//! (also when an assertion fails), every wait has a deadline of [`WAIT`], and every socket has
//! read and write timeouts. No assertion is about speed.

#[path = "../common/mod.rs"]
mod common;
use common::{
    assert_no_panic, collect, command, has_line, pseudo_random, run, spawn_listening, wait_exit,
    Finished, Reaper, ACCEPT, CONNECT, ECHO, FRAMING, HALF_CLOSE, LISTEN, RESET_PIPE, REUSEADDR,
    SOCKET, WAIT,
};

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{ChildStdin, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::Instant;

use socklab::wire::frame::DEFAULT_MAX_PAYLOAD;

// One module a topic; the helpers below are shared with all of them.
mod demos;
mod pairs;
mod servers;

/// A `serve` subcommand running on `127.0.0.1:0`, its stdout read line by line.
struct Server {
    child: Reaper,
    /// Held open for servers that stop at end of file on stdin (lesson 01).
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line received so far, for failure messages.
    seen: Vec<String>,
    stderr: Receiver<Vec<u8>>,
    /// The address from the server's `listening on` line.
    addr: SocketAddr,
}

impl Server {
    /// Starts `bin serve --addr 127.0.0.1:0 extra...` with stdin from /dev/null, and waits
    /// for its `listening on` line: only then is it safe to connect.
    fn start(bin: &str, extra: &[&str]) -> Server {
        Server::spawn(bin, extra, false)
    }

    /// Like [`Server::start`], but stdin stays open until [`Server::close_stdin`].
    fn start_with_open_stdin(bin: &str, extra: &[&str]) -> Server {
        Server::spawn(bin, extra, true)
    }

    fn spawn(bin: &str, extra: &[&str], open_stdin: bool) -> Server {
        let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut cmd = command(bin, &args);
        cmd.stdin(if open_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped());
        let (mut child, addr, lines) = spawn_listening(&mut cmd, &format!("{bin} serve"));
        assert_ne!(addr.port(), 0, "port 0 must become a real port");
        let stderr = collect(child.0.stderr.take().expect("stderr was piped above"));
        let stdin = child.0.stdin.take();
        Server {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
            addr,
        }
    }

    /// Waits (at most [`WAIT`]) for a stdout line equal to `want`, skipping other lines.
    fn expect_line(&mut self, want: &str) {
        let deadline = Instant::now() + WAIT;
        // Bounded by the deadline, and by a line count no lesson comes near.
        for _ in 0..10_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line == want;
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "the server never printed {want:?}; it printed {:#?}",
            self.seen
        );
    }

    /// The next stdout line, waiting at most [`WAIT`] for it.
    fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(_) => panic!(
                "no stdout line from the server within {WAIT:?}; before: {:#?}",
                self.seen
            ),
        }
    }

    /// Closes the server's stdin: its end of file.
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the server to exit on its own.
    fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child.0, "the server", WAIT)
    }

    /// Stops the server and returns what it wrote on stderr while it ran. The servers print
    /// an error there only when a connection failed, so most tests want it empty.
    fn stop(self) -> String {
        let Server {
            mut child, stderr, ..
        } = self;
        let _ = child.0.kill();
        let _ = child.0.wait();
        let bytes = stderr
            .recv_timeout(WAIT)
            .expect("the server's stderr closes when it dies");
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Sockets and bytes
// ---------------------------------------------------------------------------------------------

/// A std client connection with timeouts, so a server that stops answering fails the test
/// instead of hanging it.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(WAIT)).expect("set timeout");
    stream.set_write_timeout(Some(WAIT)).expect("set timeout");
    stream
}

/// Compares two large buffers and reports where they first differ, not 4 MiB of bytes.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at byte {i}: got {:#04x}, sent {:#04x}",
            got[i], want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: length differs");
}

/// One frame: a 4-byte big-endian length, then the payload. Written out here rather than
/// taken from `socklab::wire`, so the server is checked against the format, not against itself.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len())
        .expect("test payloads are small")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(payload);
    out
}

/// Reads one frame's payload, refusing a length no answer of ours could have.
fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 4];
    stream
        .read_exact(&mut header)
        .expect("the frame header arrives");
    let len = u32::from_be_bytes(header) as usize;
    assert!(len <= 1024, "answer frame declares {len} bytes");
    let mut payload = vec![0u8; len];
    stream
        .read_exact(&mut payload)
        .expect("the frame payload arrives");
    payload
}

/// Sends one frame to the framing server and checks its answer, `got N bytes`.
fn frame_round_trip(addr: SocketAddr, payload: &[u8]) {
    let mut stream = connect(addr);
    stream.write_all(&frame(payload)).expect("send a frame");
    let answer = read_frame(&mut stream);
    assert_eq!(
        String::from_utf8_lossy(&answer),
        format!("got {} bytes", payload.len())
    );
}

/// After the server closed on us: the next read says end of file (FIN) or, if our bytes
/// were still unread when it closed, connection reset (RST). Either way no data.
fn assert_closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "expected the connection closed, got {n} bytes: {:?}",
            &buf[..n]
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("expected end of file or a reset, got {e}"),
    }
}

/// The text after `prefix` on the first line that starts with it.
fn after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
}
