//! `socklab-bench compare` (`make bench`): socklab beside Socket.IO 4.8 on Node.js, beside
//! socketioxide 0.18 (Socket.IO in Rust) and beside the raw-socket limit, in one run, on one
//! machine, under the same conditions.
//!
//! The main table: three systems, six figures (see `docs/src/performance.md` for what each
//! one means); the sixth, the fan-out over a cluster of two processes on one Redis, is
//! `cluster.rs`'s:
//!
//! | system | server | load |
//! |---|---|---|
//! | the limit | `socklab-bench limit-server`: blocking read and write | [`load::limit`] |
//! | socklab | `socklab-bench server`: the event server with the handlers of `server.js` | [`load`]: its own client, and N protocol clients on one loop |
//! | Socket.IO | `node benches/socketio/server.js` | the Node scripts beside it (socket.io-client, WebSocket only) |
//!
//! The section "The same wire, three servers" (`sio_compare.rs`) loads socklab, Socket.IO
//! and socketioxide (`benches/socketioxide`, `socketioxide.rs`, one tokio thread) with the
//! one Rust generator of `sio_load.rs` (`System::{SocklabSio, SocketIoSio,
//! SocketioxideSio}`), right after each system's column. socketioxide is measured there
//! only: loaded by the Node.js scripts, its fan-out would measure the Node.js client.
//!
//! How the run stays fair:
//! - Placement: every server runs on CPU 0, every load generator and client on CPU 1
//!   (`taskset -c` when it is installed; otherwise `sched_setaffinity`, which a child
//!   inherits). This process pins itself to CPU 1 first, so socklab's in-process load
//!   generators and probe thread run there too. The exception is figure 6, whose second
//!   node runs on CPU 1 beside the load (`cluster.rs`).
//! - Alternation: each repetition runs the limit, then socklab, then Socket.IO, each
//!   followed by its column of the Socket.IO-wire section, then socketioxide's column there,
//!   then the three columns of figure 6, so a drift in the machine's speed hits all of them. Each
//!   figure is the median of the repetitions, shown with its min-max range.
//! - Fresh servers: one server process per system per repetition for figures 2, 3 and 5,
//!   another for figure 4, whose memory is measured from a known start, and fresh servers
//!   and a fresh Redis for each column of figure 6.
//! - Limits: the descriptor limit is raised to the hard limit; a size that needs more
//!   descriptors than that is reported as not reached, never shrunk.
//!
//! Every child process is stopped through its handle (SIGKILL to its pid) when its part is
//! done, also on error; every wait has a time limit ([`Proc`]).
//!
//! This file measures and keeps the measurements ([`Results`]); `report.rs` and `chart.rs`
//! turn them into the table and the chart, and nothing here knows about either.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::child::Proc;
use crate::load::{self, Fanout, FanoutPlan, Hop, Idle, RoundTrips, FANOUT_LIMIT};
use crate::placement::{self, Placement, LOAD_CPU, SERVER_CPU};
use crate::redis::Redis;
use crate::sio_compare::{self, SioFigure};
use crate::{cluster, proc_info, socketioxide, stats, Res};

