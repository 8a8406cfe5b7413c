//! The messages nodes of a cluster send each other: Socket.IO's cluster adapter messages
//! (`socket.io-adapter`'s `ClusterAdapter`), in the two encodings
//! `@socket.io/redis-streams-adapter` 0.3 puts on Redis. Pure: fields and bytes in and out.
//!
//! Every message has the sender's node id (`uid`), a namespace (`nsp`), a type and, for most
//! types, a `data` object:
//!
//! | type | message | data |
//! |---|---|---|
//! | 3 | BROADCAST | `{packet: {type: 2, data: [event, ...args], nsp}, opts, requestId?}` |
//! | 4, 5 | SOCKETS_JOIN, SOCKETS_LEAVE | `{opts, rooms}` |
//! | 6 | DISCONNECT_SOCKETS | `{opts, close}` |
//! | 7, 8 | FETCH_SOCKETS and its response | `{opts, requestId}`, `{requestId, sockets}` |
//! | 9, 10 | SERVER_SIDE_EMIT and its response | `{packet: [event, ...args], requestId?}`, `{requestId, packet}` |
//! | 11 | BROADCAST_CLIENT_COUNT (answer to a broadcast with acks) | `{requestId, clientCount}` |
//!
//! `opts` = `{rooms: [...], except: [...], flags: {volatile?, local?, ...}}`; an empty
//! `rooms` means every socket of the namespace.
//!
//! **In the stream** (messages every node must see, in order: broadcasts, joins, leaves,
//! disconnects) a message is an entry of four fields, `uid nsp type data`, with `data` as
//! JSON text, or, when it carries binary, as msgpack in base64. **On PUB/SUB** (requests that
//! need an answer now, and the answers) a message is one msgpack map `{uid, nsp, type,
//! data}`. Binary values are msgpack's `bin`; here they become Socket.IO's placeholders
//! (`{"_placeholder": true, "num": N}`) and a list of attachments, as the event layer
//! carries them.

mod msgpack;
mod session;

pub use session::StoredSession;

use std::fmt;

use base64::Engine as _;
use rmpv::Value as Mp;
use serde_json::{json, Value};

use super::socketio::{placeholder, unreferenced};
use msgpack::{from_msgpack, read_msgpack, to_msgpack, write_msgpack};

/// The message types (`MessageType` of `socket.io-adapter`).
pub mod kind {
    pub const BROADCAST: u32 = 3;
    pub const SOCKETS_JOIN: u32 = 4;
    pub const SOCKETS_LEAVE: u32 = 5;
    pub const DISCONNECT_SOCKETS: u32 = 6;
    pub const FETCH_SOCKETS: u32 = 7;
    pub const FETCH_SOCKETS_RESPONSE: u32 = 8;
    pub const SERVER_SIDE_EMIT: u32 = 9;
    pub const SERVER_SIDE_EMIT_RESPONSE: u32 = 10;
    pub const BROADCAST_CLIENT_COUNT: u32 = 11;
}

/// Socket.IO's packet type of an event (`socket.io-parser`'s `EVENT`).
const EVENT_PACKET: u64 = 2;

/// How deeply msgpack may nest (JSON from a client is bounded the same way by serde_json).
const MAX_DEPTH: usize = 128;

/// Which sockets a message is for: those in any of `rooms` (all when empty), but none in
/// `except`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opts {
    pub rooms: Vec<String>,
    pub except: Vec<String>,
    pub volatile: bool,
}

/// A socket as `fetchSockets` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSocket {
    pub id: String,
    pub rooms: Vec<String>,
    /// The application's data of the socket (`socket.data`).
    pub data: Value,
    /// Socket.IO's handshake object (`{auth, address, time, ...}`).
    pub handshake: Value,
}

