//! User callbacks that panic (issue 9, item 2), one test per kind of callback per side.
//!
//! The policy under test (`src/events/guard.rs`): a panic in any callback the application gives
//! the event layer is caught, counted (server: `EventStats::handler_panics`; client:
//! `ClientIo::callback_panics`), printed once per callback name, and closes only the socket it
//! concerns: on the server that socket's connection, reason `server error`, while everyone else
//! is served on; on the client its own connection, reason `client error`, after which it comes
//! back as after any lost connection.
//!
//! Each test starts a [`Lab`]: a [`RunningServer`] on 127.0.0.1:0 whose base handlers report
//! every socket that joins and leaves (with the reason) over an mpsc channel, answer `echo`,
//! and never answer `silent`. A test adds the one panicking callback it is about. The server
//! tests keep a bystander client connected through the panic and check afterwards that it is
//! still connected, still gets answers and still gets broadcasts. The client tests check that
//! the client closed its connection with `client error`, got `connect` again and can do a
//! round trip, while the server saw it leave and join again. What a panic prints is read from
//! a child run of this same binary (`a_panic_is_printed_once_per_callback_name`).
//!
//! Nothing waits without a bound: every wait is at most [`WAIT`], and the client is stepped
//! with bounded `run_until`/`turn` calls on the test thread.

mod common;
use common::{any_port, ask, WAIT};

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socklab::events::{
    reasons, AckError, AckReply, Client, ClientIo, ClientOptions, ClientState, Emit, Io,
    RunningServer, ServerConfig,
};

/// A short ack timeout, for the tests whose point is the timeout.
const SHORT: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// The lab server
// ---------------------------------------------------------------------------------------------

/// What the lab server tells the test thread.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// A socket joined `/` (its connection handlers are running).
    Joined { sid: String, auth: Option<Value> },
    /// A socket's `disconnect` listener ran, with this reason.
    Left { sid: String, reason: String },
    /// A callback under test ran with this (reported just before it panics).
    Ran(String),
}

/// A server on its own thread and what it reported so far.
struct Lab {
    server: RunningServer,
    rx: Receiver<Seen>,
    /// Every report received so far: waits search it, so none is lost to an earlier wait.
    seen: Vec<Seen>,
    /// For callbacks a test installs later through [`ask`].
    tx: Sender<Seen>,
}

impl Lab {
    /// The base handlers, then `extra` (a test's panicking callback). Connection handlers run
    /// in the order they were added, so the base one has registered the `disconnect` reporter
    /// before an extra connection handler can panic.
    fn start(extra: impl FnOnce(&mut Io, &Sender<Seen>) + Send + 'static) -> Lab {
        let (tx, rx) = mpsc::channel();
        let base = tx.clone();
        let server = RunningServer::start(ServerConfig::default(), any_port(), move |io| {
            let tx = base.clone();
            io.on_connection("/", move |io, sid| {
                let auth = io.handshake(sid).and_then(|h| h.auth.clone());
                let _ = tx.send(Seen::Joined {
                    sid: sid.to_string(),
                    auth,
                });
                let left = tx.clone();
                io.on(sid, "disconnect", move |_, ev| {
                    let reason = ev.args.first().and_then(Value::as_str).unwrap_or("");
                    let _ = left.send(Seen::Left {
                        sid: ev.socket.to_string(),
                        reason: reason.to_string(),
                    });
                });
                io.on(sid, "echo", |io, ev| io.ack(ev, ev.args.clone()));
                let silent = tx.clone();
                io.on(sid, "silent", move |_, ev| {
                    let _ = silent.send(Seen::Ran(format!("silent from {}", ev.socket)));
                });
            });
            extra(io, &base);
        })
        .expect("the lab server starts on 127.0.0.1:0");
        Lab {
            server,
            rx,
            seen: Vec::new(),
            tx,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn ask<T: Send + 'static>(&self, f: impl FnOnce(&mut Io) -> T + Send + 'static) -> T {
        ask(&self.server.handle, f)
    }

    fn panics(&self) -> u64 {
        self.ask(|io| io.stats().handler_panics)
    }

    /// Waits for a report matching `pred`, stepping `peers` meanwhile (a client does nothing
    /// unless its loop is turned: it must answer, send, or notice a close).
    fn wait(&mut self, what: &str, peers: &mut [&mut Peer], pred: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + WAIT;
        loop {
            self.seen.extend(self.rx.try_iter());
            if let Some(s) = self.seen.iter().find(|s| pred(s)) {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}; the server reported {:?}",
                self.seen
            );
            if peers.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
            for p in peers.iter_mut() {
                p.client
                    .turn(Some(Duration::from_millis(10)))
                    .expect("client turn");
            }
        }
    }

