//! Every lesson that puts a packet on the wire has its packet picture in the book, and the
//! picture shows what was captured, nothing else.
//!
//! A lesson puts packets on the wire if and only if its recorded trace has a `connect` (a
//! refused one too: a SYN goes out and an RST comes back). For such a lesson:
//! - `docs/src/captures/NN.txt` holds the segments `make trace` captured, each connection
//!   starting with its SYN (tcpdump was listening before the lesson started);
//! - `docs/src/diagrams/NN.svg` shows, connection by connection, exactly the capture's
//!   segments (ports, flags, length), in its order, except the data and bare ACKs it says it
//!   left out of a long connection (never a SYN, FIN or RST);
//! - the diagram is what `seqdiag::draw` makes of the recorded trace and capture, so it was
//!   neither edited by hand nor left behind by a newer recording;
//! - the lesson page shows it right after the trace.
//!
//! A lesson that never connects has no capture and no diagram, and its page says so.
//!
//! Recording needs root and tcpdump. The first test only reads the recordings, so it runs
//! anywhere; the second records the lessons again where it can (root, tcpdump, ip), and
//! says it skipped otherwise.

use std::path::{Path, PathBuf};

use socklab::capture::{self, parse_capture, Segment};
use socklab::seqdiag;
use socklab::strace::parse_line;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lesson numbers, from the recorded traces (`tests/docs.rs` checks every lesson has one).
fn lessons() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(src().join("traces"))
        .expect("docs/src/traces exists")
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().to_string();
            Some(name.strip_suffix(".txt")?.to_string())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 9, "too few traces: {out:?}");
    out
}

fn page(number: &str) -> String {
    let prefix = format!("{number}-");
    for entry in std::fs::read_dir(src()).expect("docs/src exists") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if name.starts_with(&prefix) && name.ends_with(".md") {
            return read(&path);
        }
    }
    panic!("no page docs/src/{number}-*.md");
}

fn connects(trace: &str) -> bool {
    trace
        .lines()
        .filter_map(parse_line)
        .any(|c| c.name == "connect")
}

/// A segment as the diagram and the test compare it: ports, flags, length.
type Key = (u16, u16, String, u32);

fn key(s: &Segment) -> Key {
    (s.src, s.dst, s.flags.clone(), s.len)
}

/// The capture's segments, grouped by connection in order of first appearance.
fn by_connection(segments: &[Segment]) -> Vec<((u16, u16), Vec<Key>)> {
    let mut out: Vec<((u16, u16), Vec<Key>)> = Vec::new();
    for s in segments {
        match out
            .iter_mut()
            .find(|(c, _)| *c == (s.src, s.dst) || *c == (s.dst, s.src))
        {
            Some((_, keys)) => keys.push(key(s)),
            None => out.push(((s.src, s.dst), vec![key(s)])),
        }
    }
    out
}

/// What a diagram draws: for each connection, its ports, its segments, and how many it says
/// it left out (the sum of its gap notes).
fn drawn(svg: &str) -> Vec<((u16, u16), Vec<Key>, usize)> {
    let attr = |s: &str, name: &str| -> Option<String> {
        let start = s.find(&format!("{name}=\""))? + name.len() + 2;
        Some(s[start..].split('"').next()?.to_string())
    };
    let mut out: Vec<((u16, u16), Vec<Key>, usize)> = Vec::new();
    for element in svg.split('<').skip(1) {
        if let Some(ports) = attr(element, "data-connection") {
            let p: Vec<u16> = ports
                .split(' ')
                .map(|p| p.parse().expect("data-connection holds two ports"))
                .collect();
            out.push(((p[0], p[1]), Vec::new(), 0));
        } else if let Some(seg) = attr(element, "data-segment") {
            let f: Vec<&str> = seg.split(' ').collect();
            let last = out.last_mut().expect("a segment inside a connection");
            last.1.push((
                f[0].parse().expect("data-segment starts with two ports"),
                f[1].parse().expect("data-segment starts with two ports"),
                f[2].to_string(),
                f[3].parse().expect("data-segment ends with a length"),
            ));
        } else if let Some(n) = attr(element, "data-omitted") {
            out.last_mut().expect("inside a connection").2 +=
                n.parse::<usize>().expect("data-omitted is a count");
        }
    }
    out
}