/// What to measure, and how much.
#[derive(Debug, Clone)]
pub struct Options {
    /// The harness's own binary (it has the hidden `server` and `limit-server`).
    pub exe: PathBuf,
    /// The Socket.IO reference (`benches/socketio`, installed with `npm ci`).
    pub socketio_dir: PathBuf,
    /// Where report.md, latency.svg and the logs go (`target/bench`).
    pub out_dir: PathBuf,
    /// Whether to run the Socket.IO side at all (it is skipped anyway without node).
    pub socketio: bool,
    /// Whether to run socketioxide's column of the Socket.IO-wire section at all (it is
    /// skipped anyway when it was not built).
    pub socketioxide: bool,
    pub reps: usize,
    /// Round trips before the measured ones (figures 1 and 2).
    pub warmup: usize,
    /// Round trips measured (figures 1 and 2).
    pub round_trips: usize,
    /// Fan-out sizes: (clients, messages).
    pub fanout: Vec<(usize, usize)>,
    /// Messages of the fan-out's warm-up round.
    pub fanout_warmup: usize,
    /// The fan-out that runs beside the probe of figure 5: (clients, messages).
    pub under_load: (usize, usize),
    /// The same two for the Socket.IO-wire section (`sio_compare.rs`), where three servers
    /// share the run: the main table's in the full run, smaller in the quick one.
    pub sio_fanout: Vec<(usize, usize)>,
    pub sio_under_load: (usize, usize),
    /// The rate a room holds on the Socket.IO wire (figure 3, `sio_rate.rs`); `None` leaves
    /// it out.
    pub sio_rate: Option<RateSize>,
    /// Idle connections (figure 4), and how long they sit before the server is measured.
    pub idle: usize,
    pub settle: Duration,
    /// Whether figure 4 on the Socket.IO wire is measured again with as many idle
    /// connections as the descriptor limit allows ([`Run::most_connections`]).
    pub idle_most: bool,
    /// The cluster figure (6): its clients and messages (the same for one process and for
    /// two on one Redis), and the messages sent one at a time for its latencies; `None`
    /// leaves it out (`--no-cluster`).
    pub cluster: Option<(usize, usize)>,
    pub paced: usize,
    /// `full` or `quick`, for the report's heading.
    pub label: &'static str,
}

impl Options {
    /// The run of `make bench`: N = 100 and 1,000, C = 10,000, 20,000 round trips after
    /// 1,000, as the issue that asked for it says. M is chosen so that socklab's fan-outs last
    /// a few hundred milliseconds, while Socket.IO's (some 180,000
    /// deliveries per second) stay near ten seconds each. Longer bursts work too
    /// (`--fanout`; docs/src/performance.md, "Bigger bursts").
    pub fn full(exe: PathBuf) -> Options {
        Options {
            exe,
            socketio_dir: PathBuf::from("benches/socketio"),
            out_dir: PathBuf::from("target/bench"),
            socketio: true,
            socketioxide: true,
            reps: 3,
            warmup: 1000,
            round_trips: 20_000,
            fanout: vec![(100, 10_000), (1000, 2000)],
            fanout_warmup: 100,
            under_load: (1000, 2000),
            sio_fanout: vec![(100, 10_000), (1000, 2000)],
            sio_under_load: (1000, 2000),
            sio_rate: Some(RateSize {
                clients: 1000,
                span: Duration::from_secs(2),
                below: 16.0,
                refine: 2,
            }),
            idle: 10_000,
            idle_most: true,
            settle: Duration::from_secs(2),
            cluster: Some((1000, 1000)),
            paced: 200,
            label: "full",
        }
    }

    /// `make bench-quick`: the same figures at sizes that take about a minute.
    pub fn quick(exe: PathBuf) -> Options {
        Options {
            round_trips: 5000,
            fanout: vec![(100, 1000), (500, 400)],
            fanout_warmup: 20,
            under_load: (500, 400),
            sio_fanout: vec![(100, 1000), (500, 400)],
            sio_under_load: (500, 400),
            sio_rate: Some(RateSize {
                clients: 500,
                span: Duration::from_millis(100),
                below: 2.0,
                refine: 0,
            }),
            idle: 2000,
            idle_most: false,
            settle: Duration::from_millis(250),
            cluster: Some((500, 500)),
            paced: 100,
            label: "quick",
            ..Options::full(exe)
        }
    }
}

/// The size of the rate figure: its clients, how long each step sends, how far below the
/// rate of the same server's burst (messages per second) the ladder starts, and how many
/// halvings of the gap follow the first failure (`sio_rate.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSize {
    pub clients: usize,
    pub span: Duration,
    pub below: f64,
    pub refine: usize,
}

/// The systems: the main table's three, then the Socket.IO-wire section's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    Limit,
    Socklab,
    SocketIo,
    /// socklab's server through the Socket.IO wire, loaded by `sio_load.rs` (`sio_compare.rs`).
    SocklabSio,
    /// Socket.IO's server (`server.js`) loaded by the same Rust generator (`sio_compare.rs`).
    SocketIoSio,
    /// socketioxide's server loaded by the same Rust generator (`sio_compare.rs`).
    SocketioxideSio,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Limit => "limit",
            System::Socklab => "socklab",
            System::SocketIo => "Socket.IO",
            System::SocklabSio => "socklab, Socket.IO wire",
            System::SocketIoSio => "Socket.IO, Rust generator",
            System::SocketioxideSio => "socketioxide, Rust generator",
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            System::Limit => "limit",
            System::Socklab => "socklab",
            System::SocketIo => "socketio",
            System::SocklabSio => "socklab-sio",
            System::SocketIoSio => "socketio-sio",
            System::SocketioxideSio => "socketioxide-sio",
        }
    }
}

