//! The Redis of the cluster figure (6): a `redis-server` of the benchmark's own, on a free
//! port of 127.0.0.1, pinned to a CPU like every other child, with nothing written to disk
//! (`--save ""`, no append-only file), killed by its pid when dropped.
//!
//! A fresh one for every cluster measured, so that each starts from an empty stream.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::Proc;
use crate::placement::Placement;
use crate::Res;

/// What the report says when there is no `redis-server` to run.
pub const MISSING: &str = "skipped: redis-server not found (apt-get install redis-server)";

/// Whether `redis-server` can be run here.
pub fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The `redis-server --version` line, for the report.
pub fn version() -> Option<String> {
    let out = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "Redis server v=7.0.15 sha=... malloc=jemalloc-5.3.0 bits=64 build=..."
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .map(str::to_string)
}

pub struct Redis {
    pub addr: SocketAddr,
    proc: Proc,
    dir: PathBuf,
}

impl Redis {
    /// Starts one on `cpu`, its output into `logs/NAME.log`; returns once it answers PING.
    pub fn start(placement: &Placement, logs: &Path, name: &str, cpu: usize) -> Res<Redis> {
        // Redis takes a port, not port 0: ask the kernel for a free one, release it, and try
        // again if someone else took it in between.
        let mut last = String::new();
        for attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let dir = std::env::temp_dir()
                .join(format!("socklab-bench-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                // Its log on stderr, which goes to the log file.
                "--logfile",
                "/dev/stderr",
                "--loglevel",
                "warning",
                "--dir",
            ]
            .map(String::from)
            .into_iter()
            .chain([dir.display().to_string()])
            .collect();
            let proc = Proc::spawn(
                placement,
                logs,
                &format!("{name}-{attempt}"),
                cpu,
                Path::new("redis-server"),
                &args,
                Path::new("."),
            )?;
            let redis = Redis { addr, proc, dir };
            match redis.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return Ok(redis),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("redis-server did not start in 3 attempts: {last}").into())
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// What `--redis` takes: `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    fn wait_ready(&self, limit: Duration) -> Res<()> {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.command(&["PING"]) {
                Ok(reply) if reply == "+PONG\r\n" => return Ok(()),
                Ok(reply) => last = reply,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("no answer to PING within {} s ({last})", limit.as_secs()).into())
    }

    /// Waits until `n` connections are blocked in an `XREAD`: every node of the cluster is
    /// reading the stream, so whatever one publishes from now on reaches the others (a node
    /// starts reading at the stream's end, `$`).
    pub fn wait_readers(&self, n: usize, limit: Duration) -> Res<()> {
        let deadline = Instant::now() + limit;
        loop {
            let list = self.command(&["CLIENT", "LIST"])?;
            let readers = list.matches("cmd=xread").count();
            if readers >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{readers} of {n} cluster nodes were reading the stream after {} s",
                    limit.as_secs()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The CPU time Redis has used so far (`INFO cpu`: `used_cpu_sys` and `used_cpu_user`,
    /// from its own `getrusage`, to the microsecond, where `/proc/PID/stat` counts in ticks
    /// of 10 ms: a few thousand `XADD`s take less than one).
    pub fn cpu(&self) -> Res<Duration> {
        let info = self.command(&["INFO", "cpu"])?;
        let field = |name: &str| -> Res<f64> {
            let line = info
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .ok_or_else(|| format!("no {name} in INFO cpu"))?;
            Ok(line.trim().parse::<f64>()?)
        };
        let seconds = field("used_cpu_sys:")? + field("used_cpu_user:")?;
        Ok(Duration::from_secs_f64(seconds.max(0.0)))
    }

    /// One command on a connection of its own, as `redis-cli` would send it; the reply
    /// whole: a status line, or a bulk string with its header.
    fn command(&self, args: &[&str]) -> Res<String> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut cmd = format!("*{}\r\n", args.len());
        for a in args {
            cmd += &format!("${}\r\n{a}\r\n", a.len());
        }
        s.write_all(cmd.as_bytes())?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        // Bounded by the read timeout, and by a reply's size: CLIENT LIST of a few
        // connections is a few KiB.
        for _ in 0..1024 {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if whole(&reply) {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }
}

/// Whether `reply` is a whole RESP reply of the kinds [`Redis::command`] gets: a line
/// (`+PONG`, `-ERR ...`), or `$LEN` and LEN bytes.
fn whole(reply: &[u8]) -> bool {
    let Some(eol) = reply.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    if reply[0] != b'$' {
        return true;
    }
    let len: i64 = std::str::from_utf8(&reply[1..eol])
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    len < 0 || reply.len() >= eol + 2 + len as usize + 2
}

impl Drop for Redis {
    fn drop(&mut self) {
        // The process is killed by its pid when `proc` is dropped, right after; with nothing
        // to save, it writes nothing into its directory meanwhile.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_whole_once_its_bytes_are_there() {
        assert!(whole(b"+PONG\r\n"));
        assert!(!whole(b"+PON"));
        assert!(!whole(b"$10\r\nid=1 "));
        assert!(whole(b"$10\r\nid=1 addr\n\r\n"));
        assert!(whole(b"$-1\r\n"));
    }
}
