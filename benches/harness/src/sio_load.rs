//! A load generator that speaks the real Socket.IO wire: Engine.IO v4 and Socket.IO v5 over
//! WebSocket, N clients on one socklab [`EventLoop`] (issue 15). With it, socklab's server is
//! measured on the wire the Node.js clients use, and the clients cost Rust's price, not
//! Node's: what a figure shows is the server.
//!
//! Its clients are [`crate::sio_crowd`]'s (what each one sends and reads, and how it masks);
//! this file holds the figures they make.
//!
//! Every figure comes with the CPU time of the thread that ran the clients
//! (`getrusage(RUSAGE_THREAD)`) over the same span: a generator near one CPU second per
//! second was the bottleneck, and its figure says little about the server.
//!
//! | figure | function |
//! |---|---|
//! | ack round trips, one client, one at a time | [`acks`] with 1 client |
//! | ack round trips, C clients each one at a time | [`acks`] with C clients |
//! | fan-out: N clients, one sends M `chat message` | [`fanout`] |
//! | acks one at a time under fan-out load (figure 5) | [`start_probe`] beside [`fanout`] |
//! | connections per second, then C idle clients | [`connect`] |
//!
//! Every wait is bounded in time, every loop in count.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use socklab::event_loop::EventLoop;

use crate::load::{
    cpu_of, turn_until, Fanout, FanoutPlan, Hop, Probe, RoundTrips, PROBE_LIMIT, PROBE_MEASURE,
    PROBE_STOP,
};
use crate::sio_crowd::{await_round, open, open_all, push_text, start_ack, SioCrowd, Templates};
pub use crate::sio_crowd::{thread_cpu, MAX_FRAME, MAX_SAMPLES, UPGRADE_TARGET};

/// How long one ack may take before the run is called failed.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

// ---- the figures -----------------------------------------------------------------------------

/// Ack round trips: how many clients made them, their times, and the generator's CPU time
/// over the measured ones.
#[derive(Debug, Clone)]
pub struct SioAcks {
    pub clients: usize,
    pub rt: RoundTrips,
    pub client_cpu: Duration,
    /// The CPU time of the server processes named over the measured acks (`None` when none
    /// was named, or one could not be read).
    pub server_cpu: Option<Duration>,
}

/// Allows `total` more acks and starts one from every joined client without one in flight;
/// each next one starts when its answer comes (`on_text`).
fn start_acks(ev: &mut EventLoop<SioCrowd>, total: u64) {
    let (h, ctx) = ev.parts();
    h.tally.ack_budget = total;
    h.tally.acks_done = 0;
    let ids = h.tally.joined.clone();
    for id in ids {
        if let Some((peer, mut b)) = h.peer(id) {
            start_ack(ctx, id, peer, &mut b);
        }
    }
}

/// Runs `total` acks spread over the joined clients, each client one at a time; an error
/// says how many came back if not all did in time.
fn ack_round(ev: &mut EventLoop<SioCrowd>, total: u64) -> io::Result<()> {
    start_acks(ev, total);
    // Each ack may take ACK_TIMEOUT; the round, that per ack a client makes, in all.
    let per_client = total.div_ceil(ev.handler().tally.joined.len().max(1) as u64);
    let limit = ACK_TIMEOUT * (per_client.min(1000) as u32).max(1);
    let all = turn_until(ev, limit, |h| {
        h.tally.acks_done >= total || h.tally.lost > 0 || h.tally.errors > 0
    })?;
    let h = ev.handler();
    if all && h.tally.acks_done >= total {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{} of {total} acks came back{}",
        h.tally.acks_done,
        h.error()
    )))
}

/// Figures 2 and 2b: `clients` clients join; `warmup` acks, then `count` measured ones,
/// spread over the clients, each client with one in flight at a time (with one client:
/// one round trip after another). The rate is the measured acks over their time; the CPU
/// time of `server_pids` is read around the measured ones.
pub fn acks(
    addr: SocketAddr,
    clients: usize,
    warmup: usize,
    count: usize,
    server_pids: &[u32],
) -> io::Result<SioAcks> {
    let mut ev = open_all(&[addr], clients.max(1), 1 << 20)?;
    if warmup > 0 {
        ack_round(&mut ev, warmup as u64)?;
    }
    ev.handler().tally.acks = RoundTrips::new();
    let server0 = cpu_of(server_pids);
    let cpu0 = thread_cpu();
    let start = Instant::now();
    ack_round(&mut ev, count as u64)?;
    let seconds = start.elapsed().as_secs_f64();
    let client_cpu = thread_cpu().saturating_sub(cpu0);
    let server_cpu = server0
        .zip(cpu_of(server_pids))
        .map(|(a, b)| b.saturating_sub(a));
    let h = ev.handler();
    let mut rt = std::mem::take(&mut h.tally.acks);
    rt.seconds = seconds;
    Ok(SioAcks {
        clients: h.tally.joined.len(),
        rt,
        client_cpu,
        server_cpu,
    })
}

