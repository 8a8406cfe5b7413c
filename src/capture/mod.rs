//! What crossed the wire: recording the TCP segments a lesson sent on loopback with
//! `tcpdump`, and storing them in a form that does not change from run to run.
//!
//! `make trace` runs each lesson under strace (see [`crate::strace`]) and, when it may, under
//! `tcpdump -i lo` at the same time. Both tools stamp what they see with the same wall clock,
//! so each segment can be placed after the syscall that was running when the kernel sent
//! it: that is how the diagram of [`crate::seqdiag`] shows calls and segments in one order.
//!
//! Capturing needs root (a raw socket, and a network namespace of its own, below). A learner
//! without it still has the recordings of the book, `docs/src/captures/NN.txt`.
//!
//! # Why a network namespace
//!
//! Loopback is shared by every program on the machine: a test suite or a benchmark running
//! beside `make trace` puts thousands of segments on `lo`, some on ports the lesson happens
//! to use next. `socklab trace` therefore runs itself, the lesson and tcpdump inside a fresh
//! network namespace (`unshare --net`) whose `lo` carries nothing but the lesson's traffic.
//! The filter is then simply `tcp`. (A real tool would filter on the ports alone and accept
//! the odd stray segment.)
//!
//! # The stored form
//!
//! One line a segment, in the order tcpdump saw them:
//!
//! ```text
//! 127.0.0.1:40002 > 127.0.0.1:40001 [P.] seq 1:10241 ack 1 len 10240 after 7
//! ```
//!
//! - ports are renamed by the same [`Normalizer`](crate::strace::Normalizer) as the trace,
//!   after it has seen the trace, so 40002 here is 40002 in `traces/NN.txt`; a port the trace
//!   never names (a refused `connect` is never given a name in strace) gets the next number;
//! - sequence and acknowledgement numbers are relative to each direction's first sequence
//!   number (tcpdump's own relative numbers, done here so they do not depend on tcpdump's
//!   options), because the initial ones are random;
//! - flags are tcpdump's: `S` SYN, `.` ACK, `P` PSH, `F` FIN, `R` RST;
//! - no timestamps and no window sizes: both change with every run;
//! - `after N`: the segment was sent after call N of `traces/NN.txt` started (0: before
//!   the first call). Calls are counted from the top of the trace, leaving out the waits
//!   (`poll`, `epoll_wait`) and the "... the line above" notes: how often a loop waits varies
//!   from run to run, and counting them would move every segment after them. A call that
//!   blocks (a `read` waiting for data) comes before the segments that arrive while it waits.
//!
//! What still varies: whether the kernel sends a bare ACK or lets the next segment carry it,
//! whether a FIN whose ACK is late is sent again (lessons 18 and 19, sometimes), and, in
//! lessons whose threads or loops race, how writes are split into segments and which call was
//! running when each was sent. Those segments are recorded as they happened on the run that
//! `make trace` made; a second run may differ there, and only there (`tests/diagrams.rs`
//! records again where it can and compares the rest).

use std::collections::HashMap;

use crate::strace::{parse_line, Normalizer};

mod tcpdump;

pub use tcpdump::{can_capture, loopback_up, Tcpdump};

/// One TCP segment as tcpdump printed it, with the real ports and sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Microseconds since the epoch (tcpdump `-tt`).
    pub time_us: u64,
    /// `127.0.0.1:PORT`
    pub src: String,
    pub dst: String,
    /// tcpdump's flags between the brackets: `S`, `S.`, `.`, `P.`, `F.`, `R`, `R.`, ...
    pub flags: String,
    /// The first sequence number (tcpdump `-S`: absolute), if the line shows one.
    pub seq: Option<u32>,
    pub ack: Option<u32>,
    pub len: u32,
}

