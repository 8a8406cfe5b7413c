//! HTTP requests on the event server's port that are not a WebSocket upgrade: requests for
//! Socket.IO's path that the server does not serve over HTTP, and the application's own
//! routes (`Io::on_http`: the web pages of `socklab serve`). The connection stays open for
//! the next request (keep-alive) unless the client asked for `Connection: close`.

use super::Io;
use crate::events::guard;
use crate::events::link::Link;
use crate::transport::engineio::{handshake_refusal, refusal};
use crate::transport::http::Reply;
use crate::transport::socketio::PATH;
use crate::transport::websocket::Refusal;
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
    pub(super) fn http_request(&mut self, conn: Link, req: Request, body: Vec<u8>) {
        self.stats.http_requests += 1;
        let mut close = !req.keep_alive();
        let reply = if req.path == PATH {
            let cors = self.cors_headers(&req);
            let reply = if req.method == "OPTIONS" {
                // A browser's preflight before a cross-origin POST.
                Some(match cors.is_empty() {
                    true => engineio_error(&refusal(2, "Bad handshake method")),
                    false => preflight(&req),
                })
            } else if let Some(r) = handshake_refusal(&req, &[PATH], &["polling"]) {
                close = true;
                Some(engineio_error(&r))
            } else {
                self.polling_request(conn, &req, &body, &cors)
            };
            let Some(mut reply) = reply else {
                return; // a GET held until there is something to send
            };
            if reply.status >= 400 {
                self.stats.http_refused += 1;
            }
            reply.headers.extend(cors);
            reply
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

    /// The CORS headers for `req`'s `Origin`, if the server allows it
    /// (`ServerConfig::cors_origins`; none by default).
    fn cors_headers(&self, req: &Request) -> Vec<(String, String)> {
        let Some(origin) = req.header("Origin") else {
            return Vec::new();
        };
        let allowed = &self.config.cors_origins;
        if !allowed.iter().any(|o| o == "*" || o == origin) {
            return Vec::new();
        }
        vec![
            ("Access-Control-Allow-Origin".into(), origin.into()),
            ("Access-Control-Allow-Credentials".into(), "true".into()),
            ("Vary".into(), "Origin".into()),
        ]
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

/// The answer to a preflight: the methods and headers a cross-origin poll may use.
fn preflight(req: &Request) -> Reply {
    let asked = req.header("Access-Control-Request-Headers").unwrap_or("");
    Reply {
        status: 204,
        headers: vec![
            ("Access-Control-Allow-Methods".into(), "GET, POST".into()),
            ("Access-Control-Allow-Headers".into(), asked.into()),
            ("Access-Control-Max-Age".into(), "86400".into()),
        ],
        body: Vec::new(),
    }
}

/// Engine.IO's refusal as a reply.
fn engineio_error(r: &Refusal) -> Reply {
    Reply {
        status: r.status,
        headers: vec![("Content-Type".into(), r.content_type.into())],
        body: r.body.clone().into_bytes(),
    }
}

fn not_found(req: &Request) -> Reply {
    Reply::text(404, &format!("404 Not Found: {}\n", req.path))
}
