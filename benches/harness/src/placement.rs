//! Where the processes of a benchmark run: every server on CPU 0, every load generator and
//! client on CPU 1, and enough descriptors for ten thousand connections.
//!
//! On a two-CPU machine the placement decides the latency figures: a server and a client on
//! one CPU make every round trip wait for a context switch, and a scheduler that moves them
//! around makes the figures swing from run to run (docs/src/performance.md).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::Res;

/// Where the servers run.
pub const SERVER_CPU: usize = 0;
/// Where the load generators and clients run (this process included).
pub const LOAD_CPU: usize = 1;

/// Pins process `pid` (0: this thread) to one CPU; returns whether it worked.
pub fn pin(pid: i32, cpu: usize) -> bool {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    set.set(cpu).is_ok() && sched_setaffinity(Pid::from_raw(pid), &set).is_ok()
}

/// Raises this process's soft descriptor limit to the hard limit; returns the new soft limit.
/// Children inherit it.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// How child processes get their CPU.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    /// `taskset` is installed (otherwise: `sched_setaffinity` on this thread before the
    /// spawn, which the child inherits).
    taskset: bool,
    /// Two CPUs or more, and this process could pin itself.
    pinned: bool,
}

impl Placement {
    /// Pins this process to [`LOAD_CPU`] (with two CPUs or more) and looks for `taskset`.
    pub fn detect(cpus: usize) -> Placement {
        let pinned = cpus >= 2 && pin(0, LOAD_CPU);
        let taskset = Command::new("taskset")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Placement { taskset, pinned }
    }

    /// Whether processes are pinned at all (two CPUs or more).
    pub fn pinned(&self) -> bool {
        self.pinned
    }

    /// The placement in words, for the report.
    pub fn describe(&self, cpus: usize) -> String {
        if !self.pinned {
            return format!(
                "not pinned ({cpus} CPU{} usable here): servers and load share the CPUs, so \
                 latency figures mix both sides' work",
                if cpus == 1 { "" } else { "s" }
            );
        }
        format!(
            "servers on CPU {SERVER_CPU}, load generators and clients on CPU {LOAD_CPU} \
             (child processes through {}; socklab's in-process load generators by \
             sched_setaffinity)",
            if self.taskset {
                "`taskset -c`"
            } else {
                "sched_setaffinity, inherited (taskset not found)"
            }
        )
    }

    /// Starts `program args` in `dir` on `cpu`: stdin and stdout piped, stderr into `log`.
    pub fn spawn(
        &self,
        cpu: usize,
        program: &Path,
        args: &[String],
        dir: &Path,
        log: &Path,
    ) -> Res<Child> {
        let mut cmd = if self.pinned && self.taskset {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(log)?));
        if self.pinned && !self.taskset {
            // The child inherits the spawning thread's CPU set; put it back right after.
            pin(0, cpu);
            let child = cmd.spawn();
            pin(0, LOAD_CPU);
            return Ok(child?);
        }
        Ok(cmd.spawn()?)
    }
}
