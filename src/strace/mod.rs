//! Reading real `strace` output, to keep the self-trace and the book honest.
//!
//! `make trace N=04` records a lesson under the real strace and stores the lines in
//! `docs/src/traces/04.txt`; the tests compare the self-trace with that file and with a live
//! strace run. Both need the same few steps: split strace's lines into calls, keep the calls
//! on sockets, and replace what changes from run to run (ports, inode numbers, pointers, pids)
//! with stable stand-ins.

use std::collections::HashMap;

/// The calls in strace's `%network` class that socklab makes.
pub const NETWORK_CALLS: &[&str] = &[
    "socket",
    "bind",
    "listen",
    "accept",
    "accept4",
    "connect",
    "getsockname",
    "getpeername",
    "setsockopt",
    "getsockopt",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "shutdown",
];

/// The strace command line `make trace` uses, before the program and its arguments.
pub fn record_command(out_file: &str) -> Vec<String> {
    [
        "strace",
        "-f",
        "-qq",
        "-yy",
        "-e",
        "trace=%network,read,write,close,fcntl,poll,/epoll_.*,execve",
        "-e",
        "signal=none",
        "-o",
        out_file,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One finished call from a trace line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The syscall's name: `accept4`, `read`, ...
    pub name: String,
    /// The first argument as printed (with `-yy` decorations if any): `3<TCP:[...]>`.
    pub first_arg: String,
    /// Everything from the name to the closing parenthesis, padding removed.
    pub text: String,
    /// What follows `= `: `0`, `5`, `-1 EAGAIN (Resource temporarily unavailable)`.
    pub result: String,
}

impl Call {
    /// The call as `name(fd) = result`, with `-yy` decorations stripped: what the tests
    /// compare between a recorded trace and the self-trace.
    pub fn key(&self) -> String {
        let mut args = strip_decorations(&self.first_arg);
        if self.name == "epoll_ctl" {
            // Which operation on which descriptor is what matters.
            let all = strip_decorations(&self.text);
            let parts: Vec<&str> = all.splitn(4, ", ").collect();
            if parts.len() >= 3 {
                args = format!("{args}, {}, {}", parts[1], parts[2]);
            }
        }
        format!(
            "{}({args}) = {}",
            self.name,
            strip_decorations(&self.result)
        )
    }

    /// For `epoll_ctl`, the descriptor it changes (its third argument), decorations included.
    fn epoll_target(&self) -> Option<&str> {
        if self.name != "epoll_ctl" {
            return None;
        }
        let args = &self.text[self.name.len() + 1..];
        let rest = args.get(self.first_arg.len()..)?.strip_prefix(", ")?;
        let rest = rest.split_once(", ")?.1;
        Some(first_argument(rest))
    }

    /// Whether the call is on a socket, or a network call (which always is).
    pub fn on_socket(&self) -> bool {
        let is_socket = |arg: &str| SOCKET_TAGS.iter().any(|tag| arg.contains(tag));
        NETWORK_CALLS.contains(&self.name.as_str())
            || is_socket(&self.first_arg)
            || self.epoll_target().is_some_and(is_socket)
            || self.name.starts_with("epoll_wait")
            || self.name == "epoll_pwait"
            // A demo that runs several event loops in one thread sleeps in one `poll` over
            // their epoll descriptors (`event_loop::turn_together`).
            || (self.name == "poll" && self.first_arg.contains("<anon_inode:[eventpoll]>"))
    }

    /// The line with single spaces around `=`.
    pub fn line(&self) -> String {
        format!("{} = {}", self.text, self.result)
    }
}

/// Drops the lines of every process that ran `program` (its `execve` succeeded): lesson 24
/// starts a `redis-server` of its own, whose calls are Redis's business, not the lesson's.
/// (The processes it starts stay: they are the lesson's own binary again.)
pub fn without_program(raw: &str, program: &str) -> String {
    let pid_of = |line: &str| {
        line.trim_start()
            .split_once(' ')
            .filter(|(p, _)| p.bytes().all(|b| b.is_ascii_digit()))
            .map(|(p, rest)| {
                // With `-ttt`, a time comes first: `PID  1765000000.123456 execve(...`.
                let rest = rest.trim_start();
                let rest = match rest.split_once(' ') {
                    Some((t, call)) if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') => call,
                    _ => rest,
                };
                (p.to_string(), rest.to_string())
            })
    };
    let wanted = format!("/{program}\"");
    let dropped: std::collections::HashSet<String> = raw
        .lines()
        .filter_map(pid_of)
        .filter(|(_, rest)| {
            rest.starts_with("execve(") && rest.contains(&wanted) && rest.ends_with("= 0")
        })
        .map(|(pid, _)| pid)
        .collect();
    let mut out = String::with_capacity(raw.len());
    for line in raw.lines() {
        if !pid_of(line).is_some_and(|(pid, _)| dropped.contains(&pid)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Joins each call that strace split in two while another process or thread ran
/// (`PID call(args <unfinished ...>`, later `PID <... call resumed>rest`) into one line, at
/// the place and time where it finished, so that the calls of several processes (lesson 23)
/// keep their results. A resumed line without its start is left as it is.
pub fn join_resumed(raw: &str) -> String {
    let mut started: HashMap<&str, &str> = HashMap::new();
    let mut out = String::with_capacity(raw.len());
    for line in raw.lines() {
        let pid = match line.trim_start().split_once(' ') {
            Some((p, _)) if p.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => "",
        };
        if let Some(head) = line.strip_suffix(" <unfinished ...>") {
            started.insert(pid, head);
            continue;
        }
        let resumed = line.find("<... ").and_then(|at| {
            let end = at + line[at..].find(" resumed>")?;
            let name = &line[at + "<... ".len()..end];
            let head = started.remove(pid)?;
            let call = head.find(&format!("{name}("))?;
            Some((at, &head[call..], &line[end + " resumed>".len()..]))
        });
        match resumed {
            Some((at, call, rest)) => {
                out.push_str(&line[..at]);
                out.push_str(call);
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Parses one line of strace output (with or without a leading pid). Lines that are not a
/// finished call (signals, `<unfinished ...>`, `+++ exited`) give `None`.
pub fn parse_line(line: &str) -> Option<Call> {
    let mut rest = line.trim_end();
    // `-f` with `-o` prefixes "1234  "; on a terminal it is "[pid  1234] ".
    if let Some(r) = rest.strip_prefix("[pid") {
        rest = r.split_once(']')?.1.trim_start();
    } else if let Some((pid, r)) = rest.split_once(' ') {
        if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
            rest = r.trim_start();
        }
    }
    if rest.contains("<unfinished") || rest.contains("resumed>") {
        return None;
    }
    let open = rest.find('(')?;
    let name = &rest[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let eq = find_result_sep(rest)?;
    let text = rest[..eq].trim_end().to_string();
    let result = rest[eq + 1..].trim().to_string();
    let args = &text[open + 1..];
    let first_arg = first_argument(args).to_string();
    Some(Call {
        name: name.to_string(),
        first_arg,
        text,
        result,
    })
}

/// The position of the `=` before the result: the last ` = ` outside quotes and brackets.
fn find_result_sep(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut escaped = false;
    let mut last = None;
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => depth -= 1,
            b'=' if depth == 0 && i > 0 && bytes[i - 1] == b' ' => last = Some(i),
            _ => {}
        }
    }
    last
}

/// The first argument of an argument list, decorations included.
fn first_argument(args: &str) -> &str {
    let bytes = args.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' if i > 0 && bytes[i - 1].is_ascii_digit() => {
                if let Some(len) = decoration_len(&args[i..]) {
                    i += len;
                    continue;
                }
            }
            b'[' | b'{' | b'(' => depth += 1,
            b']' | b'}' => depth -= 1,
            b')' | b',' if depth == 0 => return &args[..i],
            b')' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    args
}

/// How `-yy` starts the decoration of a socket descriptor.
const SOCKET_TAGS: [&str; 5] = ["<TCP", "<UDP", "<UNIX", "<socket:", "<NETLINK"];

/// The length of a `-yy` decoration at the start of `rest` (which starts with `<`): a socket's
/// ends with `]>` (its text may hold `->`), a file's with `>`.
fn decoration_len(rest: &str) -> Option<usize> {
    let socket = SOCKET_TAGS.iter().any(|tag| rest.starts_with(tag));
    if socket {
        rest.find("]>").map(|e| e + 2)
    } else {
        rest.find('>').map(|e| e + 1)
    }
}

/// Removes `-yy` decorations: `4<TCP:[127.0.0.1:1->127.0.0.1:2]>` becomes `4`.
pub fn strip_decorations(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest.starts_with('<') && out.ends_with(|c: char| c.is_ascii_digit()) {
            if let Some(len) = decoration_len(rest) {
                i += len;
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Replaces what differs between runs with stable stand-ins, consistently across every text
/// given to the same `Normalizer`: ports become 40001, 40002, ... in order of first
/// appearance (port 0 stays 0), socket inode numbers 10001, ..., and pointers `0x7ffc0000`.
#[derive(Debug, Default)]
pub struct Normalizer {
    ports: HashMap<String, String>,
    inodes: HashMap<String, String>,
}

impl Normalizer {
    pub fn new() -> Normalizer {
        Normalizer::default()
    }

    pub fn apply(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        let b = text.as_bytes();
        while i < b.len() {
            let rest = &text[i..];
            // Ports: after "htons(", "127.0.0.1:", "]:" and "0.0.0.0:".
            if let Some(prefix) = ["htons(", "127.0.0.1:", "]:", "0.0.0.0:"]
                .iter()
                .find(|p| rest.starts_with(**p))
            {
                let digits = leading_digits(&rest[prefix.len()..]);
                out.push_str(prefix);
                let after = &rest[prefix.len() + digits.len()..];
                if after.starts_with("\"...") {
                    // strace cut the string inside the port: the digits left are not a port.
                    i += prefix.len() + digits.len();
                    continue;
                }
                if !digits.is_empty() {
                    let fresh = 40001 + self.ports.len();
                    let mapped = if digits == "0" {
                        "0".to_string()
                    } else {
                        self.ports
                            .entry(digits.to_string())
                            .or_insert_with(|| fresh.to_string())
                            .clone()
                    };
                    out.push_str(&mapped);
                }
                i += prefix.len() + digits.len();
                continue;
            }
            // Inodes: "socket:[N]" and "TCP:[N]".
            if let Some(prefix) = ["socket:[", "TCP:[", "TCPv6:["]
                .iter()
                .find(|p| rest.starts_with(**p))
            {
                let digits = leading_digits(&rest[prefix.len()..]);
                out.push_str(prefix);
                // Only "[digits]" is an inode; "[127.0.0.1:..." is an address.
                let closed = rest[prefix.len() + digits.len()..].starts_with(']');
                if !digits.is_empty() && closed {
                    let fresh = 10001 + self.inodes.len();
                    let mapped = self
                        .inodes
                        .entry(digits.to_string())
                        .or_insert_with(|| fresh.to_string());
                    out.push_str(mapped);
                    i += prefix.len() + digits.len();
                } else {
                    i += prefix.len();
                }
                continue;
            }
            // Pointers: "0x" and at least 8 hex digits.
            if let Some(digits) = rest.strip_prefix("0x") {
                let hex = digits.bytes().take_while(u8::is_ascii_hexdigit).count();
                if hex >= 8 {
                    out.push_str("0x7ffc0000");
                    i += 2 + hex;
                    continue;
                }
            }
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8().max(1);
        }
        out
    }
}

/// In every line that says it "varies", replaces each run of digits with `N`: a lesson marks
/// numbers that change from run to run (counts, timings) that way, so the recorded output can
/// still be compared.
pub fn mask_varying(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.contains("varies") {
            let mut in_digits = false;
            for c in line.chars() {
                if c.is_ascii_digit() {
                    if !in_digits {
                        out.push('N');
                    }
                    in_digits = true;
                } else {
                    in_digits = false;
                    out.push(c);
                }
            }
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Folds runs of identical lines into the first one and a note of how many followed, so a
/// busy loop's thousand EAGAINs do not bury the rest of a recorded trace.
pub fn fold_repeats(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let mut j = i + 1;
        while j < lines.len() && lines[j] == lines[i] {
            j += 1;
        }
        out.push(lines[i].clone());
        if j - i > 1 {
            out.push(format!(
                "... the line above, {} more times (varies)",
                j - i - 1
            ));
        }
        i = j;
    }
    out
}

fn leading_digits(s: &str) -> &str {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    &s[..n]
}

/// The calls on sockets from strace output, in order, as normalised lines.
pub fn socket_lines(strace_output: &str, norm: &mut Normalizer) -> Vec<String> {
    strace_output
        .lines()
        .filter_map(parse_line)
        .filter(Call::on_socket)
        .map(|c| norm.apply(&c.line()))
        .collect()
}

#[cfg(test)]
mod tests;
