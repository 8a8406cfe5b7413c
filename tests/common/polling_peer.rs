//! A raw Engine.IO long-polling peer: HTTP/1.1 requests written by hand on a plain TCP
//! connection, for the tests that must send what a real client never would. The response
//! head is parsed by the codec (`wire::http::parse_response`); this file keeps the bytes in
//! order, splits bodies into records, and bounds every wait by [`WAIT`].
//!
//! A held GET is the one thing a poll may legitimately not answer, so [`HttpConn::answer_within`]
//! tells "nothing yet" (`None`) from an answer; every other read panics if nothing comes.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use socklab::wire::engineio::RECORD_SEPARATOR;
use socklab::wire::http::{self, Response};

use super::{connect_raw, upgrade_request, WAIT};

/// The query of a long-polling handshake (no `sid` yet).
pub const POLLING: &str = "EIO=4&transport=polling";

/// One HTTP answer: the parsed head and the body.
#[derive(Debug)]
pub struct Answer {
    pub head: Response,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The body as text (the server's bodies are UTF-8: records, `ok`, JSON errors).
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }

    /// The body's records (`\x1e` between them).
    pub fn records(&self) -> Vec<String> {
        records(&self.text())
    }

    /// The names of the headers that start with `Access-Control-` (lowercase).
    pub fn cors(&self) -> Vec<String> {
        (self.head.headers.iter())
            .map(|(n, _)| n.to_ascii_lowercase())
            .filter(|n| n.starts_with("access-control-"))
            .collect()
    }
}

/// `ok` to a POST.
pub fn assert_ok(a: &Answer) {
    assert_eq!((a.status(), a.text().as_str()), (200, "ok"), "{a:?}");
}

/// The WebSocket upgrade request of the polling session `sid`.
pub fn sio_upgrade(sid: &str) -> String {
    upgrade_request(
        &format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
        "",
    )
}

/// Splits a polling body into its records.
pub fn records(body: &str) -> Vec<String> {
    body.split(RECORD_SEPARATOR).map(str::to_string).collect()
}

/// A request's bytes: `method /socket.io/?query`, `extra` header lines (each ending in
/// `\r\n`), a `Content-Length` when there is a body, then the body.
pub fn polling_request(method: &str, query: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let length = match (method, body.len()) {
        ("GET", 0) | ("OPTIONS", 0) => String::new(),
        (_, n) => format!("Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {n}\r\n"),
    };
    let mut bytes =
        format!("{method} /socket.io/?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n{length}{extra}\r\n")
            .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One HTTP connection (keep-alive: several requests may go one after the other).
pub struct HttpConn {
    pub stream: TcpStream,
    /// Bytes read and not yet taken as an answer.
    buf: Vec<u8>,
    /// The request line of the last request sent, for messages.
    last: String,
}

impl HttpConn {
    pub fn connect(addr: SocketAddr) -> HttpConn {
        HttpConn {
            stream: connect_raw(addr),
            buf: Vec::new(),
            last: String::new(),
        }
    }

    /// Sends raw bytes (a request, whole or in part).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to the server");
    }

    /// Sends one request (see [`polling_request`]) without reading its answer.
    pub fn send(&mut self, method: &str, query: &str, body: &[u8], extra: &str) {
        self.last = format!("{method} ?{query}");
        self.send_raw(&polling_request(method, query, body, extra));
    }

    /// Sends one request and reads its answer (within [`WAIT`]).
    pub fn request(&mut self, method: &str, query: &str, body: &[u8], extra: &str) -> Answer {
        self.send(method, query, body, extra);
        self.answer(&format!("{method} ?{query}"))
    }

    /// The next answer; panics if none comes within [`WAIT`] or the connection ends.
    pub fn answer(&mut self, what: &str) -> Answer {
        match self.answer_within(WAIT) {
            Some(a) => a,
            None => panic!("{what}: no answer within {WAIT:?}"),
        }
    }

    /// The next answer if one comes within `wait`; `None` if nothing (or only part of one)
    /// came by then: a held GET. Panics at end of file before a whole answer.
    pub fn answer_within(&mut self, wait: Duration) -> Option<Answer> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(head) = http::parse_response(&self.buf).expect("an HTTP/1.1 response") {
                let end = head.head_len + head.content_length;
                if self.buf.len() >= end {
                    let rest = self.buf.split_off(end);
                    let body = self.buf.split_off(head.head_len);
                    self.buf = rest;
                    return Some(Answer { head, body });
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("SO_RCVTIMEO");
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!(
                    "{}: end of file before a whole answer: {:?}",
                    self.last, self.buf
                ),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("read from the server: {e}"),
            }
        }
    }

    /// Whether the server closes this connection (end of file or a reset) within [`WAIT`],
    /// with nothing more said.
    pub fn closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(WAIT))
            .expect("SO_RCVTIMEO");
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return self.buf.is_empty(),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return self.buf.is_empty(),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return false, // still open after WAIT
            }
        }
    }
}