/// The latency quantiles reported: the table shows p50 and p99, the chart all four.
pub const QUANTILES: [(f64, &str); 4] =
    [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9")];

/// One number of the report (per system and repetition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Figure {
    /// Figures 1 and 2: round trips per second.
    RoundTripsPerSecond,
    /// Figures 1 and 2: the round trip time at `QUANTILES[i]`, in microseconds.
    RoundTripUs(usize),
    /// Figure 3 with N clients: deliveries per second.
    FanoutPerSecond(usize),
    /// Figure 3 with N clients: server CPU nanoseconds per delivery.
    FanoutCpuNs(usize),
    /// Figure 3 with N clients: milliseconds until every client had every message.
    FanoutMs(usize),
    /// Figure 4: server RSS per idle connection, in bytes.
    IdleBytes,
    /// Figure 5: the probe's round trip at `QUANTILES[i]` under fan-out load, microseconds.
    LoadUs(usize),
    /// Figure 5: round trips the probe completed while the fan-out ran.
    LoadCount,
    /// Figure 6, with the clients spread over `nodes` server processes (1, or 2 on one
    /// Redis): see [`Part`].
    Cluster { nodes: usize, part: Part },
    /// The figures only the Socket.IO-wire section has (`sio_compare.rs`).
    Sio(SioFigure),
}

/// One number of the cluster figure (6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// Deliveries per second of the burst.
    PerSecond,
    /// Deliveries of the burst that never came.
    Lost,
    /// Milliseconds until every client had every message (or until the last delivery).
    Ms,
    /// CPU nanoseconds per delivery, all server processes together.
    CpuNs,
    /// Redis's CPU microseconds per message, over the whole fan-out (warm-up, paced, burst).
    RedisCpuUs,
    /// A paced message's send-to-delivery time at `QUANTILES[i]`, in microseconds, to the
    /// clients of the sender's node...
    SameUs(usize),
    /// ...and to those of the other node...
    OtherUs(usize),
    /// ...and the difference: what the hop through Redis adds.
    HopUs(usize),
}

/// What the machine and the run looked like.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub node: Option<String>,
    pub socketio_version: Option<String>,
    /// The socketioxide the server was built with (its lock file).
    pub socketioxide_version: Option<String>,
    /// `redis-server`'s version, and the Redis client and adapter of the Node.js cluster.
    pub redis_version: Option<String>,
    pub redis_adapter_version: Option<String>,
    pub redis_client_version: Option<String>,
    pub placement: String,
    /// Whether the processes are on the CPUs the placement names.
    pub pinned: bool,
    pub fd_limit: u64,
    pub seconds: f64,
}

/// Every measurement of a run.
#[derive(Debug, Default)]
pub struct Results {
    pub values: BTreeMap<(System, Figure), Vec<f64>>,
    /// Why a system did not run at all ("skipped: node not found").
    pub skipped: BTreeMap<System, String>,
    /// Why a column of the cluster figure, a system with that many nodes, did not run
    /// ("skipped: redis-server not found ...").
    pub cluster_skipped: BTreeMap<(System, usize), String>,
    /// Sizes not reached, runs that failed: said, never hidden.
    pub notes: Vec<String>,
    /// Every step of the rate figure's ladders, a line per server and repetition.
    pub ladders: Vec<String>,
    pub env: Env,
}

impl Results {
    pub(crate) fn add(&mut self, system: System, figure: Figure, value: f64) {
        self.values.entry((system, figure)).or_default().push(value);
    }

