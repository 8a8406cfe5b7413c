//! A loop on a thread of its own for tests that only need its address: the handler is built
//! on that thread (so it may hold closures that are not `Send`), the loop listens on
//! 127.0.0.1:0 and turns until the guard is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use socklab::event_loop::{Config, EventLoop, Handler};

use super::WAIT;

/// Longest a served loop may run, whatever the test does.
const LIMIT: Duration = Duration::from_secs(120);

pub struct Served {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Served {
    /// Builds the handler with `make` on a new thread and serves with it.
    pub fn start<H: Handler + 'static>(make: impl FnOnce() -> H + Send + 'static) -> Served {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut ev = EventLoop::new(make(), Config::default()).expect("a loop");
            let addr = ev.ctx().listen(super::any_port()).expect("listen");
            tx.send(addr).expect("the test waits for the address");
            let deadline = Instant::now() + LIMIT;
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                ev.turn(Some(Duration::from_millis(10))).expect("a turn");
            }
        });
        let addr = rx.recv_timeout(WAIT).expect("the loop listens");
        Served {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
