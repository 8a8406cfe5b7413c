//! Hostile servers (issue 9, item 3, the client side): a raw `std::net::TcpListener` on
//! 127.0.0.1 (port 0) plays a server that does one bad thing on every connection, and the real
//! [`Client`] is the victim. Nothing such a server sends may make the client panic, spin,
//! hang without an error, or grow without bound.
//!
//! | test | the bad server, on every connection | what the client must do |
//! |---|---|---|
//! | `random_bytes_*` | bytes from a seeded generator instead of a HELLO (raw, or inside a frame header of a fitting length) | `parse error`, reconnect with backoff |
//! | `a_frame_header_over_the_limit_*` | a header declaring `max_frame + 1` bytes, or 4 GiB, and no payload | `parse error` from the header alone, reconnect |
//! | `huge_ping_settings_*` | HELLO with `pingInterval`/`pingTimeout` up to `u64::MAX`, then a CONNECT reply | no overflow: the numbers are clamped to 1 hour, and the client stays connected |
//! | `zero_ping_settings_*` | HELLO with both at 0, then a CONNECT reply, then no PING | clamped to 1 ms: `ping timeout` at once, reconnect with backoff, never a tight loop |
//! | `ping_settings_that_are_not_integers_*` | HELLO with negative, fractional, string, null or missing settings | no heartbeat expected (docs/protocol.md, 6.7): stays connected |
//! | `a_server_that_never_reads_*` | HELLO, CONNECT reply, then never reads while the client emits 64 KiB events | `outbound buffer full`, reconnect; emits while away buffer, then `BufferFull`; memory bounded |
//! | `a_reset_in_the_middle_of_a_frame_*` | HELLO, CONNECT reply, half a frame, then RST (SO_LINGER 0) | `transport error`, reconnect |
//! | `a_server_that_never_answers_the_connect_*` | HELLO, then PINGs every 50 ms but no CONNECT reply | `connect_error` "timeout" after `connect_timeout`, reconnect |
//!
//! How each test checks "no panic, no spin, backoff": the client runs on a thread of its own
//! for a fixed window; a panic there ends the thread and the test thread, waiting on a
//! channel with a deadline, says so. The client thread reads its own CPU time from
//! `/proc/thread-self/stat` before and after the window (a spinning loop would use all of
//! it). The fake server counts the TCP connects it accepts: with reconnection delays of 50,
//! 100, 200, 200, ... ms (no random spread), a window of `WINDOW` can see at most
//! `WINDOW / 50 ms + 1` of them; a tight loop would make hundreds.
//!
//! Every loop is bounded in count and time; no assertion is about speed.

mod common;
use common::{frame, pseudo_random, rss_kib, thread_cpu_ticks, FakeServer, USER_HZ, WAIT};

use std::cell::RefCell;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socket2::SockRef;
use socklab::events::{reasons, Client, ClientIo, ClientOptions, ClientState, EmitError};
use socklab::wire::packet::{Limits, Packet};

/// The first reconnection delay; it doubles up to `DELAY_MAX`. Small, so that a window sees
/// several attempts.
const DELAY: Duration = Duration::from_millis(50);
const DELAY_MAX: Duration = Duration::from_millis(200);
/// How long the client may take to connect and then to get its CONNECT reply.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a victim runs.
const WINDOW: Duration = Duration::from_millis(1500);

/// The server's HELLO with these settings.
fn hello(info: Value) -> Vec<u8> {
    frame(&Packet::hello(info))
}

/// A sane server's HELLO (the defaults).
fn default_hello() -> Vec<u8> {
    hello(json!({"pingInterval": 25000, "pingTimeout": 20000, "maxPayload": 1_000_000}))
}

/// A CONNECT reply that accepts the client into `/` as socket `fake-n`.
fn connect_reply(n: usize) -> Vec<u8> {
    frame(&Packet::Connect {
        ns: "/".into(),
        data: Some(json!({"sid": format!("fake-{n}"), "pid": "fake-pid", "offset": 0})),
    })
}

/// Writes `bytes`; a client that already went away is no failure of the fake server.
fn send(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes);
}

// ---------------------------------------------------------------------------------------------
// The victim
// ---------------------------------------------------------------------------------------------

