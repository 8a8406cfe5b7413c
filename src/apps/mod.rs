//! Applications on the event API: what `socklab serve` hosts and the `socklab` commands use.
//!
//! | file | what it holds |
//! |---|---|
//! | `peer.rs` | a socklab-protocol client over a blocking socket with a deadline on every wait: the demonstrations of lessons 23 and 24 |
//! | `child.rs` | a server process a demonstration starts, waits for, and stops (or kills) by its pid |
//! | `redis_server.rs` | a `redis-server` of one's own on a free port (lesson 24, the tests), and one command as `redis-cli` sends and prints it |
//! | `feed.rs` | a thread that does one thing every interval and stops at once: the scores' balls, the inspector's deliveries |
//! | `greeter.rs` | the server of lessons 14, 21 and 22: `greet` and `upload` answered, a question asked of each client |
//! | `chat.rs` | a chat server (namespace `/chat`): rooms, `/who`, @mentions as notifications to a personal room; how a typed line is parsed and an event shown |
//! | `chat_client.rs` | the client behind `socklab chat`: commands, your rooms, the current room, rejoining after a restart; a terminal client or a line client |
//! | `terminal.rs` | the chat's screen on a terminal: a line editor whose prompt and half-typed line incoming messages never break |
//! | `status.rs` | what `chat` and `watch` say about the connection: not reachable, offline, reconnecting, back (and what was missed) |
//! | `scores.rs` | simulated cricket matches pushed as live-score events (namespace `/scores`, one room per match) |
//! | `ticker.rs` | a client that ticks through outages (reconnection, offline buffer), for lessons 16 and 17 |
//! | `wire.rs` | the wire inspector (namespace `/wire`): any socket's packets as bytes, recorded by the server's wire tap and delivered live to the `/wire` page |
//! | `web/` | the chat and the scores as web pages, with their own Socket.IO client, embedded in the binary and served on the event server's port |

pub mod chat;
pub mod chat_client;
pub mod child;
pub mod feed;
pub mod greeter;
pub mod peer;
pub mod redis_server;
pub mod scores;
pub mod status;
pub mod terminal;
pub mod ticker;
pub mod web;
pub mod wire;
