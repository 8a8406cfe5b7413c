//! Lesson 23: SO_REUSEPORT. Two server processes listen on one port and the kernel gives
//! each new connection to one of them; what breaks: a chat message reaches only the clients
//! of the process it was sent to.
//!
//! Run it: `cargo run --bin 23_reuseport -- --trace`, or `23_reuseport serve --reuse-port`
//! in two terminals and `23_reuseport client` in a third.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use socklab::apps::chat;
use socklab::apps::child::ServerProcess;
use socklab::apps::peer::Peer;
use socklab::events::{Io, Server, ServerConfig};
use socklab::lesson::{self, Endpoint, Role};
use socklab::procnet;

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

/// A client of socklab's protocol by hand over a blocking socket (`apps/peer.rs`), and the
/// process that accepted it, as the server said.
struct Client {
    peer: Peer,
    process: String,
}

impl Client {
    /// Connects, joins namespace `/`, and waits for the server to say which process it is.
    fn connect(addr: SocketAddr) -> Result<Client, Box<dyn Error>> {
        let mut peer = Peer::connect(addr)?;
        let said = peer.wait_for("/", "process", WAIT)?;
        let name = said
            .as_ref()
            .and_then(|a| a.first())
            .and_then(Value::as_str);
        let process = name
            .ok_or("the server never said which process it is")?
            .into();
        Ok(Client { peer, process })
    }
}

/// Runs this program again as `serve --reuse-port --name NAME --addr ADDR`.
fn start(
    name: &'static str,
    addr: SocketAddr,
) -> Result<(ServerProcess, SocketAddr), Box<dyn Error>> {
    let args = [
        "serve",
        "--reuse-port",
        "--name",
        name,
        "--addr",
        &addr.to_string(),
    ];
    ServerProcess::start(name, &args.map(String::from))
}

/// How many of `peers` each process got: (A, B).
fn split(peers: &[Client]) -> (usize, usize) {
    let a = peers.iter().filter(|p| p.process == "A").count();
    (a, peers.len() - a)
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let (a, addr) = start("A", "127.0.0.1:0".parse()?)?;
    let (b, _) = start("B", addr)?; // the same port: A let it in
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
        peers.push(Client::connect(addr)?);
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
    peers[speaker].peer.join_chat("ada", WAIT)?;
    peers[same].peer.join_chat("bob", WAIT)?;
    peers[other].peer.join_chat("cy", WAIT)?;
    println!("  ada and bob on one process, cy on the other");
    peers[speaker].peer.say("hello, lobby")?;
    println!("  ada says \"hello, lobby\"");
    match peers[same]
        .peer
        .wait_for(chat::NAMESPACE, "chat message", WAIT)?
    {
        Some(args) => println!("  bob (same process) got {}", json!(args)),
        None => println!("  bob (same process) got nothing: this should not happen"),
    }
    match peers[other]
        .peer
        .wait_for(chat::NAMESPACE, "chat message", SILENCE)?
    {
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

    for client in peers {
        client.peer.fd.close()?;
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
        peers.push(Client::connect(addr)?);
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
