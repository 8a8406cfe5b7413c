//! `socklab-bench`: the benchmarks of socklab (`make bench`, `make bench-quick`,
//! `make bench-loop`, `make bench-events`), and the servers they start as child processes of
//! this same program, and `sio-load`, the Socket.IO load generator on its own. It only parses
//! arguments and calls the harness library.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use socklab::lesson;
use socklab_bench::{compare, load, placement, reference, report, sio_load, sio_rate, small};

/// socklab-bench: socklab beside Socket.IO and the raw-socket limit, and its layers alone.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compare socklab with Socket.IO 4.8 on Node.js, socketioxide 0.18 and the raw-socket
    /// limit: ack round trips, broadcast fan-out, idle connections, latency under load, and
    /// the fan-out over a cluster of two processes on one Redis (`make bench`). Servers on
    /// CPU 0, load on CPU 1 (a cluster's second node too). Writes report.md and latency.svg
    /// to --out
    Compare {
        /// Reduced sizes, about a minute (`make bench-quick`)
        #[arg(long)]
        quick: bool,
        /// Repetitions per figure (the median is reported; default 3)
        #[arg(long)]
        reps: Option<usize>,
        /// Fan-out sizes as CLIENTS:MESSAGES pairs, for both sections (default
        /// 100:10000,1000:2000; quick 100:1000,500:400)
        #[arg(long, value_delimiter = ',', value_parser = parse_pair)]
        fanout: Option<Vec<(usize, usize)>>,
        /// Idle connections for the memory figure
        #[arg(long)]
        idle: Option<usize>,
        /// Clients in the room of the rate figure on the Socket.IO wire (default 1000; quick
        /// 500; 0 leaves the figure out)
        #[arg(long)]
        rate: Option<usize>,
        /// Leave Socket.IO out (it is left out anyway when node is not found)
        #[arg(long)]
        no_socketio: bool,
        /// Leave socketioxide out (it is left out anyway when it was not built:
        /// `make bench-socketioxide`)
        #[arg(long)]
        no_socketioxide: bool,
        /// The cluster figure's size as CLIENTS:MESSAGES (default 1000:1000; quick 500:500)
        #[arg(long, value_parser = parse_pair)]
        cluster: Option<(usize, usize)>,
        /// Messages the cluster figure sends one at a time and times (default 200; quick 100)
        #[arg(long)]
        paced: Option<usize>,
        /// Leave the cluster figure out (it needs redis-server)
        #[arg(long, conflicts_with = "cluster")]
        no_cluster: bool,
        /// Where the Socket.IO reference is installed (`npm ci` there)
        #[arg(long, default_value = "benches/socketio", value_name = "DIR")]
        socketio_dir: PathBuf,
        /// Where report.md, latency.svg and the logs go
        #[arg(long, default_value = "target/bench", value_name = "DIR")]
        out: PathBuf,
    },
    /// Benchmark the event loop: echo round trips per second with 1, 100 and 1,000
    /// connections (lesson 11's server), beside lesson 04's blocking server with one
    /// connection (`make bench-loop`). Server on CPU 0, load generator on CPU 1. Writes
    /// target/bench/loop.md
    Loop {
        /// Connection counts to measure
        #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
        conns: Vec<usize>,
        /// Seconds measured per figure (after 0.5 s of warm-up)
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Repetitions per figure (the median is reported)
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// Benchmark the event layer: ack round trips per second with p50/p99 (one client), and
    /// broadcast deliveries per second to 100 and 1,000 clients with the server's CPU time
    /// per delivery (`make bench-events`). Server on CPU 0, clients on CPU 1. Writes
    /// target/bench/events.md
    Events {
        /// Receiver counts for the broadcast figures
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        receivers: Vec<usize>,
        /// Ack round trips measured, after 1,000 of warm-up
        #[arg(long, default_value_t = 20_000)]
        round_trips: usize,
        /// Messages in each broadcast burst
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        /// Repetitions per figure (the median is reported)
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// Load a server over the real Socket.IO wire (Engine.IO v4 + Socket.IO v5 over
    /// WebSocket) from many clients on one event loop, and print one JSON line with the
    /// figure and the generator's own CPU time (`--addr` is socklab's server, or any
    /// Socket.IO 4 server with the reference handlers `echo` and `chat message`)
    SioLoad {
        /// The server, HOST:PORT
        #[arg(long)]
        addr: SocketAddr,
        /// Pin this process to one CPU first (the harness puts the load on CPU 1)
        #[arg(long)]
        cpu: Option<usize>,
        #[command(subcommand)]
        what: SioWhat,
    },
    /// The event server the benchmarks measure, with the handlers of the Socket.IO reference
    /// server (`echo`, `chat message`); started by `compare` and `events`, not for people
    #[command(hide = true)]
    Server {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        /// Be a node of the cluster over the Redis at redis://HOST:PORT (the cluster figure)
        #[arg(long, value_name = "URL", value_parser = parse_redis_url)]
        redis: Option<SocketAddr>,
    },
    /// The raw-socket server `compare` measures the limit with (blocking read and write);
    /// not for people
    #[command(hide = true)]
    LimitServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
    },
}

