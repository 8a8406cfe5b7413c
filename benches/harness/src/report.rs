//! The report of `socklab-bench compare`: a markdown table with the ratios and the targets,
//! beside the latency chart of `chart.rs`. It reads what `compare.rs` measured; `compare.rs`
//! does not know it exists.

use std::fmt::Write as _;

use crate::chart;
use crate::cluster::{COLUMNS, NODE_CPUS, REDIS_CPU};
use crate::compare::{Figure, Options, Part, Results, System, QUANTILES};
use crate::placement::LOAD_CPU;
use crate::Res;

/// Writes `report.md` and `latency.svg` into `opts.out_dir`; returns the markdown.
pub fn write(r: &Results, opts: &Options) -> Res<String> {
    let md = markdown(r, opts);
    std::fs::create_dir_all(&opts.out_dir)?;
    std::fs::write(opts.out_dir.join("report.md"), &md)?;
    std::fs::write(opts.out_dir.join("latency.svg"), chart::svg(r)?)?;
    Ok(md)
}

/// Digits with a comma every three: `1234567` as `1,234,567`.
fn group(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count: `10000` as `10,000`.
pub(crate) fn int(n: usize) -> String {
    group(&n.to_string())
}

/// `1234567.8` as `1,234,568`; small numbers keep a decimal or two.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v.abs() < 10.0 {
        return format!("{v:.2}");
    }
    if v.abs() < 100.0 {
        return format!("{v:.1}");
    }
    let grouped = group(&format!("{:.0}", v.abs()));
    if v < 0.0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// A ratio: `12x`, `0.90x`; below a tenth as a fraction, `1/77x`, which reads better than
/// `0.013x` (and `0.000x` would hide the figure altogether).
pub(crate) fn ratio(v: f64) -> String {
    if !v.is_finite() || v <= 0.0 {
        return "-".into();
    }
    if v >= 10.0 {
        format!("{}x", int(v.round() as usize))
    } else if v >= 0.1 {
        format!("{v:.2}x")
    } else {
        format!("1/{}x", int((1.0 / v).round() as usize))
    }
}

/// One row of the table: a figure, the systems it applies to.
struct Row {
    number: &'static str,
    label: String,
    figure: Figure,
    with_limit: bool,
}

fn rows(opts: &Options) -> Vec<Row> {
    let q = |i: usize| QUANTILES[i].1;
    let mut v = vec![
        Row {
            number: "1, 2",
            label: format!(
                "round trips per second, one at a time ({} after {} warm-up)",
                int(opts.round_trips),
                int(opts.warmup)
            ),
            figure: Figure::RoundTripsPerSecond,
            with_limit: true,
        },
        Row {
            number: "1, 2",
            label: format!("round trip {} (µs)", q(0)),
            figure: Figure::RoundTripUs(0),
            with_limit: true,
        },
        Row {
            number: "1, 2",
            label: format!("round trip {} (µs)", q(2)),
            figure: Figure::RoundTripUs(2),
            with_limit: true,
        },
    ];
    for &(n, m) in &opts.fanout {
        v.push(Row {
            number: "3",
            label: format!(
                "fan-out deliveries per second, N = {}, M = {}",
                int(n),
                int(m)
            ),
            figure: Figure::FanoutPerSecond(n),
            with_limit: false,
        });
        v.push(Row {
            number: "3",
            label: format!("server CPU per delivery (ns), N = {}", int(n)),
            figure: Figure::FanoutCpuNs(n),
            with_limit: false,
        });
        v.push(Row {
            number: "3",
            label: format!(
                "time until every client had every message (ms), N = {}",
                int(n)
            ),
            figure: Figure::FanoutMs(n),
            with_limit: false,
        });
    }
    v.push(Row {
        number: "4",
        label: format!(
            "server RSS per idle connection (bytes), C = {}",
            int(opts.idle)
        ),
        figure: Figure::IdleBytes,
        with_limit: false,
    });
    let n = int(opts.under_load.0);
    for i in [0, 2] {
        v.push(Row {
            number: "5",
            label: format!("ack round trip {} under fan-out load (µs), N = {n}", q(i)),
            figure: Figure::LoadUs(i),
            with_limit: false,
        });
    }
    v.push(Row {
        number: "5",
        label: "round trips the probe completed during that fan-out".into(),
        figure: Figure::LoadCount,
        with_limit: false,
    });
    v
}

