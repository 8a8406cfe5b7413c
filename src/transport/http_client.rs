//! A blocking HTTP/1.1 client on the `sys` calls, for the lessons that show long-polling
//! from the client's side (22): a request written whole, its answer read until its
//! `Content-Length` is there, on one connection kept alive for the next request.

use std::error::Error;
use std::net::SocketAddr;

use crate::blocking;
use crate::sys::{self, Fd, IntOpt};
use crate::wire::http;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// One connection to an HTTP server.
pub struct HttpClient {
    fd: Fd,
    host: String,
    /// Bytes read and not used yet.
    kept: Vec<u8>,
    /// Bytes written and read so far, for the lessons' counts.
    pub sent: usize,
    pub received: usize,
}

/// An answer: its status and body, and its size on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub wire_len: usize,
}

impl HttpClient {
    /// Connects to `addr`, with Nagle's algorithm off as browsers have it (lesson 12).
    pub fn connect(addr: SocketAddr) -> Result<HttpClient> {
        let fd = blocking::connect_tcp(addr)?;
        sys::setsockopt(&fd, IntOpt::NoDelay, 1)?;
        Ok(HttpClient {
            fd,
            host: addr.to_string(),
            kept: Vec::new(),
            sent: 0,
            received: 0,
        })
    }

    /// Writes a request for `target` (a path and its query) with `body`; returns its size.
    pub fn request(&mut self, method: &str, target: &str, body: &[u8]) -> Result<usize> {
        let mut bytes = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if method == "POST" {
            bytes.push_str("Content-Type: text/plain;charset=UTF-8\r\n");
            bytes.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        bytes.push_str("\r\n");
        let mut bytes = bytes.into_bytes();
        bytes.extend_from_slice(body);
        blocking::write_all(&self.fd, &bytes)?;
        self.sent += bytes.len();
        Ok(bytes.len())
    }

    /// Reads the answer to the oldest request not answered yet (blocks until it is whole).
    pub fn answer(&mut self) -> Result<Answer> {
        loop {
            if let Some(res) = http::parse_response(&self.kept)? {
                let whole = res.head_len + res.content_length;
                if self.kept.len() >= whole {
                    let body = self.kept[res.head_len..whole].to_vec();
                    self.kept.drain(..whole);
                    self.received += whole;
                    return Ok(Answer {
                        status: res.status,
                        body,
                        wire_len: whole,
                    });
                }
            }
            let mut buf = [0u8; 4096];
            let n = sys::read(&self.fd, &mut buf)?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.kept.extend_from_slice(&buf[..n]);
        }
    }
}
