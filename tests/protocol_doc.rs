//! The protocol page must not drift from the code: every byte-by-byte example of section 10
//! of `docs/protocol.md` is produced here from a real server and a real client, and compared
//! with the page.
//!
//! How the bytes are made: a real [`RunningServer`] on 127.0.0.1:0, with the default settings
//! and id seed 14 (so the socket ids and `pid`s are the same every run), and real socklab
//! [`Client`]s that reach it through a recording proxy. The proxy is a raw TCP peer of both:
//! it keeps every byte that crosses it, in each direction, for each connection, and it can cut
//! a connection the way a dropped Wi-Fi link does. The examples are the frames it saw, cut
//! with the real frame splitter. Nothing is encoded by the test itself: server frames come
//! from the server, client frames from the client. A second server, with a ping every 30 ms,
//! gives the PING and the client's PONG.
//!
//! How the page is read: section 10 is split at its `### 10.N` headings; in each, every
//! ```` ```text ```` block of `xxd -g1` lines is a dump, and the table rows that follow it
//! (`| offset | bytes | field |`) annotate it. For each dump the test checks
//! - the dump, line for line, against the real frame printed the same way (the failure shows
//!   both, ready to paste into the page);
//! - every table row against the same frame: its bytes (`` `00 00 00 54` `` in full, or
//!   `` `7b` ... `7d` `` as the first and the last byte of a field that runs to the next row),
//!   that the rows tile the frame, the numbers the field names (`frame length: 84`, `ack id:
//!   1`), the packet type (`type: ACK`), and the text a field shows (`` namespace `/` ``,
//!   `` `{"pid":...}` ``) where its bytes are text;
//! - and, anywhere on the page, every JSON object quoted in backquotes just before a `(10.N)`
//!   reference: it must appear, byte for byte, in example 10.N.

mod common;
use common::{any_port, WAIT};

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socklab::events::{reasons, Client, ClientOptions, RunningServer, ServerConfig};
use socklab::wire::frame;
use socklab::wire::packet::{self, Kind, Limits, Packet};

// ---------------------------------------------------------------------------------------------
// A recording proxy
// ---------------------------------------------------------------------------------------------

