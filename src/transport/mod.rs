//! Layer 2½: transports on the event loop, between the wire codecs and the event API.
//!
//! | file | what it holds | lessons |
//! |---|---|---|
//! | `http.rs` | an HTTP/1.1 server as a loop handler: requests until a blank line, bodies by `Content-Length`, keep-alive, pipelining, `400`/`413`/`431` | 18 |
//! | `websocket.rs` | a WebSocket server as a loop handler: the upgrade, then frames (ping/pong, fragments, the close handshake, close codes for broken rules) | 19 |
//! | `engineio.rs` | Engine.IO v4 sessions on those WebSockets: the open packet, the server's ping and the client's pong, messages | 20 |
//! | `socketio.rs` | one Socket.IO connection's read side, pure: the upgrade, frames, Engine.IO, Socket.IO packets with their attachments, up to the event layer's packets | 21 |
//! | `http_client.rs` | a blocking HTTP/1.1 client on the `sys` calls, for the lesson that shows long-polling from the client's side | 22 |
//! | `ws_client.rs` | a blocking WebSocket client on the `sys` calls, for the lessons that show the client's bytes | 20, 21, 22 |
//! | `redis.rs` | the loop as a client: a Redis connection a handler owns, commands pipelined with their tags in a FIFO, replies decoded with `wire::resp`, a lost connection failing every pending command | 24 |

pub mod engineio;
pub mod http;
pub mod http_client;
pub mod redis;
pub mod socketio;
pub mod websocket;
pub mod ws_client;
