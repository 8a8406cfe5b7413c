//! Running the capture: whether this machine can, the namespace's loopback, and a
//! `tcpdump -i lo` started and stopped around one lesson.

use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Whether this machine can capture: tcpdump and `ip` are installed and a network namespace
/// can be made (root, or the capability to make one).
pub fn can_capture() -> bool {
    let quiet = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    quiet(Command::new("tcpdump").arg("--version"))
        && quiet(Command::new("ip").arg("-V"))
        && quiet(Command::new("unshare").args(["--net", "--", "true"]))
}

/// A fresh network namespace's loopback starts down; bring it up (`ip link set lo up`).
pub fn loopback_up() -> io::Result<()> {
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other("`ip link set lo up` failed"))
    }
}

/// How long tcpdump may take to start, and to stop after SIGINT.
const TCPDUMP_WAIT: Duration = Duration::from_secs(5);

/// A running `tcpdump -i lo`, writing its lines to a file.
pub struct Tcpdump {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Tcpdump {
    /// Starts tcpdump on `lo` for TCP, its lines going to `out`, and returns once it is
    /// capturing (it says "listening on lo" on stderr), or fails after a few seconds.
    pub fn start(out: &Path) -> io::Result<Tcpdump> {
        let file = std::fs::File::create(out)?;
        // -n: numbers, not names; -l: a line as soon as it is seen; -tt: epoch seconds;
        // -S: absolute sequence numbers (made relative by `normalise`).
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-l", "-tt", "-S", "-s", "128", "tcp"])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                io::Error::other(format!(
                    "cannot run tcpdump ({e}); install it with `apt-get install tcpdump`"
                ))
            })?;
        let Some(stderr) = child.stderr.take() else {
            return Err(io::Error::other("tcpdump has no stderr pipe"));
        };
        // A thread reads stderr to its end, so tcpdump never blocks on it, and hands over
        // each line; the waits below are bounded with `recv_timeout`.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + TCPDUMP_WAIT;
        let mut said = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("listening on lo") => break,
                Ok(line) => said.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(io::Error::other(format!(
                        "tcpdump did not start capturing within {TCPDUMP_WAIT:?}: {}",
                        said.join("; ")
                    )));
                }
            }
        }
        Ok(Tcpdump { child, stderr: rx })
    }

    /// Stops tcpdump with SIGINT (so it flushes its lines) and waits for it, at most a few
    /// seconds before killing it. Fails if the kernel dropped packets: the capture would
    /// silently miss segments.
    pub fn stop(mut self) -> io::Result<()> {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, Signal::SIGINT).map_err(io::Error::from)?;
        let deadline = Instant::now() + TCPDUMP_WAIT;
        let mut said = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => said.push(line),
                // The reader thread ended: tcpdump closed stderr, it is exiting.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(io::Error::other("tcpdump did not stop after SIGINT"));
                }
            }
        }
        self.child.wait()?;
        let dropped = said
            .iter()
            .find(|l| l.ends_with("packets dropped by kernel"))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        if dropped > 0 {
            return Err(io::Error::other(format!(
                "tcpdump: {dropped} packets dropped by kernel; record again"
            )));
        }
        Ok(())
    }
}
