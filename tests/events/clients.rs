//! Library clients stepped on the test thread ([`Peer`]), and the [`fence`] that makes a
//! negative claim ("C did not get it") checkable.

use super::*;

/// One event as a client received it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Got {
    pub(crate) name: String,
    pub(crate) args: Vec<Value>,
    pub(crate) attachments: Vec<Vec<u8>>,
}

impl Got {
    /// `name [args]`, for comparing lists of events.
    pub(crate) fn line(&self) -> String {
        format!("{} {}", self.name, json!(self.args))
    }
}

pub(crate) type Inbox = Rc<RefCell<Vec<Got>>>;

/// A library client that records every event it receives.
pub(crate) struct Peer {
    pub(crate) client: Client,
    pub(crate) inbox: Inbox,
    pub(crate) sid: String,
}

impl Peer {
    pub(crate) fn connect(addr: SocketAddr) -> Peer {
        Peer::connect_with(ClientOptions::new(addr))
    }

    pub(crate) fn connect_with(opts: ClientOptions) -> Peer {
        let mut client = Client::connect(opts).expect("Client::connect");
        let inbox: Inbox = Rc::default();
        let log = inbox.clone();
        client.io().on_any(move |_, ev| {
            log.borrow_mut().push(Got {
                name: ev.name.clone(),
                args: ev.args.clone(),
                attachments: ev.attachments.clone(),
            });
        });
        let settled = client
            .run_until(WAIT, |io| io.state() != ClientState::Connecting)
            .expect("client turn");
        assert!(
            settled && client.io().is_connected(),
            "the client did not connect: state {:?}, connect_error {:?}",
            client.io().state(),
            client.io().connect_error()
        );
        // Connected means the server's CONNECT reply, which carries the id, arrived.
        let sid = client.io().id().expect("a connected client has an id");
        let sid = sid.to_string();
        Peer { client, inbox, sid }
    }

    pub(crate) fn io(&mut self) -> &mut ClientIo {
        self.client.io()
    }

    /// Steps this client until `done`, failing the test after [`WAIT`].
    pub(crate) fn run_until(&mut self, what: &str, done: impl FnMut(&mut ClientIo) -> bool) {
        let ok = self.client.run_until(WAIT, done).expect("client turn");
        assert!(ok, "{what}: not within {WAIT:?}");
    }

    pub(crate) fn run_until_disconnected(&mut self) {
        self.run_until("the client disconnects", |io| {
            io.state() == ClientState::Disconnected
        });
    }

    /// Emits `event` asking for an ack; the slot fills when the callback runs.
    pub(crate) fn emit_ack(
        &mut self,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> AckSlot {
        let slot: AckSlot = Rc::default();
        let fill = slot.clone();
        self.io()
            .emit_with_ack(event, args, attachments, timeout, move |_, r| {
                let old = fill.borrow_mut().replace(r);
                assert!(old.is_none(), "an ack callback ran twice");
            })
            .unwrap_or_else(|e| panic!("emit_with_ack {event:?}: {e}"));
        slot
    }

    /// Steps until the ack callback behind `slot` has run; returns what it got.
    pub(crate) fn wait_ack(&mut self, slot: &AckSlot) -> Result<AckReply, AckError> {
        let s = slot.clone();
        self.run_until("the ack callback", move |_| s.borrow().is_some());
        slot.borrow_mut()
            .take()
            .expect("run_until returned because the slot is full")
    }

    /// An `echo` round trip: proves this client and the server still talk.
    pub(crate) fn assert_echo(&mut self, text: &str) {
        let slot = self.emit_ack("echo", vec![json!(text)], vec![], WAIT);
        let reply = self.wait_ack(&slot).expect("the echo is answered");
        assert_eq!(reply.args, vec![json!(text)]);
    }
}

pub(crate) type AckSlot = Rc<RefCell<Option<Result<AckReply, AckError>>>>;

/// Steps every client in turn until `done`, failing the test after [`WAIT`].
pub(crate) fn pump(
    peers: &mut [&mut Peer],
    what: &str,
    mut done: impl FnMut(&[&mut Peer]) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        if done(peers) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        if peers.is_empty() {
            thread::sleep(Duration::from_millis(5));
        }
        for p in peers.iter_mut() {
            p.client
                .turn(Some(Duration::from_millis(5)))
                .expect("client turn");
        }
    }
}

/// Numbers the fences of all tests (they run in parallel; any unique number will do).
pub(crate) static FENCES: AtomicU64 = AtomicU64::new(0);

/// Broadcasts a numbered `fence` to namespace `/` and waits until every peer has it; returns
/// what each peer received before it (and takes that out of its inbox).
pub(crate) fn fence(handle: &ServerHandle, peers: &mut [&mut Peer]) -> Vec<Vec<String>> {
    let n = FENCES.fetch_add(1, Ordering::Relaxed);
    handle
        .run(move |io| {
            let _ = io.broadcast("/").emit("fence", vec![json!(n)]);
        })
        .expect("the server is running");
    let is_this = move |g: &Got| g.name == "fence" && g.args == [json!(n)];
    pump(peers, "every client gets the fence", |ps| {
        ps.iter().all(|p| p.inbox.borrow().iter().any(is_this))
    });
    peers
        .iter()
        .map(|p| {
            let mut inbox = p.inbox.borrow_mut();
            // `pump` returned, so every inbox holds this fence.
            let at = inbox
                .iter()
                .position(is_this)
                .expect("pump saw the fence here");
            let before: Vec<Got> = inbox.drain(..=at).collect();
            before[..at]
                .iter()
                .filter(|g| g.name != "fence")
                .map(Got::line)
                .collect()
        })
        .collect()
}