pub(crate) fn cell(r: &Results, s: System, f: Figure) -> String {
    if let Some(why) = r.skipped.get(&s) {
        return why.clone();
    }
    match r.get(s, f) {
        Some((m, lo, hi)) if r.values[&(s, f)].len() > 1 => {
            format!("{} [{}-{}]", num(m), num(lo), num(hi))
        }
        Some((m, _, _)) => num(m),
        None => "not measured (see notes)".into(),
    }
}

pub(crate) fn median(r: &Results, s: System, f: Figure) -> Option<f64> {
    r.get(s, f).map(|(m, _, _)| m)
}

/// The verdict on one target: what was measured, and met or missed by how much.
pub(crate) struct Verdict {
    pub(crate) target: String,
    pub(crate) measured: String,
    pub(crate) verdict: String,
}

impl Verdict {
    pub(crate) fn new(target: String, measured: Option<(String, bool, String)>) -> Verdict {
        match measured {
            Some((measured, true, _)) => Verdict {
                target,
                measured,
                verdict: "met".into(),
            },
            Some((measured, false, by)) => Verdict {
                target,
                measured,
                verdict: format!("missed: {by}"),
            },
            None => Verdict {
                target,
                measured: "not measured".into(),
                verdict: "-".into(),
            },
        }
    }
}

fn targets(r: &Results, opts: &Options) -> Vec<Verdict> {
    let (s, io, lim) = (System::Socklab, System::SocketIo, System::Limit);
    let both = |f: Figure| median(r, s, f).zip(median(r, io, f));
    let mut v = Vec::new();
    let rt = Figure::RoundTripsPerSecond;
    v.push(Verdict::new(
        "ack round trips per second at least 10x Socket.IO's".into(),
        both(rt).map(|(a, b)| {
            let floor = match median(r, lim, rt) {
                Some(l) => format!(
                    "{} of the 10x; the raw-socket limit itself is only {} Socket.IO",
                    ratio(a / b),
                    ratio(l / b)
                ),
                None => format!("{} of the 10x", ratio(a / b)),
            };
            (
                format!("{} ({} vs {})", ratio(a / b), num(a), num(b)),
                a >= 10.0 * b,
                floor,
            )
        }),
    ));
    v.push(Verdict::new(
        "ack round trips per second within 1.5x of the raw limit".into(),
        median(r, s, rt).zip(median(r, lim, rt)).map(|(a, l)| {
            (
                format!(
                    "the limit is {} socklab ({} vs {})",
                    ratio(l / a),
                    num(l),
                    num(a)
                ),
                l <= 1.5 * a,
                format!("the limit is {} socklab", ratio(l / a)),
            )
        }),
    ));
    let n = opts.fanout.iter().map(|f| f.0).max().unwrap_or(0);
    let nn = int(n);
    v.push(Verdict::new(
        format!("fan-out deliveries per second at N = {nn} at least 10x Socket.IO's"),
        both(Figure::FanoutPerSecond(n)).map(|(a, b)| {
            (
                format!("{} ({} vs {})", ratio(a / b), num(a), num(b)),
                a >= 10.0 * b,
                format!("{} of the 10x", ratio(a / b)),
            )
        }),
    ));
    v.push(Verdict::new(
        format!("server CPU per delivery at N = {nn} at most 1/10 of Socket.IO's"),
        both(Figure::FanoutCpuNs(n)).map(|(a, b)| {
            (
                format!("{} ({} ns vs {} ns)", ratio(a / b), num(a), num(b)),
                a * 10.0 <= b,
                format!("{} of Socket.IO's, not 1/10", ratio(a / b)),
            )
        }),
    ));
    let rss = Figure::IdleBytes;
    v.push(Verdict::new(
        "server RSS per idle connection at most 2 KB (2,048 bytes)".into(),
        median(r, s, rss).map(|a| {
            let measured = match median(r, io, rss) {
                Some(b) => format!("{} bytes (Socket.IO: {} bytes)", num(a), num(b)),
                None => format!("{} bytes", num(a)),
            };
            let over = format!(
                "{} bytes over ({:.0}% more)",
                num(a - 2048.0),
                (a / 2048.0 - 1.0) * 100.0
            );
            (measured, a <= 2048.0, over)
        }),
    ));
    v.push(Verdict::new(
        "p99 under fan-out load below Socket.IO's p50 under the same load".into(),
        median(r, s, Figure::LoadUs(2))
            .zip(median(r, io, Figure::LoadUs(0)))
            .map(|(a, b)| {
                (
                    format!("{} µs vs {} µs", num(a), num(b)),
                    a < b,
                    format!("{} Socket.IO's p50", ratio(a / b)),
                )
            }),
    ));
    v
}