/// The diagram draws the captured segments in their order, leaving out only data and bare
/// ACKs (never a SYN, FIN or RST), and counts exactly those it left out.
fn same_segments(captured: &[Key], drawn: &[Key], omitted: usize) -> Result<(), String> {
    let mut next = drawn.iter().peekable();
    let mut skipped = 0;
    for key in captured {
        if next.peek() == Some(&key) {
            next.next();
        } else if key.2.contains(['S', 'F', 'R']) {
            return Err(format!("{key:?} is missing or out of order"));
        } else {
            skipped += 1;
        }
    }
    if let Some(extra) = next.next() {
        return Err(format!("{extra:?} is not in the capture, or out of order"));
    }
    if skipped != omitted {
        return Err(format!(
            "says it left out {omitted} segments, but left out {skipped}"
        ));
    }
    Ok(())
}

#[test]
fn every_lesson_that_connects_has_its_capture_and_diagram() {
    let mut failures = Vec::new();
    let mut drawn_lessons = 0;
    for n in lessons() {
        let trace = read(&src().join(format!("traces/{n}.txt")));
        let capture_path = src().join(format!("captures/{n}.txt"));
        let svg_path = src().join(format!("diagrams/{n}.svg"));
        let page = page(&n);
        if !connects(&trace) {
            if capture_path.exists() || svg_path.exists() {
                failures.push(format!(
                    "lesson {n} never connects, yet has a capture or diagram"
                ));
            }
            if !page.contains("no packet diagram") {
                failures.push(format!(
                    "lesson {n} never connects: its page should say it has no packet diagram"
                ));
            }
            continue;
        }
        drawn_lessons += 1;
        if !capture_path.exists() || !svg_path.exists() {
            failures.push(format!(
                "lesson {n} connects but has no captures/{n}.txt or diagrams/{n}.svg (run `make trace N={n}` as root, with tcpdump)"
            ));
            continue;
        }
        let capture = read(&capture_path);
        let svg = read(&svg_path);
        let segments = match parse_capture(&capture) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                failures.push(format!("captures/{n}.txt holds no segment"));
                continue;
            }
            Err(e) => {
                failures.push(format!("captures/{n}.txt: {e}"));
                continue;
            }
        };
        let captured = by_connection(&segments);
        for (ports, keys) in &captured {
            if keys[0].2 != "S" {
                failures.push(format!(
                    "captures/{n}.txt: connection {ports:?} starts with [{}], not a SYN: was tcpdump late?",
                    keys[0].2
                ));
            }
        }
        // The picture against the capture, connection by connection.
        let pictured = drawn(&svg);
        let ports_c: Vec<(u16, u16)> = captured.iter().map(|c| c.0).collect();
        let ports_d: Vec<(u16, u16)> = pictured.iter().map(|c| c.0).collect();
        if ports_c != ports_d {
            failures.push(format!(
                "diagrams/{n}.svg draws connections {ports_d:?}, the capture has {ports_c:?}"
            ));
        }
        for ((ports, keys), (_, shown, omitted)) in captured.iter().zip(&pictured) {
            if let Err(why) = same_segments(keys, shown, *omitted) {
                failures.push(format!(
                    "diagrams/{n}.svg, connection {ports:?}: {why}\n  drawn:    {shown:?}, {omitted} left out\n  captured: {keys:?}"
                ));
            }
        }
        match seqdiag::draw(&n, &trace, &capture) {
            Ok(fresh) if fresh == svg => {}
            Ok(_) => failures.push(format!(
                "diagrams/{n}.svg is not what src/seqdiag/ draws from traces/{n}.txt and captures/{n}.txt (run `make trace N={n}`; never edit it by hand)"
            )),
            Err(e) => failures.push(format!("lesson {n}: {e}")),
        }
        // The page shows it right after the trace.
        let trace_at = page.find(&format!("{{{{#include traces/{n}.txt}}}}"));
        let image_at = page.find(&format!("](diagrams/{n}.svg)"));
        match (trace_at, image_at) {
            (Some(t), Some(i)) if t < i && page[t..i].matches("```").count() == 1 => {}
            _ => failures.push(format!(
                "the page of lesson {n} should show diagrams/{n}.svg right after its trace"
            )),
        }
    }
    assert!(drawn_lessons > 0, "no lesson connects?");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Lessons whose threads or loops race (as in `tests/trace.rs`): how their writes are split
