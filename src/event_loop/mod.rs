//! Layer 2: a hand-rolled event loop over mio (lessons 11-13 and everything after).
//!
//! One thread, one `epoll` instance, many connections. Each turn of the loop:
//!
//! ```text
//!   flush what was queued since the last turn (from outside the loop)
//!   timeout = nearest timer deadline (0 if work is left over)
//!   epoll_wait(timeout) ──► for each ready token:
//!        listener ──► accept4 until EAGAIN ──► Handler::accepted
//!        conn     ──► read until EAGAIN    ──► Handler::data
//!                 ──► writable: flush the outbound buffer
//!        waker    ──► Handler::message for each message from other threads
//!        signal   ──► begin a graceful stop
//!   fire due timers ──► Handler::timer
//!   flush every connection that got output this turn (one write for all of it)
//!   close what was asked to close ──► Handler::closed
//! ```
//!
//! The loop knows bytes, not frames: what runs on it implements [`Handler`] and talks back
//! through [`Ctx`] (send, close, timers, connect, stop). The protocol layers plug in there.
//!
//! Rules it keeps (see the "Inside the loop" chapter of the book):
//! - Edge-triggered: every readiness event is drained until `EAGAIN`, because the kernel will
//!   not say it again. To stay fair, one connection gets at most
//!   [`Config::reads_per_event`] reads per turn ([`READS_PER_EVENT`] by default); the rest
//!   waits for the next turn.
//! - Writes are buffered per connection and flushed at the end of the turn, so several
//!   messages for one peer leave in one `sendto`. WRITABLE interest is asked for only while
//!   bytes are waiting, and dropped as soon as the buffer is empty.
//! - Each outbound buffer has a cap ([`Config::max_outbound`], 1 MiB by default).
//!   [`Ctx::send`] refuses bytes past it with [`SendError::Full`]: the layer above chooses
//!   the policy (drop the message, or disconnect the slow peer).
//! - Buffers are reused: reading goes through one scratch buffer for the whole loop, and a
//!   connection's buffers keep their capacity (up to 64 KiB) between uses.
//! - `accept4` failing with EMFILE/ENFILE/ENOBUFS/ENOMEM, or with an error the loop does not
//!   know, pauses the listener for [`Config::accept_backoff`] and then drains the queue
//!   again: no spinning, and no queue left waiting for an edge that will not come. A failure
//!   that cost only one queued connection (ECONNABORTED, EPROTO, EPERM, ...) is skipped.
//!   Each kind is counted in [`Stats::accept_errors`] and reported on stderr the 1st, 2nd,
//!   4th, 8th, ... time. Past [`Config::max_connections`] new connections are accepted and
//!   closed at once.
//!
//! # Layout
//!
//! Each file owns one piece of the loop's state, or one step of the turn:
//!
//! | file | what it holds |
//! |---|---|
//! | `config.rs` | [`Config`] and its defaults; the limits that are not knobs (listen backlog, flush rounds, the linger grace, the capacity a buffer keeps) |
//! | `handler.rs` | the [`Handler`] trait: what runs on the loop |
//! | `ctx.rs` | [`Ctx`]: the loop's state as a handler sees it, and what a handler can ask of it (listen, connect, send, close, timers, stop); the flush of one connection |
//! | `conn.rs` | one connection: its socket, its state (connecting, open, closing, lingering), its input buffer; [`CloseReason`] |
//! | `outbound.rs` | a connection's outbound buffer, its cap ([`SendError`]) and the write loop |
//! | `turn.rs` | [`EventLoop`] and one turn: wait, dispatch by token, timers, the end-of-turn flush, closing, a graceful stop |
//! | `read.rs` | the read path: read until EAGAIN (within the fairness cap), hand bytes to the handler, backpressure, the lingering close's reads |
//! | `accept.rs` | accepting until EAGAIN, refusing past the limit, pausing on EMFILE |
//! | `accept_errors.rs` | what each `accept4` failure costs, counted in [`AcceptErrors`] |
//! | `listener.rs` | the listener slots and their pauses |
//! | `token.rs` | what a token means: the waker, the stop pipe, a listener, a connection |
//! | `handle.rs` | [`LoopHandle`]: messages from other threads, through mio's waker |
//! | `classify.rs` | `would_block` and `interrupted`: which failures are not errors |
//! | `stats.rs` | [`Stats`]: what the loop counts |
//! | `poller.rs` | mio's registry calls and `poll`, each printing its line for the self-trace |
//! | `slab.rs` | the table of connections, and [`ConnId`] |
//! | `timer.rs` | the timer heap, and [`TimerId`] |
//! | `id_hash.rs` | [`IdMap`]: a hash table with a cheap hash, for keys the process made itself (connection, timer and socket ids) |
//! | `together.rs` | [`turn_together`]: several loops in one thread sleep in one `poll` (the demos of lessons 15 to 17) |
//! | `echo.rs` | the smallest handler (lessons 11 and 12) |

mod accept;
mod accept_errors;
mod classify;
mod config;
mod conn;
mod ctx;
pub mod echo;
mod handle;
mod handler;
mod id_hash;
mod listener;
mod outbound;
mod poller;
mod read;
mod slab;
mod stats;
mod timer;
mod together;
mod token;
mod turn;

pub use accept_errors::AcceptErrors;
pub use config::{Config, READS_PER_EVENT};
pub use conn::CloseReason;
pub use ctx::Ctx;
pub use handle::LoopHandle;
pub use handler::Handler;
pub use id_hash::{IdHasher, IdMap};
pub use outbound::SendError;
pub use slab::ConnId;
pub use stats::Stats;
pub use timer::TimerId;
pub use together::{turn_together, turn_together_until, Turn};
pub use turn::EventLoop;
