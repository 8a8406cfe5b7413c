//! The HTTP/1.1 server of lesson 18 (`src/transport/http.rs`) on a real loop and real
//! sockets: keep-alive, pipelining, requests cut anywhere, and the refusals (400, 413, 431),
//! each followed by the server's end of file.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{Served, WAIT};
use socklab::transport::http::{HttpServer, Limits, Reply};
use socklab::wire::http;

/// An HTTP server with small limits (a 256-byte head, a 100-byte body).
fn start() -> Served {
    Served::start(|| {
        let limits = Limits {
            max_head: 256,
            max_body: 100,
        };
        HttpServer::new(limits, |req, body| match req.path.as_str() {
            "/" => Reply::text(200, "hello"),
            "/echo" => Reply {
                status: 200,
                headers: Vec::new(),
                body: body.to_vec(),
            },
            _ => Reply::text(404, "no"),
        })
    })
}

fn connect(server: &Served) -> TcpStream {
    let s = TcpStream::connect(server.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    s
}

/// Reads one whole response: its status, headers and body.
fn response(s: &mut TcpStream, kept: &mut Vec<u8>) -> (u16, http::Response, Vec<u8>) {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    loop {
        if let Some(res) = http::parse_response(kept).expect("an HTTP response") {
            let whole = res.head_len + res.content_length;
            if kept.len() >= whole {
                let body = kept[res.head_len..whole].to_vec();
                kept.drain(..whole);
                return (res.status, res, body);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no whole response within {WAIT:?}"
        );
        let n = s.read(&mut buf).expect("read a response");
        assert!(n > 0, "end of file inside a response: {kept:?}");
        kept.extend_from_slice(&buf[..n]);
    }
}

/// The server's end of file comes next (nothing more is sent).
fn end_of_file(s: &mut TcpStream, kept: &[u8]) {
    assert!(kept.is_empty(), "bytes after the last response: {kept:?}");
    let mut buf = [0u8; 64];
    assert_eq!(s.read(&mut buf).expect("read to the end"), 0, "end of file");
}

#[test]
fn keep_alive_then_three_pipelined_requests_answered_in_order() {
    let server = start();
    let mut s = connect(&server);
    let mut kept = Vec::new();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let (status, res, body) = response(&mut s, &mut kept);
    assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(
        res.header("connection"),
        None,
        "kept alive: no Connection: close"
    );
    s.write_all(
        b"GET / HTTP/1.1\r\n\r\nPOST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
          GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let answers: Vec<(u16, Vec<u8>)> = (0..3)
        .map(|_| {
            let (st, _, b) = response(&mut s, &mut kept);
            (st, b)
        })
        .collect();
    assert_eq!(
        answers,
        [
            (200, b"hello".to_vec()),
            (200, b"abc".to_vec()),
            (404, b"no".to_vec())
        ]
    );
    end_of_file(&mut s, &kept);
}

#[test]
fn a_request_cut_anywhere_is_answered_once_whole() {
    let server = start();
    let request = b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    for cut in [1, 10, 20, 30, 40, request.len() - 5, request.len() - 1] {
        let mut s = connect(&server);
        s.write_all(&request[..cut]).unwrap();
        thread::sleep(Duration::from_millis(30)); // a turn sees the first part alone
        s.write_all(&request[cut..]).unwrap();
        let mut kept = Vec::new();
        let (status, _, body) = response(&mut s, &mut kept);
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"hello"[..]),
            "cut at {cut}"
        );
    }
}

#[test]
fn refusals_are_answered_then_closed() {
    let server = start();
    let cases: [(&[u8], u16); 4] = [
        // A head over 256 bytes with no blank line.
        (&[b'G'; 300], 431),
        // A body over 100 bytes, refused from its header: no body is sent.
        (b"POST /echo HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413),
        // Not HTTP: the first bytes of a TLS handshake.
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: lots\r\n\r\n", 400),
    ];
    for (bytes, want) in cases {
        let mut s = connect(&server);
        let head_only = b"GET / HTTP/1.1\r\nX: ";
        let bytes: Vec<u8> = if want == 431 {
            [&head_only[..], bytes].concat()
        } else {
            bytes.to_vec()
        };
        s.write_all(&bytes).unwrap();
        let mut kept = Vec::new();
        let (status, res, _) = response(&mut s, &mut kept);
        assert_eq!(status, want, "{:?}", String::from_utf8_lossy(&bytes));
        assert_eq!(res.header("connection"), Some("close"));
        end_of_file(&mut s, &kept);
    }
}

#[test]
fn http_1_0_closes_after_the_answer_unless_asked_to_keep_alive() {
    let server = start();
    let mut s = connect(&server);
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut kept = Vec::new();
    let (status, res, _) = response(&mut s, &mut kept);
    assert_eq!((status, res.header("connection")), (200, Some("close")));
    end_of_file(&mut s, &kept);

    let mut s = connect(&server);
    s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let (first, res, _) = response(&mut s, &mut kept);
    assert_eq!((first, res.header("connection")), (200, None), "kept alive");
    let (second, res, _) = response(&mut s, &mut kept);
    assert_eq!((second, res.header("connection")), (200, Some("close")));
    end_of_file(&mut s, &kept);
}
