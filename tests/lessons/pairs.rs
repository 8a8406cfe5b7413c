//! A `serve` process and a `client` process of each lesson talking to each other.

use super::*;

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
