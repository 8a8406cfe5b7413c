//! The section "The same wire, three servers" of `compare` (issue 15): socklab's server,
//! Socket.IO 4.8 on Node.js and socketioxide 0.18, each measured through the real Socket.IO
//! wire by the one Rust generator of [`crate::sio_load`]: the same bytes, the same client,
//! three servers. Its figures are the ones the generator can make: 1-2 (acks one at a
//! time), 2b (acks from many clients at once), 3 (fan-out), 4 (idle memory, after the
//! handshake storm), 5 (acks one at a time from a probe of their own while a fan-out runs),
//! each with the generator's own CPU time and the server's CPU per ack or delivery, in a
//! section of the report of its own, with its own targets. Its fan-out sizes are
//! `Options::sio_fanout` and `sio_under_load`: the main table's in the full run, smaller in
//! the quick one, where three servers share the minute.
//!
//! Each server is started by the code of its own column ([`Side::server`]) on CPU 0; the
//! generator runs in this process, which `compare` pinned to CPU 1. Only the load differs
//! from the main table's Socket.IO column, which the Node.js clients load. socketioxide is
//! measured here only: the Node.js clients' fan-out runs at some 400,000 deliveries per
//! second whatever the server, so beside them it would measure the client.

use std::fmt::Write as _;
use std::time::Duration;

use crate::child::Proc;
use crate::compare::{Figure, Options, Results, Run, Side, SocketIo, Socklab, System, QUANTILES};
use crate::load::FanoutPlan;
use crate::placement::SERVER_CPU;
use crate::report::{cell, int, median, num, ratio, Verdict};
use crate::sio_rate::{self, RatePlan, P99_LIMIT};
use crate::{proc_info, sio_load, Res};

/// The clients of figure 2b: each makes ack round trips one at a time, all at once.
pub const MANY: usize = 100;

/// The three servers of the section, in the order of its columns.
pub const SERVERS: [System; 3] = [
    System::SocklabSio,
    System::SocketIoSio,
    System::SocketioxideSio,
];

/// The figures only this section has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SioFigure {
    /// Figure 2b: acks per second, and their p99 in microseconds.
    ManyPerSecond,
    ManyP99Us,
    /// Server CPU nanoseconds per ack: one client (figure 2), `MANY` clients (2b).
    AckCpuNs,
    ManyCpuNs,
    /// Figure 3 with N clients: deliveries that never came.
    Lost(usize),
    /// Figure 4: connections established per second (TCP, upgrade, open, CONNECT).
    ConnectsPerSecond,
    /// Figure 4 again with as many connections as the descriptor limit allows: server RSS
    /// per idle connection, and connections per second.
    MostIdleBytes,
    MostConnectsPerSecond,
    /// How many that is ([`Run::most_connections`](crate::compare::Run)).
    MostCount,
    /// Figure 3's rate (`sio_rate.rs`): the highest rate that held, in messages per second,
    /// the p99 delivery delay at that rate (µs), and the lowest rate that failed.
    RateHeld,
    RateHeldDeliveries,
    RateP99Us,
    RateFailed,
    /// The generator's CPU time over a figure, in percent of one CPU.
    GenCpu(Gen),
}

/// Which figure the generator's CPU time is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Gen {
    Acks,
    Many,
    Fanout(usize),
    Storm,
    /// The storm at the descriptor limit.
    MostStorm,
    /// At the highest rate that held.
    Rate,
}

fn pct(cpu: Duration, seconds: f64) -> f64 {
    cpu.as_secs_f64() * 100.0 / seconds.max(1e-9)
}

/// The server of `sys`'s column, started by the code that starts it for the main table.
fn start(run: &Run, sys: System, name: &str) -> Res<Proc> {
    match sys {
        System::SocketIoSio => Side::server(&SocketIo, run, name, SERVER_CPU, None),
        System::SocketioxideSio => {
            crate::socketioxide::start(&run.placement, &run.logs, name, SERVER_CPU)
        }
        _ => Side::server(&Socklab, run, name, SERVER_CPU, None),
    }
}

