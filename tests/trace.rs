//! The self-trace must be honest, and the book must show what the code does.
//!
//! For every lesson:
//! - `recorded`: the calls the self-trace prints now equal, call by call (name, descriptor,
//!   result), the real strace recorded in `docs/src/traces/NN.txt`, and the demo's stdout
//!   equals `docs/src/output/NN.txt`. A change to a lesson that changes its syscalls or its
//!   narration fails here until `make trace N=NN` records it again (and the page is reread).
//!   Ports in the output are numbered as in the trace (40001 is the same port in both).
//! - `live`: the lesson runs under the real strace with `--trace` on, and the network calls
//!   and `epoll_ctl` calls strace saw equal the self-trace's lines exactly, arguments
//!   included (after replacing ports and pointers). Skipped with a message when strace is
//!   missing, unless `SOCKLAB_REQUIRE_STRACE=1` (CI sets it), when a missing strace fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use socklab::strace::{self, Normalizer, NETWORK_CALLS};
use socklab::sys::spawn_with_std_fds_only;

const LESSONS: &[(&str, &str)] = &[
    ("00", env!("CARGO_BIN_EXE_00_socket")),
    ("01", env!("CARGO_BIN_EXE_01_listen")),
    ("02", env!("CARGO_BIN_EXE_02_accept")),
    ("03", env!("CARGO_BIN_EXE_03_connect")),
    ("04", env!("CARGO_BIN_EXE_04_echo")),
    ("05", env!("CARGO_BIN_EXE_05_half_close")),
    ("06", env!("CARGO_BIN_EXE_06_reuseaddr")),
    ("07", env!("CARGO_BIN_EXE_07_reset_pipe")),
    ("08", env!("CARGO_BIN_EXE_08_framing")),
    ("09", env!("CARGO_BIN_EXE_09_nonblocking")),
    ("10", env!("CARGO_BIN_EXE_10_poll_chat")),
    ("11", env!("CARGO_BIN_EXE_11_mio_loop")),
    ("12", env!("CARGO_BIN_EXE_12_backpressure")),
    ("13", env!("CARGO_BIN_EXE_13_nb_connect")),
    ("14", env!("CARGO_BIN_EXE_14_events")),
    ("15", env!("CARGO_BIN_EXE_15_rooms")),
    ("16", env!("CARGO_BIN_EXE_16_heartbeat_reconnect")),
    ("17", env!("CARGO_BIN_EXE_17_graceful_shutdown")),
    ("18", env!("CARGO_BIN_EXE_18_http")),
    ("19", env!("CARGO_BIN_EXE_19_websocket")),
    ("20", env!("CARGO_BIN_EXE_20_engineio")),
    ("21", env!("CARGO_BIN_EXE_21_socketio")),
    ("22", env!("CARGO_BIN_EXE_22_polling_upgrade")),
    // 23 runs three processes whose descriptor numbers follow the kernel's spread of the
    // connections: `tests/reuseport.rs` compares its output with the book instead. 24 runs
    // four (a redis-server among them) whose calls interleave by timing:
    // `tests/cluster_lesson.rs` does the same for it.
];

/// Lessons whose exact calls depend on timing (how long a spin lasts, how much the kernel
/// takes per write, how two loops stepped in turn see each other's bytes). Their recorded trace is compared by which calls appear, in the order
/// they first appear, rather than call by call.
const VARYING: &[&str] = &["09", "12", "14", "15", "16", "17"];

fn docs(sub: &str, lesson: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/src")
        .join(sub)
        .join(format!("{lesson}.txt"))
}

