//! What every lesson binary shares: the command line (`--trace`, `serve`/`client`,
//! `--addr`), the "listening on" line, and turning an error into a message and an exit code;
//! and where the built lesson binaries are, for the programs that run them.
//!
//! The binaries in `bin/` stay short because of this module; the lesson itself is the code
//! they keep.

use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser};

use crate::sys;

/// `--trace`, on every lesson binary.
#[derive(Args, Debug, Clone, Copy)]
pub struct Trace {
    /// Print every socket syscall to stderr, in strace's syntax, as it returns
    /// (same as SOCKLAB_TRACE=1)
    #[arg(long, global = true)]
    pub trace: bool,
}

/// `--addr HOST:PORT` of a `serve` or `client` subcommand.
#[derive(Args, Debug, Clone, Copy)]
pub struct Endpoint {
    /// Address to listen on (serve) or connect to (client); port 0 picks a free port
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: SocketAddr,
}

/// The `client` subcommand of lessons 16 and 17.
#[derive(Args, Debug)]
pub struct TickerArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// Stop after this many acknowledged ticks (default: never)
    #[arg(long)]
    pub count: Option<u64>,
}

/// Parses the command line of a lesson whose default address is `127.0.0.1:port`.
///
/// The default is written into every subcommand's `--addr`, so `--help` shows the real one.
pub fn parse<C: Parser>(port: u16) -> C {
    let matches = with_default_addr(C::command(), port).get_matches();
    match C::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    }
}

/// Runs a lesson's body: turns the self-trace on if asked, and turns an error into
/// `error: <message>` on stderr and exit code 1, never a panic.
pub fn run(trace: Trace, body: impl FnOnce() -> Result<(), Box<dyn Error>>) -> ExitCode {
    quiet_broken_pipe();
    sys::trace::enable(trace.trace);
    sys::trace::enable_from_env();
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Flush what the lesson printed so far, so the error comes after it.
            let _ = std::io::stdout().flush();
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `println!` panics when stdout is a closed pipe (`... | head`), because Rust ignores
/// SIGPIPE (lesson 00). Make that an ordinary quiet exit, with the status a shell shows for
/// a process killed by SIGPIPE (128 + 13), instead of a panic message.
pub fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Prints `listening on HOST:PORT` (the real port) and flushes it, so a script or a test
/// reading our stdout knows it can connect now.
pub fn listening(addr: SocketAddr) {
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
}

/// A fixed-size buffer for reading stdin chunk by chunk in `client` subcommands.
pub fn stdin_chunks(
    chunk: usize,
    mut each: impl FnMut(&[u8]) -> Result<(), Box<dyn Error>>,
) -> Result<(), Box<dyn Error>> {
    use std::io::Read;
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = stdin.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        each(&buf[..n])?;
    }
}

