//! `socklab`: the project's own command line (not a lesson).
//!
//! `serve` hosts the chat and live-scores demos on the event API; `chat`, `scores` and
//! `watch` are their clients and feed; `lessons` lists the lessons. `trace NN` runs lesson NN
//! under the real strace (what `make trace` uses). `bench` compares socklab with Socket.IO
//! and the raw-socket limit (`make bench`); `bench-loop` and `bench-events` measure the event
//! loop and the event layer alone.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use socklab::apps::{chat, scores};
use socklab::bench::{self, compare, small};
use socklab::events::{Server, ServerConfig};
use socklab::lesson;
use socklab::strace::{self, Normalizer};
use socklab::sys;

/// socklab: real-time messaging from the socket syscalls up.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the event server that hosts the demos: the chat (namespace /chat) and live
    /// scores (namespace /scores). Stops cleanly on Ctrl-C or SIGTERM
    Serve(DemoServer),
    /// Join the chat: typed lines go to the room, others' messages appear as they arrive.
    /// Commands: /join ROOM, /leave ROOM, /room ROOM, /who [ROOM], /quit; @name notifies
    /// name. Standard input may be piped (one line per message)
    Chat {
        /// Your name (letters, digits, - and _)
        #[arg(long)]
        name: String,
        /// The room to start in
        #[arg(long, default_value = "lobby")]
        room: String,
        #[arg(long, default_value = DEFAULT_ADDR, value_name = "HOST:PORT")]
        addr: SocketAddr,
        #[command(flatten)]
        trace: lesson::Trace,
    },
    /// Run a live-scores server only: simulated cricket matches, one room per match, pushed
    /// to watchers as events
    Scores(DemoServer),
    /// Follow one match: print every score the server pushes
    Watch {
        /// The match to follow (1 to the number of matches)
        #[arg(long = "match", value_name = "ID")]
        id: u32,
        /// Stop after this many updates
        #[arg(long)]
        count: Option<u64>,
        #[arg(long, default_value = DEFAULT_ADDR, value_name = "HOST:PORT")]
        addr: SocketAddr,
        #[command(flatten)]
        trace: lesson::Trace,
    },
    /// List the lessons, one line each, with the command that runs each
    Lessons,
    /// Compare socklab with Socket.IO 4.8 on Node.js and with the raw-socket limit: ack
    /// round trips, broadcast fan-out, idle connections, latency under load (`make bench`).
    /// Servers on CPU 0, load on CPU 1. Writes report.md and latency.svg to --out
    Bench {
        /// Reduced sizes, well under a minute (`make bench-quick`)
        #[arg(long)]
        quick: bool,
        /// Repetitions per figure (the median is reported; default 3)
        #[arg(long)]
        reps: Option<usize>,
        /// Fan-out sizes as CLIENTS:MESSAGES pairs (default 100:10000,1000:2000)
        #[arg(long, value_delimiter = ',', value_parser = parse_pair)]
        fanout: Option<Vec<(usize, usize)>>,
        /// Idle connections for the memory figure
        #[arg(long)]
        idle: Option<usize>,
        /// Leave Socket.IO out (it is left out anyway when node is not found)
        #[arg(long)]
        no_socketio: bool,
        /// Where the Socket.IO reference is installed (`npm ci` there)
        #[arg(long, default_value = "benches/socketio", value_name = "DIR")]
        socketio_dir: PathBuf,
        /// Where report.md, latency.svg and the logs go
        #[arg(long, default_value = "target/bench", value_name = "DIR")]
        out: PathBuf,
    },
    /// Benchmark the event loop: echo round trips per second with 1, 100 and 1,000
    /// connections (lesson 11's server), beside lesson 04's blocking server with one
    /// connection. Server on CPU 0, load generator on CPU 1. Writes target/bench/loop.md
    BenchLoop {
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
    /// per delivery. Server on CPU 0, clients on CPU 1. Writes target/bench/events.md
    BenchEvents {
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
    /// The event server the benchmarks measure, with the handlers of the Socket.IO reference
    /// server (`echo`, `chat message`); not for people
    #[command(hide = true)]
    BenchServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
    },
    /// The raw-socket server `bench` measures the limit with (blocking read and write);
    /// not for people
    #[command(hide = true)]
    BenchLimitServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
    },
    /// Run lesson NN's demonstration under the real strace; print its socket calls, with
    /// ports, inodes and pointers normalised
    Trace {
        /// The lesson number, e.g. 04
        lesson: String,
        /// Instead of printing, write DIR/traces/NN.txt (the calls) and DIR/output/NN.txt
        /// (what the lesson printed on stdout), e.g. `--write docs/src`
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
}

/// The arguments of `socklab serve` and `socklab scores`.
#[derive(clap::Args)]
struct DemoServer {
    /// Address to listen on; port 0 picks a free port
    #[arg(long, default_value = DEFAULT_ADDR, value_name = "HOST:PORT")]
    addr: SocketAddr,
    /// Simulated cricket matches to push scores for
    #[arg(long, default_value_t = 3)]
    matches: u32,
    /// Milliseconds between two balls of the simulated feed
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    #[command(flatten)]
    trace: lesson::Trace,
}

impl DemoServer {
    fn run(self, with_chat: bool) -> ExitCode {
        let interval = Duration::from_millis(self.interval_ms);
        lesson::run(self.trace, || {
            serve(self.addr, with_chat, self.matches, interval)
        })
    }
}

/// Where the demo server listens, and where the demo clients look for it.
const DEFAULT_ADDR: &str = "127.0.0.1:7100";

