//! Child processes: a guard that kills them, their output read on threads with deadlines,
//! their signals and exit; and the socket lessons' binaries run to completion.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use socklab::sys::spawn_with_std_fds_only;

use super::WAIT;

/// The longest a child process may take to exit once it should.
pub const EXIT_WAIT: Duration = Duration::from_secs(30);

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
/// that are not UTF-8 are replaced, not an error. Once nobody holds the channel the lines
/// are read and dropped: the pipe stays open until the child ends, so that a child that
/// prints a line later (`stopped`) is not killed by SIGPIPE for it.
pub fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = BufReader::new(pipe);
        let mut line = Vec::new();
        while matches!(out.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            let _ = tx.send(text);
            line.clear();
        }
    });
    rx
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

// ---------------------------------------------------------------------------------------------
// The socket lessons (00 to 08), run to completion
// ---------------------------------------------------------------------------------------------

// Their binaries, built by cargo for the tests.
pub const SOCKET: &str = env!("CARGO_BIN_EXE_00_socket");
pub const LISTEN: &str = env!("CARGO_BIN_EXE_01_listen");
pub const ACCEPT: &str = env!("CARGO_BIN_EXE_02_accept");
pub const CONNECT: &str = env!("CARGO_BIN_EXE_03_connect");
pub const ECHO: &str = env!("CARGO_BIN_EXE_04_echo");
pub const HALF_CLOSE: &str = env!("CARGO_BIN_EXE_05_half_close");
pub const REUSEADDR: &str = env!("CARGO_BIN_EXE_06_reuseaddr");
pub const RESET_PIPE: &str = env!("CARGO_BIN_EXE_07_reset_pipe");
pub const FRAMING: &str = env!("CARGO_BIN_EXE_08_framing");

/// Every lesson binary with the port of its default address (`None`: no `serve`/`client`).
pub const LESSONS: [(&str, Option<u16>); 9] = [
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

/// A lesson binary with the arguments given. The tests turn the self-trace on with `--trace`
/// only, so `SOCKLAB_TRACE` from the caller's environment must not leak in; nor may a
/// descriptor the caller leaked, which would shift the numbers the lessons print.
pub fn command(bin: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    spawn_with_std_fds_only(&mut cmd)
        .args(args)
        .env_remove("SOCKLAB_TRACE");
    cmd
}

/// What a finished process left behind.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Exit code; `None` means a signal killed the process, which no lesson should allow.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn describe(&self) -> String {
        format!(
            "status {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status,
            self.stdout_text(),
            self.stderr
        )
    }
}

