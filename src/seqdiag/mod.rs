//! A sequence diagram of one lesson, as SVG: for each TCP connection, the two socket ends
//! as lifelines, each end's syscalls beside its lifeline, and the segments the kernel sent
//! between them as arrows, in the order tcpdump saw them.
//!
//! The inputs are the two recordings of the book, nothing else: the trace
//! (`docs/src/traces/NN.txt`, see [`crate::strace`]) and the capture
//! (`docs/src/captures/NN.txt`, see [`crate::capture`]). `make trace` draws
//! `docs/src/diagrams/NN.svg` from them, and `tests/diagrams.rs` draws it again and compares,
//! so the picture is never edited by hand and never drifts from what was recorded.
//!
//! How a call finds its connection: strace's `-yy` names a connected socket by its two
//! ports (`5<TCP:[127.0.0.1:40001->127.0.0.1:40002]>`), which is the connection. A socket
//! that is not connected yet (`connect(4<TCP:[10002]>, ...)`) is named by its inode, so the
//! call is given to whatever connection the same descriptor names next. A socket that is
//! never named by its ports (its `connect` failed, or it was reset first) is given to the
//! capture's next connection to the port it connected to whose client side no call names. Calls on the listening socket (`listen`,
//! its `close`) are drawn on the server side of every connection to it: closing a listener
//! resets the connections still waiting in its queue, and the diagram should show why.
//!
//! A long lesson would make a picture nobody reads: each connection shows its first
//! [`MAX_SEGMENTS`] segments or [`MAX_ROWS`] rows; after that, only the segments that open,
//! close or reset it (SYN, FIN, RST) and the `shutdown` and `close` calls, with a note at each
//! gap saying how many segments and calls were skipped there (the files have them all). Polling calls (`poll`, `epoll_*`) are left
//! out: they are about descriptors, not about one connection.
//!
//! The SVG is built as a plain string: a few rectangles, lines and texts need no library.

mod calls;

use std::fmt::Write as _;

use crate::capture::{parse_capture, Segment};
use calls::attribute_calls;

/// After this many segments of a connection, only SYN, FIN and RST are drawn.
pub const MAX_SEGMENTS: usize = 30;
/// After this many rows (calls and segments) of a connection, the same.
pub const MAX_ROWS: usize = 48;

const WIDTH: usize = 900;
const CLIENT_X: usize = 300;
const SERVER_X: usize = 600;
const ROW: usize = 18;

/// One connection of the capture.
#[derive(Debug)]
struct Conn {
    /// The port that sent the first segment (the SYN), and the one it went to.
    client: u16,
    server: u16,
    /// Indexes into the capture's segments.
    segments: Vec<usize>,
}

/// What a row of a connection shows.
#[derive(Debug)]
enum Row {
    /// A call on one end: its number (`capture::call_numbers`), whether it is the client's,
    /// and its label.
    Call {
        number: usize,
        client: bool,
        label: String,
    },
    /// A segment: its index in the capture.
    Segment(usize),
}

impl Row {
    /// Rows sort by call number; a segment sent "after N" comes after call N.
    fn key(&self, segments: &[Segment]) -> (usize, u8) {
        match self {
            Row::Call { number, .. } => (*number, 0),
            Row::Segment(i) => (segments[*i].after, 1),
        }
    }
}

/// Draws the diagram of lesson `number` from its trace and its capture.
pub fn draw(number: &str, trace: &str, capture: &str) -> Result<String, String> {
    let segments = parse_capture(capture)?;
    let mut conns: Vec<Conn> = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        let pos = conns.iter().position(|c| {
            (c.client, c.server) == (s.src, s.dst) || (c.client, c.server) == (s.dst, s.src)
        });
        match pos {
            Some(p) => conns[p].segments.push(i),
            None => conns.push(Conn {
                client: s.src,
                server: s.dst,
                segments: vec![i],
            }),
        }
    }
    let mut rows: Vec<Vec<Row>> = conns.iter().map(|_| Vec::new()).collect();
    for (c, call) in attribute_calls(trace, &conns) {
        rows[c].push(call);
    }
    for (c, conn) in conns.iter().enumerate() {
        rows[c].extend(conn.segments.iter().map(|&i| Row::Segment(i)));
        // Stable: calls keep trace order, segments capture order.
        rows[c].sort_by_key(|r| r.key(&segments));
    }

    let mut body = String::new();
    let mut y = 84;
    for (c, conn) in conns.iter().enumerate() {
        y = draw_connection(&mut body, y, c + 1, conn, &rows[c], &segments);
        y += 24;
    }
    // One arrowhead a colour: `fill="context-stroke"` would need one only, but not every
    // browser knows it yet.
    let markers: String = COLOURS
        .iter()
        .map(|(name, fill)| format!(r#"<marker id="arrow-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{fill}"/></marker>"#))
        .collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" viewBox="0 0 {WIDTH} {y}" font-family="monospace" font-size="11">
<title>Lesson {number}: syscalls and TCP segments</title>
<defs>{markers}</defs>
<rect width="{WIDTH}" height="{y}" fill="white"/>
<text x="20" y="24" font-size="14" font-weight="bold">Lesson {number}: the calls of each socket end, and the segments between them</text>
<text x="20" y="44" fill="#444">left: the end that connected; right: the end that accepted; arrows: what tcpdump saw, in order</text>
<text x="20" y="58" fill="#444"><tspan fill="#2e7d32">SYN</tspan> · <tspan fill="#1565c0">FIN</tspan> · <tspan fill="#c62828">RST</tspan> · data (black, with its length) · <tspan fill="#888">ACK</tspan></text>
"##
    );
    svg += &body;
    svg += "</svg>\n";
    Ok(svg)
}

