//! A server process a demonstration starts (its own binary again, as `serve ...`), waits for
//! until it says where it listens, and stops by its pid: lessons 23 and 24.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::sys;

pub struct ServerProcess {
    pub name: &'static str,
    child: Child,
    out: BufReader<ChildStdout>,
    stopped: bool,
}

impl Drop for ServerProcess {
    /// Dropped without [`stop`](ServerProcess::stop) (a demonstration failed half-way), it
    /// still stops the child, so that no server outlives the lesson.
    fn drop(&mut self) {
        if !self.stopped {
            // Both fail harmlessly if the child has already exited.
            let _ = sys::signal::terminate(self.child.id());
            let _ = self.child.wait();
        }
    }
}

impl ServerProcess {
    /// Runs this program again with `args` (and `--trace` if this one traces), and waits for
    /// its `listening on` line; returns the address it listens on.
    pub fn start(
        name: &'static str,
        args: &[String],
    ) -> Result<(ServerProcess, SocketAddr), Box<dyn Error>> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
        if sys::trace::enabled() {
            cmd.arg("--trace");
        }
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or("no pipe from the server's stdout")?;
        let mut p = ServerProcess {
            name,
            child,
            out: BufReader::new(stdout),
            stopped: false,
        };
        let mut line = String::new();
        p.out.read_line(&mut line)?;
        // On an error `p` is dropped, which stops the child.
        match line.trim().strip_prefix("listening on ") {
            Some(a) => Ok((p, a.parse()?)),
            None => Err(format!("process {name} did not start").into()),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM to this child, by its pid; then the rest of what it printed, once it exits.
    pub fn stop(mut self) -> Result<Vec<String>, Box<dyn Error>> {
        sys::signal::terminate(self.child.id())?;
        let lines = self.rest()?;
        let status = self.child.wait()?;
        self.stopped = true;
        if !status.success() {
            return Err(format!("process {} ended with {status}", self.name).into());
        }
        Ok(lines)
    }

    /// SIGKILL to this child, by its pid: it dies at once, with nothing written on its way
    /// out. What it printed before.
    pub fn kill(mut self) -> Result<Vec<String>, Box<dyn Error>> {
        self.child.kill()?;
        let lines = self.rest()?;
        let _ = self.child.wait()?;
        self.stopped = true;
        Ok(lines)
    }

    fn rest(&mut self) -> Result<Vec<String>, Box<dyn Error>> {
        let mut lines = Vec::new();
        for line in (&mut self.out).lines() {
            lines.push(line?);
        }
        Ok(lines)
    }
}
