//! Lesson 12: backpressure: short writes, an outbound buffer, WRITABLE only while needed.
//!
//! Run it: `cargo run --bin 12_backpressure -- --trace`, or `12_backpressure serve` and
//! `12_backpressure client`.

use std::collections::HashMap;
use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use socklab::blocking;
use socklab::event_loop::{Config, ConnId, Ctx, EventLoop, Handler};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, Errno, MsgFlags, PollFd, PollFlags};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about:
        "Lesson 12: a big reply to a slow reader. The kernel takes what fits (a short write), the \
        rest waits in the connection's outbound buffer, capped at 1 MiB, and the loop asks for \
        WRITABLE only while something waits. Other clients are served meanwhile.\n\n\
        With no arguments it plays a slow client, a quick client and the server in one process. \
        `serve` answers `big` with 8 MiB and echoes anything else; `client` asks for the 8 MiB, \
        reads them slowly and checks every byte (default address 127.0.0.1:7012).",
    serve: "Serve 8 MiB to each client that sends \"big\", echo everything else; stop on SIGTERM",
    client: "Ask for the 8 MiB reply, read it slowly, check it is whole and in order",
};

#[derive(Args)]
struct ClientArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Pause this many milliseconds after each read (a slow reader)
    #[arg(long, default_value_t = 10)]
    pause_ms: u64,
}

/// Size of the big reply.
const BIG: usize = 8 << 20;

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, ClientArgs>(7012, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(c)) => client(c.endpoint.addr, Duration::from_millis(c.pause_ms)),
    })
}

/// Byte `i` of the big reply: a pattern with a period (251) that no buffer size divides, so a
/// lost, repeated or reordered chunk shows.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

// ANCHOR: handler
/// Sends `BIG` bytes to whoever asks, never more than the outbound cap at a time.
struct BigReply {
    /// Bytes of the reply already handed to the loop, per connection.
    progress: HashMap<ConnId, usize>,
    /// One chunk of the pattern, reused: a chunk starting at `i` is `chunk[i % 251..]`.
    chunk: Vec<u8>,
}

impl BigReply {
    fn new() -> BigReply {
        BigReply {
            progress: HashMap::new(),
            chunk: (0..64 * 1024 + 251).map(pattern).collect(),
        }
    }

    /// Queues as much of the reply as the outbound buffer takes; `drained` calls it again.
    fn fill(&mut self, ctx: &mut Ctx<()>, id: ConnId) {
        let Some(sent) = self.progress.get_mut(&id) else {
            return;
        };
        while *sent < BIG {
            let len = (BIG - *sent).min(64 * 1024);
            let start = *sent % 251;
            if ctx.send(id, &self.chunk[start..start + len]).is_err() {
                return; // full: wait for `drained`
            }
            *sent += len;
        }
    }
}

impl Handler for BigReply {
    type Timer = ();
    type Message = ();

    fn data(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        if bytes.starts_with(b"big\n") && !self.progress.contains_key(&id) {
            self.progress.insert(id, 0);
            self.fill(ctx, id);
            return 4;
        }
        // Anything else is echoed; if the buffer is full it waits, unconsumed.
        if ctx.send(id, bytes).is_ok() {
            bytes.len()
        } else {
            0
        }
    }

    fn drained(&mut self, ctx: &mut Ctx<()>, id: ConnId) {
        self.fill(ctx, id);
    }

    fn closed(&mut self, _: &mut Ctx<()>, id: ConnId, _: socklab::event_loop::CloseReason) {
        self.progress.remove(&id);
    }
}
// ANCHOR_END: handler

/// Reads what is there without blocking (MSG_DONTWAIT): how the demo's client waits its turn
/// while the server runs in the same thread.
fn read_some(fd: &sys::Fd, buf: &mut [u8]) -> sys::Result<usize> {
    match sys::recv(fd, buf, MsgFlags::DONTWAIT) {
        Err(e) if e.errno() == Errno::EAGAIN => Ok(0),
        Ok(0) => Err(sys::Error::new(
            "recvfrom",
            "demo client",
            Errno::ECONNRESET,
        )),
        other => other,
    }
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let mut ev = EventLoop::new(BigReply::new(), Config::default())?;
    let addr = ev.ctx().listen("127.0.0.1:0".parse()?)?;
    let slow = blocking::connect_tcp(addr)?;
    let quick = blocking::connect_tcp(addr)?;
    let step = Some(Duration::from_millis(100));
    ev.turn(step)?;

    blocking::write_all(&slow, b"big\n")?;
    ev.turn(step)?;
    let s = ev.ctx().stats().clone();
    println!(
        "the slow client asked for {BIG} bytes; the kernel took {} of them at once (varies)",
        s.bytes_out
    );
    let waiting: usize = ev
        .ctx()
        .connection_ids()
        .iter()
        .map(|&id| ev.ctx().pending(id))
        .sum();
    println!("{waiting} bytes wait in the outbound buffer, at most 1048576 (varies)");

    blocking::write_all(&quick, b"hello\n")?;
    ev.turn(step)?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = sys::read(&quick, &mut buf)?;
    println!(
        "the quick client got its echo at once: \"{}\"",
        lesson::show(&buf[..n])
    );

    // The slow client takes what has arrived, 64 KiB per read, until none is left; then the
    // loop sleeps until the kernel reports room (EPOLLOUT) for the bytes still waiting in
    // the outbound buffer. No turn wakes to find nothing.
    let started = Instant::now();
    let mut got = 0usize;
    while got < BIG && started.elapsed() < Duration::from_secs(10) {
        loop {
            let n = read_some(&slow, &mut buf)?;
            if n == 0 {
                break;
            }
            if buf[..n]
                .iter()
                .enumerate()
                .any(|(k, &b)| b != pattern(got + k))
            {
                return Err("the reply arrived out of order".into());
            }
            got += n;
        }
        let waiting = ev
            .ctx()
            .connection_ids()
            .iter()
            .any(|&id| ev.ctx().pending(id) > 0);
        if waiting {
            ev.turn(Some(Duration::from_millis(100)))?;
        } else if got < BIG {
            // All of the reply is in the kernel's buffers: wait for it to arrive.
            sys::poll(&mut [PollFd::new(&slow, PollFlags::IN)], 100)?;
        }
    }
    let s = ev.ctx().stats();
    println!("the slow client read {got} bytes, whole and in order");
    println!(
        "sendto calls: {}, short: {}, EAGAIN: {}, WRITABLE turned on {} times (varies)",
        s.writes, s.short_writes, s.writes_would_block, s.writable_on
    );
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let mut ev = EventLoop::new(BigReply::new(), Config::default())?;
    ev.stop_on_signals()?;
    let local = ev.ctx().listen(addr)?;
    lesson::listening(local);
    ev.run()?;
    println!("stopped");
    Ok(())
}

// ANCHOR: client
fn client(addr: SocketAddr, pause: Duration) -> Result<(), Box<dyn Error>> {
    let fd = blocking::connect_tcp(addr)?;
    blocking::write_all(&fd, b"big\n")?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    while got < BIG {
        let n = sys::read(&fd, &mut buf)?;
        if n == 0 {
            return Err(format!("the server closed after {got} of {BIG} bytes").into());
        }
        if let Some(k) = buf[..n]
            .iter()
            .enumerate()
            .position(|(k, &b)| b != pattern(got + k))
        {
            return Err(format!("byte {} is wrong", got + k).into());
        }
        got += n;
        std::thread::sleep(pause);
    }
    println!("received {got} bytes, whole and in order");
    std::io::stdout().flush()?;
    Ok(())
}
// ANCHOR_END: client