/// Draws one connection from `y` down; returns where it ends.
fn draw_connection(
    out: &mut String,
    y: usize,
    n: usize,
    conn: &Conn,
    rows: &[Row],
    segments: &[Segment],
) -> usize {
    let _ = writeln!(
        out,
        r#"<g class="connection" data-connection="{} {}">"#,
        conn.client, conn.server
    );
    let _ = writeln!(
        out,
        r#"<text x="20" y="{}" font-size="12" font-weight="bold">connection {n}: 127.0.0.1:{} → 127.0.0.1:{}</text>"#,
        y + 4,
        conn.client,
        conn.server
    );
    let head = y + 14;
    for (x, who, port) in [
        (CLIENT_X, "client", conn.client),
        (SERVER_X, "server", conn.server),
    ] {
        let _ = writeln!(
            out,
            r##"<rect x="{}" y="{head}" width="180" height="22" rx="4" fill="#f3f3f3" stroke="#555"/><text x="{x}" y="{}" text-anchor="middle">{who} 127.0.0.1:{port}</text>"##,
            x - 90,
            head + 15
        );
    }
    let mut row_y = head + 22 + ROW;
    let mut shown_segments = 0;
    let mut shown_rows = 0;
    // Segments and calls skipped since the last row drawn.
    let mut gap = (0, 0);
    for row in rows {
        // Once the connection is full, only what opens, closes or resets it is drawn.
        let full = shown_segments >= MAX_SEGMENTS || shown_rows >= MAX_ROWS;
        match row {
            Row::Segment(i) if full && !segments[*i].flags.contains(['S', 'F', 'R']) => {
                gap.0 += 1;
                continue;
            }
            Row::Call { label, .. }
                if full && !(label.starts_with("close(") || label.starts_with("shutdown(")) =>
            {
                gap.1 += 1;
                continue;
            }
            _ => {}
        }
        if gap != (0, 0) {
            gap_note(out, &mut row_y, gap);
            gap = (0, 0);
        }
        match row {
            Row::Call {
                number,
                client,
                label,
            } => {
                let (x, tx, anchor) = if *client {
                    (CLIENT_X, CLIENT_X - 8, "end")
                } else {
                    (SERVER_X, SERVER_X + 8, "start")
                };
                let _ = writeln!(
                    out,
                    r##"<g class="call" data-call="{number}"><circle cx="{x}" cy="{}" r="3" fill="#555"/><text x="{tx}" y="{}" text-anchor="{anchor}">{}</text></g>"##,
                    row_y - 4,
                    row_y,
                    escape(label)
                );
                shown_rows += 1;
            }
            Row::Segment(i) => {
                let s = &segments[*i];
                let (x1, x2) = if s.src == conn.client {
                    (CLIENT_X, SERVER_X)
                } else {
                    (SERVER_X, CLIENT_X)
                };
                let (name, colour) = colour(s);
                let mut label = s.name();
                if s.len > 0 {
                    let _ = write!(label, ", {} bytes", s.len);
                }
                if is_retransmission(segments, *i) {
                    label += " again (retransmitted)";
                }
                let _ = writeln!(
                    out,
                    r##"<g class="segment" data-segment="{} {} {} {}"><line x1="{x1}" y1="{}" x2="{x2}" y2="{}" stroke="{colour}" stroke-width="1.5" marker-end="url(#arrow-{name})"/><text x="{}" y="{}" text-anchor="middle" fill="{colour}">{}</text></g>"##,
                    s.src,
                    s.dst,
                    s.flags,
                    s.len,
                    row_y - 2,
                    row_y - 2,
                    (CLIENT_X + SERVER_X) / 2,
                    row_y - 5,
                    escape(&label)
                );
                shown_segments += 1;
                shown_rows += 1;
            }
        }
        row_y += ROW;
    }
    if gap != (0, 0) {
        gap_note(out, &mut row_y, gap);
    }
    for x in [CLIENT_X, SERVER_X] {
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#999" stroke-dasharray="4 3"/>"##,
            head + 22,
            row_y - ROW / 2
        );
    }
    out.push_str("</g>\n");
    row_y
}