/// One repetition of `sys`'s column: a server for figures 2, 2b and 3, a fresh one for 4.
pub(crate) fn rep(run: &Run, r: &mut Results, sys: System, rep: usize) {
    let tag = |what: &str| format!("{}, {what}, repetition {rep}", sys.name());
    if let Err(e) = measured(run, r, sys, rep, &tag) {
        r.note(format!("{}: {e}", tag("server")));
    }
}

/// Server CPU nanoseconds per operation, if the server's CPU time moved at all (it reads in
/// nanoseconds; in clock ticks of 10 ms only where its CPU-time clock cannot be read).
fn cpu_ns(cpu: Option<Duration>, ops: u64) -> Option<f64> {
    cpu.filter(|c| !c.is_zero() && ops > 0)
        .map(|c| c.as_nanos() as f64 / ops as f64)
}

fn measured(
    run: &Run,
    r: &mut Results,
    sys: System,
    rep: usize,
    tag: &dyn Fn(&str) -> String,
) -> Res<()> {
    let opts = run.opts;
    let sio = Figure::Sio;
    let mut server = start(run, sys, &format!("{}-server-{rep}", sys.slug()))?;
    let addr = server.listening()?;
    let pids = [server.pid()];
    match sio_load::acks(addr, 1, opts.warmup, opts.round_trips, &pids) {
        Ok(a) => {
            r.add(sys, Figure::RoundTripsPerSecond, a.rt.per_second());
            for (i, (q, _)) in QUANTILES.iter().enumerate() {
                r.add(sys, Figure::RoundTripUs(i), a.rt.quantile_us(*q));
            }
            if let Some(ns) = cpu_ns(a.server_cpu, a.rt.count) {
                r.add(sys, sio(SioFigure::AckCpuNs), ns);
            }
            let gen = pct(a.client_cpu, a.rt.seconds);
            r.add(sys, sio(SioFigure::GenCpu(Gen::Acks)), gen);
        }
        Err(e) => r.note(format!("{}: {e}", tag("ack round trips"))),
    }
    if run.fits(r, "acks from many clients", MANY) {
        match sio_load::acks(addr, MANY, opts.warmup, opts.round_trips * 5, &pids) {
            Ok(a) => {
                r.add(sys, sio(SioFigure::ManyPerSecond), a.rt.per_second());
                r.add(sys, sio(SioFigure::ManyP99Us), a.rt.quantile_us(0.99));
                if let Some(ns) = cpu_ns(a.server_cpu, a.rt.count) {
                    r.add(sys, sio(SioFigure::ManyCpuNs), ns);
                }
                let gen = pct(a.client_cpu, a.rt.seconds);
                r.add(sys, sio(SioFigure::GenCpu(Gen::Many)), gen);
            }
            Err(e) => r.note(format!("{}: {e}", tag("acks from 100 clients"))),
        }
    }
    // Deliveries per second of this server's burst closest in size to the rate figure's
    // room: where that figure's ladder starts.
    let mut burst: Option<(usize, f64)> = None;
    for &(n, m) in &opts.sio_fanout {
        if !run.fits(r, "fan-out", n) {
            continue;
        }
        let plan = FanoutPlan {
            warmup: opts.fanout_warmup,
            server_pids: vec![server.pid()],
            ..FanoutPlan::new(addr, n, m)
        };
        let what = format!("fan-out to {n}");
        match sio_load::fanout(&plan, || {}) {
            Ok(s) => {
                let f = &s.fanout;
                let lost = (n * m) as u64 - f.deliveries.min((n * m) as u64);
                r.add(sys, sio(SioFigure::Lost(n)), lost as f64);
                if !f.complete {
                    r.note(format!(
                        "{}: incomplete, {} of {} deliveries in {:.1} s",
                        tag(&what),
                        f.deliveries,
                        n * m,
                        f.seconds
                    ));
                    continue;
                }
                r.add(sys, Figure::FanoutPerSecond(n), f.per_second());
                r.add(sys, Figure::FanoutMs(n), f.seconds * 1000.0);
                let room = opts.sio_rate.map_or(0, |s| s.clients);
                if burst.is_none_or(|(b, _)| n.abs_diff(room) < b.abs_diff(room)) {
                    burst = Some((n, f.per_second()));
                }
                match (f.server_cpu, f.cpu_ns_per_delivery()) {
                    (Some(cpu), _) if cpu.is_zero() => r.note(format!(
                        "{}: the server's CPU time did not reach one clock tick of \
                         /proc/PID/stat; no CPU figure",
                        tag(&what)
                    )),
                    (_, Some(ns)) => r.add(sys, Figure::FanoutCpuNs(n), ns),
                    _ => {}
                }
                let gen = pct(s.client_cpu, f.seconds);
                r.add(sys, sio(SioFigure::GenCpu(Gen::Fanout(n))), gen);
            }
            Err(e) => r.note(format!("{}: {e}", tag(&what))),
        }
    }
    let (n, m) = opts.sio_under_load;
    if run.fits(r, "latency under load", n + 1) {
        let plan = FanoutPlan {
            warmup: opts.fanout_warmup,
            server_pids: vec![server.pid()],
            ..FanoutPlan::new(addr, n, m)
        };
        let loaded = sio_load::start_probe(addr, 200).and_then(|probe| {
            let f = sio_load::fanout(&plan, || probe.go())?;
            Ok((probe.stop()?, f))
        });
        match loaded {
            Ok((rt, f)) if f.fanout.complete => {
                r.add(sys, Figure::LoadCount, rt.count as f64);
                // No ack back while the fan-out ran: its one ack waited longer than the
                // burst, which the count says; there is no time to give.
                for (i, (q, _)) in QUANTILES.iter().enumerate().filter(|_| rt.count > 0) {
                    r.add(sys, Figure::LoadUs(i), rt.quantile_us(*q));
                }
            }
            Ok((_, f)) => r.note(format!(
                "{}: the fan-out was incomplete ({} of {} deliveries)",
                tag("latency under load"),
                f.fanout.deliveries,
                n * m
            )),
            Err(e) => r.note(format!("{}: {e}", tag("latency under load"))),
        }
    }
    if let Some(size) = opts
        .sio_rate
        .filter(|s| run.fits(r, "the rate a room holds", s.clients))
    {
        // A start well below the burst's rate, so that the ladder has steps that hold.
        let per_message = burst.map_or(0.0, |(_, d)| d / size.clients as f64);
        let plan = RatePlan {
            addr,
            clients: size.clients,
            span: size.span,
            start: (per_message / size.below).max(5.0).round(),
            refine: size.refine,
            max_steps: sio_rate::MAX_STEPS,
            server_pids: vec![server.pid()],
        };
        let began = std::time::Instant::now();
        match sio_rate::sustained(&plan) {
            Ok(s) => {
                if let Some(best) = s.best() {
                    r.add(sys, sio(SioFigure::RateHeld), best.rate);
                    let deliveries = best.rate * s.clients as f64;
                    r.add(sys, sio(SioFigure::RateHeldDeliveries), deliveries);
                    r.add(sys, sio(SioFigure::RateP99Us), best.p99_us());
                    r.add(sys, sio(SioFigure::GenCpu(Gen::Rate)), best.gen_cpu_pct);
                }
                if let Some(failed) = s.first_failed() {
                    r.add(sys, sio(SioFigure::RateFailed), failed.rate);
                }
                let ladder: Vec<String> = s
                    .steps
                    .iter()
                    .map(|st| format!("{} ({})", num(st.rate), short_us(st.p99_us())))
                    .collect();
                r.ladders.push(format!(
                    "{}: {}{} ({:.1} s)",
                    tag("the rate a room holds"),
                    ladder.join(", "),
                    s.cut_short.map_or(String::new(), |c| format!("; {c}")),
                    began.elapsed().as_secs_f64()
                ));
            }
            Err(e) => r.note(format!("{}: {e}", tag("the rate a room holds"))),
        }
    }
    drop(server);
    let most = opts.idle_most.then(|| run.most_connections());
    for (c, at_most) in [(Some(opts.idle), false), (most, true)] {
        if let Some(c) = c.filter(|&c| run.fits(r, "idle connections", c)) {
            idle(run, r, sys, rep, c, at_most, tag)?;
        }
    }
    Ok(())
}

