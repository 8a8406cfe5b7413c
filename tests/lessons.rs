//! The lesson binaries, run as a learner runs them: real processes, real sockets on
//! 127.0.0.1, servers on port 0.
//!
//! - `demo_NN_*`: each lesson's demonstration (no arguments, stdin from /dev/null) exits 0,
//!   narrates on stdout, keeps stderr empty unless `--trace` is given, and states the fact the
//!   lesson is about.
//! - `help_*`: every binary documents `--trace`, and every `serve`/`client` its default address.
//! - `pair_NN_*`: a `serve` process and a `client` process talking to each other.
//! - `echo_server_*`, `framing_server_*`: a server driven by a raw std `TcpStream`, so the test
//!   chooses exactly which bytes go on the wire and how they are split.
//! - `error_*`: the failures a learner meets, each with its one-line message and exit code,
//!   never a panic.
//!
//! Nothing here waits without a limit: every process is killed by its guard when a test ends
//! (also when an assertion fails), every wait has a deadline of [`WAIT`], and every socket has
//! read and write timeouts. No assertion is about speed.

mod common;
use common::{collect, pseudo_random, spawn_listening, wait_exit, Reaper, WAIT};

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::Instant;

use socklab::sys::spawn_with_std_fds_only;
use socklab::wire::frame::DEFAULT_MAX_PAYLOAD;

const SOCKET: &str = env!("CARGO_BIN_EXE_00_socket");
const LISTEN: &str = env!("CARGO_BIN_EXE_01_listen");
const ACCEPT: &str = env!("CARGO_BIN_EXE_02_accept");
const CONNECT: &str = env!("CARGO_BIN_EXE_03_connect");
const ECHO: &str = env!("CARGO_BIN_EXE_04_echo");
const HALF_CLOSE: &str = env!("CARGO_BIN_EXE_05_half_close");
const REUSEADDR: &str = env!("CARGO_BIN_EXE_06_reuseaddr");
const RESET_PIPE: &str = env!("CARGO_BIN_EXE_07_reset_pipe");
const FRAMING: &str = env!("CARGO_BIN_EXE_08_framing");

/// Every lesson binary with the port of its default address (`None`: no `serve`/`client`).
const LESSONS: [(&str, Option<u16>); 9] = [
    (SOCKET, None),
    (LISTEN, Some(7001)),
    (ACCEPT, Some(7002)),
    (CONNECT, Some(7003)),
    (ECHO, Some(7004)),
    (HALF_CLOSE, Some(7005)),
    (REUSEADDR, Some(7006)),
    (RESET_PIPE, Some(7007)),
    (FRAMING, Some(7008)),
];

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// A lesson binary with the arguments given. The tests turn the self-trace on with `--trace`
/// only, so `SOCKLAB_TRACE` from the caller's environment must not leak in; nor may a
/// descriptor the caller leaked, which would shift the numbers the lessons print.
fn command(bin: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    spawn_with_std_fds_only(&mut cmd)
        .args(args)
        .env_remove("SOCKLAB_TRACE");
    cmd
}

/// What a finished process left behind.
struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Finished {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Exit code; `None` means a signal killed the process, which no lesson should allow.
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn describe(&self) -> String {
        format!(
            "status {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status,
            self.stdout_text(),
            self.stderr
        )
    }
}

