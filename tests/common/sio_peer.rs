//! A raw Socket.IO peer: a plain TCP client that speaks the upgrade, WebSocket frames,
//! Engine.IO and Socket.IO by hand, for the tests that must send what a real client never
//! would. The codec does the framing (`wire::websocket`, a client's `Decoder`, masked
//! frames out) and the HTTP parsing (`wire::http::parse_response`); this file only keeps
//! the bytes in order and bounds every wait by [`WAIT`].

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use serde_json::Value;
use socklab::wire::http::{self, Response};
use socklab::wire::websocket::{self, Decoder, Message, Opcode, Role};

use super::{connect_raw, WAIT};

/// The key of RFC 6455's own example (section 1.3); its accept value is
/// `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The masking key of every frame a peer sends: the RFC's example key (5.7). The mask is
/// not secrecy, so a fixed one tests the server's unmasking as well as a random one would.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The largest message a test peer accepts from the server (the server's frames are small).
const MAX_MESSAGE: usize = 16 << 20;

/// An upgrade request for `target` (path and query) with `extra` header lines (each ending
/// in `\r\n`) before the blank line.
pub fn upgrade_request(target: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// The request a socket.io-client 4 sends over WebSocket.
pub fn socketio_request() -> String {
    upgrade_request("/socket.io/?EIO=4&transport=websocket", "")
}

/// How a connection ended, seen from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A close frame (its code and reason; `None` for an empty one), then end of file.
    Close(Option<(u16, String)>),
    /// End of file (or a reset) with no close frame before it.
    Eof,
}

/// One Socket.IO connection, raw.
pub struct SioPeer {
    pub stream: TcpStream,
    decoder: Decoder,
    /// Bytes read and not yet decoded.
    buf: Vec<u8>,
    /// Messages decoded and not yet taken.
    ready: std::collections::VecDeque<Message>,
}

/// Sends `request` on a new connection to `addr` and reads the response's head and body.
/// The stream and whatever followed the body (the first WebSocket frames) come back too.
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> (TcpStream, Response, Vec<u8>, Vec<u8>) {
    let mut stream = connect_raw(addr);
    stream.write_all(request).expect("send the request");
    let deadline = Instant::now() + WAIT;
    let mut buf = Vec::new();
    let res = loop {
        assert!(
            Instant::now() < deadline,
            "no response head within {WAIT:?}"
        );
        if let Some(res) = http::parse_response(&buf).expect("an HTTP/1.1 response") {
            break res;
        }
        let n = read_some(&mut stream, &mut buf);
        assert!(n > 0, "end of file before the response head: {buf:?}");
    };
    while buf.len() < res.head_len + res.content_length {
        assert!(
            Instant::now() < deadline,
            "no response body within {WAIT:?}"
        );
        let n = read_some(&mut stream, &mut buf);
        assert!(n > 0, "end of file inside the response body");
    }
    let rest = buf.split_off(res.head_len + res.content_length);
    let body = buf.split_off(res.head_len);
    (stream, res, body, rest)
}

/// One read into `buf`: the bytes read, 0 at end of file or on a reset.
fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return 0,
            Err(e) => panic!("read from the server: {e}"),
        }
    }
}

impl SioPeer {
    /// Upgrades a new connection with `request` (sent with [`SAMPLE_KEY`]): checks the `101`
    /// and its accept key. The Engine.IO open packet is not read yet.
    pub fn upgrade_with(addr: SocketAddr, request: &str) -> (SioPeer, Response) {
        let (stream, res, body, rest) = http_exchange(addr, request.as_bytes());
        assert_eq!(res.status, 101, "the upgrade is accepted: {res:?} {body:?}");
        assert_eq!(
            res.header("sec-websocket-accept"),
            Some(http::websocket_accept(SAMPLE_KEY).as_str()),
        );
        let peer = SioPeer {
            stream,
            decoder: Decoder::new(Role::Client, MAX_MESSAGE),
            buf: rest,
            ready: Default::default(),
        };
        (peer, res)
    }

    /// Upgrades with a socket.io-client's request and reads the open packet: the peer and
    /// the open packet's JSON.
    pub fn open(addr: SocketAddr) -> (SioPeer, Value) {
        let (mut peer, _) = SioPeer::upgrade_with(addr, &socketio_request());
        let open = peer.expect_text("the open packet");
        let json = open.strip_prefix('0').expect("an Engine.IO open packet");
        let data = serde_json::from_str(json).expect("the open packet's JSON");
        (peer, data)
    }

