//! The web pages of `socklab serve` (`src/apps/web/`), over raw HTTP on a real socket, and
//! their Socket.IO client (`socklab-io.js`) under Node against the real server.
//!
//! Each test starts the server in-process (a [`RunningServer`] on 127.0.0.1:0 with the chat,
//! the scores, the pages, and a few handlers on `/` for the client's check) and talks bytes
//! to it with a `TcpStream`, as a browser would: the headers are read as they come, the body
//! by its `Content-Length`. Nothing waits without a limit: every read has a timeout of
//! [`WAIT`], the Node script bounds its own run, and the server stops on drop.
//!
//! Node is needed for `node --check` and for the client's run; without it those tests say
//! `SKIPPED:` and pass, unless `SOCKLAB_REQUIRE_NODE=1`.

mod common;
use common::{any_port, interop_dir, skip_or_require, WAIT};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use socklab::apps::{chat, scores, web};
use socklab::events::{Emit, Io, RunningServer, ServerConfig};

/// The handlers `tests/interop/socklab_io_check.js` needs on `/`, beside the apps.
fn install(io: &mut Io) {
    chat::install(io);
    scores::install(io, 3);
    web::install(io);
    io.on_connection("/", |io, sid| {
        // The arguments and attachments come back as they went.
        io.on(sid, "echo", |io, ev| {
            io.ack_with(ev, ev.args.clone(), ev.attachments.clone())
        });
        io.on(sid, "ask-me", |io, ev| {
            let sid = ev.socket.to_string();
            let ask = Emit::new("ask")
                .arg(json!({"q": "life"}))
                .ack(WAIT, move |io, reply| {
                    if let Ok(reply) = reply {
                        let _ = io.emit(&sid, "answered", reply.args);
                    }
                });
            io.send(&ev.socket, ask).expect("ask the client");
        });
        io.on(sid, "kick-me", |io, ev| io.disconnect(&ev.socket));
    });
}

fn start() -> RunningServer {
    RunningServer::start(ServerConfig::default(), any_port(), install).expect("the server starts")
}

/// One HTTP response, read off a connection.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A client connection that keeps its reader, so that two responses can be read in turn.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(server: &RunningServer) -> Conn {
        let stream = TcpStream::connect(server.addr).expect("connect to the server");
        stream
            .set_read_timeout(Some(WAIT))
            .expect("set a read timeout");
        Conn {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, raw: &str) {
        self.reader
            .get_mut()
            .write_all(raw.as_bytes())
            .expect("send the request");
    }

    /// `METHOD PATH` with `extra` header lines.
    fn request(&mut self, method: &str, path: &str, extra: &str) -> Response {
        self.send(&format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n"
        ));
        self.response()
    }

    fn response(&mut self) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line, not {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("a header line");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').expect("name: value");
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut r = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = r
            .header("Content-Length")
            .expect("every response has a Content-Length")
            .parse()
            .expect("a number");
        r.body = vec![0; len];
        self.reader.read_exact(&mut r.body).expect("the whole body");
        r
    }

    /// Whether the server closed the connection (a read returns 0 within WAIT).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(self.reader.read_to_end(&mut rest), Ok(0))
    }
}

fn get(server: &RunningServer, path: &str) -> Response {
    Conn::open(server).request("GET", path, "Connection: close\r\n")
}

#[test]
fn every_page_and_file_is_served_with_its_headers() {
    let server = start();
    for (path, ty) in [
        ("/", "text/html; charset=utf-8"),
        ("/chat", "text/html; charset=utf-8"),
        ("/scores", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/socklab-io.js", "text/javascript; charset=utf-8"),
        ("/socklab-packets.js", "text/javascript; charset=utf-8"),
        ("/page.js", "text/javascript; charset=utf-8"),
        ("/chat.js", "text/javascript; charset=utf-8"),
        ("/scores.js", "text/javascript; charset=utf-8"),
        ("/wire", "text/html; charset=utf-8"),
        ("/wire.js", "text/javascript; charset=utf-8"),
        ("/wire-decode.js", "text/javascript; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let r = get(&server, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("Content-Type"), Some(ty), "{path}");
        assert_eq!(r.header("Cache-Control"), Some("no-cache"), "{path}");
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
        let asset = web::asset(path).expect("in the table");
        assert_eq!(
            r.body, asset.body,
            "{path}: the body read by its Content-Length"
        );
    }
    assert_eq!(web::ASSETS.len(), 13, "a new asset is checked above too");
    // A query does not change what is served.
    assert_eq!(get(&server, "/chat?room=news").status, 200);
}

#[test]
fn unknown_paths_and_escapes_are_404() {
    let server = start();
    for path in [
        "/nothing",
        "/chat/",
        "/chat.html",
        "//chat",
        "/./chat",
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2Fsrc%2Flib.rs",
        "/..%2fCargo.toml",
        "/assets/chat.html",
        "/src/apps/web/assets/chat.html",
        "/chat\\..\\..\\Cargo.toml",
        "/%5c..%5cCargo.toml",
        "/etc/passwd",
        "/Cargo.toml",
        "/CHAT",
    ] {
        let r = get(&server, path);
        assert_eq!(r.status, 404, "{path}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("[package]"),
            "{path}"
        );
    }
}

#[test]
fn other_methods_on_a_page_are_405() {
    let server = start();
    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        let mut c = Conn::open(&server);
        let r = c.request(
            method,
            "/chat",
            "Content-Length: 0\r\nConnection: close\r\n",
        );
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("Allow"), Some("GET"), "{method}");
    }
    let r = Conn::open(&server).request("POST", "/nothing", "Connection: close\r\n");
    assert_eq!(r.status, 404, "a path that is not a page stays 404");
}

