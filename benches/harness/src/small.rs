//! `make bench-loop` and `make bench-events`: the event loop and the event layer measured on
//! their own, each server a process of its own on the server CPU, the load on this process's
//! CPU (the same placement and child processes as `make bench`, in [`crate::compare`]).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::child::Proc;
use crate::load::{self, FanoutPlan};
use crate::ping_pong::ping_pong;
use crate::placement::{raise_fd_limit, Placement, SERVER_CPU};
use crate::stats::median_range;
use crate::Res;

/// Where the servers run and where their logs go.
struct Side {
    placement: Placement,
    cpus: usize,
    logs: PathBuf,
}

impl Side {
    fn new() -> Res<Side> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let logs = PathBuf::from("target/bench/logs");
        std::fs::create_dir_all(&logs)?;
        Ok(Side {
            placement: Placement::detect(cpus),
            cpus,
            logs,
        })
    }

    fn describe(&self) -> String {
        self.placement.describe(self.cpus)
    }

    /// Starts `program args --addr 127.0.0.1:0` on the server CPU; returns it (stopped when
    /// dropped) and where it listens.
    fn server(&self, program: &Path, args: &[&str], name: &str) -> Res<(Proc, SocketAddr)> {
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.extend(["--addr".to_string(), "127.0.0.1:0".to_string()]);
        let here = std::env::current_dir()?;
        let mut p = Proc::spawn(
            &self.placement,
            &self.logs,
            name,
            SERVER_CPU,
            program,
            &args,
            &here,
        )?;
        let addr = p.listening()?;
        Ok((p, addr))
    }
}

/// `make bench-events`: ack round trips per second with p50/p99 (one client), and broadcast
/// deliveries per second to each of `receivers` clients with the server's CPU time per
/// delivery, on `socklab-bench server` (the program at `harness`). Writes
/// `target/bench/events.md`.
pub fn bench_events(
    harness: &Path,
    receivers: &[usize],
    round_trips: usize,
    messages: usize,
    reps: usize,
) -> Res<()> {
    let limit = raise_fd_limit();
    let side = Side::new()?;
    let (mut acks, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new());
    let mut fan: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); receivers.len()];
    let mut notes = Vec::new();
    for rep in 0..reps.max(1) {
        eprintln!("repetition {} of {reps}", rep + 1);
        let (server, addr) = side.server(harness, &["server"], "events-server")?;
        let rt = load::acks(addr, 1000, round_trips)?;
        acks.push(rt.per_second());
        p50.push(rt.quantile_us(0.5));
        p99.push(rt.quantile_us(0.99));
        for (i, &n) in receivers.iter().enumerate() {
            // This process holds the n client sockets; the server, in its own, the other n.
            if n as u64 + 64 > limit {
                notes.push(format!(
                    "{n} receivers need about {} descriptors; the limit here is {limit}",
                    n + 64
                ));
                continue;
            }
            let plan = FanoutPlan {
                warmup: 100,
                server_pids: vec![server.pid()],
                ..FanoutPlan::new(addr, n, messages)
            };
            let f = load::fanout(&plan, || {})?;
            if !f.complete {
                notes.push(format!(
                    "{n} receivers: {} of {} deliveries in {:.1} s",
                    f.deliveries,
                    n * messages,
                    f.seconds
                ));
                continue;
            }
            fan[i].0.push(f.per_second());
            fan[i].1.extend(f.cpu_ns_per_delivery());
        }
    }
    let mut t = String::new();
    writeln!(
        t,
        "Event layer (median of {reps}, min-max in brackets). Placement: {}. {round_trips} round trips after 1,000, bursts of {messages} messages.\n",
        side.describe()
    )?;
    let (m, lo, hi) = median_range(&acks);
    let (a50, _, _) = median_range(&p50);
    let (a99, _, _) = median_range(&p99);
    writeln!(t, "| figure | value |")?;
    writeln!(t, "|---|---:|")?;
    writeln!(
        t,
        "| ack round trips per second, 1 client | {m:.0} [{lo:.0}-{hi:.0}] |"
    )?;
    writeln!(
        t,
        "| ack round trip p50 / p99 | {a50:.0} us / {a99:.0} us |"
    )?;
    for (i, &n) in receivers.iter().enumerate() {
        if fan[i].0.is_empty() {
            writeln!(
                t,
                "| broadcast deliveries per second, {n} clients | not reached |"
            )?;
            continue;
        }
        let (m, lo, hi) = median_range(&fan[i].0);
        writeln!(
            t,
            "| broadcast deliveries per second, {n} clients | {m:.0} [{lo:.0}-{hi:.0}] |"
        )?;
        if !fan[i].1.is_empty() {
            let (c, _, _) = median_range(&fan[i].1);
            writeln!(t, "| server CPU per delivery, {n} clients | {c:.0} ns |")?;
        }
    }
    write_bench_md(t, notes, "events.md")
}