/// Shows bytes for a narration line: printable ASCII as is, the rest escaped.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Blocks until a line (or end of file) arrives on stdin, so a learner can look around with
/// `ss` before the program exits. With stdin closed or redirected from /dev/null it returns
/// at once.
pub fn wait_for_enter(what: &str) {
    println!("{what}: press Enter to stop");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Every lesson: number, binary, what it teaches. The one list: `socklab lessons` prints it,
/// and `tests/catalogue.rs` checks that the tables in `README.md` and `src/lib.rs` say the
/// same.
pub const LESSONS: &[(&str, &str, &str)] = &[
    (
        "00",
        "00_socket",
        "socket and close; a descriptor is a small integer",
    ),
    (
        "01",
        "01_listen",
        "bind, listen, getsockname; port 0; the backlog",
    ),
    (
        "02",
        "02_accept",
        "a blocking accept; write a greeting; close",
    ),
    (
        "03",
        "03_connect",
        "connect; read until 0 means end of file; ECONNREFUSED",
    ),
    (
        "04",
        "04_echo",
        "an echo server and client; short reads; the write-all loop",
    ),
    (
        "05",
        "05_half_close",
        "shutdown(SHUT_WR) versus close; getpeername",
    ),
    (
        "06",
        "06_reuseaddr",
        "TIME_WAIT, EADDRINUSE on restart, SO_REUSEADDR",
    ),
    (
        "07",
        "07_reset_pipe",
        "SO_LINGER 0 and RST; ECONNRESET, EPIPE, SIGPIPE, MSG_NOSIGNAL",
    ),
    (
        "08",
        "08_framing",
        "length-prefixed frames over a byte stream",
    ),
    (
        "09",
        "09_nonblocking",
        "O_NONBLOCK, EAGAIN, and why spinning is no answer",
    ),
    (
        "10",
        "10_poll_chat",
        "poll(2) over many descriptors: a chat room in one thread",
    ),
    (
        "11",
        "11_mio_loop",
        "epoll through mio: the event loop, edge-triggered",
    ),
    (
        "12",
        "12_backpressure",
        "short writes, an outbound buffer, WRITABLE only while needed",
    ),
    (
        "13",
        "13_nb_connect",
        "non-blocking connect: EINPROGRESS, SO_ERROR, a timeout",
    ),
    (
        "14",
        "14_events",
        "the event protocol on the wire: events and acks, byte by byte",
    ),
    (
        "15",
        "15_rooms",
        "rooms and broadcasts: to(room), all but the sender, unions",
    ),
    (
        "16",
        "16_heartbeat_reconnect",
        "heartbeats, a dead peer, reconnection with backoff, the offline buffer",
    ),
    (
        "17",
        "17_graceful_shutdown",
        "a signal wakes the loop; tell clients, drain, FIN not RST; clients return",
    ),
    (
        "18",
        "18_http",
        "HTTP/1.1 on the loop: a blank line ends a request; keep-alive, pipelining",
    ),
    (
        "19",
        "19_websocket",
        "the upgrade and its accept key; frames, masks, fragments, ping, close",
    ),
    (
        "20",
        "20_engineio",
        "Engine.IO over WebSocket: the open packet, the server's ping, messages",
    ),
    (
        "21",
        "21_socketio",
        "Socket.IO packets in Engine.IO: CONNECT, EVENT, ACK, binary, both encodings counted",
    ),
    (
        "22",
        "22_polling_upgrade",
        "long-polling: a held GET, POSTs, records; the upgrade: probe, noop, 5",
    ),
    (
        "23",
        "23_reuseport",
        "SO_REUSEPORT: two processes share a port, the kernel spreads connections; a chat message stays on its process",
    ),
    (
        "24",
        "24_cluster",
        "a cluster over Redis: broadcasts through a stream, requests over PUB/SUB, sessions that survive a node",
    ),
];

/// Bytes as `xxd` shows them: offset, 16 bytes in hex, the printable ones as text.
pub fn hexdump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, row) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = row
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(
            "  {:04x}: {:<47}  {text}\n",
            i * 16,
            hex.join(" ")
        ));
    }
    out
}

/// The command line of a lesson with two sides: `--trace`, and an optional `serve` or
/// `client` subcommand with their own arguments (`S`, `C`); no subcommand runs the demo.
#[derive(Parser, Debug)]
pub struct TwoSided<S: Args, C: Args> {
    #[command(flatten)]
    pub trace: Trace,
    #[command(subcommand)]
    pub role: Option<Role<S, C>>,
}

/// The role a lesson binary plays when run for one terminal: `serve` or `client`.
#[derive(clap::Subcommand, Debug)]
pub enum Role<S: Args, C: Args> {
    Serve(S),
    Client(C),
}

/// What `--help` says about a lesson and each of its sides.
pub struct Help {
    /// The lesson's summary: its first line is the short help, the rest the long help.
    pub about: &'static str,
    pub serve: &'static str,
    pub client: &'static str,
}

/// Parses a two-sided lesson's command line, with `127.0.0.1:port` as the default address
/// and `help`'s texts in `--help`.
pub fn parse_sides<S: Args, C: Args>(port: u16, help: Help) -> TwoSided<S, C> {
    use clap::{CommandFactory, FromArgMatches};
    let (short, long) = help.about.split_once("\n\n").unwrap_or((help.about, ""));
    let mut cmd = TwoSided::<S, C>::command()
        .about(short.trim().to_string())
        .long_about(format!("{}\n\n{}", short.trim(), long.trim()))
        .mut_subcommand("serve", |s| s.about(help.serve))
        .mut_subcommand("client", |s| s.about(help.client));
    cmd = with_default_addr(cmd, port);
    let matches = cmd.get_matches();
    match TwoSided::<S, C>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    }
}