/// Parses one line of `tcpdump -n -tt -S` output for an IPv4 TCP segment:
/// `1796593420.293592 IP 127.0.0.1.52346 > 127.0.0.1.51617: Flags [P.], seq 4062877426:4062887666, ack 3049131636, win 64, options [...], length 10240`.
/// Anything else (its start-up notes, other protocols) gives `None`.
pub fn parse_tcpdump_line(line: &str) -> Option<Packet> {
    let (time, rest) = line.split_once(' ')?;
    let time_us = parse_time_us(time)?;
    let rest = rest.strip_prefix("IP ")?;
    let (src, rest) = rest.split_once(" > ")?;
    let (dst, rest) = rest.split_once(": Flags [")?;
    let (flags, rest) = rest.split_once(']')?;
    let mut seq = None;
    let mut ack = None;
    let mut len = 0;
    // The fields after the flags are ", name value" pairs; options hold brackets, skipped.
    for field in rest.split(", ") {
        if let Some(v) = field.strip_prefix("seq ") {
            seq = v.split(':').next()?.parse().ok();
        } else if let Some(v) = field.strip_prefix("ack ") {
            ack = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("length ") {
            len = leading_number(v)?;
        }
    }
    Some(Packet {
        time_us,
        src: dotted_to_colon(src)?,
        dst: dotted_to_colon(dst)?,
        flags: flags.to_string(),
        seq,
        ack,
        len,
    })
}

/// `1796593420.293592` (strace `-ttt` and tcpdump `-tt` both print this) as microseconds.
pub fn parse_time_us(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.')?;
    if frac.len() != 6 {
        return None;
    }
    Some(secs.parse::<u64>().ok()? * 1_000_000 + frac.parse::<u64>().ok()?)
}

fn leading_number(s: &str) -> Option<u32> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s[..n].parse().ok()
}

/// tcpdump writes `127.0.0.1.52346`; strace and the normaliser write `127.0.0.1:52346`.
fn dotted_to_colon(s: &str) -> Option<String> {
    let (ip, port) = s.rsplit_once('.')?;
    Some(format!("{ip}:{port}"))
}

/// Splits strace `-ttt` output into the text strace prints without `-ttt` (so the trace
/// pipeline is unchanged) and each line's time. A line with no time (none should have one
/// missing) gets the previous line's.
pub fn split_strace_times(raw: &str) -> Vec<(u64, String)> {
    let mut last = 0;
    raw.lines()
        .map(|line| {
            // With `-f -o` a line is "PID  TIME call(...)".
            let trimmed = line.trim_start();
            let (pid, rest) = match trimmed.split_once(' ') {
                Some((p, r)) if p.bytes().all(|b| b.is_ascii_digit()) => (Some(p), r.trim_start()),
                _ => (None, trimmed),
            };
            let (time, rest) = match rest.split_once(' ') {
                Some((t, r)) => match parse_time_us(t) {
                    Some(us) => (us, r),
                    None => (last, rest),
                },
                None => (last, rest),
            };
            last = time;
            let text = match pid {
                Some(p) => format!("{p}  {rest}"),
                None => rest.to_string(),
            };
            (time, text)
        })
        .collect()
}

/// Whether a line of a stored trace counts as a call for `after N`: a call, and not a wait.
pub fn is_counted(line: &str) -> bool {
    parse_line(line).is_some_and(|c| !WAITS.contains(&c.name.as_str()))
}

/// The calls that wait for readiness: how many there are depends on timing.
const WAITS: [&str; 4] = ["poll", "ppoll", "epoll_wait", "epoll_pwait"];

/// For each line of a stored trace, the number of counted calls up to and including it: a
/// call's own number, or for a wait or a note the number of the call before it.
pub fn call_numbers(trace: &str) -> Vec<usize> {
    let mut n = 0;
    trace
        .lines()
        .map(|l| {
            if is_counted(l) {
                n += 1;
            }
            n
        })
        .collect()
}

