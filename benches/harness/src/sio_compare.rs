//! The column "socklab, Socket.IO wire" of `compare` (issue 15): socklab's server measured
//! through the real Socket.IO wire by the Rust generator of [`crate::sio_load`], beside the
//! same server through its own protocol and beside Socket.IO on Node.js. Its figures are
//! the ones the generator can make: 1-2 (acks one at a time), 2b (acks from many clients at
//! once), 3 (fan-out), 4 (idle memory, after the handshake storm), each with the
//! generator's own CPU time, in a section of the report of its own.
//!
//! The server is the same `socklab-bench server` as socklab's column, on CPU 0; the
//! generator runs in this process, which `compare` pinned to CPU 1.

use std::fmt::Write as _;
use std::time::Duration;

use crate::compare::{Figure, Options, Results, Run, System, QUANTILES};
use crate::load::FanoutPlan;
use crate::report::{cell, int};
use crate::{proc_info, sio_load, Res};

/// The clients of figure 2b: each makes ack round trips one at a time, all at once.
pub const MANY: usize = 100;

/// The figures only this column has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SioFigure {
    /// Figure 2b: acks per second, and their p99 in microseconds.
    ManyPerSecond,
    ManyP99Us,
    /// Figure 4: connections established per second (TCP, upgrade, open, CONNECT).
    ConnectsPerSecond,
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
}

const SYS: System = System::SocklabSio;

fn pct(cpu: Duration, seconds: f64) -> f64 {
    cpu.as_secs_f64() * 100.0 / seconds.max(1e-9)
}

/// One repetition of the column: a server for figures 2, 2b and 3, a fresh one for 4.
pub(crate) fn rep(run: &Run, r: &mut Results, rep: usize) {
    let tag = |what: &str| format!("{}, {what}, repetition {rep}", SYS.name());
    if let Err(e) = measured(run, r, rep, &tag) {
        r.note(format!("{}: {e}", tag("server")));
    }
}