/// `v` microseconds, short: `850 µs`, `12 ms`, `2.1 s`.
fn short_us(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1} s", v / 1e6),
        v if v >= 1e4 => format!("{:.0} ms", v / 1e3),
        v if v >= 1e3 => format!("{:.1} ms", v / 1e3),
        v => format!("{v:.0} µs"),
    }
}

/// Figure 4 with `c` connections on a fresh server of `sys`: its RSS per idle connection,
/// connections per second and the generator's CPU, into the figures of C = `opts.idle` or,
/// if `at_most`, of as many as the descriptor limit allows.
fn idle(
    run: &Run,
    r: &mut Results,
    sys: System,
    rep: usize,
    c: usize,
    at_most: bool,
    tag: &dyn Fn(&str) -> String,
) -> Res<()> {
    let sio = Figure::Sio;
    let (bytes_figure, connects_figure, gen) = if at_most {
        let bytes = sio(SioFigure::MostIdleBytes);
        (bytes, sio(SioFigure::MostConnectsPerSecond), Gen::MostStorm)
    } else {
        let connects = sio(SioFigure::ConnectsPerSecond);
        (Figure::IdleBytes, connects, Gen::Storm)
    };
    let mut server = start(run, sys, &format!("{}-idle-{c}-{rep}", sys.slug()))?;
    let addr = server.listening()?;
    let pid = server.pid();
    // What a first connection sets up once is not counted, as in the other columns.
    sio_load::connect(addr, 10, Duration::ZERO, || ())?;
    std::thread::sleep(Duration::from_millis(200));
    let before = proc_info::rss_kib(pid).ok_or("no /proc status")?;
    let settle = run.opts.settle;
    let (storm, after) = sio_load::connect(addr, c, settle, || proc_info::rss_kib(pid))?;
    let after = after.ok_or("no /proc status")?;
    if storm.connected == c {
        let bytes = after.saturating_sub(before) as f64 * 1024.0 / c as f64;
        r.add(sys, bytes_figure, bytes);
        r.add(sys, connects_figure, storm.per_second());
        let pct = pct(storm.client_cpu, storm.seconds);
        r.add(sys, sio(SioFigure::GenCpu(gen)), pct);
        if at_most {
            r.add(sys, sio(SioFigure::MostCount), c as f64);
        }
    } else {
        r.note(format!(
            "{}: not reached, {} of {c} connected ({} failed)",
            tag(&format!("idle connections, C = {}", int(c))),
            storm.connected,
            storm.failed
        ));
    }
    Ok(())
}

