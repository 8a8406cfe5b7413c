//! Lesson 24: a cluster over Redis. Every node writes its broadcasts into one Redis stream
//! and delivers what the stream brings, its own and the others'; requests that need every
//! node's answer go over Redis's PUB/SUB; sessions are kept in Redis, so a client whose node
//! died comes back on another one.
//!
//! Run it: `cargo run --bin 24_cluster -- --trace` (it starts its own `redis-server`), or
//! `redis-server --port 6379` and `24_cluster serve --redis redis://127.0.0.1:6379` in two
//! terminals (the second with `--addr 127.0.0.1:7124 --name B`), and `24_cluster client`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use socklab::apps::chat;
use socklab::apps::child::ServerProcess;
use socklab::apps::peer::Peer;
use socklab::apps::redis_server::{self, cli_text, RedisServer};
use socklab::events::{ClusterConfig, Event, RemoteSocket, Server, ServerConfig};
use socklab::lesson::{self, Endpoint, Role};
use socklab::transport::redis::parse_url;
use socklab::wire::offset;
use socklab::wire::resp::Reply;

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 24: a cluster over Redis, the fix for lesson 23. Each node writes every \
        broadcast into one Redis stream (XADD socket.io) and delivers what it reads back \
        from it (XREAD BLOCK), its own and the other nodes', in the stream's order; the \
        entry's id is the broadcast's offset on every node. Requests that need every node's \
        answer (fetchSockets, serverSideEmit) go over PUB/SUB, the node count is PUBSUB \
        NUMSUB, and each socket's session is kept in Redis: a client whose node died comes \
        back on another. The format is that of Socket.IO's @socket.io/redis-streams-adapter, \
        so Node.js Socket.IO servers can be nodes too.\n\n\
        With no arguments it starts a redis-server of its own (if installed), two nodes A and \
        B, and clients that show each part, then kills B. `serve` runs a node (the chat of \
        `socklab serve`, default address 127.0.0.1:7024); `client` asks a node for the node \
        count and every node's sockets.",
    serve: "Run a node of the cluster: the chat, and requests to the other nodes",
    client: "Ask a node how many nodes there are, and who is in the chat on every node",
};

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The cluster's Redis (redis://HOST:PORT)
    #[arg(long, value_name = "URL", value_parser = parse_url, default_value = "redis://127.0.0.1:6379")]
    redis: SocketAddr,
    /// The name this node gives itself in what it prints
    #[arg(long, default_value = "A")]
    name: String,
}

#[derive(Args)]
struct ClientArgs {
    #[command(flatten)]
    endpoint: Endpoint,
}

/// The longest the demonstration waits for anything a node should send.
const WAIT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<ServeArgs, ClientArgs>(7024, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(s)) => serve(s.endpoint.addr, s.redis, s.name),
        Some(Role::Client(c)) => client(c.endpoint.addr),
    })
}

// ANCHOR: serve
/// One node: the chat of `socklab serve` in the cluster of the Redis at `redis`, and, in
/// namespace `/`, three questions a client may ask it about the cluster.
fn serve(addr: SocketAddr, redis: SocketAddr, name: String) -> Result<(), Box<dyn Error>> {
    let mut server = Server::new(ServerConfig::default())?;
    server.stop_on_signals()?;
    let local = server.listen(addr)?;
    server.join_cluster(redis, ClusterConfig::default())?;
    let io = server.io();
    chat::install(io);
    // An event another node sends to the servers (not to any client), answered.
    let me = name.clone();
    io.on_server_event("/", move |_, ev| {
        println!("node {me}: server event {:?} {}", ev.name, json!(ev.args));
        json!(format!("{me} here"))
    });
    io.on_connection("/", |io, sid| {
        io.on(sid, "count", |io, ev| {
            let ev = ev.clone();
            io.server_count(chat::NAMESPACE, move |io, n| io.ack(&ev, vec![json!(n)]));
        });
        io.on(sid, "fetch", |io, ev| {
            let ev = ev.clone();
            io.fetch_sockets(chat::NAMESPACE, &[chat::DEFAULT_ROOM], move |io, found| {
                let answer = match found {
                    Ok(sockets) => json!(sockets.iter().map(describe).collect::<Vec<_>>()),
                    Err(e) => json!(e.to_string()),
                };
                io.ack(&ev, vec![answer]);
            });
        });
        io.on(sid, "tell", |io, ev: &Event| {
            let ev2 = ev.clone();
            let args = ev.args.clone();
            io.server_side_emit_with_ack("/", "hello", args, move |io, answers| {
                let answer = answers.map_or_else(|e| json!(e.to_string()), |a| json!(a));
                io.ack(&ev2, vec![answer]);
            });
        });
    });
    lesson::listening(local);
    server.run()?;
    println!("node {name}: stopped cleanly");
    Ok(())
}
// ANCHOR_END: serve

