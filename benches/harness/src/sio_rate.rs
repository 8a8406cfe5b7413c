//! The rate a room holds (issue 15, figure 3): a chat room is not one burst, it is messages
//! arriving one after another. N clients of [`crate::sio_load`] join one server; one of them
//! sends `chat message` at a steady rate for a span of time, each message due at its own
//! moment (`start + k / rate`); every delivery is timed from that moment, so a sender that
//! fell behind (a full socket, a busy generator) is charged to the rate, not hidden by it.
//!
//! A *step* is one rate for one span. The *ladder* doubles the rate from a start until a step
//! fails, then halves the gap between the last rate that held and the first that failed a
//! few times:
//!
//! ```text
//!   rate   r      2r     4r     8r  (failed)  ->  5.7r  ->  4.8r ...
//!   held   yes    yes    yes    no              yes        no
//! ```
//!
//! A step holds when every client had every message and the 99th percentile of all the
//! step's delivery delays is at most [`P99_LIMIT`] (100 ms): a chat that lags a tenth of a
//! second for one message in a hundred still feels live. The figure is the highest rate that
//! held, in messages per second (times N for deliveries per second).
//!
//! Bounded: at most [`MAX_STEPS`] steps, [`MAX_MESSAGES`] messages a step, [`DRAIN_LIMIT`]
//! to deliver what a step sent; a step that loses a delivery, or leaves one undelivered
//! after [`STALL`] of quiet, ends the ladder (what the server still holds would be counted
//! against the next step).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socklab::event_loop::{ConnId, EventLoop};

use crate::load::{cpu_of, RoundTrips};
use crate::sio_crowd::{await_round, open_all, push_text, thread_cpu, SioCrowd};

/// The delivery delay a step's 99th percentile may reach and still hold.
pub const P99_LIMIT: Duration = Duration::from_millis(100);

/// The most steps of one ladder, refinements included.
pub const MAX_STEPS: usize = 24;

/// The most messages one step sends.
pub const MAX_MESSAGES: usize = 1_000_000;

/// How long a step's deliveries may take after its last message was due.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Bytes the sender may have queued that the server has not read yet. Past them, messages
/// that are due wait in the generator, their delays still counting, as they would behind a
/// full socket; the loop's own bound on a connection's queue is never reached.
const SEND_BACKLOG: usize = 256 * 1024;

/// How long a step may go without a delivery before what has not come is lost.
pub const STALL: Duration = Duration::from_secs(3);

/// A ladder: where it connects, how many clients, how long each step sends, where it starts,
/// and how many halvings of the gap follow the first failure.
#[derive(Debug, Clone)]
pub struct RatePlan {
    pub addr: SocketAddr,
    pub clients: usize,
    pub span: Duration,
    /// The first step's rate, in messages per second.
    pub start: f64,
    pub refine: usize,
    /// The most steps, refinements included (at most [`MAX_STEPS`]).
    pub max_steps: usize,
    /// The server processes whose CPU time over each step is read (`/proc`).
    pub server_pids: Vec<u32>,
}

/// One step: the rate offered, what it sent and delivered, the delays, and the CPU times.
#[derive(Debug, Clone)]
pub struct Step {
    /// Messages per second offered.
    pub rate: f64,
    pub messages: usize,
    /// Deliveries that came, and those that never came (`clients * messages` in all).
    pub deliveries: u64,
    pub lost: u64,
    /// Every delivery's delay from the moment its message was due.
    pub delays: RoundTrips,
    /// From the first message due to the last delivery.
    pub seconds: f64,
    /// The generator's CPU time over the step, in percent of one CPU.
    pub gen_cpu_pct: f64,
    pub server_cpu: Option<Duration>,
}

impl Step {
    /// The 99th percentile of the delivery delays, in microseconds.
    pub fn p99_us(&self) -> f64 {
        self.delays.quantile_us(0.99)
    }

    /// Every delivery came, and 99 in 100 within [`P99_LIMIT`].
    pub fn held(&self) -> bool {
        self.lost == 0 && self.delays.count > 0 && self.p99_us() <= P99_LIMIT.as_secs_f64() * 1e6
    }
}

