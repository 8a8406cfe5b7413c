//! The load generator of `make bench-loop` (`socklab-bench loop`): many client connections
//! from one process, on the same [`socklab::event_loop`] the servers use.
//!
//! Each connection plays ping-pong: send a message, wait for all of its echo, send the next.
//! A round trip per connection at a time is the hardest case for a server (no batching from
//! pipelining), and the count of round trips per second is the figure reported.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socklab::event_loop::{CloseReason, Config, ConnId, Ctx, EventLoop, Handler, TimerId};
use socklab::sys;

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

    fn timer(&mut self, ctx: &mut Ctx<Phase>, _: TimerId, phase: Phase) {
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
