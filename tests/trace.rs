//! The self-trace must be honest, and the book must show what the code does.
//!
//! For every lesson:
//! - `recorded`: the calls the self-trace prints now equal, call by call (name, descriptor,
//!   result), the real strace recorded in `docs/src/traces/NN.txt`, and the demo's stdout
//!   equals `docs/src/output/NN.txt`. A change to a lesson that changes its syscalls or its
//!   narration fails here until `make trace N=NN` records it again (and the page is reread).
//! - `live`: the lesson runs under the real strace with `--trace` on, and the network calls
//!   strace saw equal the self-trace's lines exactly, arguments included (after replacing
//!   ports and pointers). Skipped with a message when strace is missing, unless
//!   `SOCKLAB_REQUIRE_STRACE=1` (CI sets it), when a missing strace fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use socklab::strace::{self, Normalizer, NETWORK_CALLS};

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
];

fn docs(sub: &str, lesson: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/src")
        .join(sub)
        .join(format!("{lesson}.txt"))
}

/// Runs a lesson's demonstration with the self-trace on.
fn run_traced(bin: &str) -> Output {
    let out = Command::new(bin)
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

#[test]
fn self_trace_and_output_match_the_recorded_ones() {
    let mut failures = Vec::new();
    for (lesson, bin) in LESSONS {
        let out = run_traced(bin);
        let mine: Vec<String> = calls(&String::from_utf8_lossy(&out.stderr))
            .iter()
            .map(strace::Call::key)
            .collect();
        let recorded_text = std::fs::read_to_string(docs("traces", lesson))
            .unwrap_or_else(|e| panic!("docs/src/traces/{lesson}.txt: {e} (run `make trace N={lesson}`)"));
        let recorded: Vec<String> = calls(&recorded_text).iter().map(strace::Call::key).collect();
        assert!(!recorded.is_empty(), "docs/src/traces/{lesson}.txt holds no calls");
        if mine != recorded {
            failures.push(format!(
                "lesson {lesson}: the self-trace no longer matches docs/src/traces/{lesson}.txt\n  now:      {mine:?}\n  recorded: {recorded:?}"
            ));
        }

        let printed = Normalizer::new().apply(&String::from_utf8_lossy(&out.stdout));
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
        let out = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=%network", "-e", "signal=none", "-o"])
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
        let kernel = strace::socket_lines(&seen, &mut Normalizer::new());
        let mine: Vec<String> = calls(&String::from_utf8_lossy(&out.stderr))
            .into_iter()
            .filter(|c| NETWORK_CALLS.contains(&c.name.as_str()))
            .map(|c| c.line())
            .map(|l| l.to_string())
            .collect();
        let mine: Vec<String> = {
            let mut n = Normalizer::new();
            mine.iter().map(|l| n.apply(l)).collect()
        };
        assert!(!kernel.is_empty() || *lesson == "00", "lesson {lesson}: strace saw no network call");
        assert_eq!(
            mine, kernel,
            "lesson {lesson}: the self-trace (left) differs from what strace saw (right)"
        );
    }
}
