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
// A loop on its own thread.
// ---------------------------------------------------------------------------------------------

/// An [`EventLoop`] listening on 127.0.0.1:0 and turning on a thread of its own.
///
/// The thread turns with a short poll timeout and checks a stop flag between turns; setting
/// it makes the thread call [`Ctx::stop`] (a graceful stop), after which the loop finishes
/// and the thread hands back the final [`Stats`]. Dropping the guard does the same, so a
/// failed assertion never leaves a loop running.
struct LoopThread<M: Send + 'static> {
    addr: SocketAddr,
    handle: LoopHandle<M>,
    quit: Arc<AtomicBool>,
    finished: Receiver<Stats>,
    thread: Option<JoinHandle<()>>,
}

impl<M: Send + 'static> LoopThread<M> {
    fn start<H>(handler: H, config: Config) -> LoopThread<M>
    where
        H: Handler<Message = M> + Send + 'static,
    {
        let (ready_tx, ready) = mpsc::channel();
        let (done_tx, finished) = mpsc::channel();
        let quit = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&quit);
        let thread = thread::spawn(move || {
            let mut ev = EventLoop::new(handler, config).expect("epoll_create1 and the waker");
            let addr = ev.ctx().listen(any_port()).expect("listen on 127.0.0.1:0");
            // The test connects only once it has the address.
            let _ = ready_tx.send((addr, ev.handle()));
            let deadline = Instant::now() + LOOP_LIMIT;
            // Ends once the stop is done: at most `stop_grace` after the flag or the deadline.
            while !ev.is_stopped() {
                let asked = stop_flag.load(Ordering::SeqCst) || Instant::now() >= deadline;
                if asked && !ev.ctx().is_stopping() {
                    ev.ctx().stop();
                }
                ev.turn(Some(TURN)).expect("a turn of the loop");
            }
            let _ = done_tx.send(ev.ctx().stats().clone());
        });
        let (addr, handle) = ready
            .recv_timeout(WAIT)
            .expect("the loop thread starts listening");
        LoopThread {
            addr,
            handle,
            quit,
            finished,
            thread: Some(thread),
        }
    }

    /// Asks the loop thread to begin a graceful stop ([`Ctx::stop`]) and returns at once.
    fn begin_stop(&self) {
        self.quit.store(true, Ordering::SeqCst);
    }

    /// Stops the loop gracefully and returns its final counters.
    fn stop(mut self) -> Stats {
        self.begin_stop();
        let thread = self.thread.take().expect("stop is called once");
        match self.finished.recv_timeout(STOP_LIMIT) {
            Ok(stats) => {
                thread.join().expect("the loop thread ended cleanly");
                stats
            }
            // The sender is gone without a word: the thread panicked; pass its panic on.
            Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => panic!("the loop thread ended without its stats"),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the loop did not stop within {STOP_LIMIT:?}")
            }
        }
    }
}

impl<M: Send + 'static> Drop for LoopThread<M> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.begin_stop();
            // Joined only if it ended (or is ending: a panic drops the sender); a stuck loop
            // thread is left behind rather than hang a test that is failing anyway.
            if !matches!(
                self.finished.recv_timeout(STOP_LIMIT),
                Err(mpsc::RecvTimeoutError::Timeout)
            ) {
                let _ = thread.join();
            }
        }
    }
}

/// What the test thread asks a running [`Controlled`] echo loop.
enum Cmd {
    Report(Sender<Report>),
}

/// A snapshot of a running echo loop, taken on the loop thread.
#[derive(Debug, Clone)]
struct Report {
    stats: Stats,
    echoed: u64,
    /// Live connections: the client's address (the peer, as the loop sees it) and the bytes
    /// queued for it.
    open: Vec<(SocketAddr, usize)>,
    /// Every connection closed so far: the client's address and why.
    closes: Vec<(SocketAddr, CloseReason)>,
}

impl Report {
    fn pending_for(&self, peer: SocketAddr) -> Option<usize> {
        self.open.iter().find(|(p, _)| *p == peer).map(|&(_, n)| n)
    }

    fn close_of(&self, peer: SocketAddr) -> Option<&CloseReason> {
        self.closes.iter().find(|(p, _)| *p == peer).map(|(_, r)| r)
    }
}

/// [`Echo`], plus the bookkeeping a test needs to see what the loop did with each peer.
#[derive(Default)]
struct Controlled {
    echo: Echo,
    peers: HashMap<ConnId, SocketAddr>,
    closes: Vec<(SocketAddr, CloseReason)>,
}

impl Handler for Controlled {
    type Timer = ();
    type Message = Cmd;

    fn accepted(&mut self, ctx: &mut Ctx<()>, id: ConnId, peer: SocketAddr) {
        self.peers.insert(id, peer);
        self.echo.accepted(ctx, id, peer);
    }

    fn data(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        self.echo.data(ctx, id, bytes)
    }

    fn drained(&mut self, ctx: &mut Ctx<()>, id: ConnId) {
        self.echo.drained(ctx, id);
    }

    fn closed(&mut self, ctx: &mut Ctx<()>, id: ConnId, reason: CloseReason) {
        let peer = self.peers.remove(&id).unwrap_or_else(any_port);
        self.closes.push((peer, reason.clone()));
        self.echo.closed(ctx, id, reason);
    }

    fn message(&mut self, ctx: &mut Ctx<()>, msg: Cmd) {
        match msg {
            Cmd::Report(reply) => {
                let open = ctx
                    .connection_ids()
                    .into_iter()
                    .filter_map(|id| Some((ctx.peer(id)?, ctx.pending(id))))
                    .collect();
                let _ = reply.send(Report {
                    stats: ctx.stats().clone(),
                    echoed: self.echo.echoed,
                    open,
                    closes: self.closes.clone(),
                });
            }
        }
    }
}

