//! Each lesson's demonstration (no arguments, stdin from /dev/null) exits 0, narrates on stdout,
//! keeps stderr empty unless `--trace` is given, and states the fact the lesson is about.

use super::*;

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