    /// Waits until socket `sid` has left; returns the reason.
    fn left(&mut self, sid: &str, peers: &mut [&mut Peer]) -> String {
        let s = self.wait(
            &format!("socket {sid} leaves"),
            peers,
            |s| matches!(s, Seen::Left { sid: x, .. } if x == sid),
        );
        match s {
            Seen::Left { reason, .. } => reason,
            _ => unreachable!("the predicate matched only Left"),
        }
    }

    /// The sockets that joined, in order.
    fn joined(&mut self) -> Vec<String> {
        self.seen.extend(self.rx.try_iter());
        let sids = self.seen.iter().filter_map(|s| match s {
            Seen::Joined { sid, .. } => Some(sid.clone()),
            _ => None,
        });
        sids.collect()
    }

    /// After a server-side panic: exactly `panics` were counted, and `bystander` is still
    /// connected, still answered, and still gets broadcasts (the server goes on).
    fn assert_serves(&mut self, bystander: &mut Peer, panics: u64) {
        assert_eq!(self.panics(), panics, "handler_panics");
        let sid = bystander.sid();
        assert!(
            self.ask(move |io| io.is_connected(&sid)),
            "the bystander is still connected on the server"
        );
        bystander.echo("the bystander is still answered");
        let n = json!(bystander.news.borrow().len());
        self.server
            .handle
            .broadcast("/", None, "news", vec![n.clone()])
            .expect("the server is running");
        let news = bystander.news.clone();
        bystander.run_until("the bystander gets the broadcast", move |_| {
            news.borrow().contains(&n)
        });
        assert!(bystander.io().is_connected());
        assert_eq!(bystander.io().callback_panics(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// A library client that records its own `connect`, `connect_error` and `disconnect` events
/// (as `"connect"`, `"connect_error MESSAGE"`, `"disconnect REASON"`) and the arguments of
/// every `news` event. The recorders are registered first, so a panicking listener a test adds
/// later cannot keep them from running.
struct Peer {
    client: Client,
    life: Rc<RefCell<Vec<String>>>,
    news: Rc<RefCell<Vec<Value>>>,
}

/// Options for the lab: loopback, and a quick, predictable reconnection (10 ms, no jitter)
/// so that a client closed by its own panic is back well within [`WAIT`].
fn options(addr: SocketAddr) -> ClientOptions {
    let mut opts = ClientOptions::new(addr);
    opts.reconnection_delay = Duration::from_millis(10);
    opts.reconnection_delay_max = Duration::from_millis(50);
    opts.randomization_factor = 0.0;
    opts
}

/// Options for a server test's victim: it does not come back, so the server's one panic
/// stays one (a victim coming back would trigger the same panic again).
fn victim_options(addr: SocketAddr, auth: Option<Value>) -> ClientOptions {
    let mut opts = options(addr);
    opts.reconnection = false;
    opts.auth = auth;
    opts
}

impl Peer {
    /// Starts connecting; does not wait.
    fn start(opts: ClientOptions) -> Peer {
        let mut client = Client::connect(opts).expect("Client::connect");
        let life: Rc<RefCell<Vec<String>>> = Rc::default();
        for name in ["connect", "connect_error", "disconnect"] {
            let log = life.clone();
            client.io().on(name, move |_, ev| {
                let line = match ev.args.first().and_then(Value::as_str) {
                    Some(arg) => format!("{} {arg}", ev.name),
                    None => ev.name.clone(),
                };
                log.borrow_mut().push(line);
            });
        }
        let news: Rc<RefCell<Vec<Value>>> = Rc::default();
        let log = news.clone();
        client.io().on("news", move |_, ev| {
            log.borrow_mut()
                .push(ev.args.first().cloned().unwrap_or(Value::Null));
        });
        Peer { client, life, news }
    }

    /// Connects and waits for the server's CONNECT reply.
    fn connect(opts: ClientOptions) -> Peer {
        let mut p = Peer::start(opts);
        p.run_until("the first connect", |io| io.is_connected());
        p
    }

    fn io(&mut self) -> &mut ClientIo {
        self.client.io()
    }

    fn sid(&mut self) -> String {
        let id = self.io().id().expect("a connected client has its id");
        id.to_string()
    }

    /// Steps the client until `done`, failing the test after [`WAIT`].
    fn run_until(&mut self, what: &str, done: impl FnMut(&mut ClientIo) -> bool) {
        let ok = self.client.run_until(WAIT, done).expect("client turn");
        assert!(ok, "{what}: not within {WAIT:?}; life {:?}", self.life());
    }

    fn life(&self) -> Vec<String> {
        self.life.borrow().clone()
    }

    fn count(&self, line: &str) -> usize {
        self.life.borrow().iter().filter(|l| *l == line).count()
    }

    /// Emits `event` asking for an ack within `timeout`; the callback's result lands in the
    /// returned slot, then `then` runs (a test's panic).
    fn emit_ack(
        &mut self,
        event: &str,
        timeout: Duration,
        then: impl FnOnce(&Result<AckReply, AckError>) + 'static,
    ) -> Rc<RefCell<Option<Result<AckReply, AckError>>>> {
        let slot: Rc<RefCell<Option<_>>> = Rc::default();
        let fill = slot.clone();
        self.io()
            .emit_with_ack(event, vec![json!(event)], vec![], timeout, move |_, r| {
                *fill.borrow_mut() = Some(r.clone());
                then(&r);
            })
            .unwrap_or_else(|e| panic!("emit_with_ack {event:?}: {e}"));
        slot
    }

    /// A round trip: `echo` comes back with its argument.
    fn echo(&mut self, what: &str) {
        let slot = self.emit_ack("echo", WAIT, |_| {});
        let s = slot.clone();
        self.run_until(what, move |_| s.borrow().is_some());
        let got = slot.borrow_mut().take();
        match got {
            Some(Ok(reply)) => assert_eq!(reply.args, vec![json!("echo")], "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// Both reasons a peer may see when the other side closes its connection under it: a FIN
/// if nothing was unread, a reset otherwise (the closing side aborts).
fn cut(reason: &str) -> bool {
    reason == reasons::TRANSPORT_CLOSE || reason == reasons::TRANSPORT_ERROR
}

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

/// A server test's usual shape: a bystander and a victim connect, `trigger` makes the victim
/// hit the panicking callback, and the victim's socket leaves with `reason`. Returns the
/// lab, the bystander and the victim for further checks.
fn server_case(
    extra: impl FnOnce(&mut Io, &Sender<Seen>) + Send + 'static,
    trigger: impl FnOnce(&mut Lab, &mut Peer),
    reason: &str,
) -> (Lab, Peer, Peer) {
    let mut lab = Lab::start(extra);
    let bystander = Peer::connect(options(lab.addr()));
    let mut victim = Peer::connect(victim_options(lab.addr(), None));
    let sid = victim.sid();
    trigger(&mut lab, &mut victim);
    assert_eq!(lab.left(&sid, &mut [&mut victim]), reason, "why {sid} left");
    (lab, bystander, victim)
}

/// The victim saw its connection cut under it (by the server's close after the panic) and,
/// with reconnection off, ended there; its own callbacks never panicked.
fn assert_cut(victim: &mut Peer) {
    victim.run_until("the victim sees its connection end", |io| {
        io.state() == ClientState::Disconnected
    });
    let reason = victim.io().disconnect_reason().unwrap_or("").to_string();
    assert!(cut(&reason), "the victim's reason: {reason:?}");
    assert_eq!(victim.io().callback_panics(), 0);
}

#[test]
fn server_event_listener_panic_closes_only_that_socket() {
    let (mut lab, mut bystander, mut victim) = server_case(
        |io, _| {
            io.on_connection("/", |io, sid| {
                io.on(sid, "boom", |_, _| {
                    panic!("the boom listener panics on purpose")
                });
            })
        },
        |_, victim| victim.io().emit("boom", vec![]).expect("emit boom"),
        reasons::SERVER_ERROR,
    );
    assert_cut(&mut victim);
    lab.assert_serves(&mut bystander, 1);
}

#[test]
fn server_on_any_listener_panic_closes_only_that_socket() {
    let (mut lab, mut bystander, mut victim) = server_case(
        |io, _| {
            io.on_connection("/", |io, sid| {
                io.on_any(sid, |_, ev| {
                    if ev.name == "anything" {
                        panic!("the catch-all listener panics on purpose");
                    }
                });
            })
        },
        |_, victim| victim.io().emit("anything", vec![]).expect("emit"),
        reasons::SERVER_ERROR,
    );
    assert_cut(&mut victim);
    lab.assert_serves(&mut bystander, 1);
}

/// Registers, on every socket, a listener for `event` (`disconnecting` or `disconnect`) that
/// panics. The socket is leaving anyway: nothing more to close, and the base `disconnect`
/// reporter still runs.
fn panic_when_leaving(event: &'static str) -> impl FnOnce(&mut Io, &Sender<Seen>) + Send {
    move |io, _| {
        io.on_connection("/", move |io, sid| {
            io.on(sid, event, |_, _| {
                panic!("a leaving listener panics on purpose")
            });
        })
    }
}

#[test]
fn server_disconnecting_listener_panic_is_counted_and_the_socket_leaves() {
    let (mut lab, mut bystander, _victim) = server_case(
        panic_when_leaving("disconnecting"),
        |_, victim| victim.io().disconnect(),
        reasons::CLIENT_NAMESPACE_DISCONNECT,
    );
    // Only the bystander joined after that (nobody came back) and it still counts once.
    lab.assert_serves(&mut bystander, 1);
}

#[test]
fn server_disconnect_listener_panic_is_counted_and_the_socket_leaves() {
    let (mut lab, mut bystander, _victim) = server_case(
        panic_when_leaving("disconnect"),
        |_, victim| victim.io().disconnect(),
        reasons::CLIENT_NAMESPACE_DISCONNECT,
    );
    lab.assert_serves(&mut bystander, 1);
    // The bystander's own leave runs its panicking listener too: one more, and the server
    // still answers the next thing asked of it.
    let sid = bystander.sid();
    bystander.io().disconnect();
    let reason = lab.left(&sid, &mut [&mut bystander]);
    assert_eq!(reason, reasons::CLIENT_NAMESPACE_DISCONNECT);
    assert_eq!(lab.panics(), 2);
}

/// Emits `q` to socket `sid` from the server's thread, with an ack callback that reports its
/// result and then panics.
fn emit_q_with_panicking_ack(lab: &Lab, sid: String, timeout: Duration) {
    let tx = lab.tx.clone();
    lab.ask(move |io| {
        let emit = Emit::new("q").ack(timeout, move |_, r| {
            let _ = tx.send(Seen::Ran(format!("ack {r:?}")));
            panic!("the ack callback panics on purpose");
        });
        io.send(&sid, emit).expect("the victim is connected");
    });
}

fn ran(prefix: &'static str) -> impl Fn(&Seen) -> bool {
    move |s| matches!(s, Seen::Ran(what) if what.starts_with(prefix))
}

#[test]
fn server_ack_callback_panic_on_the_reply_closes_that_socket() {
    let (mut lab, mut bystander, mut victim) = server_case(
        |_, _| {},
        |lab, victim| {
            victim
                .io()
                .on("q", |io, ev| io.ack(ev, vec![json!("answer")]));
            let sid = victim.sid();
            emit_q_with_panicking_ack(lab, sid, WAIT);
        },
        reasons::SERVER_ERROR,
    );
    lab.wait("the ack callback got the answer", &mut [], ran("ack Ok"));
    assert_cut(&mut victim);
    lab.assert_serves(&mut bystander, 1);
}

#[test]
fn server_ack_callback_panic_on_timeout_closes_that_socket() {
    let (mut lab, mut bystander, mut victim) = server_case(
        |_, _| {},
        // The victim has no `q` listener: it never answers, the short timeout fires.
        |lab, victim| emit_q_with_panicking_ack(lab, victim.sid(), SHORT),
        reasons::SERVER_ERROR,
    );
    lab.wait(
        "the ack callback timed out",
        &mut [],
        ran("ack Err(Timeout)"),
    );
    assert_cut(&mut victim);
    lab.assert_serves(&mut bystander, 1);
}

/// The case from issue 9: an ack callback that panics on `Disconnected` used to kill the
/// server thread. Now it is counted, and the server serves old and new clients.
#[test]
fn server_ack_callback_panic_on_disconnected_does_not_stop_the_server() {
    let (mut lab, mut bystander, _victim) = server_case(
        |_, _| {},
        |lab, victim| {
            // The ack is still pending (the victim never answers; the timeout is long) when
            // the victim leaves.
            emit_q_with_panicking_ack(lab, victim.sid(), WAIT);
            victim.io().disconnect();
        },
        reasons::CLIENT_NAMESPACE_DISCONNECT,
    );
    // The socket was gone already when the callback ran: nothing to close, only counted.
    let r = lab.wait("the ack failed", &mut [], ran("ack Err(Disconnected)"));
    assert_eq!(r, Seen::Ran("ack Err(Disconnected)".into()));
    lab.assert_serves(&mut bystander, 1);
    let mut newcomer = Peer::connect(options(lab.addr()));
    newcomer.echo("a client that comes after the panic is served");
    assert_eq!(lab.joined().len(), 3, "bystander, victim, newcomer");
}

/// Middleware and connection handlers run for every client: they panic only for the one
/// whose auth says so, so that the bystander gets in.
fn is_boom(auth: Option<&Value>) -> bool {
    auth.and_then(|a| a.get("boom")).is_some()
}

#[test]
fn server_middleware_panic_refuses_that_client_with_server_error() {
    let mut lab = Lab::start(|io, _| {
        io.use_middleware("/", |hs| {
            if is_boom(hs.auth.as_ref()) {
                panic!("the middleware panics on purpose");
            }
            Ok(())
        })
    });
    let mut bystander = Peer::connect(options(lab.addr()));
    let mut victim = Peer::start(victim_options(lab.addr(), Some(json!({"boom": 1}))));
    victim.run_until("the victim is refused", |io| {
        io.state() == ClientState::Disconnected
    });
    assert_eq!(victim.io().connect_error(), Some("server error"));
    assert_eq!(victim.life(), ["connect_error server error"]);
    assert_eq!(lab.ask(|io| io.stats().connects_refused), 1);
    assert_eq!(lab.joined().len(), 1, "only the bystander got a socket");
    lab.assert_serves(&mut bystander, 1);
}

#[test]
fn server_connection_handler_panic_closes_that_connection() {
    let mut lab = Lab::start(|io, _| {
        io.on_connection("/", |io, sid| {
            if is_boom(io.handshake(sid).and_then(|h| h.auth.as_ref())) {
                panic!("the connection handler panics on purpose");
            }
        })
    });
    let mut bystander = Peer::connect(options(lab.addr()));
    let mut victim = Peer::start(victim_options(lab.addr(), Some(json!({"boom": 1}))));
    // The victim may never learn its id (the CONNECT reply may be cut off): take it from the
    // server's report.
    let joined = lab.wait("the victim joins", &mut [&mut victim], |s| {
        matches!(s, Seen::Joined { auth: Some(_), .. })
    });
    let Seen::Joined { sid, .. } = joined else {
        unreachable!("the predicate matched only Joined")
    };
    assert_eq!(lab.left(&sid, &mut [&mut victim]), reasons::SERVER_ERROR);
    assert_cut(&mut victim);
    lab.assert_serves(&mut bystander, 1);
}

#[test]
fn server_handle_run_closure_panic_is_counted_and_the_server_goes_on() {
    let mut lab = Lab::start(|_, _| {});
    let mut bystander = Peer::connect(options(lab.addr()));
    lab.server
        .handle
        .run(|_| panic!("the closure panics on purpose"))
        .expect("the server is running");
    // `assert_serves` asks the server's thread, which handles its work in order: the
    // closure has run by the time the count is read.
    lab.assert_serves(&mut bystander, 1);
    assert!(lab.server.handle.run(|_| {}).is_ok(), "the loop is alive");
}

#[test]
fn server_tap_panic_removes_the_tap_and_counts_once() {
    let mut lab = Lab::start(|_, _| {});
    let mut bystander = Peer::connect(options(lab.addr()));
    lab.ask(|io| {
        // Counted on the loop thread (an Rc is fine there); the count comes back by `ask`.
        let calls = Rc::new(Cell::new(0u32));
        let c = calls.clone();
        io.set_tap(move |_| {
            c.set(c.get() + 1);
            panic!("the tap panics on purpose");
        });
        io.insert_data(calls);
    });
    // The tap meets the first frame out: this answer (which still goes out).
    bystander.echo("the first answer after the tap is set");
    // Many frames follow (answers and broadcasts, several times): the tap saw the first only.
    for _ in 0..3 {
        lab.assert_serves(&mut bystander, 1);
    }
    let tapped = lab.ask(|io| io.data::<Rc<Cell<u32>>>().map(|c| c.get()));
    assert_eq!(tapped, Some(1), "the tap was removed after its panic");
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// A client test's usual end: the client's callbacks panicked `panics` times in all, it
/// closed its connection with `client error`, got `connect` again (`connects` in all) and
/// does a round trip, while the server saw its first socket leave by a cut and a socket join
/// again.
fn assert_came_back(lab: &mut Lab, peer: &mut Peer, panics: u64, connects: usize) {
    let c = peer.life.clone();
    peer.run_until("the client is connected again", move |io| {
        io.is_connected() && c.borrow().iter().filter(|l| *l == "connect").count() >= connects
    });
    assert_eq!(peer.io().callback_panics(), panics, "callback_panics");
    let closed = format!("disconnect {}", reasons::CLIENT_ERROR);
    assert!(peer.count(&closed) >= 1, "life {:?}", peer.life());
    assert_eq!(peer.count("connect"), connects, "life {:?}", peer.life());
    peer.echo("a round trip after coming back");
    // The socket of the connection before this one (the same id if the session was
    // recovered: then its first leave is the one found).
    let joined = lab.joined();
    assert_eq!(
        joined.len(),
        connects,
        "the server saw the client come back"
    );
    let before = joined[connects - 2].clone();
    let reason = lab.left(&before, &mut [&mut *peer]);
    assert!(cut(&reason), "the server saw {before} leave: {reason:?}");
    assert_eq!(lab.panics(), 0, "no server callback panicked");
}

#[test]
fn client_event_listener_panic_reconnects_and_the_listener_stays() {
    let mut lab = Lab::start(|_, _| {});
    let mut peer = Peer::connect(options(lab.addr()));
    peer.io()
        .on("poke", |_, _| panic!("the poke listener panics on purpose"));
    for round in 1..=2 {
        let sid = peer.sid();
        lab.ask(move |io| io.emit(&sid, "poke", vec![]).expect("emit poke"));
        peer.run_until("the poke listener panicked", move |io| {
            io.callback_panics() == round
        });
        // The second round shows the listener stayed registered across the panic.
        assert_came_back(&mut lab, &mut peer, round, 1 + round as usize);
    }
}

#[test]
fn client_connect_listener_panic_reconnects() {
    let mut lab = Lab::start(|_, _| {});
    let mut peer = Peer::start(options(lab.addr()));
    // Only the first time: a `connect` listener that always panics would reconnect for ever.
    let first = Cell::new(true);
    peer.io().on("connect", move |_, _| {
        if first.replace(false) {
            panic!("the connect listener panics on purpose");
        }
    });
    assert_came_back(&mut lab, &mut peer, 1, 2);
}

#[test]
fn client_disconnect_listener_panic_is_counted_and_it_still_reconnects() {
    // The server cuts the connection when asked: its `drop-me` listener panics (one server
    // panic, which closes the connection without a DISCONNECT packet: a lost connection to
    // the client, to come back from).
    let mut lab = Lab::start(|io, _| {
        io.on_connection("/", |io, sid| {
            io.on(sid, "drop-me", |_, _| {
                panic!("the server cuts this connection")
            });
        })
    });
    let mut peer = Peer::connect(options(lab.addr()));
    let first = Cell::new(true);
    peer.io().on("disconnect", move |_, _| {
        if first.replace(false) {
            panic!("the disconnect listener panics on purpose");
        }
    });
    let sid = peer.sid();
    peer.io().emit("drop-me", vec![]).expect("emit drop-me");
    assert_eq!(lab.left(&sid, &mut [&mut peer]), reasons::SERVER_ERROR);
    let c = peer.life.clone();
    peer.run_until("the client comes back", move |io| {
        io.is_connected() && c.borrow().iter().filter(|l| *l == "connect").count() == 2
    });
    // The connection was already gone when the listener panicked: nothing more to close.
    assert_eq!(peer.io().callback_panics(), 1);
    let life = peer.life();
    assert_eq!(life.len(), 3, "{life:?}");
    assert!(cut(life[1].trim_start_matches("disconnect ")), "{life:?}");
    peer.echo("a round trip after coming back");
    assert_eq!(lab.panics(), 1, "only the server's own drop-me");
}

#[test]
fn client_ack_callback_panic_on_the_reply_reconnects() {
    let mut lab = Lab::start(|_, _| {});
    let mut peer = Peer::connect(options(lab.addr()));
    let slot = peer.emit_ack("echo", WAIT, |_| {
        panic!("the ack callback panics on purpose")
    });
    assert_came_back(&mut lab, &mut peer, 1, 2);
    assert!(matches!(*slot.borrow(), Some(Ok(_))), "{:?}", slot.borrow());
}

#[test]
fn client_ack_callback_panic_on_timeout_reconnects() {
    let mut lab = Lab::start(|_, _| {});
    let mut peer = Peer::connect(options(lab.addr()));
    let slot = peer.emit_ack("silent", SHORT, |_| {
        panic!("the ack callback panics on purpose")
    });
    assert_came_back(&mut lab, &mut peer, 1, 2);
    assert_eq!(*slot.borrow(), Some(Err(AckError::Timeout)));
}

#[test]
fn client_ack_callback_panic_on_disconnected_ends_the_client_cleanly() {
    let mut lab = Lab::start(|_, _| {});
    let mut peer = Peer::connect(options(lab.addr()));
    let sid = peer.sid();
    let slot = peer.emit_ack("silent", WAIT, |_| {
        panic!("the ack callback panics on purpose")
    });
    // The server has the emit (and will never answer it) before the client leaves.
    lab.wait("the server got the emit", &mut [&mut peer], ran("silent"));
    peer.io().disconnect();
    assert_eq!(*slot.borrow(), Some(Err(AckError::Disconnected)));
    assert_eq!(peer.io().callback_panics(), 1);
    // A deliberate disconnect stays one: no reconnection, and the loop stops by itself
    // (`run_until` returns as soon as it has, long before its limit).
    let started = Instant::now();
    let _ = peer.client.run_until(WAIT, |_| false).expect("client turn");
    assert!(started.elapsed() < WAIT, "the client's loop stopped");
    let io = peer.io();
    assert_eq!(io.state(), ClientState::Disconnected);
    assert_eq!(io.disconnect_reason(), Some(reasons::IO_CLIENT_DISCONNECT));
    let reason = lab.left(&sid, &mut []);
    assert!(
        reason == reasons::CLIENT_NAMESPACE_DISCONNECT || cut(&reason),
        "the server saw the client leave: {reason:?}"
    );
    assert_eq!(peer.life(), ["connect", "disconnect io client disconnect"]);
}

#[test]
fn client_handle_run_closure_panic_reconnects() {
    let mut lab = Lab::start(|_, _| {});
    let mut peer = Peer::connect(options(lab.addr()));
    let handle = peer.client.handle();
    assert!(handle.run(|_| panic!("the closure panics on purpose")));
    assert_came_back(&mut lab, &mut peer, 1, 2);
    assert!(handle.run(|_| {}), "the client's loop is alive");
}

#[test]
fn client_tap_panic_removes_the_tap_and_counts_once() {
    let mut lab = Lab::start(|_, _| {});
    let mut peer = Peer::connect(options(lab.addr()));
    let calls = Rc::new(Cell::new(0u32));
    let c = calls.clone();
    peer.io().set_tap(move |_| {
        c.set(c.get() + 1);
        panic!("the tap panics on purpose");
    });
    // The next frame out (this echo) meets the tap.
    let _ = peer.emit_ack("echo", WAIT, |_| {});
    assert_came_back(&mut lab, &mut peer, 1, 2);
    // Many frames follow (HELLO, CONNECT, emits, acks): still one panic, one tap call.
    for _ in 0..3 {
        peer.echo("another round trip");
    }
    assert_eq!(peer.io().callback_panics(), 1);
    assert_eq!(calls.get(), 1, "the tap was removed after its panic");
}

// ---------------------------------------------------------------------------------------------
// What a panic prints
// ---------------------------------------------------------------------------------------------

/// Set in the environment of the child run of [`stderr_child`].
const STDERR_CHILD: &str = "SOCKLAB_CALLBACKS_STDERR_CHILD";

/// Not a test of its own: the body that [`a_panic_is_printed_once_per_callback_name`] runs in
/// a child process (this same test binary), whose stderr it reads. In a normal run it returns
/// at once. Three sockets hit the same panicking listener, and the same kinds of closure
/// panic three times on each side.
#[test]
fn stderr_child() {
    if std::env::var_os(STDERR_CHILD).is_none() {
        return;
    }
    let mut lab = Lab::start(|io, _| {
        io.on_connection("/", |io, sid| {
            io.on(sid, "boom", |_, _| panic!("boom, on purpose"));
        })
    });
    for _ in 0..3 {
        let mut victim = Peer::connect(victim_options(lab.addr(), None));
        let sid = victim.sid();
        victim.io().emit("boom", vec![]).expect("emit boom");
        assert_eq!(lab.left(&sid, &mut [&mut victim]), reasons::SERVER_ERROR);
    }
    let mut peer = Peer::connect(options(lab.addr()));
    for n in 1..=3 {
        let handle = &lab.server.handle;
        handle.run(|_| panic!("a server closure, on purpose")).ok();
        assert!(peer
            .client
            .handle()
            .run(|_| panic!("a client closure, on purpose")));
        peer.run_until("the client closure ran", move |io| {
            io.callback_panics() == n
        });
    }
    assert_eq!(lab.panics(), 6);
}

#[test]
fn a_panic_is_printed_once_per_callback_name() {
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().expect("the test binary's path");
    let child = Command::new(exe)
        .args(["--exact", "stderr_child", "--nocapture", "--test-threads=1"])
        .env(STDERR_CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    let mut child = common::Reaper(child);
    let out = common::collect(child.0.stdout.take().expect("stdout was piped"));
    let err = common::collect(child.0.stderr.take().expect("stderr was piped"));
    let status = common::wait_exit(&mut child.0, "the child run", WAIT * 3);
    let out = String::from_utf8_lossy(&out.recv_timeout(WAIT).expect("stdout")).to_string();
    let err = String::from_utf8_lossy(&err.recv_timeout(WAIT).expect("stderr")).to_string();
    assert!(status.success(), "the child run failed:\n{out}\n{err}");
    assert!(out.contains("1 passed"), "the child ran its test:\n{out}");
    let lines = |needle: &str| err.lines().filter(|l| l.contains(needle)).count();
    for needle in [
        "socklab server: the \"boom\" listener callback panicked: boom, on purpose",
        "socklab server: the ServerHandle::run closure callback panicked",
        "socklab client: the ClientHandle::run closure callback panicked",
    ] {
        assert_eq!(lines(needle), 1, "{needle:?} once in:\n{err}");
    }
    // The default hook's "thread '...' panicked at" (and its backtrace note) stays quiet for
    // guarded panics: the one line above is all.
    assert_eq!(lines("panicked at"), 0, "{err}");
    assert_eq!(lines("socklab "), 3, "{err}");
}
