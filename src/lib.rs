//! socklab: how real-time messaging works, from the socket syscalls up.
//!
//! # Layout
//!
//! Each layer is a module; a module imports only those drawn below it. The wire format is a
//! leaf beside the loop, not above it: it turns bytes into packets and back and knows
//! nothing of sockets, so it is tested on bytes alone (`tests/codec_props.rs`).
//!
//! ```text
//!   bin/ (one binary a lesson step, and `socklab`)
//!     |
//!   apps        the chat and the live scores behind `socklab serve`
//!     |
//!   events      the Socket.IO-style API: server/ and client/, one outbox, the wire seam
//!     |
//!   transport   HTTP, WebSocket and Engine.IO on the loop (lessons 18-20)
//!     |    \
//!     |     wire        frames and packets: pure code, no I/O
//!     |
//!   event_loop  mio, buffers, timers, a waker, graceful stop
//!     |
//!   sys         the syscalls 1:1 (the only `unsafe`)      blocking: lessons 02-08 on sys
//! ```
//!
//! | layer | module | what it teaches | lessons |
//! |---|---|---|---|
//! | 1 | [`sys`] | the socket syscalls, 1:1: owned descriptors, errors that name the syscall and errno, the strace-format self-trace. The only `unsafe` in the crate. | all |
//! | 1½ | [`blocking`] | the loops built from those calls: listen, connect, write-all, read-to-end, serve one connection at a time | 02-08 |
//! | 2 | [`event_loop`] | a hand-rolled loop over mio: edge-triggered draining, buffered writes with WRITABLE only while output waits, a timer heap that sets the poll timeout, a waker for other threads, graceful stop on SIGINT/SIGTERM | 11-13 and after |
//! | leaf | [`wire`] | the wire protocol, pure code with no I/O: length-prefixed frames and their incremental decoder (08); the event protocol's packets (14 and after); RESP2, the Redis protocol (24) | 08, 14 and after |
//! | 2½ | [`transport`] | transports on the loop: an HTTP/1.1 server (requests, keep-alive, pipelining, refusals), a WebSocket server (the upgrade, frames, the close handshake), Engine.IO sessions (the open packet, the heartbeat); the loop as a client of Redis, pipelined | 18 and after |
//! | 3 | [`events`] | a Socket.IO-style event API: namespaces, middleware, `on`/`emit`, acks with timeouts, rooms, broadcasts, recovery, a client; broadcasts across a cluster over a Redis stream (`--redis`); each connection's packets encoded by its wire | 14 and after |
//! | 4 | [`apps`] | applications on the event API: the chat server and the live-scores feed behind `socklab serve`, `chat`, `scores`, `watch` | socklab CLI |
//! | — | [`procnet`] | reading `/proc/net/tcp`, the kernel's socket table that `ss` shows (LISTEN queues, TIME_WAIT) | 01, 06 |
//! | — | [`strace`] | reading real strace output: the tool that keeps the self-trace and the book honest (`make trace`, `tests/trace.rs`) | all |
//! | — | [`capture`] | what crossed the wire: tcpdump on loopback in a network namespace of its own, each segment placed after the call that was running, stored without what varies (`make trace`) | 01 and after |
//! | — | [`seqdiag`] | the picture of a lesson: each connection's two ends as lifelines, their calls, and the segments between them, as SVG drawn from the recorded trace and capture | 01 and after |
//! | — | [`lesson`] | what the lesson binaries share: `--trace`, `serve`/`client`, `--addr`, error exit codes, the lesson catalogue | all |
//!
//! The benchmarks are not part of this crate: `benches/harness` (`socklab-bench`, run by
//! `make bench`) uses it as any application would.
//!
//! The lesson binaries live in `bin/NN_name.rs`, one per step; the book in `docs/` walks
//! through them in order:
//!
//! | # | binary | teaches |
//! |---|---|---|
//! | 00 | `00_socket` | socket and close; a descriptor is a small integer |
//! | 01 | `01_listen` | bind, listen, getsockname; port 0; the backlog |
//! | 02 | `02_accept` | a blocking accept; write a greeting; close |
//! | 03 | `03_connect` | connect; read until 0 means end of file; ECONNREFUSED |
//! | 04 | `04_echo` | an echo server and client; short reads; the write-all loop |
//! | 05 | `05_half_close` | shutdown(SHUT_WR) versus close; getpeername |
//! | 06 | `06_reuseaddr` | TIME_WAIT, EADDRINUSE on restart, SO_REUSEADDR |
//! | 07 | `07_reset_pipe` | SO_LINGER 0 and RST; ECONNRESET, EPIPE, SIGPIPE, MSG_NOSIGNAL |
//! | 08 | `08_framing` | length-prefixed frames over a byte stream |
//! | 09 | `09_nonblocking` | O_NONBLOCK, EAGAIN, and why spinning is no answer |
//! | 10 | `10_poll_chat` | poll(2) over many descriptors: a chat room in one thread |
//! | 11 | `11_mio_loop` | epoll through mio: the event loop, edge-triggered |
//! | 12 | `12_backpressure` | short writes, an outbound buffer, WRITABLE only while needed |
//! | 13 | `13_nb_connect` | non-blocking connect: EINPROGRESS, SO_ERROR, a timeout |
//! | 14 | `14_events` | the event protocol on the wire: events and acks, byte by byte |
//! | 15 | `15_rooms` | rooms and broadcasts: to(room), all but the sender, unions |
//! | 16 | `16_heartbeat_reconnect` | heartbeats, a dead peer, reconnection with backoff, the offline buffer |
//! | 17 | `17_graceful_shutdown` | a signal wakes the loop; tell clients, drain, FIN not RST; clients return |
//! | 18 | `18_http` | HTTP/1.1 on the loop: a blank line ends a request; keep-alive, pipelining |
//! | 19 | `19_websocket` | the upgrade and its accept key; frames, masks, fragments, ping, close |
//! | 20 | `20_engineio` | Engine.IO over WebSocket: the open packet, the server's ping, messages |
//! | 21 | `21_socketio` | Socket.IO packets in Engine.IO: CONNECT, EVENT, ACK, binary, both encodings counted |
//! | 22 | `22_polling_upgrade` | long-polling: a held GET, POSTs, records; the upgrade: probe, noop, 5 |
//! | 23 | `23_reuseport` | SO_REUSEPORT: two processes share a port, the kernel spreads connections; a chat message stays on its process |
//! | 24 | `24_cluster` | a cluster over Redis: broadcasts through a stream, requests over PUB/SUB, sessions that survive a node |

#[allow(unsafe_code)]
pub mod sys;

pub mod apps;
pub mod blocking;
pub mod capture;
pub mod event_loop;
pub mod events;
pub mod lesson;
pub mod procnet;
pub mod seqdiag;
pub mod strace;
pub mod transport;
pub mod wire;
