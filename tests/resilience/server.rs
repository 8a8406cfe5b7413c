//! The server under test, on a thread of its own, and what it reports over a channel ([`Seen`]).

use super::*;

pub(crate) fn server_config() -> ServerConfig {
    ServerConfig {
        ping_interval: PING_INTERVAL,
        ping_timeout: PING_TIMEOUT,
        ..ServerConfig::default()
    }
}

pub(crate) fn client_options(addr: SocketAddr) -> ClientOptions {
    let mut opts = ClientOptions::new(addr);
    opts.reconnection_delay = RECONNECT_DELAY;
    opts.reconnection_delay_max = RECONNECT_DELAY_MAX;
    opts.connect_timeout = WAIT;
    opts
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A thread that panicked while holding the lock has failed its test already; the data
    // (a list of sockets, of threads) is still good for cleaning up.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// The server under test and what it reports
// ---------------------------------------------------------------------------------------------

/// What a server's handlers saw, sent to the test thread.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seen {
    /// A connection handler ran for socket `sid` (a recovered session runs it again, with the
    /// same id).
    Connected { sid: String },
    /// Socket `sid`'s `disconnect` listener ran with `reason`.
    Disconnected { sid: String, reason: String },
    /// A handler for `event` ran, with `arg` as the event's first argument.
    Handled {
        sid: String,
        event: String,
        arg: Value,
    },
}

/// Events whose answer the `later` handler left for later (kept beside the server, on its
/// thread).
pub(crate) type Unanswered = Rc<RefCell<Vec<socklab::events::Event>>>;

/// The server's handlers: `plain` (reported), `acked` and `echo` (reported and answered with
/// their arguments), `join` (joins the room named by the first argument, answers with the
/// socket's rooms), `later` (reported, answered only when the test says so, through
/// [`answer_later`]) and, when a [`Cutter`] is given, `flaky`: it cuts every proxied
/// connection the first time it runs, *then* answers, so that the answer is lost.
pub(crate) fn install(io: &mut Io, tx: Sender<Seen>, cutter: Option<Cutter>) {
    let flaky_runs = Arc::new(AtomicUsize::new(0));
    let unanswered = Unanswered::default();
    io.insert_data(unanswered.clone());
    io.on_connection("/", move |io, sid| {
        let _ = tx.send(Seen::Connected {
            sid: sid.to_string(),
        });
        let t = tx.clone();
        io.on(sid, "disconnect", move |_, ev| {
            let reason = ev.args.first().and_then(Value::as_str).unwrap_or("");
            let _ = t.send(Seen::Disconnected {
                sid: ev.socket.to_string(),
                reason: reason.to_string(),
            });
        });
        for name in ["plain", "acked", "echo"] {
            let t = tx.clone();
            io.on(sid, name, move |io, ev| {
                let _ = t.send(handled(ev));
                io.ack(ev, ev.args.clone());
            });
        }
        io.on(sid, "join", |io, ev| {
            if let Some(room) = ev.args.first().and_then(Value::as_str) {
                io.join(&ev.socket, room);
            }
            let rooms = io.rooms_of(&ev.socket);
            io.ack(ev, vec![json!(rooms)]);
        });
        let (t, keep) = (tx.clone(), unanswered.clone());
        io.on(sid, "later", move |_, ev| {
            let _ = t.send(handled(ev));
            keep.borrow_mut().push(ev.clone());
        });
        if let Some(cutter) = cutter.clone() {
            let (t, runs) = (tx.clone(), flaky_runs.clone());
            io.on(sid, "flaky", move |io, ev| {
                let _ = t.send(handled(ev));
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    // The event was handled; now the connection dies before the answer
                    // leaves. The ACK below goes into a connection the proxy has cut.
                    cutter.cut();
                }
                io.ack(ev, vec![json!("done"), json!(ev.args.first())]);
            });
        }
    });
}

/// Answers every `later` event so far with `["later", its first argument]`, on the server's
/// thread; returns how many.
pub(crate) fn answer_later(handle: &ServerHandle) -> usize {
    ask(handle, |io| {
        let Some(kept) = io.data::<Unanswered>().cloned() else {
            return 0;
        };
        let events: Vec<_> = kept.borrow_mut().drain(..).collect();
        for ev in &events {
            io.ack(ev, vec![json!("later"), json!(ev.args.first())]);
        }
        events.len()
    })
}

pub(crate) fn handled(ev: &socklab::events::Event) -> Seen {
    Seen::Handled {
        sid: ev.socket.to_string(),
        event: ev.name.clone(),
        arg: ev.args.first().cloned().unwrap_or(Value::Null),
    }
}

/// Starts a server with [`install`]ed handlers on `addr`. A restart on the address of a server
/// that just stopped is retried while the port is still taken (an outgoing connection of a
/// test running in parallel may have been given it as its local port meanwhile).
pub(crate) fn start_server(
    config: &ServerConfig,
    addr: SocketAddr,
    tx: &Sender<Seen>,
    cutter: Option<Cutter>,
) -> RunningServer {
    let deadline = Instant::now() + WAIT;
    loop {
        let (tx, cutter) = (tx.clone(), cutter.clone());
        match RunningServer::start(config.clone(), addr, move |io| install(io, tx, cutter)) {
            Ok(server) => {
                assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
                return server;
            }
            Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("a server on {addr}: {e}"),
        }
    }
}

/// The reports of the servers of one test, with those received and not yet asked for.
pub(crate) struct Reports {
    pub(crate) rx: Receiver<Seen>,
    pub(crate) kept: Vec<Seen>,
}

impl Reports {
    pub(crate) fn new(rx: Receiver<Seen>) -> Reports {
        Reports {
            rx,
            kept: Vec::new(),
        }
    }

    /// Every report received so far, without waiting.
    pub(crate) fn all(&mut self) -> &[Seen] {
        while let Ok(s) = self.rx.try_recv() {
            self.kept.push(s);
        }
        &self.kept
    }

    /// Whether a report that `pred` accepts has arrived (it stays in the list).
    pub(crate) fn has(&mut self, pred: impl Fn(&Seen) -> bool) -> bool {
        self.all().iter().any(pred)
    }

    /// Waits (at most [`WAIT`]) for a report that `pred` accepts, without stepping any
    /// client. For what the server does on its own (a disconnect it noticed).
    pub(crate) fn wait(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.all().iter().find(|s| pred(s)) {
                return s.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(s) => self.kept.push(s),
                Err(_) => panic!(
                    "the server never reported {what} (within {WAIT:?}); it reported {:#?}",
                    self.kept
                ),
            }
        }
    }

    /// The first arguments of the `event`s handled, in the order the servers handled them.
    pub(crate) fn handled(&mut self, event: &str) -> Vec<Value> {
        self.all()
            .iter()
            .filter_map(|s| match s {
                Seen::Handled { event: e, arg, .. } if e == event => Some(arg.clone()),
                _ => None,
            })
            .collect()
    }
}

pub(crate) fn disconnected_of(sid: &str) -> impl Fn(&Seen) -> bool + '_ {
    move |s| matches!(s, Seen::Disconnected { sid: x, .. } if x == sid)
}

pub(crate) fn reason_of(s: &Seen) -> String {
    match s {
        Seen::Disconnected { reason, .. } => reason.clone(),
        other => panic!("not a disconnect: {other:?}"),
    }
}
