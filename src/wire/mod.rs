//! Layer 3: the wire protocol, as pure code: bytes in, frames out, no I/O.
//!
//! | file | what it holds | lessons |
//! |---|---|---|
//! | `frame.rs` | length-prefixed frames: [`frame::encode`] and the incremental [`frame::Decoder`] | 08 |
//! | `packet/` | the event protocol's packets inside frames (spec: `docs/protocol.md`): the types in `mod.rs`, `encode.rs`, `decode.rs` | 14 and after |
//! | `http.rs` | HTTP/1.1 request heads (with `httparse`), the WebSocket upgrade and its accept key, responses | 18 and after |
//! | `websocket.rs` | WebSocket frames (RFC 6455): [`websocket::encode_frame`] and the incremental [`websocket::Decoder`] with a server's rules | 19 and after |
//! | `engineio.rs` | Engine.IO v4 packets: the layer between a WebSocket (or long-polling) and Socket.IO | 20 and after |
//! | `socketio.rs` | Socket.IO v5 packets: namespaces, events, acks, binary placeholders | 21 and after |
//! | `sio_packet.rs` | the event layer's packets on the Socket.IO wire: as WebSocket frames out, from Socket.IO packets in | 21 and after |
//! | `offset.rs` | a broadcast's offset: a counter, or a cluster's stream entry id packed in a `u64` | 16, 24 |
//! | `cluster/` | the messages of a cluster (Socket.IO's cluster adapter): JSON or msgpack, binary as attachments | 24 |
//! | `resp.rs` | RESP2, the Redis protocol: [`resp::encode_command`] and the incremental reply [`resp::Decoder`], every length bounded by the caller's [`resp::Limits`] | 24 |

pub mod cluster;
pub mod engineio;
pub mod frame;
pub mod http;
pub mod offset;
pub mod packet;
pub mod resp;
pub mod sio_packet;
pub mod socketio;
pub mod websocket;
