//! The HTTP/1.1 server of lesson 18 (`src/transport/http.rs`) on a real loop and real
//! sockets: keep-alive, pipelining, requests cut anywhere, and the refusals (400, 413, 431),
//! each followed by the server's end of file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use socklab::event_loop::{Config, EventLoop};
use socklab::transport::http::{HttpServer, Limits, Reply};
use socklab::wire::http;

const WAIT: Duration = Duration::from_secs(10);

/// An HTTP server on a loop of its own thread, with small limits (a 256-byte head, a
/// 100-byte body); stopped and joined when dropped.
struct Served {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Served {
    fn start() -> Served {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let limits = Limits {
                max_head: 256,
                max_body: 100,
            };
            let server = HttpServer::new(limits, |req, body| match req.path.as_str() {
                "/" => Reply::text(200, "hello"),
                "/echo" => Reply {
                    status: 200,
                    headers: Vec::new(),
                    body: body.to_vec(),
                },
                _ => Reply::text(404, "no"),
            });
            let mut ev = EventLoop::new(server, Config::default()).expect("a loop");
            let addr = ev
                .ctx()
                .listen("127.0.0.1:0".parse().unwrap())
                .expect("listen");
            tx.send(addr).expect("the test waits");
            while !flag.load(Ordering::SeqCst) {
                ev.turn(Some(Duration::from_millis(10))).expect("a turn");
            }
        });
        let addr = rx.recv_timeout(WAIT).expect("the server listens");
        Served {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
        s
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
    let server = Served::start();
    let mut s = server.connect();
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
    let server = Served::start();
    let request = b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    for cut in [1, 10, 20, 30, 40, request.len() - 5, request.len() - 1] {
        let mut s = server.connect();
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
    let server = Served::start();
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
        let mut s = server.connect();
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
    let server = Served::start();
    let mut s = server.connect();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut kept = Vec::new();
    let (status, res, _) = response(&mut s, &mut kept);
    assert_eq!((status, res.header("connection")), (200, Some("close")));
    end_of_file(&mut s, &kept);

    let mut s = server.connect();
    s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let (first, res, _) = response(&mut s, &mut kept);
    assert_eq!((first, res.header("connection")), (200, None), "kept alive");
    let (second, res, _) = response(&mut s, &mut kept);
    assert_eq!((second, res.header("connection")), (200, Some("close")));
    end_of_file(&mut s, &kept);
}
