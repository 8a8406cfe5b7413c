//! What one node asks of the others, and what it tells them to do to their sockets.
//!
//! A request that needs every node's answer (`fetch_sockets`, `server_side_emit_with_ack`)
//! first counts the nodes: `PUBSUB NUMSUB socket.io#<ns>#` says how many subscribed to the
//! namespace's public channel, this node among them (the adapter's `serverCount`; it has no
//! heartbeat). Then it publishes the request there, and waits for one answer from each other
//! node on its own channel, or until `request_timeout`. Answers that come late, or for a
//! request not known, are dropped.
//!
//! Outside a cluster the same calls act on this node's sockets alone, at once.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use super::super::protocol::{Action, ServerTimer};
use super::{Io, Tag};
use crate::events::guard;
use crate::events::ids::Ids;
use crate::events::reasons;
use crate::wire::cluster::{Body, EventData, Opts, RemoteSocket};

/// Why a request to the cluster ended without every answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterError {
    /// Not every node answered within `request_timeout`.
    Timeout { answers: usize, expected: usize },
    /// The request could not be sent (Redis is away and the buffer full, or no random id).
    NotSent,
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Timeout { answers, expected } => write!(
                f,
                "timeout reached: only {answers} responses received out of {expected}"
            ),
            ClusterError::NotSent => f.write_str("the request could not be sent to Redis"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// An event one server sent the others (`server_side_emit`), as its handlers see it.
#[derive(Debug, Clone)]
pub struct ServerEvent {
    pub namespace: String,
    pub name: String,
    pub args: Vec<Value>,
    pub attachments: Vec<Vec<u8>>,
    /// The sender waits for an answer: the handler's return value (the first handler's).
    pub answer_wanted: bool,
}

/// A handler of server events: its return value is the answer, when one is wanted.
pub(in crate::events::server) type ServerEventHandler =
    Box<dyn FnMut(&mut Io, &ServerEvent) -> Value>;

type SocketsDone = Box<dyn FnOnce(&mut Io, Result<Vec<RemoteSocket>, ClusterError>)>;
type AnswersDone = Box<dyn FnOnce(&mut Io, Result<Vec<Value>, ClusterError>)>;
type CountDone = Box<dyn FnOnce(&mut Io, usize)>;

/// An answer from another node.
pub(super) enum Answer {
    Sockets(Vec<RemoteSocket>),
    Value(Value),
}

enum Waiting {
    Sockets(Vec<RemoteSocket>, SocketsDone),
    Answers(Vec<Value>, AnswersDone),
    Count(CountDone),
}

struct Request {
    ns: String,
    /// What to publish once the nodes are counted (`None` for a count alone).
    body: Option<Body>,
    /// Answers expected (the other nodes), known once counted.
    expected: Option<usize>,
    answered: Vec<String>,
    waiting: Waiting,
}

/// The requests waiting for their answers, by request id.
#[derive(Default)]
pub(super) struct Pending {
    requests: HashMap<String, Request>,
    ids: Option<Ids>,
}

/// Most requests waiting at once: past it a new one fails at once (`NotSent`).
const MAX_PENDING: usize = 1024;

impl Io {
    /// Adds a handler of the events other servers send with `server_side_emit` to
    /// namespace `ns`. Its return value answers a sender that waits for one.
    pub fn on_server_event(
        &mut self,
        ns: &str,
        f: impl FnMut(&mut Io, &ServerEvent) -> Value + 'static,
    ) {
        self.server_events
            .entry(ns.to_string())
            .or_default()
            .push(Box::new(f));
    }

    /// Sends event `name` to the other servers of the cluster (not to any client); their
    /// [`on_server_event`](Io::on_server_event) handlers get it. Outside a cluster, nothing.
    pub fn server_side_emit(&mut self, ns: &str, name: &str, args: Vec<Value>) {
        let data = event_data(name, args);
        if let Some(c) = self.cluster.as_ref() {
            let m = c.message(
                ns,
                Body::ServerSideEmit {
                    data,
                    request_id: None,
                },
            );
            self.cluster_publish_message(&m, None);
        }
    }

    /// [`server_side_emit`](Io::server_side_emit), and `done` gets every other server's
    /// answer (an empty list outside a cluster).
    pub fn server_side_emit_with_ack(
        &mut self,
        ns: &str,
        name: &str,
        args: Vec<Value>,
        done: impl FnOnce(&mut Io, Result<Vec<Value>, ClusterError>) + 'static,
    ) {
        let body = |request_id| Body::ServerSideEmit {
            data: event_data(name, args),
            request_id: Some(request_id),
        };
        let waiting = Waiting::Answers(Vec::new(), Box::new(done));
        self.cluster_request(ns, Some(Box::new(body)), waiting);
    }

    /// The sockets of namespace `ns` in any of `rooms` (all with none), on every node:
    /// their ids, rooms and handshakes, given to `done`.
    pub fn fetch_sockets(
        &mut self,
        ns: &str,
        rooms: &[&str],
        done: impl FnOnce(&mut Io, Result<Vec<RemoteSocket>, ClusterError>) + 'static,
    ) {
        let opts = opts(rooms);
        let local = self.local_sockets(ns, &opts);
        let body = |request_id| Body::FetchSockets { opts, request_id };
        let waiting = Waiting::Sockets(local, Box::new(done));
        self.cluster_request(ns, Some(Box::new(body)), waiting);
    }

    /// How many servers the cluster has (this one included): 1 outside a cluster.
    pub fn server_count(&mut self, ns: &str, done: impl FnOnce(&mut Io, usize) + 'static) {
        self.cluster_request(ns, None, Waiting::Count(Box::new(done)));
    }

    /// Puts the sockets of `ns` in any of `in_rooms` (all with none), on every node, in
    /// `rooms` (Socket.IO's `io.in(..).socketsJoin(..)`).
    pub fn sockets_join(&mut self, ns: &str, in_rooms: &[&str], rooms: &[&str]) {
        let (opts, rooms) = (opts(in_rooms), strings(rooms));
        for sid in self.selected(ns, &opts) {
            rooms.iter().for_each(|r| self.join(&sid, r));
        }
        self.cluster_tell(ns, Body::SocketsJoin { opts, rooms });
    }

    /// Takes the sockets of `ns` in any of `in_rooms`, on every node, out of `rooms`.
    pub fn sockets_leave(&mut self, ns: &str, in_rooms: &[&str], rooms: &[&str]) {
        let (opts, rooms) = (opts(in_rooms), strings(rooms));
        for sid in self.selected(ns, &opts) {
            rooms.iter().for_each(|r| self.leave(&sid, r));
        }
        self.cluster_tell(ns, Body::SocketsLeave { opts, rooms });
    }

    /// Disconnects the sockets of `ns` in any of `in_rooms`, on every node; with `close`,
    /// their connections too.
    pub fn disconnect_sockets(&mut self, ns: &str, in_rooms: &[&str], close: bool) {
        let opts = opts(in_rooms);
        for sid in self.selected(ns, &opts) {
            self.disconnect_socket(&sid, close, reasons::SERVER_NAMESPACE_DISCONNECT);
        }
        self.cluster_tell(ns, Body::DisconnectSockets { opts, close });
    }

    /// Disconnects socket `sid` for `reason`; with `close`, its connection at once as well.
    pub(super) fn disconnect_socket(&mut self, sid: &str, close: bool, reason: &str) {
        let conn = match close {
            true => self.sockets.get(sid).map(|s| s.conn),
            false => self.say_goodbye(sid, reason),
        };
        if let Some(conn) = conn {
            match close {
                true => self.close_conn(conn, reason, true),
                false => self.close_if_unused(conn, true),
            }
        }
    }

    /// Writes `body` into the stream, for the other nodes.
    pub(super) fn cluster_tell(&mut self, ns: &str, body: Body) {
        if let Some(c) = self.cluster.as_ref() {
            let m = c.message(ns, body);
            self.cluster_write(&m);
        }
    }

    /// Starts a request: counts the nodes, then (`cluster_counted`) publishes it.
    fn cluster_request(
        &mut self,
        ns: &str,
        body: Option<Box<dyn FnOnce(String) -> Body + '_>>,
        waiting: Waiting,
    ) {
        let Some(c) = self.cluster.as_mut() else {
            return self.finish(waiting, None);
        };
        let ids = c.requests.ids.get_or_insert_with(|| Ids::new(None));
        let id = match ids.next_id() {
            Some(id) if c.requests.requests.len() < MAX_PENDING => id,
            _ => return self.finish(waiting, Some(ClusterError::NotSent)),
        };
        let channel = c.channel(ns, None);
        let args = ["PUBSUB", "NUMSUB", &channel].map(|s| s.as_bytes().to_vec());
        if !c.queue(args.into(), Tag::Count(id.clone())) {
            return self.finish(waiting, Some(ClusterError::NotSent));
        }
        let request = Request {
            ns: ns.to_string(),
            body: body.map(|b| b(id.clone())),
            expected: None,
            answered: Vec::new(),
            waiting,
        };
        let timeout = c.config.request_timeout;
        c.requests.requests.insert(id.clone(), request);
        self.out
            .push(Action::Timer(timeout, ServerTimer::ClusterRequest(id)));
    }

    /// The reply to a request's `PUBSUB NUMSUB`: `n` subscribers, this node among them.
    pub(super) fn cluster_counted(&mut self, id: &str, n: Option<usize>) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Some(r) = c.requests.requests.get_mut(id) else {
            return;
        };
        let this_one = usize::from(c.subscribed.contains(&r.ns));
        let n = n.unwrap_or(this_one).max(this_one);
        if let Waiting::Count(_) = r.waiting {
            let r = c.requests.requests.remove(id);
            if let Some(Request {
                waiting: Waiting::Count(done),
                ..
            }) = r
            {
                self.call_done(|io| done(io, n.max(1)));
            }
            return;
        }
        r.expected = Some(n - this_one);
        let body = r.body.take();
        let ns = r.ns.clone();
        if let Some(body) = body {
            let m = c.message(&ns, body);
            self.cluster_publish_message(&m, None);
        }
        self.cluster_check(id);
    }

    /// An answer to request `id` from node `from`.
    pub(super) fn cluster_response(&mut self, id: &str, from: &str, answer: Answer) {
        let Some(r) = self
            .cluster
            .as_mut()
            .and_then(|c| c.requests.requests.get_mut(id))
        else {
            return;
        };
        if r.answered.iter().any(|u| u == from) {
            return; // one answer per node
        }
        r.answered.push(from.to_string());
        match (&mut r.waiting, answer) {
            (Waiting::Sockets(all, _), Answer::Sockets(sockets)) => all.extend(sockets),
            (Waiting::Answers(all, _), Answer::Value(v)) => all.push(v),
            _ => {}
        }
        self.cluster_check(id);
    }

    /// Ends request `id` if every node answered.
    fn cluster_check(&mut self, id: &str) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let done = c
            .requests
            .requests
            .get(id)
            .is_some_and(|r| r.expected.is_some_and(|e| r.answered.len() >= e));
        if done {
            if let Some(r) = c.requests.requests.remove(id) {
                self.finish(r.waiting, None);
            }
        }
    }

    /// Request `id`'s time is up: it ends with what came.
    pub(in crate::events::server) fn cluster_request_due(&mut self, id: &str) {
        let Some(r) = self
            .cluster
            .as_mut()
            .and_then(|c| c.requests.requests.remove(id))
        else {
            return;
        };
        self.stats.cluster_requests_failed += 1;
        let err = ClusterError::Timeout {
            answers: r.answered.len(),
            expected: r.expected.unwrap_or(0),
        };
        self.finish(r.waiting, Some(err));
    }

    /// Calls a request's callback with what it got, or `err`.
    fn finish(&mut self, waiting: Waiting, err: Option<ClusterError>) {
        match waiting {
            Waiting::Sockets(all, done) => {
                self.call_done(|io| done(io, err.map_or(Ok(all), Err)));
            }
            Waiting::Answers(all, done) => {
                self.call_done(|io| done(io, err.map_or(Ok(all), Err)));
            }
            Waiting::Count(done) => self.call_done(|io| done(io, 1)),
        }
    }

    fn call_done(&mut self, f: impl FnOnce(&mut Io)) {
        if let Err(p) = guard::call(|| f(self)) {
            self.callback_panicked("cluster request callback", None, &p);
        }
    }
}

fn strings(rooms: &[&str]) -> Vec<String> {
    rooms.iter().map(|r| r.to_string()).collect()
}

fn opts(rooms: &[&str]) -> Opts {
    Opts {
        rooms: strings(rooms),
        ..Opts::default()
    }
}

fn event_data(name: &str, args: Vec<Value>) -> EventData {
    EventData {
        event: name.to_string(),
        args,
        attachments: Vec::new(),
    }
}