/// The settings each server of the section changed from its defaults.
const SETTINGS: &str = "\
- socklab: `socklab-bench server`, the event server with `server.js`'s handlers and the \
  defaults of `socklab serve` (no setting changed).
- Socket.IO: `node benches/socketio/server.js`; changed from the defaults: \
  `transports: [\"websocket\"]` (no long-polling) and `serveClient: false`; heartbeats (25 s, \
  20 s), no compression, `maxHttpBufferSize` are the defaults.
- socketioxide: `benches/socketioxide`; changed from the defaults: a `current_thread` tokio \
  runtime (one thread), WebSocket only, `max_buffer_size` raised from 128 to 1,048,576 packets \
  (with 128 a burst loses most of its deliveries) and `TCP_NODELAY` on (see its README).";

/// The rows of the table: a label, the figure, and the generator CPU it comes with.
fn rows(opts: &Options) -> Vec<(String, Figure, Option<Gen>)> {
    let sio = Figure::Sio;
    let mut rows: Vec<(String, Figure, Option<Gen>)> = vec![
        (
            "ack round trips per second, one at a time".into(),
            Figure::RoundTripsPerSecond,
            Some(Gen::Acks),
        ),
        (
            format!("ack round trip {} (µs)", QUANTILES[0].1),
            Figure::RoundTripUs(0),
            None,
        ),
        (
            format!("ack round trip {} (µs)", QUANTILES[2].1),
            Figure::RoundTripUs(2),
            None,
        ),
        (
            "server CPU per ack (ns), one at a time".into(),
            sio(SioFigure::AckCpuNs),
            None,
        ),
        (
            format!("acks per second, {MANY} clients each one at a time"),
            sio(SioFigure::ManyPerSecond),
            Some(Gen::Many),
        ),
        (
            format!("ack p99 with {MANY} clients (µs)"),
            sio(SioFigure::ManyP99Us),
            None,
        ),
        (
            format!("server CPU per ack (ns), {MANY} clients"),
            sio(SioFigure::ManyCpuNs),
            None,
        ),
    ];
    for &(n, m) in &opts.sio_fanout {
        rows.push((
            format!(
                "fan-out deliveries per second, N = {}, M = {}",
                int(n),
                int(m)
            ),
            Figure::FanoutPerSecond(n),
            Some(Gen::Fanout(n)),
        ));
        rows.push((
            format!("server CPU per delivery (ns), N = {}", int(n)),
            Figure::FanoutCpuNs(n),
            None,
        ));
        rows.push((
            format!(
                "time until every client had every message (ms), N = {}",
                int(n)
            ),
            Figure::FanoutMs(n),
            None,
        ));
        rows.push((
            format!("deliveries lost (of {}), N = {}", int(n * m), int(n)),
            sio(SioFigure::Lost(n)),
            None,
        ));
    }
    let (n, _) = opts.sio_under_load;
    for i in [0, 2] {
        rows.push((
            format!(
                "ack round trip {} under fan-out load (µs), N = {}",
                QUANTILES[i].1,
                int(n)
            ),
            Figure::LoadUs(i),
            None,
        ));
    }
    rows.push((
        "acks the probe completed during that fan-out".into(),
        Figure::LoadCount,
        None,
    ));
    if let Some(size) = opts.sio_rate {
        let n = int(size.clients);
        let ms = P99_LIMIT.as_millis();
        rows.push((
            format!("highest rate held, p99 delivery ≤ {ms} ms (messages/s), N = {n}"),
            sio(SioFigure::RateHeld),
            Some(Gen::Rate),
        ));
        rows.push((
            format!("that rate in deliveries per second, N = {n}"),
            sio(SioFigure::RateHeldDeliveries),
            None,
        ));
        rows.push((
            format!("p99 delivery at that rate (µs), N = {n}"),
            sio(SioFigure::RateP99Us),
            None,
        ));
        rows.push((
            format!("lowest rate that failed (messages/s), N = {n}"),
            sio(SioFigure::RateFailed),
            None,
        ));
    }
    rows.push((
        format!("connections established per second, C = {}", int(opts.idle)),
        sio(SioFigure::ConnectsPerSecond),
        Some(Gen::Storm),
    ));
    rows.push((
        format!(
            "server RSS per idle connection (bytes), C = {}",
            int(opts.idle)
        ),
        Figure::IdleBytes,
        None,
    ));
    if opts.idle_most {
        let c = "that many";
        rows.push((
            "idle connections: as many as the descriptor limit allows".into(),
            sio(SioFigure::MostCount),
            None,
        ));
        rows.push((
            format!("connections established per second, C = {c}"),
            sio(SioFigure::MostConnectsPerSecond),
            Some(Gen::MostStorm),
        ));
        rows.push((
            format!("server RSS per idle connection (bytes), C = {c}"),
            sio(SioFigure::MostIdleBytes),
            None,
        ));
    }
    rows
}