    pub(crate) fn note(&mut self, note: String) {
        eprintln!("note: {note}");
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Median, min and max of `figure` for `system`, if it was measured at all.
    pub fn get(&self, system: System, figure: Figure) -> Option<(f64, f64, f64)> {
        self.values
            .get(&(system, figure))
            .filter(|v| !v.is_empty())
            .map(|v| stats::median_range(v))
    }

    fn round_trips(&mut self, system: System, rt: &RoundTrips, under_load: bool) {
        if under_load {
            self.add(system, Figure::LoadCount, rt.count as f64);
        } else {
            self.add(system, Figure::RoundTripsPerSecond, rt.per_second());
        }
        for (i, (q, _)) in QUANTILES.iter().enumerate() {
            let f = if under_load {
                Figure::LoadUs(i)
            } else {
                Figure::RoundTripUs(i)
            };
            self.add(system, f, rt.quantile_us(*q));
        }
    }

    fn fanout(&mut self, system: System, f: &Fanout, rep: usize) {
        let n = f.clients;
        self.add(system, Figure::FanoutPerSecond(n), f.per_second());
        self.add(system, Figure::FanoutMs(n), f.seconds * 1000.0);
        match (f.server_cpu, f.cpu_ns_per_delivery()) {
            // Only where the server's CPU-time clock could not be read and `/proc/PID/stat`'s
            // clock ticks (10 ms) stood in: a fan-out shorter than one says nothing about the
            // cost of a delivery.
            (Some(cpu), _) if cpu.is_zero() => self.note(format!(
                "{}, fan-out to {n}, repetition {rep}: the server's CPU time did not reach \
                 one clock tick of /proc/PID/stat; no CPU figure (more messages would give one)",
                system.name()
            )),
            (_, Some(ns)) => self.add(system, Figure::FanoutCpuNs(n), ns),
            _ => {}
        }
    }
}

/// What every part of the run needs.
pub(crate) struct Run<'a> {
    pub(crate) opts: &'a Options,
    pub(crate) placement: Placement,
    pub(crate) logs: PathBuf,
    pub(crate) fd_limit: u64,
    pub(crate) hz: u64,
}

impl Run<'_> {
    /// Starts `program args` in `dir` on `cpu`, its stderr into the logs as `NAME.log`.
    pub(crate) fn start(
        &self,
        name: &str,
        cpu: usize,
        program: &Path,
        args: &[String],
        dir: &Path,
    ) -> Res<Proc> {
        Proc::spawn(&self.placement, &self.logs, name, cpu, program, args, dir)
    }

    /// The most connections that fit under the descriptor limit on both sides, with room
    /// for what else each process holds: [`fits`](Run::fits)'s margin and the loop's own.
    pub(crate) fn most_connections(&self) -> usize {
        (self.fd_limit.saturating_sub(128) / 100 * 100) as usize
    }

    /// Whether `n` connections fit under the descriptor limit on both sides; notes it if not.
    pub(crate) fn fits(&self, r: &mut Results, what: &str, n: usize) -> bool {
        let need = n as u64 + 64;
        if need > self.fd_limit {
            r.note(format!(
                "{what} with {n} connections: not reached (needs about {need} descriptors per \
                 process; the limit here is {})",
                self.fd_limit
            ));
            return false;
        }
        true
    }
}

/// The operations of figures 2-6, for one system.
pub(crate) trait Side {
    const SYSTEM: System;
    /// A server on `cpu`; a node of the cluster over `redis`, if given (figure 6).
    fn server(&self, run: &Run, name: &str, cpu: usize, redis: Option<&Redis>) -> Res<Proc>;
    fn acks(&self, run: &Run, addr: SocketAddr, rep: usize) -> Res<RoundTrips>;
    /// Figures 3 and 6, and the name its logs go by.
    fn fanout(&self, run: &Run, plan: &FanoutPlan, name: &str) -> Res<Fanout>;
    fn under_load(&self, run: &Run, plan: &FanoutPlan, rep: usize) -> Res<(RoundTrips, Fanout)>;
    /// Connects `opts.idle` idle clients; returns them and the server's RSS in KiB before
    /// and with them.
    fn idle(&self, run: &Run, addr: SocketAddr, pid: u32, rep: usize) -> Res<(Idle, u64, u64)>;
}

pub(crate) struct Socklab;

impl Side for Socklab {
    const SYSTEM: System = System::Socklab;

