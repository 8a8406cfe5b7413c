//! Lesson 23: SO_REUSEPORT. Two server processes listen on one port and the kernel gives
//! each new connection to one of them; what breaks: a chat message reaches only the clients
//! of the process it was sent to.
//!
//! Run it: `cargo run --bin 23_reuseport -- --trace`, or `23_reuseport serve --reuse-port`
//! in two terminals and `23_reuseport client` in a third.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};
use socklab::apps::chat;
use socklab::blocking;
use socklab::events::{Io, Server, ServerConfig};
use socklab::lesson::{self, Endpoint, Role};
use socklab::procnet;
use socklab::sys::{self, Fd, PollFd, PollFlags};
use socklab::wire::packet::{self, Limits, Packet, PacketDecoder};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 23: SO_REUSEPORT lets several sockets listen on the same address, in one \
        process or in several; the kernel gives each new connection to one of them, chosen by \
        a hash of the connection's addresses and ports. What breaks: each process has its own \
        rooms, so a chat message sent on one never reaches the clients of the other.\n\n\
        With no arguments it starts itself twice as `serve --reuse-port` (processes A and B) on \
        one port, connects 20 clients and counts where they went, shows a chat message that \
        reaches a client on the same process and not one on the other, then tries a listener \
        without the option: EADDRINUSE. `serve` runs the chat of `socklab serve` and tells \
        each client which process it reached (default address 127.0.0.1:7023); start two \
        with `--reuse-port` and different `--name`s. `client` connects many times and counts.",
    serve: "Run the chat server; each client is told which process (--name) it reached",
    client: "Connect --count times and print how many connections each process got",
};

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Set SO_REUSEPORT before bind(), so that another server with it can share the port
    #[arg(long)]
    reuse_port: bool,
    /// The name this process gives itself in what it prints and tells its clients
    #[arg(long, default_value = "A")]
    name: String,
}

#[derive(Args)]
struct ClientArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// How many connections to open
    #[arg(long, default_value_t = CLIENTS)]
    count: usize,
}

/// How many clients the demonstration connects: enough for the spread to show.
const CLIENTS: usize = 20;

/// The longest the demonstration waits for anything a server should send.
const WAIT: Duration = Duration::from_secs(5);

/// How long a client listens for a message that should never come.
const SILENCE: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<ServeArgs, ClientArgs>(7023, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(s)) => serve(s.endpoint.addr, s.reuse_port, &s.name),
        Some(Role::Client(c)) => client(c.endpoint.addr, c.count),
    })
}

// ANCHOR: serve
/// The server of one process: the chat of `socklab serve`, and a greeting in namespace `/`
/// that tells each client which process it reached.
fn serve(addr: SocketAddr, reuse_port: bool, name: &str) -> Result<(), Box<dyn Error>> {
    let mut server = Server::new(ServerConfig::default())?;
    server.stop_on_signals()?;
    let local = if reuse_port {
        server.listen_shared(addr)? // SO_REUSEPORT, then bind
    } else {
        server.listen(addr)?
    };
    install(server.io(), name.to_string());
    lesson::listening(local);
    server.run()?;
    println!("process {name}: stopped cleanly");
    Ok(())
}

fn install(io: &mut Io, name: String) {
    chat::install(io);
    io.on_connection("/", move |io, sid| {
        if let Some(peer) = io.handshake(sid).map(|h| h.peer) {
            println!("process {name}: a client connected from {peer}");
        }
        let _ = io.emit(sid, "process", vec![json!(name)]);
    });
}
// ANCHOR_END: serve

/// A client that speaks socklab's protocol by hand over a blocking socket, with a deadline
/// on every wait (poll before each read), so that a silent server cannot hang the lesson.
struct Peer {
    fd: Fd,
    decoder: PacketDecoder,
    /// The process that accepted this connection, as it said.
    process: String,
}

