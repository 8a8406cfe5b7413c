//! A `redis-server` of one's own: a free port on 127.0.0.1, a temporary directory, no
//! persistence (or its append-only file, to survive a restart), stopped by its pid. Lesson
//! 24 starts one for its demonstration; the tests start one each.

use std::error::Error;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::blocking;
use crate::sys::{self, PollFd, PollFlags};
use crate::wire::resp::{encode_command, Decoder, Limits, Reply};

pub struct RedisServer {
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
    appendonly: bool,
}

/// Whether `redis-server` can be run here.
pub fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

impl RedisServer {
    /// Starts one and waits until it answers `PING`. With `appendonly`, what was written
    /// survives [`stop`](RedisServer::stop) and [`restart`](RedisServer::restart).
    pub fn start(appendonly: bool) -> Result<RedisServer, Box<dyn Error>> {
        // Redis takes a port, not port 0: ask the kernel for a free one, release it, and
        // try again if someone else took it in between.
        let mut last = String::new();
        for attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let dir = std::env::temp_dir().join(format!(
                "socklab-redis-{}-{port}-{attempt}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut server = RedisServer {
                child: spawn(addr, &dir, appendonly)?,
                addr,
                dir,
                appendonly,
            };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(format!("redis-server did not start in 5 attempts: {last}").into())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the server answers PING, or has exited.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("redis-server exited: {status}"));
            }
            let pong = ask(self.addr, &["PING"], Duration::from_secs(2));
            if matches!(pong, Ok(Reply::Simple(s)) if s == "PONG") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("redis-server did not answer PING in 10 s".into())
    }

    /// One command, as `redis-cli` sends it: its reply.
    pub fn ask(&self, args: &[&str]) -> Result<Reply, Box<dyn Error>> {
        ask(self.addr, args, Duration::from_secs(10))
    }

    /// `redis://127.0.0.1:PORT`, what `--redis` takes.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Waits up to `limit` until `n` connections are blocked in an `XREAD`: each cluster
    /// node's reader. A node reads the stream from its end, so from then on whatever one
    /// node writes reaches the others.
    pub fn wait_readers(&self, n: usize, limit: Duration) -> Result<(), Box<dyn Error>> {
        let deadline = Instant::now() + limit;
        loop {
            let list = match self.ask(&["CLIENT", "LIST"])? {
                Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
                other => return Err(format!("CLIENT LIST answered {other:?}").into()),
            };
            let readers = list.matches("cmd=xread").count();
            if readers >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(
                    format!("{readers} of {n} nodes read the stream after {limit:?}").into(),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server gracefully (SIGTERM, by its pid: it finishes its append-only file)
    /// and reaps it.
    pub fn stop(&mut self) {
        let _ = sys::signal::terminate(self.child.id());
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and directory (after [`stop`](RedisServer::stop)).
    pub fn restart(&mut self) -> Result<(), Box<dyn Error>> {
        self.child = spawn(self.addr, &self.dir, self.appendonly)?;
        Ok(self.wait_ready()?)
    }

    /// Kills the server now (SIGKILL, by its pid) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(addr: SocketAddr, dir: &Path, appendonly: bool) -> std::io::Result<Child> {
    let aof = if appendonly { "yes" } else { "no" };
    Command::new("redis-server")
        .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", aof, "--loglevel", "warning"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// One command to the Redis at `addr` over a blocking connection, and its reply within
/// `wait` (what `redis-cli` does).
pub fn ask(addr: SocketAddr, args: &[&str], wait: Duration) -> Result<Reply, Box<dyn Error>> {
    let fd = blocking::connect_tcp(addr)?;
    let mut bytes = Vec::new();
    encode_command(args, &mut bytes);
    blocking::write_all(&fd, &bytes)?;
    let decoder = Decoder::new(Limits::default());
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some((reply, _)) = decoder.decode(&got)? {
            return Ok(reply);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        if left.is_zero() || sys::poll(&mut fds, ms)? == 0 {
            return Err("redis did not answer in time".into());
        }
        let n = sys::read(&fd, &mut buf)?;
        if n == 0 {
            return Err("redis closed the connection".into());
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// A reply as `redis-cli` prints it: numbered lines, nested arrays indented.
pub fn cli_text(reply: &Reply) -> String {
    let mut out = String::new();
    write_cli(reply, 0, &mut out);
    out
}

fn write_cli(reply: &Reply, indent: usize, out: &mut String) {
    match reply {
        Reply::Simple(s) => out.push_str(s),
        Reply::Error(e) => out.push_str(&format!("(error) {e}")),
        Reply::Integer(n) => out.push_str(&format!("(integer) {n}")),
        Reply::Bulk(b) => out.push_str(&format!("{:?}", String::from_utf8_lossy(b))),
        Reply::Nil => out.push_str("(nil)"),
        Reply::Array(items) if items.is_empty() => out.push_str("(empty array)"),
        Reply::Array(items) => {
            let width = items.len().to_string().len();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                }
                let label = format!("{:>width$}) ", i + 1);
                out.push_str(&label);
                write_cli(item, indent + label.len(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_print_as_redis_cli_prints_them() {
        let bulk = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
        let entry = Reply::Array(vec![Reply::Array(vec![
            bulk("1-0"),
            Reply::Array(vec![bulk("uid"), bulk("a\"b")]),
        ])]);
        assert_eq!(
            cli_text(&entry),
            "1) 1) \"1-0\"\n   2) 1) \"uid\"\n      2) \"a\\\"b\""
        );
        assert_eq!(cli_text(&Reply::Integer(2)), "(integer) 2");
    }
}
