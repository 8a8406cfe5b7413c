//! Figure 6 of `socklab-bench compare`: the fan-out of figure 3 with its clients spread over
//! two server processes of one cluster on one Redis, beside the same fan-out on one process.
//!
//! Three columns, each measured on fresh processes in every repetition:
//!
//! | column | servers | clients |
//! |---|---|---|
//! | socklab, one process | `socklab-bench server` | N protocol clients on one loop ([`load::fanout`]) |
//! | socklab, two processes | two `socklab-bench server --redis URL`, one `redis-server` | the same, client i on node i mod 2 |
//! | Socket.IO, two processes | two `node server.js --redis URL` (`@socket.io/redis-streams-adapter`), one `redis-server` | `fanout.js`: N socket.io-clients, client i on node i mod 2 |
//!
//! The fan-out is [`load::fanout`]'s (and `fanout.js`'s): a warm-up burst, then K messages
//! one at a time, each delivery timed from the send (to the clients of the sender's node, and
//! to those of the other node: the difference is the hop through Redis), then the measured
//! burst of M messages, every delivery counted and the missing ones reported as lost.
//!
//! Placement, on the two CPUs this was written for: node A (the sender's), and the one
//! process of the first column, on CPU 0 with Redis; node B on CPU 1 with the load generator.
//! Each CPU runs two busy processes, which the report says.

use std::time::Duration;

use crate::compare::{Figure, Part, Results, Run, Side, System, QUANTILES};
use crate::load::{self, Fanout, FanoutPlan};
use crate::placement::{LOAD_CPU, SERVER_CPU};
use crate::redis::{self, Redis};
use crate::Res;

/// Where node A (the sender's) and node B run; a single process runs where node A does.
pub const NODE_CPUS: [usize; 2] = [SERVER_CPU, LOAD_CPU];
/// Where the cluster's Redis runs: beside node A, since node B shares its CPU with the load
/// generator, the busiest process of all.
pub const REDIS_CPU: usize = SERVER_CPU;

/// The columns of figure 6, in the order a repetition runs them: (system, processes).
pub const COLUMNS: [(System, usize); 3] = [
    (System::Socklab, 1),
    (System::Socklab, 2),
    (System::SocketIo, 2),
];

/// Why the clusters cannot run here, if they cannot: recorded for their columns.
pub fn check(r: &mut Results, socketio_dir: &std::path::Path) {
    if !redis::installed() {
        for (sys, nodes) in COLUMNS.into_iter().filter(|c| c.1 > 1) {
            if !r.skipped.contains_key(&sys) {
                r.cluster_skipped
                    .insert((sys, nodes), redis::MISSING.into());
            }
        }
        return;
    }
    r.env.redis_version = redis::version();
    let adapter = "@socket.io/redis-streams-adapter";
    let installed = |p: &str| {
        socketio_dir
            .join("node_modules")
            .join(p)
            .join("package.json")
            .exists()
    };
    if !r.skipped.contains_key(&System::SocketIo) {
        if installed(adapter) && installed("redis") {
            r.env.redis_adapter_version = crate::compare::package_version(socketio_dir, adapter);
            r.env.redis_client_version = crate::compare::package_version(socketio_dir, "redis");
        } else {
            r.cluster_skipped.insert(
                (System::SocketIo, 2),
                format!(
                    "skipped: the Redis adapter is not installed (run `npm ci` in {})",
                    socketio_dir.display()
                ),
            );
        }
    }
}

/// Whether column `(sys, nodes)` runs at all.
pub fn runs(r: &Results, (sys, nodes): (System, usize)) -> bool {
    !r.skipped.contains_key(&sys) && !r.cluster_skipped.contains_key(&(sys, nodes))
}