/// The report: how it was run, the table, the targets, the notes.
pub fn markdown(r: &Results, opts: &Options) -> String {
    let mut t = String::new();
    let e = &r.env;
    let _ = writeln!(
        t,
        "## socklab, Socket.IO, socketioxide and the raw-socket limit ({} run)\n",
        opts.label
    );
    let _ = writeln!(
        t,
        "- Machine: {} CPU{} ({}), Linux {}.",
        e.cpus,
        if e.cpus == 1 { "" } else { "s" },
        e.cpu_model,
        e.kernel
    );
    match (&e.node, &e.socketio_version) {
        (Some(node), Some(v)) => {
            let _ = writeln!(
                t,
                "- Socket.IO {v} on Node.js {node}: the server of `benches/socketio/server.js`, \
                 socket.io-client {v} with the WebSocket transport only."
            );
        }
        _ => {
            let why = r
                .skipped
                .get(&System::SocketIo)
                .cloned()
                .unwrap_or_default();
            let _ = writeln!(t, "- Socket.IO: {why}.");
        }
    }
    match (
        &e.socketioxide_version,
        r.skipped.get(&System::SocketioxideSio),
    ) {
        (_, Some(why)) => {
            let _ = writeln!(t, "- socketioxide: {why}.");
        }
        (version, None) => {
            let _ = writeln!(
                t,
                "- socketioxide {}: measured in the section \"The same wire, three servers\" \
                 only, loaded by the Rust generator; the Node.js clients of this table would \
                 measure themselves in its fan-out, not the server.",
                version.as_deref().unwrap_or("0.18")
            );
        }
    }
    let _ = writeln!(t, "- Placement: {}.", e.placement);
    let _ = writeln!(
        t,
        "- Each figure is the median of {} repetition{}, min-max in brackets; each \
         repetition runs the limit, socklab, then Socket.IO, each on a fresh server (and the \
         columns of the Socket.IO-wire section between them){}. \
         Every message is a 32-byte string. Descriptor limit: {}. The run took {:.0} s.\n",
        opts.reps,
        if opts.reps == 1 { "" } else { "s" },
        if opts.cluster.is_some() {
            ", then the three columns of the cluster figure (6)"
        } else {
            ""
        },
        e.fd_limit,
        e.seconds
    );
    let _ = writeln!(
        t,
        "| # | figure | limit (raw sockets) | socklab | Socket.IO | socklab / Socket.IO | socklab / limit |"
    );
    let _ = writeln!(t, "|---|---|---:|---:|---:|---:|---:|");
    for row in rows(opts) {
        let limit = if row.with_limit {
            cell(r, System::Limit, row.figure)
        } else {
            String::new()
        };
        let s = median(r, System::Socklab, row.figure);
        let vs_io = match (s, median(r, System::SocketIo, row.figure)) {
            (Some(a), Some(b)) if b > 0.0 => ratio(a / b),
            _ => String::new(),
        };
        let vs_limit = match (s, median(r, System::Limit, row.figure)) {
            (Some(a), Some(b)) if row.with_limit && b > 0.0 => ratio(a / b),
            _ => String::new(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {limit} | {} | {} | {vs_io} | {vs_limit} |",
            row.number,
            row.label,
            cell(r, System::Socklab, row.figure),
            cell(r, System::SocketIo, row.figure),
        );
    }
    let _ = writeln!(
        t,
        "\nA ratio is socklab's figure divided by the other's: above 1 is better for \
         rates, below 1 is better for times, CPU and memory. The limit has no fan-out, no \
         protocol and no idle state, so only figures 1-2 compare with it. The targets below \
         are against Socket.IO. socketioxide is measured in the section \"The same wire, \
         three servers\", with the Rust generator.\n"
    );
    let _ = writeln!(t, "### Targets\n");
    let _ = writeln!(t, "| target | measured | |");
    let _ = writeln!(t, "|---|---|---|");
    for v in targets(r, opts) {
        let _ = writeln!(t, "| {} | {} | {} |", v.target, v.measured, v.verdict);
    }
    cluster(&mut t, r, opts);
    crate::sio_compare::section(&mut t, r, opts);
    if !r.notes.is_empty() {
        let _ = writeln!(t, "\n### Notes\n");
        for n in &r.notes {
            let _ = writeln!(t, "- {n}");
        }
    }
    let _ = writeln!(
        t,
        "\nThe latency distributions (p50, p90, p99, p99.9) are drawn in \
         `{}/latency.svg`; the child processes' output is in `{}/logs/`.",
        opts.out_dir.display(),
        opts.out_dir.display()
    );
    t
}

/// The rows of the cluster figure: a label and the number.
fn cluster_rows(opts: &Options, (n, m): (usize, usize)) -> Vec<(String, Part)> {
    let q = |i: usize| QUANTILES[i].1;
    let mut v = vec![
        (
            format!("deliveries per second, N = {}, M = {}", int(n), int(m)),
            Part::PerSecond,
        ),
        (
            format!("deliveries lost (of N × M = {})", int(n * m)),
            Part::Lost,
        ),
        (
            "time until every client had every message (ms)".into(),
            Part::Ms,
        ),
        (
            "server CPU per delivery (ns), all server processes".into(),
            Part::CpuNs,
        ),
        (
            "Redis CPU per message (µs; `INFO cpu` over the warm-up, paced and burst)".into(),
            Part::RedisCpuUs,
        ),
    ];
    let k = int(opts.paced);
    let paced = format!("paced ({k}): send to delivery");
    let timed = [
        (
            paced.as_str(),
            ", clients of the sender's node (µs)",
            Part::SameUs as fn(_) -> _,
        ),
        (&paced, ", clients of the other node (µs)", Part::OtherUs),
        (
            "added by the hop through Redis,",
            " (other node − sender's node, µs)",
            Part::HopUs,
        ),
    ];
    for (what, tail, part) in timed {
        for i in [0, 2] {
            v.push((format!("{what} {}{tail}", q(i)), part(i)));
        }
    }
    v
}

fn cluster_cell(r: &Results, (sys, nodes): (System, usize), part: Part) -> String {
    if let Some(why) = r.skipped.get(&sys) {
        return why.clone();
    }
    // Said in full above the table; here without the remedy in brackets.
    if let Some(why) = r.cluster_skipped.get(&(sys, nodes)) {
        return why.split(" (").next().unwrap_or(why).to_string();
    }
    let f = Figure::Cluster { nodes, part };
    let show = |v: f64| match part {
        Part::Lost => int(v.round() as usize),
        _ => num(v),
    };
    match r.get(sys, f) {
        Some((m, lo, hi)) if r.values[&(sys, f)].len() > 1 => {
            format!("{} [{}-{}]", show(m), show(lo), show(hi))
        }
        Some((m, _, _)) => show(m),
        None if nodes == 1 && matches!(part, Part::OtherUs(_) | Part::HopUs(_)) => {
            "n/a (one process)".into()
        }
        None if nodes == 1 && part == Part::RedisCpuUs => "n/a (no Redis)".into(),
        None => "not measured (see notes)".into(),
    }
}

/// Figure 6: the fan-out on one process and over two on one Redis.
fn cluster(t: &mut String, r: &Results, opts: &Options) {
    let _ = writeln!(
        t,
        "\n### 6. Cluster: the fan-out over two processes on one Redis\n"
    );
    let Some((n, m)) = opts.cluster else {
        let _ = writeln!(t, "skipped (--no-cluster)");
        return;
    };
    let _ = writeln!(
        t,
        "N = {} clients in `/`, spread evenly over the processes (client i on process i mod 2, \
         by address: no SO_REUSEPORT, so that the harness knows which node each client is \
         on); one client of node A emits M = {} chat messages at once, after a warm-up of {} \
         and {} messages sent one at a time (each once every client had the one before), \
         whose deliveries are timed from the send. Every delivery of the burst is counted; \
         a burst that goes {} s without one is over, and what has not come is lost.\n",
        int(n),
        int(m),
        int(opts.fanout_warmup),
        int(opts.paced),
        crate::load::FANOUT_STALL.as_secs()
    );
    let e = &r.env;
    if e.pinned {
        let _ = writeln!(
            t,
            "- Placement: node A (the sender's) on CPU {}, Redis on CPU {REDIS_CPU}, node B \
             on CPU {} with the load generator (CPU {LOAD_CPU}); the one process of the first \
             column on CPU {} and its load on CPU {LOAD_CPU}, as in figure 3. With {} CPUs, \
             each CPU of a cluster runs two busy processes, and a timed hop includes waiting \
             for the other one: these are two processes sharing two CPUs with Redis and the \
             load, not two machines.",
            NODE_CPUS[0], NODE_CPUS[1], NODE_CPUS[0], e.cpus
        );
    } else {
        let _ = writeln!(t, "- Placement: {}.", e.placement);
    }
    let _ = writeln!(
        t,
        "- Clients: as in figure 3, socklab's protocol clients on one event loop for socklab \
         (`socklab-bench server`, with `--redis` for the cluster: the default cluster \
         settings of `socklab serve --redis`), and `benches/socketio/fanout.js` (socket.io-client, \
         WebSocket only) for Socket.IO."
    );
    if let Some(redis) = &e.redis_version {
        let adapter = match (&e.redis_adapter_version, &e.redis_client_version) {
            (Some(a), Some(c)) => format!(
                "; the Node.js nodes use @socket.io/redis-streams-adapter {a} with redis {c}"
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            t,
            "- Redis {redis} (`redis-server` on 127.0.0.1, nothing saved), a fresh one per \
             cluster{adapter}; both clusters use one stream in the adapter's format, with its \
             defaults."
        );
    }
    for ((sys, nodes), why) in &r.cluster_skipped {
        let _ = writeln!(t, "- {} with {nodes} processes: {why}.", sys.name());
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "| # | figure | socklab, one process | socklab, two processes + Redis | Socket.IO, two processes + Redis |"
    );
    let _ = writeln!(t, "|---|---|---:|---:|---:|");
    for (label, part) in cluster_rows(opts, (n, m)) {
        let cells: Vec<String> = COLUMNS.iter().map(|&c| cluster_cell(r, c, part)).collect();
        let _ = writeln!(t, "| 6 | {label} | {} |", cells.join(" | "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(1234567.8), "1,234,568");
        assert_eq!(num(999.4), "999");
        assert_eq!(num(38.25), "38.2");
        assert_eq!(num(1.5), "1.50");
        assert_eq!(ratio(12.3), "12x");
        assert_eq!(ratio(0.5), "0.50x");
        assert_eq!(ratio(0.013), "1/77x");
        assert_eq!(ratio(2213.0), "2,213x");
    }

    fn sample() -> Results {
        let mut r = Results::default();
        for (s, base) in [
            (System::Limit, 20.0),
            (System::Socklab, 30.0),
            (System::SocketIo, 60.0),
        ] {
            r.values
                .insert((s, Figure::RoundTripsPerSecond), vec![1e6 / base; 3]);
            for i in 0..QUANTILES.len() {
                r.values
                    .insert((s, Figure::RoundTripUs(i)), vec![base * (i + 1) as f64]);
                if s != System::Limit {
                    r.values
                        .insert((s, Figure::LoadUs(i)), vec![base * 10.0 * (i + 1) as f64]);
                }
            }
        }
        r
    }

    #[test]
    fn the_table_has_every_row_and_the_targets() {
        let opts = Options::quick(PathBuf::from("socklab"));
        let md = markdown(&sample(), &opts);
        assert!(md.contains("| 1, 2 | round trips per second"));
        assert!(md.contains("### Targets"));
        // 1e6/30 over 1e6/60: socklab makes 2x the round trips of Socket.IO, and 1e6/30
        // over 1e6/20 0.67x the limit's.
        assert!(md.contains("| 2.00x | 0.67x |"), "{md}");
        assert!(md.contains("not measured"));
    }

    #[test]
    fn a_skipped_system_says_why_in_its_column() {
        let mut r = sample();
        r.values.retain(|(s, _), _| *s != System::SocketIo);
        r.skipped
            .insert(System::SocketIo, "skipped: node not found".into());
        r.skipped
            .insert(System::SocketioxideSio, crate::socketioxide::MISSING.into());
        let md = markdown(&r, &Options::quick(PathBuf::from("socklab")));
        assert!(md.contains("| skipped: node not found |"), "{md}");
        assert!(md.contains(crate::socketioxide::MISSING), "{md}");
        // The main table has no socketioxide column.
        assert!(
            md.contains("| socklab | Socket.IO | socklab / Socket.IO |"),
            "{md}"
        );
    }
}
