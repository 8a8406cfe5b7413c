//! A socklab node of a cluster over Redis (`events/server/cluster/`): a server running the
//! chat application of `socklab serve` on a thread of the test process; and the raw socklab
//! chat clients the cluster tests put on it (`tests/cluster.rs`, `tests/cluster_node.rs`).

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socklab::events::{ClusterConfig, EventStats, Server, ServerConfig, ServerHandle};
use socklab::wire::packet::{self, Packet};

use super::{any_port, ask, raw_connect_ns, read_packet, WAIT};

/// How long a client listens for a message that must not come (a hop through Redis on
/// loopback takes well under a millisecond).
pub const SILENCE: Duration = Duration::from_millis(700);

/// A node: a server running the chat on a thread of its own, in the cluster of `redis`.
pub struct SocklabNode {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SocklabNode {
    pub fn start(redis: SocketAddr) -> SocklabNode {
        SocklabNode::start_with(
            redis,
            ClusterConfig {
                // Quick retries: the outage tests wait for the reconnect.
                retry_max: Duration::from_millis(200),
                ..ClusterConfig::default()
            },
        )
    }

    pub fn start_with(redis: SocketAddr, config: ClusterConfig) -> SocklabNode {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut server = Server::new(ServerConfig::default()).expect("a server");
            let addr = server.listen(any_port()).expect("listen");
            server
                .join_cluster(redis, config)
                .expect("join the cluster");
            socklab::apps::chat::install(server.io());
            tx.send((addr, server.handle())).expect("the test waits");
            server.run().expect("the server runs");
        });
        let (addr, handle) = rx.recv_timeout(WAIT).expect("the node started");
        SocklabNode {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    pub fn stats(&self) -> EventStats {
        ask(&self.handle, |io| io.stats())
    }

    /// Waits until `done` holds of this node's counters.
    pub fn wait_stats(&self, what: &str, done: impl Fn(&EventStats) -> bool) -> EventStats {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.stats();
            if done(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "{what}: {stats:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SocklabNode {
    fn drop(&mut self) {
        let _ = self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A raw chat client named `name` in `room`.
pub fn chat_client(addr: SocketAddr, name: &str, room: &str) -> TcpStream {
    chat_client_sid(addr, name, room).0
}

/// [`chat_client`], and its socket id.
pub fn chat_client_sid(addr: SocketAddr, name: &str, room: &str) -> (TcpStream, String) {
    let (stream, answer) = raw_connect_ns(addr, "/chat", json!({"name": name, "room": room}));
    let Packet::Connect { data, .. } = &answer else {
        panic!("{name}: {answer:?}");
    };
    let sid = data.as_ref().and_then(|d| d["sid"].as_str());
    let sid = sid.unwrap_or_else(|| panic!("CONNECT carries the sid: {answer:?}"));
    (stream, sid.to_string())
}

/// Sends `text` to `room` as a `chat message`.
pub fn say(stream: &mut TcpStream, room: &str, text: &str) {
    let p = Packet::Event {
        ns: "/chat".into(),
        name: "chat message".into(),
        args: vec![json!(room), json!(text)],
        attachments: Vec::new(),
        id: None,
        offset: None,
    };
    let mut bytes = Vec::new();
    packet::encode(&p, &mut bytes);
    stream.write_all(&bytes).expect("a packet sent");
}

/// The next event named `name` on `stream` within `wait`, whole (its attachments, its
/// offset), other events skipped; `None` if none came, or the server closed the connection.
pub fn next_event_packet(stream: &mut TcpStream, name: &str, wait: Duration) -> Option<Packet> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).expect("SO_RCVTIMEO");
        match read_packet(stream) {
            Ok(Some(p @ Packet::Event { .. })) if matches!(&p, Packet::Event { name: n, .. } if n == name) => {
                return Some(p)
            }
            Ok(Some(_)) => continue,
            Ok(None) => return None,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(e) => panic!("reading a chat client: {e}"),
        }
    }
}

/// The arguments of the next event named `name` on `stream` within `wait` (other events
/// skipped).
pub fn next_event(stream: &mut TcpStream, name: &str, wait: Duration) -> Option<Vec<Value>> {
    match next_event_packet(stream, name, wait)? {
        Packet::Event { args, .. } => Some(args),
        _ => None,
    }
}

/// The `sid`, `pid` and `offset` of a CONNECT's answer.
pub fn session_of(answer: &Packet) -> (String, String, u64) {
    let Packet::Connect { data: Some(d), .. } = answer else {
        panic!("not a CONNECT answer: {answer:?}");
    };
    let text = |k: &str| d[k].as_str().expect("a string").to_string();
    let offset = d["offset"].as_u64().expect("an offset");
    (text("sid"), text("pid"), offset)
}

/// Waits until `f` holds of node `n`'s state.
pub fn wait_for(
    n: &SocklabNode,
    what: &str,
    f: impl Fn(&mut socklab::events::Io) -> bool + Send + Clone + 'static,
) {
    let deadline = Instant::now() + super::WAIT;
    while !super::ask(&n.handle, f.clone()) {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that no `chat message` comes on `stream` for [`SILENCE`]; `why` says who should
/// not have heard one, or heard it twice.
pub fn assert_no_chat_message(stream: &mut TcpStream, why: &str) {
    let heard = next_chat_message(stream, SILENCE);
    assert_eq!(heard, None, "{why}");
}

/// The next `chat message` on `stream` within `wait` (`system` lines skipped).
pub fn next_chat_message(stream: &mut TcpStream, wait: Duration) -> Option<Value> {
    next_event(stream, "chat message", wait).map(|mut args| args.remove(0))
}