/// A socket of the chat as a line: its name and its rooms (its own id left out).
fn describe(s: &RemoteSocket) -> Value {
    let name = s.handshake["auth"]["name"].as_str().unwrap_or("?");
    let rooms: Vec<&String> = s.rooms.iter().filter(|r| **r != s.id).collect();
    json!({"name": name, "rooms": rooms})
}

/// Runs this program again as `serve --name NAME --redis URL --addr 127.0.0.1:0`.
fn start(
    name: &'static str,
    redis: SocketAddr,
) -> Result<(ServerProcess, SocketAddr), Box<dyn Error>> {
    let url = format!("redis://{redis}");
    let args = [
        "serve",
        "--name",
        name,
        "--redis",
        &url,
        "--addr",
        "127.0.0.1:0",
    ];
    ServerProcess::start(name, &args.map(String::from))
}

/// The fields of the stream's entry `id` (`XRANGE socket.io ID ID`), as `redis-cli` prints
/// them. By its id, not the newest: node B's `cy joined lobby` may reach the stream after
/// ada's message.
fn entry(redis: &RedisServer, id: &str) -> Result<String, Box<dyn Error>> {
    let reply = redis.ask(&["XRANGE", "socket.io", id, id])?;
    let Reply::Array(mut entries) = reply else {
        return Err(format!("no entry {id} in the stream").into());
    };
    let Some(Reply::Array(mut entry)) = entries.pop() else {
        return Err(format!("no entry {id} in the stream").into());
    };
    let fields = entry.pop().ok_or("an entry without fields")?;
    Ok(cli_text(&fields))
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    if !redis_server::installed() {
        println!(
            "redis-server is not installed: this lesson needs one (apt-get install redis-server)."
        );
        println!("The demonstration is skipped; the page shows what it prints.");
        return Ok(());
    }
    let mut redis = RedisServer::start(false)?;
    println!(
        "redis-server started on {} (a temporary directory, nothing saved)",
        redis.addr
    );
    let (a, at_a) = start("A", redis.addr)?;
    let (b, at_b) = start("B", redis.addr)?;
    redis.wait_readers(2, WAIT)?;
    // Their ports are the kernel's choice (port 0): the trace shows them.
    println!("nodes A and B started, each on a port of its own, both reading the stream socket.io");

    println!("-- 1. node ids, and how a node counts the nodes");
    let mut control = Peer::connect(at_a)?;
    let count = control.call("/", "count", vec![], WAIT)?;
    println!(
        "  A asks Redis PUBSUB NUMSUB socket.io#/chat#: {} nodes",
        json!(count[0])
    );
    let Reply::Array(channels) = redis.ask(&["PUBSUB", "CHANNELS", "socket.io#/chat#*"])? else {
        return Err("no channels".into());
    };
    let own: Vec<String> = channels
        .iter()
        .filter_map(|c| {
            c.as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        })
        .filter(|c| c.len() > "socket.io#/chat#".len())
        .collect();
    let ids: Vec<&str> = own
        .iter()
        .map(|c| &c["socket.io#/chat#".len()..c.len() - 1])
        .collect();
    println!(
        "  each node also listens on a channel of its own, socket.io#/chat#<its id>#: {} ids of {} characters, {}",
        ids.len(),
        ids.first().map_or(0, |i| i.len()),
        if ids.len() == 2 && ids[0] != ids[1] { "different" } else { "THE SAME" }
    );

    println!("-- 2. the fix: ada on node A and cy on node B, both in room lobby");
    let mut ada = Peer::connect(at_a)?;
    let ada_session = ada.join_chat("ada", WAIT)?;
    let mut cy = Peer::connect(at_b)?;
    let cy_session = cy.join_chat("cy", WAIT)?;
    ada.say("hello, lobby")?;
    println!("  ada says \"hello, lobby\" on node A");
    let (args, at) = cy
        .wait_for_event(chat::NAMESPACE, "chat message", WAIT)?
        .ok_or("cy never got ada's message")?;
    println!("  cy (node B) got {}", json!(args));
    let entry_id = at
        .and_then(offset::stream_id)
        .ok_or("no stream id as offset")?;
    println!("  at offset {entry_id}, the id of the message's stream entry (varies)");
    let ada_sid = ada_session["sid"]
        .as_str()
        .ok_or("ada's CONNECT reply has no sid")?;
    // The node and socket ids are random: the page shows what they are instead.
    let mut fields = entry(&redis, &entry_id)?;
    let node_a = ids
        .iter()
        .find(|id| fields.contains(**id))
        .ok_or("the entry names no node")?;
    fields = fields
        .replace(ada_sid, "<ada's socket id>")
        .replace(node_a, "<node A's id>");
    println!("  its fields, as redis-cli XRANGE socket.io <that id> <that id> prints them:");
    for line in fields.lines() {
        println!("    {line}");
    }

    println!("-- 3. a request every node answers: A asks for the sockets in lobby");
    let found = control.call("/", "fetch", vec![], WAIT)?;
    let mut found: Vec<String> = found[0]
        .as_array()
        .map(|a| a.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    found.sort();
    for s in found {
        println!("  {s}");
    }

    println!(
        "-- 4. A tells the other nodes \"hello\" (serverSideEmit), and waits for their answers"
    );
    let answers = control.call("/", "tell", vec![json!("from A")], WAIT)?;
    println!("  the answers: {}", json!(answers[0]));

    println!("-- 5. socket ids are made by each node alone, and unique across nodes");
    let cy_sid = cy_session["sid"].as_str().unwrap_or_default();
    println!(
        "  ada's and cy's ids: {} characters each from getrandom(2), {}",
        ada_sid.len(),
        if ada_sid != cy_sid {
            "different"
        } else {
            "THE SAME"
        }
    );

    println!("-- 6. node B is killed (SIGKILL); cy comes back on node A");
    let b_said = b.kill()?;
    ada.say("are you still there?")?;
    println!("  ada says \"are you still there?\" while cy has no node");
    let mut cy = Peer::connect(at_a)?;
    let auth = json!({
        "name": "cy",
        "room": chat::DEFAULT_ROOM,
        "pid": cy_session["pid"],
        "offset": at,
    });
    let back = match cy.join(chat::NAMESPACE, auth, WAIT)? {
        socklab::wire::packet::Packet::Connect { data: Some(d), .. } => d,
        other => return Err(format!("cy was refused: {other:?}").into()),
    };
    println!(
        "  cy joins node A with her private id and offset: recovered {}, the same socket id: {}",
        back["recovered"],
        back["sid"].as_str() == Some(cy_sid)
    );
    let missed = cy
        .wait_for(chat::NAMESPACE, "chat message", WAIT)?
        .ok_or("cy did not get what she missed")?;
    println!("  cy got what she missed: {}", json!(missed));

    for peer in [control, ada, cy] {
        peer.fd.close()?;
    }
    let a_said = a.stop()?;
    for line in b_said
        .iter()
        .chain(&a_said)
        .filter(|l| l.starts_with("node "))
    {
        println!("{line}");
    }
    redis.stop();
    println!("redis-server stopped");
    Ok(())
}
// ANCHOR_END: demo

/// The `client` side: the node count, and who is in the chat's lobby on every node.
fn client(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let mut peer = Peer::connect(addr)?;
    let count = peer.call("/", "count", vec![], WAIT)?;
    println!("nodes: {}", json!(count[0]));
    let found = peer.call("/", "fetch", vec![], WAIT)?;
    println!("in lobby on every node: {}", json!(found[0]));
    Ok(())
}
