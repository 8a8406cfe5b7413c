//! Which socket end each call of a trace belongs to, and the short label it is drawn with.
//!
//! strace's `-yy` names a connected socket by its two ports, which is the connection; the
//! rest (a socket not connected yet, one reset before it was named, the listening socket) is
//! worked out here, as the diagram's module documentation says.

use std::collections::HashMap;

use super::{Conn, Row};
use crate::capture::call_numbers;
use crate::strace::{parse_line, strip_decorations};

/// Longest call label, in characters (about 270 pixels of 11-pixel monospace).
const LABEL: usize = 40;

/// The two ports of a connected socket's `-yy` decoration: (local, remote).
fn ports_of(decorated: &str) -> Option<(u16, u16)> {
    let inside = decorated.split_once("<TCP:[")?.1;
    let (local, rest) = inside.split_once("->")?;
    let remote = rest.split(']').next()?;
    let port = |s: &str| s.rsplit_once(':')?.1.parse().ok();
    Some((port(local)?, port(remote)?))
}

/// The port of a listening socket's decoration, `3<TCP:[127.0.0.1:40001]>`.
fn listening_port(decorated: &str) -> Option<u16> {
    let inside = decorated.split_once("<TCP:[127.0.0.1:")?.1;
    inside.strip_suffix("]>")?.parse().ok()
}

/// The descriptor number of a decorated argument.
fn fd_of(decorated: &str) -> Option<&str> {
    let fd = decorated.split_once('<')?.0;
    (!fd.is_empty() && fd.bytes().all(|b| b.is_ascii_digit())).then_some(fd)
}

/// Gives each call of the trace to a connection and an end: `(connection, row)` pairs.
pub(super) fn attribute_calls(trace: &str, conns: &[Conn]) -> Vec<(usize, Row)> {
    let lines: Vec<&str> = trace.lines().collect();
    let numbers = call_numbers(trace);
    let conn_of = |a: u16, b: u16| {
        conns
            .iter()
            .position(|c| (c.client, c.server) == (a, b) || (c.client, c.server) == (b, a))
    };
    // The ports of the sockets that calls name by their own ports (the local side of a
    // decoration). A client socket the trace only ever names by inode is one whose connect
    // failed, or that was reset before it was named (lesson 07): the capture's connections
    // with such a client port wait, in order, for a `connect` to their server's port.
    let named: Vec<u16> = lines
        .iter()
        .filter_map(|l| parse_line(l))
        .filter_map(|c| ports_of(&c.first_arg))
        .map(|(local, _)| local)
        .collect();
    let mut unnamed: Vec<usize> = (0..conns.len())
        .filter(|&c| !named.contains(&conns[c].client))
        .collect();
    // An unconnected socket's decoration (`4<TCP:[10002]>`) -> the end it turned out to be.
    let mut known: HashMap<String, (usize, bool)> = HashMap::new();
    let mut out = Vec::new();
    let mut previous: Option<(usize, bool)> = None;
    for (i, text) in lines.iter().enumerate() {
        let number = numbers[i];
        let Some(call) = parse_line(text) else {
            // "... the line above, N more times": on the same end as the line above.
            if let (Some((c, client)), true) = (previous, text.starts_with("...")) {
                out.push((
                    c,
                    Row::Call {
                        number,
                        client,
                        label: "… and again, several times".into(),
                    },
                ));
            }
            continue;
        };
        previous = None;
        if call.name.starts_with("epoll") || call.name == "poll" || call.name == "socket" {
            continue;
        }
        let label = label(&call.text, &call.result);
        let decorated = if call.name.starts_with("accept") {
            &call.result
        } else {
            &call.first_arg
        };
        let end = if let Some((local, remote)) = ports_of(decorated) {
            conn_of(local, remote).map(|c| (c, conns[c].client == local))
        } else if let Some(port) = listening_port(decorated) {
            if ["listen", "close", "shutdown"].contains(&call.name.as_str()) {
                for (c, conn) in conns.iter().enumerate() {
                    if conn.server == port {
                        out.push((
                            c,
                            Row::Call {
                                number,
                                client: false,
                                label: label.clone(),
                            },
                        ));
                    }
                }
            }
            None
        } else if let Some(end) = known.get(decorated.as_str()) {
            Some(*end)
        } else if let Some(end) = look_ahead(&lines[i + 1..], decorated, conns) {
            known.insert(decorated.clone(), end);
            Some(end)
        } else if call.name == "connect" {
            let target = call
                .text
                .split_once("htons(")
                .and_then(|(_, r)| r.split(')').next())
                .and_then(|p| p.parse::<u16>().ok());
            let pos = unnamed
                .iter()
                .position(|&c| Some(conns[c].server) == target);
            pos.map(|p| {
                let end = (unnamed.remove(p), true);
                known.insert(decorated.clone(), end);
                end
            })
        } else {
            None
        };
        if let Some((c, client)) = end {
            out.push((
                c,
                Row::Call {
                    number,
                    client,
                    label,
                },
            ));
            previous = Some((c, client));
        }
    }
    out
}

