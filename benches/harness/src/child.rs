//! A child process of the benchmark (a server, a Node script): its stdout as lines, its
//! stdin to talk to it, its stderr in a log file. Every wait on it has a time limit, and it is
//! killed (by its pid) when its handle is dropped, also on error.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::Value;
use wait_timeout::ChildExt;

use crate::placement::Placement;
use crate::Res;

pub struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    log: PathBuf,
}

impl Proc {
    /// Starts `program args` in `dir` on `cpu`, its stderr into `logs/NAME.log`.
    pub fn spawn(
        placement: &Placement,
        logs: &Path,
        name: &str,
        cpu: usize,
        program: &Path,
        args: &[String],
        dir: &Path,
    ) -> Res<Proc> {
        let log = logs.join(format!("{name}.log"));
        let mut child = placement.spawn(cpu, program, args, dir, &log)?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = mpsc::channel();
        // Ends at EOF, when the child exits or is killed.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            name: name.to_string(),
            child,
            lines,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the child prints, within `limit`; if none comes, an error that says
    /// whether it exited and the last thing it wrote to its log.
    pub fn line(&mut self, limit: Duration) -> Res<String> {
        match self.lines.recv_timeout(limit) {
            Ok(line) => Ok(line),
            Err(e) => {
                let status = match self.child.try_wait() {
                    Ok(Some(s)) => format!("it exited ({s})"),
                    _ => format!("nothing within {} s", limit.as_secs()),
                };
                let said = std::fs::read_to_string(&self.log).unwrap_or_default();
                let last = said
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                Err(format!(
                    "{}: no answer ({status}; {e}); {}: {last}",
                    self.name,
                    self.log.display()
                )
                .into())
            }
        }
    }

    /// The next line, as JSON.
    pub fn json(&mut self, limit: Duration) -> Res<Value> {
        let line = self.line(limit)?;
        serde_json::from_str(&line)
            .map_err(|e| format!("{}: not JSON ({e}): {line:.200}", self.name).into())
    }

    /// A server's first line: `listening on ADDR`.
    pub fn listening(&mut self) -> Res<SocketAddr> {
        let line = self.line(Duration::from_secs(20))?;
        Ok(line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("{} printed {line:?}", self.name))?
            .parse()?)
    }

    /// Writes one line to the child's stdin.
    pub fn say(&mut self, line: &str) -> Res<()> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        Ok(())
    }

    /// Waits (at most `limit`) for the child to exit by itself; after that, dropping it
    /// kills it.
    pub fn finish(mut self, limit: Duration) {
        let _ = self.child.wait_timeout(limit);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
