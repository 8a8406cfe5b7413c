//! Resilience (issue 5, lessons 16 and 17) end to end, on real sockets on 127.0.0.1, port 0.
//!
//! - Heartbeats: the server drops a peer that never answers PING (`ping timeout`) and keeps a
//!   live client for many intervals; a client drops a server that stops PINGing and starts
//!   reconnecting.
//! - Reconnection: `disconnect`, `reconnect_attempt` 1, 2, 3 with `reconnect_error` while
//!   nobody listens, then `reconnect` and `connect` when a server is back on the same address,
//!   each listener once; a limit on attempts ends in `reconnect_failed`; a deliberate
//!   disconnect by either side never reconnects; the client never retries before its backoff
//!   delay, and the delay doubles.
//! - No lost messages: plain emits made while disconnected arrive once and in order; acked
//!   emits are handled exactly once and answered exactly once across two server restarts; the
//!   offline buffer refuses past its size instead of dropping.
//! - Connection state recovery: through a [`Proxy`] that cuts connections while the server
//!   runs on, the client gets back its id and rooms and the broadcasts it missed, in order and
//!   once, on every reconnect; an acked emit whose ACK was lost (in the cut, or given while
//!   the client was away) is retried, handled once and answered once; past
//!   `max_disconnection_duration` the session is gone. The replay holds what was missed and
//!   nothing else: not broadcasts from before the client connected or joined the room, not
//!   volatile ones; it works after a server restart too; and a recovery that cannot replay
//!   everything is not claimed (docs/protocol.md, sections 9 and 11.3; several of these
//!   are listed as shortfalls in its section 12).
//! - Graceful shutdown as a process: SIGTERM gives a raw client DISCONNECT `server shutting
//!   down`, then end of file (a FIN, not a reset), and the process exits 0; the lesson 16 and
//!   17 demonstrations exit 0.
//!
//! How: a [`Server`](socklab::events::Server) holds closures that are not `Send`, so each runs
//! on a thread of its own ([`RunningServer`]); its handlers report what it saw over an mpsc
//! channel ([`Seen`]). Clients are stepped on the test thread with bounded turns; their
//! listeners write into `Rc<RefCell<..>>` ([`Watched`]). Timings are small (PING every 50 to
//! 100 ms, reconnection after 20 to 50 ms) so the file runs in seconds. Nothing asserts on
//! speed, every wait has a limit, and every thread and process started here is stopped by a
//! guard's `Drop`.

#[path = "../common/mod.rs"]
mod common;
use common::{
    any_port, ask, frame, lines_of, raw_connect, raw_connect_ns, raw_peer, read_packet,
    spawn_listening, wait_exit, FakeServer, Reaper, EXIT_WAIT, WAIT,
};

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use socklab::events::{
    reasons, AckError, AckReply, Client, ClientIo, ClientOptions, ClientState, EmitError, Io,
    RunningServer, ServerConfig, ServerHandle,
};
use socklab::wire::frame::HEADER_LEN;
use socklab::wire::packet::{self, Packet};

// One module a topic; the helper modules' items are shared with all of them.
mod client;
mod delivery;
mod heartbeat;
mod proxy;
mod reconnect;
mod recovery;
mod replay;
mod server;
mod shutdown;

use client::*;
use proxy::*;
use recovery::*;
use server::*;

/// Heartbeats for most tests: a PING every 100 ms, the PONG due within 500 ms, so that a
/// test thread the scheduler leaves out for a moment does not look like a dead peer.
const PING_INTERVAL: Duration = Duration::from_millis(100);
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// Heartbeats for the heartbeat tests: a PING every 50 ms, the PONG due within 150 ms.
const FAST_PING_INTERVAL: Duration = Duration::from_millis(50);
const FAST_PING_TIMEOUT: Duration = Duration::from_millis(150);

/// Reconnection for these tests: 20 ms, doubling, at most 50 ms (Socket.IO's 1 s and 5 s,
/// scaled down).
const RECONNECT_DELAY: Duration = Duration::from_millis(20);
const RECONNECT_DELAY_MAX: Duration = Duration::from_millis(50);

/// An ack timeout no test reaches: an answer that does not come is a failure of its own.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

const LESSON_16: &str = env!("CARGO_BIN_EXE_16_heartbeat_reconnect");
const LESSON_17: &str = env!("CARGO_BIN_EXE_17_graceful_shutdown");

// ---------------------------------------------------------------------------------------------
// Raw peers: the protocol by hand over std sockets
// ---------------------------------------------------------------------------------------------

/// How a connection ended, as its reader saw it.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// `read` returned 0: the other side sent FIN.
    Eof,
    /// ECONNRESET: the other side sent RST.
    Reset,
}

/// Reads packets until the connection ends (at most [`WAIT`]); returns them and the end.
fn read_to_end(stream: &mut TcpStream) -> (Vec<Packet>, End) {
    let deadline = Instant::now() + WAIT;
    let mut packets = Vec::new();
    while Instant::now() < deadline {
        match read_packet(stream) {
            Ok(Some(p)) => packets.push(p),
            Ok(None) => return (packets, End::Eof),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (packets, End::Reset),
            Err(e) => panic!("reading until the end, after {packets:?}: {e}"),
        }
    }
    panic!("the connection did not end within {WAIT:?}; got {packets:?}")
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// Every line the channel got until its writer closed (at most [`WAIT`]).
fn collect_lines(rx: &Receiver<String>) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the output did not end within {WAIT:?}; so far {lines:?}")
            }
        }
    }
}