/// A cell of the section: `cell`, with the generator's CPU after it when it has one.
fn with_gen(r: &Results, sys: System, figure: Figure, gen: Option<Gen>) -> String {
    let c = cell(r, sys, figure);
    match gen.and_then(|g| median(r, sys, Figure::Sio(SioFigure::GenCpu(g)))) {
        Some(pct) if !r.skipped.contains_key(&sys) => format!("{c} (gen. {pct:.0} %)"),
        _ => c,
    }
}

/// The report's section.
pub(crate) fn section(t: &mut String, r: &Results, opts: &Options) {
    let _ = writeln!(t, "\n### The same wire, three servers\n");
    let _ = writeln!(
        t,
        "socklab, Socket.IO on Node.js and socketioxide, each loaded through Engine.IO v4 + \
         Socket.IO v5 over WebSocket (masked frames) by the one Rust generator of \
         `sio_load.rs`, all its clients on one event loop on CPU 1, every server on CPU 0, \
         a fresh server per column and repetition (and another for figure 4), the columns \
         alternating. Figure 5's probe is one more client of the same generator, on a \
         thread and a loop of its own, making acks one at a time while the fan-out runs. \
         In brackets after a rate: the generator's CPU time over that figure, \
         in percent of one CPU; near 100 % the generator, not the server, set the pace. \
         The first column is socklab through its own protocol (the main table, where it \
         measured the same size), for what the protocol costs.\n"
    );
    let _ = writeln!(t, "{SETTINGS}\n");
    let _ = writeln!(
        t,
        "| figure | socklab (own protocol) | socklab | Socket.IO | socketioxide | socklab / Socket.IO | socklab / socketioxide |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|");
    for (label, figure, gen) in rows(opts) {
        // The main table's socklab figure, where the main table measured the same size.
        let same_size = match figure {
            Figure::Sio(_) => false,
            Figure::FanoutPerSecond(n) | Figure::FanoutCpuNs(n) | Figure::FanoutMs(n) => {
                opts.fanout.iter().find(|f| f.0 == n) == opts.sio_fanout.iter().find(|f| f.0 == n)
            }
            Figure::LoadUs(_) | Figure::LoadCount => opts.under_load == opts.sio_under_load,
            _ => true,
        };
        let own = if same_size {
            cell(r, System::Socklab, figure)
        } else {
            String::new()
        };
        let cells: Vec<String> = SERVERS
            .iter()
            .map(|&s| match figure {
                Figure::Sio(SioFigure::Lost(_)) if !r.skipped.contains_key(&s) => r
                    .get(s, figure)
                    .map_or("not measured (see notes)".into(), |(m, lo, hi)| {
                        format!("{} [{}-{}]", m.round(), lo.round(), hi.round())
                    }),
                _ => with_gen(r, s, figure, gen),
            })
            .collect();
        let s = median(r, System::SocklabSio, figure);
        let vs = |other: System| match (s, median(r, other, figure)) {
            (Some(a), Some(b)) if b > 0.0 && !matches!(figure, Figure::Sio(SioFigure::Lost(_))) => {
                ratio(a / b)
            }
            _ => String::new(),
        };
        let _ = writeln!(
            t,
            "| {label} | {own} | {} | {} | {} |",
            cells.join(" | "),
            vs(System::SocketIoSio),
            vs(System::SocketioxideSio),
        );
    }
    if !r.ladders.is_empty() {
        let _ = writeln!(
            t,
            "\n#### The rate ladders\n\nEach step: messages per second offered, and in \
             brackets the p99 of its delivery delays; a step holds up to {} ms.\n",
            P99_LIMIT.as_millis()
        );
        for l in &r.ladders {
            let _ = writeln!(t, "- {l}");
        }
    }
    let _ = writeln!(
        t,
        "\n#### Targets on the Socket.IO wire\n\n| target | measured | |\n|---|---|---|"
    );
    for v in targets(r, opts) {
        let _ = writeln!(t, "| {} | {} | {} |", v.target, v.measured, v.verdict);
    }
}

