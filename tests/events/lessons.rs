//! The event lessons (14 and 15) as real processes: their demonstrations, and their client
//! and server processes talking to each other and to a library client.

use super::*;

#[test]
fn lesson_14_demo_shows_the_ack_and_the_attachment() {
    let out = Proc::spawn(EVENTS_14, &[], Input::Null).finish();
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout
            .iter()
            .any(|l| l.ends_with("ACK / id=1 [\"hello, ada\"]")),
        "{}",
        out.describe()
    );
    assert!(
        out.has_line("client -> server: EVENT / \"upload\" id=2 [] +1 attachment (4 bytes)"),
        "{}",
        out.describe()
    );
    // The hexdump under that line is the real frame: it decodes to the same event, with
    // the 4 raw bytes as its attachment.
    let at = out
        .stdout
        .iter()
        .position(|l| l.contains("EVENT / \"upload\""))
        .expect("checked above");
    let frame: Vec<u8> = out.stdout[at + 1..]
        .iter()
        .take_while(|l| l.starts_with("  ") && l.as_bytes().get(6) == Some(&b':'))
        .flat_map(|l| {
            // `  0010: 6f 61 ...  text`: 16 bytes of hex in the 47 columns after the offset.
            let hex = l.get(8..).unwrap_or("");
            let hex = &hex[..hex.len().min(47)];
            hex.split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
                .collect::<Vec<u8>>()
        })
        .collect();
    assert!(
        frame.len() > HEADER_LEN,
        "no hexdump after the upload line\n{}",
        out.describe()
    );
    match packet::decode(&frame[HEADER_LEN..], &Limits::default()) {
        Ok(Packet::Event {
            name, attachments, ..
        }) => {
            assert_eq!(name, "upload");
            assert_eq!(attachments, [vec![0xde, 0xad, 0xbe, 0xef]]);
        }
        other => panic!("the hexdump is not the upload event: {other:?}"),
    }
}

#[test]
fn lesson_14_client_and_server_processes() {
    let mut server = Proc::spawn(EVENTS_14, &["serve", "--addr", "127.0.0.1:0"], Input::Null);
    let addr = server.listening_on().to_string();
    let client = Proc::spawn(
        EVENTS_14,
        &["client", "--addr", &addr, "--name", "bob"],
        Input::Bytes(b"abc"),
    )
    .finish();
    assert_eq!(client.code(), Some(0), "{}", client.describe());
    assert!(
        client.has_line("greet acknowledged: [\"hello, bob\"]"),
        "{}",
        client.describe()
    );
    assert!(
        client.has_line("upload acknowledged: [3]"),
        "{}",
        client.describe()
    );
    server.expect_line("with the server's ack", |l| {
        l.trim() == "(the server's ack callback got [\"yes\"])"
    });
    server.sigterm();
    let server = server.finish();
    assert_eq!(server.code(), Some(0), "{}", server.describe());
    assert!(server.has_line("stopped cleanly"), "{}", server.describe());
}

#[test]
fn lesson_15_demo_delivers_the_union_once() {
    let out = Proc::spawn(ROOMS_15, &[], Input::Null).finish();
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    for who in ["alice", "bob", "carol"] {
        let line = format!("{who} got flash [\"1-0\"]");
        let n = out.stdout.iter().filter(|l| l.trim() == line).count();
        assert_eq!(n, 1, "{line}\n{}", out.describe());
    }
}

#[test]
fn lesson_15_a_line_from_one_client_reaches_the_other() {
    let mut server = Proc::spawn(ROOMS_15, &["serve", "--addr", "127.0.0.1:0"], Input::Null);
    let addr = server.listening_on();
    let a = addr.to_string();

    // A probe in the room shows when ann has joined: her line reaches it only then.
    let mut probe = Peer::connect(addr);
    let slot = probe.emit_ack("join", vec![json!("news")], vec![], WAIT);
    probe.wait_ack(&slot).expect("the probe joins news");
    let mut ann = Proc::spawn(
        ROOMS_15,
        &["client", "--addr", &a, "--name", "ann", "--room", "news"],
        Input::Open,
    );
    ann.write_stdin("ready\n");
    let inbox = probe.inbox.clone();
    probe.run_until("ann's line reaches the probe", move |_| {
        inbox
            .borrow()
            .iter()
            .any(|g| g.name == "said" && g.args == [json!("ann"), json!("ready")])
    });

    let ben = Proc::spawn(
        ROOMS_15,
        &["client", "--addr", &a, "--name", "ben", "--room", "news"],
        Input::Bytes(b"hi from ben\n"),
    )
    .finish();
    assert_eq!(ben.code(), Some(0), "{}", ben.describe());
    ann.expect_line("with ben's line", |l| l == "ben: hi from ben");
    ann.close_stdin();
    let ann = ann.finish();
    assert_eq!(ann.code(), Some(0), "{}", ann.describe());
    assert_eq!(
        ann.stdout,
        ["ben: hi from ben"],
        "ann prints what ben typed, and nothing else\n{}",
        ann.describe()
    );

    server.sigterm();
    let server = server.finish();
    assert_eq!(server.code(), Some(0), "{}", server.describe());
    drop(probe);
}