/// Runs `bin args` to completion within [`WAIT`]: stdin is `input` (then closed) or
/// /dev/null when `input` is `None`.
fn run(bin: &str, args: &[&str], input: Option<Vec<u8>>) -> Finished {
    let what = format!("{bin} {}", args.join(" "));
    let mut cmd = command(bin, args);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = Reaper(cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}")));
    let stdout = collect(child.0.stdout.take().expect("stdout was piped above"));
    let stderr = collect(child.0.stderr.take().expect("stderr was piped above"));
    if let Some(input) = input {
        let mut stdin = child.0.stdin.take().expect("stdin was piped above");
        // On a thread: the child may echo while we write, and a pipe holds only 64 KiB.
        // Dropping `stdin` at the end is the end of file the client waits for. A write error
        // means the child stopped reading early, which its output will show.
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let status = wait_exit(&mut child.0, &what, WAIT);
    let stdout = stdout
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what}: stdout not closed"));
    let stderr = stderr
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what}: stderr not closed"));
    Finished {
        status,
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

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

/// A port with a socket bound to it that does not listen: a connect there is refused, and
/// (unlike a port we bound and released) no other test can take it while we hold it.
fn bound_not_listening() -> (socket2::Socket, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any_port: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    socket.bind(&any_port.into()).expect("bind port 0");
    let addr = socket
        .local_addr()
        .expect("getsockname")
        .as_socket()
        .expect("an IPv4 address");
    (socket, addr)
}

fn assert_no_panic(out: &Finished, what: &str) {
    assert!(
        !out.stderr.contains("panicked"),
        "{what} panicked:\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// 1. The demonstrations
// ---------------------------------------------------------------------------------------------

/// A demonstration run twice: as is, and with `--trace`.
struct Demo {
    plain: String,
    traced: Finished,
}

/// Runs a lesson's demonstration with stdin from /dev/null (lesson 01 would otherwise wait
/// for Enter) and checks what every demonstration promises: exit 0, narration on stdout,
/// a clean stderr, and with `--trace` strace-style lines on stderr.
fn demo(bin: &str) -> Demo {
    let plain = run(bin, &[], None);
    assert_eq!(plain.code(), Some(0), "{bin}:\n{}", plain.describe());
    assert!(!plain.stdout.is_empty(), "{bin} printed nothing");
    assert_eq!(
        plain.stderr, "",
        "{bin} without --trace must keep stderr empty"
    );

    let traced = run(bin, &["--trace"], None);
    assert_eq!(
        traced.code(),
        Some(0),
        "{bin} --trace:\n{}",
        traced.describe()
    );
    assert!(!traced.stdout.is_empty(), "{bin} --trace printed nothing");
    assert!(
        traced
            .stderr
            .lines()
            .any(|l| l.starts_with("socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = ")),
        "{bin} --trace shows no socket() call:\n{}",
        traced.stderr
    );
    // Every stderr line is one call in strace's shape: `name(args) = result`, where the
    // result is a number, followed by the errno name when it is -1.
    for line in traced.stderr.lines() {
        let name = line.split('(').next().unwrap_or_default();
        let result = line.rsplit_once(" = ").map(|(_, r)| r.trim());
        let number = result.and_then(|r| r.split(' ').next()?.parse::<i64>().ok());
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && number.is_some(),
            "{bin} --trace: not a syscall line: {line:?}"
        );
        if number == Some(-1) {
            let errno = result.and_then(|r| r.split(' ').nth(1)).unwrap_or_default();
            assert!(
                errno.starts_with('E'),
                "{bin} --trace: -1 without errno: {line:?}"
            );
        }
    }
    Demo {
        plain: plain.stdout_text(),
        traced,
    }
}

/// The text after `prefix` on the first line that starts with it.
fn after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
}

fn has_line(text: &str, want: &str) -> bool {
    text.lines().any(|l| l == want)
}

/// Lesson 00 teaches that the kernel hands out the lowest free descriptor: the third socket
/// must get the number the first one gave back. The traced run must agree with the
/// narration about which number socket() returned.
#[test]
fn demo_00_socket_reuses_the_lowest_free_descriptor() {
    let d = demo(SOCKET);
    let out = &d.plain;
    assert!(
        out.starts_with("before main, Rust's runtime set SIGPIPE to SIG_IGN"),
        "{out}"
    );
    let first: i32 = after(out, "socket() returned ")
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no descriptor number in:\n{out}"));
    assert!(first > 2, "0, 1 and 2 are taken by stdio; got {first}");
    assert!(
        after(out, &format!("/proc/self/fd/{first} -> ")).starts_with("socket:["),
        "{out}"
    );
    assert!(
        has_line(out, &format!("closed {first}; its number is free again")),
        "{out}"
    );
    assert!(
        has_line(
            out,
            &format!(
                "a third socket() returned {first}: the kernel hands out the lowest free number"
            )
        ),
        "{out}"
    );

    let traced_out = d.traced.stdout_text();
    let traced_first = after(&traced_out, "socket() returned ")
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let traced_socket = d
        .traced
        .stderr
        .lines()
        .find(|l| l.starts_with("socket("))
        .and_then(|l| l.rsplit_once(" = "))
        .map(|(_, r)| r.trim().to_string());
    assert_eq!(traced_socket, Some(traced_first), "{}", d.traced.describe());
}

/// Lesson 01: port 0 becomes a real port, and the connections nobody accepted wait in the
/// listener's queue: Recv-Q of the LISTEN row goes from 0 to 2.
///
/// The ESTAB row count is not checked: it comes from /proc/net/tcp, which other tests'
/// connections change while it is read (see `demo_06_reuseaddr_needs_both_listeners`).
/// The LISTEN row is this listener's alone, so its queue length is exact.
#[test]
fn demo_01_listen_queues_unaccepted_connections() {
    let out = demo(LISTEN).plain;
    let picked: SocketAddr = after(
        out.as_str(),
        "bound to port 0; getsockname() says the kernel picked ",
    )
    .parse()
    .expect("an address");
    assert_ne!(picked.port(), 0);
    assert!(has_line(&out, &format!("listening on {picked}")), "{out}");
    let (before, after_connects) = out
        .split_once("two clients connected, and nobody called accept():")
        .unwrap_or_else(|| panic!("no line about the two clients:\n{out}"));
    assert!(
        has_line(before, &format!("  LISTEN {picked} Recv-Q=0")),
        "{out}"
    );
    assert!(
        has_line(after_connects, &format!("  LISTEN {picked} Recv-Q=2")),
        "{out}"
    );
}

/// Lesson 02: the greeting arrives whole and is followed by end of file.
#[test]
fn demo_02_accept_greets_and_closes() {
    let out = demo(ACCEPT).plain;
    assert!(
        has_line(
            &out,
            r#"the client read "hello from socklab lesson 02\n", then read() returned 0: end of file"#
        ),
        "{out}"
    );
}

/// Lesson 03: a connect to a bound but not listening port is refused with the documented
/// message, and the reads, however they split the stream, add up to the three lines.
#[test]
fn demo_03_connect_is_refused_then_reads_to_end_of_file() {
    let out = demo(CONNECT).plain;
    let refused = after(&out, "nobody listens on ");
    let (addr, message) = refused.split_once(": ").expect("ADDR: message");
    assert!(addr.parse::<SocketAddr>().is_ok(), "{refused}");
    assert_eq!(
        message,
        format!(
            "connect({addr}): ECONNREFUSED: nobody is listening on that address (see lesson 03)"
        )
    );

    let mut joined = String::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("read() returned ") {
            if let Some((_, quoted)) = rest.split_once(" bytes: ") {
                joined.push_str(quoted.trim_matches('"'));
            }
        }
    }
    assert_eq!(joined, r"line one\nline two\nline three\n", "{out}");
    assert!(
        has_line(&out, "read() returned 0: the server closed, end of file"),
        "{out}"
    );
}

