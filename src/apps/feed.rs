//! A feed: a thread of its own that does one thing every interval (bowl a ball, hand the
//! recorded packets to the inspectors), usually through a `ServerHandle`, and that stops at
//! once when told to.
//!
//! The thread waits on a channel (`recv_timeout`), not in a `sleep`: when [`Feed::stop`]
//! drops the sending end, the wait ends at once with `Disconnected`. A feed that slept would
//! keep a stopping server alive for up to a whole interval (15 s with `--interval-ms
//! 15000`), past the `stop_grace` the loop promises.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// A running feed, and the way to stop it without waiting out its interval.
pub struct Feed {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feed {
    /// Runs `tick` on a new thread every `interval` until it returns `false` (the server is
    /// gone, or nothing is left to do) or the feed is stopped.
    pub fn every(interval: Duration, mut tick: impl FnMut() -> bool + Send + 'static) -> Feed {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || loop {
            match stopped.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            if !tick() {
                return;
            }
        });
        Feed {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Wakes the feed thread, tells it to end, and waits for it.
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        drop(self.stop.take()); // the thread's `recv_timeout` returns `Disconnected` now
        if let Some(thread) = self.thread.take() {
            // A panic on the feed thread has been reported already; stopping goes on.
            let _ = thread.join();
        }
    }
}

impl Drop for Feed {
    /// A feed dropped without [`Feed::stop`] (the server failed, say) stops the same way.
    fn drop(&mut self) {
        self.end();
    }
}