/// An event's name and arguments, binary ones as placeholders into `attachments`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventData {
    pub event: String,
    pub args: Vec<Value>,
    pub attachments: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Broadcast {
        data: EventData,
        opts: Opts,
        /// Set when the sender waits for the clients' acks (answered on PUB/SUB).
        request_id: Option<String>,
    },
    SocketsJoin {
        opts: Opts,
        rooms: Vec<String>,
    },
    SocketsLeave {
        opts: Opts,
        rooms: Vec<String>,
    },
    DisconnectSockets {
        opts: Opts,
        close: bool,
    },
    FetchSockets {
        opts: Opts,
        request_id: String,
    },
    FetchSocketsResponse {
        request_id: String,
        sockets: Vec<RemoteSocket>,
    },
    ServerSideEmit {
        data: EventData,
        request_id: Option<String>,
    },
    ServerSideEmitResponse {
        request_id: String,
        answer: Value,
    },
    BroadcastClientCount {
        request_id: String,
        count: u64,
    },
    /// A type this node does not act on (heartbeats of other adapters, say).
    Other(u32),
}

/// One message between nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub uid: String,
    pub nsp: String,
    pub body: Body,
}

/// Why bytes or fields were not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a cluster message: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

type Result<T> = std::result::Result<T, Malformed>;

impl Body {
    pub fn kind(&self) -> u32 {
        match self {
            Body::Broadcast { .. } => kind::BROADCAST,
            Body::SocketsJoin { .. } => kind::SOCKETS_JOIN,
            Body::SocketsLeave { .. } => kind::SOCKETS_LEAVE,
            Body::DisconnectSockets { .. } => kind::DISCONNECT_SOCKETS,
            Body::FetchSockets { .. } => kind::FETCH_SOCKETS,
            Body::FetchSocketsResponse { .. } => kind::FETCH_SOCKETS_RESPONSE,
            Body::ServerSideEmit { .. } => kind::SERVER_SIDE_EMIT,
            Body::ServerSideEmitResponse { .. } => kind::SERVER_SIDE_EMIT_RESPONSE,
            Body::BroadcastClientCount { .. } => kind::BROADCAST_CLIENT_COUNT,
            Body::Other(k) => *k,
        }
    }

    /// Whether it goes over PUB/SUB rather than the stream (as the adapter decides: requests
    /// and their answers are not kept).
    pub fn is_ephemeral(&self) -> bool {
        !matches!(
            self,
            Body::Broadcast {
                request_id: None,
                ..
            } | Body::SocketsJoin { .. }
                | Body::SocketsLeave { .. }
                | Body::DisconnectSockets { .. }
        )
    }

    /// The `data` object, binary values as placeholders, and the attachments they point at.
    fn data(&self, nsp: &str) -> Option<(Value, &[Vec<u8>])> {
        let none: &[Vec<u8>] = &[];
        let data = match self {
            Body::Broadcast {
                data,
                opts,
                request_id,
            } => {
                let mut d = json!({
                    "packet": {"type": EVENT_PACKET, "data": data.array(), "nsp": nsp},
                    "opts": opts.to_json(),
                });
                if let Some(id) = request_id {
                    d["requestId"] = json!(id);
                }
                return Some((d, &data.attachments));
            }
            Body::SocketsJoin { opts, rooms } | Body::SocketsLeave { opts, rooms } => {
                json!({"opts": opts.to_json(), "rooms": rooms})
            }
            Body::DisconnectSockets { opts, close } => {
                json!({"opts": opts.to_json(), "close": close})
            }
            Body::FetchSockets { opts, request_id } => {
                json!({"opts": opts.to_json(), "requestId": request_id})
            }
            Body::FetchSocketsResponse {
                request_id,
                sockets,
            } => {
                let sockets: Vec<Value> = sockets
                    .iter()
                    .map(|s| {
                        json!({"id": s.id, "handshake": s.handshake, "rooms": s.rooms, "data": s.data})
                    })
                    .collect();
                json!({"requestId": request_id, "sockets": sockets})
            }
            Body::ServerSideEmit { data, request_id } => {
                let mut d = json!({"packet": data.array()});
                if let Some(id) = request_id {
                    d["requestId"] = json!(id);
                }
                return Some((d, &data.attachments));
            }
            Body::ServerSideEmitResponse { request_id, answer } => {
                json!({"requestId": request_id, "packet": answer})
            }
            Body::BroadcastClientCount { request_id, count } => {
                json!({"requestId": request_id, "clientCount": count})
            }
            Body::Other(_) => return None,
        };
        Some((data, none))
    }