/// Lesson 04: the 10 KiB echoed in pieces come back identical.
#[test]
fn demo_04_echo_returns_the_same_bytes() {
    let out = demo(ECHO).plain;
    assert!(
        has_line(&out, "the client read 10240 bytes back, same as sent: true"),
        "{out}"
    );
}

/// Lesson 05: after shutdown(SHUT_WR) the client still reads the reply, which counts the
/// 16 bytes of "what time is it?".
#[test]
fn demo_05_half_close_still_reads_the_reply() {
    let out = demo(HALF_CLOSE).plain;
    assert!(
        has_line(
            &out,
            r#"the server read "what time is it?" up to end of file, replied, closed"#
        ),
        "{out}"
    );
    let reply = after(
        &out,
        "after its half-close the client still read: got 16 bytes from ",
    );
    let peer = reply
        .strip_suffix(r"\n")
        .expect("the reply ends with a newline");
    assert!(peer.parse::<SocketAddr>().is_ok(), "{out}");
}

/// Lesson 06: the server that closed first leaves a TIME_WAIT connection on its port, and it
/// blocks a restart unless both listeners set SO_REUSEADDR.
///
/// The table comes from /proc/net/tcp, which shows every process's sockets and is read in
/// several read() calls, not atomically: while other tests open and close connections it can
/// hold unrelated rows for the same port number, or a row twice. So the test looks for the
/// server's own TIME-WAIT row in each round and does not count rows.
#[test]
fn demo_06_reuseaddr_needs_both_listeners() {
    let out = demo(REUSEADDR).plain;
    let rounds: Vec<&str> = out.split("round ").skip(1).collect();
    assert_eq!(rounds.len(), 3, "three rounds:\n{out}");
    for (round, refused) in rounds.iter().zip([true, true, false]) {
        let addr = after(round, "restarting the server on ")
            .strip_suffix(" ...")
            .unwrap_or_else(|| panic!("no address in round {round}"));
        assert!(
            round
                .lines()
                .any(|l| l.starts_with(&format!("  TIME-WAIT {addr} -> 127.0.0.1:"))),
            "the server's end of the connection is in TIME_WAIT:\nround {round}"
        );
        let outcome = if refused {
            format!("  bind({addr}): EADDRINUSE: another socket holds this address (see lesson 06)")
        } else {
            "  restarted".to_string()
        };
        assert!(
            round.ends_with(&format!(" ...\n{outcome}\n")),
            "expected {outcome:?} at the end of round {round}"
        );
    }
}

