//! socklab-bench: the benchmark harness of socklab, a crate of its own so that the teaching
//! library holds only what the lessons teach.
//!
//! Benchmarks are not tests: nothing here asserts a speed. Every run is bounded in time, and
//! every child process is stopped through its handle.
//!
//! # Layout
//!
//! | file | what it holds |
//! |---|---|
//! | `main.rs` | the command line: `compare` (`make bench`), `loop` (`make bench-loop`), `events` (`make bench-events`), and the servers they start as child processes |
//! | `compare.rs` | `make bench`: socklab, Socket.IO 4.8 on Node.js and the raw-socket limit in one run (socketioxide 0.18 in `sio_compare`'s section only): repetitions in turn, the Node scripts of `benches/socketio/`, every measurement of a run |
//! | `socketioxide.rs` | the socketioxide server of `sio_compare` (`benches/socketioxide`, a crate outside the workspace): its binary, its version, starting it |
//! | `cluster.rs` | figure 6 of `compare`: the fan-out on one process, and over two processes of a cluster on one Redis, for socklab and for Socket.IO |
//! | `redis.rs` | the `redis-server` of a cluster: a free port, ready when it answers PING, its nodes reading the stream, killed when dropped |
//! | `report.rs` | the markdown table of `compare`, its ratios and targets, and the numbers formatted for it |
//! | `chart.rs` | the SVG latency chart of `compare` (drawn with plotters) |
//! | `small.rs` | `make bench-loop` and `make bench-events`: the loop and the event layer alone, on the same processes and placement |
//! | `load.rs` | socklab's load generators, and the raw-socket limit |
//! | `sio_compare.rs` | the section "The same wire, three servers" of `compare`: socklab, Socket.IO and socketioxide loaded by the one `sio_load` generator, their figures with the generator's CPU time, and the section's table and targets |
//! | `sio_crowd.rs` | the clients of the Socket.IO load generators: N Engine.IO v4 + Socket.IO v5 clients over masked WebSocket frames on one loop, what each sends and reads, what the crowd counts |
//! | `sio_load.rs` | the figures of the Socket.IO load generator: acks, fan-out, the handshake storm, each with the generator's own CPU time; the probe of figure 5 on a thread of its own |
//! | `sio_rate.rs` | the rate a room holds on the Socket.IO wire (figure 3): paced messages, every delivery timed from the moment its message was due, a ladder of rates up to the one whose p99 passes 100 ms |
//! | `ping_pong.rs` | the echo ping-pong of `make bench-loop`, many connections on one event loop |
//! | `reference.rs` | the event server all event benchmarks run: the handlers of the Socket.IO reference |
//! | `child.rs` | a child process of the benchmark: its lines, its log, a bounded wait, killed when dropped |
//! | `placement.rs` | which CPU a process runs on, and the descriptor limit |
//! | `proc_info.rs` | what `/proc` says: a process's CPU time and resident memory, the CPU model |
//! | `stats.rs` | the median of the repetitions, and the latency histogram of a run of round trips |
//!
//! Who uses whom, one way only: `compare` and `small` start servers through `child` and
//! `placement` (`sio_compare` socketioxide's through `socketioxide`) and load them with `load` (`small` also with `ping_pong`); `compare` has
//! `cluster` measure figure 6, which starts a `redis` beside the servers; `load` reads
//! `proc_info` and records into `stats`; `report` reads what `compare` measured and has
//! `chart` draw it. Nothing below `report` knows about it.

pub mod chart;
pub mod child;
pub mod cluster;
pub mod compare;
pub mod load;
pub mod ping_pong;
pub mod placement;
pub mod proc_info;
pub mod redis;
pub mod reference;
pub mod report;
pub mod sio_compare;
pub mod sio_crowd;
pub mod sio_load;
pub mod sio_rate;
pub mod small;
pub mod socketioxide;
pub mod stats;

/// What the harness's operations return: any error, said to a person by `main`.
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;