/// What a ladder measured, every step in the order it ran.
#[derive(Debug, Clone)]
pub struct Sustained {
    pub clients: usize,
    pub steps: Vec<Step>,
    /// Why the ladder ended before it found a failing rate, if it did.
    pub cut_short: Option<String>,
}

impl Sustained {
    /// The fastest step that held.
    pub fn best(&self) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| s.held())
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
    }

    /// The slowest step that failed.
    pub fn first_failed(&self) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| !s.held())
            .min_by(|a, b| a.rate.total_cmp(&b.rate))
    }
}

/// Runs the ladder of `plan` on one set of clients.
pub fn sustained(plan: &RatePlan) -> io::Result<Sustained> {
    if !(plan.start.is_finite() && plan.start > 0.0) {
        return Err(io::Error::other("the ladder needs a start rate above zero"));
    }
    let mut ev = open_all(&[plan.addr], plan.clients, 1 << 20)?;
    let sender = *ev
        .handler()
        .tally
        .joined
        .first()
        .ok_or_else(|| io::Error::other("no client joined"))?;
    let mut out = Sustained {
        clients: ev.handler().tally.joined.len(),
        steps: Vec::new(),
        cut_short: None,
    };
    // Doubling until a step fails.
    let max_steps = plan.max_steps.min(MAX_STEPS);
    let mut rate = plan.start;
    let (mut held, mut failed) = (None::<f64>, None::<f64>);
    while out.steps.len() < max_steps && failed.is_none() {
        let s = step(&mut ev, sender, rate, plan)?;
        let (ok, complete) = (s.held(), s.lost == 0);
        out.steps.push(s);
        if !complete {
            out.cut_short = Some(format!("deliveries lost at {rate:.0} messages/s"));
            return Ok(out);
        }
        if ok {
            held = Some(rate);
            rate *= 2.0;
        } else {
            failed = Some(rate);
        }
    }
    // Halving the gap, on a log scale, between the last rate that held and the first that
    // failed: each halving narrows the answer to a smaller factor (2, 1.41, 1.19, ...).
    for _ in 0..plan.refine {
        let (Some(lo), Some(hi)) = (held, failed) else {
            break;
        };
        if out.steps.len() >= max_steps {
            break;
        }
        let mid = (lo * hi).sqrt();
        let s = step(&mut ev, sender, mid, plan)?;
        let (ok, complete) = (s.held(), s.lost == 0);
        out.steps.push(s);
        if !complete {
            out.cut_short = Some(format!("deliveries lost at {mid:.0} messages/s"));
            break;
        }
        if ok {
            held = Some(mid);
        } else {
            failed = Some(mid);
        }
    }
    if failed.is_none() && out.cut_short.is_none() {
        out.cut_short = Some(format!("every one of {max_steps} steps held"));
    }
    Ok(out)
}

