//! Lesson 18: HTTP/1.1 on the event loop: a request is bytes until a blank line.
//!
//! Run it: `cargo run --bin 18_http -- --trace`, or `18_http serve` and `18_http client`
//! (or `curl -v http://127.0.0.1:7018/`).

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use socklab::blocking;
use socklab::event_loop::{Config, EventLoop};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, Fd};
use socklab::transport::http::{HttpServer, Limits, Reply};
use socklab::wire::http::{self, Request};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 18: HTTP/1.1 on the event loop. A request is bytes until a blank line; a \
        body is exactly Content-Length bytes; one connection carries request after request \
        (keep-alive), even several sent before any answer (pipelining).\n\n\
        With no arguments it runs the server on the loop and steps it by hand while a client \
        sends a request, two pipelined ones, one in pieces, a head that never ends and bytes \
        that are not HTTP. `serve` runs the server until Ctrl-C or SIGTERM (try `curl -v \
        http://127.0.0.1:7018/`); `client` sends two pipelined requests and prints the answers \
        (default address 127.0.0.1:7018).",
    serve: "Serve GET / and POST /echo over HTTP/1.1 until SIGINT/SIGTERM",
    client: "Send GET / and POST /echo in one write and print both answers",
};

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7018, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => client(e.addr),
    })
}

// ANCHOR: routes
/// The server's two routes: `GET /` says hello, `POST /echo` answers with the body.
fn routes(req: &Request, body: &[u8]) -> Reply {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") => Reply::text(200, "hello from lesson 18\n"),
        ("POST", "/echo") => Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body: body.to_vec(),
        },
        (_, "/" | "/echo") => Reply::text(405, "GET / or POST /echo\n"),
        _ => Reply::text(404, "no such page\n"),
    }
}
// ANCHOR_END: routes

/// Reads one whole response from `fd`: its status, and its body as text.
fn read_response(fd: &Fd, kept: &mut Vec<u8>) -> Result<(u16, String), Box<dyn Error>> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(res) = http::parse_response(kept)? {
            let whole = res.head_len + res.content_length;
            if kept.len() >= whole {
                let body = String::from_utf8_lossy(&kept[res.head_len..whole]).into_owned();
                kept.drain(..whole);
                return Ok((res.status, body));
            }
        }
        let n = sys::read(fd, &mut buf)?;
        if n == 0 {
            return Err("the server closed the connection mid-response".into());
        }
        kept.extend_from_slice(&buf[..n]);
    }
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let server = HttpServer::new(Limits::default(), routes);
    let mut ev = EventLoop::new(server, Config::default())?;
    let addr = ev.ctx().listen("127.0.0.1:0".parse()?)?;
    println!("listening on {addr}");
    let step = Some(Duration::from_secs(1));
    let c = blocking::connect_tcp(addr)?;
    let mut kept = Vec::new();

    blocking::write_all(&c, b"GET / HTTP/1.1\r\nHost: lesson18\r\n\r\n")?;
    ev.turn(step)?; // accept
    ev.turn(step)?; // read, answer
    let (status, body) = read_response(&c, &mut kept)?;
    println!("GET /: {status}, {:?}; the connection stays open", body);

    let two = b"GET / HTTP/1.1\r\nHost: lesson18\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: lesson18\r\nContent-Length: 5\r\n\r\nhello";
    blocking::write_all(&c, two)?;
    ev.turn(step)?;
    let first = read_response(&c, &mut kept)?;
    let second = read_response(&c, &mut kept)?;
    println!(
        "two requests in one write (pipelined): {} {:?}, then {} {:?}",
        first.0, first.1, second.0, second.1
    );

    blocking::write_all(&c, b"GET / HT")?;
    ev.turn(Some(Duration::from_millis(50)))?;
    println!("half a request line: no blank line yet, so no answer; the bytes wait in the loop");
    blocking::write_all(&c, b"TP/1.1\r\nHost: lesson18\r\nConnection: close\r\n\r\n")?;
    ev.turn(step)?;
    let (status, _) = read_response(&c, &mut kept)?;
    let after = blocking::read_to_end(&c, 1024)?;
    println!(
        "the rest arrives: {status}; `Connection: close`, so end of file follows ({} more bytes)",
        after.len()
    );

    let d = blocking::connect_tcp(addr)?;
    let endless = format!("GET / HTTP/1.1\r\nX-Pad: {}", "x".repeat(9000));
    blocking::write_all(&d, endless.as_bytes())?;
    ev.turn(step)?; // accept
    ev.turn(step)?; // read, refuse
    let mut kept = Vec::new();
    let (status, _) = read_response(&d, &mut kept)?;
    println!("a head over 8 KiB with no blank line: {status}, and the server closes");

    let e = blocking::connect_tcp(addr)?;
    blocking::write_all(&e, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")?;
    ev.turn(step)?; // accept
    ev.turn(step)?; // read, refuse
    let (status, _) = read_response(&e, &mut Vec::new())?;
    println!("bytes that are not HTTP (a TLS hello): {status}, and the server closes");

    let s = ev.handler().stats();
    println!(
        "answered {} requests ({} pipelined), refused {}",
        s.requests, s.pipelined, s.refused
    );
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let server = HttpServer::new(Limits::default(), routes);
    let s = lesson::serve_on_loop(server, addr, |h| h.stats())?;
    println!(
        "stopped: answered {} requests ({} pipelined), refused {}",
        s.requests, s.pipelined, s.refused
    );
    Ok(())
}

fn client(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let c = blocking::connect_tcp(addr)?;
    let two = b"GET / HTTP/1.1\r\nHost: lesson18\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: lesson18\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    blocking::write_all(&c, two)?;
    let mut kept = Vec::new();
    for _ in 0..2 {
        let (status, body) = read_response(&c, &mut kept)?;
        println!("{status} {:?}", body);
    }
    Ok(())
}
