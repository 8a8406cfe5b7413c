//! A library client that records what happens to it ([`Watched`]).

use super::*;

/// The client's own events (the rest are the server's).
pub(crate) const LIFECYCLE: [&str; 7] = [
    "connect",
    "connect_error",
    "disconnect",
    "reconnect_attempt",
    "reconnect",
    "reconnect_error",
    "reconnect_failed",
];

/// One of the client's own events: its name, its first argument (or null) and when it fired.
#[derive(Debug, Clone)]
pub(crate) struct Life {
    pub(crate) name: String,
    pub(crate) arg: Value,
    pub(crate) at: Instant,
}

pub(crate) type AckSlot = Rc<RefCell<Vec<Result<AckReply, AckError>>>>;

/// Events a client received from the server: name and arguments.
pub(crate) type Inbox = Rc<RefCell<Vec<(String, Vec<Value>)>>>;

/// A library client whose listeners, registered once before its first turn, record its own
/// events (`life`) and the server's events (`inbox`, as `name` and arguments).
pub(crate) struct Watched {
    pub(crate) client: Client,
    pub(crate) life: Rc<RefCell<Vec<Life>>>,
    pub(crate) inbox: Inbox,
}

impl Watched {
    /// Starts connecting; does not wait.
    pub(crate) fn start(opts: ClientOptions) -> Watched {
        let mut client = Client::connect(opts).expect("Client::connect");
        let life: Rc<RefCell<Vec<Life>>> = Rc::default();
        for name in LIFECYCLE {
            let log = life.clone();
            client.io().on(name, move |_, ev| {
                log.borrow_mut().push(Life {
                    name: ev.name.clone(),
                    arg: ev.args.first().cloned().unwrap_or(Value::Null),
                    at: Instant::now(),
                });
            });
        }
        let inbox: Inbox = Rc::default();
        let log = inbox.clone();
        client.io().on_any(move |_, ev| {
            // `on_any` sees the `reconnect_*` events too: they are not reserved names.
            if !LIFECYCLE.contains(&ev.name.as_str()) {
                log.borrow_mut().push((ev.name.clone(), ev.args.clone()));
            }
        });
        Watched {
            client,
            life,
            inbox,
        }
    }

    /// Connects and waits for the server's CONNECT reply.
    pub(crate) fn connect(opts: ClientOptions) -> Watched {
        let mut w = Watched::start(opts);
        w.run_until("the first connect", |io| io.is_connected());
        w
    }

    pub(crate) fn io(&mut self) -> &mut ClientIo {
        self.client.io()
    }

    pub(crate) fn sid(&mut self) -> String {
        self.io()
            .id()
            .expect("a connected client has the id from the server's CONNECT")
            .to_string()
    }

    /// Steps the client until `done`, failing the test after [`WAIT`].
    pub(crate) fn run_until(&mut self, what: &str, done: impl FnMut(&mut ClientIo) -> bool) {
        let ok = self.client.run_until(WAIT, done).expect("client turn");
        assert!(
            ok,
            "{what}: not within {WAIT:?}; the client's own events were {:?}",
            self.names()
        );
    }

    /// Steps the client for `how_long` whatever happens (for claims that something does not
    /// happen: the window is long enough for it to have happened many times over).
    pub(crate) fn run_for(&mut self, how_long: Duration) {
        let _ = self
            .client
            .run_until(how_long, |_| false)
            .expect("client turn");
    }

    /// Steps the client until it has fired `name` `n` times.
    pub(crate) fn run_until_fired(&mut self, name: &str, n: usize) {
        let life = self.life.clone();
        let name_owned = name.to_string();
        self.run_until(&format!("{name} fired {n} times"), move |_| {
            life.borrow()
                .iter()
                .filter(|l| l.name == name_owned)
                .count()
                >= n
        });
    }

    /// Steps the client until its inbox holds an event `name` with first argument `arg`.
    pub(crate) fn run_until_got(&mut self, name: &str, arg: Value) {
        let inbox = self.inbox.clone();
        let name_owned = name.to_string();
        let want = arg.clone();
        self.run_until(&format!("the event {name} {arg}"), move |_| {
            inbox
                .borrow()
                .iter()
                .any(|(n, a)| *n == name_owned && a.first() == Some(&want))
        });
    }

    /// The client's own events so far, as `name arg` lines.
    pub(crate) fn names(&self) -> Vec<String> {
        self.life
            .borrow()
            .iter()
            .map(|l| match &l.arg {
                Value::Null => l.name.clone(),
                a => format!("{} {a}", l.name),
            })
            .collect()
    }

    pub(crate) fn count(&self, name: &str) -> usize {
        self.life.borrow().iter().filter(|l| l.name == name).count()
    }

    /// Emits `event` asking for an ack; every callback run is added to the slot.
    pub(crate) fn emit_ack(&mut self, event: &str, args: Vec<Value>) -> AckSlot {
        let slot: AckSlot = Rc::default();
        let fill = slot.clone();
        self.io()
            .emit_with_ack(event, args, vec![], ACK_TIMEOUT, move |_, r| {
                fill.borrow_mut().push(r)
            })
            .unwrap_or_else(|e| panic!("emit_with_ack {event:?}: {e}"));
        slot
    }

    /// Emits `event` with `args`, waits for its one answer and returns its arguments.
    pub(crate) fn round_trip(&mut self, event: &str, args: Vec<Value>) -> Vec<Value> {
        let slot = self.emit_ack(event, args);
        let s = slot.clone();
        self.run_until(&format!("the answer to {event}"), move |_| {
            !s.borrow().is_empty()
        });
        let answers = slot.borrow();
        assert_eq!(answers.len(), 1, "one answer per acked emit: {answers:?}");
        match &answers[0] {
            Ok(reply) => reply.args.clone(),
            Err(e) => panic!("{event} got no answer: {e}"),
        }
    }
}