/// "socklab's rate at least `k` times `other`'s": the verdict.
fn at_least(r: &Results, figure: Figure, other: System, k: f64, what: &str) -> Verdict {
    let a = median(r, System::SocklabSio, figure);
    Verdict::new(
        format!("{what} at least {k}x {}'s", short(other)),
        a.zip(median(r, other, figure)).map(|(a, b)| {
            (
                format!("{} ({} vs {})", ratio(a / b), num(a), num(b)),
                a >= k * b,
                format!(
                    "{} of the {k}x ({:.0}% short)",
                    ratio(a / b),
                    (1.0 - a / b / k) * 100.0
                ),
            )
        }),
    )
}

/// "socklab's cost at most 1/`k` of `other`'s": the verdict.
fn at_most(r: &Results, figure: Figure, other: System, k: f64, what: &str) -> Verdict {
    let a = median(r, System::SocklabSio, figure);
    Verdict::new(
        format!("{what} at most 1/{k} of {}'s", short(other)),
        a.zip(median(r, other, figure)).map(|(a, b)| {
            (
                format!("{} ({} ns vs {} ns)", ratio(a / b), num(a), num(b)),
                a * k <= b,
                format!("{} of {}'s, not 1/{k}", ratio(a / b), short(other)),
            )
        }),
    )
}

