//! The lab server: a [`RunningServer`] with handlers that answer, misbehave on purpose and
//! report what the server saw ([`Report`]) over a channel.

use super::*;

/// What the lab server tells the test thread.
#[derive(Debug, Clone)]
pub(crate) enum Report {
    /// A listener for one of the library's own event names ran for socket `sid`; `rooms`
    /// are the socket's rooms at that moment.
    Fired {
        sid: String,
        name: String,
        args: Vec<Value>,
        rooms: Vec<String>,
    },
    /// A socket joined the admin namespace (past the middleware).
    Admitted { sid: String, auth: Option<Value> },
    /// An `upload` event arrived.
    Upload {
        sid: String,
        attachments: Vec<Vec<u8>>,
    },
    /// An ack callback of an emit the test made on the server ran.
    Ack {
        tag: String,
        result: Result<AckReply, AckError>,
    },
}

/// The handlers of the lab server.
pub(crate) fn install_lab(io: &mut Io, tx: Sender<Report>) {
    io.insert_data(tx.clone());
    let admitted = tx.clone();
    io.on_connection("/", move |io, sid| {
        // Listeners on the reserved names: `disconnecting` and `disconnect` are real events
        // with the reason as their argument; `connect` and `connect_error` never fire on a
        // server socket, so a report of them is a bug.
        for name in RESERVED {
            let tx = tx.clone();
            io.on(sid, name, move |io, ev| {
                let _ = tx.send(Report::Fired {
                    sid: ev.socket.to_string(),
                    name: ev.name.clone(),
                    args: ev.args.clone(),
                    rooms: io.rooms_of(&ev.socket),
                });
            });
        }
        io.on(sid, "echo", |io, ev| io.ack(ev, ev.args.clone()));
        io.on(sid, "echo-bin", |io, ev| {
            let lens = ev.attachments.iter().map(|a| json!(a.len())).collect();
            io.ack_with(ev, lens, ev.attachments.clone());
        });
        io.on(sid, "sum", |io, ev| {
            let total: i64 = ev.args.iter().filter_map(Value::as_i64).sum();
            io.ack(ev, vec![json!(total), json!("sum")]);
        });
        io.on(sid, "shout", |io, ev| {
            let n = io
                .broadcast_from(&ev.socket)
                .emit("shout", ev.args.clone())
                .ok();
            io.ack(ev, vec![json!(n)]);
        });
        io.on(sid, "everyone", |io, ev| {
            let n = io.broadcast("/").emit("everyone", ev.args.clone()).ok();
            io.ack(ev, vec![json!(n)]);
        });
        let uploads = tx.clone();
        io.on(sid, "upload", move |io, ev| {
            let _ = uploads.send(Report::Upload {
                sid: ev.socket.to_string(),
                attachments: ev.attachments.clone(),
            });
            io.ack(ev, vec![json!(ev.attachments.len())]);
        });
        io.on(sid, "boom", |_, _| {
            panic!("the `boom` listener panics on purpose")
        });
        io.on(sid, "burst", |io, ev| {
            // Three events in one handler: one write, so they usually arrive in one read.
            for i in 0..3 {
                let _ = io.emit(&ev.socket, "n", vec![json!(i)]);
            }
        });
        // `silent` has no listener: acks asked for it time out.
    });
    io.use_middleware(ADMIN, |hs| {
        let token = hs.auth.as_ref().and_then(|a| a.get("token"));
        match token.and_then(Value::as_str) {
            Some("letmein") => Ok(()),
            Some(_) => Err(BAD_TOKEN.into()),
            None => Err(NO_TOKEN.into()),
        }
    });
    io.on_connection(ADMIN, move |io, sid| {
        let _ = admitted.send(Report::Admitted {
            sid: sid.to_string(),
            auth: io.handshake(sid).and_then(|h| h.auth.clone()),
        });
    });
}

/// The reports from the lab server, with those already received and not yet asked for.
pub(crate) struct Reports {
    pub(crate) rx: Receiver<Report>,
    pub(crate) kept: Vec<Report>,
}

impl Reports {
    /// Waits (at most [`WAIT`]) for a report that `pred` accepts and takes it out.
    pub(crate) fn take(&mut self, what: &str, pred: impl Fn(&Report) -> bool) -> Report {
        if let Some(i) = self.kept.iter().position(&pred) {
            return self.kept.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(r) if pred(&r) => return r,
                Ok(r) => self.kept.push(r),
                Err(_) => panic!(
                    "the server never reported {what} (within {WAIT:?}); it reported {:#?}",
                    self.kept
                ),
            }
        }
    }

    /// Every report received so far, without waiting.
    pub(crate) fn received(&mut self) -> &[Report] {
        while let Ok(r) = self.rx.try_recv() {
            self.kept.push(r);
        }
        &self.kept
    }
}

