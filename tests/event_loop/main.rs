//! The event loop (src/event_loop) under real load, on real sockets on 127.0.0.1.
//!
//! Each test starts its own loop on port 0: in-process on a thread of its own (the loop is
//! single-threaded, so the test thread plays the clients), or as a real lesson binary
//! (`11_mio_loop serve`, `12_backpressure serve`) when the point is what a learner sees.
//!
//! - `a_thousand_clients_*`: many concurrent connections, every byte back where it belongs.
//! - `a_slow_reader_*`: a big reply waits in an outbound buffer while others are served.
//! - `a_reset_and_a_half_close_*`: RST and FIN from peers end only their own connections.
//! - `nonblocking_connect_*`: ECONNREFUSED and ETIMEDOUT reach `Handler::connected`.
//! - `sigterm_*`, `a_graceful_stop_*`: a graceful stop delivers everything echoed, exits 0.
//! - `the_connection_cap_*`, `the_outbound_cap_*`: the loop's two limits.
//! - `timers_*`: the timer heap and the waker, with `run()` returning after `ctx.stop()`.
//! - `steady_state_echo_*`: no allocation per event on the loop thread.
//! - `input_left_over_*`: input a handler could not take yet is offered again.
//!
//! Nothing here waits without a limit: every socket has read and write timeouts, every poll
//! for a condition has a count and a deadline, every child process and loop thread is stopped
//! by a guard when a test ends (also when an assertion fails). No assertion is about speed:
//! that belongs in `make bench-loop`.

#[path = "../common/mod.rs"]
mod common;
use common::{any_port, spawn_listening, wait_exit, Reaper, WAIT};

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use socklab::blocking::{self, ListenOptions};
use socklab::event_loop::echo::Echo;
use socklab::event_loop::{
    CloseReason, Config, ConnId, Ctx, EventLoop, Handler, LoopHandle, SendError, Stats, TimerId,
};
use socklab::sys::{self, Errno};

// One module a topic; the helper modules' items are shared with all of them.
mod alloc;
mod caps;
mod connect;
mod load;
mod loop_thread;
mod stop;
mod timers;

use loop_thread::*;

/// How long a loop thread turns at most before it stops on its own (a safety net: every test
/// stops its loop long before).
const LOOP_LIMIT: Duration = Duration::from_secs(120);

/// The poll timeout of one turn of a test's loop thread: how soon it notices the stop flag.
const TURN: Duration = Duration::from_millis(50);

/// How long a graceful stop of a test's loop may take: it waits up to `stop_grace` (5 s by
/// default) for a peer that does not read its output.
const STOP_LIMIT: Duration = Duration::from_secs(15);

const MIO_LOOP: &str = env!("CARGO_BIN_EXE_11_mio_loop");
const BACKPRESSURE: &str = env!("CARGO_BIN_EXE_12_backpressure");

// ---------------------------------------------------------------------------------------------
// A counting allocator, for `steady_state_echo_does_not_allocate_on_the_loop_thread`.
// ---------------------------------------------------------------------------------------------

// The counting allocator lives in `socklab::sys` (implementing `GlobalAlloc` takes `unsafe`,
// and `sys` is the crate's only room for it): this test binary only installs it.
#[global_allocator]
static GLOBAL: socklab::sys::CountingAlloc = socklab::sys::CountingAlloc;

use socklab::sys::allocations_on_this_thread;

// ---------------------------------------------------------------------------------------------
// Helpers: addresses, clients, patterns, bounded waits.
// ---------------------------------------------------------------------------------------------

/// A blocking client with timeouts on both directions and Nagle off (every test message is
/// small and waits for its answer).
fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    s.set_write_timeout(Some(WAIT)).expect("SO_SNDTIMEO");
    s.set_nodelay(true).expect("TCP_NODELAY");
    s
}

/// Sends `msg` and reads exactly as many bytes back; they must be `msg`.
fn echo_round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg)
        .unwrap_or_else(|e| panic!("write {:?}: {e}", msg.escape_ascii().to_string()));
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)
        .unwrap_or_else(|e| panic!("read the echo of {:?}: {e}", msg.escape_ascii().to_string()));
    assert_eq!(
        back.escape_ascii().to_string(),
        msg.escape_ascii().to_string(),
        "the echo differs from what was sent"
    );
}

