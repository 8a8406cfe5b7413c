//! A `redis-server` of the test's own: a free port on 127.0.0.1, a temporary directory, no
//! persistence (or its append-only file, for a test that restarts it), stopped by its pid
//! (through its `Child`) when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{skip_or_require, Reaper};

/// The variable that turns a missing `redis-server` into a failure (`.ci/run` sets it).
pub const REQUIRE_REDIS: &str = "SOCKLAB_REQUIRE_REDIS";

pub struct RedisServer {
    pub addr: SocketAddr,
    child: Reaper,
    dir: PathBuf,
    appendonly: bool,
}

impl RedisServer {
    /// Starts one, or returns `None` after printing `SKIPPED` when `redis-server` is not
    /// installed (a failure instead under `SOCKLAB_REQUIRE_REDIS=1`).
    pub fn start(test: &str) -> Option<RedisServer> {
        RedisServer::start_with(test, false)
    }

    /// [`start`](RedisServer::start) with `--appendonly yes`: what was written survives
    /// [`stop`](RedisServer::stop) and [`restart`](RedisServer::restart).
    pub fn start_persistent(test: &str) -> Option<RedisServer> {
        RedisServer::start_with(test, true)
    }

    fn start_with(test: &str, appendonly: bool) -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            skip_or_require(
                REQUIRE_REDIS,
                test,
                "redis-server is not installed",
                "apt-get install redis-server",
            );
            return None;
        }
        // Redis takes a port, not port 0: ask the kernel for a free one, release it, and
        // try again if someone else took it in between.
        let mut last = String::new();
        for attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir = std::env::temp_dir().join(format!(
                "socklab-redis-{}-{port}-{attempt}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut server = RedisServer {
                child: spawn(addr, &dir, appendonly),
                addr,
                dir,
                appendonly,
            };
            match server.wait_ready() {
                Ok(()) => return Some(server),
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start in 5 attempts: {last}");
    }

    /// Waits until the server answers PING, or has exited.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                return Err(format!("redis-server exited: {status}"));
            }
            if let Ok(mut s) = TcpStream::connect(self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0; 7];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && &buf == b"+PONG\r\n"
                {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("redis-server did not answer PING in 10 s".into())
    }

    /// Stops the server gracefully (SIGTERM, by its pid: it finishes its append-only file)
    /// and reaps it.
    pub fn stop(&mut self) {
        super::sigterm(&self.child.0);
        let _ = self.child.0.wait();
    }

    /// Starts it again on the same port and directory (after [`stop`](RedisServer::stop)).
    pub fn restart(&mut self) {
        self.child = spawn(self.addr, &self.dir, self.appendonly);
        self.wait_ready().expect("redis-server restarted");
    }

    /// One command over a plain connection, as `redis-cli` would send it; the reply as it
    /// came (a short one: one read).
    pub fn command(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(self.addr).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("SO_RCVTIMEO");
        let mut cmd = format!("*{}\r\n", args.len());
        for a in args {
            cmd += &format!("${}\r\n{a}\r\n", a.len());
        }
        s.write_all(cmd.as_bytes()).expect("a command sent");
        let mut buf = [0u8; 16 * 1024];
        let n = s.read(&mut buf).expect("a reply");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Waits until `n` connections are blocked in an `XREAD` (each cluster node's reader):
    /// from then on, whatever a node publishes reaches the others.
    pub fn wait_readers(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = self.command(&["CLIENT", "LIST"]);
            if list.matches("cmd=xread").count() == n {
                return;
            }
            assert!(Instant::now() < deadline, "not {n} readers:\n{list}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server now (SIGKILL, by its pid) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(addr: SocketAddr, dir: &std::path::Path, appendonly: bool) -> Reaper {
    let aof = if appendonly { "yes" } else { "no" };
    let child = Command::new("redis-server")
        .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", aof, "--loglevel", "warning"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    Reaper(child)
}
