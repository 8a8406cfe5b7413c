//! An HTTP/1.1 server as an event-loop handler (lesson 18).
//!
//! The loop hands the handler whatever bytes arrived; the handler answers every complete
//! request they hold, in order, and leaves the rest with the loop for next time:
//!
//! - **A request is bytes until a blank line.** Until `\r\n\r\n` arrives, nothing is decided
//!   (`Ok(None)` from [`http::parse_request`]): the bytes stay in the loop's inbound buffer.
//!   A head that grows past [`Limits::max_head`] without ending is answered `431` and the
//!   connection closed, so a client that never finishes its head (slowloris) cannot make the
//!   server hold more than that.
//! - **A body is exactly `Content-Length` bytes.** The handler waits for all of them; a length
//!   over [`Limits::max_body`] is answered `413` before any of the body is read.
//! - **Keep-alive and pipelining.** HTTP/1.1 keeps the connection open after a response, and a
//!   client may send several requests before reading any answer: they are answered in the
//!   order they came, all from one `data` call if they arrived together. `Connection: close`
//!   (or an HTTP/1.0 request) closes after the response, once it is flushed.
//! - **A bad request** (not HTTP) is answered `400`, and the connection closed: after bytes
//!   that are not a request, nothing says where the next request would start.
//!
//! The routes are one function from a request and its body to a [`Reply`].

use std::net::SocketAddr;

use crate::event_loop::{ConnId, Ctx, Handler};
use crate::wire::http::{self, Request};

/// The bounds of one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of request line and headers, blank line included (default 8 KiB).
    pub max_head: usize,
    /// Bytes of body (default 64 KiB).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 8 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// An answer: a status, extra headers, a body. `Content-Length` is added when it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A `200 OK` plain-text answer.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

/// Counters, for lessons and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    pub requests: u64,
    /// Requests answered from the same `data` call as the one before them: they were
    /// pipelined (sent before the answer to the previous one).
    pub pipelined: u64,
    /// Requests refused with 400, 413 or 431.
    pub refused: u64,
}

/// The routes: a request and its body in, a reply out.
pub type Routes = Box<dyn FnMut(&Request, &[u8]) -> Reply>;

/// An HTTP/1.1 server on the event loop.
pub struct HttpServer {
    limits: Limits,
    routes: Routes,
    stats: HttpStats,
}

impl HttpServer {
    pub fn new(limits: Limits, routes: impl FnMut(&Request, &[u8]) -> Reply + 'static) -> Self {
        HttpServer {
            limits,
            routes: Box::new(routes),
            stats: HttpStats::default(),
        }
    }

    pub fn stats(&self) -> HttpStats {
        self.stats
    }

    /// Answers `status` for a request that cannot be read, and closes once it is sent.
    fn refuse(&mut self, ctx: &mut Ctx<()>, id: ConnId, status: u16, why: &str) {
        self.stats.refused += 1;
        let body = format!("{status} {}: {why}\n", http::reason_phrase(status));
        let _ = ctx.send(id, &http::response(status, &[], body.as_bytes(), true));
        ctx.close(id);
    }
}

impl Handler for HttpServer {
    type Timer = ();
    type Message = ();

    fn accepted(&mut self, _: &mut Ctx<()>, _: ConnId, _: SocketAddr) {}

    // ANCHOR: data
    fn data(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        let mut used = 0;
        let mut answered = 0;
        loop {
            let rest = &bytes[used..];
            let req = match http::parse_request(rest, self.limits.max_head, self.limits.max_body) {
                Ok(Some(req)) => req,
                Ok(None) => return used, // the head is not complete: wait for more
                Err(e) => {
                    self.refuse(ctx, id, e.status, e.reason);
                    return bytes.len();
                }
            };
            let whole = req.head_len + req.content_length;
            if rest.len() < whole {
                return used; // the body is not all here: wait for more
            }
            let body = &rest[req.head_len..whole];
            let reply = (self.routes)(&req, body);
            let keep = req.keep_alive();
            let headers: Vec<(&str, &str)> = reply
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let answer = http::response(reply.status, &headers, &reply.body, !keep);
            self.stats.requests += 1;
            if answered > 0 {
                self.stats.pipelined += 1;
            }
            answered += 1;
            used += whole;
            if ctx.send(id, &answer).is_err() || !keep {
                ctx.close(id);
                return bytes.len();
            }
        }
    }
    // ANCHOR_END: data
}
