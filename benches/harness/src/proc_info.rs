//! What `/proc` says about a server process and the machine, read with the `procfs` crate.
//!
//! The server's CPU time is the one figure that compares two servers alone, whatever their
//! clients cost (docs/src/performance.md, "Different clients"); its resident set, before and
//! with ten thousand idle connections, is the memory one connection costs.

use std::time::Duration;

use procfs::process::Process;
use procfs::Current;

/// CPU time (user + system, all threads) used so far by process `pid`, from
/// `/proc/PID/stat`. Its unit is the clock tick ([`ticks_per_second`], 10 ms on Linux), so a
/// short run has coarse figures.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = Process::new(i32::try_from(pid).ok()?).ok()?.stat().ok()?;
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
}
