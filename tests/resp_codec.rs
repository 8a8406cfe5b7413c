//! The RESP2 codec on bytes alone: every reply type, every split point of a stream of
//! replies, random bytes, and the limits refused from a header before its body is waited for.

use proptest::prelude::*;
use socklab::wire::resp::{encode_command, encode_reply, Decoder, Limits, Reply, RespError};

fn decode_all(d: &Decoder, mut buf: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    while let Some((r, used)) = d.decode(buf).expect("valid replies") {
        out.push(r);
        buf = &buf[used..];
    }
    assert!(buf.is_empty(), "bytes left over: {buf:?}");
    out
}

fn one(bytes: &[u8]) -> Reply {
    let (r, used) = Decoder::default()
        .decode(bytes)
        .unwrap()
        .expect("a whole reply");
    assert_eq!(used, bytes.len());
    r
}

#[test]
fn a_command_is_an_array_of_bulk_strings() {
    let mut out = Vec::new();
    encode_command(["SET", "k", "v"], &mut out);
    assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    // Binary-safe: CRLF and NUL inside an argument travel behind its length.
    out.clear();
    encode_command([&b"SET"[..], b"a\r\nb", b"\0"], &mut out);
    assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n$1\r\n\0\r\n");
}

#[test]
fn every_reply_type() {
    assert_eq!(one(b"+OK\r\n"), Reply::Simple("OK".into()));
    assert_eq!(
        one(b"-ERR unknown command\r\n"),
        Reply::Error("ERR unknown command".into())
    );
    assert_eq!(one(b":42\r\n"), Reply::Integer(42));
    assert_eq!(one(b":-7\r\n"), Reply::Integer(-7));
    assert_eq!(one(b":-9223372036854775808\r\n"), Reply::Integer(i64::MIN));
    assert_eq!(one(b"$5\r\nhello\r\n"), Reply::Bulk(b"hello".to_vec()));
    assert_eq!(one(b"$0\r\n\r\n"), Reply::Bulk(Vec::new()));
    assert_eq!(one(b"$4\r\na\r\nb\r\n"), Reply::Bulk(b"a\r\nb".to_vec()));
    assert_eq!(one(b"$-1\r\n"), Reply::Nil);
    assert_eq!(one(b"*-1\r\n"), Reply::Nil);
    assert_eq!(one(b"*0\r\n"), Reply::Array(vec![]));
    assert_eq!(
        one(b"*2\r\n*2\r\n:1\r\n$1\r\nx\r\n*1\r\n$-1\r\n"),
        Reply::Array(vec![
            Reply::Array(vec![Reply::Integer(1), Reply::Bulk(b"x".to_vec())]),
            Reply::Array(vec![Reply::Nil]),
        ])
    );
}

#[test]
fn an_incomplete_reply_is_none_and_keeps_its_bytes() {
    let d = Decoder::default();
    for partial in [
        &b""[..],
        b"+OK",
        b"+OK\r",
        b"$5\r\nhel",
        b"$5\r\nhello\r",
        b"*2\r\n:1\r\n",
    ] {
        assert_eq!(d.decode(partial), Ok(None), "{partial:?}");
    }
}

#[test]
fn bad_input_is_an_error() {
    let d = Decoder::default();
    let cases: [(&[u8], RespError); 8] = [
        (b"?x\r\n", RespError::UnknownType(b'?')),
        // RESP3 types: never sent to a connection that did not say HELLO 3.
        (b"%1\r\n", RespError::UnknownType(b'%')),
        (b"_\r\n", RespError::UnknownType(b'_')),
        (b"\r\n", RespError::UnknownType(b'\r')),
        (b":12a\r\n", RespError::BadNumber),
        (b":99999999999999999999\r\n", RespError::BadNumber),
        (b"$-2\r\n", RespError::BadNumber),
        (b"$3\r\nabcde", RespError::BadTerminator),
    ];
    for (bytes, err) in cases {
        assert_eq!(d.decode(bytes), Err(err), "{bytes:?}");
    }
    assert_eq!(d.decode(b"$\r\n"), Err(RespError::BadNumber));
    assert_eq!(d.decode(b"*-\r\n"), Err(RespError::BadNumber));
}