/// What happened to the client during its window.
#[derive(Debug, Default)]
struct Report {
    /// `connect_error` events, their messages in order.
    connect_errors: Vec<String>,
    /// `disconnect` events (from a connected client), their reasons in order.
    disconnects: Vec<String>,
    /// At each `reconnect_attempt`: `disconnect_reason()` then, the reason the connection
    /// before was lost (stale when that attempt failed without a connection lost).
    reasons_before_attempts: Vec<Option<String>>,
    /// `connect` events.
    connects: usize,
    /// The client's state, and its accessors, at the end of the window.
    state: Option<ClientState>,
    disconnect_reason: Option<String>,
    connect_error: Option<String>,
    /// CPU ticks the client's thread used during the window, and how many turns it made.
    cpu_ticks: u64,
    turns: u64,
    /// For the tests that emit: emits accepted, and refused with `BufferFull` or otherwise.
    emits_ok: u64,
    emits_buffer_full: u64,
    emits_other_error: Vec<String>,
    /// The largest `offline_len()` seen.
    max_offline: usize,
}

/// The victim's options: fast reconnection without random spread, short timeouts.
fn options(addr: SocketAddr) -> ClientOptions {
    let mut opts = ClientOptions::new(addr);
    opts.reconnection_delay = DELAY;
    opts.reconnection_delay_max = DELAY_MAX;
    opts.randomization_factor = 0.0;
    opts.connect_timeout = CONNECT_TIMEOUT;
    opts
}

/// Runs a client against `addr` on a thread of its own for `window`, calling `each_turn`
/// before every turn (to emit, say), and returns what happened. Fails the test if the client
/// thread panics or does not come back in time.
fn victim(
    opts: ClientOptions,
    window: Duration,
    mut each_turn: impl FnMut(&mut ClientIo, &mut Report) + Send + 'static,
) -> Report {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let mut client = Client::connect(opts).expect("Client::connect");
        let report = Rc::new(RefCell::new(Report::default()));
        let r = report.clone();
        client.io().on("connect_error", move |_, ev| {
            let message = ev.args.first().and_then(Value::as_str).unwrap_or("");
            r.borrow_mut().connect_errors.push(message.to_string());
        });
        let r = report.clone();
        client.io().on("disconnect", move |_, ev| {
            let reason = ev.args.first().and_then(Value::as_str).unwrap_or("");
            r.borrow_mut().disconnects.push(reason.to_string());
        });
        let r = report.clone();
        client.io().on("reconnect_attempt", move |io, _| {
            let reason = io.disconnect_reason().map(str::to_string);
            r.borrow_mut().reasons_before_attempts.push(reason);
        });
        let r = report.clone();
        client
            .io()
            .on("connect", move |_, _| r.borrow_mut().connects += 1);

        let ticks_before = thread_cpu_ticks();
        let deadline = Instant::now() + window;
        let mut turns = 0;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            each_turn(client.io(), &mut report.borrow_mut());
            let offline = client.io().offline_len();
            let mut rep = report.borrow_mut();
            rep.max_offline = rep.max_offline.max(offline);
            drop(rep);
            // A 10 ms cap on each wait: the window ends on time even if nothing happens.
            client
                .turn(Some((deadline - now).min(Duration::from_millis(10))))
                .expect("client turn");
            turns += 1;
        }
        let cpu = thread_cpu_ticks() - ticks_before;
        let io = client.io();
        let (state, reason, error) = (
            io.state(),
            io.disconnect_reason().map(str::to_string),
            io.connect_error().map(str::to_string),
        );
        drop(client); // closes its connection: the fake server sees no more connects
        let mut report = Rc::try_unwrap(report)
            .map(RefCell::into_inner)
            .unwrap_or_else(|_| panic!("the listeners went with the client"));
        report.state = Some(state);
        report.disconnect_reason = reason;
        report.connect_error = error;
        report.cpu_ticks = cpu;
        report.turns = turns;
        let _ = tx.send(report);
    });
    let report = rx
        .recv_timeout(window + WAIT)
        .unwrap_or_else(|e| panic!("the client thread panicked or hung: {e}"));
    thread.join().expect("the client thread ends cleanly");
    report
}

/// The upper bound on TCP connects in `window` for a client that waits at least `DELAY`
/// between attempts: one at the start, one per `DELAY`, and one more for slack at the edges.
fn max_connects(window: Duration) -> usize {
    (window.as_millis() / DELAY.as_millis()) as usize + 2
}

/// No spinning: the client's thread used less than a third of the window's CPU time. A
/// client that waits on epoll between its timers uses almost none; a tight loop uses all.
fn assert_no_spin(what: &str, report: &Report, window: Duration) {
    let budget = USER_HZ * window.as_millis() as u64 / 1000 / 3;
    assert!(
        report.cpu_ticks < budget,
        "{what}: the client used {} CPU ticks in {window:?} (budget {budget}): spinning? {report:?}",
        report.cpu_ticks
    );
    assert!(report.turns >= 1, "{what}: the client never turned");
}

