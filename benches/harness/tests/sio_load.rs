//! The Socket.IO load generator (`sio_load.rs`) against socklab's server on 127.0.0.1:0: a
//! few acks, a small fan-out, a paced ladder (`sio_rate.rs`), a probe's acks beside one, a
//! handshake storm, each count checked (the smoke test CI runs); and the check against the
//! official client:
//! socket.io-client 4.8.4 and the Rust generator receive the same fan-out from the same
//! server, and see the same events.
//!
//! Not benchmarks: nothing here looks at a speed. Every server is stopped by its handle,
//! the Node.js child by its pid (a guard kills it also when the test fails), and every
//! wait is bounded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use socklab::events::RunningServer;
use socklab_bench::load::{self, FanoutPlan};
use socklab_bench::sio_rate::{self, RatePlan};
use socklab_bench::{proc_info, reference, sio_load};

/// The comparison's socklab server (the handlers of the Socket.IO reference), in-process.
fn server() -> RunningServer {
    reference::in_process().expect("the bench server starts")
}

#[test]
fn acks_come_back_one_at_a_time_and_from_several_clients() {
    let s = server();
    let one = sio_load::acks(s.addr, 1, 5, 25, &[]).expect("25 acks from one client");
    assert_eq!((one.clients, one.rt.count), (1, 25));
    assert!(one.rt.seconds > 0.0 && one.rt.quantile_us(0.5) > 0.0);
    let many = sio_load::acks(s.addr, 4, 8, 40, &[]).expect("40 acks from 4 clients");
    assert_eq!((many.clients, many.rt.count), (4, 40));
    s.stop().unwrap();
}

#[test]
fn a_fan_out_reaches_every_client_with_every_message() {
    let s = server();
    let mut ready = false;
    let plan = FanoutPlan {
        warmup: 3,
        server_pids: vec![std::process::id()],
        ..FanoutPlan::new(s.addr, 5, 10)
    };
    let f = sio_load::fanout(&plan, || ready = true).expect("a fan-out to 5 clients");
    assert!(ready, "the measured burst is announced");
    let fan = &f.fanout;
    assert!(fan.complete);
    assert_eq!((fan.clients, fan.messages), (5, 10));
    // The sender is a client too: io.emit reaches it as well.
    assert_eq!((fan.deliveries, fan.lost()), (50, 0));
    // One client's deliveries, kept whole: the message, and the offset socklab's server
    // adds for connection state recovery (a string, as Socket.IO's own server sends it).
    assert_eq!(f.samples.len(), 10);
    let want = format!("42[\"chat message\",\"{}\",\"", load::message());
    for sample in &f.samples {
        assert!(sample.starts_with(&want), "{sample}");
    }
    s.stop().unwrap();
}

#[test]
fn a_paced_ladder_times_every_delivery_of_every_step() {
    let s = server();
    let plan = RatePlan {
        addr: s.addr,
        clients: 4,
        span: Duration::from_millis(100),
        start: 100.0,
        refine: 0,
        max_steps: 3,
        server_pids: vec![std::process::id()],
    };
    let got = sio_rate::sustained(&plan).expect("three steps");
    assert_eq!(got.clients, 4);
    let rates: Vec<f64> = got.steps.iter().map(|st| st.rate).collect();
    let messages: Vec<usize> = got.steps.iter().map(|st| st.messages).collect();
    // 100 ms at 100, 200, 400 messages per second; a step of a loaded test machine may
    // fail its 100 ms, which ends the doubling there.
    assert_eq!(rates[..], [100.0, 200.0, 400.0][..rates.len()]);
    assert_eq!(messages[..], [10, 20, 40][..rates.len()]);
    for st in &got.steps {
        // Each client had each message, the sender included, and each delivery was timed.
        assert_eq!((st.deliveries, st.lost), (4 * st.messages as u64, 0));
        assert_eq!(st.delays.count, st.deliveries);
        assert!(st.delays.quantile_us(0.5) > 0.0);
    }
    match got.first_failed() {
        None => assert_eq!(got.cut_short.as_deref(), Some("every one of 3 steps held")),
        Some(f) => assert!(!f.held() && f.rate <= 400.0),
    }
    s.stop().unwrap();
}

#[test]
fn a_probe_makes_acks_while_a_fan_out_runs() {
    let s = server();
    let probe = sio_load::start_probe(s.addr, 3).expect("the probe joins");
    let plan = FanoutPlan {
        warmup: 2,
        ..FanoutPlan::new(s.addr, 5, 20)
    };
    let f = sio_load::fanout(&plan, || probe.go()).expect("a fan-out beside the probe");
    // The probe is in `/` too, so each message went to 6 sockets; the fan-out counts its 5.
    assert!(f.fanout.complete);
    assert_eq!(f.fanout.deliveries, 100);
    // Acks made after `go` only: the warm-up's are gone, and each counted one has a time.
    let rt = probe.stop().expect("the probe stops");
    assert_eq!(rt.count, rt.latencies_ns.len());
    assert!(rt.count == 0 || rt.quantile_us(0.5) > 0.0);
    s.stop().unwrap();
}

