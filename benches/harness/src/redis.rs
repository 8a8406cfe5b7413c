//! The Redis of the cluster figure (6): a `redis-server` of the benchmark's own
//! (`socklab::apps::redis_server`: a free port of 127.0.0.1, nothing written to disk, killed
//! by its pid when dropped), pinned to a CPU like every other child.
//!
//! A fresh one for every cluster measured, so that each starts from an empty stream.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use socklab::apps::redis_server::RedisServer;
use socklab::wire::resp::Reply;

use crate::placement::Placement;
use crate::Res;

/// What the report says when there is no `redis-server` to run.
pub const MISSING: &str = "skipped: redis-server not found (apt-get install redis-server)";

pub use socklab::apps::redis_server::installed;

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
    inner: RedisServer,
}

impl Redis {
    /// Starts one (`socklab::apps::redis_server`) and pins it to `cpu`; returns once it
    /// answers PING.
    pub fn start(placement: &Placement, cpu: usize) -> Res<Redis> {
        let inner = RedisServer::start(false)?;
        if placement.pinned() && !crate::placement::pin(inner.pid() as i32, cpu) {
            return Err(format!("could not pin redis-server to CPU {cpu}").into());
        }
        Ok(Redis {
            addr: inner.addr,
            inner,
        })
    }

    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// What `--redis` takes: `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.inner.url()
    }

    /// Waits until `n` connections are blocked in an `XREAD`: every node of the cluster is
    /// reading the stream, so whatever one publishes from now on reaches the others (a node
    /// starts reading at the stream's end).
    pub fn wait_readers(&self, n: usize, limit: Duration) -> Res<()> {
        self.inner.wait_readers(n, limit)
    }

    /// The CPU time Redis has used so far (`INFO cpu`: `used_cpu_sys` and `used_cpu_user`,
    /// from its own `getrusage`, to the microsecond, where `/proc/PID/stat` counts in ticks
    /// of 10 ms: a few thousand `XADD`s take less than one).
    pub fn cpu(&self) -> Res<Duration> {
        let info = match self.inner.ask(&["INFO", "cpu"])? {
            Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            other => return Err(format!("INFO cpu answered {other:?}").into()),
        };
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
}