/// The client came back again and again, with its backoff and not in a tight loop.
fn assert_backoff(what: &str, server: &FakeServer, report: &Report) -> usize {
    let n = server.accepted();
    eprintln!(
        "{what}: {n} TCP connects in {WINDOW:?}, {} CPU ticks, {} turns",
        report.cpu_ticks, report.turns
    );
    assert!(n > 1, "{what}: the client did not reconnect: {report:?}");
    assert!(
        n <= max_connects(WINDOW),
        "{what}: {n} connects in {WINDOW:?}: a tight loop? {report:?}"
    );
    n
}

/// Every connection the client lost before the next attempt was lost for `reason`.
fn assert_attempts_after(what: &str, report: &Report, reason: &str) {
    assert!(
        !report.reasons_before_attempts.is_empty(),
        "{what}: no reconnection attempt: {report:?}"
    );
    for r in &report.reasons_before_attempts {
        assert_eq!(r.as_deref(), Some(reason), "{what}: {report:?}");
    }
}

// =============================================================================================
// Bytes that are not the protocol
// =============================================================================================

/// Random bytes instead of a HELLO: on even connections 4 KiB straight from the generator
/// (their first 4 bytes, read as a frame header, declare more than the limit: the seeds are
/// checked); on odd ones 64 random bytes inside a correct frame header, so that the packet
/// decoder, not the frame limit, refuses them. Either way: `parse error`, and the client
/// comes back with its backoff. The fake server keeps the connection open, so the end of
/// file plays no part.
#[test]
fn random_bytes_instead_of_a_hello_are_a_parse_error() {
    let limit = Limits::default().max_frame;
    let server = FakeServer::start(move |n, mut stream| {
        let seed = n as u64 + 1;
        if n % 2 == 0 {
            let bytes = pseudo_random(4096, seed);
            let declared = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            assert!(declared as usize > limit, "seed {seed}: pick another seed");
            send(&mut stream, &bytes);
        } else {
            let payload = pseudo_random(64, seed);
            let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            send(&mut stream, &bytes);
        }
        Some(stream)
    });
    let report = victim(options(server.addr), WINDOW, |_, _| {});
    never_connected_parse_error("random bytes", &server, &report);
    assert_eq!(
        report.disconnect_reason.as_deref(),
        Some(reasons::PARSE_ERROR)
    );
}

/// What a server that speaks garbage from its first byte gets: no spinning, attempts
/// spaced by the backoff, each one ended with `parse error`, and never a `connect`.
fn never_connected_parse_error(what: &str, server: &FakeServer, report: &Report) {
    assert_no_spin(what, report, WINDOW);
    assert_backoff(what, server, report);
    assert_attempts_after(what, report, reasons::PARSE_ERROR);
    assert_eq!(report.connects, 0, "{report:?}");
}

/// A frame header that declares one byte over the limit, or 4 GiB, and no payload: refused
/// from its 4 bytes (the client neither allocates nor waits for the payload), `parse error`,
/// and the client comes back.
#[test]
fn a_frame_header_over_the_limit_is_a_parse_error() {
    let over = Limits::default().max_frame as u32 + 1;
    let server = FakeServer::start(move |n, mut stream| {
        let declared = if n % 2 == 0 { over } else { u32::MAX };
        send(&mut stream, &declared.to_be_bytes());
        Some(stream)
    });
    let report = victim(options(server.addr), WINDOW, |_, _| {});
    never_connected_parse_error("a header over the limit", &server, &report);
}

// =============================================================================================
// Absurd HELLO settings
// =============================================================================================

/// A fake server that sends `info` as its HELLO settings, then accepts the client (CONNECT
/// reply), then sends nothing more (no PING).
fn hello_then_silence(info: Value) -> FakeServer {
    let hello = hello(info);
    FakeServer::start(move |n, mut stream| {
        let mut bytes = hello.clone();
        bytes.extend(connect_reply(n));
        send(&mut stream, &bytes);
        Some(stream)
    })
}

/// The client stayed on its first connection for the whole window: connected once, no
/// error, no reconnect.
fn assert_stays_connected(what: &str, server: &FakeServer, report: &Report) {
    assert_eq!(server.accepted(), 1, "{what}: {report:?}");
    assert_eq!(report.connects, 1, "{what}: {report:?}");
    assert_eq!(report.state, Some(ClientState::Connected), "{what}");
    assert!(report.disconnects.is_empty(), "{what}: {report:?}");
    assert!(report.connect_errors.is_empty(), "{what}: {report:?}");
}

