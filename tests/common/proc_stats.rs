//! What the kernel says about a process in /proc: CPU time, resident memory, open
//! descriptors. The parsing is the `procfs` crate's (the well-kept /proc parser, not the
//! lesson); these wrappers keep the units the tests compare in.

use procfs::process::Process;

/// Clock ticks per second in /proc's CPU times (`USER_HZ`, 100 on Linux whatever the
/// kernel's own tick rate).
pub const USER_HZ: u64 = 100;

/// CPU time process `pid` has used (user + system), in ticks; 0 if it cannot be read (the
/// process is gone).
pub fn cpu_ticks(pid: u32) -> u64 {
    let pid = i32::try_from(pid).expect("a pid fits in an i32");
    Process::new(pid)
        .and_then(|p| p.stat())
        .map(|s| s.utime + s.stime)
        .unwrap_or(0)
}

/// CPU time the calling thread has used, in ticks: unlike the process's, it does not count
/// the other tests running on other threads of the same test binary. 0 if it cannot be read.
pub fn thread_cpu_ticks() -> u64 {
    // /proc/thread-self links to `PID/task/TID`; procfs reads that task's stat.
    let link = std::fs::read_link("/proc/thread-self").unwrap_or_default();
    let Some(tid) = link
        .file_name()
        .and_then(|t| t.to_str()?.parse::<i32>().ok())
    else {
        return 0;
    };
    Process::myself()
        .and_then(|me| me.task_from_tid(tid))
        .and_then(|task| task.stat())
        .map(|s| s.utime + s.stime)
        .unwrap_or(0)
}

/// VmRSS of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let pid = i32::try_from(pid).expect("a pid fits in an i32");
    let status = Process::new(pid)
        .and_then(|p| p.status())
        .expect("/proc/PID/status");
    status.vmrss.expect("a VmRSS line")
}

/// How many descriptors process `pid` has open (the entries of /proc/PID/fd).
pub fn open_fds(pid: u32) -> usize {
    let pid = i32::try_from(pid).expect("a pid fits in an i32");
    Process::new(pid)
        .and_then(|p| p.fd_count())
        .expect("/proc/PID/fd")
}
