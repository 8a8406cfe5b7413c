//! Reading the kernel's table of TCP sockets, `/proc/net/tcp` (and `tcp6`): the same source
//! `ss -tn` and `netstat` read. Lessons use it to show states no syscall returns: a socket in
//! LISTEN with its accept queue, a connection waiting in TIME_WAIT.
//!
//! This reads files, not sockets, so it adds no lines to a socket trace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One row of `/proc/net/tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRow {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// State name as `ss` prints it: `LISTEN`, `ESTAB`, `TIME-WAIT`, ...
    pub state: &'static str,
    /// For a listener: connections waiting in the accept queue. Otherwise unread bytes.
    pub rx_queue: u32,
    /// For a listener: the backlog. Otherwise bytes sent and not yet acknowledged.
    pub tx_queue: u32,
}

fn state_name(code: u8) -> &'static str {
    match code {
        0x01 => "ESTAB",
        0x02 => "SYN-SENT",
        0x03 => "SYN-RECV",
        0x04 => "FIN-WAIT-1",
        0x05 => "FIN-WAIT-2",
        0x06 => "TIME-WAIT",
        0x07 => "CLOSE",
        0x08 => "CLOSE-WAIT",
        0x09 => "LAST-ACK",
        0x0A => "LISTEN",
        0x0B => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// Parses `0100007F:1B58` (IPv4) or the 32-hex-digit IPv6 form. The address is stored as
/// the kernel's in-memory words printed in host order, so each 32-bit word is swapped.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => {
            let word = u32::from_str_radix(ip, 16).ok()?;
            IpAddr::V4(Ipv4Addr::from(word.to_ne_bytes()))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let word = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok()?;
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn parse_line(line: &str) -> Option<TcpRow> {
    let mut cols = line.split_whitespace();
    cols.next()?; // "sl"
    let local = parse_addr(cols.next()?)?;
    let remote = parse_addr(cols.next()?)?;
    let state = state_name(u8::from_str_radix(cols.next()?, 16).ok()?);
    let (tx, rx) = cols.next()?.split_once(':')?;
    Some(TcpRow {
        local,
        remote,
        state,
        tx_queue: u32::from_str_radix(tx, 16).ok()?,
        rx_queue: u32::from_str_radix(rx, 16).ok()?,
    })
}

/// Every TCP socket of this network namespace (IPv4 and IPv6). Missing files give no rows.
pub fn tcp_rows() -> Vec<TcpRow> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(parse_line)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The rows whose local address is exactly `addr` (the kernel may show a row twice when the
/// table changes while it is read; duplicates are dropped).
pub fn rows_for(addr: SocketAddr) -> Vec<TcpRow> {
    let mut rows: Vec<TcpRow> = tcp_rows().into_iter().filter(|r| r.local == addr).collect();
    let mut seen = Vec::new();
    rows.retain(|r| {
        let fresh = !seen.contains(r);
        if fresh {
            seen.push(r.clone());
        }
        fresh
    });
    rows
}

impl std::fmt::Display for TcpRow {
    /// Like a line of `ss -tan`: state, Recv-Q, Send-Q, local, peer.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remote = if self.remote.port() == 0 {
            format!("{}:*", self.remote.ip())
        } else {
            self.remote.to_string()
        };
        write!(
            f,
            "{:<10} {:>6} {:>6}  {:<21} {}",
            self.state, self.rx_queue, self.tx_queue, self.local, remote
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listening_row() {
        let line = "   0: 0100007F:1B58 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0";
        let row = parse_line(line).unwrap();
        assert_eq!(row.local, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(row.state, "LISTEN");
        assert_eq!(row.rx_queue, 2);
    }

    #[test]
    fn parses_ipv6_loopback() {
        let a = parse_addr("00000000000000000000000001000000:1B58").unwrap();
        assert_eq!(a, "[::1]:7000".parse().unwrap());
    }
}