/// What `sio-load` measures.
#[derive(Subcommand)]
enum SioWhat {
    /// `echo` acks: each client one at a time, all clients at once
    Acks {
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[arg(long, default_value_t = 1000)]
        warmup: usize,
        #[arg(long, default_value_t = 20_000)]
        count: usize,
    },
    /// One client sends MESSAGES `chat message` events at once; every client counts them
    Fanout {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        #[arg(long, default_value_t = 100)]
        warmup: usize,
        /// The server's pid, for its CPU time over the burst (from /proc)
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// The rate a room holds: one client sends `chat message` at a steady rate for SPAN_MS,
    /// doubling from START per second until the p99 delivery delay passes 100 ms or a
    /// delivery is lost, then REFINE halvings of the gap; one JSON line with every step
    Rate {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// The first step's rate, in messages per second
        #[arg(long, default_value_t = 50.0)]
        start: f64,
        #[arg(long, default_value_t = 2000)]
        span_ms: u64,
        #[arg(long, default_value_t = 2)]
        refine: usize,
        /// The server's pid, for its CPU time over each step (from /proc)
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// The handshake storm: CLIENTS connect (256 at a time), then sit idle for SETTLE_MS
    Connect {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 500)]
        settle_ms: u64,
    },
}

/// Runs one `sio-load` measurement; returns its JSON line.
fn sio_load(addr: SocketAddr, what: SioWhat) -> Result<serde_json::Value, Box<dyn Error>> {
    use serde_json::json;
    let ns = |d: std::time::Duration| d.as_nanos() as u64;
    Ok(match what {
        SioWhat::Acks {
            clients,
            warmup,
            count,
        } => {
            let a = sio_load::acks(addr, clients, warmup, count, &[])?;
            json!({
                "clients": a.clients,
                "count": a.rt.count,
                "seconds": a.rt.seconds,
                "per_second": a.rt.per_second(),
                "p50_us": a.rt.quantile_us(0.5),
                "p99_us": a.rt.quantile_us(0.99),
                "p999_us": a.rt.quantile_us(0.999),
                "client_cpu_ns": ns(a.client_cpu),
            })
        }
        SioWhat::Fanout {
            clients,
            messages,
            warmup,
            server_pid,
        } => {
            let plan = load::FanoutPlan {
                warmup,
                server_pids: server_pid.into_iter().collect(),
                ..load::FanoutPlan::new(addr, clients, messages)
            };
            let s = sio_load::fanout(&plan, || {})?;
            let f = &s.fanout;
            json!({
                "clients": f.clients,
                "messages": f.messages,
                "deliveries": f.deliveries,
                "lost_by_node": f.lost_by_node,
                "seconds": f.seconds,
                "per_second": f.per_second(),
                "complete": f.complete,
                "server_cpu_ns": f.server_cpu.map(ns),
                "client_cpu_ns": ns(s.client_cpu),
            })
        }
        SioWhat::Rate {
            clients,
            start,
            span_ms,
            refine,
            server_pid,
        } => {
            let plan = sio_rate::RatePlan {
                addr,
                clients,
                span: std::time::Duration::from_millis(span_ms),
                start,
                refine,
                max_steps: sio_rate::MAX_STEPS,
                server_pids: server_pid.into_iter().collect(),
            };
            let s = sio_rate::sustained(&plan)?;
            let steps: Vec<_> = s
                .steps
                .iter()
                .map(|st| {
                    json!({
                        "rate": st.rate,
                        "messages": st.messages,
                        "deliveries": st.deliveries,
                        "lost": st.lost,
                        "p50_us": st.delays.quantile_us(0.5),
                        "p99_us": st.p99_us(),
                        "held": st.held(),
                        "gen_cpu_pct": st.gen_cpu_pct,
                        "server_cpu_ns": st.server_cpu.map(ns),
                    })
                })
                .collect();
            json!({
                "clients": s.clients,
                "held_rate": s.best().map(|st| st.rate),
                "failed_rate": s.first_failed().map(|st| st.rate),
                "cut_short": s.cut_short,
                "steps": steps,
            })
        }
        SioWhat::Connect { clients, settle_ms } => {
            let settle = std::time::Duration::from_millis(settle_ms);
            let (c, ()) = sio_load::connect(addr, clients, settle, || ())?;
            json!({
                "wanted": c.wanted,
                "connected": c.connected,
                "failed": c.failed,
                "seconds": c.seconds,
                "per_second": c.per_second(),
                "client_cpu_ns": ns(c.client_cpu),
            })
        }
    })
}

