//! HTTP/1.1 requests and the WebSocket upgrade, as pure code.
//!
//! A request is bytes until a blank line: the request line, then one header per line, each
//! line ended by CRLF, then `\r\n` alone; a body follows only if `Content-Length` says so.
//! Reading the lines is not the lesson here, so the `httparse` crate does it; what a server
//! must decide is: how many header bytes it waits for before it gives up (`431`), how large a
//! body it accepts (`413`), and what makes a valid WebSocket upgrade (RFC 6455, 4.2.1):
//!
//! ```text
//! GET /socket.io/?EIO=4&transport=websocket HTTP/1.1
//! Host: 127.0.0.1:7100
//! Upgrade: websocket
//! Connection: Upgrade
//! Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
//! Sec-WebSocket-Version: 13
//!
//! HTTP/1.1 101 Switching Protocols
//! Upgrade: websocket
//! Connection: Upgrade
//! Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
//! ```
//!
//! The accept key is the base64 of the SHA-1 of the client's key followed by a fixed GUID: it
//! proves the server read this handshake (a cache or a server that does not speak WebSocket
//! cannot produce it), not who the server is.

use std::fmt;

/// Appended to the client's key before hashing (RFC 6455, 1.3).
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most headers one request may have.
const MAX_HEADERS: usize = 64;

/// A request's head, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query's `key=value` pairs, as written (not percent-decoded).
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// Bytes of the head, blank line included: the body (if any) starts there.
    pub head_len: usize,
    /// The body's length from `Content-Length` (0 without it).
    pub content_length: usize,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
}

impl Request {
    /// The value of header `name` (compared without case), if present once or more (the
    /// first).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection stays open after the answer: HTTP/1.1 keeps it unless the
    /// client said `Connection: close`; HTTP/1.0 closes it unless the client asked to keep
    /// it.
    pub fn keep_alive(&self) -> bool {
        if self.version == 0 {
            self.has_token("Connection", "keep-alive")
        } else {
            !self.has_token("Connection", "close")
        }
    }

    /// Whether header `name` holds `token` in its comma-separated list (without case).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// A request refused: the status to answer with, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub reason: &'static str,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for HttpError {}

fn bad(reason: &'static str) -> HttpError {
    HttpError {
        status: 400,
        reason,
    }
}

/// Parses the request head at the start of `buf`: `Ok(None)` while the blank line has not
/// come yet. A head over `max_head` bytes is refused with `431` as soon as that many bytes are
/// there without it; a `Content-Length` over `max_body` with `413` before the body is read.
pub fn parse_request(
    buf: &[u8],
    max_head: usize,
    max_body: usize,
) -> Result<Option<Request>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError {
                status: 431,
                reason: "too many headers",
            })
        }
        Err(_) => return Err(bad("not an HTTP/1.1 request")),
    };
    let head_len = match status {
        httparse::Status::Complete(n) if n <= max_head => n,
        httparse::Status::Complete(_) => {
            return Err(HttpError {
                status: 431,
                reason: "the request's head is too large",
            })
        }
        httparse::Status::Partial if buf.len() > max_head => {
            return Err(HttpError {
                status: 431,
                reason: "the request's head is too large",
            })
        }
        httparse::Status::Partial => return Ok(None),
    };
    let (method, target) = (req.method.unwrap_or(""), req.path.unwrap_or(""));
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).into_owned();
            (h.name.to_string(), value)
        })
        .collect();
    let content_length = match headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        None => 0,
        Some((_, v)) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| bad("a Content-Length that is not a number"))?,
    };
    if content_length > max_body {
        return Err(HttpError {
            status: 413,
            reason: "the body is over the size limit",
        });
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        query,
        headers,
        head_len,
        content_length,
        version: req.version.unwrap_or(1),
    }))
}

/// A response's head, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub head_len: usize,
    pub content_length: usize,
}

