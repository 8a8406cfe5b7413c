//! A `redis-server` of the test's own: a free port on 127.0.0.1, a temporary directory, no
//! persistence, stopped by its pid (through its `Child`) when dropped.

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
}

impl RedisServer {
    /// Starts one, or returns `None` after printing `SKIPPED` when `redis-server` is not
    /// installed (a failure instead under `SOCKLAB_REQUIRE_REDIS=1`).
    pub fn start(test: &str) -> Option<RedisServer> {
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
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut server = RedisServer {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                child: Reaper(child),
                dir,
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