/// `pingInterval` and `pingTimeout` up to `u64::MAX`. Their sum overflowed: a panic in a
/// debug build; in a release build a deadline of 0 (ping timeout at once, a reconnection loop)
/// or a panic when the deadline passed the end of `Instant`. Now each is clamped to 1 hour:
/// the client stays connected (it would call the server dead after 2 hours without a PING).
#[test]
fn huge_ping_settings_are_clamped_and_the_client_stays_connected() {
    let cases = [
        json!({"pingInterval": u64::MAX, "pingTimeout": u64::MAX}),
        json!({"pingInterval": u64::MAX, "pingTimeout": 1}),
        json!({"pingInterval": 1, "pingTimeout": u64::MAX}),
        json!({"pingInterval": u64::MAX / 2, "pingTimeout": u64::MAX / 2}),
        json!({"pingInterval": 1u64 << 53, "pingTimeout": 1u64 << 53, "maxPayload": u64::MAX}),
    ];
    each_stays_connected(cases);
}

/// For each HELLO settings object: a server that sends it and then nothing keeps the client
/// connected for half a second, without spinning.
fn each_stays_connected(cases: impl IntoIterator<Item = Value>) {
    let window = Duration::from_millis(500);
    for info in cases {
        let what = info.to_string();
        let server = hello_then_silence(info);
        let report = victim(options(server.addr), window, |_, _| {});
        assert_no_spin(&what, &report, window);
        assert_stays_connected(&what, &server, &report);
    }
}

/// Both at 0: clamped to 1 ms each, so the client expects a PING within 2 ms of the HELLO,
/// gets none, and closes with `ping timeout`. It comes back after its backoff: each CONNECT
/// reply resets the attempts, so every wait is the first delay (50 ms), never less.
#[test]
fn zero_ping_settings_are_a_ping_timeout_with_backoff() {
    let server = hello_then_silence(json!({"pingInterval": 0, "pingTimeout": 0}));
    let report = victim(options(server.addr), WINDOW, |_, _| {});
    let what = "pingInterval 0, pingTimeout 0";
    assert_no_spin(what, &report, WINDOW);
    let n = assert_backoff(what, &server, &report);
    assert_attempts_after(what, &report, reasons::PING_TIMEOUT);
    // Connected, then timed out, on most connections (the CONNECT reply comes in the same
    // read as the HELLO; the 2 ms may run out before it on a busy machine).
    assert!(report.connects >= 1 && report.connects <= n, "{report:?}");
    assert!(report
        .disconnects
        .iter()
        .all(|r| r == reasons::PING_TIMEOUT));
}

/// Settings that are not integers, or missing: as docs/protocol.md 6.7 says, the client then
/// expects no PING (a server that never sends one is not taken for dead). It stays
/// connected; nothing panics or spins.
#[test]
fn ping_settings_that_are_not_integers_mean_no_heartbeat() {
    let cases = [
        json!({"pingInterval": -1, "pingTimeout": -1}),
        json!({"pingInterval": i64::MIN, "pingTimeout": 20000}),
        json!({"pingInterval": 1.5, "pingTimeout": 1e300}),
        json!({"pingInterval": "25000", "pingTimeout": "20000"}),
        json!({"pingInterval": null, "pingTimeout": [1]}),
        json!({"pingInterval": 25000}),
        json!({}),
        json!(null),
        json!("not an object"),
    ];
    each_stays_connected(cases);
}

// =============================================================================================
// A server that never reads
// =============================================================================================