impl Response {
    /// The value of header `name` (compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the response head at the start of `buf`: `Ok(None)` while incomplete. A client's
/// side, for the lessons' clients and the tests.
pub fn parse_response(buf: &[u8]) -> Result<Option<Response>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(bad("not an HTTP/1.1 response")),
    };
    let headers: Vec<(String, String)> = res
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let content_length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(Some(Response {
        status: res.code.unwrap_or(0),
        headers,
        head_len,
        content_length,
    }))
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub fn websocket_accept(key: &str) -> String {
    use base64::Engine as _;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// Checks that `req` is a valid WebSocket upgrade (RFC 6455, 4.2.1) and returns its accept
/// key.
pub fn websocket_upgrade(req: &Request) -> Result<String, HttpError> {
    use base64::Engine as _;
    if req.method != "GET" {
        return Err(bad("an upgrade must be a GET"));
    }
    if !req.has_token("upgrade", "websocket") {
        return Err(bad("no Upgrade: websocket"));
    }
    if !req.has_token("connection", "upgrade") {
        return Err(bad("no Connection: Upgrade"));
    }
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(bad("Sec-WebSocket-Version must be 13"));
    }
    let key = req
        .header("sec-websocket-key")
        .ok_or(bad("no Sec-WebSocket-Key"))?;
    let nonce = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|_| bad("a Sec-WebSocket-Key that is not base64"))?;
    if nonce.len() != 16 {
        return Err(bad("a Sec-WebSocket-Key that is not 16 bytes"));
    }
    Ok(websocket_accept(key))
}

/// The `101 Switching Protocols` answer. No extension is accepted: an offer of
/// `permessage-deflate` is declined by not echoing it.
pub fn switching_protocols(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// A complete response with `body` and the given extra headers; `close` adds
/// `Connection: close`.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8], close: bool) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The usual reason phrase of `status`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &[u8] = b"GET /socket.io/?EIO=4&transport=websocket&t=abc HTTP/1.1\r\n\
        Host: 127.0.0.1:7100\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";

    #[test]
    fn the_rfc_accept_key() {
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn an_upgrade_request() {
        let req = parse_request(UPGRADE, 8192, 0)
            .expect("valid")
            .expect("complete");
        assert_eq!(req.path, "/socket.io/");
        assert_eq!(req.param("EIO"), Some("4"));
        assert_eq!(req.param("t"), Some("abc"));
        assert_eq!(req.head_len, UPGRADE.len());
        let accept = websocket_upgrade(&req).expect("a valid upgrade");
        let answer = String::from_utf8(switching_protocols(&accept)).unwrap();
        assert!(answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(!answer.contains("deflate"), "the extension is declined");
        // Every prefix is incomplete, never an error.
        for cut in 0..UPGRADE.len() {
            assert_eq!(
                parse_request(&UPGRADE[..cut], 8192, 0),
                Ok(None),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse_request(b"\x16\x03\x01", 8192, 0).unwrap_err().status,
            400
        );
        assert_eq!(
            parse_request(&UPGRADE[..100], 50, 0).unwrap_err().status,
            431
        );
        let post = b"POST /x HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n";
        assert_eq!(
            parse_request(post, 8192, 1_000_000).unwrap_err().status,
            413
        );
        let no_version = String::from_utf8_lossy(UPGRADE).replace("Version: 13", "Version: 8");
        let req = parse_request(no_version.as_bytes(), 8192, 0)
            .unwrap()
            .unwrap();
        assert_eq!(websocket_upgrade(&req).unwrap_err().status, 400);
        let short_key =
            String::from_utf8_lossy(UPGRADE).replace("dGhlIHNhbXBsZSBub25jZQ==", "YWJj");
        let req = parse_request(short_key.as_bytes(), 8192, 0)
            .unwrap()
            .unwrap();
        assert_eq!(websocket_upgrade(&req).unwrap_err().status, 400);
    }
}
