//! A loop on a thread of its own ([`LoopThread`]), steered by messages, and the echo loop the
//! load tests use.

use super::*;

/// An [`EventLoop`] listening on 127.0.0.1:0 and turning on a thread of its own.
///
/// The thread turns with a short poll timeout and checks a stop flag between turns; setting
/// it makes the thread call [`Ctx::stop`] (a graceful stop), after which the loop finishes
/// and the thread hands back the final [`Stats`]. Dropping the guard does the same, so a
/// failed assertion never leaves a loop running.
pub(crate) struct LoopThread<M: Send + 'static> {
    pub(crate) addr: SocketAddr,
    pub(crate) handle: LoopHandle<M>,
    pub(crate) quit: Arc<AtomicBool>,
    pub(crate) finished: Receiver<Stats>,
    pub(crate) thread: Option<JoinHandle<()>>,
}

impl<M: Send + 'static> LoopThread<M> {
    pub(crate) fn start<H>(handler: H, config: Config) -> LoopThread<M>
    where
        H: Handler<Message = M> + Send + 'static,
    {
        let (ready_tx, ready) = mpsc::channel();
        let (done_tx, finished) = mpsc::channel();
        let quit = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&quit);
        let thread = thread::spawn(move || {
            let mut ev = EventLoop::new(handler, config).expect("epoll_create1 and the waker");
            let addr = ev.ctx().listen(any_port()).expect("listen on 127.0.0.1:0");
            // The test connects only once it has the address.
            let _ = ready_tx.send((addr, ev.handle()));
            let deadline = Instant::now() + LOOP_LIMIT;
            // Ends once the stop is done: at most `stop_grace` after the flag or the deadline.
            while !ev.is_stopped() {
                let asked = stop_flag.load(Ordering::SeqCst) || Instant::now() >= deadline;
                if asked && !ev.ctx().is_stopping() {
                    ev.ctx().stop();
                }
                ev.turn(Some(TURN)).expect("a turn of the loop");
            }
            let _ = done_tx.send(ev.ctx().stats().clone());
        });
        let (addr, handle) = ready
            .recv_timeout(WAIT)
            .expect("the loop thread starts listening");
        LoopThread {
            addr,
            handle,
            quit,
            finished,
            thread: Some(thread),
        }
    }

    /// Asks the loop thread to begin a graceful stop ([`Ctx::stop`]) and returns at once.
    pub(crate) fn begin_stop(&self) {
        self.quit.store(true, Ordering::SeqCst);
    }

    /// Stops the loop gracefully and returns its final counters.
    pub(crate) fn stop(mut self) -> Stats {
        self.begin_stop();
        let thread = self.thread.take().expect("stop is called once");
        match self.finished.recv_timeout(STOP_LIMIT) {
            Ok(stats) => {
                thread.join().expect("the loop thread ended cleanly");
                stats
            }
            // The sender is gone without a word: the thread panicked; pass its panic on.
            Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => panic!("the loop thread ended without its stats"),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the loop did not stop within {STOP_LIMIT:?}")
            }
        }
    }
}

impl<M: Send + 'static> Drop for LoopThread<M> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.begin_stop();
            // Joined only if it ended (or is ending: a panic drops the sender); a stuck loop
            // thread is left behind rather than hang a test that is failing anyway.
            if !matches!(
                self.finished.recv_timeout(STOP_LIMIT),
                Err(mpsc::RecvTimeoutError::Timeout)
            ) {
                let _ = thread.join();
            }
        }
    }
}

/// What the test thread asks a running [`Controlled`] echo loop.
pub(crate) enum Cmd {
    Report(Sender<Report>),
}

/// A snapshot of a running echo loop, taken on the loop thread.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) stats: Stats,
    pub(crate) echoed: u64,
    /// Live connections: the client's address (the peer, as the loop sees it) and the bytes
    /// queued for it.
    pub(crate) open: Vec<(SocketAddr, usize)>,
    /// Every connection closed so far: the client's address and why.
    pub(crate) closes: Vec<(SocketAddr, CloseReason)>,
}

impl Report {
    pub(crate) fn pending_for(&self, peer: SocketAddr) -> Option<usize> {
        self.open.iter().find(|(p, _)| *p == peer).map(|&(_, n)| n)
    }

    pub(crate) fn close_of(&self, peer: SocketAddr) -> Option<&CloseReason> {
        self.closes.iter().find(|(p, _)| *p == peer).map(|(_, r)| r)
    }
}

/// [`Echo`], plus the bookkeeping a test needs to see what the loop did with each peer.
#[derive(Default)]
pub(crate) struct Controlled {
    pub(crate) echo: Echo,
    pub(crate) peers: HashMap<ConnId, SocketAddr>,
    pub(crate) closes: Vec<(SocketAddr, CloseReason)>,
}

impl Handler for Controlled {
    type Timer = ();
    type Message = Cmd;

    fn accepted(&mut self, ctx: &mut Ctx<()>, id: ConnId, peer: SocketAddr) {
        self.peers.insert(id, peer);
        self.echo.accepted(ctx, id, peer);
    }

    fn data(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        self.echo.data(ctx, id, bytes)
    }

    fn drained(&mut self, ctx: &mut Ctx<()>, id: ConnId) {
        self.echo.drained(ctx, id);
    }

    fn closed(&mut self, ctx: &mut Ctx<()>, id: ConnId, reason: CloseReason) {
        let peer = self.peers.remove(&id).unwrap_or_else(any_port);
        self.closes.push((peer, reason.clone()));
        self.echo.closed(ctx, id, reason);
    }

    fn message(&mut self, ctx: &mut Ctx<()>, msg: Cmd) {
        match msg {
            Cmd::Report(reply) => {
                let open = ctx
                    .connection_ids()
                    .into_iter()
                    .filter_map(|id| Some((ctx.peer(id)?, ctx.pending(id))))
                    .collect();
                let _ = reply.send(Report {
                    stats: ctx.stats().clone(),
                    echoed: self.echo.echoed,
                    open,
                    closes: self.closes.clone(),
                });
            }
        }
    }
}

pub(crate) type EchoLoop = LoopThread<Cmd>;

impl EchoLoop {
    pub(crate) fn echo(config: Config) -> EchoLoop {
        LoopThread::start(Controlled::default(), config)
    }

    /// A snapshot, through a [`LoopHandle`] message (the waker wakes the loop for it).
    pub(crate) fn report(&self) -> Report {
        let (tx, rx) = mpsc::channel();
        if self.handle.send(Cmd::Report(tx)).is_err() {
            panic!("the loop thread is gone");
        }
        rx.recv_timeout(WAIT)
            .expect("the loop answers a report request")
    }
}
