//! Applications on the event API: what `socklab serve` hosts and the `socklab` commands use.
//!
//! | file | what it holds |
//! |---|---|
//! | `chat.rs` | a chat server (namespace `/chat`): rooms, `/who`, @mentions as notifications to a personal room; and the terminal client's line handling |
//! | `scores.rs` | simulated cricket matches pushed as live-score events (namespace `/scores`, one room per match) |
//! | `ticker.rs` | a client that ticks through outages (reconnection, offline buffer), for lessons 16 and 17 |

pub mod chat;
pub mod scores;
pub mod ticker;