/// A server that accepts the client and then never reads (SO_RCVBUF 4 KiB), while the client
/// emits 64 KiB events, 4 per turn, for the whole window. Once the kernel's buffers are full,
/// the client's outbound buffer reaches its cap (1 MiB): the client closes the connection
/// with `outbound buffer full` and comes back with its backoff. Emits made while it is away
/// wait in the offline buffer (8 packets here) and past it fail with `BufferFull`, as
/// documented on `ClientOptions::offline_buffer`. So the client's memory stays bounded however
/// much is emitted: its resident memory grows by less than 32 MiB while it accepts far more.
///
/// No CPU bound here: the test itself keeps the client busy encoding events.
#[test]
fn a_server_that_never_reads_cannot_make_the_client_grow() {
    let server = FakeServer::start_with(
        Some(4096),
        Box::new(|n, mut stream| {
            let mut bytes = default_hello();
            bytes.extend(connect_reply(n));
            send(&mut stream, &bytes);
            Some(stream)
        }),
    );
    let mut opts = options(server.addr);
    opts.offline_buffer = 8;
    let pid = std::process::id();
    let rss_before = rss_kib(pid);
    let body = vec![0x5a_u8; 64 * 1024];
    let report = victim(opts, WINDOW, move |io, rep| {
        for _ in 0..4 {
            match io.emit_binary("fill", vec![json!("x")], vec![body.clone()]) {
                Ok(()) => rep.emits_ok += 1,
                Err(EmitError::BufferFull(_)) => rep.emits_buffer_full += 1,
                Err(e) => rep.emits_other_error.push(e.to_string()),
            }
        }
    });
    let rss_after = rss_kib(pid);
    let accepted_mib = report.emits_ok * 64 / 1024;
    eprintln!(
        "never reads: {} emits accepted ({accepted_mib} MiB), {} refused with BufferFull, \
         {} connects, VmRSS {rss_before} KiB before, {rss_after} KiB after, {} CPU ticks",
        report.emits_ok,
        report.emits_buffer_full,
        server.accepted(),
        report.cpu_ticks
    );
    let what = "a server that never reads";
    assert_backoff(what, &server, &report);
    assert!(report.emits_other_error.is_empty(), "{report:?}");
    assert!(report.emits_buffer_full >= 1, "{report:?}");
    assert!(report.max_offline <= 8, "{report:?}");
    assert!(
        report
            .disconnects
            .iter()
            .all(|r| r == reasons::OUTBOUND_FULL)
            && !report.disconnects.is_empty(),
        "{report:?}"
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "VmRSS grew from {rss_before} KiB to {rss_after} KiB after {accepted_mib} MiB of emits"
    );
}

// =============================================================================================
// Broken and stalled connections
// =============================================================================================

/// HELLO, CONNECT reply, a pause (so the client reads them and is connected), half an EVENT
/// frame, then close with SO_LINGER 0: an RST instead of a FIN. The client loses the
/// connection with `transport error` and comes back.
#[test]
fn a_reset_in_the_middle_of_a_frame_is_a_transport_error() {
    let event = frame(&Packet::Event {
        ns: "/".into(),
        name: "news".into(),
        args: vec![json!("z".repeat(100))],
        attachments: vec![],
        id: None,
        offset: None,
    });
    let server = FakeServer::start(move |n, mut stream| {
        let mut bytes = default_hello();
        bytes.extend(connect_reply(n));
        send(&mut stream, &bytes);
        thread::sleep(Duration::from_millis(20));
        send(&mut stream, &event[..event.len() / 2]);
        thread::sleep(Duration::from_millis(5));
        SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        None // dropped here: close(2) with linger 0 sends RST
    });
    let report = victim(options(server.addr), WINDOW, |_, _| {});
    let what = "a reset in the middle of a frame";
    assert_no_spin(what, &report, WINDOW);
    assert_backoff(what, &server, &report);
    assert_attempts_after(what, &report, reasons::TRANSPORT_ERROR);
    assert!(report.connects >= 1, "{report:?}");
    assert!(
        report
            .disconnects
            .iter()
            .all(|r| r == reasons::TRANSPORT_ERROR),
        "{report:?}"
    );
}

/// A server that sends its HELLO (and then a PING every 50 ms, so the heartbeat is happy) but
/// never answers the CONNECT. The client used to wait for ever in `Connecting`; now each
/// attempt fails after `connect_timeout` with `connect_error` "timeout: ...", and the client
/// comes back with its backoff: connects at about 0, 350, 750 and 1250 ms.
#[test]
fn a_server_that_never_answers_the_connect_times_out() {
    let server = FakeServer::start(|_, mut stream| {
        send(&mut stream, &default_hello());
        let mut pinger = stream.try_clone().expect("dup");
        // PINGs every 50 ms, at most 5 s, until the client has gone.
        thread::spawn(move || {
            for _ in 0..100 {
                if pinger.write_all(&frame(&Packet::Ping)).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        Some(stream)
    });
    let report = victim(options(server.addr), WINDOW, |_, _| {});
    let what = "a server that never answers the CONNECT";
    assert_no_spin(what, &report, WINDOW);
    let n = assert_backoff(what, &server, &report);
    assert_eq!(report.connects, 0, "{report:?}");
    assert!(report.disconnects.is_empty(), "{report:?}");
    let expected = format!(
        "timeout: no CONNECT reply within {} ms",
        CONNECT_TIMEOUT.as_millis()
    );
    // One `connect_error` per attempt that ran out (the last may still be under way).
    assert!(
        report.connect_errors.len() >= n - 1 && report.connect_errors.len() <= n,
        "{n} connects: {report:?}"
    );
    assert!(
        report.connect_errors.iter().all(|m| *m == expected),
        "{report:?}"
    );
    assert_eq!(report.state, Some(ClientState::Reconnecting));
}