    fn from_data(kind: u32, data: Value, attachments: Vec<Vec<u8>>) -> Result<Body> {
        let request_id = |d: &Value| d["requestId"].as_str().map(str::to_string);
        let needs_id = |d: &Value| request_id(d).ok_or(Malformed("no requestId"));
        let strings = |v: &Value| -> Result<Vec<String>> {
            match v {
                Value::Null => Ok(Vec::new()),
                Value::Array(a) => a
                    .iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or(Malformed("a room that is not a string")),
                _ => Err(Malformed("rooms are not a list")),
            }
        };
        let opts = |d: &Value| -> Result<Opts> {
            let o = &d["opts"];
            Ok(Opts {
                rooms: strings(&o["rooms"])?,
                except: strings(&o["except"])?,
                volatile: o["flags"]["volatile"].as_bool().unwrap_or(false),
            })
        };
        Ok(match kind {
            kind::BROADCAST => {
                let packet = &data["packet"];
                if !matches!(packet["type"].as_u64(), Some(2 | 5)) {
                    return Err(Malformed("a broadcast of something else than an event"));
                }
                Body::Broadcast {
                    data: EventData::from_array(&packet["data"], attachments)?,
                    opts: opts(&data)?,
                    request_id: request_id(&data),
                }
            }
            kind::SOCKETS_JOIN => Body::SocketsJoin {
                opts: opts(&data)?,
                rooms: strings(&data["rooms"])?,
            },
            kind::SOCKETS_LEAVE => Body::SocketsLeave {
                opts: opts(&data)?,
                rooms: strings(&data["rooms"])?,
            },
            kind::DISCONNECT_SOCKETS => Body::DisconnectSockets {
                opts: opts(&data)?,
                close: data["close"].as_bool().unwrap_or(false),
            },
            kind::FETCH_SOCKETS => Body::FetchSockets {
                opts: opts(&data)?,
                request_id: needs_id(&data)?,
            },
            kind::FETCH_SOCKETS_RESPONSE => {
                let sockets = data["sockets"].as_array().ok_or(Malformed("no sockets"))?;
                let sockets = sockets
                    .iter()
                    .map(|s| {
                        Ok(RemoteSocket {
                            id: s["id"].as_str().ok_or(Malformed("no id"))?.to_string(),
                            rooms: strings(&s["rooms"])?,
                            data: s["data"].clone(),
                            handshake: s["handshake"].clone(),
                        })
                    })
                    .collect::<Result<_>>()?;
                Body::FetchSocketsResponse {
                    request_id: needs_id(&data)?,
                    sockets,
                }
            }
            kind::SERVER_SIDE_EMIT => Body::ServerSideEmit {
                data: EventData::from_array(&data["packet"], attachments)?,
                request_id: request_id(&data),
            },
            kind::SERVER_SIDE_EMIT_RESPONSE => Body::ServerSideEmitResponse {
                request_id: needs_id(&data)?,
                answer: data["packet"].clone(),
            },
            kind::BROADCAST_CLIENT_COUNT => Body::BroadcastClientCount {
                request_id: needs_id(&data)?,
                count: data["clientCount"].as_u64().unwrap_or(0),
            },
            other => Body::Other(other),
        })
    }
}

impl Opts {
    fn to_json(&self) -> Value {
        let flags = if self.volatile {
            json!({"volatile": true})
        } else {
            json!({})
        };
        json!({"rooms": self.rooms, "except": self.except, "flags": flags})
    }

    /// Whether a socket in `rooms` (its own id among them) is one this is for.
    pub fn selects<'a>(&self, mut rooms: impl Iterator<Item = &'a str> + Clone) -> bool {
        let included =
            self.rooms.is_empty() || rooms.clone().any(|r| self.rooms.iter().any(|x| x == r));
        included && !rooms.any(|r| self.except.iter().any(|x| x == r))
    }
}

impl EventData {
    /// `[event, ...args]`, and a placeholder for each attachment no argument points at (as
    /// the Socket.IO wire carries them).
    fn array(&self) -> Value {
        let mut a = Vec::with_capacity(self.args.len() + 1);
        a.push(Value::from(self.event.as_str()));
        a.extend(self.args.iter().cloned());
        a.extend(unreferenced(&self.args, self.attachments.len()).map(placeholder));
        Value::Array(a)
    }

