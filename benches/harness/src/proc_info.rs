//! What `/proc` says about a server process and the machine, read with the `procfs` crate.
//!
//! The server's CPU time is the one figure that compares two servers alone, whatever their
//! clients cost (docs/src/performance.md, "Different clients"); its resident set, before and
//! with ten thousand idle connections, is the memory one connection costs.

use std::time::Duration;

use nix::time::{clock_getcpuclockid, clock_gettime};
use nix::unistd::Pid;
use procfs::process::Process;
use procfs::Current;

/// CPU time (user + system, all threads, ended ones included) used so far by process `pid`,
/// in nanoseconds: the process's CPU-time clock (`clock_getcpuclockid(3)` and
/// `clock_gettime(2)`), which Linux lets any process read. Where that clock cannot be read,
/// `/proc/PID/stat`, whose unit is the clock tick ([`ticks_per_second`], 10 ms on Linux), so
/// that a short run has coarse figures.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let raw = i32::try_from(pid).ok()?;
    let clock = clock_getcpuclockid(Pid::from_raw(raw)).and_then(clock_gettime);
    if let Ok(t) = clock {
        return Some(Duration::from(t));
    }
    let stat = Process::new(raw).ok()?.stat().ok()?;
    let ticks = stat.utime + stat.stime;
    Some(Duration::from_micros(
        ticks * 1_000_000 / ticks_per_second(),
    ))
}

/// The unit of the times in `/proc/PID/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn ticks_per_second() -> u64 {
    procfs::ticks_per_second().max(1)
}

/// Resident set size of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .status()
        .ok()?
        .vmrss
}

/// The first CPU's model name from `/proc/cpuinfo` (the architecture where it has none).
pub fn cpu_model() -> String {
    procfs::CpuInfo::current()
        .ok()
        .and_then(|info| info.model_name(0).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The kernel's release, as `uname -r` prints it.
pub fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_set_and_a_cpu_time() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|kib| kib > 0));
        assert!(cpu_time(me).is_some());
        assert!(!cpu_model().is_empty());
    }

    #[test]
    fn cpu_time_is_finer_than_a_clock_tick_for_another_process_too() {
        // A child that spins for a moment, read while it runs and after.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 1",
            ])
            .spawn()
            .expect("sh runs");
        let pid = child.id();
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen.extend(cpu_time(pid));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        // Some reading is not a whole number of 10 ms ticks: nanoseconds, not ticks.
        assert!(
            seen.iter().any(|t| t.as_nanos() % 10_000_000 != 0),
            "{seen:?}"
        );
    }
}