    fn server(&self, run: &Run, name: &str, cpu: usize, redis: Option<&Redis>) -> Res<Proc> {
        let mut args = ["server", "--addr", "127.0.0.1:0"]
            .map(String::from)
            .to_vec();
        if let Some(redis) = redis {
            args.extend(["--redis".into(), redis.url()]);
        }
        run.start(name, cpu, &run.opts.exe, &args, Path::new("."))
    }

    fn acks(&self, run: &Run, addr: SocketAddr, _: usize) -> Res<RoundTrips> {
        Ok(load::acks(addr, run.opts.warmup, run.opts.round_trips)?)
    }

    fn fanout(&self, _: &Run, plan: &FanoutPlan, _: &str) -> Res<Fanout> {
        Ok(load::fanout(plan, || {})?)
    }

    fn under_load(&self, _: &Run, plan: &FanoutPlan, _: usize) -> Res<(RoundTrips, Fanout)> {
        let probe = load::Probe::start(plan.nodes[0], 200)?;
        let f = load::fanout(plan, || probe.go())?;
        Ok((probe.stop()?, f))
    }

    fn idle(&self, run: &Run, addr: SocketAddr, pid: u32, _: usize) -> Res<(Idle, u64, u64)> {
        let mut before = None;
        let (idle, after) = load::idle(
            addr,
            10,
            run.opts.idle,
            run.opts.settle,
            || before = proc_info::rss_kib(pid),
            || proc_info::rss_kib(pid),
        )?;
        Ok((
            idle,
            before.ok_or("no /proc status")?,
            after.ok_or("no /proc status")?,
        ))
    }
}

/// `node SCRIPT args` in `benches/socketio`, on the load CPU.
fn script(run: &Run, name: &str, script: &str, args: &[String]) -> Res<Proc> {
    let mut all = vec![script.to_string()];
    all.extend_from_slice(args);
    run.start(
        name,
        LOAD_CPU,
        Path::new("node"),
        &all,
        &run.opts.socketio_dir,
    )
}

/// Socket.IO 4.8 on Node.js: `node server.js`, loaded by the Node.js scripts of
/// `benches/socketio` (socket.io-client, WebSocket only).
pub(crate) struct SocketIo;

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Numbers as one argument: `1,2,3`.
fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn round_trips_of(v: &Value) -> Res<RoundTrips> {
    let samples: Vec<u64> = v["latencies_ns"]
        .as_array()
        .ok_or("no latencies_ns")?
        .iter()
        .filter_map(Value::as_f64)
        .map(|x| x as u64)
        .collect();
    Ok(RoundTrips::from_samples(
        samples,
        v["seconds"].as_f64().unwrap_or(0.0),
    ))
}

fn fanout_of(v: &Value) -> Res<Fanout> {
    let ns = |key: &str| v[key].as_f64().map(|ns| Duration::from_nanos(ns as u64));
    let samples = |key: &str| {
        let ns = v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64);
        RoundTrips::from_samples(ns.map(|x| x as u64), 0.0)
    };
    let hop = v["paced_sent"].as_u64().filter(|&n| n > 0).map(|sent| Hop {
        same_node: samples("same_node_ns"),
        other_node: samples("other_node_ns"),
        sent: sent as usize,
        lost: v["paced_lost"].as_u64().unwrap_or(0),
    });
    Ok(Fanout {
        clients: v["clients"].as_u64().ok_or("no clients")? as usize,
        messages: v["messages"].as_u64().ok_or("no messages")? as usize,
        deliveries: v["deliveries"].as_u64().ok_or("no deliveries")?,
        lost_by_node: v["lost_by_node"]
            .as_array()
            .ok_or("no lost_by_node")?
            .iter()
            .filter_map(Value::as_u64)
            .collect(),
        seconds: v["seconds"].as_f64().ok_or("no seconds")?,
        server_cpu: ns("server_cpu_ns"),
        complete: v["complete"].as_bool().unwrap_or(false),
        hop,
    })
}

impl Side for SocketIo {
    const SYSTEM: System = System::SocketIo;

