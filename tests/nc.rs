//! Every `nc` command the book shows does what its page says it does: it prints what the page
//! says, and it exits (or keeps waiting) as the page says.
//!
//! Each case names the page and the command exactly as the page prints it (the test fails if
//! the page no longer shows it), runs that command in `bash` against the lesson's `serve`
//! (on a free port, put in place of the page's 70NN), and checks what the page promises.
//! The `nc` is Debian's `netcat-openbsd` (the README installs it): other netcats differ in
//! exactly the behaviour checked here, when they exit. Without it the test is skipped with a
//! message, unless `SOCKLAB_REQUIRE_NC=1` (CI sets it), when a missing `nc` fails.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use common::{command, lines_of, spawn_listening, WAIT};

/// How long a command the page says ends may take to end, and how long one it says keeps
/// waiting is watched before the test believes it.
const ENDS_WITHIN: Duration = Duration::from_secs(5);
const STILL_RUNNING_AFTER: Duration = Duration::from_millis(1500);

/// What the reader does with the command's standard input.
#[derive(Clone, Copy)]
enum Input {
    /// The command line feeds it (`printf ... | nc`), or nothing: the input ends at once.
    Ends,
    /// A terminal: these bytes are typed once the connection is up, and the input stays
    /// open, as it does until the reader presses Ctrl-D or Ctrl-C.
    Typed(&'static [u8]),
}

/// What the page says the command does when it is done talking.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Ends {
    /// It exits by itself, with status 0.
    Exits,
    /// It keeps waiting until the reader presses Ctrl-C.
    KeepsWaiting,
}

struct Case {
    page: &'static str,
    /// The command exactly as the page shows it, with the lesson's default port.
    command: &'static str,
    lesson: &'static str,
    input: Input,
    /// Lines (or parts of lines) the command prints.
    prints: &'static [&'static str],
    /// A part of a line the server prints for this client.
    server_prints: Option<&'static str>,
    ends: Ends,
}