/// `socklab serve` (chat and scores) and `socklab scores` (scores only).
fn serve(
    addr: SocketAddr,
    with_chat: bool,
    matches: u32,
    interval: Duration,
) -> Result<(), Box<dyn Error>> {
    let mut server = Server::new(ServerConfig::default())?;
    server.stop_on_signals()?;
    let local = server.listen(addr)?;
    if with_chat {
        chat::install(server.io());
    }
    scores::install(server.io(), matches);
    let feed = scores::start_feed(server.handle(), matches, interval, 0x5eed);
    lesson::listening(local);
    server.run()?;
    // The loop has stopped (within `stop_grace`); the feed wakes from its wait and ends now,
    // whatever its interval.
    feed.stop();
    println!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    lesson::quiet_broken_pipe();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Serve(d) => return d.run(true),
        Cmd::Scores(d) => return d.run(false),
        Cmd::Chat {
            name,
            room,
            addr,
            trace,
        } => {
            return lesson::run(trace, || {
                chat::run_terminal(
                    addr,
                    &name,
                    &room,
                    std::io::BufReader::new(std::io::stdin()),
                )
            })
        }
        Cmd::Watch {
            id,
            count,
            addr,
            trace,
        } => return lesson::run(trace, || scores::watch(addr, id, count)),
        Cmd::BenchEvents {
            receivers,
            round_trips,
            messages,
            reps,
        } => std::env::current_exe()
            .map_err(Into::into)
            .and_then(|me| small::bench_events(&me, &receivers, round_trips, messages, reps)),
        Cmd::BenchServer { addr } => {
            return lesson::run(lesson::Trace { trace: false }, || {
                let config = ServerConfig {
                    loop_config: socklab::event_loop::Config {
                        max_connections: 100_000,
                        ..Default::default()
                    },
                    ..ServerConfig::default()
                };
                let mut server = Server::new(config)?;
                server.stop_on_signals()?;
                let local = server.listen(addr)?;
                bench::install_reference_handlers(server.io());
                lesson::listening(local);
                server.run()?;
                Ok(())
            })
        }
        Cmd::Bench {
            quick,
            reps,
            fanout,
            idle,
            no_socketio,
            socketio_dir,
            out,
        } => (|| -> Result<(), Box<dyn Error>> {
            let exe = std::env::current_exe()?;
            let mut opts = if quick {
                compare::Options::quick(exe)
            } else {
                compare::Options::full(exe)
            };
            opts.reps = reps.unwrap_or(opts.reps);
            opts.fanout = fanout.unwrap_or(opts.fanout);
            opts.idle = idle.unwrap_or(opts.idle);
            opts.socketio = !no_socketio;
            opts.socketio_dir = socketio_dir;
            opts.out_dir = out;
            let results = compare::run(&opts)?;
            print!("{}", compare::write_report(&results, &opts)?);
            eprintln!(
                "wrote {0}/report.md and {0}/latency.svg",
                opts.out_dir.display()
            );
            Ok(())
        })(),
        Cmd::BenchLimitServer { addr } => {
            return lesson::run(lesson::Trace { trace: false }, || {
                let (listener, local) = bench::load::limit_listen(addr)?;
                lesson::listening(local);
                bench::load::limit_server(&listener)?;
                Ok(())
            })
        }
        Cmd::Lessons => {
            for (n, bin, what) in lesson::LESSONS {
                println!("{n}  {what:<66} make lesson N={n}   ({bin})");
            }
            Ok(())
        }
        Cmd::Trace { lesson, write } => trace(&lesson, write.as_deref()),
        Cmd::BenchLoop {
            conns,
            seconds,
            reps,
        } => lesson_binary("11").and_then(|evented| {
            small::bench_loop(&evented, &lesson_binary("04")?, &conns, seconds, reps)
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
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

/// The lesson binary built next to this one whose name starts with `NN_`.
fn lesson_binary(number: &str) -> Result<PathBuf, Box<dyn Error>> {
    let dir = std::env::current_exe()?
        .parent()
        .ok_or("cannot tell where this program lives")?
        .to_path_buf();
    let prefix = format!("{number}_");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && !n.contains('.') && !n.contains('-'))
        })
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        format!(
            "no lesson binary {prefix}* in {} (build it first)",
            dir.display()
        )
        .into()
    })
}

fn trace(number: &str, write: Option<&Path>) -> Result<(), Box<dyn Error>> {
    let bin = lesson_binary(number)?;
    let tmp =
        std::env::temp_dir().join(format!("socklab-trace-{}-{number}.txt", std::process::id()));
    let args = strace::record_command(&tmp.to_string_lossy());
    // No descriptor leaked by our caller may shift the lesson's descriptor numbers.
    let out = sys::spawn_with_std_fds_only(&mut Command::new(&args[0]))
        .args(&args[1..])
        .arg(&bin)
        .env_remove("SOCKLAB_TRACE")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run strace ({e}); install it with `apt-get install strace`")
        })?;
    let raw = std::fs::read_to_string(&tmp)?;
    std::fs::remove_file(&tmp)?;
    if !out.status.success() {
        return Err(format!(
            "{} failed under strace: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut norm = Normalizer::new();
    let calls = strace::mask_varying(
        &(strace::fold_repeats(&strace::socket_lines(&raw, &mut norm)).join("\n") + "\n"),
    );
    // The output gets its own numbering, so a test can normalise a fresh run's stdout alone.
    let printed =
        strace::mask_varying(&Normalizer::new().apply(&String::from_utf8_lossy(&out.stdout)));
    match write {
        None => print!("{calls}"),
        Some(dir) => {
            for (sub, text) in [("traces", &calls), ("output", &printed)] {
                let path = dir.join(sub).join(format!("{number}.txt"));
                std::fs::create_dir_all(dir.join(sub))?;
                std::fs::write(&path, text)?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
