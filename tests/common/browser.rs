//! A browser for tests/browser.rs: `tests/interop/browser.js` (puppeteer-core driving
//! Chromium) running one scenario as a child process followed line by line, and the one
//! process it starts that could outlive it, Chromium, killed by its process group on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{browser_ready, interop_dir, Exited, Input, Proc};

/// `target/browser/`, where the screenshots go (beside the test binaries' own `target/tmp`,
/// so `CARGO_TARGET_DIR` moves it too).
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is a folder inside the target directory")
        .join("browser")
}

/// The driver running one scenario. Dropping it kills the driver (its [`Proc`]) and then
/// Chromium's process group, by the id the driver printed: Chromium exits by itself when the
/// driver dies (it speaks to puppeteer over a pipe), so this only matters if that failed.
pub struct Browser {
    driver: Option<Proc>,
    /// Chromium's process group (puppeteer starts it detached: the group is its pid).
    pgid: Option<i32>,
    /// `target/browser/TEST`: the driver writes `TEST-PAGE.png` from it.
    pub shots: PathBuf,
}

impl Browser {
    /// Starts `scenario` against the server at `addr`, its screenshots named after `test`,
    /// and waits for Chromium to be up; `None` (after saying so) if there is no browser here.
    pub fn start(test: &str, scenario: &str, addr: SocketAddr) -> Option<Browser> {
        if !browser_ready(test) {
            return None;
        }
        let shots = screenshot_dir().join(test);
        let script = interop_dir().join("browser.js");
        let url = format!("http://{addr}");
        let driver = Proc::spawn(
            "node",
            &[
                script.to_str().expect("the checkout's path is UTF-8"),
                scenario,
                &url,
                shots.to_str().expect("the target path is UTF-8"),
            ],
            Input::Open,
        );
        let mut browser = Browser {
            driver: Some(driver),
            pgid: None,
            shots,
        };
        let first = browser.expect_line("`browser VERSION pgid=N`", |l| l.starts_with("browser "));
        browser.pgid = first
            .rsplit_once(" pgid=")
            .and_then(|(_, n)| n.parse().ok())
            .filter(|&n: &i32| n > 1);
        assert!(browser.pgid.is_some(), "no Chromium pid in {first:?}");
        println!("{test}: {first}");
        Some(browser)
    }

    fn driver(&mut self) -> &mut Proc {
        self.driver
            .as_mut()
            .expect("the driver runs until finish()")
    }

    /// Waits (at most `WAIT`) for a line of the driver that `want` accepts, skipping others;
    /// panics at once on its `fail ...` or `timeout` line, with everything it printed.
    pub fn expect_line(&mut self, desc: &str, want: impl Fn(&str) -> bool) -> String {
        let ended = |l: &str| l.starts_with("fail ") || l == "timeout";
        let line = self.driver().expect_line(desc, |l| want(l) || ended(l));
        if ended(&line) && !want(&line) {
            let out = self.driver.take().expect("the driver was running").finish();
            panic!(
                "the browser's scenario ended before {desc}\n{}",
                out.describe()
            );
        }
        line
    }

    /// Waits for exactly `line`.
    pub fn expect(&mut self, line: &str) {
        self.expect_line(&format!("{line:?}"), |l| l == line);
    }

    pub fn write_stdin(&mut self, text: &str) {
        self.driver().write_stdin(text);
    }

    /// Waits for the driver to exit and returns all it printed; prints it (its screenshots'
    /// paths too), and checks that it ended well and that they are there.
    pub fn finish(mut self) -> Exited {
        let out = self
            .driver
            .take()
            .expect("finish() runs once: it takes self")
            .finish();
        // What the pages saw and where their screenshots are (`-- --nocapture` shows it).
        for line in &out.stdout {
            println!("{line}");
        }
        assert!(
            out.code() == Some(0) && out.has_line("bye"),
            "the browser's scenario failed\n{}",
            out.describe()
        );
        let shots: Vec<&str> = out
            .stdout
            .iter()
            .filter_map(|l| l.strip_prefix("screenshot "))
            .collect();
        assert!(!shots.is_empty(), "no screenshot\n{}", out.describe());
        for path in shots {
            assert!(Path::new(path).is_file(), "{path} was not written");
        }
        out
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        drop(self.driver.take()); // its Reaper kills and reaps it
        let Some(pgid) = self.pgid else { return };
        // Only if the group's leader is still a Chromium: its pid may have been reused by
        // now by a process that is none of ours.
        let cmdline = std::fs::read(format!("/proc/{pgid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("chrom") {
            // Fails harmlessly if the group is already gone.
            let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
        }
    }
}
