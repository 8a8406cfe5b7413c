//! The event layer (src/events) end to end: real servers and clients on 127.0.0.1, port 0.
//!
//! Most tests start a [`Lab`]: a [`RunningServer`] on a thread of its own, with handlers that
//! answer (`echo`, `echo-bin`, `sum`, `shout`, `everyone`, `upload`, `burst`), misbehave on purpose
//! (`boom` panics, `silent` never answers), and report what the server saw (connections,
//! disconnect reasons, uploads, ack results) over an mpsc channel. The test thread steps the
//! clients with bounded `run_until`/`turn` calls. Where the point is a byte the library would
//! never send, a [`Raw`] std `TcpStream` speaks the protocol by hand.
//!
//! - `rooms_and_broadcasts_reach_exactly_their_recipients`: `broadcast_from`, `broadcast`,
//!   `to`, unions, `except`, `except_socket`, each socket's own room, leaving on disconnect.
//! - `acks_*`: answers both ways, timeouts both ways, `Disconnected` both ways.
//! - `binary_attachments_round_trip_exactly`: 0 bytes and 900 KiB, both directions, in order.
//! - `a_frame_over_the_limit_*`: a 2 MB frame from a raw peer; `EmitError::TooLarge` locally.
//! - `middleware_*`: refusal with its message, accepted auth, unknown namespace.
//! - `reserved_names_*`: refused on both sides; a raw peer cannot fake them.
//! - `reason_*`: every disconnect reason, each produced by the situation it names.
//! - `server_handle_broadcast_from_another_thread_reaches_the_room`.
//! - `a_client_that_disconnects_in_a_listener_gets_no_more_events`.
//! - `lesson_14_*`, `lesson_15_*`: the event lessons as real processes (the `socklab`
//!   command line itself is tested in tests/cli.rs).
//!
//! A negative claim ("C did not get it") needs a moment after which it would have arrived:
//! a [`fence`] broadcasts a numbered event after the action, through the same server, and
//! waits until every client has it. The server handles its work in order and each connection
//! is FIFO, so whatever the action sent is in the inboxes by then.
//!
//! Nothing waits without a limit ([`WAIT`], `EXIT_WAIT`, socket timeouts); every server
//! thread is stopped by `RunningServer` (also on drop) and every child process by its
//! guard (tests/common's `Reaper`). No assertion is about speed.

#[path = "../common/mod.rs"]
mod common;
use common::{
    any_port, ask, frame, pseudo_random, raw_peer_with, read_packet, wait_closed, Input, Proc, WAIT,
};

use std::cell::RefCell;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socket2::SockRef;
use socklab::events::{
    reasons, AckError, AckReply, Client, ClientIo, ClientOptions, ClientState, Emit, EmitError, Io,
    RunningServer, ServerConfig, ServerGone, ServerHandle,
};
use socklab::wire::frame::HEADER_LEN;
use socklab::wire::packet::{self, Limits, Packet};

// One module a topic; the helper modules' items are shared with all of them.
mod acks;
mod clients;
mod disconnect_reasons;
mod lab;
mod lessons;
mod middleware;
mod payloads;
mod rooms;

use clients::*;
use lab::*;

const EVENTS_14: &str = env!("CARGO_BIN_EXE_14_events");
const ROOMS_15: &str = env!("CARGO_BIN_EXE_15_rooms");

/// The lab's namespace with middleware: only `{"token": "letmein"}` gets in.
const ADMIN: &str = "/admin";
const NO_TOKEN: &str = "not authorized: a token is required";
const BAD_TOKEN: &str = "not authorized: bad token";

/// The event names the library keeps for itself and a program must not emit.
const RESERVED: [&str; 4] = ["connect", "disconnect", "disconnecting", "connect_error"];

/// Compares attachments by length and first differing byte: printing 900 KiB helps nobody.
fn assert_same_attachments(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    let lens = |v: &[Vec<u8>]| v.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(lens(got), lens(want), "{what}: attachment lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if let Some(at) = g.iter().zip(w).position(|(a, b)| a != b) {
            panic!("{what}: attachment {i} differs first at byte {at}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A raw peer: the protocol by hand over a std TcpStream
// ---------------------------------------------------------------------------------------------

/// A std `TcpStream` that has done HELLO and CONNECT by hand (the common raw peer) and
/// knows its socket id.
struct Raw {
    stream: TcpStream,
    sid: String,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        Raw::connect_with(addr, None)
    }

    /// `rcvbuf` shrinks SO_RCVBUF before connecting (a peer that cannot take much).
    fn connect_with(addr: SocketAddr, rcvbuf: Option<usize>) -> Raw {
        let (stream, sid) = raw_peer_with(addr, rcvbuf);
        Raw { stream, sid }
    }

    fn send(&mut self, p: &Packet) {
        self.stream
            .write_all(&frame(p))
            .expect("write to the server");
    }

    fn read_packet(&mut self) -> Packet {
        read_packet(&mut self.stream)
            .expect("the server sends valid packets")
            .expect("a packet from the server, not end of file")
    }

    /// Reads until the server closes the connection: end of file or a reset (a server that
    /// closes with our bytes unread sends RST). Whatever arrives first is skipped.
    fn wait_closed(&mut self) {
        wait_closed(&mut self.stream, "a raw peer");
    }
}

fn event(name: &str, args: Vec<Value>, id: Option<u32>) -> Packet {
    Packet::Event {
        ns: "/".into(),
        name: name.into(),
        args,
        attachments: vec![],
        id,
        offset: None,
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