/// The bytes of one relayed connection, as they crossed the proxy.
#[derive(Default)]
struct Leg {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    /// Both ends, to cut the connection.
    ends: Vec<TcpStream>,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    legs: Mutex<Vec<Arc<Mutex<Leg>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A relay thread that panicked cannot leave a leg half-written in a way that matters
    // here: the comparison would show it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A TCP proxy on 127.0.0.1 that relays each connection to `upstream` (one thread per
/// direction) and records what crosses it.
struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(any_port()).expect("the proxy listens");
        let addr = listener.local_addr().expect("getsockname");
        // Non-blocking, so that the accept loop sees the stop flag.
        listener.set_nonblocking(true).expect("O_NONBLOCK");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((down, _)) => relay_pair(&s, down, upstream),
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Proxy { addr, shared }
    }

    /// Connections relayed so far, in the order they were accepted.
    fn legs(&self) -> usize {
        lock(&self.shared.legs).len()
    }

    /// The frames of connection `leg` so far: (to the server, to the client).
    fn frames(&self, leg: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let leg = lock(&self.shared.legs)[leg].clone();
        let leg = lock(&leg);
        (split_frames(&leg.to_server), split_frames(&leg.to_client))
    }

    /// Cuts connection `leg`: `shutdown(SHUT_RDWR)` on both ends, so that the client and the
    /// server each read end of file, with no DISCONNECT.
    fn cut(&self, leg: usize) {
        let leg = lock(&self.shared.legs)[leg].clone();
        for s in &lock(&leg).ends {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn relay_pair(shared: &Arc<Shared>, down: TcpStream, upstream: SocketAddr) {
    let _ = down.set_nonblocking(false);
    let Ok(up) = TcpStream::connect_timeout(&upstream, WAIT) else {
        return; // the client sees its connection close
    };
    let ends = [
        down.try_clone(),
        up.try_clone(),
        down.try_clone(),
        up.try_clone(),
    ];
    let [Ok(d1), Ok(u1), Ok(d2), Ok(u2)] = ends else {
        return;
    };
    let leg = Arc::new(Mutex::new(Leg {
        ends: vec![d2, u2],
        ..Leg::default()
    }));
    lock(&shared.legs).push(leg.clone());
    let l = leg.clone();
    thread::spawn(move || relay(down, up, &l, true));
    thread::spawn(move || relay(u1, d1, &leg, false));
}

/// Copies `from` to `to` until end of file or an error, recording each read; then passes the
/// end of file on.
fn relay(mut from: TcpStream, mut to: TcpStream, leg: &Mutex<Leg>, to_server: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                {
                    let mut l = lock(leg);
                    let side = if to_server {
                        &mut l.to_server
                    } else {
                        &mut l.to_client
                    };
                    side.extend_from_slice(&buf[..n]);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Whole frames (header included) at the start of `bytes`, cut by the real splitter.
fn split_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Ok(Some((_, n))) = frame::split(bytes, usize::MAX) {
        out.push(bytes[..n].to_vec());
        bytes = &bytes[n..];
    }
    out
}

fn decode(frame: &[u8]) -> Packet {
    packet::decode(&frame[frame::HEADER_LEN..], &Limits::default())
        .unwrap_or_else(|e| panic!("a recorded frame does not decode ({e}): {frame:02x?}"))
}

/// The first frame of `frames` whose packet `pick` accepts.
fn find(frames: &[Vec<u8>], what: &str, pick: impl Fn(&Packet) -> bool) -> Vec<u8> {
    frames
        .iter()
        .find(|f| pick(&decode(f)))
        .cloned()
        .unwrap_or_else(|| {
            let seen: Vec<String> = frames.iter().map(|f| decode(f).to_string()).collect();
            panic!("no {what} among the recorded frames: {seen:#?}")
        })
}

/// Steps `client` until `done` holds (at most [`WAIT`]).
fn step(client: &mut Client, what: &str, mut done: impl FnMut(&mut Client) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(client) {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        client
            .turn(Some(Duration::from_millis(5)))
            .expect("client turn");
    }
}

fn options(addr: SocketAddr, ns: &str, auth: Option<Value>) -> ClientOptions {
    let mut o = ClientOptions::new(addr);
    o.namespace = ns.to_string();
    o.auth = auth;
    // Back at once after a cut (the defaults wait 0.5 to 1.5 s).
    o.reconnection_delay = Duration::from_millis(10);
    o.randomization_factor = 0.0;
    o
}

// ---------------------------------------------------------------------------------------------
// The conversation of section 6.1 and 11.7, for real
// ---------------------------------------------------------------------------------------------

/// One example of section 10: the subsection, and its dumps in page order.
struct Example {
    section: &'static str,
    frames: Vec<Vec<u8>>,
}

/// The server of the examples: the default settings, id seed 14 (as in lesson 14), a
/// middleware that refuses a name already in use with `name taken`, an `upload` handler that
/// answers `["ok"]`, and a namespace `/chat` beside `/`. It reports each disconnect.
fn start_server(ping: Option<Duration>) -> (RunningServer, Receiver<String>) {
    let mut config = ServerConfig {
        id_seed: Some(14),
        ..ServerConfig::default()
    };
    if let Some(p) = ping {
        config.ping_interval = p;
    }
    let (tx, rx) = mpsc::channel();
    let server = RunningServer::start(config, any_port(), move |io| {
        let names = std::rc::Rc::new(std::cell::RefCell::new(HashSet::<String>::new()));
        let name_of = |auth: Option<&Value>| {
            auth.and_then(|a| a.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let taken = names.clone();
        io.use_middleware("/", move |hs| match name_of(hs.auth.as_ref()) {
            Some(n) if taken.borrow().contains(&n) => Err("name taken".into()),
            _ => Ok(()),
        });
        io.on_connection("/", move |io, sid| {
            let name = name_of(io.handshake(sid).and_then(|h| h.auth.as_ref()));
            if let Some(n) = &name {
                names.borrow_mut().insert(n.clone());
            }
            let (names, tx) = (names.clone(), tx.clone());
            io.on(sid, "disconnect", move |_, ev| {
                if let Some(n) = &name {
                    names.borrow_mut().remove(n);
                }
                let _ = tx.send(ev.socket.to_string());
            });
            io.on(sid, "upload", |io, ev| io.ack(ev, vec![json!("ok")]));
        });
        io.on_connection("/chat", |_, _| {});
    })
    .expect("the server starts on 127.0.0.1:0");
    (server, rx)
}

/// Runs the conversation and returns the frames of every example.
fn record() -> Vec<Example> {
    let (server, gone) = start_server(None);
    let proxy = Proxy::start(server.addr);

    // ada joins `/` (10.1 to 10.4).
    let mut ada =
        Client::connect(options(proxy.addr, "/", Some(json!({"name": "ada"})))).expect("connect");
    step(&mut ada, "ada connects", |c| c.io().is_connected());
    let sid = ada.io().id().expect("a socket id").to_string();

    // A second client with the same name is refused (10.5).
    let mut other = Client::connect(ClientOptions {
        reconnection: false,
        ..options(proxy.addr, "/", Some(json!({"name": "ada"})))
    })
    .expect("connect");
    step(&mut other, "the second ada is refused", |c| {
        c.io().connect_error().is_some()
    });

    // A client joins `/chat` with no auth (10.3, second dump) and leaves (10.9, second).
    let mut chat = Client::connect(options(proxy.addr, "/chat", None)).expect("connect");
    step(&mut chat, "joins /chat", |c| c.io().is_connected());
    chat.io().disconnect();
    // Returns once the client's loop has stopped, its connection closed.
    let _ = chat.run_until(WAIT, |_| false);

    // ada emits (10.6), emits with ack (10.7, answered by 10.8), and gets a broadcast
    // (10.13).
    ada.io()
        .emit("chat message", vec![json!("hi")])
        .expect("emit");
    let answered = std::rc::Rc::new(std::cell::Cell::new(false));
    let a = answered.clone();
    ada.io()
        .emit_with_ack(
            "upload",
            vec![json!("a.bin")],
            vec![vec![0xde, 0xad, 0xbe]],
            WAIT,
            move |_, r| a.set(r.is_ok()),
        )
        .expect("emit with ack");
    step(&mut ada, "the upload's ACK", |_| answered.get());
    let got = std::rc::Rc::new(std::cell::Cell::new(false));
    let g = got.clone();
    ada.io().on("chat message", move |_, _| g.set(true));
    server
        .handle
        .broadcast("/", None, "chat message", vec![json!("hi")])
        .expect("the server is running");
    step(&mut ada, "the broadcast", |_| got.get());

    // The connection drops; once the server has noticed, ada comes back (10.14) and gets
    // its session back (10.15).
    let first = 0;
    proxy.cut(first);
    let deadline = Instant::now() + WAIT;
    while gone.try_recv().ok().as_ref() != Some(&sid) {
        assert!(
            Instant::now() < deadline,
            "the server did not notice the cut"
        );
        thread::sleep(Duration::from_millis(2));
    }
    step(&mut ada, "ada is back", |c| {
        c.io().is_connected() && c.io().recovered()
    });
    assert_eq!(ada.io().id(), Some(sid.as_str()));
    let again = proxy.legs() - 1;

    // The server stops gracefully (10.9).
    server.handle.stop().expect("the server is running");
    step(&mut ada, "told the server is shutting down", |c| {
        c.io().disconnect_reason() == Some(reasons::SERVER_SHUTTING_DOWN)
    });
    server.stop().expect("the server thread ends cleanly");
    let deadline = Instant::now() + WAIT;
    while !proxy
        .frames(again)
        .1
        .iter()
        .any(|f| matches!(decode(f), Packet::Disconnect { .. }))
    {
        assert!(Instant::now() < deadline, "no DISCONNECT reached the proxy");
        thread::sleep(Duration::from_millis(2));
    }

    // Which connection is which: ada's first, the refused one, /chat, ada's second.
    let (ada_up, ada_down) = proxy.frames(first);
    let (_, refused_down) = proxy.frames(1);
    let (chat_up, _) = proxy.frames(2);
    let (back_up, back_down) = proxy.frames(again);
    let is = |k: Kind| move |p: &Packet| p.kind() == k;

    let ping = record_ping();
    let examples = vec![
        Example {
            section: "10.1",
            frames: vec![find(&ada_down, "server HELLO", is(Kind::Hello))],
        },
        Example {
            section: "10.2",
            frames: vec![find(&ada_up, "client HELLO", is(Kind::Hello))],
        },
        Example {
            section: "10.3",
            frames: vec![
                find(&ada_up, "CONNECT with auth", is(Kind::Connect)),
                find(&chat_up, "CONNECT /chat", is(Kind::Connect)),
            ],
        },
        Example {
            section: "10.4",
            frames: vec![find(&ada_down, "CONNECT reply", is(Kind::Connect))],
        },
        Example {
            section: "10.5",
            frames: vec![find(&refused_down, "CONNECT_ERROR", is(Kind::ConnectError))],
        },
        Example {
            section: "10.6",
            frames: vec![find(&ada_up, "plain EVENT", |p| {
                matches!(p, Packet::Event { id: None, .. })
            })],
        },
        Example {
            section: "10.7",
            frames: vec![find(&ada_up, "EVENT with ack", |p| {
                matches!(p, Packet::Event { id: Some(_), .. })
            })],
        },
        Example {
            section: "10.8",
            frames: vec![find(&ada_down, "ACK", is(Kind::Ack))],
        },
        Example {
            section: "10.9",
            frames: vec![
                find(&back_down, "DISCONNECT", is(Kind::Disconnect)),
                find(&chat_up, "client DISCONNECT", is(Kind::Disconnect)),
            ],
        },
        Example {
            section: "10.10",
            frames: vec![ping.0],
        },
        Example {
            section: "10.11",
            frames: vec![ping.1],
        },
        Example {
            section: "10.12",
            frames: vec![],
        },
        Example {
            section: "10.13",
            frames: vec![find(&ada_down, "broadcast", is(Kind::Event))],
        },
        Example {
            section: "10.14",
            frames: vec![find(&back_up, "CONNECT with pid", is(Kind::Connect))],
        },
        Example {
            section: "10.15",
            frames: vec![find(&back_down, "CONNECT reply", is(Kind::Connect))],
        },
    ];
    // The scenario is what the page says it is.
    let reply = |f: &[u8]| match decode(f) {
        Packet::Connect { data: Some(d), .. } => d,
        other => panic!("not a CONNECT reply: {other}"),
    };
    let (new, back) = (
        reply(&examples[3].frames[0]),
        reply(&examples[14].frames[0]),
    );
    assert_eq!(new["recovered"], json!(false));
    assert_eq!(back["recovered"], json!(true));
    assert_eq!((&back["pid"], &back["sid"]), (&new["pid"], &new["sid"]));
    examples
}

/// A PING from a server that pings every 30 ms, and the real client's PONG.
fn record_ping() -> (Vec<u8>, Vec<u8>) {
    let (server, _gone) = start_server(Some(Duration::from_millis(30)));
    let proxy = Proxy::start(server.addr);
    let mut client = Client::connect(options(proxy.addr, "/", None)).expect("connect");
    step(&mut client, "a PING and its PONG", |_| {
        proxy.legs() == 1
            && proxy
                .frames(0)
                .0
                .iter()
                .any(|f| matches!(decode(f), Packet::Pong))
    });
    let (up, down) = proxy.frames(0);
    client.io().disconnect();
    let _ = client.run_until(WAIT, |_| false);
    server.stop().expect("the server thread ends cleanly");
    (
        find(&down, "PING", |p| matches!(p, Packet::Ping)),
        find(&up, "PONG", |p| matches!(p, Packet::Pong)),
    )
}

// ---------------------------------------------------------------------------------------------
// Reading the page
// ---------------------------------------------------------------------------------------------

/// One `xxd -g1` dump on the page, with the table rows that annotate it.
struct Dump {
    section: String,
    /// 1-based line of the page where the dump starts.
    line: usize,
    lines: Vec<String>,
    /// (line of the page, cells).
    rows: Vec<(usize, Vec<String>)>,
}

fn is_xxd_line(l: &str) -> bool {
    l.len() > 10 && l.as_bytes()[8] == b':' && l[..8].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The dumps of section 10, in page order.
fn dumps(page: &str) -> Vec<Dump> {
    let mut out: Vec<Dump> = Vec::new();
    let mut section: Option<String> = None;
    let mut block: Option<Vec<String>> = None;
    let mut block_start = 0;
    for (i, line) in page.lines().enumerate() {
        if line.starts_with("## ") {
            section = None;
        }
        if let Some(h) = line.strip_prefix("### 10.") {
            let n: String = h.chars().take_while(char::is_ascii_digit).collect();
            section = Some(format!("10.{n}"));
            continue;
        }
        let Some(sec) = &section else { continue };
        if line.trim_start().starts_with("```") {
            match block.take() {
                None => {
                    block = Some(Vec::new());
                    block_start = i + 2;
                }
                Some(lines) => {
                    if !lines.is_empty() && lines.iter().all(|l| is_xxd_line(l)) {
                        out.push(Dump {
                            section: sec.clone(),
                            line: block_start,
                            lines,
                            rows: Vec::new(),
                        });
                    }
                }
            }
            continue;
        }
        if let Some(lines) = &mut block {
            lines.push(line.to_string());
            continue;
        }
        let cells: Vec<String> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        let offset_cell = cells.first().map(String::as_str).unwrap_or("");
        let is_row = line.starts_with('|')
            && cells.len() == 3
            && !offset_cell.is_empty()
            && offset_cell.bytes().all(|b| b.is_ascii_hexdigit());
        if let (true, Some(d)) = (is_row, out.last_mut()) {
            if &d.section == sec {
                d.rows.push((i + 1, cells));
            }
        }
    }
    out
}

/// `bytes` as `xxd -g1` prints them.
fn xxd(bytes: &[u8]) -> Vec<String> {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let mut l = format!("{:08x}: ", i * 16);
            for slot in 0..16 {
                match chunk.get(slot) {
                    Some(b) => write!(l, "{b:02x} ").expect("writing to a String"),
                    None => l.push_str("   "),
                }
            }
            l.push(' ');
            l.extend(chunk.iter().map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            }));
            l
        })
        .collect()
}

/// The backquoted spans of `s`.
fn spans(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    s.split(' ')
        .map(|h| {
            (h.len() == 2)
                .then(|| u8::from_str_radix(h, 16).ok())
                .flatten()
        })
        .collect()
}

/// The number after `key: ` in `field`, if there is one.
fn number_after(field: &str, key: &str) -> Option<u64> {
    let at = field.find(&format!("{key}: "))? + key.len() + 2;
    let digits: String = field[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn kind_named(name: &str) -> Option<Kind> {
    Some(match name {
        "CONNECT" => Kind::Connect,
        "DISCONNECT" => Kind::Disconnect,
        "EVENT" => Kind::Event,
        "ACK" => Kind::Ack,
        "CONNECT_ERROR" => Kind::ConnectError,
        "PING" => Kind::Ping,
        "PONG" => Kind::Pong,
        "HELLO" => Kind::Hello,
        _ => return None,
    })
}

/// What is wrong with the table under `dump`, for frame `real`.
fn check_rows(dump: &Dump, real: &[u8], wrong: &mut Vec<String>) {
    let mut bad = |line: usize, what: String| {
        wrong.push(format!(
            "docs/protocol.md:{line} ({}): {what}",
            dump.section
        ))
    };
    let Some((first_line, first)) = dump.rows.first() else {
        bad(dump.line, "the dump has no table".into());
        return;
    };
    if first[0] != "00" {
        bad(*first_line, "the table does not start at offset 00".into());
    }
    for (k, (line, cells)) in dump.rows.iter().enumerate() {
        let line = *line;
        let (offset, shown, field) = (&cells[0], &cells[1], &cells[2]);
        let at = usize::from_str_radix(offset, 16).expect("a hex offset (checked when parsed)");
        let end = match dump.rows.get(k + 1) {
            Some((_, next)) => usize::from_str_radix(&next[0], 16).expect("a hex offset"),
            None => real.len(),
        };
        if at >= end || end > real.len() {
            bad(
                line,
                format!("offset {offset}: the field runs from {at} to {end}, but the frame has {} bytes", real.len()),
            );
            continue;
        }
        let bytes = &real[at..end];
        let quoted = spans(shown);
        match (quoted.as_slice(), shown.contains("...")) {
            ([whole], false) => match hex_bytes(whole) {
                Some(listed) if listed == bytes => {}
                Some(listed) => bad(
                    line,
                    format!(
                        "offset {offset} shows `{}`, the real bytes up to the next row are `{}`",
                        hex(&listed),
                        hex(bytes)
                    ),
                ),
                None => bad(line, format!("`{whole}` is not hex bytes")),
            },
            ([from, to], true) => {
                let (from, to) = (hex_bytes(from), hex_bytes(to));
                let real_ends = (vec![bytes[0]], vec![bytes[bytes.len() - 1]]);
                if (from.clone(), to.clone()) != (Some(real_ends.0), Some(real_ends.1)) {
                    bad(
                        line,
                        format!(
                            "offset {offset}: the field really runs `{}` ... `{:02x}`",
                            hex(&bytes[..1]),
                            bytes[bytes.len() - 1]
                        ),
                    );
                }
            }
            _ => bad(line, format!("cannot read the bytes cell {shown:?}")),
        }
        // The numbers a field names are the bytes' value.
        let value =
            (bytes.len() <= 4).then(|| bytes.iter().fold(0u64, |v, &b| v << 8 | u64::from(b)));
        for key in ["length", "count", "ack id"] {
            if let Some(n) = number_after(field, key) {
                if value != Some(n) {
                    bad(
                        line,
                        format!("the field says {key} {n}, the bytes say {value:?}"),
                    );
                }
            }
        }
        if let Some(name) = field.strip_prefix("type: ") {
            let name = name.split_whitespace().next().unwrap_or("");
            match kind_named(name) {
                Some(k) if bytes == [k as u8] => {}
                _ => bad(
                    line,
                    format!("the type byte {:02x} is not {name}", bytes[0]),
                ),
            }
        }
        // The text a field shows is its bytes, where they are text.
        if let (Ok(text), Some(span)) = (std::str::from_utf8(bytes), spans(field).first()) {
            if !text.chars().any(char::is_control) && text != *span {
                bad(
                    line,
                    format!("the field shows `{span}`, its bytes are `{text}`"),
                );
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The JSON objects quoted just before a `(10.N)` reference: (line, JSON, section).
fn json_references(page: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = page.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        for (at, _) in line.match_indices("`{") {
            let Some(len) = line[at + 1..].find('`') else {
                continue;
            };
            let json = &line[at + 1..at + 1 + len];
            // The reference may be on the next line.
            let rest = format!(
                "{} {}",
                &line[at + 2 + len..],
                lines.get(i + 1).copied().unwrap_or("")
            );
            let rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix("(10.") {
                let n: String = r.chars().take_while(char::is_ascii_digit).collect();
                out.push((i + 1, json.to_string(), format!("10.{n}")));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[test]
fn the_examples_of_section_10_are_what_a_real_server_and_client_send() {
    let page_path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md");
    let page = std::fs::read_to_string(page_path).expect("docs/protocol.md");
    let examples = record();
    let dumps = dumps(&page);
    let mut wrong = Vec::new();

    // Every example's dumps, in order, and nothing else.
    let sections: Vec<&str> = {
        let mut s: Vec<&str> = dumps.iter().map(|d| d.section.as_str()).collect();
        s.dedup();
        s
    };
    let expected: Vec<&str> = examples
        .iter()
        .filter(|e| !e.frames.is_empty())
        .map(|e| e.section)
        .collect();
    assert_eq!(
        sections, expected,
        "the sections of docs/protocol.md with dumps are not the ones this test produces"
    );
    for e in &examples {
        let on_page: Vec<&Dump> = dumps.iter().filter(|d| d.section == e.section).collect();
        assert_eq!(
            on_page.len(),
            e.frames.len(),
            "section {} of docs/protocol.md has {} dumps; the test produces {}",
            e.section,
            on_page.len(),
            e.frames.len()
        );
        for (dump, real) in on_page.iter().zip(&e.frames) {
            let shown = xxd(real);
            if dump.lines != shown {
                let mut msg = format!(
                    "docs/protocol.md:{} ({}): the dump is not what was sent ({} bytes, {})\n",
                    dump.line,
                    dump.section,
                    real.len(),
                    decode(real)
                );
                for (k, real_line) in shown.iter().enumerate() {
                    let page_line = dump.lines.get(k).map(String::as_str).unwrap_or("");
                    let mark = if page_line == real_line { ' ' } else { '!' };
                    let _ = writeln!(
                        msg,
                        "  {mark} page: {page_line}\n  {mark} real: {real_line}"
                    );
                }
                for extra in dump.lines.iter().skip(shown.len()) {
                    let _ = writeln!(msg, "  ! page: {extra}\n  ! real:");
                }
                let _ = writeln!(msg, "the real dump, to paste:\n{}", shown.join("\n"));
                wrong.push(msg);
            }
            check_rows(dump, real, &mut wrong);
        }
    }

    // 10.12: the refused header is one over the default limit.
    let over = (frame::DEFAULT_MAX_PAYLOAD as u32 + 1).to_be_bytes();
    let needle = format!("`{}` as a frame header", hex(&over));
    if !page.contains(&needle) {
        wrong.push(format!("10.12 should show the header {needle}"));
    }

    // JSON quoted elsewhere with a reference to an example is in that example.
    let refs = json_references(&page);
    assert!(refs.len() >= 2, "too few JSON references found: {refs:?}");
    for (line, json, section) in refs {
        let found = examples
            .iter()
            .filter(|e| e.section == section)
            .flat_map(|e| &e.frames)
            .any(|f| f.windows(json.len()).any(|w| w == json.as_bytes()));
        if !found {
            wrong.push(format!(
                "docs/protocol.md:{line}: `{json}` is not in the bytes of {section}"
            ));
        }
    }

    assert!(
        wrong.is_empty(),
        "docs/protocol.md has drifted from the code:\n\n{}",
        wrong.join("\n")
    );
}