#[test]
fn a_handshake_storm_joins_every_client_and_holds_them() {
    let s = server();
    let me = std::process::id();
    let (c, rss) = sio_load::connect(s.addr, 20, Duration::from_millis(100), || {
        proc_info::rss_kib(me)
    })
    .expect("20 clients connect");
    assert_eq!((c.wanted, c.connected, c.failed), (20, 20, 0));
    assert!(c.seconds > 0.0 && c.per_second() > 0.0);
    assert!(rss.is_some());
    s.stop().unwrap();
}

// ---- the check against socket.io-client ----------------------------------------------------

/// A child process, killed and reaped when the test ends, also when it fails.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        // Both fail harmlessly if the child already exited and was reaped.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `benches/socketio`, where socket.io-client is pinned (`npm ci` there).
fn socketio_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../socketio")
}

/// Whether node runs and `benches/socketio/node_modules` holds socket.io-client at the
/// version package.json pins; else `Err` says what is missing.
fn node_ready(dir: &Path) -> Result<(), String> {
    if !socklab_bench::compare::node_runs() {
        return Err("node not found on PATH".into());
    }
    let json = |p: PathBuf| -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
    };
    let pinned = json(dir.join("package.json"))
        .and_then(|v| {
            v["dependencies"]["socket.io-client"]
                .as_str()
                .map(String::from)
        })
        .ok_or("benches/socketio/package.json pins no socket.io-client")?;
    let installed = json(dir.join("node_modules/socket.io-client/package.json"))
        .and_then(|v| v["version"].as_str().map(String::from));
    match installed {
        Some(v) if v == pinned => Ok(()),
        Some(v) => Err(format!(
            "socket.io-client {v} is installed, not the pinned {pinned}"
        )),
        None => Err("socket.io-client is not installed in benches/socketio".into()),
    }
}

/// The project's rule for a tool a test needs and the machine may lack (as
/// `tests/common/interop.rs` at the root): skip, saying so plainly, unless
/// SOCKLAB_REQUIRE_NODE=1, where it fails.
fn node_or_skip(what: &str) -> Option<PathBuf> {
    let dir = socketio_dir();
    match node_ready(&dir) {
        Ok(()) => Some(dir),
        Err(why) => {
            let fix = "npm ci --prefix benches/socketio";
            if std::env::var_os("SOCKLAB_REQUIRE_NODE").is_some_and(|v| v == "1") {
                panic!("{what}: {why}, and SOCKLAB_REQUIRE_NODE=1 (run: {fix})");
            }
            eprintln!("SKIPPED: {what}: {why} (run: {fix})");
            None
        }
    }
}

/// Both receive the same burst from the same server: three socket.io-clients (in
/// `receive.js`) and the Rust generator's four clients, one of which sends. Each side must
/// count every message, and the events socket.io-client decoded must be the one payload the
/// Rust side saw on the wire.
#[test]
fn socket_io_client_and_the_generator_see_the_same_fan_out() {
    let Some(dir) = node_or_skip("the Rust generator beside socket.io-client") else {
        return;
    };
    let s = server();
    let (node_clients, messages) = (3, 20);
    let mut child = Reaper(
        Command::new("node")
            .arg("receive.js")
            .args(["--url", &format!("http://{}", s.addr)])
            .args(["--clients", &node_clients.to_string()])
            .args(["--messages", &messages.to_string()])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node receive.js starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout was piped above");
    let (tx, rx) = mpsc::channel();
    // Ends at the child's end of file: when it exits, or when the Reaper kills it.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next_json = |what: &str| -> Value {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("receive.js printed no {what} within 20 s"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: {line:?}: {e}"))
    };
    assert_eq!(next_json("ready line")["ready"], true);

    let plan = FanoutPlan::new(s.addr, 4, messages);
    let rust = sio_load::fanout(&plan, || {}).expect("the Rust generator's fan-out");
    assert!(rust.fanout.complete);
    assert_eq!(rust.fanout.deliveries, 4 * messages as u64);

    let node = next_json("result");
    assert_eq!(node["complete"], true, "{node}");
    assert_eq!(node["deliveries"], node_clients * messages as u64);
    // The same events on each side, in the same order: what socket.io-client decoded (the
    // distinct ones, each client got them in order) is what one Rust client saw on the wire.
    let wire: Vec<Value> = rust
        .samples
        .iter()
        .map(|s| {
            let json = s.strip_prefix("42").expect("a 42 packet");
            serde_json::from_str(json).expect("the delivery's JSON")
        })
        .collect();
    assert_eq!(wire.len(), messages);
    assert_eq!(node["events"], Value::Array(wire), "{node}");
    drop(child);
    s.stop().unwrap();
}
