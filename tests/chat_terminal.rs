//! `socklab chat` (and `watch`) as a person sees them on a terminal.
//!
//! The client runs inside a detached tmux session of its own (its own tmux server, on a
//! socket named for this test: `tmux -L`, so no one else's tmux is touched); the test types
//! with `send-keys` and reads the screen with `capture-pane -p`, as a person would look at
//! it. What is asserted: the prompt shows the room and the name; your own message is shown
//! like everyone else's; another's message arrives above a half-typed line and leaves it
//! intact; `/room` to a room you are not in is refused; leaving your last room says so; with
//! no server, the client says the address is not reachable and that it retries; across a
//! server restart it says offline, reconnecting, back in a new session; and across a lost
//! connection with the server still up, it says how many missed messages were delivered.
//! `watch`, a line client, is read from its stdout: it says the same across a lost
//! connection, counting score updates.
//!
//! Skipped with a message when tmux is missing, unless `SOCKLAB_REQUIRE_TMUX=1` (CI sets
//! it), when a missing tmux fails.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{sigterm, spawn_listening, wait_exit, Input, Proc, Reaper, EXIT_WAIT, WAIT};

const SOCKLAB: &str = env!("CARGO_BIN_EXE_socklab");

/// Whether tmux can be run; if not, says so and the test returns (or fails, in CI).
fn have_tmux() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("SOCKLAB_REQUIRE_TMUX").is_some_and(|v| v == "1") {
            panic!("tmux is required (SOCKLAB_REQUIRE_TMUX=1) but not installed");
        }
        eprintln!(
            "skipped: tmux not found; install it (apt-get install tmux) to test the chat's screen"
        );
    }
    found
}

/// A tmux server of our own with one session running one command; killed when dropped,
/// whatever the test's outcome.
struct Tmux {
    socket: String,
    /// Where that server's socket file is: removed at the end (kill-server leaves it).
    path: String,
}

impl Tmux {
    fn start(args: &[&str]) -> Tmux {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let socket = format!(
            "socklab-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut tmux = Tmux {
            socket,
            path: String::new(),
        };
        // No user configuration (-f /dev/null); a screen wide enough that lines do not wrap.
        let status = tmux
            .cmd()
            // The pane stays when the client exits, for its last words to be read.
            .args([
                "start-server",
                ";",
                "set-option",
                "-g",
                "remain-on-exit",
                "on",
                ";",
            ])
            .args([
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "150",
                "-y",
                "40",
                "--",
            ])
            .args(args)
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        tmux.path = tmux.format("#{socket_path}");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c.stdin(Stdio::null());
        c
    }

