//! Non-blocking connect: ECONNREFUSED and ETIMEDOUT reach `Handler::connected`.

use super::*;

/// Remembers how each connect ended, and any close (there must be none for a failed one).
#[derive(Default)]
struct Dialer {
    outcomes: Vec<(ConnId, sys::Result<()>)>,
    closed: Vec<ConnId>,
}

impl Handler for Dialer {
    type Timer = ();
    type Message = ();

    fn connected(&mut self, ctx: &mut Ctx<()>, id: ConnId, result: sys::Result<()>) {
        if result.is_ok() {
            ctx.close(id);
        }
        self.outcomes.push((id, result));
    }

    fn data(&mut self, _: &mut Ctx<()>, _: ConnId, bytes: &[u8]) -> usize {
        bytes.len()
    }

    fn closed(&mut self, _: &mut Ctx<()>, id: ConnId, _: CloseReason) {
        self.closed.push(id);
    }
}

/// Starts a connect and turns the loop (on this thread) until it has an outcome.
fn dial(ev: &mut EventLoop<Dialer>, addr: SocketAddr, timeout: Duration) -> sys::Result<()> {
    let id = ev
        .ctx()
        .connect(addr, Some(timeout))
        .unwrap_or_else(|e| panic!("connect({addr}) should start and report later: {e}"));
    let deadline = Instant::now() + WAIT;
    for _ in 0..1000 {
        if let Some(i) = ev.handler().outcomes.iter().position(|(c, _)| *c == id) {
            return ev.handler().outcomes.remove(i).1;
        }
        assert!(Instant::now() < deadline, "no outcome for connect({addr})");
        ev.turn(Some(Duration::from_millis(100))).expect("a turn");
    }
    panic!("no outcome for connect({addr}) after 1,000 turns");
}

/// `Ctx::connect` reports a refused connect and a connect into a black hole through
/// `Handler::connected`, as errors that name `connect` and the errno; a connect to a live
/// listener succeeds on the same loop, so the handler is not simply failing everything.
#[test]
fn nonblocking_connect_reports_refused_and_timed_out() {
    let mut ev = EventLoop::new(Dialer::default(), Config::default()).expect("a loop");

    // A closed port. Rather than bind a listener and drop it (another test could be given
    // the freed port by then), a socket stays bound to the port without listening: the
    // kernel answers a SYN to it with RST, and no one else can listen there meanwhile.
    let holder =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    holder.bind(&any_port().into()).expect("bind 127.0.0.1:0");
    let closed = holder
        .local_addr()
        .expect("getsockname")
        .as_socket()
        .expect("an inet address");
    let err = dial(&mut ev, closed, WAIT).expect_err("a connect to a closed port must fail");
    assert_eq!(err.errno(), Errno::ECONNREFUSED, "{err}");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert_eq!(err.syscall(), "connect", "{err}");

    // A black hole: a backlog of 0 holds one finished handshake (the filler's); the next
    // SYN is dropped, so the connect neither succeeds nor fails until the timer gives up.
    let opts = ListenOptions {
        backlog: 0,
        ..ListenOptions::default()
    };
    let (_hole, hole) = blocking::listen_tcp(any_port(), opts).expect("listen, backlog 0");
    let _filler = blocking::connect_tcp(hole).expect("the filler connects");
    let err = dial(&mut ev, hole, Duration::from_millis(200))
        .expect_err("a connect into a full listener must time out");
    assert_eq!(err.errno(), Errno::ETIMEDOUT, "{err}");
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(err.syscall(), "connect", "{err}");

    // Failed connects leave nothing behind: no connection, no timer, no `closed` call.
    assert_eq!(ev.ctx().connections(), 0);
    assert_eq!(ev.ctx().timer_count(), 0);
    assert!(ev.handler().closed.is_empty(), "{:?}", ev.handler().closed);

    let open = TcpListener::bind(any_port()).expect("bind a live listener");
    let open_addr = open.local_addr().expect("getsockname");
    dial(&mut ev, open_addr, WAIT).expect("a connect to a live listener succeeds");
}
