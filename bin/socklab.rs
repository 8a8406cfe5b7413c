//! `socklab`: the project's own command line (not a lesson).
//!
//! `serve` hosts the chat and live-scores demos on the event API; `chat`, `scores` and
//! `watch` are their clients and feed; `lessons` lists the lessons. `trace NN` runs lesson NN
//! under the real strace (what `make trace` uses) and, with `--write` as root, under tcpdump
//! too, in a network namespace of its own (src/capture/), to draw its packet diagram.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use socklab::apps::{chat, chat_client, scores, web, wire};
use socklab::capture;
use socklab::events::{ClusterConfig, Server, ServerConfig};
use socklab::lesson;
use socklab::seqdiag;
use socklab::strace::{self, Normalizer};
use socklab::sys;
use socklab::transport::redis;

/// socklab: real-time messaging from the socket syscalls up.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the event server that hosts the demos: the chat (namespace /chat) and live
    /// scores (namespace /scores), and their web pages on the same port (open
    /// http://HOST:PORT/ in a browser; /wire shows any socket's packets live). Stops
    /// cleanly on Ctrl-C or SIGTERM
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
    /// Run lesson NN's demonstration under the real strace; print its socket calls, with
    /// ports, inodes and pointers normalised
    Trace {
        /// The lesson number, e.g. 04
        lesson: String,
        /// Instead of printing, write DIR/traces/NN.txt (the calls) and DIR/output/NN.txt
        /// (what the lesson printed on stdout), e.g. `--write docs/src`; as root with
        /// tcpdump, also DIR/captures/NN.txt (the TCP segments) and DIR/diagrams/NN.svg
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
    /// Set SO_REUSEPORT before bind, so that several socklab processes started with this
    /// flag can listen on the same address; the kernel gives each new connection to one of
    /// them. Each process keeps its own rooms: a chat message reaches only the clients of the
    /// process it was sent to (lesson 23), unless the processes share a cluster (--redis)
    #[arg(long)]
    reuse_port: bool,
    /// Join a cluster over the Redis at this URL (redis://HOST:PORT): this process's
    /// broadcasts go to the clients of every process in the cluster, and theirs to its own.
    /// Broadcasts only, so far; the process exits with an error if Redis is not reachable
    #[arg(long, value_name = "URL", value_parser = redis::parse_url)]
    redis: Option<SocketAddr>,
    #[command(flatten)]
    trace: lesson::Trace,
}

impl DemoServer {
    fn run(self, with_chat: bool) -> ExitCode {
        let interval = Duration::from_millis(self.interval_ms);
        lesson::run(self.trace, || {
            serve(
                self.addr,
                self.reuse_port,
                self.redis,
                with_chat,
                self.matches,
                interval,
            )
        })
    }
}

/// Where the demo server listens, and where the demo clients look for it.
const DEFAULT_ADDR: &str = "127.0.0.1:7100";