#[test]
fn limits_are_refused_from_the_header_before_the_body_arrives() {
    let d = Decoder::new(Limits {
        max_bulk: 10,
        max_elements: 3,
        max_depth: 2,
        max_line: 16,
    });
    // Only the header is there: the refusal does not wait for the announced bytes.
    assert_eq!(
        d.decode(b"$11\r\n"),
        Err(RespError::BulkTooLong { len: 11, max: 10 })
    );
    // (Its header passes the 16-byte line limit, which is checked first.)
    assert_eq!(
        d.decode(b"$9223372036854775807\r\n"),
        Err(RespError::LineTooLong { max: 16 })
    );
    let wide = Decoder::new(Limits {
        max_line: 64,
        ..d.limits()
    });
    assert_eq!(
        wide.decode(b"$9223372036854775807\r\n"),
        Err(RespError::BulkTooLong {
            len: i64::MAX as u64,
            max: 10
        })
    );
    assert_eq!(
        d.decode(b"*4\r\n"),
        Err(RespError::TooManyElements { len: 4, max: 3 })
    );
    assert!(d.decode(b"$10\r\n0123456789\r\n").unwrap().is_some());
    // Depth 2 is allowed, depth 3 is not, even empty.
    assert!(d.decode(b"*1\r\n*1\r\n:1\r\n").unwrap().is_some());
    assert_eq!(
        d.decode(b"*1\r\n*1\r\n*0\r\n"),
        Err(RespError::TooDeep { max: 2 })
    );
    // A line that never ends is refused once it passes the limit, CRLF or not.
    assert_eq!(d.decode(&[b'+'; 17]), Ok(None));
    assert_eq!(
        d.decode(&[b'+'; 18]),
        Err(RespError::LineTooLong { max: 16 })
    );
    let mut exact = vec![b'+'; 16];
    exact.extend_from_slice(b"\r\n");
    assert!(d.decode(&exact).unwrap().is_some());
}

#[test]
fn a_huge_announced_array_reserves_nothing_it_has_not_seen() {
    // One million elements announced, three bytes present: incomplete, and cheap.
    let d = Decoder::new(Limits {
        max_elements: 1 << 20,
        ..Limits::default()
    });
    assert_eq!(d.decode(b"*1000000\r\n:1\r\n"), Ok(None));
}

fn reply() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        "[a-zA-Z0-9 ]{0,12}".prop_map(Reply::Simple),
        "ERR [a-z ]{0,12}".prop_map(Reply::Error),
        any::<i64>().prop_map(Reply::Integer),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Reply::Bulk),
        Just(Reply::Nil),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        proptest::collection::vec(inner, 0..5).prop_map(Reply::Array)
    })
}

proptest! {
    /// A stream of replies cut at any point decodes to the same replies: the first part
    /// gives what it holds whole, and the rest is decoded after it.
    #[test]
    fn every_split_point(replies in proptest::collection::vec(reply(), 1..6)) {
        let d = Decoder::default();
        let mut bytes = Vec::new();
        for r in &replies {
            encode_reply(r, &mut bytes);
        }
        prop_assert_eq!(&decode_all(&d, &bytes), &replies);
        for cut in 0..=bytes.len() {
            // Feed like a connection: a buffer that grows, drained by whole replies.
            let mut buf: Vec<u8> = Vec::new();
            let mut got = Vec::new();
            for chunk in [&bytes[..cut], &bytes[cut..]] {
                buf.extend_from_slice(chunk);
                while let Some((r, used)) = d.decode(&buf).unwrap() {
                    got.push(r);
                    buf.drain(..used);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(&got, &replies);
        }
    }

    /// Random bytes give a reply, an error or `None`; never a panic, and never a `used`
    /// past the buffer.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let d = Decoder::new(Limits { max_bulk: 64, max_elements: 8, max_depth: 3, max_line: 32 });
        if let Ok(Some((_, used))) = d.decode(&bytes) {
            prop_assert!(used <= bytes.len());
        }
    }

    /// Random bytes that look like RESP (its type bytes, digits, CRLF) reach deeper paths.
    #[test]
    fn resp_shaped_noise_never_panics(
        bytes in proptest::collection::vec(
            prop_oneof![Just(b'*'), Just(b'$'), Just(b':'), Just(b'+'), Just(b'-'),
                        Just(b'\r'), Just(b'\n'), Just(b'1'), Just(b'0'), Just(b'9')],
            0..128)
    ) {
        let d = Decoder::new(Limits { max_bulk: 64, max_elements: 8, max_depth: 3, max_line: 32 });
        if let Ok(Some((_, used))) = d.decode(&bytes) {
            prop_assert!(used <= bytes.len());
        }
    }

    /// A command's encoding decodes as the array of bulks it is.
    #[test]
    fn commands_decode_as_arrays_of_bulks(
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..6)
    ) {
        let mut bytes = Vec::new();
        encode_command(&args, &mut bytes);
        let want = Reply::Array(args.iter().cloned().map(Reply::Bulk).collect());
        prop_assert_eq!(one(&bytes), want);
    }
}