    /// [`open`](SioPeer::open), then CONNECT to `ns` (`/` or `/name`) with `auth`: the peer
    /// and the socket id the server gave. Panics on anything but the CONNECT reply.
    pub fn connect(addr: SocketAddr, ns: &str, auth: Option<&Value>) -> (SioPeer, String) {
        let (mut peer, _) = SioPeer::open(addr);
        let reply = peer.join(ns, auth);
        let sid = reply["sid"].as_str().expect("the CONNECT reply's sid");
        (peer, sid.to_string())
    }

    /// Sends CONNECT to `ns` with `auth` and returns the reply's JSON; panics on anything
    /// but `40[ns,]{...}`.
    pub fn join(&mut self, ns: &str, auth: Option<&Value>) -> Value {
        let auth = auth.map(Value::to_string).unwrap_or_default();
        self.send_text(&format!("40{}{auth}", ns_prefix(ns)));
        let reply = self.expect_text("the CONNECT reply");
        let head = format!("40{}", ns_prefix(ns));
        let json = reply
            .strip_prefix(&head)
            .unwrap_or_else(|| panic!("expected {head}{{...}}, got {reply}"));
        serde_json::from_str(json).expect("the CONNECT reply's JSON")
    }

    /// Sends raw bytes (any frame, well-formed or not).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to the server");
    }

    /// Sends one masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: Opcode, payload: &[u8]) {
        let mut out = Vec::new();
        websocket::encode_frame(fin, opcode, payload, Some(MASK), &mut out);
        self.send_raw(&out);
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(true, Opcode::Text, text.as_bytes());
    }

    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.send_frame(true, Opcode::Binary, bytes);
    }

    /// The next message or control frame; `None` at end of file (or a reset). Panics on a
    /// frame that breaks the rules for a server's frames, or if nothing comes within WAIT.
    pub fn next(&mut self) -> Option<Message> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(m) = self.ready.pop_front() {
                return Some(m);
            }
            let mut broken = None;
            let ready = &mut self.ready;
            let used = self.decoder.decode(&self.buf, |m| match m {
                Ok(m) => {
                    ready.push_back(m);
                    true
                }
                Err(e) => {
                    broken = Some(e);
                    false
                }
            });
            self.buf.drain(..used);
            if let Some(e) = broken {
                panic!("the server sent a broken frame: {e}");
            }
            if !self.ready.is_empty() {
                continue;
            }
            assert!(
                Instant::now() < deadline,
                "nothing from the server in {WAIT:?}"
            );
            if read_some(&mut self.stream, &mut self.buf) == 0 {
                assert!(
                    self.buf.is_empty(),
                    "end of file inside a frame: {:?}",
                    self.buf
                );
                return None;
            }
        }
    }

    /// The next message, which must be text.
    pub fn expect_text(&mut self, what: &str) -> String {
        match self.next() {
            Some(Message::Text(t)) => t,
            other => panic!("{what}: expected a text message, got {other:?}"),
        }
    }

    /// The next message, which must be binary.
    pub fn expect_binary(&mut self, what: &str) -> Vec<u8> {
        match self.next() {
            Some(Message::Binary(b)) => b,
            other => panic!("{what}: expected a binary message, got {other:?}"),
        }
    }

    /// Reads to the end of the connection; a data or ping frame before it is a failure.
    pub fn ending(&mut self, what: &str) -> Ending {
        match self.next() {
            None => Ending::Eof,
            Some(Message::Close(c)) => {
                let after = self.next();
                assert!(after.is_none(), "{what}: {after:?} after the close frame");
                Ending::Close(c)
            }
            Some(other) => panic!("{what}: expected the end, got {other:?}"),
        }
    }

    /// A close frame with `code` and `reason` (any reason if `None`), then end of file.
    pub fn expect_close(&mut self, what: &str, code: u16, reason: Option<&str>) {
        match self.ending(what) {
            Ending::Close(Some((c, r))) if c == code && reason.is_none_or(|want| want == r) => {}
            other => panic!("{what}: expected close {code} {reason:?}, got {other:?}"),
        }
    }

    /// An event with ack id `id` and JSON arguments `args` (`42[ns,]id[...]`), answered by
    /// the server's `43[ns,]id[...]`: the answer's arguments.
    pub fn round_trip(&mut self, ns: &str, id: u32, args: &Value) -> Value {
        let ns = ns_prefix(ns);
        self.send_text(&format!("42{ns}{id}{args}"));
        let head = format!("43{ns}{id}");
        let answer = self.expect_text("the ack");
        let json = answer
            .strip_prefix(&head)
            .unwrap_or_else(|| panic!("expected {head}[...], got {answer}"));
        serde_json::from_str(json).expect("the ack's JSON")
    }
}

/// `/chat,` for `/chat`, nothing for `/` (Socket.IO writes the namespace unless it is `/`).
pub fn ns_prefix(ns: &str) -> String {
    if ns == "/" {
        String::new()
    } else {
        format!("{ns},")
    }
}