    fn from_array(v: &Value, attachments: Vec<Vec<u8>>) -> Result<EventData> {
        let mut items = v
            .as_array()
            .ok_or(Malformed("an event that is not a list"))?
            .iter();
        let Some(Value::String(event)) = items.next() else {
            return Err(Malformed("an event without a name"));
        };
        Ok(EventData {
            event: event.clone(),
            args: items.cloned().collect(),
            attachments,
        })
    }
}

impl Message {
    /// The fields of its stream entry: `uid`, `nsp`, `type`, and `data` (JSON, or base64
    /// msgpack if it carries binary) unless it has none.
    pub fn to_entry(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut fields = vec![
            ("uid", self.uid.clone().into_bytes()),
            ("nsp", self.nsp.clone().into_bytes()),
            ("type", self.body.kind().to_string().into_bytes()),
        ];
        if let Some((data, attachments)) = self.body.data(&self.nsp) {
            let text = if attachments.is_empty() {
                data.to_string()
            } else {
                let mut bytes = Vec::new();
                write_msgpack(&to_msgpack(&data, attachments), &mut bytes);
                base64::engine::general_purpose::STANDARD.encode(bytes)
            };
            fields.push(("data", text.into_bytes()));
        }
        fields
    }

    /// A message from an entry's fields (name, value, name, value...). At most
    /// `max_attachments` binary values are taken.
    pub fn from_entry(fields: &[(&[u8], &[u8])], max_attachments: usize) -> Result<Message> {
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == name.as_bytes())
                .map(|(_, v)| std::str::from_utf8(v).map_err(|_| Malformed("not UTF-8")))
                .transpose()
        };
        let (Some(uid), Some(nsp), Some(kind)) = (field("uid")?, field("nsp")?, field("type")?)
        else {
            return Err(Malformed("no uid, nsp or type"));
        };
        let kind: u32 = kind
            .parse()
            .map_err(|_| Malformed("a type that is no number"))?;
        let (data, attachments) = match field("data")? {
            None => (Value::Null, Vec::new()),
            // As the adapter tells them apart: JSON is an object.
            Some(text) if text.starts_with('{') => (
                serde_json::from_str(text).map_err(|_| Malformed("bad JSON"))?,
                Vec::new(),
            ),
            Some(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| Malformed("neither JSON nor base64"))?;
                let mp = read_msgpack(&bytes)?;
                let mut attachments = Vec::new();
                let data = from_msgpack(mp, &mut attachments, max_attachments)?;
                (data, attachments)
            }
        };
        Ok(Message {
            uid: uid.to_string(),
            nsp: nsp.to_string(),
            body: Body::from_data(kind, data, attachments)?,
        })
    }

    /// Its PUB/SUB payload: one msgpack map.
    pub fn to_published(&self) -> Vec<u8> {
        let mut map = vec![
            (Mp::from("uid"), Mp::from(self.uid.as_str())),
            (Mp::from("nsp"), Mp::from(self.nsp.as_str())),
            (Mp::from("type"), Mp::from(self.body.kind())),
        ];
        if let Some((data, attachments)) = self.body.data(&self.nsp) {
            map.push((Mp::from("data"), to_msgpack(&data, attachments)));
        }
        let mut bytes = Vec::new();
        write_msgpack(&Mp::Map(map), &mut bytes);
        bytes
    }

    /// A message from a PUB/SUB payload.
    pub fn from_published(bytes: &[u8], max_attachments: usize) -> Result<Message> {
        let mut attachments = Vec::new();
        let v = from_msgpack(read_msgpack(bytes)?, &mut attachments, max_attachments)?;
        let text = |k: &str| {
            v[k].as_str()
                .map(str::to_string)
                .ok_or(Malformed("no uid or nsp"))
        };
        let kind = v["type"].as_u64().ok_or(Malformed("no type"))?;
        let kind = u32::try_from(kind).map_err(|_| Malformed("a type out of range"))?;
        Ok(Message {
            uid: text("uid")?,
            nsp: text("nsp")?,
            body: Body::from_data(kind, v["data"].clone(), attachments)?,
        })
    }
}

#[cfg(test)]
mod tests;