const CASES: &[Case] = &[
    Case {
        page: "02-accept.md",
        command: "nc -d 127.0.0.1 7002",
        lesson: env!("CARGO_BIN_EXE_02_accept"),
        input: Input::Typed(b""),
        prints: &["hello from socklab lesson 02"],
        server_prints: Some("accepted 127.0.0.1:"),
        ends: Ends::Exits,
    },
    Case {
        page: "03-connect.md",
        command: "nc -d 127.0.0.1 7003",
        lesson: env!("CARGO_BIN_EXE_03_connect"),
        input: Input::Typed(b""),
        prints: &["line one", "line two", "line three"],
        server_prints: None,
        ends: Ends::Exits,
    },
    Case {
        page: "04-echo.md",
        command: "nc 127.0.0.1 7004",
        lesson: env!("CARGO_BIN_EXE_04_echo"),
        input: Input::Typed(b"hello\nworld\n"),
        prints: &["hello", "world"],
        server_prints: None,
        ends: Ends::KeepsWaiting,
    },
    Case {
        page: "04-echo.md",
        command: "printf 'hi\\n' | nc 127.0.0.1 7004",
        lesson: env!("CARGO_BIN_EXE_04_echo"),
        input: Input::Ends,
        prints: &["hi"],
        server_prints: None,
        ends: Ends::KeepsWaiting,
    },
    Case {
        page: "05-half-close.md",
        command: "echo hi | nc -N 127.0.0.1 7005",
        lesson: env!("CARGO_BIN_EXE_05_half_close"),
        input: Input::Ends,
        prints: &["got 3 bytes from 127.0.0.1:"],
        server_prints: None,
        ends: Ends::Exits,
    },
    Case {
        page: "05-half-close.md",
        command: "echo hi | nc 127.0.0.1 7005",
        lesson: env!("CARGO_BIN_EXE_05_half_close"),
        input: Input::Ends,
        prints: &[],
        server_prints: None,
        ends: Ends::KeepsWaiting,
    },
    Case {
        page: "08-framing.md",
        command: "printf '\\377\\377\\377\\360' | nc -N 127.0.0.1 7008",
        lesson: env!("CARGO_BIN_EXE_08_framing"),
        input: Input::Ends,
        prints: &[],
        server_prints: Some("closing: frame declares 4294967280 bytes, over the limit of 1000000"),
        ends: Ends::Exits,
    },
    Case {
        page: "08-framing.md",
        command: "printf '\\0\\0\\0\\5hel' | nc -N 127.0.0.1 7008",
        lesson: env!("CARGO_BIN_EXE_08_framing"),
        input: Input::Ends,
        prints: &[],
        server_prints: Some("closing: stream ended inside a frame"),
        ends: Ends::Exits,
    },
    Case {
        page: "08-framing.md",
        command: "printf '\\5\\0\\0\\0hello' | nc -N 127.0.0.1 7008",
        lesson: env!("CARGO_BIN_EXE_08_framing"),
        input: Input::Ends,
        prints: &[],
        // The page asks the reader to work the number out; this is it.
        server_prints: Some("frame declares 83886080 bytes"),
        ends: Ends::Exits,
    },
    Case {
        page: "09-nonblocking.md",
        command: "nc 127.0.0.1 7009",
        lesson: env!("CARGO_BIN_EXE_09_nonblocking"),
        input: Input::Typed(b"hi\n"),
        prints: &[],
        server_prints: Some(": 3 bytes after "),
        ends: Ends::KeepsWaiting,
    },
    Case {
        page: "11-mio-loop.md",
        command: "nc 127.0.0.1 7011",
        lesson: env!("CARGO_BIN_EXE_11_mio_loop"),
        input: Input::Typed(b"hello\nworld\n"),
        prints: &["hello", "world"],
        server_prints: None,
        ends: Ends::KeepsWaiting,
    },
    Case {
        page: "12-backpressure.md",
        command: "printf 'hello\\n' | nc -N 127.0.0.1 7012",
        lesson: env!("CARGO_BIN_EXE_12_backpressure"),
        input: Input::Ends,
        prints: &["hello"],
        server_prints: None,
        ends: Ends::Exits,
    },
    Case {
        page: "18-http.md",
        command:
            "printf 'GET / HTTP/1.1\\r\\n\\r\\nGET / HTTP/1.1\\r\\n\\r\\n' | nc -N 127.0.0.1 7018",
        lesson: env!("CARGO_BIN_EXE_18_http"),
        input: Input::Ends,
        prints: &["hello from lesson 18", "hello from lesson 18"],
        server_prints: None,
        ends: Ends::Exits,
    },
    Case {
        page: "18-http.md",
        command: "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -N 127.0.0.1 7018",
        lesson: env!("CARGO_BIN_EXE_18_http"),
        input: Input::Ends,
        prints: &["HTTP/1.1 200 OK", "Connection: close"],
        server_prints: None,
        ends: Ends::Exits,
    },
    Case {
        page: "22-polling-upgrade.md",
        command: "printf 'GET /socket.io/?EIO=4&transport=polling HTTP/1.0\\r\\n\\r\\n' | nc -N 127.0.0.1 7022",
        lesson: env!("CARGO_BIN_EXE_22_polling_upgrade"),
        input: Input::Ends,
        prints: &["HTTP/1.1 200 OK", "\"upgrades\":[\"websocket\"]"],
        server_prints: None,
        ends: Ends::Exits,
    },
    Case {
        page: "21-socketio.md",
        command: "printf 'GET /socket.io/?EIO=3&transport=websocket HTTP/1.1\\r\\n\\r\\n' | nc -N 127.0.0.1 7021",
        lesson: env!("CARGO_BIN_EXE_21_socketio"),
        input: Input::Ends,
        prints: &["HTTP/1.1 400 Bad Request", "{\"code\":5,\"message\":\"Unsupported protocol version\"}"],
        server_prints: None,
        ends: Ends::Exits,
    },
    Case {
        page: "20-engineio.md",
        command: "printf 'GET /engine.io/?EIO=3&transport=websocket HTTP/1.1\\r\\n\\r\\n' | nc -N 127.0.0.1 7020",
        lesson: env!("CARGO_BIN_EXE_20_engineio"),
        input: Input::Ends,
        prints: &["HTTP/1.1 400 Bad Request", "{\"code\":5,\"message\":\"Unsupported protocol version\"}"],
        server_prints: None,
        ends: Ends::Exits,
    },
    Case {
        page: "14-events.md",
        command: "printf '\\0\\0\\0\\1\\2' | nc 127.0.0.1 7014 | xxd | head -2",
        lesson: env!("CARGO_BIN_EXE_14_events"),
        input: Input::Ends,
        prints: &[
            "00000000: 0000 004c 0753 4f43 4b4c 4142 0200 0000  ...L.SOCKLAB....",
            "00000010: 3f7b 226d 6178 5061 796c 6f61 6422 3a31  ?{\"maxPayload\":1",
        ],
        server_prints: None,
        ends: Ends::Exits,
    },
    Case {
        page: "14-events.md",
        command: "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 7014 | head -1",
        lesson: env!("CARGO_BIN_EXE_14_events"),
        input: Input::Ends,
        prints: &["HTTP/1.1 404 Not Found"],
        server_prints: None,
        ends: Ends::Exits,
    },
];