/// Runs a lesson's demonstration with the self-trace on, with no descriptor inherited beyond
/// 0-2 (as `make trace` records it), so descriptor numbers match the recording.
fn run_traced(bin: &str) -> Output {
    let out = spawn_with_std_fds_only(&mut Command::new(bin))
        .arg("--trace")
        .stdin(Stdio::null())
        .output()
        .expect("the lesson binary runs");
    assert!(
        out.status.success(),
        "{bin} --trace failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn calls(text: &str) -> Vec<strace::Call> {
    text.lines().filter_map(strace::parse_line).collect()
}

/// Keys with runs of one key folded into one, as `make trace` folds repeated lines.
fn keys(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in calls(text).iter().map(strace::Call::key) {
        if out.last() != Some(&k) {
            out.push(k);
        }
    }
    out
}

/// The distinct keys in order of first appearance, with successful results made equal
/// (byte counts and event counts vary) and errors kept by name.
fn first_appearances(keys: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        let k = match k.split_once(" = ") {
            Some((call, result)) if result.starts_with("-1") => format!("{call} = {result}"),
            Some((call, _)) => format!("{call} = ok"),
            None => k.clone(),
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

#[test]
fn self_trace_and_output_match_the_recorded_ones() {
    let mut failures = Vec::new();
    for (lesson, bin) in LESSONS {
        let out = run_traced(bin);
        let mine = keys(&String::from_utf8_lossy(&out.stderr));
        let recorded_text = std::fs::read_to_string(docs("traces", lesson)).unwrap_or_else(|e| {
            panic!("docs/src/traces/{lesson}.txt: {e} (run `make trace N={lesson}`)")
        });
        let recorded = keys(&recorded_text);
        assert!(
            !recorded.is_empty(),
            "docs/src/traces/{lesson}.txt holds no calls"
        );
        let (mine, recorded) = if VARYING.contains(lesson) {
            (first_appearances(&mine), first_appearances(&recorded))
        } else {
            (mine, recorded)
        };
        if mine != recorded {
            failures.push(format!(
                "lesson {lesson}: the self-trace no longer matches docs/src/traces/{lesson}.txt\n  now:      {mine:?}\n  recorded: {recorded:?}"
            ));
        }

        // `make trace` numbers the ports of the output on from those of the trace, so the
        // self-trace (the same calls, so the same ports in the same order) goes through the
        // normaliser first.
        let mut norm = Normalizer::new();
        norm.apply(&String::from_utf8_lossy(&out.stderr));
        let printed = strace::mask_varying(&norm.apply(&String::from_utf8_lossy(&out.stdout)));
        let recorded_out = std::fs::read_to_string(docs("output", lesson)).unwrap_or_default();
        if printed != recorded_out {
            failures.push(format!(
                "lesson {lesson}: the demo's output no longer matches docs/src/output/{lesson}.txt\n--- now\n{printed}--- recorded\n{recorded_out}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(run `make trace` to record them again, then reread the lesson pages)",
        failures.join("\n")
    );
}

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn self_trace_agrees_with_real_strace() {
    if !strace_available() {
        if std::env::var_os("SOCKLAB_REQUIRE_STRACE").is_some_and(|v| v == "1") {
            panic!("strace is required (SOCKLAB_REQUIRE_STRACE=1) but not installed");
        }
        eprintln!("skipped: strace not found; install it (apt-get install strace) to compare the self-trace with it");
        return;
    }
    let dir = std::env::temp_dir();
    for (lesson, bin) in LESSONS {
        let file = dir.join(format!("socklab-live-{}-{lesson}.txt", std::process::id()));
        let out = spawn_with_std_fds_only(&mut Command::new("strace"))
            .args(["-f", "-qq", "-e", "trace=%network,epoll_ctl"])
            .args(["-e", "signal=none", "-o"])
            .arg(&file)
            .arg(bin)
            .arg("--trace")
            .stdin(Stdio::null())
            .output()
            .expect("strace runs");
        let seen = std::fs::read_to_string(&file).expect("strace wrote its output file");
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "lesson {lesson} under strace failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !seen.contains("<unfinished"),
            "lesson {lesson}: calls overlapped; the demos must stay single-threaded for this check"
        );
        // The loop registers two descriptors that are not sockets (mio's waker, token 0,
        // and the signal pipe, token 1); the self-trace does not claim those calls.
        let mut n = Normalizer::new();
        let kernel: Vec<String> = calls(&seen)
            .into_iter()
            .filter(|c| {
                // Tokens 0 and 1 are the loop's own pipes (mio's waker, the signal pipe).
                let own = c.text.contains("u64=0}") || c.text.contains("u64=1}");
                !(c.name == "epoll_ctl" && own)
            })
            .map(|c| n.apply(&c.line()))
            .collect();
        let mut n = Normalizer::new();
        let mine: Vec<String> = calls(&String::from_utf8_lossy(&out.stderr))
            .into_iter()
            .filter(|c| NETWORK_CALLS.contains(&c.name.as_str()) || c.name == "epoll_ctl")
            .map(|c| n.apply(&c.line()))
            .collect();
        assert!(
            !kernel.is_empty() || *lesson == "00",
            "lesson {lesson}: strace saw no network call"
        );
        assert_eq!(
            mine, kernel,
            "lesson {lesson}: the self-trace (left) differs from what strace saw (right)"
        );
    }
}