/// Where each line of an unfolded trace lands once `strace::fold_repeats` folded runs of
/// equal lines into "the line and a note": 1-based line numbers in the stored file. The first
/// line of a run keeps its own line; the others are all stood for by the note below it.
pub fn folded_line_numbers(lines: &[String]) -> Vec<usize> {
    let mut out = Vec::with_capacity(lines.len());
    let mut folded = 0;
    let mut i = 0;
    while i < lines.len() {
        let mut j = i + 1;
        while j < lines.len() && lines[j] == lines[i] {
            j += 1;
        }
        folded += 1;
        out.push(folded);
        if j - i > 1 {
            folded += 1;
            out.extend(std::iter::repeat_n(folded, j - i - 1));
        }
        i = j;
    }
    out
}

/// The stored form of a capture (see the module documentation), one line a segment.
///
/// `calls` holds, for each socket call of the trace in the order strace printed them, its
/// start time and its number as [`call_numbers`] counts it; `norm` is the normaliser that has
/// already renamed the trace's ports.
pub fn normalise(packets: &[Packet], calls: &[(u64, usize)], norm: &mut Normalizer) -> String {
    // Each direction's sequence numbers count from its first one (the SYN's, when seen).
    let mut base: HashMap<(String, String), u32> = HashMap::new();
    for p in packets {
        if let Some(seq) = p.seq {
            base.entry((p.src.clone(), p.dst.clone())).or_insert(seq);
        }
    }
    let mut out = String::new();
    let mut after = 0;
    for p in packets {
        // The last call that had started when the segment was sent; never earlier than the
        // previous segment's, so the segments keep the order tcpdump saw them in even where
        // two threads' calls are printed out of time order.
        let started = calls
            .iter()
            .filter(|(t, _)| *t <= p.time_us)
            .map(|(_, line)| *line)
            .max()
            .unwrap_or(0);
        after = after.max(started);
        let mut line = format!("{} > {} [{}]", p.src, p.dst, p.flags);
        if let (Some(seq), Some(b)) = (p.seq, base.get(&(p.src.clone(), p.dst.clone()))) {
            let rel = seq.wrapping_sub(*b);
            if p.len > 0 {
                line += &format!(" seq {rel}:{}", rel.wrapping_add(p.len));
            } else {
                line += &format!(" seq {rel}");
            }
        }
        if let (Some(ack), Some(b)) = (p.ack, base.get(&(p.dst.clone(), p.src.clone()))) {
            line += &format!(" ack {}", ack.wrapping_sub(*b));
        }
        line += &format!(" len {} after {after}\n", p.len);
        out += &norm.apply(&line);
    }
    out
}

/// One segment of a stored capture, as [`normalise`] wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The normalised ports.
    pub src: u16,
    pub dst: u16,
    pub flags: String,
    pub len: u32,
    /// The call of the trace (numbered by [`call_numbers`]) that was running when it was
    /// sent (0: before any).
    pub after: usize,
    /// The line as stored.
    pub line: String,
}

impl Segment {
    /// A name for the arrow: `SYN`, `SYN-ACK`, `ACK`, `PSH-ACK`, `FIN-ACK`, `RST`, ...
    pub fn name(&self) -> String {
        let mut words = Vec::new();
        for (flag, word) in [('S', "SYN"), ('F', "FIN"), ('R', "RST"), ('P', "PSH")] {
            if self.flags.contains(flag) {
                words.push(word);
            }
        }
        if self.flags.contains('.') {
            words.push("ACK");
        }
        words.join("-")
    }
}