/// One step: `rate` messages per second for `plan.span`, then the wait for their deliveries.
fn step(
    ev: &mut EventLoop<SioCrowd>,
    sender: ConnId,
    rate: f64,
    plan: &RatePlan,
) -> io::Result<Step> {
    let total = ((rate * plan.span.as_secs_f64()).ceil() as usize).clamp(1, MAX_MESSAGES);
    let interval = 1.0 / rate;
    let joined = ev.handler().tally.joined.len();
    {
        let h = ev.handler();
        h.begin_round(total as u64);
        h.tally.scheduled.clear();
        h.tally.scheduled.reserve(total);
        h.tally.delays = RoundTrips::new();
    }
    let server0 = cpu_of(&plan.server_pids);
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let due_at = |k: usize| start + Duration::from_secs_f64(k as f64 * interval);
    // A sender far behind its schedule is the generator's failure, not the server's: the
    // step is still bounded, by the span and the drain's limit.
    let send_limit = start + plan.span + DRAIN_LIMIT;
    let mut sent = 0;
    while sent < total {
        let now = Instant::now();
        if now >= send_limit {
            return Err(io::Error::other(format!(
                "the sender sent {sent} of {total} messages in time"
            )));
        }
        // Every message whose moment has come, in one write, as far as the backlog allows.
        let (h, ctx) = ev.parts();
        let frame_len = h.tpl.chat.len() + 14; // the longest header and mask included
        let room = SEND_BACKLOG.saturating_sub(ctx.pending(sender)) / frame_len;
        let due = (((now - start).as_secs_f64() / interval) as usize + 1)
            .min(total)
            .min(sent + room);
        if due > sent {
            let (peer, b) = h
                .peer(sender)
                .ok_or_else(|| io::Error::other("the sender is gone"))?;
            b.out.clear();
            for k in sent..due {
                b.tally.scheduled.push(due_at(k));
                push_text(b.out, &[&b.tpl.chat], peer.masker.key());
            }
            ctx.send(sender, b.out)
                .map_err(|e| io::Error::other(format!("the sender could not send: {e}")))?;
            sent = due;
        }
        // Until the next message is due, or a moment for the server to read the backlog.
        let wait = if room == 0 {
            Duration::from_millis(1)
        } else {
            due_at(sent).saturating_duration_since(Instant::now())
        };
        ev.turn(Some(wait))?;
    }
    await_round(ev, DRAIN_LIMIT, STALL)?;
    let seconds = start.elapsed().as_secs_f64();
    let gen = thread_cpu().saturating_sub(cpu0);
    let server1 = cpu_of(&plan.server_pids);
    let h = ev.handler();
    if h.tally.errors > 0 {
        return Err(io::Error::other(format!("a client failed{}", h.error())));
    }
    let want = (joined * total) as u64;
    let deliveries = h.tally.deliveries;
    let mut delays = std::mem::take(&mut h.tally.delays);
    delays.seconds = seconds;
    h.tally.scheduled.clear();
    Ok(Step {
        rate,
        messages: total,
        deliveries,
        lost: want.saturating_sub(deliveries),
        delays,
        seconds,
        gen_cpu_pct: gen.as_secs_f64() * 100.0 / seconds.max(1e-9),
        server_cpu: server0.zip(server1).map(|(a, b)| b.saturating_sub(a)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: f64, lost: u64, delays_ms: &[u64]) -> Step {
        let delays = RoundTrips::from_samples(delays_ms.iter().map(|ms| ms * 1_000_000), 1.0);
        Step {
            rate,
            messages: delays_ms.len(),
            deliveries: delays_ms.len() as u64,
            lost,
            delays,
            seconds: 1.0,
            gen_cpu_pct: 0.0,
            server_cpu: None,
        }
    }

    #[test]
    fn a_step_holds_with_every_delivery_and_its_p99_within_the_limit() {
        let fast: Vec<u64> = vec![5; 100];
        assert!(step(100.0, 0, &fast).held());
        // One delivery lost: failed, however fast the rest.
        assert!(!step(100.0, 1, &fast).held());
        // Two slow deliveries in a hundred put the p99 past 100 ms; one does not.
        let mut slow = fast.clone();
        slow[0] = 500;
        assert!(step(100.0, 0, &slow).held());
        slow[1] = 500;
        assert!(!step(100.0, 0, &slow).held());
        // Nothing delivered is nothing held.
        assert!(!step(100.0, 0, &[]).held());
    }

    #[test]
    fn the_figure_is_the_fastest_step_that_held() {
        let (ok, bad) = (vec![1; 10], vec![900; 10]);
        let s = Sustained {
            clients: 10,
            steps: vec![
                step(100.0, 0, &ok),
                step(200.0, 0, &ok),
                step(400.0, 0, &bad),
                step(283.0, 0, &ok),
                step(336.0, 0, &bad),
            ],
            cut_short: None,
        };
        assert_eq!(s.best().map(|s| s.rate), Some(283.0));
        assert_eq!(s.first_failed().map(|s| s.rate), Some(336.0));
    }
}