#[test]
fn keep_alive_and_connection_close() {
    let server = start();
    // Two requests, one connection: the first answer leaves it open.
    let mut c = Conn::open(&server);
    let first = c.request("GET", "/", "");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("Connection"), None, "{:?}", first.headers);
    let second = c.request("GET", "/style.css", "Connection: close\r\n");
    assert_eq!(second.status, 200);
    assert_eq!(second.header("Connection"), Some("close"));
    assert!(c.closed(), "the server closes after Connection: close");

    // Pipelined: both requests before either answer.
    let mut c = Conn::open(&server);
    c.send("GET /chat HTTP/1.1\r\nHost: x\r\n\r\nGET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response().status, 200);
    assert_eq!(c.response().status, 404);
    assert!(c.closed());
}

/// The values of `attr="..."` in `html`.
fn attribute_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect()
}

#[test]
fn pages_reference_only_files_that_exist() {
    let server = start();
    let pages: Vec<_> = web::ASSETS
        .iter()
        .filter(|a| a.content_type.starts_with("text/html"))
        .collect();
    assert_eq!(pages.len(), 4);
    let mut local = 0;
    for page in pages {
        let html = std::str::from_utf8(page.body).expect("a page is UTF-8");
        for link in attribute_values(html, "src")
            .into_iter()
            .chain(attribute_values(html, "href"))
        {
            if link.starts_with("https://") || link.starts_with('#') {
                continue; // the book online, and anchors within the page
            }
            assert!(
                link.starts_with('/'),
                "{}: {link} is not an absolute path on this server (no CDN, no relative path)",
                page.path
            );
            let path = link.split('?').next().unwrap_or_default();
            assert_eq!(get(&server, path).status, 200, "{} -> {link}", page.path);
            local += 1;
        }
        assert!(
            html.contains("<meta name=\"viewport\""),
            "{} works at a narrow width",
            page.path
        );
    }
    assert!(
        local >= 10,
        "only {local} links checked: the parser missed some"
    );
}

/// Whether `node` runs; else skipped (or failed under `SOCKLAB_REQUIRE_NODE=1`).
fn node_or_skip(what: &str) -> bool {
    let found = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found
        || skip_or_require(
            "SOCKLAB_REQUIRE_NODE",
            what,
            "node not found on PATH",
            "apt-get install nodejs",
        )
}

#[test]
fn the_scripts_parse() {
    if !node_or_skip("node --check on the pages' scripts") {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/apps/web/assets");
    let mut checked = 0;
    for a in web::ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
        let file = dir.join(&a.path[1..]);
        let out = Command::new("node")
            .arg("--check")
            .arg(&file)
            .output()
            .expect("node runs");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn the_client_works_under_node() {
    if !node_or_skip("socklab-io.js under Node") {
        return;
    }
    let dir = interop_dir();
    if !dir.join("node_modules/ws/package.json").exists() {
        skip_or_require(
            "SOCKLAB_REQUIRE_NODE",
            "socklab-io.js under Node",
            "the ws package is not installed in tests/interop/node_modules",
            "npm ci --prefix tests/interop",
        );
        return;
    }
    let server = start();
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(dir.join("socklab_io_check.js"))
        .arg(format!("http://{}", server.addr))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    // The script ends itself within 30 s; this limit is only for a script that hangs anyway.
    let limit = Duration::from_secs(40);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("socklab_io_check.js ran over {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout)
        .expect("read its output");
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("read its errors");
    println!("{stdout}{stderr}");
    assert!(status.success(), "{stdout}{stderr}");
    // The steps in order; what follows a step's name (a refusal's text) may vary.
    let steps: Vec<String> = stdout
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        steps,
        [
            "ok multiplex",
            "ok refused",
            "ok acks",
            "ok server-ack",
            "ok binary",
            "ok broadcast",
            "ok recovery",
            "ok disconnect",
            "done",
        ]
    );
    let stats = common::ask(&server.handle, |io| io.stats());
    assert_eq!(stats.sessions_recovered, 2, "/ and /chat: {stats:?}");
}