type EchoLoop = LoopThread<Cmd>;

impl EchoLoop {
    fn echo(config: Config) -> EchoLoop {
        LoopThread::start(Controlled::default(), config)
    }

    /// A snapshot, through a [`LoopHandle`] message (the waker wakes the loop for it).
    fn report(&self) -> Report {
        let (tx, rx) = mpsc::channel();
        if self.handle.send(Cmd::Report(tx)).is_err() {
            panic!("the loop thread is gone");
        }
        rx.recv_timeout(WAIT)
            .expect("the loop answers a report request")
    }
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

// ---------------------------------------------------------------------------------------------
// 1. Many clients.
// ---------------------------------------------------------------------------------------------

/// 1,000 connections at once, each echoing 100 messages that name the client and the
/// sequence number: any mix-up between connections (a wrong slot, a stale token, a shared
/// buffer handed to the wrong peer) or within one (a lost, repeated or reordered chunk)
/// shows as a wrong echo.
///
/// Four threads drive 250 blocking clients each in lockstep: message i goes to all 250, then
/// each echo is read back, so the loop always has hundreds of ready connections per turn.
#[test]
fn a_thousand_clients_echo_a_hundred_messages_each() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 250;
    const CLIENTS: usize = THREADS * PER_THREAD;
    const MESSAGES: usize = 100;
    // `client 0999 message 099\n`: the same length for every message.
    const MSG_LEN: usize = 24;

    // Two descriptors per connection live in this process (the client's and the loop's),
    // plus the test harness's own.
    if !raise_nofile_limit(2 * CLIENTS as u64 + 100) {
        eprintln!(
            "skipped: the hard RLIMIT_NOFILE is below {}; 1,000 clients and their server \
             side do not fit in this process",
            2 * CLIENTS + 100
        );
        return;
    }
    let server = EchoLoop::echo(Config::default());
    let addr = server.addr;