/// `make bench-loop`: echo round trips per second through the event loop (`loop_server`,
/// lesson 11) with each of `conns` connections, beside the blocking server of lesson 04
/// (`blocking_server`) with one. Writes `target/bench/loop.md`.
pub fn bench_loop(
    loop_server: &Path,
    blocking_server: &Path,
    conns: &[usize],
    seconds: f64,
    reps: usize,
) -> Res<()> {
    let limit = raise_fd_limit();
    let side = Side::new()?;
    let warmup = Duration::from_millis(500);
    let measure = Duration::from_secs_f64(seconds);
    let mut loop_rates: Vec<Vec<f64>> = vec![Vec::new(); conns.len()];
    let mut blocking_rates = Vec::new();
    let mut notes = Vec::new();
    // A B A B: the two servers alternate, so drift in machine speed hits both.
    for rep in 0..reps.max(1) {
        eprintln!("repetition {} of {reps}", rep + 1);
        {
            let (_server, addr) = side.server(loop_server, &["serve"], "loop-server")?;
            for (i, &n) in conns.iter().enumerate() {
                // This process holds the n client sockets; the server, in its own, the other n.
                if n as u64 + 64 > limit {
                    notes.push(format!(
                        "{n} connections need about {} descriptors; the limit here is {limit}",
                        n + 64
                    ));
                    continue;
                }
                let r = ping_pong(addr, n, 64, warmup, measure)?;
                if r.failed > 0 {
                    notes.push(format!("{n} connections: {} failed", r.failed));
                }
                loop_rates[i].push(r.per_second());
            }
        }
        {
            let (_server, addr) = side.server(blocking_server, &["serve"], "blocking-server")?;
            let r = ping_pong(addr, 1, 64, warmup, measure)?;
            blocking_rates.push(r.per_second());
        }
    }
    let (base, base_lo, base_hi) = median_range(&blocking_rates);
    let mut table = String::new();
    writeln!(table, "Echo round trips per second (64-byte messages, one in flight per connection; median of {reps}, min-max in brackets).")?;
    writeln!(
        table,
        "Placement: {}. {seconds} s measured after 0.5 s of warm-up.\n",
        side.describe()
    )?;
    writeln!(
        table,
        "| connections | event loop (lesson 11) | blocking, 1 connection (lesson 04) | ratio |"
    )?;
    writeln!(table, "|---:|---:|---:|---:|")?;
    for (i, &n) in conns.iter().enumerate() {
        if loop_rates[i].is_empty() {
            writeln!(
                table,
                "| {n} | not reached (descriptor limit {limit}) | | |"
            )?;
            continue;
        }
        let (m, lo, hi) = median_range(&loop_rates[i]);
        writeln!(
            table,
            "| {n} | {m:.0} [{lo:.0}-{hi:.0}] | {base:.0} [{base_lo:.0}-{base_hi:.0}] | {:.2}x |",
            m / base.max(1.0)
        )?;
    }
    write_bench_md(table, notes, "loop.md")
}

/// Prints a benchmark's table with its notes (sorted, once each) and writes it to
/// `target/bench/NAME`.
fn write_bench_md(mut t: String, mut notes: Vec<String>, name: &str) -> Res<()> {
    notes.sort();
    notes.dedup();
    for n in notes {
        writeln!(t, "\nnote: {n}")?;
    }
    print!("{t}");
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(format!("target/bench/{name}"), &t)?;
    eprintln!("wrote target/bench/{name}");
    Ok(())
}