fn main() -> ExitCode {
    lesson::quiet_broken_pipe();
    let result = match Cli::parse().cmd {
        // The servers report their own errors, as the lesson binaries do.
        Cmd::Server { addr, redis } => {
            return lesson::run(lesson::Trace { trace: false }, || {
                reference::serve(addr, redis)
            })
        }
        Cmd::LimitServer { addr } => {
            return lesson::run(lesson::Trace { trace: false }, || {
                let (listener, local) = load::limit_listen(addr)?;
                lesson::listening(local);
                load::limit_server(&listener)?;
                Ok(())
            })
        }
        Cmd::Compare {
            quick,
            reps,
            fanout,
            idle,
            rate,
            no_socketio,
            no_socketioxide,
            cluster,
            paced,
            no_cluster,
            socketio_dir,
            out,
        } => (|| -> Result<(), Box<dyn Error>> {
            // The servers are this program's `server` and `limit-server`.
            let exe = std::env::current_exe()?;
            let mut opts = if quick {
                compare::Options::quick(exe)
            } else {
                compare::Options::full(exe)
            };
            opts.reps = reps.unwrap_or(opts.reps);
            if let Some(fanout) = fanout {
                opts.sio_fanout = fanout.clone();
                opts.fanout = fanout;
            }
            opts.idle = idle.unwrap_or(opts.idle);
            match (rate, &mut opts.sio_rate) {
                (Some(0), _) => opts.sio_rate = None,
                (Some(n), Some(size)) => size.clients = n,
                _ => {}
            }
            opts.socketio = !no_socketio;
            opts.socketioxide = !no_socketioxide;
            opts.cluster = if no_cluster {
                None
            } else {
                cluster.or(opts.cluster)
            };
            opts.paced = paced.unwrap_or(opts.paced);
            opts.socketio_dir = socketio_dir;
            opts.out_dir = out;
            let results = compare::run(&opts)?;
            print!("{}", report::write(&results, &opts)?);
            eprintln!(
                "wrote {0}/report.md and {0}/latency.svg",
                opts.out_dir.display()
            );
            Ok(())
        })(),
        Cmd::SioLoad { addr, cpu, what } => (|| -> Result<(), Box<dyn Error>> {
            if let Some(cpu) = cpu {
                if !placement::pin(0, cpu) {
                    return Err(format!("sched_setaffinity to CPU {cpu} failed").into());
                }
            }
            println!("{}", sio_load(addr, what)?);
            Ok(())
        })(),
        Cmd::Loop {
            conns,
            seconds,
            reps,
        } => lesson::built_binary("11").and_then(|evented| {
            small::bench_loop(
                &evented,
                &lesson::built_binary("04")?,
                &conns,
                seconds,
                reps,
            )
        }),
        Cmd::Events {
            receivers,
            round_trips,
            messages,
            reps,
        } => std::env::current_exe()
            .map_err(Into::into)
            .and_then(|me| small::bench_events(&me, &receivers, round_trips, messages, reps)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `redis://HOST:PORT`, the form of `socklab serve --redis` (HOST an IP address here: the
/// harness starts its Redis on 127.0.0.1).
fn parse_redis_url(url: &str) -> Result<SocketAddr, String> {
    url.strip_prefix("redis://")
        .ok_or_else(|| format!("{url:?} is not redis://HOST:PORT"))?
        .parse()
        .map_err(|e| format!("{url:?}: {e}"))
}

/// `CLIENTS:MESSAGES`, e.g. `1000:1000`.
fn parse_pair(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not CLIENTS:MESSAGES"))?;
    Ok((
        a.parse().map_err(|e| format!("{a:?}: {e}"))?,
        b.parse().map_err(|e| format!("{b:?}: {e}"))?,
    ))
}