    let workers: Vec<JoinHandle<()>> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let ids: Vec<usize> = (t * PER_THREAD..(t + 1) * PER_THREAD).collect();
                let mut conns: Vec<TcpStream> = ids.iter().map(|_| client(addr)).collect();
                let mut back = [0u8; MSG_LEN];
                for m in 0..MESSAGES {
                    let msgs: Vec<String> = ids
                        .iter()
                        .map(|c| format!("client {c:04} message {m:03}\n"))
                        .collect();
                    for (s, msg) in conns.iter_mut().zip(&msgs) {
                        assert_eq!(msg.len(), MSG_LEN);
                        s.write_all(msg.as_bytes())
                            .unwrap_or_else(|e| panic!("write {msg:?}: {e}"));
                    }
                    for (s, msg) in conns.iter_mut().zip(&msgs) {
                        s.read_exact(&mut back)
                            .unwrap_or_else(|e| panic!("read the echo of {msg:?}: {e}"));
                        assert_eq!(
                            String::from_utf8_lossy(&back),
                            msg.as_str(),
                            "an echo came back to the wrong client or out of order"
                        );
                    }
                }
            })
        })
        .collect();
    for w in workers {
        // A failing client panicked with its own message; pass it on.
        if let Err(panic) = w.join() {
            std::panic::resume_unwind(panic);
        }
    }

    // The clients are gone (dropped at the end of their threads): the loop sees 1,000 FINs.
    wait_until("the loop to close all 1,000 connections", || {
        server.report().closes.len() == CLIENTS
    });
    let report = server.report();
    let total = (CLIENTS * MESSAGES * MSG_LEN) as u64;
    assert_eq!(report.stats.accepted, CLIENTS as u64, "{:?}", report.stats);
    assert_eq!(report.stats.refused, 0, "{:?}", report.stats);
    assert_eq!(report.echoed, total);
    assert_eq!(report.stats.bytes_in, total, "{:?}", report.stats);
    assert_eq!(report.stats.bytes_out, total, "{:?}", report.stats);
    assert!(
        report
            .closes
            .iter()
            .all(|(_, r)| *r == CloseReason::PeerClosed),
        "every client closed its side first: {:?}",
        report
            .closes
            .iter()
            .find(|(_, r)| *r != CloseReason::PeerClosed)
    );
    assert!(report.open.is_empty());
    let stats = server.stop();
    assert_eq!(stats.closed, CLIENTS as u64, "{stats:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. A slow reader.
// ---------------------------------------------------------------------------------------------

/// Lesson 12's server answers `big\n` with 8 MiB. The slow client reads it in reads of up to
/// 64 KiB with a 10 ms pause after each ("slow" means a pause per read: one byte per 10 ms
/// would take a day), so most of the reply waits in the server's outbound buffer and the
/// kernel's buffers. Meanwhile a quick client echoes 50 messages through the same server.
///
/// The quick client starts once the big reply is under way. At the 1 MiB mark the slow
/// client stops reading until the quick client is done, and checks with `/proc/net/tcp`
/// that part of the reply is still inside the server process (neither read by us, nor in
/// our receive queue, nor in the server's send queue): so the 50 echoes provably happened
/// while the big reply was waiting (a server that blocked on the slow reader would time the
/// quick client out). Every byte of the reply is checked, and the end of file after it shows
/// nothing extra was sent.
#[test]
fn a_slow_reader_gets_every_byte_while_others_are_served() {
    const BIG: usize = 8 << 20;
    const PAUSE: Duration = Duration::from_millis(10);
    const QUICK: usize = 50;
    // Where the slow client waits for the quick one: far enough into the reply that it is
    // surely flowing, far enough from its end that the kernel's buffers cannot hold the rest
    // (about 4 MiB on loopback with default tuning).
    const MARK: usize = 1 << 20;

    let server = Served::start(BACKPRESSURE);
    let addr = server.addr;
    let mut slow = client(addr);
    let me = slow.local_addr().expect("getsockname");
    slow.write_all(b"big\n").expect("ask for the big reply");

    let (quick_tx, quick_done) = mpsc::channel::<usize>();
    let mut quick: Option<JoinHandle<()>> = None;
    let mut quick_finished = false;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    // A read returns at least 1 byte, so BIG reads bound the loop; the deadline bounds it
    // in time (at 10 ms per read, reads of under 1.4 KiB would run out of time).
    for _ in 0..BIG {
        if got == BIG {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow client read only {got} of {BIG} bytes"
        );
        let n = slow
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read after {got} of {BIG} bytes: {e}"));
        assert_ne!(n, 0, "the server closed after {got} of {BIG} bytes");
        assert!(got + n <= BIG, "more than {BIG} bytes arrived");
        check_pattern(&buf[..n], got);
        got += n;

        if quick.is_none() {
            let tx = quick_tx.clone();
            quick = Some(thread::spawn(move || {
                let mut s = client(addr);
                for i in 0..QUICK {
                    echo_round_trip(&mut s, format!("quick message {i:02}\n").as_bytes());
                    let _ = tx.send(i + 1);
                }
            }));
        }
        if got >= MARK && !quick_finished {
            // Count the quick client's echoes; a gap of WAIT with no progress fails.
            let mut done = 0;
            while done < QUICK {
                done = quick_done
                    .recv_timeout(WAIT)
                    .unwrap_or_else(|_| panic!("the quick client got {done} of {QUICK} echoes"));
            }
            quick_finished = true;
            // Only more of the reply can have left the server since the quick client was
            // done, so what is still inside now was inside then.
            let (our_rx, _, _, their_tx) =
                queues(me, addr).expect("both ends of the slow connection in /proc/net/tcp");
            let in_kernel = our_rx as usize + their_tx as usize;
            assert!(
                got + in_kernel < BIG,
                "the whole reply had left the server before the quick client was done \
                 ({got} bytes read, {in_kernel} in the kernel): this proves nothing"
            );
        }
        thread::sleep(PAUSE);
    }
    assert_eq!(got, BIG);
    if let Some(Err(panic)) = quick.map(JoinHandle::join) {
        std::panic::resume_unwind(panic);
    }
    assert!(quick_finished);

    // Our FIN: the server closes in turn, and anything it sent past the 8 MiB would show
    // before the end of file.
    slow.shutdown(Shutdown::Write).expect("shutdown(SHUT_WR)");
    let (extra, end) = read_pattern_to_end(&mut slow, 0);
    assert_eq!(extra, 0);
    end.expect("end of file after the big reply");
}

// ---------------------------------------------------------------------------------------------
// 3. A reset and a half-close.
// ---------------------------------------------------------------------------------------------

/// Three clients on one echo loop:
/// - `reset` sends far more than it reads until the loop holds output for it (the loop is in
///   the middle of writing to it), then closes with SO_LINGER 0 and unread data: an RST.
/// - `half` sends 256 KiB, shuts down its write side (FIN), and still reads the whole echo
///   back, then end of file: the loop flushes before it closes.
/// - `steady` echoes without pause before, during and after, and must never notice.
///
/// The loop's own record must show two closes: the reset as an error (ECONNRESET or EPIPE,
/// whichever call met it first), the half-close as `PeerClosed`; `steady` stays open.
#[test]
fn a_reset_and_a_half_close_do_not_disturb_another_client() {
    const HALF: usize = 256 * 1024;
    let server = EchoLoop::echo(Config::default());
    let addr = server.addr;

    let rounds = Arc::new(AtomicU64::new(0));
    let stop_steady = Arc::new(AtomicBool::new(false));
    let (steady_addr_tx, steady_addr) = mpsc::channel();
    let steady = {
        let rounds = Arc::clone(&rounds);
        let stop = Arc::clone(&stop_steady);
        thread::spawn(move || {
            let mut s = client(addr);
            let _ = steady_addr_tx.send(s.local_addr().expect("getsockname"));
            // Bounded in count; stopped by the flag long before.
            for i in 0..1_000_000u64 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                echo_round_trip(&mut s, format!("steady {i:07}\n").as_bytes());
                rounds.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let steady_addr: SocketAddr = steady_addr
        .recv_timeout(WAIT)
        .expect("the steady client connects");
    let at_least = |n: u64| {
        let rounds = Arc::clone(&rounds);
        move || rounds.load(Ordering::SeqCst) >= n
    };
    wait_until("20 steady echoes before", at_least(20));

    // The reset: write without reading until the loop holds output for this client (the
    // kernel's buffers on both sides are full by then: a few MiB on loopback).
    let mut reset = client(addr);
    let reset_addr = reset.local_addr().expect("getsockname");
    reset.set_nonblocking(true).expect("O_NONBLOCK");
    let chunk = payload(64 * 1024);
    let mut written = 0usize;
    let mut held = 0;
    let deadline = Instant::now() + WAIT;
    // At most 4,096 chunks (256 MiB), and WAIT.
    for _ in 0..4096 {
        match reset.write(&chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("write to the loop after {written} bytes: {e}"),
        }
        held = server.report().pending_for(reset_addr).unwrap_or(0);
        if held > 0 || Instant::now() >= deadline {
            break;
        }
    }
    assert!(
        held > 0,
        "the loop never held output for the client after {written} bytes"
    );
    let during = rounds.load(Ordering::SeqCst);
    socket2::SockRef::from(&reset)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(reset); // RST: linger 0, and unread echo in the receive queue besides

    // The half-close.
    let mut half = client(addr);
    let half_addr = half.local_addr().expect("getsockname");
    half.write_all(&payload(HALF)).expect("write 256 KiB");
    half.shutdown(Shutdown::Write).expect("shutdown(SHUT_WR)");
    let (echoed, end) = read_pattern_to_end(&mut half, HALF);
    assert_eq!(
        echoed, HALF,
        "the half-closed client got only part of its echo"
    );
    end.expect("end of file after the echo");

    wait_until("the loop to record both closes", || {
        server.report().closes.len() >= 2
    });
    wait_until("20 steady echoes after", at_least(during + 20));
    let report = server.report();
    match report.close_of(reset_addr) {
        Some(CloseReason::Error(e)) => assert!(
            matches!(e.errno(), Errno::ECONNRESET | Errno::EPIPE),
            "the reset should end in ECONNRESET or EPIPE, not {e}"
        ),
        other => panic!(
            "the reset client's close: {other:?}; closes {:?}",
            report.closes
        ),
    }
    assert_eq!(
        report.close_of(half_addr),
        Some(&CloseReason::PeerClosed),
        "closes {:?}",
        report.closes
    );
    assert_eq!(report.closes.len(), 2, "{:?}", report.closes);
    assert_eq!(report.stats.closed, 2, "{:?}", report.stats);
    assert!(
        report.pending_for(steady_addr).is_some(),
        "the steady client is still open: {:?}",
        report.open
    );

    stop_steady.store(true, Ordering::SeqCst);
    if let Err(panic) = steady.join() {
        std::panic::resume_unwind(panic);
    }
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// 4. Non-blocking connect.
// ---------------------------------------------------------------------------------------------

/// Remembers how each connect ended, and any close (there must be none for a failed one).
#[derive(Default)]
struct Dialer {
    outcomes: Vec<(ConnId, sys::Result<()>)>,
    closed: Vec<ConnId>,
}

impl Handler for Dialer {
    type Timer = ();
    type Message = ();

    fn connected(&mut self, ctx: &mut Ctx<()>, id: ConnId, result: sys::Result<()>) {
        if result.is_ok() {
            ctx.close(id);
        }
        self.outcomes.push((id, result));
    }

    fn data(&mut self, _: &mut Ctx<()>, _: ConnId, bytes: &[u8]) -> usize {
        bytes.len()
    }

    fn closed(&mut self, _: &mut Ctx<()>, id: ConnId, _: CloseReason) {
        self.closed.push(id);
    }
}

/// Starts a connect and turns the loop (on this thread) until it has an outcome.
fn dial(ev: &mut EventLoop<Dialer>, addr: SocketAddr, timeout: Duration) -> sys::Result<()> {
    let id = ev
        .ctx()
        .connect(addr, Some(timeout))
        .unwrap_or_else(|e| panic!("connect({addr}) should start and report later: {e}"));
    let deadline = Instant::now() + WAIT;
    for _ in 0..1000 {
        if let Some(i) = ev.handler().outcomes.iter().position(|(c, _)| *c == id) {
            return ev.handler().outcomes.remove(i).1;
        }
        assert!(Instant::now() < deadline, "no outcome for connect({addr})");
        ev.turn(Some(Duration::from_millis(100))).expect("a turn");
    }
    panic!("no outcome for connect({addr}) after 1,000 turns");
}

/// `Ctx::connect` reports a refused connect and a connect into a black hole through
/// `Handler::connected`, as errors that name `connect` and the errno; a connect to a live
/// listener succeeds on the same loop, so the handler is not simply failing everything.
#[test]
fn nonblocking_connect_reports_refused_and_timed_out() {
    let mut ev = EventLoop::new(Dialer::default(), Config::default()).expect("a loop");

    // A closed port. Rather than bind a listener and drop it (another test could be given
    // the freed port by then), a socket stays bound to the port without listening: the
    // kernel answers a SYN to it with RST, and no one else can listen there meanwhile.
    let holder =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    holder.bind(&any_port().into()).expect("bind 127.0.0.1:0");
    let closed = holder
        .local_addr()
        .expect("getsockname")
        .as_socket()
        .expect("an inet address");
    let err = dial(&mut ev, closed, WAIT).expect_err("a connect to a closed port must fail");
    assert_eq!(err.errno(), Errno::ECONNREFUSED, "{err}");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert_eq!(err.syscall(), "connect", "{err}");

    // A black hole: a backlog of 0 holds one finished handshake (the filler's); the next
    // SYN is dropped, so the connect neither succeeds nor fails until the timer gives up.
    let opts = ListenOptions {
        backlog: 0,
        ..ListenOptions::default()
    };
    let (_hole, hole) = blocking::listen_tcp(any_port(), opts).expect("listen, backlog 0");
    let _filler = blocking::connect_tcp(hole).expect("the filler connects");
    let err = dial(&mut ev, hole, Duration::from_millis(200))
        .expect_err("a connect into a full listener must time out");
    assert_eq!(err.errno(), Errno::ETIMEDOUT, "{err}");
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(err.syscall(), "connect", "{err}");

    // Failed connects leave nothing behind: no connection, no timer, no `closed` call.
    assert_eq!(ev.ctx().connections(), 0);
    assert_eq!(ev.ctx().timer_count(), 0);
    assert!(ev.handler().closed.is_empty(), "{:?}", ev.handler().closed);

    let open = TcpListener::bind(any_port()).expect("bind a live listener");
    let open_addr = open.local_addr().expect("getsockname");
    dial(&mut ev, open_addr, WAIT).expect("a connect to a live listener succeeds");
}

// ---------------------------------------------------------------------------------------------
// 5. SIGTERM.
// ---------------------------------------------------------------------------------------------

/// `11_mio_loop serve` on SIGTERM stops gracefully: the connected client, whose echo it
/// already has, sees end of file; the process prints `stopped:` with the byte count it echoed
/// and exits 0.
#[test]
fn sigterm_stops_the_mio_loop_server_with_exit_code_0() {
    let mut server = Served::start(MIO_LOOP);
    let mut c = client(server.addr);
    echo_round_trip(&mut c, b"hello before SIGTERM\n");

    server.terminate();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)
        .expect("end of file once the server stops");
    assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    let out = server.rest_of_stdout();
    assert!(
        out.iter().any(|l| l == "stopped: echoed 21 bytes"),
        "stdout after `listening on`: {out:#?}"
    );
}

/// A client sends without reading until the loop itself holds part of the echo: the
/// server has read every byte sent (its receive queue and our send queue are empty, as
/// `/proc/net/tcp` shows), but the kernel does not hold all of the echo (our receive queue
/// plus its send queue are less than what was sent), so the rest waits in the loop's
/// outbound buffer. Then SIGTERM: a graceful stop must deliver every byte, then end of file,
/// and exit 0.
///
/// How much the kernel holds depends on its buffer tuning (on a test machine, 2 MiB sent
/// without reading fitted in the kernel entirely, and the loop's buffer was empty), so the
/// client sends 256 KiB steps until the loop holds some: never as much as its 1 MiB cap, so
/// no input is left unread, which a stop would not echo (it stops reading; see
/// `a_graceful_stop_delivers_every_echoed_byte_though_input_is_unread` for that case).
#[test]
fn sigterm_flushes_an_echo_still_queued() {
    const STEP: usize = 256 * 1024;
    let mut server = Served::start(MIO_LOOP);
    let mut c = client(server.addr);
    let me = c.local_addr().expect("getsockname");
    let mut sent = 0usize;
    let mut in_loop = 0usize;
    // At most 256 steps (64 MiB); each waits at most WAIT.
    for _ in 0..256 {
        c.write_all(&pattern_from(sent, STEP))
            .expect("write a step");
        sent += STEP;
        let mut held_by_kernel = 0;
        wait_until("the server to read everything sent", || {
            match queues(me, server.addr) {
                Some((our_rx, 0, 0, their_tx)) => {
                    held_by_kernel = our_rx as usize + their_tx as usize;
                    true
                }
                _ => false,
            }
        });
        in_loop = sent.saturating_sub(held_by_kernel);
        if in_loop > 0 {
            break;
        }
    }
    assert!(
        in_loop > 0,
        "the loop never held any echo after {sent} bytes"
    );

    server.terminate();
    let (got, end) = read_pattern_to_end(&mut c, sent);
    assert_eq!(
        got, sent,
        "the echo queued at SIGTERM ({in_loop} bytes of it in the loop) was cut short \
         ({end:?})"
    );
    end.expect("end of file after the whole echo");
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    let out = server.rest_of_stdout();
    let want = format!("stopped: echoed {sent} bytes");
    assert!(out.contains(&want), "stdout after `listening on`: {out:#?}");
}

/// A graceful stop while a client has sent more than the loop will read: the loop is paused
/// (its outbound buffer for the client is full, and it keeps a read chunk of input), the
/// kernel holds more input unread. A stop does not read any more, so that input is never
/// echoed; but everything the loop did echo must reach the client, then end of file.
///
/// `SIGTERM` does nothing more than `ctx.stop()` does here: the signal's self-pipe only sets
/// the same flag, so this runs in-process, where the test can see that the loop is paused.
#[test]
fn a_graceful_stop_delivers_every_echoed_byte_though_input_is_unread() {
    let server = EchoLoop::echo(Config::default());
    let mut c = client(server.addr);
    let me = c.local_addr().expect("getsockname");
    c.set_nonblocking(true).expect("O_NONBLOCK");
    let mut sent = 0usize;
    let mut paused = None;
    let deadline = Instant::now() + WAIT;
    // At most 4,096 tries of 64 KiB (256 MiB), and WAIT.
    for _ in 0..4096 {
        match c.write(&pattern_from(sent, 64 * 1024)) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let r = server.report();
                // Paused: output waits for us and a read chunk of input (64 KiB) is kept.
                if r.pending_for(me).unwrap_or(0) > 0 && r.stats.bytes_in - r.echoed >= 64 * 1024 {
                    paused = Some(r);
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("write after {sent} bytes: {e}"),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let paused = paused.expect("the loop never paused reading from a client that does not read");
    c.set_nonblocking(false).expect("blocking again");

    server.begin_stop();
    let (got, end) = read_pattern_to_end(&mut c, sent);
    let stats = server.stop();
    // The kernel may have taken more output after the snapshot, letting the loop read and
    // echo a little more before the stop: the final count of bytes written is what counts.
    assert!(stats.bytes_out >= paused.echoed, "{stats:?}");
    assert!(
        (stats.bytes_out as usize) < sent,
        "the loop echoed everything ({sent} bytes): nothing was left unread"
    );
    assert_eq!(
        got as u64, stats.bytes_out,
        "the loop wrote {} bytes of echo (of {sent} sent) but the client got {got}, then {end:?}",
        stats.bytes_out
    );
    end.expect("end of file after the echo, not a reset");
}

// ---------------------------------------------------------------------------------------------
// 6. The connection cap.
// ---------------------------------------------------------------------------------------------

/// With `max_connections: 10`, the 11th concurrent client is accepted and closed at once
/// (it reads end of file, or a reset), counted in `refused`; the first 10 keep working, and
/// once one of them leaves a new client fits again: the cap counts live connections.
#[test]
fn the_connection_cap_refuses_the_eleventh_client() {
    let server = EchoLoop::echo(Config {
        max_connections: 10,
        ..Config::default()
    });
    let mut ten: Vec<TcpStream> = (0..10).map(|_| client(server.addr)).collect();
    // One round trip each: all ten are accepted and registered before the eleventh comes.
    for (i, s) in ten.iter_mut().enumerate() {
        echo_round_trip(s, format!("first {i}\n").as_bytes());
    }

    let mut eleventh = client(server.addr);
    // The write may or may not reach the socket before the loop closes it; either way no echo.
    let _ = eleventh.write_all(b"let me in\n");
    let mut buf = [0u8; 64];
    match eleventh.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "the eleventh client got {:?} instead of being closed",
            buf[..n].escape_ascii().to_string()
        ),
        Err(e) => panic!("the eleventh client: {e} (expected end of file or a reset)"),
    }

    for (i, s) in ten.iter_mut().enumerate() {
        echo_round_trip(s, format!("still here {i}\n").as_bytes());
    }
    let report = server.report();
    assert_eq!(report.stats.refused, 1, "{:?}", report.stats);
    assert_eq!(report.stats.accepted, 11, "{:?}", report.stats);
    assert_eq!(report.open.len(), 10);

    // One leaves; the loop sees its FIN, and then there is room for one more.
    drop(ten.pop());
    wait_until("the loop to close the client that left", || {
        server.report().open.len() == 9
    });
    let mut newcomer = client(server.addr);
    echo_round_trip(&mut newcomer, b"room for me now\n");
    let report = server.report();
    assert_eq!(report.stats.refused, 1, "{:?}", report.stats);
    assert_eq!(report.open.len(), 10);
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// 7. The outbound cap.
// ---------------------------------------------------------------------------------------------

/// What the flooding handler tells the test.
#[derive(Debug)]
enum Flooded {
    /// `send` refused a chunk: the error, the bytes it had accepted before, and what was
    /// still queued in the loop then.
    Refused {
        err: SendError,
        accepted: usize,
        pending: usize,
    },
    /// No refusal within the tick budget.
    GaveUp {
        accepted: usize,
    },
    Closed(CloseReason),
}

/// Sends 16 KiB of [`pattern`] to its one client every millisecond until `send` refuses,
/// then closes the connection (after the flush) and stops the loop once it is closed.
struct Flood {
    chunk: Vec<u8>,
    accepted: usize,
    ticks: u32,
    tell: Sender<Flooded>,
}

const FLOOD_CHUNK: usize = 16 * 1024;
/// 10,000 ticks of 16 KiB is 160 MiB, far past what any kernel buffers for a peer.
const FLOOD_TICKS: u32 = 10_000;

impl Handler for Flood {
    type Timer = ConnId;
    type Message = ();

    fn accepted(&mut self, ctx: &mut Ctx<ConnId>, id: ConnId, _: SocketAddr) {
        ctx.set_timer(Duration::from_millis(1), id);
    }

    fn data(&mut self, _: &mut Ctx<ConnId>, _: ConnId, bytes: &[u8]) -> usize {
        bytes.len()
    }

    fn timer(&mut self, ctx: &mut Ctx<ConnId>, _: TimerId, id: ConnId) {
        self.ticks += 1;
        let start = self.accepted % 251;
        match ctx.send(id, &self.chunk[start..start + FLOOD_CHUNK]) {
            Ok(()) => {
                self.accepted += FLOOD_CHUNK;
                if self.ticks < FLOOD_TICKS {
                    ctx.set_timer(Duration::from_millis(1), id);
                } else {
                    let _ = self.tell.send(Flooded::GaveUp {
                        accepted: self.accepted,
                    });
                    ctx.close(id);
                }
            }
            Err(err) => {
                let _ = self.tell.send(Flooded::Refused {
                    err,
                    accepted: self.accepted,
                    pending: ctx.pending(id),
                });
                ctx.close(id);
            }
        }
    }

    fn closed(&mut self, ctx: &mut Ctx<ConnId>, _: ConnId, reason: CloseReason) {
        let _ = self.tell.send(Flooded::Closed(reason));
        ctx.stop();
    }
}

/// With `max_outbound: 64 KiB`, a handler that keeps sending to a client that does not read
/// gets `SendError::Full` once the kernel's buffers and then the loop's 64 KiB are full. The
/// loop never held more than its cap, and nothing it accepted is lost: the client then reads
/// exactly the accepted bytes, in order, and end of file.
#[test]
fn the_outbound_cap_refuses_sends_past_it() {
    const CAP: usize = 64 * 1024;
    let (tell, told) = mpsc::channel();
    let flood = Flood {
        chunk: payload(FLOOD_CHUNK + 251),
        accepted: 0,
        ticks: 0,
        tell,
    };
    let server = LoopThread::start(
        flood,
        Config {
            max_outbound: CAP,
            ..Config::default()
        },
    );
    let mut c = client(server.addr);

    let (accepted, pending) = match told.recv_timeout(WAIT) {
        Ok(Flooded::Refused {
            err,
            accepted,
            pending,
        }) => {
            assert_eq!(err, SendError::Full { pending, cap: CAP });
            (accepted, pending)
        }
        Ok(Flooded::GaveUp { accepted }) => {
            panic!("send never refused: {accepted} bytes accepted for a client that reads nothing")
        }
        other => panic!("expected SendError::Full, got {other:?}"),
    };
    assert!(
        pending <= CAP,
        "the loop held {pending} bytes, past its cap"
    );
    assert!(
        pending + FLOOD_CHUNK > CAP,
        "refused with room left: {pending} bytes pending"
    );
    assert!(
        accepted > CAP,
        "the kernel took nothing before the cap was reached ({accepted} bytes accepted)"
    );

    let (got, end) = read_pattern_to_end(&mut c, accepted);
    end.expect("end of file after the flush");
    assert_eq!(got, accepted, "bytes the loop accepted were lost");
    match told.recv_timeout(WAIT) {
        Ok(Flooded::Closed(CloseReason::Local)) => {}
        other => panic!("expected a local close, got {other:?}"),
    }
    let stats = server.stop();
    assert_eq!(stats.sends_refused, 1, "{stats:?}");
    assert_eq!(stats.bytes_out, accepted as u64, "{stats:?}");
}

/// Counts the bytes the loop hands it.
#[derive(Default)]
struct Sink {
    got: usize,
}

impl Handler for Sink {
    type Timer = ();
    type Message = ();

    fn data(&mut self, _: &mut Ctx<()>, _: ConnId, bytes: &[u8]) -> usize {
        self.got += bytes.len();
        bytes.len()
    }
}

/// The fairness cap holds per turn: a peer with far more waiting than one turn may read gets
/// `reads_per_event` reads of `read_chunk` in a turn, never more (what a broadcast server
/// queues for every recipient before the turn's flush is bounded by it), and the rest in the
/// turns after, without a new readiness event and without sleeping in between.
#[test]
fn one_turn_reads_at_most_reads_per_event_chunks_from_a_connection() {
    const CHUNK: usize = 4096;
    const READS: usize = 2;
    const TOTAL: usize = 1 << 20;
    let config = Config {
        read_chunk: CHUNK,
        reads_per_event: READS,
        ..Config::default()
    };
    let mut ev = EventLoop::new(Sink::default(), config).expect("the loop starts");
    let addr = ev.ctx().listen(any_port()).expect("listen");
    let mut c = client(addr);
    let writer = thread::spawn(move || {
        c.write_all(&payload(TOTAL))
            .expect("the loop reads all of it");
        c
    });
    let deadline = Instant::now() + WAIT;
    let (mut turns, mut most) = (0, 0);
    while ev.handler().got < TOTAL {
        assert!(
            Instant::now() < deadline,
            "only {} of {TOTAL} bytes read in {turns} turns",
            ev.handler().got
        );
        let before = ev.handler().got;
        ev.turn(Some(Duration::from_millis(100))).expect("turn");
        most = most.max(ev.handler().got - before);
        turns += 1;
    }
    assert!(
        most <= READS * CHUNK,
        "one turn read {most} bytes from one connection, past {READS} reads of {CHUNK}"
    );
    assert!(
        turns >= TOTAL / (READS * CHUNK),
        "{TOTAL} bytes in {turns} turns"
    );
    drop(writer.join().expect("the writer thread"));
}

// ---------------------------------------------------------------------------------------------
// 8. Timers and the waker.
// ---------------------------------------------------------------------------------------------

enum ClockMsg {
    /// Set the timers.
    Arm,
    Stop,
}

/// Sets timers when told, and tells which fired.
struct Clock {
    fired: Sender<&'static str>,
    cancelled: Vec<Option<&'static str>>,
    timers_left: Option<usize>,
}

impl Handler for Clock {
    type Timer = &'static str;
    type Message = ClockMsg;

    fn data(&mut self, _: &mut Ctx<&'static str>, _: ConnId, bytes: &[u8]) -> usize {
        bytes.len()
    }

    fn timer(&mut self, ctx: &mut Ctx<&'static str>, _: TimerId, value: &'static str) {
        let _ = self.fired.send(value);
        if value == "30 ms" {
            self.timers_left = Some(ctx.timer_count());
        }
    }

    fn message(&mut self, ctx: &mut Ctx<&'static str>, msg: ClockMsg) {
        match msg {
            ClockMsg::Arm => {
                ctx.set_timer(Duration::from_millis(10), "10 ms");
                ctx.set_timer(Duration::from_millis(30), "30 ms");
                ctx.set_timer(Duration::from_millis(20), "20 ms");
                // Due before two of the others: had it not been cancelled it would fire.
                let doomed = ctx.set_timer(Duration::from_millis(15), "cancelled at 15 ms");
                self.cancelled.push(ctx.cancel_timer(doomed));
                self.cancelled.push(ctx.cancel_timer(doomed));
            }
            ClockMsg::Stop => ctx.stop(),
        }
    }
}

/// Timers set at 10, 30 and 20 ms fire in deadline order; one cancelled (due at 15 ms) never
/// fires, and cancelling it twice gives its value once. The loop sleeps in `run()` with no
/// timeout of its own, so only the waker can bring it the messages from this thread: `Arm`,
/// then `Stop`, which calls `ctx.stop()` and makes `run()` return.
#[test]
fn timers_fire_in_order_and_a_message_stops_run() {
    let (fired_tx, fired) = mpsc::channel();
    let (ready_tx, ready) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let looper = thread::spawn(move || {
        let clock = Clock {
            fired: fired_tx,
            cancelled: Vec::new(),
            timers_left: None,
        };
        let mut ev = EventLoop::new(clock, Config::default()).expect("a loop");
        let _ = ready_tx.send(ev.handle());
        let result = ev.run().map_err(|e| e.to_string());
        let h = ev.handler();
        let _ = done_tx.send((
            result,
            std::mem::take(&mut h.cancelled),
            h.timers_left,
            ev.is_stopped(),
        ));
    });
    let handle = ready.recv_timeout(WAIT).expect("the loop starts");

    assert!(handle.send(ClockMsg::Arm).is_ok(), "the loop is running");
    let order: Vec<&str> = (0..3)
        .map(|i| {
            fired
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("only {i} of 3 timers fired"))
        })
        .collect();
    assert_eq!(order, ["10 ms", "20 ms", "30 ms"]);

    assert!(handle.send(ClockMsg::Stop).is_ok(), "the loop is running");
    let (result, cancelled, timers_left, stopped) = done
        .recv_timeout(WAIT)
        .expect("run() returns after ctx.stop()");
    looper.join().expect("the loop thread");
    result.expect("run() ends without error");
    assert!(stopped);
    assert_eq!(cancelled, [Some("cancelled at 15 ms"), None]);
    assert_eq!(
        timers_left,
        Some(0),
        "no timer left after the last one fired"
    );
    let late: Vec<&str> = fired.try_iter().collect();
    assert!(late.is_empty(), "fired after the three: {late:?}");
    assert!(
        handle.send(ClockMsg::Stop).is_err(),
        "a handle fails once its loop is gone"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. No allocation per event.
// ---------------------------------------------------------------------------------------------

/// [`Echo`], publishing the loop thread's allocation count each time data arrives.
struct AllocProbe {
    echo: Echo,
    loop_allocations: Arc<AtomicU64>,
}

impl Handler for AllocProbe {
    type Timer = ();
    type Message = ();

    fn data(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        let used = self.echo.data(ctx, id, bytes);
        self.loop_allocations
            .store(allocations_on_this_thread(), Ordering::SeqCst);
        used
    }
}

/// After a warm-up (buffers grown, the connection set up), an echo round trip costs the
/// loop thread no allocation: epoll_wait, the reads (the last one EAGAIN), `Handler::data`,
/// the send and the flush all reuse what exists. The count is read from the loop thread's
/// own counter, published in `Handler::data`: from round trip 200's to round trip 2,200's it
/// covers 2,000 whole turns.
#[test]
fn steady_state_echo_does_not_allocate_on_the_loop_thread() {
    const WARM_UP: usize = 200;
    const MEASURED: usize = 2_000;
    let loop_allocations = Arc::new(AtomicU64::new(0));
    let probe = AllocProbe {
        echo: Echo::default(),
        loop_allocations: Arc::clone(&loop_allocations),
    };
    let server = LoopThread::start(probe, Config::default());
    let mut c = client(server.addr);

    // Messages of one length, built in one buffer: the test thread's own allocations do not
    // matter (they are counted on its thread), but this keeps the traffic uniform.
    let mut msg = *b"round trip 0000000\n";
    let mut round_trip = |i: usize| {
        let digits = format!("{i:07}");
        msg[11..18].copy_from_slice(digits.as_bytes());
        echo_round_trip(&mut c, &msg);
    };
    for i in 0..WARM_UP {
        round_trip(i);
    }
    // The loop stored its count in `data` before it sent the echo we just read.
    let before = loop_allocations.load(Ordering::SeqCst);
    for i in WARM_UP..WARM_UP + MEASURED {
        round_trip(i);
    }
    let after = loop_allocations.load(Ordering::SeqCst);
    assert!(
        before > 0,
        "the probe never reported (the loop allocates at start-up)"
    );
    assert_eq!(
        after - before,
        0,
        "the loop thread allocated {} times over {MEASURED} echo round trips",
        after - before
    );
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// Extra: input left over at the outbound cap.
// ---------------------------------------------------------------------------------------------

/// [`Echo`] takes only what fits under the outbound cap; the rest of a read stays in the
/// connection's input, to be offered again. Here the client sends, without reading, messages
/// a little larger than the room the loop has left (`CAP - pending + TAIL` bytes), until the
/// loop keeps a tail of one (less than a read chunk, so reading is not paused: nothing else
/// brings it back). Then the client goes quiet and reads everything back. No new bytes will
/// come to offer the tail to the handler again: the loop must do it when the output drains,
/// or the end of the echo never arrives.
#[test]
fn input_left_over_at_the_outbound_cap_is_echoed_once_output_drains() {
    const CAP: usize = 64 * 1024;
    const TAIL: usize = 4000;
    let server = EchoLoop::echo(Config {
        max_outbound: CAP,
        ..Config::default()
    });
    let mut c = client(server.addr);
    let me = c.local_addr().expect("getsockname");
    let mut sent = 0usize;
    // Waits for the loop to have read all we sent; returns what it holds for us and how
    // much input it kept unconsumed.
    let settle = |sent: usize| -> (usize, u64) {
        let mut last = None;
        wait_until("the loop to read everything sent", || {
            let r = server.report();
            let done = r.stats.bytes_in == sent as u64;
            last = Some(r);
            done
        });
        // `wait_until` returned, so the closure ran and stored a report.
        let r = last.expect("a report");
        (r.pending_for(me).unwrap_or(0), r.stats.bytes_in - r.echoed)
    };

    // The loop may take a message in one read or several, and the kernel may take its output
    // in between, so it takes a few tries (usually one, at most as many as fill the kernel's
    // buffers: some MiB). The loop keeps at most TAIL bytes of each.
    let (mut pending, mut kept) = (0, 0);
    for _ in 0..1000 {
        let len = CAP - pending + TAIL;
        c.write_all(&pattern_from(sent, len))
            .expect("write a message a little larger than the room left");
        sent += len;
        (pending, kept) = settle(sent);
        if kept > 0 {
            break;
        }
    }
    assert!(kept > 0, "the loop never kept input");
    assert!(kept as usize <= TAIL, "kept {kept} bytes, more than {TAIL}");

    // Quiet now: read everything back.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    for _ in 0..sent {
        if got == sent {
            break;
        }
        match c.read(&mut buf) {
            Ok(0) => panic!("end of file after {got} of {sent} bytes"),
            Ok(n) => {
                assert!(got + n <= sent, "more than {sent} bytes came back");
                check_pattern(&buf[..n], got);
                got += n;
            }
            Err(e) => {
                let r = server.report();
                panic!(
                    "the echo stopped after {got} of {sent} bytes ({e}); the loop still \
                     keeps {} bytes of input and holds {:?} bytes of output for us",
                    r.stats.bytes_in - r.echoed,
                    r.pending_for(me)
                );
            }
        }
    }
    assert_eq!(got, sent);
    server.stop();
}