/// Byte `i` of every bulk payload in this file (and of lesson 12's big reply): a period of
/// 251, which no buffer size divides, so a lost, repeated or reordered chunk shows.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

fn payload(len: usize) -> Vec<u8> {
    pattern_from(0, len)
}

/// `len` bytes of [`pattern`] starting at offset `start` of the stream.
fn pattern_from(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(pattern).collect()
}

/// Checks that `chunk`, found at offset `at` of a stream, follows [`pattern`].
fn check_pattern(chunk: &[u8], at: usize) {
    if let Some(k) = (0..chunk.len()).find(|&k| chunk[k] != pattern(at + k)) {
        panic!(
            "byte {} is {} but should be {}",
            at + k,
            chunk[k],
            pattern(at + k)
        );
    }
}

/// Reads until end of file (at most `limit` bytes, with the socket's read timeout on every
/// read) and checks the bytes follow [`pattern`]. Returns how many came, and how the stream
/// ended: `Ok` for end of file, the error otherwise.
fn read_pattern_to_end(s: &mut TcpStream, limit: usize) -> (usize, io::Result<()>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    // Each read returns at least one byte or ends the loop, so `limit + 1` reads suffice.
    for _ in 0..=limit {
        match s.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => {
                assert!(
                    got + n <= limit,
                    "more than the {limit} bytes expected arrived"
                );
                check_pattern(&buf[..n], got);
                got += n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (got, Err(e)),
        }
    }
    (got, Ok(()))
}

/// Polls `cond` every 10 ms until it holds; fails after [`WAIT`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    for _ in 0..(WAIT.as_millis() / 10 + 1) {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(cond(), "gave up after {WAIT:?} waiting for {what}");
}

/// Raises the soft limit on open descriptors to the hard limit (always allowed without
/// privileges) and says whether the hard limit leaves room for `need`.
fn raise_nofile_limit(need: u64) -> bool {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit(RLIMIT_NOFILE)");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .expect("setrlimit(RLIMIT_NOFILE): raising the soft limit to the hard one");
    }
    hard >= need
}

/// What the kernel holds for one connection of a client at `me` to a server at `server`:
/// `(client unread, client unacknowledged, server unread, server unacknowledged)`, read from
/// `/proc/net/tcp`. `None` while either row is missing.
fn queues(me: SocketAddr, server: SocketAddr) -> Option<(u32, u32, u32, u32)> {
    let ours = socklab::procnet::rows_for(me)
        .into_iter()
        .find(|r| r.remote == server)?;
    let theirs = socklab::procnet::rows_for(server)
        .into_iter()
        .find(|r| r.remote == me)?;
    Some((
        ours.rx_queue,
        ours.tx_queue,
        theirs.rx_queue,
        theirs.tx_queue,
    ))
}

// ---------------------------------------------------------------------------------------------
// A lesson binary's `serve` as a child process.
// ---------------------------------------------------------------------------------------------

/// `BIN serve --addr 127.0.0.1:0`, its stdout read line by line on a thread. Dropping it
/// kills this child (by its handle, nothing else) and reaps it.
struct Served {
    child: Reaper,
    addr: SocketAddr,
    lines: Receiver<String>,
}

impl Served {
    fn start(bin: &str) -> Served {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--addr", "127.0.0.1:0"])
            .env_remove("SOCKLAB_TRACE")
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        let (child, addr, lines) = spawn_listening(&mut cmd, &format!("{bin} serve"));
        Served { child, addr, lines }
    }

    /// SIGTERM, to this child only.
    fn terminate(&self) {
        let pid = Pid::from_raw(i32::try_from(self.child.0.id()).expect("a pid fits in pid_t"));
        kill(pid, Signal::SIGTERM).expect("kill(SIGTERM) our own child");
    }

    /// Waits for the child to exit, polling, for at most [`WAIT`].
    fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child.0, "the server", WAIT)
    }

    /// The stdout lines after `listening on`, up to end of file (the child has exited).
    fn rest_of_stdout(&self) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut rest = Vec::new();
        // Bounded by the deadline, and by a line count no server comes near.
        for _ in 0..10_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return rest,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
            }
        }
        panic!("stdout did not end within {WAIT:?}; it had {rest:#?}");
    }
}
