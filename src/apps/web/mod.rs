//! The web pages of `socklab serve`: the chat and the live scores in a browser, over the
//! real Socket.IO wire (WebSocket, Engine.IO v4, Socket.IO v5), on the same port as
//! everything else.
//!
//! | file | what it holds |
//! |---|---|
//! | `assets/index.html` | `/`: what the pages are, links to them and to the book |
//! | `assets/chat.html`, `assets/chat.js` | `/chat`: the chat of `socklab chat` |
//! | `assets/scores.html`, `assets/scores.js` | `/scores`: the live scores of `socklab watch` |
//! | `assets/wire.html`, `assets/wire.js` | `/wire`: the inspector, any socket's packets live (`src/apps/wire.rs`) |
//! | `assets/page.js` | what the three pages share: the status line, the notice, what they say as the connection comes and goes |
//! | `assets/wire-decode.js` | its decoding of bytes, field by field: socklab frames, HTTP, WebSocket frames, Engine.IO, Socket.IO, polling records |
//! | `assets/socklab-io.js` | a small Socket.IO client, the browser side of lesson 21: the WebSocket, Engine.IO, namespaces, acks, reconnection, recovery |
//! | `assets/socklab-packets.js` | its packets: Socket.IO v5 as text and binary frames, pure code |
//! | `assets/style.css`, `assets/favicon.svg` | one style sheet for every page; an icon |
//!
//! Every file is compiled into the binary (`include_bytes!`): there is nothing to install
//! beside `socklab`, and no request can reach the filesystem. A request's path is looked up
//! in a fixed table, as written: `/chat` is served, and `/chat/`, `//chat`, `/./chat`,
//! `/%63hat`, `/../etc/passwd` or `\chat` are simply not in the table (`404`). Nothing is
//! decoded or normalised first, which is the whole defence against path traversal here: a
//! server that maps paths to files has to get both right.

use crate::events::Io;
use crate::transport::http::Reply;
use crate::wire::http::Request;

/// One embedded file and how it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The path it is served at, exactly.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every path the pages answer: a fixed table, never the filesystem.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        path: "/chat",
        content_type: HTML,
        body: include_bytes!("assets/chat.html"),
    },
    Asset {
        path: "/scores",
        content_type: HTML,
        body: include_bytes!("assets/scores.html"),
    },
    Asset {
        path: "/wire",
        content_type: HTML,
        body: include_bytes!("assets/wire.html"),
    },
    Asset {
        path: "/style.css",
        content_type: CSS,
        body: include_bytes!("assets/style.css"),
    },
    Asset {
        path: "/socklab-io.js",
        content_type: JS,
        body: include_bytes!("assets/socklab-io.js"),
    },
    Asset {
        path: "/socklab-packets.js",
        content_type: JS,
        body: include_bytes!("assets/socklab-packets.js"),
    },
    Asset {
        path: "/page.js",
        content_type: JS,
        body: include_bytes!("assets/page.js"),
    },
    Asset {
        path: "/chat.js",
        content_type: JS,
        body: include_bytes!("assets/chat.js"),
    },
    Asset {
        path: "/scores.js",
        content_type: JS,
        body: include_bytes!("assets/scores.js"),
    },
    Asset {
        path: "/wire.js",
        content_type: JS,
        body: include_bytes!("assets/wire.js"),
    },
    Asset {
        path: "/wire-decode.js",
        content_type: JS,
        body: include_bytes!("assets/wire-decode.js"),
    },
    Asset {
        path: "/favicon.svg",
        content_type: SVG,
        body: include_bytes!("assets/favicon.svg"),
    },
];

/// The `Cache-Control` of every page and file: `no-cache`, "ask me again before using your
/// copy". The files have no version in their names and change whenever `socklab` is
/// rebuilt; with a `max-age`, a browser could run yesterday's `socklab-io.js` under today's
/// page during a lesson. Without a validator (`ETag`) each visit downloads them again: a
/// few kilobytes on loopback, a fair price for never seeing a stale page.
pub const CACHE_CONTROL: &str = "no-cache";

/// The embedded file served at `path`, if any: an exact match, nothing decoded.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The answer to `req`: the file for a `GET` of one of [`ASSETS`], `405` for another
/// method on one of them, `None` (the server's `404`) for any other path.
///
/// `HEAD` is answered `405` too, for now: a right answer to it carries the `Content-Length`
/// of the body it leaves out, and the server sets `Content-Length` from the body it is
/// given (`src/events/server/http.rs`); an empty body would say `0`, which is not true.
pub fn answer(req: &Request) -> Option<Reply> {
    let found = asset(&req.path)?;
    if req.method != "GET" {
        let mut r = Reply::text(405, "405 Method Not Allowed: only GET\n");
        r.headers.push(("Allow".into(), "GET".into()));
        return Some(r);
    }
    Some(Reply {
        status: 200,
        headers: vec![
            ("Content-Type".into(), found.content_type.into()),
            ("Cache-Control".into(), CACHE_CONTROL.into()),
            // The browser must take a script for a script only when we say it is one.
            ("X-Content-Type-Options".into(), "nosniff".into()),
        ],
        body: found.body.to_vec(),
    })
}

/// Serves the pages on `io`'s port. This takes the server's one HTTP hook (`Io::on_http`).
pub fn install(io: &mut Io) {
    io.on_http(|req, _body| answer(req));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            head_len: 0,
            content_length: 0,
            version: 1,
        }
    }

    #[test]
    fn every_asset_is_served_with_its_type() {
        for a in ASSETS {
            let r = answer(&get("GET", a.path)).expect("an asset is found");
            assert_eq!(r.status, 200, "{}", a.path);
            assert_eq!(r.body, a.body, "{}", a.path);
            assert!(r
                .headers
                .contains(&("Content-Type".into(), a.content_type.into())));
            assert!(!a.body.is_empty(), "{} is empty", a.path);
        }
    }

    #[test]
    fn only_the_table_is_served() {
        for path in [
            "/chat/",
            "//chat",
            "/./chat",
            "/%63hat",
            "/../etc/passwd",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/assets/chat.html",
            "\\chat",
            "/chat\\..\\mod.rs",
            "/etc/passwd",
            "http://127.0.0.1/chat",
            "",
            "/CHAT",
        ] {
            assert_eq!(answer(&get("GET", path)), None, "{path:?}");
        }
    }

    #[test]
    fn other_methods_are_refused_on_assets_only() {
        for method in ["POST", "PUT", "DELETE", "HEAD", "get"] {
            let r = answer(&get(method, "/chat")).expect("an asset path");
            assert_eq!(r.status, 405, "{method}");
            assert!(r.headers.contains(&("Allow".into(), "GET".into())));
        }
        assert_eq!(answer(&get("POST", "/nothing")), None);
    }
}
