//! What a message from the cluster does on this node (Socket.IO's `ClusterAdapter.onMessage`):
//! a broadcast is delivered to the matching sockets here, joins, leaves and disconnects act
//! on them, requests are answered, answers go to the request that waits for them.

use serde_json::{json, Value};

use super::requests::Answer;
use super::Io;
use crate::events::{guard, reasons};
use crate::wire::cluster::{Body, EventData, Message, Opts, RemoteSocket};

impl Io {
    /// Applies message `m`, read from the stream at `offset` (`None` for PUB/SUB, and for a
    /// volatile broadcast).
    pub(super) fn cluster_apply(&mut self, m: Message, offset: Option<u64>) {
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        let own = m.uid == c.uid;
        let known = self.namespaces.contains_key(m.nsp.as_str());
        match m.body {
            // This node's own broadcasts come back too: they are delivered now.
            Body::Broadcast {
                data,
                opts,
                request_id: None,
            } if known => {
                // An id at or below the last one (a Redis that lost its data and began
                // again) cannot be an offset: the broadcast goes, but cannot be replayed.
                let last = self.recovery.last_offset();
                let offset = offset.filter(|&o| !opts.volatile && o > last);
                self.cluster_deliver(&m.nsp, &opts, data, offset);
                self.stats.cluster_received += u64::from(!own);
            }
            _ if own || !known => {}
            // Acks from clients on other nodes are not gathered: the node waiting for them
            // hears at once that none will come from here.
            Body::Broadcast {
                request_id: Some(request_id),
                ..
            } => {
                self.stats.cluster_unsupported += 1;
                let answer = Body::BroadcastClientCount {
                    request_id,
                    count: 0,
                };
                self.cluster_answer(&m.nsp, &m.uid, answer);
            }
            Body::SocketsJoin { opts, rooms } => {
                for sid in self.selected(&m.nsp, &opts) {
                    rooms.iter().for_each(|r| self.join(&sid, r));
                }
            }
            Body::SocketsLeave { opts, rooms } => {
                for sid in self.selected(&m.nsp, &opts) {
                    rooms.iter().for_each(|r| self.leave(&sid, r));
                }
            }
            Body::DisconnectSockets { opts, close } => {
                for sid in self.selected(&m.nsp, &opts) {
                    self.disconnect_socket(&sid, close, reasons::CLUSTER_DISCONNECT);
                }
                // A session that moved to another node is not restored here any more.
                for room in &opts.rooms {
                    self.recovery.forget_sid(room);
                }
            }
            Body::FetchSockets { opts, request_id } => {
                let sockets = self.local_sockets(&m.nsp, &opts);
                let answer = Body::FetchSocketsResponse {
                    request_id,
                    sockets,
                };
                self.cluster_answer(&m.nsp, &m.uid, answer);
            }
            Body::ServerSideEmit { data, request_id } => {
                let answer = self.server_event(&m.nsp, &data, request_id.is_some());
                if let Some(request_id) = request_id {
                    let answer = Body::ServerSideEmitResponse { request_id, answer };
                    self.cluster_answer(&m.nsp, &m.uid, answer);
                }
            }
            Body::FetchSocketsResponse {
                request_id,
                sockets,
            } => self.cluster_response(&request_id, &m.uid, Answer::Sockets(sockets)),
            Body::ServerSideEmitResponse { request_id, answer } => {
                self.cluster_response(&request_id, &m.uid, Answer::Value(answer))
            }
            Body::Broadcast { .. } | Body::BroadcastClientCount { .. } | Body::Other(_) => {}
        }
    }

    /// Delivers a broadcast from the stream to the matching sockets here, without publishing
    /// it again.
    fn cluster_deliver(&mut self, nsp: &str, opts: &Opts, data: EventData, offset: Option<u64>) {
        let mut b = self.broadcast(nsp).streamed(offset);
        for room in &opts.rooms {
            b = b.to(room);
        }
        for room in &opts.except {
            b = b.except(room);
        }
        if opts.volatile {
            b = b.volatile();
        }
        if b.emit_with(&data.event, data.args, data.attachments)
            .is_err()
        {
            self.stats.cluster_bad_entries += 1;
        }
    }

    /// Sends `body` to node `uid` on its own channel.
    fn cluster_answer(&mut self, nsp: &str, uid: &str, body: Body) {
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        let m = c.message(nsp, body);
        self.cluster_publish_message(&m, Some(uid));
    }

    /// The ids of this node's sockets of namespace `ns` that `opts` selects, sorted.
    pub(super) fn selected(&self, ns: &str, opts: &Opts) -> Vec<String> {
        self.sockets(ns)
            .into_iter()
            .filter(|sid| {
                let rooms = self.rooms_of(sid);
                opts.selects(rooms.iter().map(String::as_str))
            })
            .collect()
    }

    /// This node's sockets that `opts` selects, as `fetchSockets` reports them.
    pub(super) fn local_sockets(&self, ns: &str, opts: &Opts) -> Vec<RemoteSocket> {
        self.selected(ns, opts)
            .into_iter()
            .filter_map(|sid| {
                let s = self.sockets.get(sid.as_str())?;
                let h = &s.handshake;
                let handshake = json!({
                    "auth": h.auth.clone().unwrap_or_else(|| json!({})),
                    "address": h.peer.ip().to_string(),
                    "headers": {},
                    "query": {},
                    "xdomain": false,
                    "secure": false,
                    "url": "/socket.io/",
                });
                Some(RemoteSocket {
                    rooms: self.rooms_of(&sid),
                    id: sid,
                    data: json!({}),
                    handshake,
                })
            })
            .collect()
    }

    /// Runs the handlers of server event `data` in namespace `ns`; returns the first
    /// handler's answer (`null` with none), for a sender that asked for one.
    fn server_event(&mut self, ns: &str, data: &EventData, answer_wanted: bool) -> Value {
        let event = super::ServerEvent {
            namespace: ns.to_string(),
            name: data.event.clone(),
            args: data.args.clone(),
            attachments: data.attachments.clone(),
            answer_wanted,
        };
        let mut handlers = self.server_events.remove(ns).unwrap_or_default();
        let mut answer = None;
        for h in handlers.iter_mut() {
            match guard::call(|| h(self, &event)) {
                Ok(a) => {
                    answer.get_or_insert(a);
                }
                Err(p) => self.callback_panicked("server event handler", None, &p),
            }
        }
        // Handlers added meanwhile are kept.
        let added = self.server_events.remove(ns).unwrap_or_default();
        handlers.extend(added);
        self.server_events.insert(ns.to_string(), handlers);
        answer.unwrap_or(Value::Null)
    }
}