/// A shell and everything it started (its own process group), killed as a group when dropped,
/// so an `nc` that keeps waiting never outlives the test.
struct Group(Child);

impl Group {
    fn spawn(cmd: &mut Command) -> Group {
        Group(
            cmd.process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")),
        )
    }

    /// Waits at most `limit` for the shell to exit; its status code if it did.
    fn exited_within(&mut self, limit: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait on our own child") {
                return Some(status.code());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = i32::try_from(self.0.id()).expect("a pid fits in an i32");
        // Our own group, by its id; fails harmlessly if everyone in it has exited.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

/// Collects lines from `from` until every one of `wanted` is part of one of them, or `limit`
/// passes; returns the lines seen and whether all were found.
fn wait_for(from: &Receiver<String>, wanted: &[&str], limit: Duration) -> (Vec<String>, bool) {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        if wanted
            .iter()
            .all(|w| seen.iter().any(|l: &String| l.contains(w)))
        {
            return (seen, true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match from.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => return (seen, false),
        }
    }
}

/// Is Debian's netcat-openbsd the `nc` on PATH? Prints why not and returns false if the test
/// should be skipped; panics instead when SOCKLAB_REQUIRE_NC=1.
fn have_openbsd_nc() -> bool {
    let help = Command::new("nc").arg("-h").output();
    let why = match help {
        Err(e) => format!("nc not found ({e})"),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            if text.contains("OpenBSD netcat") {
                return true;
            }
            "this nc is not OpenBSD netcat, whose behaviour the book describes".to_string()
        }
    };
    if std::env::var_os("SOCKLAB_REQUIRE_NC").is_some_and(|v| v == "1") {
        panic!("{why}, and SOCKLAB_REQUIRE_NC=1: install it with `apt-get install netcat-openbsd`");
    }
    eprintln!("skipped: {why}; install it (apt-get install netcat-openbsd) to check the book's nc commands");
    false
}

fn page_text(page: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/src")
        .join(page);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The page's command with the lesson's default port (the last word that is a 70NN port)
/// replaced by `port`.
fn with_port(command: &str, port: u16) -> String {
    let words: Vec<String> = command
        .split(' ')
        .map(|w| {
            let is_default = w.len() == 4 && w.starts_with("70") && w.parse::<u16>().is_ok();
            if is_default {
                port.to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    words.join(" ")
}

/// Runs one case; returns a description of what differs from the page, if anything.
fn check(case: &Case) -> Result<(), String> {
    let what = format!("{}: `{}`", case.page, case.command);
    if !page_text(case.page).contains(case.command) {
        return Err(format!("{what}: the page no longer shows this command"));
    }
    let (_server, addr, server_lines) = spawn_listening(
        command(case.lesson, &["serve", "--addr", "127.0.0.1:0"]).stderr(Stdio::null()),
        &what,
    );
    let line = with_port(case.command, addr.port());
    let mut shell = Command::new("bash");
    shell
        .args(["-c", &line])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(match case.input {
            Input::Ends => Stdio::null(),
            Input::Typed(_) => Stdio::piped(),
        });
    let mut run = Group::spawn(&mut shell);
    let out = lines_of(run.0.stdout.take().expect("stdout was piped above"));
    // Held until the end of this function: a terminal's input stays open.
    let _typing = run.0.stdin.take().map(|mut stdin| {
        if let Input::Typed(bytes) = case.input {
            // A person types after the connection is up; 200 ms is plenty on loopback.
            thread::sleep(Duration::from_millis(200));
            stdin.write_all(bytes).expect("type into nc");
        }
        stdin
    });

    let (printed, all) = wait_for(&out, case.prints, ENDS_WITHIN);
    if !all {
        return Err(format!(
            "{what}: expected it to print {:?}, it printed {printed:?}",
            case.prints
        ));
    }
    if let Some(want) = case.server_prints {
        let (lines, found) = wait_for(&server_lines, &[want], WAIT);
        if !found {
            return Err(format!(
                "{what}: expected the server to print {want:?}; it printed {lines:?}"
            ));
        }
    }
    match case.ends {
        Ends::Exits => match run.exited_within(ENDS_WITHIN) {
            Some(Some(0)) => Ok(()),
            Some(code) => Err(format!("{what}: exited with status {code:?}, not 0")),
            None => Err(format!(
                "{what}: the page says it exits; it was still running after {ENDS_WITHIN:?}"
            )),
        },
        // It printed what it should; now it must still be there a while later.
        Ends::KeepsWaiting => match run.exited_within(STILL_RUNNING_AFTER) {
            None => Ok(()),
            Some(code) => Err(format!(
                "{what}: the page says it keeps waiting; it exited with status {code:?}"
            )),
        },
    }
}

#[test]
fn every_nc_command_in_the_book_does_what_its_page_says() {
    if !have_openbsd_nc() {
        return;
    }
    // Each case has its own server on its own port, so they run side by side.
    let failures: Vec<String> = thread::scope(|s| {
        let runs: Vec<_> = CASES.iter().map(|c| s.spawn(move || check(c))).collect();
        runs.into_iter()
            .filter_map(|r| r.join().expect("a case does not panic").err())
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Lesson 10's room: two people with `nc`, each in a terminal; a line typed in one appears in
/// the other.
#[test]
fn two_nc_clients_talk_through_the_lesson_10_room() {
    if !have_openbsd_nc() {
        return;
    }
    let page = "10-poll-chat.md";
    let shown = "nc 127.0.0.1 7010";
    assert!(
        page_text(page).contains(shown),
        "{page} no longer shows `{shown}`"
    );
    let (_server, addr, server_lines) = spawn_listening(
        command(
            env!("CARGO_BIN_EXE_10_poll_chat"),
            &["serve", "--addr", "127.0.0.1:0"],
        )
        .stderr(Stdio::null()),
        page,
    );
    let person = || {
        let mut run = Group::spawn(
            Command::new("bash")
                .args(["-c", &with_port(shown, addr.port())])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let out = lines_of(run.0.stdout.take().expect("stdout was piped above"));
        let stdin = run.0.stdin.take().expect("stdin was piped above");
        (run, out, stdin)
    };
    let (_ada, _, mut ada_types) = person();
    let (_bob, bob_sees, _bob_types) = person();
    // Both are in the room before anyone speaks.
    for who in ["first", "second"] {
        let (lines, found) = wait_for(&server_lines, &["joined"], WAIT);
        assert!(
            found,
            "the room did not print `joined` for the {who} nc: {lines:?}"
        );
    }
    ada_types
        .write_all(b"hello room\n")
        .expect("type into the first nc");
    let (seen, found) = wait_for(&bob_sees, &["hello room"], WAIT);
    assert!(found, "the second nc did not print the line: {seen:?}");
}