impl Peer {
    /// Connects, joins namespace `/`, and waits for the server to say which process it is.
    fn connect(addr: SocketAddr) -> Result<Peer, Box<dyn Error>> {
        let fd = blocking::connect_tcp(addr)?;
        blocking::write_all(&fd, &packet::greeting(None))?;
        let mut peer = Peer {
            fd,
            decoder: PacketDecoder::new(Limits::default()),
            process: String::new(),
        };
        let said = peer.wait_for("/", "process", WAIT)?;
        let name = said
            .as_ref()
            .and_then(|a| a.first())
            .and_then(Value::as_str);
        peer.process = name
            .ok_or("the server never said which process it is")?
            .into();
        Ok(peer)
    }

    /// Joins the chat (namespace `/chat`) as `name`, in room `lobby`, on the same connection.
    fn join_chat(&mut self, name: &str) -> Result<(), Box<dyn Error>> {
        let auth = json!({"name": name, "room": chat::DEFAULT_ROOM});
        self.send(&Packet::Connect {
            ns: chat::NAMESPACE.into(),
            data: Some(auth),
        })?;
        let deadline = Instant::now() + WAIT;
        while let Some(p) = self.next_packet(deadline)? {
            if matches!(&p, Packet::Connect { ns, .. } if ns == chat::NAMESPACE) {
                return Ok(());
            }
        }
        Err(format!("{name} was not let into the chat").into())
    }

    fn say(&mut self, text: &str) -> Result<(), Box<dyn Error>> {
        self.send(&Packet::Event {
            ns: chat::NAMESPACE.into(),
            name: "chat message".into(),
            args: vec![json!(chat::DEFAULT_ROOM), json!(text)],
            attachments: Vec::new(),
            id: None,
            offset: None,
        })
    }

    fn send(&mut self, p: &Packet) -> Result<(), Box<dyn Error>> {
        Ok(blocking::write_all(&self.fd, &packet::encode_to_vec(p))?)
    }

    /// The arguments of the next `event` in namespace `ns` within `wait`, other packets
    /// skipped (the chat's `system` lines); `None` if none came in time.
    fn wait_for(
        &mut self,
        ns: &str,
        event: &str,
        wait: Duration,
    ) -> Result<Option<Vec<Value>>, Box<dyn Error>> {
        let deadline = Instant::now() + wait;
        while let Some(p) = self.next_packet(deadline)? {
            if let Packet::Event {
                ns: n, name, args, ..
            } = p
            {
                if n == ns && name == event {
                    return Ok(Some(args));
                }
            }
        }
        Ok(None)
    }

    /// The next packet, or `None` once `deadline` passed with nothing complete.
    fn next_packet(&mut self, deadline: Instant) -> Result<Option<Packet>, Box<dyn Error>> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(p) = self.decoder.next_packet()? {
                return Ok(Some(p));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            if left.is_zero() || sys::poll(&mut fds, ms)? == 0 {
                return Ok(None);
            }
            let n = sys::read(&self.fd, &mut buf)?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.decoder.feed(&buf[..n]);
        }
    }
}

/// A server process this lesson started, and its stdout. Dropped without
/// [`stop`](Process::stop) (the lesson failed half-way), it still stops the child, so that no server
/// outlives the lesson.
struct Process {
    name: &'static str,
    child: Child,
    out: BufReader<ChildStdout>,
    stopped: bool,
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.stopped {
            // Both fail harmlessly if the child has already exited.
            let _ = sys::signal::terminate(self.child.id());
            let _ = self.child.wait();
        }
    }
}

impl Process {
    /// Runs this program again as `serve --reuse-port --name NAME --addr ADDR` and waits for
    /// its `listening on` line; returns the address it listens on.
    fn start(
        name: &'static str,
        addr: SocketAddr,
    ) -> Result<(Process, SocketAddr), Box<dyn Error>> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["serve", "--reuse-port", "--name", name, "--addr"])
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if sys::trace::enabled() {
            cmd.arg("--trace");
        }
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or("no pipe from the server's stdout")?;
        let mut p = Process {
            name,
            child,
            out: BufReader::new(stdout),
            stopped: false,
        };
        let mut line = String::new();
        p.out.read_line(&mut line)?;
        // On an error `p` is dropped, which stops the child.
        match line.trim().strip_prefix("listening on ") {
            Some(a) => Ok((p, a.parse()?)),
            None => Err(format!("process {name} did not start").into()),
        }
    }

    /// SIGTERM to this child, by its pid; then the rest of what it printed, once it exits.
    fn stop(mut self) -> Result<Vec<String>, Box<dyn Error>> {
        sys::signal::terminate(self.child.id())?;
        let mut lines = Vec::new();
        for line in (&mut self.out).lines() {
            lines.push(line?);
        }
        let status = self.child.wait()?;
        self.stopped = true;
        if !status.success() {
            return Err(format!("process {} ended with {status}", self.name).into());
        }
        Ok(lines)
    }
}

