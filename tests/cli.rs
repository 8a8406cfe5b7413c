//! The binaries as a learner runs them from a shell: real processes, real sockets on
//! 127.0.0.1, servers on port 0.
//!
//! - `help_*`: every lesson binary documents `--trace`, and every `serve`/`client` its
//!   default address.
//! - `error_*`: the failures a learner meets, each with its one-line message and exit code,
//!   never a panic.
//! - `cli_*`: the `socklab` command line (`serve`, `chat`, `watch`, `lessons`), its exit
//!   codes, and SIGTERM.
//!
//! Nothing waits without a limit (`WAIT` and `EXIT_WAIT` from tests/common, socket timeouts);
//! every child process is killed by its guard (`Reaper`) when a test ends, also when an
//! assertion fails. No assertion is about speed.

mod common;
use common::{assert_no_panic, has_line, run, Input, Proc, ACCEPT, CONNECT, ECHO, LESSONS};

use std::net::{SocketAddr, TcpListener};

const SOCKLAB: &str = env!("CARGO_BIN_EXE_socklab");

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

// ---------------------------------------------------------------------------------------------
// Lessons 00 to 08: --help
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
// Lessons 00 to 08: error paths
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

/// Lesson binaries declared in Cargo.toml (names that start with two digits).
fn declared_lessons() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cargo = std::fs::read_to_string(path).expect("read Cargo.toml");
    let names: Vec<String> = cargo
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \"")?.strip_suffix('"'))
        .filter(|n| n.len() > 2 && n.as_bytes()[..2].iter().all(u8::is_ascii_digit))
        .map(str::to_string)
        .collect();
    assert!(
        names.len() >= 16,
        "too few lessons in Cargo.toml: {names:?}"
    );
    names
}

// ---------------------------------------------------------------------------------------------
// The socklab command line
// ---------------------------------------------------------------------------------------------

#[test]
fn cli_serve_chat_watch_and_sigterm() {
    let mut server = Proc::spawn(
        SOCKLAB,
        &["serve", "--addr", "127.0.0.1:0", "--interval-ms", "20"],
        Input::Null,
    );
    let addr = server.listening_on().to_string();

    // The watchers only need the feed; they run while the chat goes on.
    let watch = Proc::spawn(
        SOCKLAB,
        &["watch", "--match", "1", "--count", "3", "--addr", &addr],
        Input::Null,
    );
    let no_match = Proc::spawn(
        SOCKLAB,
        &["watch", "--match", "99", "--addr", &addr],
        Input::Null,
    );

    let mut ada = Proc::spawn(
        SOCKLAB,
        &["chat", "--name", "ada", "--addr", &addr],
        Input::Open,
    );
    ada.expect_line("`connected as ada`", |l| l.starts_with("connected as ada"));
    // The same name while ada is connected. Its stdin stays open: only the refusal ends it.
    let dup = Proc::spawn(
        SOCKLAB,
        &["chat", "--name", "ada", "--addr", &addr],
        Input::Open,
    );
    let bob = Proc::spawn(
        SOCKLAB,
        &["chat", "--name", "bob", "--addr", &addr],
        Input::Bytes(b"hello @ada\n/who\n"),
    );

    let watch = watch.finish();
    assert_eq!(watch.code(), Some(0), "{}", watch.describe());
    assert!(
        watch.stdout.len() == 4
            && watch.stdout[0].starts_with("watching match 1")
            && watch.stdout[1..].iter().all(|l| l.starts_with("match 1:")),
        "a `watching` line, then 3 scores\n{}",
        watch.describe()
    );
    let no_match = no_match.finish();
    assert_eq!(no_match.code(), Some(1), "{}", no_match.describe());
    assert!(
        no_match.stderr.contains("no match 99"),
        "{}",
        no_match.describe()
    );
    let dup = dup.finish();
    assert_eq!(dup.code(), Some(1), "{}", dup.describe());
    assert!(dup.stderr.contains("taken"), "{}", dup.describe());

    let bob = bob.finish();
    assert_eq!(bob.code(), Some(0), "{}", bob.describe());
    assert!(
        bob.stdout.iter().any(|l| l.starts_with("connected as bob")),
        "bob's input was piped and closed at once; he must still connect and send it\n{}",
        bob.describe()
    );
    assert!(
        bob.has_line("* in lobby: ada, bob"),
        "/who lists both\n{}",
        bob.describe()
    );
    ada.expect_line("with bob's message", |l| l == "[lobby] bob: hello @ada");
    ada.expect_line("with the mention", |l| {
        l == "(@ from bob in lobby) hello @ada"
    });
    ada.close_stdin();
    let ada = ada.finish();
    assert_eq!(ada.code(), Some(0), "{}", ada.describe());

    server.sigterm();
    let server = server.finish();
    assert_eq!(server.code(), Some(0), "{}", server.describe());
    assert!(server.has_line("stopped"), "{}", server.describe());
}

#[test]
fn cli_lessons_lists_every_lesson_in_cargo_toml() {
    let lessons = Proc::spawn(SOCKLAB, &["lessons"], Input::Null).finish();
    assert_eq!(lessons.code(), Some(0), "{}", lessons.describe());
    for name in declared_lessons() {
        let shown = format!("({name})");
        assert!(
            lessons.stdout.iter().any(|l| l.contains(&shown)),
            "`socklab lessons` does not list {name}\n{}",
            lessons.describe()
        );
    }
    // A table: the command column starts at the same place on every row, however long the
    // description before it.
    let columns: Vec<usize> = lessons
        .stdout
        .iter()
        .filter_map(|l| l.find("make lesson"))
        .collect();
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "`socklab lessons` rows do not line up: {columns:?}\n{}",
        lessons.describe()
    );
}