    fn server(&self, run: &Run, name: &str, cpu: usize, redis: Option<&Redis>) -> Res<Proc> {
        let mut args = vec!["server.js".to_string()];
        if let Some(redis) = redis {
            args.extend(["--redis".into(), redis.url()]);
        }
        run.start(name, cpu, Path::new("node"), &args, &run.opts.socketio_dir)
    }

    fn acks(&self, run: &Run, addr: SocketAddr, rep: usize) -> Res<RoundTrips> {
        let args = [
            "--url".into(),
            url(addr),
            "--warmup".into(),
            run.opts.warmup.to_string(),
            "--count".into(),
            run.opts.round_trips.to_string(),
        ];
        let name = format!("{}-ack-{rep}", System::SocketIo.slug());
        let mut p = script(run, &name, "ack.js", &args)?;
        let v = p.json(Duration::from_secs(300))?;
        p.finish(Duration::from_secs(5));
        round_trips_of(&v)
    }

    fn fanout(&self, run: &Run, plan: &FanoutPlan, name: &str) -> Res<Fanout> {
        let args = fanout_args(run, plan, false);
        let mut p = script(run, name, "fanout.js", &args)?;
        let v = p.json(FANOUT_LIMIT + Duration::from_secs(120))?;
        p.finish(Duration::from_secs(5));
        fanout_of(&v)
    }

    fn under_load(&self, run: &Run, plan: &FanoutPlan, rep: usize) -> Res<(RoundTrips, Fanout)> {
        let args = [
            "--url".into(),
            url(plan.nodes[0]),
            "--warmup".into(),
            "200".into(),
        ];
        let name = format!("{}-probe-{rep}", System::SocketIo.slug());
        let mut probe = script(run, &name, "probe.js", &args)?;
        probe.json(Duration::from_secs(60))?;
        let args = fanout_args(run, plan, true);
        let name = format!("{}-loaded-{}-{rep}", System::SocketIo.slug(), plan.clients);
        let mut fan = script(run, &name, "fanout.js", &args)?;
        fan.json(Duration::from_secs(120))?;
        probe.say("go")?;
        fan.say("go")?;
        let f = fanout_of(&fan.json(FANOUT_LIMIT + Duration::from_secs(10))?)?;
        probe.say("stop")?;
        let rt = round_trips_of(&probe.json(Duration::from_secs(60))?)?;
        fan.finish(Duration::from_secs(5));
        probe.finish(Duration::from_secs(5));
        Ok((rt, f))
    }

    fn idle(&self, run: &Run, addr: SocketAddr, pid: u32, rep: usize) -> Res<(Idle, u64, u64)> {
        let args = [
            "--url".into(),
            url(addr),
            "--clients".into(),
            run.opts.idle.to_string(),
            "--warm".into(),
            "10".into(),
        ];
        let name = format!("{}-idle-{rep}", System::SocketIo.slug());
        let mut p = script(run, &name, "idle.js", &args)?;
        p.json(Duration::from_secs(60))?;
        let before = proc_info::rss_kib(pid).ok_or("no /proc status")?;
        p.say("go")?;
        let v = p.json(Duration::from_secs(300))?;
        std::thread::sleep(run.opts.settle);
        let after = proc_info::rss_kib(pid).ok_or("no /proc status")?;
        p.say("done")?;
        p.finish(Duration::from_secs(10));
        let connected = v["connected"].as_u64().unwrap_or(0) as usize;
        let idle = Idle {
            wanted: run.opts.idle,
            connected,
            failed: v["failed"].as_u64().unwrap_or(0) as usize,
        };
        Ok((idle, before, after))
    }
}

