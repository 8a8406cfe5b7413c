//! The load generators of `make bench` still work: each one runs at a tiny size against a
//! real socklab server on 127.0.0.1, and `socklab-bench compare` runs end to end without
//! Node.js.
//!
//! These are not benchmarks: nothing here looks at a speed. They check that the generators
//! connect, count what they should count, and finish; the figures themselves are
//! `make bench`'s business (and CI does not run it; `make test` runs this file, with
//! `cargo test --workspace`).
//!
//! Every server is stopped when its test ends (an in-process server by its handle, a child
//! process by its pid through a guard), and every generator has its own time limits.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use socklab::events::RunningServer;
use socklab_bench::load::FanoutPlan;
use socklab_bench::{load, proc_info, redis, reference};

const HARNESS: &str = env!("CARGO_BIN_EXE_socklab-bench");

/// A child process, killed and reaped when the test ends, also when it fails.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        // Both fail harmlessly if the child already exited and was reaped.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits (at most 10 s) for its first line, `listening on ADDR`.
fn spawn_listening(cmd: &mut Command, what: &str) -> (Reaper, SocketAddr) {
    let mut child = Reaper(
        cmd.stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}")),
    );
    let stdout = child.0.stdout.take().expect("stdout was piped above");
    let (tx, rx) = mpsc::channel();
    // Ends at the child's end of file, when the Reaper kills it.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} printed no line within 10 s"));
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{what}: first line {first:?} is not `listening on ADDR`"));
    (child, addr)
}

/// The comparison's socklab server (the handlers of the Socket.IO reference), in-process.
fn server() -> RunningServer {
    reference::in_process().expect("the bench server starts")
}

#[test]
fn the_limit_is_a_ping_pong_on_raw_sockets() {
    let mut cmd = Command::new(HARNESS);
    cmd.args(["limit-server", "--addr", "127.0.0.1:0"])
        .stdin(Stdio::null());
    let (guard, addr) = spawn_listening(&mut cmd, "socklab-bench limit-server");
    let rt = load::limit(addr, 3, 20).expect("20 round trips");
    assert_eq!(rt.count, 20);
    assert_eq!(
        rt.latencies_ns.len(),
        20,
        "every round trip is in the histogram"
    );
    assert!(rt.quantile_us(0.5) > 0.0);
    assert!(rt.quantile_us(0.5) <= rt.quantile_us(0.999));
    drop(guard);
}

#[test]
fn acks_come_back_one_at_a_time_through_socklabs_client() {
    let s = server();
    let rt = load::acks(s.addr, 5, 25).expect("25 ack round trips");
    assert_eq!(rt.count, 25);
    assert!(rt.seconds > 0.0);
    s.stop().unwrap();
}

#[test]
fn a_fan_out_reaches_every_client_with_every_message() {
    let s = server();
    let me = std::process::id();
    let mut ready = false;
    let plan = FanoutPlan {
        warmup: 2,
        paced: 3,
        server_pids: vec![me],
        ..FanoutPlan::new(s.addr, 5, 10)
    };
    let f = load::fanout(&plan, || ready = true).expect("a fan-out to 5 clients");
    assert!(ready, "the measured round is announced");
    assert!(f.complete);
    assert_eq!((f.clients, f.messages), (5, 10));
    // The sender is a client too: io.emit reaches it as well.
    assert_eq!(f.deliveries, 50);
    assert_eq!(f.lost(), 0);
    assert!(
        f.server_cpu.is_some(),
        "the server's CPU time is read from /proc"
    );
    // Every delivery of the 3 paced messages is timed; with one server, all on its node.
    let hop = f.hop.expect("paced messages were sent");
    assert_eq!((hop.sent, hop.lost), (3, 0));
    assert_eq!((hop.same_node.count, hop.other_node.count), (15, 0));
    s.stop().unwrap();
}

/// Clients spread over two servers that are not a cluster: the sender's server delivers to
/// its own clients only, and what the others never get is counted as lost, by node, once
/// nothing came for the stall time.
#[test]
fn deliveries_that_never_come_are_counted_as_lost_by_node() {
    let (a, b) = (server(), server());
    let plan = FanoutPlan {
        nodes: vec![a.addr, b.addr],
        paced: 2,
        stall: Duration::from_millis(300),
        ..FanoutPlan::new(a.addr, 6, 4)
    };
    let f = load::fanout(&plan, || {}).expect("a fan-out over two servers");
    assert!(!f.complete);
    // Clients 0, 2, 4 on the sender's server, 1, 3, 5 on the other.
    assert_eq!((f.deliveries, f.lost_by_node.clone()), (12, vec![0, 12]));
    // The first paced message did not reach the other server's 3 clients: the paced part
    // stops there, with the 3 deliveries it had.
    let hop = f.hop.expect("a paced message was sent");
    assert_eq!((hop.sent, hop.lost), (1, 3));
    assert_eq!((hop.same_node.count, hop.other_node.count), (3, 0));
    a.stop().unwrap();
    b.stop().unwrap();
}