/// `socklab serve` (chat and scores) and `socklab scores` (scores only).
fn serve(
    addr: SocketAddr,
    reuse_port: bool,
    redis: Option<SocketAddr>,
    with_chat: bool,
    matches: u32,
    interval: Duration,
) -> Result<(), Box<dyn Error>> {
    let mut server = Server::new(ServerConfig::default())?;
    server.stop_on_signals()?;
    if let Some(redis) = redis {
        server.join_cluster(redis, ClusterConfig::default())?;
    }
    let local = if reuse_port {
        server.listen_shared(addr)?
    } else {
        server.listen(addr)?
    };
    // The wire inspector (the `/wire` page) comes with the pages.
    let mut inspector = None;
    if with_chat {
        chat::install(server.io());
        web::install(server.io());
        let active = wire::install(server.io());
        inspector = Some(wire::start_feed(server.handle(), active));
    }
    scores::install(server.io(), matches);
    let feed = scores::start_feed(server.handle(), matches, interval, 0x5eed);
    lesson::listening(local);
    if with_chat {
        println!("open http://{local}/ in a browser");
    }
    server.run()?;
    // The loop has stopped (within `stop_grace`); the feed wakes from its wait and ends now,
    // whatever its interval.
    feed.stop();
    if let Some(inspector) = inspector {
        inspector.stop();
    }
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
        } => return lesson::run(trace, || chat_client::run(addr, &name, &room)),
        Cmd::Watch {
            id,
            count,
            addr,
            trace,
        } => return lesson::run(trace, || scores::watch(addr, id, count)),
        Cmd::Lessons => {
            // The column is as wide as the longest description, so every row lines up.
            let width = lesson::LESSONS
                .iter()
                .map(|(_, _, what)| what.chars().count())
                .max()
                .unwrap_or(0);
            for (n, bin, what) in lesson::LESSONS {
                println!("{n}  {what:<width$}  make lesson N={n}   ({bin})");
            }
            Ok(())
        }
        Cmd::Trace { lesson, write } => trace(&lesson, write.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Set in the copy of `socklab trace` that runs inside its own network namespace.
const IN_NETNS: &str = "SOCKLAB_TRACE_NETNS";

fn trace(number: &str, write: Option<&Path>) -> Result<(), Box<dyn Error>> {
    // With `--write`, the packets are recorded too, when this machine can (root, tcpdump):
    // this program runs itself again inside a fresh network namespace, whose loopback carries
    // the lesson's segments and nothing else (src/capture/ says why).
    let capturing = write.is_some() && std::env::var_os(IN_NETNS).is_some();
    if write.is_some() && !capturing {
        if capture::can_capture() {
            let status = Command::new("unshare")
                .args(["--net", "--"])
                .arg(std::env::current_exe()?)
                .args(std::env::args_os().skip(1))
                .env(IN_NETNS, "1")
                .status()?;
            return if status.success() {
                Ok(())
            } else {
                Err(format!("socklab trace {number} in a network namespace failed").into())
            };
        }
        println!(
            "note: packets not captured (needs root and tcpdump); captures/{number}.txt and diagrams/{number}.svg left as they are"
        );
    }
    let tcpdump_out = std::env::temp_dir().join(format!(
        "socklab-tcpdump-{}-{number}.txt",
        std::process::id()
    ));
    let tcpdump = if capturing {
        capture::loopback_up()?;
        Some(capture::Tcpdump::start(&tcpdump_out)?)
    } else {
        None
    };

    let bin = lesson::built_binary(number)?;
    let tmp =
        std::env::temp_dir().join(format!("socklab-trace-{}-{number}.txt", std::process::id()));
    let mut args = strace::record_command(&tmp.to_string_lossy());
    if capturing {
        // Each call's start time, to place each segment after the call that sent it.
        args.insert(1, "-ttt".to_string());
    }
    // No descriptor leaked by our caller may shift the lesson's descriptor numbers.
    let out = sys::spawn_with_std_fds_only(&mut Command::new(&args[0]))
        .args(&args[1..])
        .arg(&bin)
        .env_remove("SOCKLAB_TRACE")
        .env_remove(IN_NETNS)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run strace ({e}); install it with `apt-get install strace`")
        })?;
    if let Some(tcpdump) = tcpdump {
        // The last segments (a FIN after the final close) are sent as the lesson exits;
        // give tcpdump a moment to print them.
        std::thread::sleep(Duration::from_millis(200));
        tcpdump.stop()?;
    }
    // Calls split by another process or thread are joined, so that their results count.
    let raw = strace::join_resumed(&std::fs::read_to_string(&tmp)?);
    // Lesson 24's own redis-server is not the lesson: its calls are left out.
    let raw = strace::without_program(&raw, "redis-server");
    std::fs::remove_file(&tmp)?;
    if !out.status.success() {
        return Err(format!(
            "{} failed under strace: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    // The socket calls one strace line at a time, so each keeps its start time (without
    // `-ttt` every time is 0 and unused).
    let mut norm = Normalizer::new();
    let mut times = Vec::new();
    let mut lines = Vec::new();
    for (time, line) in capture::split_strace_times(&raw) {
        for call in strace::socket_lines(&line, &mut norm) {
            times.push(time);
            lines.push(call);
        }
    }
    let calls = strace::mask_varying(&(strace::fold_repeats(&lines).join("\n") + "\n"));
    // The output goes through the same normaliser, after the calls: a port the lesson prints
    // gets the number it has in the trace, so a page can quote both side by side. A port that
    // only the output shows gets the next number. (tests/trace.rs does the same with the
    // self-trace of a fresh run, whose ports appear in the same order.) The capture comes
    // after both.
    let printed = strace::mask_varying(&norm.apply(&String::from_utf8_lossy(&out.stdout)));
    let Some(dir) = write else {
        print!("{calls}");
        return Ok(());
    };
    for (sub, text) in [("traces", &calls), ("output", &printed)] {
        let path = dir.join(sub).join(format!("{number}.txt"));
        std::fs::create_dir_all(dir.join(sub))?;
        std::fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    if capturing {
        let dumped = std::fs::read_to_string(&tcpdump_out)?;
        std::fs::remove_file(&tcpdump_out)?;
        let packets: Vec<capture::Packet> = dumped
            .lines()
            .filter_map(capture::parse_tcpdump_line)
            .collect();
        // Each call's start time and its number in the stored trace (`after N`).
        let numbers = capture::call_numbers(&calls);
        let folded = capture::folded_line_numbers(&lines);
        if folded.last().copied().unwrap_or(0) != numbers.len() {
            return Err(
                "capture::folded_line_numbers no longer folds as strace::fold_repeats does".into(),
            );
        }
        let at: Vec<(u64, usize)> = times
            .into_iter()
            .zip(folded)
            .map(|(time, line)| (time, numbers[line - 1]))
            .collect();
        let segments = capture::normalise(&packets, &at, &mut norm);
        write_picture(dir, number, &calls, &segments)?;
    }
    Ok(())
}

/// Writes `captures/NN.txt` and `diagrams/NN.svg`, or, for a lesson that sent no segment,
/// removes them.
fn write_picture(
    dir: &Path,
    number: &str,
    calls: &str,
    segments: &str,
) -> Result<(), Box<dyn Error>> {
    let capture_path = dir.join("captures").join(format!("{number}.txt"));
    let svg_path = dir.join("diagrams").join(format!("{number}.svg"));
    if segments.is_empty() {
        for path in [&capture_path, &svg_path] {
            if path.exists() {
                std::fs::remove_file(path)?;
            }
        }
        println!("lesson {number} sent no TCP segment: no capture, no diagram");
        return Ok(());
    }
    let text = format!(
        "# Lesson {number}: the TCP segments on loopback, as `make trace` recorded them with tcpdump\n\
         # (src/capture/: ports as in traces/{number}.txt, relative sequence numbers, no times;\n\
         # `after N`: sent after call N of traces/{number}.txt started, not counting poll and epoll_wait).\n{segments}"
    );
    let svg = seqdiag::draw(number, calls, &text)?;
    for (path, content) in [(&capture_path, &text), (&svg_path, &svg)] {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, content)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