/// `plan` as the arguments of `fanout.js`.
fn fanout_args(run: &Run, plan: &FanoutPlan, wait: bool) -> Vec<String> {
    [
        "--url",
        &list(plan.nodes.iter().map(|&a| url(a))),
        "--clients",
        &plan.clients.to_string(),
        "--messages",
        &plan.messages.to_string(),
        "--warmup",
        &plan.warmup.to_string(),
        "--paced",
        &plan.paced.to_string(),
        "--server-pid",
        &list(&plan.server_pids),
        "--hz",
        &run.hz.to_string(),
        "--wait",
        if wait { "1" } else { "0" },
        "--timeout-ms",
        &plan.limit.as_millis().to_string(),
        "--stall-ms",
        &plan.stall.as_millis().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// One repetition of figures 2-5 for one system.
fn system_rep<S: Side>(side: &S, run: &Run, r: &mut Results, rep: usize) {
    let sys = S::SYSTEM;
    let tag = |what: &str| format!("{}, {what}, repetition {rep}", sys.name());
    let result = (|| -> Res<()> {
        let name = format!("{}-server-{rep}", sys.slug());
        let mut server = side.server(run, &name, SERVER_CPU, None)?;
        let addr = server.listening()?;
        let plan = |(n, m)| FanoutPlan {
            warmup: run.opts.fanout_warmup,
            server_pids: vec![server.pid()],
            ..FanoutPlan::new(addr, n, m)
        };
        match side.acks(run, addr, rep) {
            Ok(rt) => r.round_trips(sys, &rt, false),
            Err(e) => r.note(format!("{}: {e}", tag("ack round trips"))),
        }
        for &(n, m) in &run.opts.fanout {
            if !run.fits(r, "fan-out", n) {
                continue;
            }
            let name = format!("{}-fanout-{n}-{rep}", sys.slug());
            match side.fanout(run, &plan((n, m)), &name) {
                Ok(f) if f.complete => r.fanout(sys, &f, rep),
                Ok(f) => r.note(format!(
                    "{}: incomplete, {} of {} deliveries in {:.1} s",
                    tag(&format!("fan-out to {n}")),
                    f.deliveries,
                    n * m,
                    f.seconds
                )),
                Err(e) => r.note(format!("{}: {e}", tag(&format!("fan-out to {n}")))),
            }
        }
        let (n, m) = run.opts.under_load;
        if run.fits(r, "latency under load", n + 1) {
            match side.under_load(run, &plan((n, m)), rep) {
                Ok((rt, f)) if f.complete => r.round_trips(sys, &rt, true),
                Ok((_, f)) => r.note(format!(
                    "{}: the fan-out was incomplete ({} of {} deliveries)",
                    tag("latency under load"),
                    f.deliveries,
                    n * m
                )),
                Err(e) => r.note(format!("{}: {e}", tag("latency under load"))),
            }
        }
        drop(server);
        let c = run.opts.idle;
        if run.fits(r, "idle connections", c) {
            let name = format!("{}-idle-server-{rep}", sys.slug());
            let mut server = side.server(run, &name, SERVER_CPU, None)?;
            let addr = server.listening()?;
            match side.idle(run, addr, server.pid(), rep) {
                Ok((idle, before, after)) if idle.connected == c => {
                    let bytes = after.saturating_sub(before) as f64 * 1024.0 / c as f64;
                    r.add(sys, Figure::IdleBytes, bytes);
                }
                Ok((idle, _, _)) => r.note(format!(
                    "{}: not reached, {} of {c} connected ({} failed)",
                    tag("idle connections"),
                    idle.connected,
                    idle.failed
                )),
                Err(e) => r.note(format!("{}: {e}", tag("idle connections"))),
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        r.note(format!("{}: {e}", tag("server")));
    }
}

/// One repetition of figure 1.
fn limit_rep(run: &Run, r: &mut Results, rep: usize) -> Res<()> {
    let args = ["limit-server", "--addr", "127.0.0.1:0"].map(String::from);
    let mut server = run.start(
        &format!("limit-server-{rep}"),
        SERVER_CPU,
        &run.opts.exe,
        &args,
        Path::new("."),
    )?;
    let addr = server.listening()?;
    let rt = load::limit(addr, run.opts.warmup, run.opts.round_trips)?;
    r.round_trips(System::Limit, &rt, false);
    Ok(())
}

/// Whether `node --version` runs here.
pub fn node_runs() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the Socket.IO side cannot run here, if it cannot.
fn socketio_missing(opts: &Options) -> Option<String> {
    if !opts.socketio {
        return Some("skipped (--no-socketio)".into());
    }
    if !node_runs() {
        return Some("skipped: node not found".into());
    }
    if !opts
        .socketio_dir
        .join("node_modules/socket.io/package.json")
        .exists()
    {
        return Some(format!(
            "skipped: Socket.IO not installed (run `npm ci` in {})",
            opts.socketio_dir.display()
        ));
    }
    None
}

/// Why socketioxide's column (of the Socket.IO-wire section) cannot run here, if it cannot.
fn socketioxide_missing(opts: &Options) -> Option<String> {
    if !opts.socketioxide {
        return Some("skipped (--no-socketioxide)".into());
    }
    socketioxide::binary().err()
}

fn first_line_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    })
}

pub(crate) fn package_version(dir: &Path, package: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("node_modules").join(package).join("package.json"))
        .ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["version"].as_str().map(str::to_string)
}

fn environment(cpus: usize) -> Env {
    Env {
        cpus,
        cpu_model: proc_info::cpu_model(),
        kernel: proc_info::kernel(),
        ..Env::default()
    }
}

/// Runs the whole comparison; the caller writes the report (`report::write`).
pub fn run(opts: &Options) -> Res<Results> {
    let started = Instant::now();
    let logs = opts.out_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let placement = Placement::detect(cpus);
    let hz = proc_info::ticks_per_second();
    let run = Run {
        opts,
        placement,
        logs,
        fd_limit: placement::raise_fd_limit(),
        hz,
    };
    let mut r = Results {
        env: environment(cpus),
        ..Results::default()
    };
    r.env.placement = placement.describe(cpus);
    r.env.pinned = placement.pinned();
    r.env.fd_limit = run.fd_limit;
    let missing = socketio_missing(opts);
    if let Some(why) = &missing {
        eprintln!("Socket.IO: {why}");
        r.skipped.insert(System::SocketIo, why.clone());
    } else {
        r.env.node = first_line_of("node", &["--version"]);
        r.env.socketio_version = package_version(&opts.socketio_dir, "socket.io");
    }
    // The Rust generator needs no node for socketioxide: only its binary.
    let sioxide_missing = socketioxide_missing(opts);
    match &sioxide_missing {
        Some(why) => {
            eprintln!("socketioxide: {why}");
            r.skipped.insert(System::SocketioxideSio, why.clone());
        }
        None => r.env.socketioxide_version = socketioxide::version(),
    }
    if let Some(why) = &missing {
        r.skipped.insert(System::SocketIoSio, why.clone());
    }
    if opts.cluster.is_some() {
        cluster::check(&mut r, &opts.socketio_dir);
    }
    eprintln!("placement: {}", r.env.placement);
    for rep in 1..=opts.reps.max(1) {
        eprintln!("repetition {rep} of {}: the limit", opts.reps);
        if let Err(e) = limit_rep(&run, &mut r, rep) {
            r.note(format!("limit, repetition {rep}: {e}"));
        }
        eprintln!("repetition {rep} of {}: socklab", opts.reps);
        system_rep(&Socklab, &run, &mut r, rep);
        eprintln!("repetition {rep} of {}: socklab, Socket.IO wire", opts.reps);
        sio_compare::rep(&run, &mut r, System::SocklabSio, rep);
        if missing.is_none() {
            eprintln!("repetition {rep} of {}: Socket.IO", opts.reps);
            system_rep(&SocketIo, &run, &mut r, rep);
            eprintln!(
                "repetition {rep} of {}: Socket.IO, Rust generator",
                opts.reps
            );
            sio_compare::rep(&run, &mut r, System::SocketIoSio, rep);
        }
        if sioxide_missing.is_none() {
            eprintln!(
                "repetition {rep} of {}: socketioxide, Rust generator",
                opts.reps
            );
            sio_compare::rep(&run, &mut r, System::SocketioxideSio, rep);
        }
        if opts.cluster.is_none() {
            continue;
        }
        for column in cluster::COLUMNS {
            if !cluster::runs(&r, column) {
                continue;
            }
            let (sys, nodes) = column;
            eprintln!(
                "repetition {rep} of {}: cluster figure, {} with {nodes} process(es)",
                opts.reps,
                sys.name()
            );
            match sys {
                System::Socklab => cluster::rep(&Socklab, &run, &mut r, nodes, rep),
                System::SocketIo => cluster::rep(&SocketIo, &run, &mut r, nodes, rep),
                System::Limit
                | System::SocklabSio
                | System::SocketIoSio
                | System::SocketioxideSio => {}
            }
        }
    }
    r.env.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}