/// Lesson 07: a reset peer gives ECONNRESET; writing after the peer closed gives EPIPE and
/// one SIGPIPE, and send(MSG_NOSIGNAL) gives EPIPE without a second one. These EPIPE lines
/// are the broken-pipe error path, with its message.
#[test]
fn demo_07_reset_and_broken_pipe() {
    let out = demo(RESET_PIPE).plain;
    let read = after(&out, "   the client's read: ");
    assert!(
        read.starts_with("read(fd ")
            && read.contains("): ECONNRESET: the peer reset the connection")
            && read.ends_with("(see lesson 07)"),
        "{out}"
    );
    let epipe =
        ": EPIPE: the peer has closed this connection; writing to it is an error (see lesson 07)";
    let write = after(&out, "   the second write(): ");
    assert!(
        write.starts_with("write(fd ") && write.ends_with(epipe),
        "{out}"
    );
    let send = after(&out, "   send(MSG_NOSIGNAL): ");
    assert!(
        send.starts_with("sendto(fd ") && send.ends_with(epipe),
        "{out}"
    );
    assert!(has_line(&out, "   SIGPIPE signals so far: 1"), "{out}");
    assert!(
        has_line(
            &out,
            "   SIGPIPE signals so far: 1 (MSG_NOSIGNAL sent none)"
        ),
        "{out}"
    );
}