/// One long-polling session, each request on a new connection (as a browser may do).
pub struct PollingPeer {
    pub addr: SocketAddr,
    pub sid: String,
    /// The open packet's JSON.
    pub open: Value,
}

impl PollingPeer {
    /// The handshake: `GET ?EIO=4&transport=polling`, answered `0{...}`.
    pub fn open(addr: SocketAddr) -> PollingPeer {
        let a = HttpConn::connect(addr).request("GET", POLLING, b"", "");
        assert_eq!(a.status(), 200, "the handshake: {a:?}");
        let text = a.text();
        let json = text.strip_prefix('0').expect("an Engine.IO open packet");
        let open: Value = serde_json::from_str(json).expect("the open packet's JSON");
        let sid = open["sid"]
            .as_str()
            .expect("the open packet's sid")
            .to_string();
        PollingPeer { addr, sid, open }
    }

    /// [`open`](PollingPeer::open), then CONNECT to `/` (`POST 40`) and the reply from the
    /// next poll: the peer and the socket id. A ping that came with the reply (a server
    /// with a short pingInterval) is answered.
    pub fn connect(addr: SocketAddr) -> (PollingPeer, String) {
        let peer = PollingPeer::open(addr);
        assert_eq!(peer.post(b"40").text(), "ok");
        let records = peer.get().records();
        for r in &records[1..] {
            assert_eq!(r, "2", "after the CONNECT reply: {records:?}");
            assert_eq!(peer.post(b"3").text(), "ok");
        }
        let reply = &records[0];
        let json = reply
            .strip_prefix("40")
            .unwrap_or_else(|| panic!("expected 40{{...}}, got {reply}"));
        let data: Value = serde_json::from_str(json).expect("the CONNECT reply's JSON");
        let sid = data["sid"].as_str().expect("the CONNECT reply's sid");
        (peer, sid.to_string())
    }

    /// This session's query.
    pub fn query(&self) -> String {
        format!("{POLLING}&sid={}", self.sid)
    }

    /// A poll on a new connection, answered within [`WAIT`].
    pub fn get(&self) -> Answer {
        HttpConn::connect(self.addr).request("GET", &self.query(), b"", "")
    }

    /// A poll on a new connection, not waited for: the connection, to read its answer later.
    pub fn hold(&self) -> HttpConn {
        let mut conn = HttpConn::connect(self.addr);
        conn.send("GET", &self.query(), b"", "");
        conn
    }

    /// A POST of `body` on a new connection, answered within [`WAIT`].
    pub fn post(&self, body: &[u8]) -> Answer {
        HttpConn::connect(self.addr).request("POST", &self.query(), body, "")
    }

    /// Polls until a payload holds the record `want` (within [`WAIT`]), answering every ping
    /// on the way, one in the same payload as `want` included (left unanswered, it would
    /// close the session at its ping timeout). Any other record fails the test.
    pub fn poll_for(&self, want: &str, what: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "{what}: no {want} in {WAIT:?}");
            let a = self.get();
            assert_eq!(a.status(), 200, "{what}: {a:?}");
            let mut seen = false;
            for r in a.records() {
                match r {
                    r if r == want => seen = true,
                    r if r == "2" => assert_ok(&self.post(b"3")),
                    r => panic!("{what}: expected {want}, got {r}"),
                }
            }
            if seen {
                return;
            }
        }
    }
}