#[test]
fn a_probe_measures_while_a_fan_out_runs() {
    let s = server();
    let probe = load::Probe::start(s.addr, 3).expect("the probe connects");
    let plan = FanoutPlan {
        warmup: 2,
        ..FanoutPlan::new(s.addr, 5, 20)
    };
    let f = load::fanout(&plan, || probe.go()).expect("a fan-out beside the probe");
    // The probe's socket is in `/` too, so each message went to 6 sockets; the fan-out
    // counts its own 5.
    assert_eq!(f.deliveries, 100);
    let rt = probe.stop().expect("the probe stops");
    assert_eq!(rt.count, rt.latencies_ns.len());
    s.stop().unwrap();
}

#[test]
fn idle_clients_connect_and_the_server_is_measured_while_they_sit() {
    let s = server();
    let me = std::process::id();
    let mut before = None;
    let (idle, after) = load::idle(
        s.addr,
        2,
        8,
        Duration::from_millis(200),
        || before = proc_info::rss_kib(me),
        || proc_info::rss_kib(me),
    )
    .expect("8 idle clients");
    assert_eq!((idle.wanted, idle.connected, idle.failed), (8, 8, 0));
    assert!(before.is_some() && after.is_some());
    s.stop().unwrap();
}

/// `socklab-bench compare` itself, tiny and without Node.js or socketioxide (whose columns
/// say they were left out, built or not): servers spawned on their CPUs
/// (from this same program), every figure measured, the report and the chart written where
/// `--out` says. The cluster figure runs with a Redis of its own when `redis-server` is
/// installed, and says it was skipped when it is not.
#[test]
fn compare_writes_its_report_without_node() {
    let out = std::env::temp_dir().join(format!("socklab-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(HARNESS)
        .args(["compare", "--quick", "--no-socketio", "--no-socketioxide"])
        .args(["--reps", "1"])
        .args([
            "--fanout",
            "4:5",
            "--idle",
            "6",
            "--rate",
            "4",
            "--cluster",
            "4:5",
            "--paced",
            "3",
        ])
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .expect("socklab-bench compare runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "socklab-bench compare failed:\n{stderr}"
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert_eq!(
        report, stdout,
        "the table on stdout is the one in report.md"
    );
    for row in [
        "| 1, 2 | round trips per second",
        "| 3 | fan-out deliveries per second, N = 4, M = 5 |",
        "| 4 | server RSS per idle connection (bytes), C = 6 |",
        "| 5 | ack round trip p99 under fan-out load",
        "skipped (--no-socketio)",
        "skipped (--no-socketioxide)",
        "### Targets",
        "### 6. Cluster",
        "| 6 | deliveries per second, N = 4, M = 5 |",
        "### The same wire, three servers",
        "| acks per second, 100 clients each one at a time |",
        "#### Targets on the Socket.IO wire",
        "| connections established per second, C = 6 |",
        "| acks the probe completed during that fan-out |",
        "| highest rate held, p99 delivery ≤ 100 ms (messages/s), N = 4 |",
        "#### The rate ladders",
    ] {
        assert!(report.contains(row), "no {row:?} in:\n{report}");
    }
    // socklab with two processes: measured, or skipped for want of redis-server.
    let lost = report
        .lines()
        .find(|l| l.starts_with("| 6 | deliveries lost"))
        .expect("a row of lost deliveries");
    let cells: Vec<&str> = lost.split('|').map(str::trim).collect();
    if redis::installed() {
        assert_eq!(&cells[3..5], ["0", "0"], "{lost}");
    } else {
        eprintln!("SKIPPED: the cluster figure (redis-server not installed)");
        assert!(report.contains(redis::MISSING), "{report}");
        assert_eq!(cells[4], "skipped: redis-server not found", "{lost}");
    }
    // At this size a fan-out may use less than one clock tick of server CPU, which the
    // report notes; anything else in the notes means something was not measured.
    let notes = report.split("### Notes").nth(1).unwrap_or("");
    for note in notes.lines().filter(|l| l.starts_with("- ")) {
        assert!(note.contains("clock tick"), "not measured: {note}");
    }
    let svg = std::fs::read_to_string(out.join("latency.svg")).expect("latency.svg");
    assert!(svg.starts_with("<svg") && svg.contains("p99.9"));
    let _ = std::fs::remove_dir_all(PathBuf::from(&out));
}