fn short(s: System) -> &'static str {
    match s {
        System::SocketIoSio => "Socket.IO",
        System::SocketioxideSio => "socketioxide",
        _ => s.name(),
    }
}

/// The targets for the Socket.IO wire (reported, not asserted).
fn targets(r: &Results, opts: &Options) -> Vec<Verdict> {
    let (io, x) = (System::SocketIoSio, System::SocketioxideSio);
    let sio = Figure::Sio;
    let rt = Figure::RoundTripsPerSecond;
    let mut v = vec![Verdict::new(
        "acks one at a time within 1.1x of the raw limit".into(),
        median(r, System::SocklabSio, rt)
            .zip(median(r, System::Limit, rt))
            .map(|(a, l)| {
                (
                    format!(
                        "the limit is {} socklab ({} vs {})",
                        ratio(l / a),
                        num(l),
                        num(a)
                    ),
                    l <= 1.1 * a,
                    format!("the limit is {} socklab, not 1.1x", ratio(l / a)),
                )
            }),
    )];
    let many = sio(SioFigure::ManyPerSecond);
    let w = format!("acks per second with {MANY} clients");
    v.push(at_least(r, many, io, 5.0, &w));
    v.push(at_least(r, many, x, 1.5, &w));
    let n = opts.sio_fanout.iter().map(|f| f.0).max().unwrap_or(0);
    let w = format!("fan-out deliveries per second at N = {}", int(n));
    v.push(at_least(r, Figure::FanoutPerSecond(n), io, 10.0, &w));
    v.push(at_least(r, Figure::FanoutPerSecond(n), x, 2.0, &w));
    let w = format!("server CPU per delivery at N = {}", int(n));
    v.push(at_most(r, Figure::FanoutCpuNs(n), io, 10.0, &w));
    v.push(at_most(r, Figure::FanoutCpuNs(n), x, 2.0, &w));
    v.push(Verdict::new(
        format!(
            "server RSS per idle WebSocket connection at most 2 KB (2,048 bytes) at C = {}",
            int(opts.idle)
        ),
        median(r, System::SocklabSio, Figure::IdleBytes).map(|a| {
            (
                format!("{} bytes", num(a)),
                a <= 2048.0,
                format!(
                    "{} bytes over ({:.0}% more)",
                    num(a - 2048.0),
                    (a / 2048.0 - 1.0) * 100.0
                ),
            )
        }),
    ));
    let storm = sio(SioFigure::ConnectsPerSecond);
    v.push(at_least(
        r,
        storm,
        io,
        5.0,
        "connections established per second",
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn the_section_has_three_servers_and_its_targets() {
        let opts = Options::quick(PathBuf::from("socklab"));
        let mut r = Results::default();
        let many = Figure::Sio(SioFigure::ManyPerSecond);
        r.values.insert((System::SocklabSio, many), vec![60_000.0]);
        r.values.insert((System::SocketIoSio, many), vec![10_000.0]);
        r.skipped
            .insert(System::SocketioxideSio, crate::socketioxide::MISSING.into());
        let mut t = String::new();
        section(&mut t, &r, &opts);
        assert!(t.contains("| socklab | Socket.IO | socketioxide |"), "{t}");
        assert!(t.contains(crate::socketioxide::MISSING), "{t}");
        // 60,000 over 10,000: met against Socket.IO's 5x, not measured against socketioxide.
        assert!(t.contains("| 6.00x (60,000 vs 10,000) | met |"), "{t}");
        assert!(t.contains("| not measured | - |"), "{t}");
    }
}