/// One repetition of one column: Redis (for two nodes), the servers, the fan-out.
pub(crate) fn rep<S: Side>(side: &S, run: &Run, r: &mut Results, nodes: usize, rep: usize) {
    let sys = S::SYSTEM;
    let Some((n, m)) = run.opts.cluster else {
        return;
    };
    let what = format!(
        "{}, cluster figure with {nodes} process{}, repetition {rep}",
        sys.name(),
        if nodes == 1 { "" } else { "es" }
    );
    if !run.fits(r, &what, n) {
        return;
    }
    let result = (|| -> Res<(Fanout, Option<f64>)> {
        let slug = sys.slug();
        // Declared first, so dropped (killed) last: after the servers that use it.
        let redis = match nodes {
            1 => None,
            _ => Some(Redis::start(&run.placement, REDIS_CPU)?),
        };
        let mut servers = Vec::new();
        for (i, &cpu) in NODE_CPUS.iter().take(nodes).enumerate() {
            let name = format!("{slug}-node-{}-{rep}", ["a", "b"][i]);
            servers.push(side.server(run, &name, cpu, redis.as_ref())?);
        }
        let mut addrs = Vec::new();
        for s in &mut servers {
            addrs.push(s.listening()?);
        }
        if let Some(redis) = &redis {
            redis.wait_readers(nodes, Duration::from_secs(20))?;
        }
        let node_a = addrs[0]; // one server at least: `nodes` is 1 or 2
        let plan = FanoutPlan {
            nodes: addrs,
            warmup: run.opts.fanout_warmup,
            paced: run.opts.paced,
            server_pids: servers.iter().map(|s| s.pid()).collect(),
            ..FanoutPlan::new(node_a, n, m)
        };
        let redis_cpu = redis.as_ref().map(Redis::cpu).transpose()?;
        let f = side.fanout(run, &plan, &format!("{slug}-cluster-{nodes}-{rep}"))?;
        // Over the whole fan-out, whose every message went through the stream: warm-up,
        // paced and burst.
        let messages = plan.warmup + f.hop.as_ref().map_or(0, |h| h.sent) + f.messages;
        let redis_us = match (&redis, redis_cpu) {
            (Some(redis), Some(before)) => {
                let cpu = redis.cpu()?.saturating_sub(before);
                Some(cpu.as_secs_f64() * 1e6 / messages.max(1) as f64)
            }
            _ => None,
        };
        Ok((f, redis_us))
    })();
    match result {
        Ok((f, redis_us)) => record(r, sys, nodes, &f, redis_us, &what),
        Err(e) => r.note(format!("{what}: {e}")),
    }
}

/// Keeps what one repetition measured; says what did not arrive. `redis_us` is Redis's CPU
/// time per message, in microseconds.
fn record(
    r: &mut Results,
    sys: System,
    nodes: usize,
    f: &Fanout,
    redis_us: Option<f64>,
    what: &str,
) {
    let add = |r: &mut Results, part, v| r.add(sys, Figure::Cluster { nodes, part }, v);
    add(r, Part::PerSecond, f.per_second());
    add(r, Part::Lost, f.lost() as f64);
    add(r, Part::Ms, f.seconds * 1000.0);
    if !f.complete {
        let by_node = f
            .lost_by_node
            .iter()
            .zip(["the sender's node", "the other node"])
            .map(|(lost, node)| format!("{lost} on {node}"))
            .collect::<Vec<_>>()
            .join(", ");
        r.note(format!(
            "{what}: {} of {} deliveries arrived, {} lost ({by_node}); none for {} s at the end",
            f.deliveries,
            f.clients * f.messages,
            f.lost(),
            load::FANOUT_STALL.as_secs()
        ));
    }
    match f.server_cpu {
        Some(cpu) if cpu.is_zero() => r.note(format!(
            "{what}: the servers' CPU time did not reach one clock tick of /proc/PID/stat; \
             no CPU figure"
        )),
        Some(_) => add(r, Part::CpuNs, f.cpu_ns_per_delivery().unwrap_or(0.0)),
        None => {}
    }
    if let Some(us) = redis_us {
        add(r, Part::RedisCpuUs, us);
    }
    let Some(hop) = &f.hop else {
        return;
    };
    if hop.lost > 0 {
        r.note(format!(
            "{what}: paced message {} did not reach {} clients within {} s; the paced part \
             stopped there",
            hop.sent,
            hop.lost,
            load::FANOUT_STALL.as_secs()
        ));
    }
    for (i, (q, _)) in QUANTILES.iter().enumerate() {
        let same = (hop.same_node.count > 0).then(|| hop.same_node.quantile_us(*q));
        let other = (hop.other_node.count > 0).then(|| hop.other_node.quantile_us(*q));
        if let Some(v) = same {
            add(r, Part::SameUs(i), v);
        }
        if let Some(v) = other {
            add(r, Part::OtherUs(i), v);
        }
        if let Some((s, o)) = same.zip(other) {
            add(r, Part::HopUs(i), o - s);
        }
    }
}