/// Runs lesson `number`'s binary `bin` with no arguments and checks that it printed what
/// `docs/src/output/NN.txt` recorded, ports numbered in order and lines marked `varies`
/// masked, as `make trace` stores it: for the lessons `tests/trace.rs` cannot run (23, 24).
pub fn assert_prints_recorded_output(bin: &str, number: &str) {
    use socklab::strace::{mask_varying, Normalizer};
    let out = run(bin, &[], None);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let printed = mask_varying(&Normalizer::new().apply(&out.stdout_text()));
    let page = format!(
        "{}/docs/src/output/{number}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let recorded = std::fs::read_to_string(&page).expect("the recorded output");
    assert_eq!(
        printed, recorded,
        "run `make trace N={number}` and reread the page"
    );
}

/// Runs `bin args` to completion within [`WAIT`]: stdin is `input` (then closed) or
/// /dev/null when `input` is `None`.
pub fn run(bin: &str, args: &[&str], input: Option<Vec<u8>>) -> Finished {
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

/// A lesson must fail with a message and an exit code, never with a panic.
pub fn assert_no_panic(out: &Finished, what: &str) {
    assert!(
        !out.stderr.contains("panicked"),
        "{what} panicked:\n{}",
        out.describe()
    );
}

/// Whether `text` has a line that is exactly `want`.
pub fn has_line(text: &str, want: &str) -> bool {
    text.lines().any(|l| l == want)
}

// ---------------------------------------------------------------------------------------------
// A child followed line by line
// ---------------------------------------------------------------------------------------------

/// What a child's stdin is.
pub enum Input {
    Null,
    /// A pipe the test holds open until `close_stdin` (or the end).
    Open,
    /// These bytes, then end of file (a pipe filled and closed before the child starts).
    Bytes(&'static [u8]),
}

/// A running child with its stdout read line by line.
pub struct Proc {
    what: String,
    child: Reaper,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line received so far.
    seen: Vec<String>,
    stderr: Receiver<Vec<u8>>,
}

/// What a finished [`Proc`] left behind, its stdout as lines.
pub struct Exited {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Exited {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn has_line(&self, want: &str) -> bool {
        self.stdout.iter().any(|l| l == want)
    }

    pub fn describe(&self) -> String {
        format!(
            "{}: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.status,
            self.stdout.join("\n"),
            self.stderr
        )
    }
}

impl Proc {
    pub fn spawn(bin: &str, args: &[&str], input: Input) -> Proc {
        let name = bin.rsplit('/').next().unwrap_or(bin);
        let what = format!("{name} {}", args.join(" "));
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env_remove("SOCKLAB_TRACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match input {
            Input::Null => cmd.stdin(Stdio::null()),
            Input::Open => cmd.stdin(Stdio::piped()),
            Input::Bytes(bytes) => {
                // Written and closed before the child starts, as `printf ... | cmd` often
                // is: its whole input and the end of file are there from the first read.
                // O_CLOEXEC: a child another test spawns meanwhile must not inherit the
                // write end, or this child would wait for its end of file.
                let (reader, writer) =
                    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
                let mut writer = std::fs::File::from(writer);
                writer.write_all(bytes).expect("the input fits in the pipe");
                drop(writer);
                cmd.stdin(Stdio::from(reader))
            }
        };
        let mut child = Reaper(cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}")));
        let stdout = child.0.stdout.take().expect("stdout was piped above");
        let stderr = child.0.stderr.take().expect("stderr was piped above");
        let stdin = child.0.stdin.take();
        Proc {
            what,
            child,
            stdin,
            lines: lines_of(stdout),
            seen: Vec::new(),
            stderr: collect(stderr),
        }
    }

    /// Waits (at most [`WAIT`]) for a stdout line that `want` accepts, skipping others.
    pub fn expect_line(&mut self, desc: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no line {desc} within {WAIT:?}; it printed {:#?}",
                    self.what, self.seen
                ),
            }
        }
    }

    /// The next stdout line, if one comes within `wait` (kept with the others seen, for
    /// the messages of later failures).
    pub fn next_line(&mut self, wait: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(wait).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Every stdout line received so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// The address of the first line, `listening on ADDR`.
    pub fn listening_on(&mut self) -> SocketAddr {
        let line = self.expect_line("`listening on ADDR`", |l| l.starts_with("listening on "));
        let addr: SocketAddr = line["listening on ".len()..]
            .parse()
            .unwrap_or_else(|e| panic!("{}: {line:?}: {e}", self.what));
        assert_eq!(addr.ip().to_string(), "127.0.0.1", "{line}");
        assert_ne!(addr.port(), 0, "{line}");
        addr
    }

    pub fn write_stdin(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is an open pipe");
        stdin
            .write_all(text.as_bytes())
            .expect("write to the child");
        stdin.flush().expect("flush to the child");
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn sigterm(&self) {
        let pid = i32::try_from(self.child.0.id()).expect("a pid fits in an i32");
        kill(Pid::from_raw(pid), Signal::SIGTERM).expect("kill -TERM our own child");
    }

    /// Waits (at most [`EXIT_WAIT`]) for the child to exit; its stdin stays as it is until
    /// then. Returns its status and everything it printed.
    pub fn finish(mut self) -> Exited {
        let deadline = Instant::now() + EXIT_WAIT;
        let status = loop {
            if let Some(status) = self.child.0.try_wait().expect("try_wait on our child") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {EXIT_WAIT:?}; it printed {:#?}",
                self.what,
                self.seen
            );
            thread::sleep(Duration::from_millis(10));
        };
        // The pipes close at exit: read the rest.
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            self.seen.push(line);
        }
        let stderr = self
            .stderr
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{}: stderr not closed", self.what));
        Exited {
            what: self.what,
            status,
            stdout: self.seen,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}