/// A fan-out, and what it cost the generator.
#[derive(Debug, Clone)]
pub struct SioFanout {
    pub fanout: Fanout,
    /// The generator's CPU time over the measured burst.
    pub client_cpu: Duration,
    /// The payloads one client received in the measured burst, in order, up to
    /// [`MAX_SAMPLES`] (`42["chat message","xx...",...]`): the only frames the generator
    /// keeps whole, to compare with what another client saw.
    pub samples: Vec<String>,
}

/// Figure 3 on the Socket.IO wire: `plan.clients` clients join (spread over `plan.nodes`);
/// one client of `plan.nodes[0]` sends `plan.messages` `chat message` events at once, each
/// a masked frame, as fast as its socket takes them; the server sends each to every client,
/// the sender included. The clock runs until every client has every message, or until
/// nothing came for `plan.stall`. A warm-up burst of `plan.warmup` goes first; `ready` is
/// called just before the measured burst. Paced messages (`plan.paced`) are not sent here.
pub fn fanout(plan: &FanoutPlan, ready: impl FnOnce()) -> io::Result<SioFanout> {
    let (clients, messages) = (plan.clients, plan.messages);
    // Room for the largest burst the sender queues at once.
    let frame_len = 2 + 4 + Templates::new(plan.nodes[0]).chat.len() + 8;
    let burst = frame_len * messages.max(plan.warmup);
    let mut ev = open_all(&plan.nodes, clients, (burst + (1 << 16)).max(1 << 20))?;
    let h = ev.handler();
    let joined = h.tally.joined.len();
    let sender = *h
        .tally
        .joined
        .iter()
        .find(|id| h.peers.get(id).is_some_and(|p| p.node == 0))
        .ok_or_else(|| io::Error::other("no client of the first node joined"))?;
    let stall = plan.stall;
    // One burst of `m`; returns its time to the last delivery and whether it was complete.
    let round = |ev: &mut EventLoop<SioCrowd>, m: usize| -> io::Result<(f64, bool)> {
        let h = ev.handler();
        h.begin_round(m as u64);
        let peer = h
            .peers
            .get_mut(&sender)
            .ok_or_else(|| io::Error::other("the sender is gone"))?;
        let mut frames = Vec::with_capacity(frame_len * m);
        for _ in 0..m {
            push_text(&mut frames, &[&h.tpl.chat], peer.masker.key());
        }
        let start = Instant::now();
        ev.ctx()
            .send(sender, &frames)
            .map_err(|e| io::Error::other(format!("the sender could not send: {e}")))?;
        let (complete, last) = await_round(ev, plan.limit, stall)?;
        if complete {
            return Ok((start.elapsed().as_secs_f64(), true));
        }
        Ok(((last - start).as_secs_f64(), false))
    };
    if plan.warmup > 0 {
        round(&mut ev, plan.warmup)?;
    }
    let h = ev.handler();
    h.tally.sample_from = h.tally.joined.last().copied();
    ready();
    let server0 = cpu_of(&plan.server_pids);
    let cpu0 = thread_cpu();
    let (seconds, complete) = round(&mut ev, messages)?;
    let client_cpu = thread_cpu().saturating_sub(cpu0);
    let server1 = cpu_of(&plan.server_pids);
    let h = ev.handler();
    let mut clients_by_node = vec![0u64; plan.nodes.len()];
    for id in &h.tally.joined {
        if let Some(p) = h.peers.get(id) {
            clients_by_node[p.node] += 1;
        }
    }
    let lost_by_node = clients_by_node
        .iter()
        .zip(&h.tally.by_node)
        .map(|(n, got)| (n * messages as u64).saturating_sub(*got))
        .collect();
    let samples = std::mem::take(&mut h.tally.samples)
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    Ok(SioFanout {
        fanout: Fanout {
            clients: joined,
            messages,
            deliveries: h.tally.deliveries,
            lost_by_node,
            seconds,
            server_cpu: server0.zip(server1).map(|(a, b)| b.saturating_sub(a)),
            complete,
            hop: None::<Hop>,
        },
        client_cpu,
        samples,
    })
}