/// The reason in a `disconnecting` or `disconnect` report.
pub(crate) fn reason_in(r: &Report) -> String {
    match r {
        Report::Fired { args, .. } => args
            .first()
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("a disconnect without a reason: {r:?}"))
            .to_string(),
        other => panic!("not a report of a listener: {other:?}"),
    }
}

/// Steps `peers` until the server reports what `pred` accepts, and takes that report. The
/// clients must be stepped meanwhile: what they queued (a DISCONNECT, an answer) leaves on a
/// turn.
pub(crate) fn await_report(
    reports: &mut Reports,
    peers: &mut [&mut Peer],
    what: &str,
    pred: impl Fn(&Report) -> bool,
) -> Report {
    pump(peers, what, |_| reports.received().iter().any(&pred));
    reports.take(what, pred)
}

/// The reason the server's `disconnect` listener got for socket `sid`.
pub(crate) fn await_reason(reports: &mut Reports, peers: &mut [&mut Peer], sid: &str) -> String {
    let what = format!("the disconnect of {sid}");
    reason_in(&await_report(reports, peers, &what, |r| {
        fired(r, sid, "disconnect")
    }))
}

/// The attachments of the next upload the server got from `peer` (stepped meanwhile).
pub(crate) fn await_upload(reports: &mut Reports, peer: &mut Peer) -> Vec<Vec<u8>> {
    let sid = peer.sid.clone();
    let r = await_report(
        reports,
        &mut [peer],
        "the upload",
        |r| matches!(r, Report::Upload { sid: s, .. } if *s == sid),
    );
    let Report::Upload { attachments, .. } = r else {
        unreachable!("await_report returned a report its predicate refused: {r:?}")
    };
    attachments
}

/// The result the server's ack callback tagged `tag` got.
pub(crate) fn await_ack(
    reports: &mut Reports,
    peers: &mut [&mut Peer],
    tag: &str,
) -> Result<AckReply, AckError> {
    let what = format!("the ack callback {tag:?}");
    match await_report(
        reports,
        peers,
        &what,
        |r| matches!(r, Report::Ack { tag: t, .. } if t == tag),
    ) {
        Report::Ack { result, .. } => result,
        other => unreachable!("await_report returned a report its predicate refused: {other:?}"),
    }
}

pub(crate) fn fired(r: &Report, sid: &str, event: &str) -> bool {
    matches!(r, Report::Fired { sid: s, name, .. } if s == sid && name == event)
}

/// A lab server on its own thread.
pub(crate) struct Lab {
    pub(crate) server: RunningServer,
    pub(crate) reports: Reports,
}

impl Lab {
    pub(crate) fn start() -> Lab {
        Lab::with(ServerConfig::default())
    }

    pub(crate) fn with(config: ServerConfig) -> Lab {
        let (tx, rx) = mpsc::channel();
        let server = RunningServer::start(config, any_port(), move |io| install_lab(io, tx))
            .expect("the lab server starts on 127.0.0.1:0");
        assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
        assert_ne!(server.addr.port(), 0, "port 0 must become a real port");
        Lab {
            server,
            reports: Reports {
                rx,
                kept: Vec::new(),
            },
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub(crate) fn handle(&self) -> ServerHandle {
        self.server.handle.clone()
    }

    /// Runs `f` on the server's thread and returns what it returned.
    pub(crate) fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Io) -> T + Send + 'static,
    ) -> T {
        ask(&self.server.handle, f)
    }

    /// Stops the server gracefully; the reports stay readable.
    pub(crate) fn stop(self) -> Reports {
        let Lab { server, reports } = self;
        server.stop().expect("the server stops cleanly");
        reports
    }
}

/// The lab's report sender, for closures the test runs on the server thread.
pub(crate) fn lab_tx(io: &Io) -> Sender<Report> {
    io.data::<Sender<Report>>()
        .cloned()
        .expect("install_lab keeps its report sender in Io's data")
}

/// An ack callback for the server side that reports its result under `tag`.
pub(crate) fn ack_reporter(
    tx: Sender<Report>,
    tag: &str,
) -> impl FnOnce(&mut Io, Result<AckReply, AckError>) + 'static {
    let tag = tag.to_string();
    move |_, result| {
        let _ = tx.send(Report::Ack { tag, result });
    }
}

/// Records the arguments of every `disconnect` event a client fires.
pub(crate) fn record_disconnects(peer: &mut Peer) -> Rc<RefCell<Vec<Value>>> {
    let log: Rc<RefCell<Vec<Value>>> = Rc::default();
    let l = log.clone();
    peer.io().on("disconnect", move |_, ev| {
        l.borrow_mut().extend(ev.args.iter().cloned());
    });
    log
}
