//! A Node.js Socket.IO server in the cluster: `tests/interop/cluster_node.js` (Socket.IO
//! 4.8.4 on `@socket.io/redis-streams-adapter` 0.3.1, running the chat of `apps/chat.rs`) as
//! a child process. The test drives it with JSON commands on its stdin; each is answered by
//! one JSON line on its stdout carrying the command's id, and the lines it prints on its own
//! (a connection, a server-side event from another node) wait in a queue for
//! [`NodeNode::wait_line`]. The protocol is described in `tests/interop/README.md`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{node_script, Exited, Input, Proc, WAIT};

/// What `cluster_node.js` needs besides socket.io-client, each at its pin in package.json.
const PACKAGES: [&str; 3] = ["socket.io", "@socket.io/redis-streams-adapter", "redis"];

pub struct NodeNode {
    /// `None` once stopped.
    proc: Option<Proc>,
    addr: SocketAddr,
    last_id: u64,
    /// Lines read while waiting for something else, oldest first.
    queue: VecDeque<Value>,
}

impl NodeNode {
    /// Starts a node in the cluster of the Redis at `redis`, and waits (at most [`WAIT`]) for
    /// it to listen. `None` (after saying so) when node or the interop packages are missing;
    /// a failure instead under `SOCKLAB_REQUIRE_NODE=1`.
    pub fn start(redis: SocketAddr) -> Option<NodeNode> {
        let (node, script) = node_script("the Node.js cluster node", "cluster_node.js", &PACKAGES)?;
        let node = node.to_str().expect("node's path is UTF-8");
        let script = script.to_str().expect("the checkout's path is UTF-8");
        let url = format!("redis://{redis}");
        let mut proc = Proc::spawn(node, &[script, &url], Input::Open);
        // `fatal` is its last line when it cannot start: shown in the panic below.
        let first = proc.expect_line("`ready` (or `fatal`)", |l| {
            l.starts_with(r#"{"ready""#) || l.starts_with(r#"{"fatal""#)
        });
        let ready: Value = serde_json::from_str(&first).expect("a JSON line");
        let port = ready["port"].as_u64().and_then(|p| u16::try_from(p).ok());
        let port = port.unwrap_or_else(|| panic!("cluster_node.js did not start: {first}"));
        Some(NodeNode {
            proc: Some(proc),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            last_id: 0,
            queue: VecDeque::new(),
        })
    }

    /// Where its Socket.IO clients connect (`http://ADDR`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn proc(&mut self) -> &mut Proc {
        self.proc.as_mut().expect("the Node.js node is running")
    }

    /// The next line within `wait`, as JSON (a line that is not JSON comes as a string).
    fn read(&mut self, wait: Duration) -> Option<Value> {
        let line = self.proc().next_line(wait)?;
        Some(serde_json::from_str(&line).unwrap_or(Value::String(line)))
    }

    /// Sends `cmd` (an object such as `{"cmd": "broadcast", ...}`) with a fresh `id`, and
    /// returns the answer with that id: `{"id", "ok": true, ...}` or `{"id", "error"}`. Waits
    /// at most [`WAIT`]; the other lines read meanwhile are queued for [`wait_line`].
    ///
    /// [`wait_line`]: NodeNode::wait_line
    pub fn command(&mut self, mut cmd: Value) -> Value {
        self.last_id += 1;
        let id = self.last_id;
        cmd.as_object_mut()
            .expect("a command is a JSON object")
            .insert("id".into(), json!(id));
        self.proc().write_stdin(&format!("{cmd}\n"));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.read(left) else {
                panic!(
                    "no answer to {cmd} within {WAIT:?}; it printed {:#?}",
                    self.proc().seen()
                );
            };
            if line["id"] == json!(id) {
                return line;
            }
            self.queue.push_back(line);
        }
    }

    /// The first line (queued or new) that `want` accepts within `wait`, taken out of the
    /// queue; the lines it passes over stay queued, in order.
    pub fn try_wait_line(
        &mut self,
        want: impl Fn(&Value) -> bool,
        wait: Duration,
    ) -> Option<Value> {
        if let Some(i) = self.queue.iter().position(&want) {
            return self.queue.remove(i);
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.read(left)?;
            if want(&line) {
                return Some(line);
            }
            self.queue.push_back(line);
        }
    }

    /// [`try_wait_line`](NodeNode::try_wait_line), and a failure (showing what it printed)
    /// when no such line came in time.
    pub fn wait_line(&mut self, want: impl Fn(&Value) -> bool, wait: Duration) -> Value {
        match self.try_wait_line(want, wait) {
            Some(line) => line,
            None => panic!(
                "the Node.js node printed no such line within {wait:?}; it printed {:#?}",
                self.proc().seen()
            ),
        }
    }

    /// Stops it (SIGTERM, by its pid) and waits for it to exit. Dropped without this, its
    /// `Proc` kills it (SIGKILL, by its pid) instead.
    pub fn stop(&mut self) -> Option<Exited> {
        let proc = self.proc.take()?;
        proc.sigterm();
        Some(proc.finish())
    }
}

impl Drop for NodeNode {
    fn drop(&mut self) {
        // Not `stop()`: a panic in a drop during a failing test's unwinding would abort.
        // Closing stdin asks it to exit; the Reaper in `Proc` kills it by its pid anyway.
        if let Some(p) = self.proc.as_mut() {
            p.close_stdin();
        }
    }
}
