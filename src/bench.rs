//! The load generator behind `make bench-loop` (`socklab bench-loop`): many client
//! connections from one process, on the same [`crate::event_loop`] the servers use.
//!
//! Each connection plays ping-pong: send a message, wait for all of its echo, send the next.
//! A round trip per connection at a time is the hardest case for a server (no batching from
//! pipelining), and the count of round trips per second is the figure reported.
//!
//! Benchmarks are not tests: nothing here asserts a speed. Every run is bounded in time.
//!
//! `make bench` (`socklab bench`) is the side-by-side comparison: socklab, Socket.IO 4.8 on
//! Node.js, and the raw-socket limit, in one run on one machine. Its parts:
//!
//! | file | what it holds |
//! |---|---|
//! | `bench/load.rs` | socklab's load generators for it, and the raw-socket limit |
//! | `bench/compare.rs` | the run: processes on fixed CPUs, repetitions in turn, the Node scripts of `benches/socketio/` |
//! | `bench/report.rs` | the markdown table with its ratios and targets, and the SVG latency chart |
//! | `bench/small.rs` | `make bench-loop` and `make bench-events`: the loop and the event layer alone, on the same processes and placement |

pub mod compare;
pub mod load;
mod report;
pub mod small;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::event_loop::{CloseReason, Config, ConnId, Ctx, EventLoop, Handler};
use crate::sys;

/// What one measurement found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingPongResult {
    pub connections: usize,
    pub round_trips: u64,
    pub seconds: f64,
    /// Connections that failed to connect or closed early.
    pub failed: usize,
}

impl PingPongResult {
    pub fn per_second(&self) -> f64 {
        self.round_trips as f64 / self.seconds
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    WarmedUp,
    Done,
}

/// The client side of ping-pong, as a loop handler.
struct PingPong {
    message: Vec<u8>,
    /// Bytes of the current echo received, per connection.
    received: HashMap<ConnId, usize>,
    round_trips: u64,
    counted_from: Option<(Instant, u64)>,
    result: Option<(f64, u64)>,
    failed: usize,
    measuring: bool,
}

impl Handler for PingPong {
    type Timer = Phase;
    type Message = ();

    fn connected(&mut self, ctx: &mut Ctx<Phase>, id: ConnId, result: sys::Result<()>) {
        match result {
            Ok(()) => {
                self.received.insert(id, 0);
                let _ = ctx.send(id, &self.message);
            }
            Err(_) => self.failed += 1,
        }
    }

    fn data(&mut self, ctx: &mut Ctx<Phase>, id: ConnId, bytes: &[u8]) -> usize {
        let len = self.message.len();
        let Some(got) = self.received.get_mut(&id) else {
            return bytes.len();
        };
        *got += bytes.len();
        while *got >= len {
            *got -= len;
            self.round_trips += 1;
            if self.measuring {
                let _ = ctx.send(id, &self.message);
            }
        }
        bytes.len()
    }

    fn closed(&mut self, _: &mut Ctx<Phase>, id: ConnId, _: CloseReason) {
        if self.received.remove(&id).is_some() && self.measuring {
            self.failed += 1;
        }
    }

    fn timer(&mut self, ctx: &mut Ctx<Phase>, _: crate::event_loop::TimerId, phase: Phase) {
        match phase {
            Phase::WarmedUp => self.counted_from = Some((Instant::now(), self.round_trips)),
            Phase::Done => {
                if let Some((start, base)) = self.counted_from {
                    self.result = Some((start.elapsed().as_secs_f64(), self.round_trips - base));
                }
                self.measuring = false;
                ctx.stop();
            }
        }
    }
}

/// Opens `connections` connections to an echo server at `addr` and counts ping-pong round
/// trips of `message_len`-byte messages for `seconds` after a `warmup`.
pub fn ping_pong(
    addr: SocketAddr,
    connections: usize,
    message_len: usize,
    warmup: Duration,
    measure: Duration,
) -> std::io::Result<PingPongResult> {
    let handler = PingPong {
        message: (0..message_len).map(|i| b'a' + (i % 26) as u8).collect(),
        received: HashMap::new(),
        round_trips: 0,
        counted_from: None,
        result: None,
        failed: 0,
        measuring: true,
    };
    let config = Config {
        max_connections: connections + 16,
        stop_grace: Duration::from_secs(2),
        ..Config::default()
    };
    let mut ev = EventLoop::new(handler, config)?;
    for _ in 0..connections {
        ev.ctx().connect(addr, Some(Duration::from_secs(5)))?;
    }
    ev.ctx().set_timer(warmup, Phase::WarmedUp);
    ev.ctx().set_timer(warmup + measure, Phase::Done);
    // Bounded: the Done timer stops the loop; the grace period bounds the rest.
    let limit = Instant::now() + warmup + measure + Duration::from_secs(10);
    while !ev.is_stopped() && Instant::now() < limit {
        ev.turn(Some(Duration::from_millis(100)))?;
    }
    let h = ev.handler();
    let (seconds, round_trips) = h.result.unwrap_or((measure.as_secs_f64(), 0));
    Ok(PingPongResult {
        connections,
        round_trips,
        seconds,
        failed: h.failed,
    })
}

/// Raises this process's soft descriptor limit to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// Pins process `pid` (0: this one) to one CPU; returns whether it worked.
pub fn pin(pid: i32, cpu: usize) -> bool {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    set.set(cpu).is_ok() && sched_setaffinity(Pid::from_raw(pid), &set).is_ok()
}

/// The median of a few measurements, with the smallest and largest.
pub fn median_range(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => (0.0, 0.0, 0.0),
        n => (v[n / 2], v[0], v[n - 1]),
    }
}

// ---- the event server all event benchmarks run ---------------------------------------

/// The handlers of the Socket.IO reference server (`benches/socketio/server.js`), and no
/// others: `echo` answers its ack with its arguments, `chat message` goes to every socket of
/// `/` (the sender included). `socklab bench` runs its server with these, so that both
/// servers do the same work per event and keep the same listeners per socket (each costs
/// memory in the idle-connections figure).
// ANCHOR: reference
pub fn install_reference_handlers(io: &mut crate::events::Io) {
    io.on_connection("/", |io, sid| {
        io.on(sid, "echo", |io, ev| io.ack(ev, ev.args.clone()));
        io.on(sid, "chat message", |io, ev| {
            let _ = io.broadcast("/").emit("chat message", ev.args.clone());
        });
    });
}
// ANCHOR_END: reference

/// CPU time (user + system) used so far by process `pid`, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_micros(
        ticks * 1_000_000 / clock_ticks_per_second(),
    ))
}

/// The unit of the times in `/proc/PID/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100);
    (hz as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median_range(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(median_range(&[4.0, 1.0, 3.0, 2.0]), (3.0, 1.0, 4.0));
    }
}