/// Starts the probe of figure 5 on the Socket.IO wire: one client on a thread and a loop of
/// its own making `echo` acks one at a time, counted from [`go`](Probe::go) to
/// [`stop`](Probe::stop), the ack in flight at `stop` included: the latency one user sees
/// while [`fanout`] loads the server. A loop of its own, as socklab's probe has: on the
/// fan-out's loop, each ack would wait behind the generator's work on a thousand sockets,
/// and the figure would be the generator's. Like any client of the server it also receives
/// the fan-out's messages, and counts them. Returns once it joined and made `warmup` acks;
/// its control is [`Probe`]'s.
pub fn start_probe(addr: SocketAddr, warmup: u64) -> io::Result<Probe> {
    Probe::spawn(move |shared, ready_tx| {
        let warmed = open_all(&[addr], 1, 1 << 20).and_then(|mut ev| {
            if warmup > 0 {
                ack_round(&mut ev, warmup)?;
            }
            Ok(ev)
        });
        let mut ev = match warmed {
            Ok(ev) => ev,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return Err(e);
            }
        };
        let _ = ready_tx.send(Ok(()));
        // From here on one ack follows another until `stop`: no budget to run out of.
        start_acks(&mut ev, u64::MAX);
        let mut started = None;
        let mut stopping: Option<Instant> = None;
        let limit = Instant::now() + PROBE_LIMIT;
        while Instant::now() < limit {
            let phase = shared.load(Ordering::Acquire);
            let h = ev.handler();
            if phase == PROBE_STOP && stopping.is_none() {
                // No new ack; the one in flight still counts, as the last round trip
                // of `load::Probe` does: under a long burst it may be the only one.
                h.tally.ack_budget = 0;
                stopping = Some(Instant::now());
            }
            if phase == PROBE_MEASURE && started.is_none() {
                // What came back before `go` is the warm-up's; the ack in flight now counts.
                started = Some(Instant::now());
                h.tally.acks = RoundTrips::new();
            }
            let in_flight = h.peers.values().find_map(|p| p.ack.map(|(_, sent)| sent));
            if stopping.is_some() && (in_flight.is_none() || started.is_none()) {
                break;
            }
            // An ack may take ACK_TIMEOUT before `go`, and again after `stop`; while the
            // fan-out runs, waiting behind it is what is measured (the fan-out has its
            // own limit, and PROBE_LIMIT bounds this loop).
            let late = |since: Instant| since.elapsed() > ACK_TIMEOUT;
            let stuck =
                in_flight.is_some_and(late) && (started.is_none() || stopping.is_some_and(late));
            if stuck || h.tally.lost > 0 || h.tally.errors > 0 {
                return Err(io::Error::other(format!(
                    "the probe's ack did not come back{}",
                    h.error()
                )));
            }
            ev.turn(Some(Duration::from_millis(5)))?;
        }
        // Never told to `go`: nothing was measured.
        let Some(started) = started else {
            return Ok(RoundTrips::new());
        };
        let mut rt = std::mem::take(&mut ev.handler().tally.acks);
        rt.seconds = started.elapsed().as_secs_f64();
        Ok(rt)
    })
}

/// The handshake storm: clients wanted, joined, failed; from the first connect to the last
/// CONNECT answer; the generator's CPU time over it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SioConnect {
    pub wanted: usize,
    pub connected: usize,
    pub failed: usize,
    pub seconds: f64,
    pub client_cpu: Duration,
}

impl SioConnect {
    /// Connections established (TCP, upgrade, open, CONNECT answered) per second.
    pub fn per_second(&self) -> f64 {
        self.connected as f64 / self.seconds.max(1e-9)
    }
}

/// Figure 4 on the Socket.IO wire: `count` clients connect, at most 256 handshakes in
/// flight (the storm: [`SioConnect::per_second`]), then sit idle for `settle`, answering the
/// server's heartbeats; `after` is called while they are all still connected; then they close.
pub fn connect<T>(
    addr: SocketAddr,
    count: usize,
    settle: Duration,
    after: impl FnOnce() -> T,
) -> io::Result<(SioConnect, T)> {
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let mut ev = open(&[addr], count, 1 << 16, Duration::from_secs(120))?;
    let h = ev.handler();
    let seconds = h
        .tally
        .last_joined
        .map_or(0.0, |t| (t - start).as_secs_f64());
    let client_cpu = thread_cpu().saturating_sub(cpu0);
    let settle_until = Instant::now() + settle;
    turn_until(&mut ev, settle, |_| Instant::now() >= settle_until)?;
    let measured = after();
    let t = &ev.handler().tally;
    Ok((
        SioConnect {
            wanted: count,
            connected: t.joined.len(),
            failed: t.failed + t.lost,
            seconds,
            client_cpu,
        },
        measured,
    ))
}