/// Lesson 08: frames survive one byte per write, several per read, and an oversized header
/// is refused from the header alone.
#[test]
fn demo_08_framing_rebuilds_and_refuses_frames() {
    let out = demo(FRAMING).plain;
    assert!(has_line(&out, r#"   frame complete: "hi""#), "{out}");
    assert!(
        has_line(&out, r#"   frame complete: "one byte at a time""#),
        "{out}"
    );
    assert!(has_line(&out, "   one read() gave 3 frames"), "{out}");
    assert!(
        has_line(
            &out,
            &format!(
                "   refused before allocating anything: frame declares {} bytes, over the limit of {DEFAULT_MAX_PAYLOAD}",
                0xffff_fff0u32
            )
        ),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. --help
// ---------------------------------------------------------------------------------------------

/// A learner's first command. Each help must name `--trace`; each `serve` and `client` must
/// show the lesson's own default address, which `lesson::parse` writes in at run time.
#[test]
fn help_documents_trace_and_default_addresses() {
    for (bin, port) in LESSONS {
        let help = run(bin, &["--help"], None);
        assert_eq!(help.code(), Some(0), "{bin} --help:\n{}", help.describe());
        assert!(
            help.stdout_text().contains("--trace"),
            "{bin} --help:\n{}",
            help.describe()
        );

        let Some(port) = port else { continue };
        for side in ["serve", "client"] {
            let help = run(bin, &[side, "--help"], None);
            assert_eq!(
                help.code(),
                Some(0),
                "{bin} {side} --help:\n{}",
                help.describe()
            );
            let text = help.stdout_text();
            assert!(
                text.contains(&format!("[default: 127.0.0.1:{port}]")),
                "{bin} {side} --help does not show 127.0.0.1:{port}:\n{text}"
            );
            assert!(text.contains("--trace"), "{bin} {side} --help:\n{text}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. serve and client, two processes
// ---------------------------------------------------------------------------------------------

/// Lesson 01: the client connects although the server never accepts, prints both ends, and
/// returns at once because its stdin is /dev/null (end of file stands for Enter). The server
/// keeps listening while its stdin is open and exits 0 when it closes; with /dev/null it
/// returns right after listening.
#[test]
fn pair_01_listen_client_connects_without_accept() {
    let mut server = Server::start_with_open_stdin(LISTEN, &[]);
    server.expect_line("try `ss -ltn` in another terminal: press Enter to stop");
    let addr = server.addr.to_string();

    let client = run(LISTEN, &["client", "--addr", &addr], None);
    assert_eq!(client.code(), Some(0), "{}", client.describe());
    let out = client.stdout_text();
    let ends = after(&out, "connected from ");
    let (local, rest) = ends.split_once(" to ").expect("LOCAL to PEER");
    assert!(local.parse::<SocketAddr>().is_ok(), "{out}");
    assert_eq!(
        rest,
        format!("{addr}, though the server never called accept()")
    );
    assert_eq!(client.stderr, "");

    server.close_stdin();
    let status = server.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "the server exits 0 at end of file on stdin"
    );
    assert_eq!(server.stop(), "");

    let alone = run(LISTEN, &["serve", "--addr", "127.0.0.1:0"], None);
    assert_eq!(alone.code(), Some(0), "{}", alone.describe());
    let port: u16 = after(&alone.stdout_text(), "listening on 127.0.0.1:")
        .parse()
        .expect("a port");
    assert_ne!(port, 0);
}

/// Lesson 02: the client prints exactly the greeting, then returns at the server's close.
#[test]
fn pair_02_accept_client_prints_the_greeting() {
    let mut server = Server::start(ACCEPT, &[]);
    let client = run(
        ACCEPT,
        &["client", "--addr", &server.addr.to_string()],
        None,
    );
    assert_eq!(client.code(), Some(0), "{}", client.describe());
    assert_eq!(client.stdout_text(), "hello from socklab lesson 02\n");
    assert_eq!(client.stderr, "");
    // Whatever port the client had, the server saw one connection from 127.0.0.1.
    let line = server.next_line();
    assert!(line.starts_with("accepted 127.0.0.1:"), "{line}");
    assert_eq!(server.stop(), "");
}

/// Lesson 03: the three lines arrive in order and complete, however TCP split them.
#[test]
fn pair_03_connect_client_reads_three_lines() {
    let mut server = Server::start(CONNECT, &[]);
    let client = run(
        CONNECT,
        &["client", "--addr", &server.addr.to_string()],
        None,
    );
    assert_eq!(client.code(), Some(0), "{}", client.describe());
    assert_eq!(client.stdout_text(), "line one\nline two\nline three\n");
    assert_eq!(client.stderr, "");
    let line = server.next_line();
    assert!(line.starts_with("sending 3 lines to 127.0.0.1:"), "{line}");
    assert_eq!(server.stop(), "");
}

/// Lesson 04: the client sends its stdin (256 KiB of arbitrary bytes, more than one 16 KiB
/// chunk and than a pipe holds) and prints exactly the same bytes back.
#[test]
fn pair_04_echo_client_gets_its_stdin_back() {
    let mut server = Server::start(ECHO, &[]);
    let sent = pseudo_random(256 * 1024 + 3, 4);
    let client = run(
        ECHO,
        &["client", "--addr", &server.addr.to_string()],
        Some(sent.clone()),
    );
    assert_eq!(client.code(), Some(0), "{}", client.stderr);
    assert_eq!(client.stderr, "");
    assert_same_bytes(&client.stdout, &sent, "04_echo client");
    let line = server.next_line();
    assert!(
        line.starts_with(&format!("echoed {} bytes to 127.0.0.1:", sent.len())),
        "{line}"
    );
    assert_eq!(server.stop(), "");
}

/// Lesson 05: the request ends at the client's shutdown(SHUT_WR), and the reply counts its
/// bytes and names the client's address. The server prints the same count and address, so
/// both sides agree on who asked.
#[test]
fn pair_05_half_close_client_gets_the_byte_count() {
    let mut server = Server::start(HALF_CLOSE, &[]);
    let request = b"how many bytes is this? (twelve thousand, more or less)\n".repeat(200);
    let client = run(
        HALF_CLOSE,
        &["client", "--addr", &server.addr.to_string()],
        Some(request.clone()),
    );
    assert_eq!(client.code(), Some(0), "{}", client.describe());
    assert_eq!(client.stderr, "");
    let reply = client.stdout_text();
    let peer = reply
        .strip_prefix(&format!("got {} bytes from ", request.len()))
        .and_then(|r| r.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected reply {reply:?}"));
    let peer: SocketAddr = peer.parse().expect("the client's address");
    assert_eq!(peer.ip().to_string(), "127.0.0.1");
    server.expect_line(&format!("answered {} bytes from {peer}", request.len()));
    assert_eq!(server.stop(), "");
}

/// Lesson 06: the client prints the greeting; the server's side closes first.
#[test]
fn pair_06_reuseaddr_client_gets_the_greeting() {
    let mut server = Server::start(REUSEADDR, &["--reuseaddr"]);
    let client = run(
        REUSEADDR,
        &["client", "--addr", &server.addr.to_string()],
        None,
    );
    assert_eq!(client.code(), Some(0), "{}", client.describe());
    assert_eq!(client.stdout_text(), "hello from socklab lesson 06\n");
    assert_eq!(client.stderr, "");
    let line = server.next_line();
    assert!(line.starts_with("greeted 127.0.0.1:"), "{line}");
    assert_eq!(server.stop(), "");
}

/// Lesson 07: the server resets every connection, so the client fails: exit code 1 (not a
/// signal, not a panic) and the ECONNRESET message. This is the reset error path.
#[test]
fn pair_07_reset_client_reports_econnreset() {
    let mut server = Server::start(RESET_PIPE, &[]);
    let client = run(
        RESET_PIPE,
        &["client", "--addr", &server.addr.to_string()],
        None,
    );
    assert_eq!(client.code(), Some(1), "{}", client.describe());
    assert_no_panic(&client, "07_reset_pipe client");
    let error = client
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{}", client.describe()));
    assert!(error.contains("ECONNRESET"), "{error}");
    assert!(error.ends_with("(see lesson 07)"), "{error}");
    let line = server.next_line();
    assert!(line.starts_with("resetting 127.0.0.1:"), "{line}");
    assert_eq!(server.stop(), "");
}

/// Lesson 08: each line of stdin goes out as one frame and comes back as `got N bytes`,
/// N in bytes (the empty line is a frame too; `ï` is two bytes). One byte per write must
/// change nothing for the reader.
#[test]
fn pair_08_framing_client_sends_each_line_as_a_frame() {
    let mut server = Server::start(FRAMING, &[]);
    let addr = server.addr.to_string();
    let input = "hello\n\none byte at a time\nnaïve\n";
    let want = "got 5 bytes\ngot 0 bytes\ngot 18 bytes\ngot 6 bytes\n";
    for extra in [&[][..], &["--byte-at-a-time"][..]] {
        let mut args = vec!["client", "--addr", &addr];
        args.extend_from_slice(extra);
        let client = run(FRAMING, &args, Some(input.as_bytes().to_vec()));
        assert_eq!(client.code(), Some(0), "{args:?}:\n{}", client.describe());
        assert_eq!(client.stdout_text(), want, "{args:?}");
        assert_eq!(client.stderr, "", "{args:?}");
    }
    let frames: Vec<String> = (0..8).map(|_| server.next_line()).collect();
    for (line, payload) in frames
        .iter()
        .zip(["hello", "", "one byte at a time", r"na\xc3\xafve"].repeat(2))
    {
        assert!(
            line.ends_with(&format!(": frame \"{payload}\"")),
            "{frames:#?}"
        );
    }
    assert_eq!(server.stop(), "");
}

// ---------------------------------------------------------------------------------------------
// 4. The echo server under load
// ---------------------------------------------------------------------------------------------

/// Sends `data` through the echo server and returns what came back. The writer runs on its
/// own thread so that neither side's socket buffers can fill up and block both; it ends with
/// shutdown(Write), the end of file that makes the server close after the echo.
fn echo_through(addr: SocketAddr, data: &[u8]) -> (Vec<u8>, SocketAddr) {
    let stream = connect(addr);
    let local = stream.local_addr().expect("getsockname");
    let mut writer = stream.try_clone().expect("clone the stream");
    let payload = data.to_vec();
    let sender = thread::spawn(move || -> io::Result<()> {
        writer.write_all(&payload)?;
        writer.shutdown(Shutdown::Write)
    });
    let mut back = Vec::with_capacity(data.len());
    // `take` bounds the loop: a server that sent more than it got fails the length check.
    (&stream)
        .take(data.len() as u64 + 1)
        .read_to_end(&mut back)
        .expect("read the echo");
    sender
        .join()
        .expect("the writer thread does not panic")
        .expect("write the payload and shut down");
    (back, local)
}

/// 4 MiB of pseudo-random bytes come back unchanged and in order, then a second client is
/// served by the same (sequential) server. The sizes are not multiples of the server's 64 KiB
/// buffer, so a lost or repeated partial read would show.
#[test]
fn echo_server_returns_large_payloads_unchanged() {
    let mut server = Server::start(ECHO, &[]);
    for (seed, len) in [(1, 4 * 1024 * 1024), (2, 1024 * 1024 + 7)] {
        let sent = pseudo_random(len, seed);
        let (back, local) = echo_through(server.addr, &sent);
        assert_same_bytes(&back, &sent, &format!("echo of {len} bytes"));
        server.expect_line(&format!("echoed {len} bytes to {local}"));
    }
    assert_eq!(server.stop(), "");
}

// ---------------------------------------------------------------------------------------------
// 5. The framing server, byte by byte
// ---------------------------------------------------------------------------------------------

/// A frame written one byte per write() (TCP_NODELAY, so Nagle does not glue the bytes back
/// into one segment) still gets exactly one answer; then two frames in one write get two
/// answers, in order.
#[test]
fn framing_server_answers_a_frame_sent_one_byte_per_write() {
    let mut server = Server::start(FRAMING, &[]);
    let mut stream = connect(server.addr);
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let local = stream.local_addr().expect("getsockname");

    for byte in frame(b"one byte at a time") {
        stream.write_all(&[byte]).expect("write one byte");
    }
    assert_eq!(read_frame(&mut stream), b"got 18 bytes");
    server.expect_line(&format!("{local}: frame \"one byte at a time\""));

    let mut two = frame(b"live");
    two.extend(frame(b"scores"));
    stream.write_all(&two).expect("write two frames");
    assert_eq!(read_frame(&mut stream), b"got 4 bytes");
    assert_eq!(read_frame(&mut stream), b"got 6 bytes");

    stream.shutdown(Shutdown::Write).expect("shutdown");
    assert_closed_by_server(&mut stream);
    assert_eq!(server.stop(), "");
}

/// A header declaring 0xfffffff0 bytes: the server closes that connection without an answer,
/// says why on stdout, and then serves the next client as if nothing happened.
#[test]
fn framing_server_drops_an_oversized_header_and_keeps_serving() {
    let mut server = Server::start(FRAMING, &[]);
    let mut stream = connect(server.addr);
    let local = stream.local_addr().expect("getsockname");
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xf0])
        .expect("write the header");
    assert_closed_by_server(&mut stream);
    server.expect_line(&format!(
        "{local}: closing: frame declares {} bytes, over the limit of {DEFAULT_MAX_PAYLOAD}",
        0xffff_fff0u32
    ));

    frame_round_trip(server.addr, b"still here");
    assert_eq!(server.stop(), "");
}

/// End of file three bytes into a five-byte payload: the server reports the truncated frame,
/// closes without answering, and keeps serving.
#[test]
fn framing_server_reports_a_truncated_frame_and_keeps_serving() {
    let mut server = Server::start(FRAMING, &[]);
    let mut stream = connect(server.addr);
    let local = stream.local_addr().expect("getsockname");
    stream
        .write_all(b"\0\0\0\x05hel")
        .expect("write part of a frame");
    stream.shutdown(Shutdown::Write).expect("shutdown");
    assert_closed_by_server(&mut stream);
    server.expect_line(&format!(
        "{local}: closing: stream ended inside a frame (7 bytes of it arrived)"
    ));

    frame_round_trip(server.addr, b"after the truncated one");
    assert_eq!(server.stop(), "");
}

// ---------------------------------------------------------------------------------------------
// 6. Error paths
// ---------------------------------------------------------------------------------------------

/// A port already taken by a listener (ours, held for the whole test): bind fails, and the
/// learner reads which call, which address, which errno and where to learn more.
#[test]
fn error_bind_to_a_taken_port_says_eaddrinuse() {
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let addr = holder.local_addr().expect("getsockname");
    let out = run(ACCEPT, &["serve", "--addr", &addr.to_string()], None);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert_no_panic(&out, "02_accept serve");
    let want = format!(
        "error: bind({addr}): EADDRINUSE: another socket holds this address (see lesson 06)"
    );
    assert!(has_line(&out.stderr, &want), "{}", out.describe());
    assert_eq!(
        out.stdout_text(),
        "",
        "nothing was listening, so no `listening on`"
    );
    drop(holder);
}

/// A port bound by a socket that does not listen: the kernel answers the SYN with RST.
#[test]
fn error_connect_to_a_closed_port_says_econnrefused() {
    let (holder, addr) = bound_not_listening();
    let out = run(CONNECT, &["client", "--addr", &addr.to_string()], None);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert_no_panic(&out, "03_connect client");
    let want = format!(
        "error: connect({addr}): ECONNREFUSED: nobody is listening on that address (see lesson 03)"
    );
    assert!(has_line(&out.stderr, &want), "{}", out.describe());
    drop(holder);
}

/// A malformed address is a usage error: clap's message and exit code 2, before any socket.
#[test]
fn error_bad_address_is_a_usage_error() {
    let out = run(ECHO, &["serve", "--addr", "nonsense"], None);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert_no_panic(&out, "04_echo serve --addr nonsense");
    assert!(
        out.stderr
            .starts_with("error: invalid value 'nonsense' for '--addr <HOST:PORT>'"),
        "{}",
        out.describe()
    );
    assert_eq!(out.stdout_text(), "");
}