/// How many of `peers` each process got: (A, B).
fn split(peers: &[Peer]) -> (usize, usize) {
    let a = peers.iter().filter(|p| p.process == "A").count();
    (a, peers.len() - a)
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let (a, addr) = Process::start("A", "127.0.0.1:0".parse()?)?;
    let (b, _) = Process::start("B", addr)?; // the same port: A let it in
    println!("processes A and B both listen on {addr}, each with SO_REUSEPORT:");
    // The kernel's socket table (what `ss -tln` shows): two listening sockets, one address.
    // Not `rows_for`, which drops identical rows.
    for row in procnet::tcp_rows() {
        if row.local == addr && row.state == "LISTEN" {
            println!("  {} {}", row.state, row.local);
        }
    }

    println!("-- 1. {CLIENTS} clients connect; each server says which process it is");
    let mut peers = Vec::new();
    for _ in 0..CLIENTS {
        peers.push(Peer::connect(addr)?);
    }
    let (on_a, on_b) = split(&peers);
    println!("  process A got {on_a}, process B got {on_b} (the split varies)");
    println!(
        "  together {}: each connection went to one process",
        on_a + on_b
    );

    println!("-- 2. what breaks: three of them join the chat room lobby");
    let speaker = 0;
    let same = (1..peers.len()).find(|&i| peers[i].process == peers[speaker].process);
    let other = (1..peers.len()).find(|&i| peers[i].process != peers[speaker].process);
    let (Some(same), Some(other)) = (same, other) else {
        return Err("one process got (almost) every connection: run the lesson again".into());
    };
    peers[speaker].join_chat("ada")?;
    peers[same].join_chat("bob")?;
    peers[other].join_chat("cy")?;
    println!("  ada and bob on one process, cy on the other");
    peers[speaker].say("hello, lobby")?;
    println!("  ada says \"hello, lobby\"");
    match peers[same].wait_for(chat::NAMESPACE, "chat message", WAIT)? {
        Some(args) => println!("  bob (same process) got {}", json!(args)),
        None => println!("  bob (same process) got nothing: this should not happen"),
    }
    match peers[other].wait_for(chat::NAMESPACE, "chat message", SILENCE)? {
        Some(args) => println!(
            "  cy (other process) got {}: this should not happen",
            json!(args)
        ),
        None => println!(
            "  cy (other process) got nothing in {} ms: the other process never saw it",
            SILENCE.as_millis()
        ),
    }

    println!("-- 3. a third listener on {addr} without SO_REUSEPORT");
    match Server::new(ServerConfig::default())?.listen(addr) {
        Ok(_) => println!("  it listens too: this should not happen"),
        Err(e) => println!("  {e}"),
    }

    for peer in peers {
        peer.fd.close()?;
    }
    let (said_a, said_b) = (count_connected(a.stop()?), count_connected(b.stop()?));
    let agree = (said_a, said_b) == (on_a, on_b);
    println!(
        "processes A and B stopped; their own logs {} with the clients",
        if agree { "agree" } else { "DISAGREE" }
    );
    Ok(())
}
// ANCHOR_END: demo

/// How many `a client connected` lines a server process printed.
fn count_connected(lines: Vec<String>) -> usize {
    lines
        .iter()
        .filter(|l| l.contains("a client connected"))
        .count()
}

/// The `client` side: `count` connections to `addr`, and where they went.
fn client(addr: SocketAddr, count: usize) -> Result<(), Box<dyn Error>> {
    let mut peers = Vec::new();
    for _ in 0..count {
        peers.push(Peer::connect(addr)?);
    }
    let mut names: Vec<&str> = peers.iter().map(|p| p.process.as_str()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let n = peers.iter().filter(|p| p.process == name).count();
        println!("process {name} got {n} of {count}");
    }
    Ok(())
}
