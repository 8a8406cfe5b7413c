//! Helpers shared by the integration tests, one file a concern:
//!
//! - [`browser`]: a Chromium scenario of `tests/interop/browser.js`, its lines, its screenshots;
//! - [`peer`]: a raw peer's frames, its HELLO/CONNECT handshake, reading packets back;
//! - [`polling_peer`]: a raw Engine.IO long-polling peer: HTTP requests by hand, answers,
//!   records, a held GET told from an answer, `ok` checked, a session's upgrade request;
//! - [`fake_server`]: a listener whose connections the test's closure handles by hand;
//! - [`process`]: child processes, their output, their signals; the socket lessons run to
//!   completion;
//! - [`proc_stats`]: CPU time, resident memory and open descriptors from /proc;
//! - [`served`]: any loop handler serving on a thread of its own;
//! - [`web_lab`]: the hostile tests' server and good clients (socklab, WebSocket, optionally
//!   long-polling) with their ack round trips, and the lock that runs one test at a time;
//! - [`redis`]: a `redis-server` of the test's own on a free port, stopped by its pid;
//! - [`cluster`]: a socklab node of a cluster over Redis (the chat on a thread), and its raw
//!   chat clients;
//! - [`node_cluster`]: a Node.js Socket.IO node of the same cluster (`cluster_node.js`),
//!   driven by JSON commands;
//! - [`conformance_lab`]: the conformance tests' server whose handlers report what they saw,
//!   and the waits on those reports;
//! - here: the wait limit, port 0, running code on a server's thread, reproducible bytes.
//!
//! A test binary in a folder (`tests/NAME/main.rs`) declares it with
//! `#[path = "../common/mod.rs"] mod common;`.

#![allow(dead_code)] // each test binary uses its own subset

mod browser;
mod cluster;
mod conformance_lab;
mod fake_server;
mod interop;
mod node_cluster;
mod peer;
mod polling_peer;
mod proc_stats;
mod process;
mod redis;
mod served;
mod sio_peer;
mod web_lab;

#[allow(unused_imports)] // each test binary uses its own subset
pub use browser::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use cluster::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use conformance_lab::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use fake_server::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use interop::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use node_cluster::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use peer::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use polling_peer::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use proc_stats::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use process::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use redis::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use served::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use sio_peer::*;
#[allow(unused_imports)] // each test binary uses its own subset
pub use web_lab::*;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use socklab::events::{Io, ServerHandle};

/// How long any one wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Runs `f` on the server's thread and returns what it returned. The server handles its work
/// in order, so this is also a fence: whatever was queued on `handle` before has been done.
pub fn ask<T: Send + 'static>(
    handle: &ServerHandle,
    f: impl FnOnce(&mut Io) -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    handle
        .run(move |io| {
            let _ = tx.send(f(io));
        })
        .expect("the server is running");
    rx.recv_timeout(WAIT)
        .expect("the server thread answers within WAIT")
}

/// `len` bytes from a xorshift64 generator: looks random to a stream or a parser (no
/// repeating pattern that a bug shifting bytes around could reproduce by accident), yet the
/// same every run for a seed.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