/// Writes `127.0.0.1:port` as the default of every subcommand's `--addr`, so that `--help`
/// shows the real one.
fn with_default_addr(mut cmd: clap::Command, port: u16) -> clap::Command {
    let default = format!("127.0.0.1:{port}");
    let names: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| s.get_arguments().any(|a| a.get_id() == "addr"))
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        let d = default.clone();
        cmd = cmd.mut_subcommand(name, move |s| {
            s.mut_arg("addr", move |a| a.default_value(d).required(false))
        });
    }
    cmd
}

/// The `serve` side of the lessons whose server is a loop handler (18 and after): `handler`
/// on a loop listening on `addr`, `listening on ...` once it accepts, a graceful stop on
/// SIGINT or SIGTERM; then `report` reads the handler's counters.
pub fn serve_on_loop<H: crate::event_loop::Handler, R>(
    handler: H,
    addr: SocketAddr,
    report: impl FnOnce(&mut H) -> R,
) -> Result<R, Box<dyn Error>> {
    let config = crate::event_loop::Config::default();
    let mut ev = crate::event_loop::EventLoop::new(handler, config)?;
    ev.stop_on_signals()?;
    let local = ev.ctx().listen(addr)?;
    listening(local);
    ev.run()?;
    Ok(report(ev.handler()))
}

/// The `serve` side of the event lessons: an event server on `addr` with the handlers
/// `setup` registers, `listening on ...` once it accepts, a graceful stop on SIGINT or
/// SIGTERM (every client told `server shutting down`, output flushed, FIN), then
/// `stopped cleanly` and a normal return (exit status 0).
pub fn serve_events(
    config: crate::events::ServerConfig,
    addr: SocketAddr,
    setup: impl FnOnce(&mut crate::events::Io),
) -> Result<(), Box<dyn Error>> {
    let mut server = crate::events::Server::new(config)?;
    server.stop_on_signals()?;
    let local = server.listen(addr)?;
    setup(server.io());
    listening(local);
    server.run()?;
    println!("stopped cleanly");
    Ok(())
}

/// The time since `start`, as the lessons about timing print it at the start of a line:
/// `[  2503 ms]`, the format of the ticking client (`apps::ticker`), so that the lines of a
/// server and of its client can be set side by side.
pub fn elapsed(start: std::time::Instant) -> String {
    crate::apps::ticker::stamp(Some(start))
        .trim_end()
        .to_string()
}

/// Prints what time of day (UTC) `start` was, so that a moment noted with
/// `date -u +%T.%3N` in another terminal can be placed on the clock [`elapsed`] reads.
pub fn print_clock_start(start: std::time::Instant) {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(start.elapsed());
    let (secs, ms) = (since_epoch.as_secs() % 86_400, since_epoch.subsec_millis());
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    println!("[     0 ms] is {h:02}:{m:02}:{s:02}.{ms:03} UTC");
}

/// [`serve_events`] for the lessons about timing (16 and 17): `setup` gets the moment the
/// server started listening, the 0 of the clock its lines print ([`elapsed`]), and the line
/// after `listening on` says what time of day that was.
pub fn serve_events_timed(
    config: crate::events::ServerConfig,
    addr: SocketAddr,
    setup: impl FnOnce(&mut crate::events::Io, std::time::Instant),
) -> Result<(), Box<dyn Error>> {
    let mut server = crate::events::Server::new(config)?;
    server.stop_on_signals()?;
    let local = server.listen(addr)?;
    let start = std::time::Instant::now();
    setup(server.io(), start);
    listening(local);
    print_clock_start(start);
    server.run()?;
    println!("stopped cleanly");
    Ok(())
}

/// The lesson binary whose name starts with `NN_`, built next to the running program: both
/// are in target/release after `cargo build --release`, where `socklab trace NN` and the
/// benchmark harness (`socklab-bench loop`, in benches/harness) look for them.
pub fn built_binary(number: &str) -> Result<PathBuf, Box<dyn Error>> {
    let dir = std::env::current_exe()?
        .parent()
        .ok_or("cannot tell where this program lives")?
        .to_path_buf();
    let prefix = format!("{number}_");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && !n.contains('.') && !n.contains('-'))
        })
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        format!(
            "no lesson binary {prefix}* in {} (build it first)",
            dir.display()
        )
        .into()
    })
}