/// into segments may change from run to run, so a fresh capture is not compared with theirs.
/// Lesson 23 spreads its connections over two processes by the kernel's hash, so which
/// connection carries the chat varies too; lesson 24's nodes pipeline to Redis what each turn
/// of their loops gathered, and one of them is killed while the other may still be writing.
const VARYING: &[&str] = &["09", "12", "14", "15", "16", "17", "23", "24"];

/// The segments of a capture that do not depend on timing, connection by connection: all but
/// the bare ACKs (the kernel may delay one and let the next segment carry it) and the
/// retransmissions (a FIN is sent again when its ACK is late: lessons 18 and 19, sometimes),
/// without `after` (where two threads' calls interleave, which call was running varies), and
/// each connection on its own (when two connections' segments interleave varies too).
fn steady(capture: &str) -> Vec<Vec<String>> {
    let segments = parse_capture(capture).expect("a capture that parses");
    let mut out: Vec<((u16, u16), Vec<String>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in segments {
        let line = s
            .line
            .split(" after ")
            .next()
            .unwrap_or_default()
            .to_string();
        if (s.flags == "." && s.len == 0) || !seen.insert(line.clone()) {
            continue;
        }
        match out
            .iter_mut()
            .find(|(c, _)| *c == (s.src, s.dst) || *c == (s.dst, s.src))
        {
            Some((_, lines)) => lines.push(line),
            None => out.push(((s.src, s.dst), vec![line])),
        }
    }
    out.into_iter().map(|(_, lines)| lines).collect()
}

#[test]
fn a_fresh_capture_matches_the_recorded_one() {
    let strace = std::process::Command::new("strace")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !strace || !capture::can_capture() {
        // In CI nothing is skipped (.ci/run installs strace, tcpdump and iproute2).
        assert!(
            std::env::var_os("SOCKLAB_REQUIRE_CAPTURE").is_none(),
            "SOCKLAB_REQUIRE_CAPTURE is set, but strace, tcpdump, ip or `unshare --net` is missing"
        );
        eprintln!(
            "SKIPPED: recording again needs strace, and root, tcpdump and ip to capture (apt-get install strace tcpdump)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("socklab-diagrams-{}", std::process::id()));
    let mut failures = Vec::new();
    for n in lessons() {
        let recorded = src().join(format!("captures/{n}.txt"));
        if VARYING.contains(&n.as_str()) || !recorded.exists() {
            continue;
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_socklab"))
            .args(["trace", &n, "--write"])
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("socklab trace runs");
        assert!(
            out.status.success(),
            "socklab trace {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fresh = read(&dir.join(format!("captures/{n}.txt")));
        let (fresh, recorded) = (steady(&fresh), steady(&read(&recorded)));
        if fresh != recorded {
            failures.push(format!(
                "lesson {n}: a fresh capture differs from docs/src/captures/{n}.txt (bare ACKs aside)\n  now:      {fresh:?}\n  recorded: {recorded:?}"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{}\n(run `make trace` as root to record them again)",
        failures.join("\n")
    );
}