fn measured(run: &Run, r: &mut Results, rep: usize, tag: &dyn Fn(&str) -> String) -> Res<()> {
    let opts = run.opts;
    let sio = |f| Figure::Sio(f);
    let mut server = crate::compare::socklab_server(run, &format!("socklab-sio-server-{rep}"))?;
    let addr = server.listening()?;
    match sio_load::acks(addr, 1, opts.warmup, opts.round_trips) {
        Ok(a) => {
            r.add(SYS, Figure::RoundTripsPerSecond, a.rt.per_second());
            for (i, (q, _)) in QUANTILES.iter().enumerate() {
                r.add(SYS, Figure::RoundTripUs(i), a.rt.quantile_us(*q));
            }
            r.add(
                SYS,
                sio(SioFigure::GenCpu(Gen::Acks)),
                pct(a.client_cpu, a.rt.seconds),
            );
        }
        Err(e) => r.note(format!("{}: {e}", tag("ack round trips"))),
    }
    if run.fits(r, "acks from many clients", MANY) {
        match sio_load::acks(addr, MANY, opts.warmup, opts.round_trips * 5) {
            Ok(a) => {
                r.add(SYS, sio(SioFigure::ManyPerSecond), a.rt.per_second());
                r.add(SYS, sio(SioFigure::ManyP99Us), a.rt.quantile_us(0.99));
                r.add(
                    SYS,
                    sio(SioFigure::GenCpu(Gen::Many)),
                    pct(a.client_cpu, a.rt.seconds),
                );
            }
            Err(e) => r.note(format!("{}: {e}", tag("acks from 100 clients"))),
        }
    }
    for &(n, m) in &opts.fanout {
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
            Ok(s) if s.fanout.complete => {
                let f = &s.fanout;
                r.add(SYS, Figure::FanoutPerSecond(n), f.per_second());
                r.add(SYS, Figure::FanoutMs(n), f.seconds * 1000.0);
                match (f.server_cpu, f.cpu_ns_per_delivery()) {
                    (Some(cpu), _) if cpu.is_zero() => r.note(format!(
                        "{}: the server's CPU time did not reach one clock tick of \
                         /proc/PID/stat; no CPU figure",
                        tag(&what)
                    )),
                    (_, Some(ns)) => r.add(SYS, Figure::FanoutCpuNs(n), ns),
                    _ => {}
                }
                r.add(
                    SYS,
                    sio(SioFigure::GenCpu(Gen::Fanout(n))),
                    pct(s.client_cpu, f.seconds),
                );
            }
            Ok(s) => r.note(format!(
                "{}: incomplete, {} of {} deliveries in {:.1} s",
                tag(&what),
                s.fanout.deliveries,
                n * m,
                s.fanout.seconds
            )),
            Err(e) => r.note(format!("{}: {e}", tag(&what))),
        }
    }
    drop(server);
    let c = opts.idle;
    if run.fits(r, "idle connections", c) {
        let mut server = crate::compare::socklab_server(run, &format!("socklab-sio-idle-{rep}"))?;
        let addr = server.listening()?;
        let pid = server.pid();
        // What a first connection sets up once is not counted, as in the other columns.
        sio_load::connect(addr, 10, Duration::ZERO, || ())?;
        std::thread::sleep(Duration::from_millis(200));
        let before = proc_info::rss_kib(pid).ok_or("no /proc status")?;
        let (storm, after) = sio_load::connect(addr, c, opts.settle, || proc_info::rss_kib(pid))?;
        let after = after.ok_or("no /proc status")?;
        if storm.connected == c {
            let bytes = after.saturating_sub(before) as f64 * 1024.0 / c as f64;
            r.add(SYS, Figure::IdleBytes, bytes);
            r.add(SYS, sio(SioFigure::ConnectsPerSecond), storm.per_second());
            r.add(
                SYS,
                sio(SioFigure::GenCpu(Gen::Storm)),
                pct(storm.client_cpu, storm.seconds),
            );
        } else {
            r.note(format!(
                "{}: not reached, {} of {c} connected ({} failed)",
                tag("idle connections"),
                storm.connected,
                storm.failed
            ));
        }
    }
    Ok(())
}

/// The report's section for this column.
pub(crate) fn section(t: &mut String, r: &Results, opts: &Options) {
    let _ = writeln!(t, "\n### socklab on the Socket.IO wire\n");
    let _ = writeln!(
        t,
        "socklab's server again, loaded through Engine.IO v4 + Socket.IO v5 over WebSocket \
         (masked frames) by the Rust generator of `sio_load.rs`, all its clients on one \
         event loop on CPU 1. The last column is that generator's CPU time over the figure, \
         in percent of one CPU: near 100 % it, not the server, set the pace.\n"
    );
    let _ = writeln!(
        t,
        "| figure | socklab (own protocol) | socklab (Socket.IO wire) | Socket.IO | generator CPU (%) |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|");
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
            format!("acks per second, {MANY} clients each one at a time"),
            sio(SioFigure::ManyPerSecond),
            Some(Gen::Many),
        ),
        (
            format!("ack p99 with {MANY} clients (µs)"),
            sio(SioFigure::ManyP99Us),
            None,
        ),
    ];
    for &(n, m) in &opts.fanout {
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
            format!("server CPU ns per delivery, N = {}", int(n)),
            Figure::FanoutCpuNs(n),
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
    for (label, figure, gen) in rows {
        let other = |s| match figure {
            Figure::Sio(_) => String::new(),
            _ => cell(r, s, figure),
        };
        let gen = gen.map_or(String::new(), |g| cell(r, SYS, sio(SioFigure::GenCpu(g))));
        let _ = writeln!(
            t,
            "| {label} | {} | {} | {} | {gen} |",
            other(System::Socklab),
            cell(r, SYS, figure),
            other(System::SocketIo),
        );
    }
}