/// The end an unconnected descriptor becomes: the next line naming the same descriptor with
/// two ports, unless the descriptor is closed or made anew first.
fn look_ahead(lines: &[&str], decorated: &str, conns: &[Conn]) -> Option<(usize, bool)> {
    let fd = fd_of(decorated)?;
    for text in lines {
        let Some(call) = parse_line(text) else {
            continue;
        };
        let arg = &call.first_arg;
        if fd_of(arg) == Some(fd) {
            if let Some((local, remote)) = ports_of(arg) {
                return conns
                    .iter()
                    .position(|c| {
                        (c.client, c.server) == (local, remote)
                            || (c.client, c.server) == (remote, local)
                    })
                    .map(|c| (c, conns[c].client == local));
            }
            if call.name == "close" {
                return None;
            }
        }
        if call.name == "socket" && fd_of(&call.result) == Some(fd) {
            return None;
        }
    }
    None
}

/// A short label for a call: decorations, strings, structures and errno texts left out.
fn label(text: &str, result: &str) -> String {
    let args = strip_decorations(text);
    let mut short = String::new();
    let mut depth = 0;
    let mut in_str = false;
    let mut escaped = false;
    for ch in args.chars() {
        if in_str {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' if depth == 0 => {
                in_str = true;
                short.push('…');
            }
            '{' | '[' => {
                if depth == 0 {
                    short.push(ch);
                    short.push('…');
                }
                depth += 1;
            }
            '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    short.push(ch);
                }
            }
            _ if depth == 0 => short.push(ch),
            _ => {}
        }
    }
    // strace writes `"abc"...` for a string it cut.
    let short = short.replace("……", "…").replace("…...", "…");
    let result = strip_decorations(result);
    let result = result.split(" (").next().unwrap_or(&result);
    // Too long: the arguments are cut, never the result, which is what the lesson is about.
    let room = LABEL.saturating_sub(result.chars().count() + 3);
    let call = if short.chars().count() > room {
        short
            .chars()
            .take(room.saturating_sub(2))
            .collect::<String>()
            + "…)"
    } else {
        short
    };
    format!("{call} = {result}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short() {
        assert_eq!(
            label(
                r#"write(4<TCP:[127.0.0.1:2->127.0.0.1:1]>, "0123"..., 10240)"#,
                "10240"
            ),
            "write(4, …, 10240) = 10240"
        );
        assert_eq!(
            label(
                "read(4<TCP:[10002]>, 0x7ffc0000, 64)",
                "-1 ECONNRESET (Connection reset by peer)"
            ),
            "read(4, 0x7ffc0000, 64) = -1 ECONNRESET"
        );
        assert_eq!(
            label(
                r#"accept4(3<TCP:[127.0.0.1:1]>, {sa_family=AF_INET, sin_port=htons(2)}, [128 => 16], SOCK_CLOEXEC)"#,
                "5<TCP:[127.0.0.1:1->127.0.0.1:2]>"
            ),
            "accept4(3, {…}, […], SOCK_CLOEXEC) = 5"
        );
    }
}