/// The arrows' colours: what a learner looks for first stands out.
const COLOURS: [(&str, &str); 5] = [
    ("rst", "#c62828"),
    ("syn", "#2e7d32"),
    ("fin", "#1565c0"),
    ("data", "#000"),
    ("ack", "#888"),
];

/// Whether segment `i` repeats an earlier one of the same direction, same sequence numbers,
/// flags and length: the sender's retransmission timer fired before an ACK came. (A bare ACK
/// repeated is a window update or a duplicate ACK, not a retransmission.)
fn is_retransmission(segments: &[Segment], i: usize) -> bool {
    let what = |s: &Segment| {
        s.line
            .split(" after ")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let s = &segments[i];
    let carries = s.len > 0 || s.flags.contains(['S', 'F']);
    carries && segments[..i].iter().any(|e| what(e) == what(s))
}

/// The row that says how many segments and calls were skipped there.
fn gap_note(out: &mut String, row_y: &mut usize, (segments, calls): (usize, usize)) {
    let mut what = Vec::new();
    match segments {
        0 => {}
        1 => what.push("1 segment (data or ACK)".to_string()),
        n => what.push(format!("{n} segments (data, ACK)")),
    }
    match calls {
        0 => {}
        1 => what.push("1 call".to_string()),
        n => what.push(format!("{n} calls")),
    }
    let _ = writeln!(
        out,
        r##"<text class="omitted" data-omitted="{segments}" x="{}" y="{row_y}" text-anchor="middle" font-style="italic" fill="#444">⋮ {} left out here</text>"##,
        (CLIENT_X + SERVER_X) / 2,
        what.join(" and ")
    );
    *row_y += ROW;
}

/// A segment's colour, by its most telling flag: RST, SYN, FIN, data, then a bare ACK.
fn colour(s: &Segment) -> (&'static str, &'static str) {
    let i = if s.flags.contains('R') {
        0
    } else if s.flags.contains('S') {
        1
    } else if s.flags.contains('F') {
        2
    } else if s.len > 0 {
        3
    } else {
        4
    };
    COLOURS[i]
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_calls_and_segments_of_a_connection() {
        let trace = "\
listen(3<TCP:[127.0.0.1:40001]>, 128) = 0
connect(4<TCP:[10002]>, {sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = 0
accept4(3<TCP:[127.0.0.1:40001]>, {}, [16], SOCK_CLOEXEC) = 5<TCP:[127.0.0.1:40001->127.0.0.1:40002]>
close(4<TCP:[127.0.0.1:40002->127.0.0.1:40001]>) = 0
";
        let capture = "\
# a comment
127.0.0.1:40002 > 127.0.0.1:40001 [S] seq 0 len 0 after 2
127.0.0.1:40001 > 127.0.0.1:40002 [S.] seq 0 ack 1 len 0 after 2
127.0.0.1:40002 > 127.0.0.1:40001 [.] ack 1 len 0 after 2
127.0.0.1:40002 > 127.0.0.1:40001 [F.] seq 1 ack 1 len 0 after 4
";
        let svg = draw("99", trace, capture).unwrap();
        assert_eq!(svg.matches(r#"class="segment""#).count(), 4);
        assert!(svg.contains(r#"data-segment="40002 40001 S 0""#));
        // listen, connect, accept4 and close: all four on this connection.
        assert_eq!(svg.matches(r#"class="call""#).count(), 4);
        let connect = svg.find("connect(4").unwrap();
        let syn = svg.find(r#"data-segment="40002 40001 S 0""#).unwrap();
        let accept = svg.find("accept4(3").unwrap();
        assert!(
            connect < syn && syn < accept,
            "the SYN follows connect, accept follows it"
        );
    }
}
