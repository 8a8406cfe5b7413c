//! HTTP requests on the event server's port that are not a WebSocket upgrade: requests for
//! Socket.IO's path that the server does not serve over HTTP, and the application's own
//! routes (`Io::on_http`: the web pages of `socklab serve`). The connection stays open for
//! the next request (keep-alive) unless the client asked for `Connection: close`.

use super::Io;
use crate::event_loop::ConnId;
use crate::events::guard;
use crate::transport::engineio::handshake_refusal;
use crate::transport::http::Reply;
use crate::transport::socketio::PATH;
use crate::wire::http::{self, Request};

/// The application's routes: a request and its body in, a reply out, or `None` for `404`.
pub(super) type HttpRoutes = Box<dyn FnMut(&Request, &[u8]) -> Option<Reply>>;

impl Io {
    /// Serves HTTP requests that are not for Socket.IO with `routes` (a `None` answer is a
    /// `404`). It runs on the loop thread, guarded: a route that panics answers `500`.
    pub fn on_http(&mut self, routes: impl FnMut(&Request, &[u8]) -> Option<Reply> + 'static) {
        self.http_routes = Some(Box::new(routes));
    }

    /// Answers one request read on `conn`.
    pub(super) fn http_request(&mut self, conn: ConnId, req: Request, body: Vec<u8>) {
        self.stats.http_requests += 1;
        let mut close = !req.keep_alive();
        let reply = if req.path == PATH {
            // Not an upgrade: Engine.IO's refusal, in its own JSON.
            let r = handshake_refusal(&req, &[PATH])
                .unwrap_or_else(|| crate::transport::engineio::refusal(0, "Transport unknown"));
            self.stats.http_refused += 1;
            close = true;
            Reply {
                status: r.status,
                headers: vec![("Content-Type".into(), r.content_type.into())],
                body: r.body.into_bytes(),
            }
        } else {
            self.route(&req, &body)
        };
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let bytes = http::response(reply.status, &headers, &reply.body, close);
        let frame = self.out.copy(&bytes);
        self.out.send(conn, frame, false);
        if close {
            self.close_later(conn, true);
        }
    }

    /// The application's answer to `req`, `404` if it has none, `500` if it panicked.
    fn route(&mut self, req: &Request, body: &[u8]) -> Reply {
        let Some(mut routes) = self.http_routes.take() else {
            return not_found(req);
        };
        let reply = guard::call(|| routes(req, body));
        self.http_routes = Some(routes);
        match reply {
            Ok(Some(r)) => r,
            Ok(None) => not_found(req),
            Err(p) => {
                self.callback_panicked("HTTP route", None, &p);
                Reply::text(500, "500 Internal Server Error\n")
            }
        }
    }
}

fn not_found(req: &Request) -> Reply {
    Reply::text(404, &format!("404 Not Found: {}\n", req.path))
}