    /// Types `keys` (tmux key names such as `Enter` are keys; `-l` is not used, so plain
    /// text must not collide with one: ours never does).
    fn send(&self, keys: &[&str]) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "t"])
            .args(keys)
            .status()
            .expect("run tmux send-keys");
        assert!(status.success(), "tmux send-keys {keys:?}");
    }

    /// The screen, one string a row, trailing blanks cut.
    fn screen(&self) -> Vec<String> {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .expect("run tmux capture-pane");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    /// The last row that is not empty: where the prompt is.
    fn last_row(&self) -> String {
        self.screen()
            .into_iter()
            .rev()
            .find(|l| !l.is_empty())
            .unwrap_or_default()
    }

    /// Waits (at most [`WAIT`]) until the screen has a row `want` accepts.
    fn wait_row(&self, desc: &str, want: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.iter().any(|l| want(l)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {desc} on the screen within {WAIT:?}:\n{}",
                screen.join("\n")
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most [`WAIT`]) until the client in the pane has exited. tmux may take a
    /// while to notice (the process can sit as a zombie, not yet reaped, for seconds), so
    /// the process itself is looked at in /proc as well.
    fn wait_exit(&self) {
        let pid = self.format("#{pane_pid}");
        let deadline = Instant::now() + WAIT;
        loop {
            if self.format("#{pane_dead}") == "1" {
                let status = self.format("#{pane_dead_status}");
                assert!(status == "0" || status.is_empty(), "exit status {status}");
                return;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The state follows the command name in parentheses: Z is a zombie (exited).
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            if stat.is_empty() || state == Some("Z") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the client did not exit within {WAIT:?}:\n{}",
                self.screen().join("\n")
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A tmux format (`#{pane_pid}`, ...) of the session's pane.
    fn format(&self, f: &str) -> String {
        let out = self
            .cmd()
            .args(["display-message", "-p", "-t", "t", f])
            .output()
            .expect("run tmux display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits (at most [`WAIT`]) until the prompt row is exactly `want`.
    fn wait_prompt(&self, want: &str) {
        let deadline = Instant::now() + WAIT;
        while self.last_row() != want {
            assert!(
                Instant::now() < deadline,
                "the last row is not {want:?} within {WAIT:?}:\n{}",
                self.screen().join("\n")
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").stderr(Stdio::null()).status();
        if !self.path.is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn serve(addr: &str) -> (Reaper, SocketAddr) {
    serve_with(addr, &["--matches", "0"])
}

fn serve_with(addr: &str, options: &[&str]) -> (Reaper, SocketAddr) {
    let mut cmd = Command::new(SOCKLAB);
    cmd.args(["serve", "--addr", addr])
        .args(options)
        .env_remove("SOCKLAB_TRACE")
        .stdin(Stdio::null());
    let (server, addr, _lines) = spawn_listening(&mut cmd, "socklab serve");
    (server, addr)
}

fn stop(mut server: Reaper) {
    sigterm(&server.0);
    let status = wait_exit(&mut server.0, "socklab serve", EXIT_WAIT);
    assert!(status.success(), "socklab serve after SIGTERM: {status}");
}

/// Another person, on a pipe: says `text` in the lobby and leaves.
fn bob_says(addr: SocketAddr, text: &'static [u8]) {
    let a = addr.to_string();
    let bob = Proc::spawn(
        SOCKLAB,
        &["chat", "--name", "bob", "--addr", &a],
        Input::Bytes(text),
    )
    .finish();
    assert_eq!(bob.code(), Some(0), "{}", bob.describe());
}

#[test]
fn chat_terminal_prompt_messages_rooms_and_a_server_restart() {
    if !have_tmux() {
        return;
    }
    let (server, addr) = serve("127.0.0.1:0");
    let a = addr.to_string();
    let ada = Tmux::start(&[SOCKLAB, "chat", "--name", "ada", "--addr", &a]);
    ada.wait_row("`connected as ada`", |l| {
        l.starts_with("connected as ada in lobby")
    });
    ada.wait_prompt("[lobby] ada>");

    // Your own message, as everyone else's are shown; the typed echo is gone.
    ada.send(&["hello all", "Enter"]);
    ada.wait_row("ada's own message", |l| l == "[lobby] ada: hello all");
    assert!(
        !ada.screen().iter().any(|l| l.contains("ada> hello all")),
        "the typed line stays only as the message:\n{}",
        ada.screen().join("\n")
    );

    // Half a line typed, then someone else speaks: the message goes above, the line stays.
    ada.send(&["half typ"]);
    ada.wait_prompt("[lobby] ada> half typ");
    bob_says(addr, b"hi from bob\n");
    ada.wait_row("bob's message", |l| l == "[lobby] bob: hi from bob");
    ada.wait_row("bob leaving", |l| l == "[lobby] * bob left lobby");
    assert_eq!(
        ada.last_row(),
        "[lobby] ada> half typ",
        "the half-typed line is intact on the prompt row:\n{}",
        ada.screen().join("\n")
    );
    ada.send(&["ed", "Enter"]);
    ada.wait_row("the finished line", |l| l == "[lobby] ada: half typed");

    // Rooms: refused, joined (the prompt follows), left down to none.
    ada.send(&["/room news", "Enter"]);
    ada.wait_row("the refusal", |l| l.starts_with("* you are not in news"));
    ada.wait_prompt("[lobby] ada>");
    ada.send(&["/join news", "Enter"]);
    ada.wait_prompt("[news] ada>");
    ada.wait_row("the rooms", |l| {
        l == "* your rooms: lobby, news (talking in news)"
    });
    ada.send(&["/leave news", "Enter"]);
    ada.wait_prompt("[lobby] ada>");
    ada.send(&["/leave lobby", "Enter"]);
    ada.wait_prompt("[no room] ada>");
    ada.wait_row("no room", |l| {
        l.starts_with("* you are in no room now; /join ROOM")
    });
    ada.send(&["/join lobby", "Enter"]);
    ada.wait_prompt("[lobby] ada>");

    // The server restarts on the same address: offline, reconnecting, back in a new session
    // (and in the lobby again). A half-typed line survives all of it.
    ada.send(&["still here"]);
    stop(server);
    ada.wait_row("offline", |l| {
        l == format!("* offline: the server at {addr} is shutting down; reconnecting")
    });
    ada.wait_row("reconnecting", |l| {
        l.starts_with(&format!("* reconnecting to {addr}"))
    });
    let (server, again) = serve(&a);
    assert_eq!(again, addr);
    ada.wait_row("back", |l| {
        l.starts_with("* back online, but the server has restarted: a new session")
    });
    ada.wait_row("back in the lobby", |l| l == "* back in lobby");
    ada.wait_prompt("[lobby] ada> still here");
    ada.send(&["Enter"]);
    ada.wait_row("a message after the restart", |l| {
        l == "[lobby] ada: still here"
    });

    ada.send(&["/quit", "Enter"]);
    ada.wait_row("the goodbye", |l| l == "disconnected: io client disconnect");
    stop(server);
}

#[test]
fn chat_and_watch_say_that_no_server_is_reachable() {
    if !have_tmux() {
        return;
    }
    // An address where nothing listens: bound for a moment to learn a free port.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let a = addr.to_string();
    let ada = Tmux::start(&[SOCKLAB, "chat", "--name", "ada", "--addr", &a]);
    let watch = Tmux::start(&[SOCKLAB, "watch", "--match", "1", "--addr", &a]);
    let unreachable = format!("* the server at {addr} is not reachable; retrying (attempt 1");
    ada.wait_row("the chat's `not reachable`", |l| {
        l.starts_with(&unreachable)
    });
    watch.wait_row("watch's `not reachable`", |l| l.starts_with(&unreachable));
    ada.wait_prompt("[lobby] ada>");

    // A server appears at that address: the chat connects without anyone's help.
    let (server, _) = serve(&a);
    ada.wait_row("`connected as ada`", |l| {
        l.starts_with("connected as ada in lobby")
    });
    // Quitting while the client keeps trying must not wait for a server.
    drop(server); // killed: the chat goes back to retrying
    ada.wait_row("offline", |l| {
        l.starts_with("* offline: lost the connection")
    });
    ada.send(&["/quit", "Enter"]);
    ada.wait_exit();
}

/// A TCP proxy the test can cut: every connection through it is closed at once, both ways,
/// as a network would drop it; and it can hold new connections (not accept them) for a
/// while. The server sees the cut as a transport close and keeps the session for its return.
struct Proxy {
    addr: SocketAddr,
    pairs: Arc<Mutex<Vec<(TcpStream, TcpStream)>>>,
    open: Arc<AtomicBool>,
}

impl Proxy {
    fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("its address");
        let pairs: Arc<Mutex<Vec<(TcpStream, TcpStream)>>> = Arc::default();
        let open = Arc::new(AtomicBool::new(true));
        let (p, o) = (pairs.clone(), open.clone());
        thread::spawn(move || loop {
            // Held: new connections wait in the backlog, their bytes in the kernel.
            while !o.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10));
            }
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let Ok(server) = TcpStream::connect(to) else {
                continue;
            };
            for (mut from, mut into) in [
                (client.try_clone(), server.try_clone()),
                (server.try_clone(), client.try_clone()),
            ]
            .into_iter()
            .filter_map(|(a, b)| a.ok().zip(b.ok()))
            {
                thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || into.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = into.shutdown(Shutdown::Write);
                });
            }
            if let Ok(mut v) = p.lock() {
                v.push((client, server));
            }
        });
        Proxy { addr, pairs, open }
    }

    /// Drops every connection through the proxy, and holds new ones until [`Proxy::open`].
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for (c, s) in self.pairs.lock().expect("the pairs").drain(..) {
            let _ = c.shutdown(Shutdown::Both);
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[test]
fn chat_recovered_session_says_how_many_messages_it_missed() {
    if !have_tmux() {
        return;
    }
    let (server, addr) = serve("127.0.0.1:0");
    let proxy = Proxy::start(addr);
    let p = proxy.addr.to_string();
    let ada = Tmux::start(&[SOCKLAB, "chat", "--name", "ada", "--addr", &p]);
    ada.wait_prompt("[lobby] ada>");
    let a = addr.to_string();
    let mut bob = Proc::spawn(
        SOCKLAB,
        &["chat", "--name", "bob", "--addr", &a],
        Input::Open,
    );
    bob.expect_line("`connected as bob`", |l| l.starts_with("connected as bob"));
    ada.wait_row("bob joining", |l| l == "[lobby] * bob joined lobby");

    ada.send(&["typing"]);
    proxy.cut();
    ada.wait_row("offline", |l| {
        l.starts_with(&format!("* offline: lost the connection to {}", proxy.addr))
    });
    // The server has noticed too (it tells bob that ada left): ada's session is parked.
    bob.expect_line("ada leaving", |l| l == "[lobby] * ada left lobby");
    bob.write_stdin("one while you were away\ntwo while you were away\n/who\n");
    bob.expect_line("bob's /who", |l| l == "* in lobby: bob");
    proxy.open();

    ada.wait_row("back", |l| l == "* back online: your session was recovered");
    ada.wait_row("the first missed message", |l| {
        l == "[lobby] bob: one while you were away"
    });
    ada.wait_row("the second", |l| {
        l == "[lobby] bob: two while you were away"
    });
    ada.wait_row("the count", |l| l == "* 2 missed messages delivered");
    ada.wait_prompt("[lobby] ada> typing");

    bob.close_stdin();
    let bob = bob.finish();
    assert_eq!(bob.code(), Some(0), "{}", bob.describe());
    ada.send(&["C-u", "/quit", "Enter"]);
    ada.wait_row("the goodbye", |l| l == "disconnected: io client disconnect");
    stop(server);
}

#[test]
fn watch_recovered_session_says_how_many_updates_it_missed() {
    // No terminal needed: `watch` prints lines.
    let (server, addr) = serve_with("127.0.0.1:0", &["--matches", "1", "--interval-ms", "50"]);
    let proxy = Proxy::start(addr);
    let p = proxy.addr.to_string();
    let mut watch = Proc::spawn(
        SOCKLAB,
        &["watch", "--match", "1", "--addr", &p],
        Input::Null,
    );
    watch.expect_line("`watching match 1`", |l| l.starts_with("watching match 1"));
    watch.expect_line("a score", |l| l.starts_with("match 1:"));
    proxy.cut();
    watch.expect_line("offline", |l| {
        l.starts_with(&format!("* offline: lost the connection to {}", proxy.addr))
    });
    // The feed goes on meanwhile (a ball every 50 ms): these are the updates missed.
    thread::sleep(Duration::from_millis(300));
    proxy.open();
    watch.expect_line("back", |l| l == "* back online: your session was recovered");
    let count = watch.expect_line("the count", |l| {
        l.ends_with("missed score updates delivered")
    });
    let n: u64 = count
        .trim_start_matches("* ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number of updates: {count:?}"));
    assert!(n >= 2, "300 ms at a ball every 50 ms: {count:?}");
    watch.sigterm();
    drop(watch);
    stop(server);
}