/// Reads a stored capture; `#` lines are comments.
pub fn parse_capture(text: &str) -> Result<Vec<Segment>, String> {
    let port = |s: &str| -> Option<u16> { s.rsplit_once(':')?.1.parse().ok() };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let bad = || format!("capture line {}: cannot read {line:?}", n + 1);
        let words: Vec<&str> = line.split(' ').collect();
        let field = |name: &str| -> Option<&str> {
            let i = words.iter().position(|w| *w == name)?;
            words.get(i + 1).copied()
        };
        if words.len() < 4 || words[1] != ">" {
            return Err(bad());
        }
        out.push(Segment {
            src: port(words[0]).ok_or_else(bad)?,
            dst: port(words[2]).ok_or_else(bad)?,
            flags: words[3]
                .strip_prefix('[')
                .and_then(|f| f.strip_suffix(']'))
                .ok_or_else(bad)?
                .to_string(),
            len: field("len").and_then(|v| v.parse().ok()).ok_or_else(bad)?,
            after: field("after")
                .and_then(|v| v.parse().ok())
                .ok_or_else(bad)?,
            line: line.to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tcpdump_lines() {
        let p = parse_tcpdump_line("1796593420.293592 IP 127.0.0.1.52346 > 127.0.0.1.51617: Flags [P.], seq 4062877426:4062887666, ack 3049131636, win 64, options [nop,nop,TS val 3922640087 ecr 1101265574], length 10240").unwrap();
        assert_eq!(p.time_us, 1_796_593_420_293_592);
        assert_eq!(p.src, "127.0.0.1:52346");
        assert_eq!(p.flags, "P.");
        assert_eq!(
            (p.seq, p.ack, p.len),
            (Some(4062877426), Some(3049131636), 10240)
        );
        let ack = parse_tcpdump_line("1796593420.293595 IP 127.0.0.1.51617 > 127.0.0.1.52346: Flags [.], ack 4062887666, win 109, options [nop,nop,TS val 1 ecr 2], length 0").unwrap();
        assert_eq!((ack.seq, ack.len), (None, 0));
        assert!(parse_tcpdump_line("listening on lo, link-type EN10MB").is_none());
    }

    #[test]
    fn normalises_and_reads_back() {
        let lines = [
            "1000000.000010 IP 127.0.0.1.5555 > 127.0.0.1.7777: Flags [S], seq 100, win 1, length 0",
            "1000000.000020 IP 127.0.0.1.7777 > 127.0.0.1.5555: Flags [S.], seq 900, ack 101, win 1, length 0",
            "1000000.000030 IP 127.0.0.1.5555 > 127.0.0.1.7777: Flags [P.], seq 101:106, ack 901, win 1, length 5",
            "1000000.000040 IP 127.0.0.1.7777 > 127.0.0.1.5555: Flags [R], seq 901, win 0, length 0",
        ];
        let packets: Vec<Packet> = lines.iter().filter_map(|l| parse_tcpdump_line(l)).collect();
        let mut norm = Normalizer::new();
        norm.apply("listen on 127.0.0.1:7777");
        let text = normalise(
            &packets,
            &[(1_000_000_000_005, 3), (1_000_000_000_025, 5)],
            &mut norm,
        );
        assert_eq!(
            text,
            "127.0.0.1:40002 > 127.0.0.1:40001 [S] seq 0 len 0 after 3\n\
             127.0.0.1:40001 > 127.0.0.1:40002 [S.] seq 0 ack 1 len 0 after 3\n\
             127.0.0.1:40002 > 127.0.0.1:40001 [P.] seq 1:6 ack 1 len 5 after 5\n\
             127.0.0.1:40001 > 127.0.0.1:40002 [R] seq 1 len 0 after 5\n"
        );
        let segs = parse_capture(&text).unwrap();
        assert_eq!(segs.len(), 4);
        assert_eq!(
            (segs[1].src, segs[1].dst, segs[1].name()),
            (40001, 40002, "SYN-ACK".to_string())
        );
        assert_eq!((segs[2].len, segs[2].after), (5, 5));
    }

    #[test]
    fn strace_times_and_folded_lines() {
        let split = split_strace_times("123  1796593420.293550 close(3) = 0\n");
        assert_eq!(
            split,
            vec![(1_796_593_420_293_550, "123  close(3) = 0".to_string())]
        );
        let lines: Vec<String> = ["a", "b", "b", "b", "c"].map(String::from).to_vec();
        // a=1, b=2, the note "2 more times"=3, c=4
        assert_eq!(folded_line_numbers(&lines), [1, 2, 3, 3, 4]);
        let trace = "connect(4) = 0\nepoll_wait(3, [], 1024, 2) = 0\n... the line above, 2 more times (varies)\nread(4, \"\", 9) = 0\n";
        assert_eq!(call_numbers(trace), [1, 1, 1, 2]);
    }
}
