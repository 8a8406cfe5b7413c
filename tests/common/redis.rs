//! A `redis-server` of the test's own (`socklab::apps::redis_server`: a free port on
//! 127.0.0.1, a temporary directory, no persistence or its append-only file, stopped by its
//! pid when dropped), skipped plainly where it is not installed, and the raw replies the
//! tests compare.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::skip_or_require;

/// The variable that turns a missing `redis-server` into a failure (`.ci/run` sets it).
pub const REQUIRE_REDIS: &str = "SOCKLAB_REQUIRE_REDIS";

pub struct RedisServer {
    pub addr: SocketAddr,
    inner: socklab::apps::redis_server::RedisServer,
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
        if !socklab::apps::redis_server::installed() {
            skip_or_require(
                REQUIRE_REDIS,
                test,
                "redis-server is not installed",
                "apt-get install redis-server",
            );
            return None;
        }
        let inner = socklab::apps::redis_server::RedisServer::start(appendonly)
            .unwrap_or_else(|e| panic!("{e}"));
        Some(RedisServer {
            addr: inner.addr,
            inner,
        })
    }

    /// Stops the server gracefully (SIGTERM, by its pid: it finishes its append-only file)
    /// and reaps it.
    pub fn stop(&mut self) {
        self.inner.stop();
    }

    /// Starts it again on the same port and directory (after [`stop`](RedisServer::stop)).
    pub fn restart(&mut self) {
        self.inner.restart().expect("redis-server restarted");
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
        let limit = Duration::from_secs(10);
        if let Err(e) = self.inner.wait_readers(n, limit) {
            panic!("{e}:\n{}", self.command(&["CLIENT", "LIST"]));
        }
    }

    /// Kills the server now (SIGKILL, by its pid) and reaps it.
    pub fn kill(&mut self) {
        self.inner.kill();
    }
}
