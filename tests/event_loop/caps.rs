//! The loop's limits: the connection cap, the outbound cap, reads per event, and input left
//! over at the outbound cap.

use super::*;

/// With `max_connections: 10`, the 11th concurrent client is accepted and closed at once
/// (it reads end of file, or a reset), counted in `refused`; the first 10 keep working, and
/// once one of them leaves a new client fits again: the cap counts live connections.
#[test]
fn the_connection_cap_refuses_the_eleventh_client() {
    let server = EchoLoop::echo(Config {
        max_connections: 10,
        ..Config::default()
    });
    let mut ten: Vec<TcpStream> = (0..10).map(|_| client(server.addr)).collect();
    // One round trip each: all ten are accepted and registered before the eleventh comes.
    for (i, s) in ten.iter_mut().enumerate() {
        echo_round_trip(s, format!("first {i}\n").as_bytes());
    }

    let mut eleventh = client(server.addr);
    // The write may or may not reach the socket before the loop closes it; either way no echo.
    let _ = eleventh.write_all(b"let me in\n");
    let mut buf = [0u8; 64];
    match eleventh.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "the eleventh client got {:?} instead of being closed",
            buf[..n].escape_ascii().to_string()
        ),
        Err(e) => panic!("the eleventh client: {e} (expected end of file or a reset)"),
    }

    for (i, s) in ten.iter_mut().enumerate() {
        echo_round_trip(s, format!("still here {i}\n").as_bytes());
    }
    let report = server.report();
    assert_eq!(report.stats.refused, 1, "{:?}", report.stats);
    assert_eq!(report.stats.accepted, 11, "{:?}", report.stats);
    assert_eq!(report.open.len(), 10);

    // One leaves; the loop sees its FIN, and then there is room for one more.
    drop(ten.pop());
    wait_until("the loop to close the client that left", || {
        server.report().open.len() == 9
    });
    let mut newcomer = client(server.addr);
    echo_round_trip(&mut newcomer, b"room for me now\n");
    let report = server.report();
    assert_eq!(report.stats.refused, 1, "{:?}", report.stats);
    assert_eq!(report.open.len(), 10);
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// The outbound cap.
// ---------------------------------------------------------------------------------------------

/// What the flooding handler tells the test.
#[derive(Debug)]
enum Flooded {
    /// `send` refused a chunk: the error, the bytes it had accepted before, and what was
    /// still queued in the loop then.
    Refused {
        err: SendError,
        accepted: usize,
        pending: usize,
    },
    /// No refusal within the tick budget.
    GaveUp {
        accepted: usize,
    },
    Closed(CloseReason),
}

/// Sends 16 KiB of [`pattern`] to its one client every millisecond until `send` refuses,
/// then closes the connection (after the flush) and stops the loop once it is closed.
struct Flood {
    chunk: Vec<u8>,
    accepted: usize,
    ticks: u32,
    tell: Sender<Flooded>,
}

const FLOOD_CHUNK: usize = 16 * 1024;
/// 10,000 ticks of 16 KiB is 160 MiB, far past what any kernel buffers for a peer.
const FLOOD_TICKS: u32 = 10_000;

impl Handler for Flood {
    type Timer = ConnId;
    type Message = ();

    fn accepted(&mut self, ctx: &mut Ctx<ConnId>, id: ConnId, _: SocketAddr) {
        ctx.set_timer(Duration::from_millis(1), id);
    }

    fn data(&mut self, _: &mut Ctx<ConnId>, _: ConnId, bytes: &[u8]) -> usize {
        bytes.len()
    }

    fn timer(&mut self, ctx: &mut Ctx<ConnId>, _: TimerId, id: ConnId) {
        self.ticks += 1;
        let start = self.accepted % 251;
        match ctx.send(id, &self.chunk[start..start + FLOOD_CHUNK]) {
            Ok(()) => {
                self.accepted += FLOOD_CHUNK;
                if self.ticks < FLOOD_TICKS {
                    ctx.set_timer(Duration::from_millis(1), id);
                } else {
                    let _ = self.tell.send(Flooded::GaveUp {
                        accepted: self.accepted,
                    });
                    ctx.close(id);
                }
            }
            Err(err) => {
                let _ = self.tell.send(Flooded::Refused {
                    err,
                    accepted: self.accepted,
                    pending: ctx.pending(id),
                });
                ctx.close(id);
            }
        }
    }

    fn closed(&mut self, ctx: &mut Ctx<ConnId>, _: ConnId, reason: CloseReason) {
        let _ = self.tell.send(Flooded::Closed(reason));
        ctx.stop();
    }
}

/// With `max_outbound: 64 KiB`, a handler that keeps sending to a client that does not read
/// gets `SendError::Full` once the kernel's buffers and then the loop's 64 KiB are full. The
/// loop never held more than its cap, and nothing it accepted is lost: the client then reads
/// exactly the accepted bytes, in order, and end of file.
#[test]
fn the_outbound_cap_refuses_sends_past_it() {
    const CAP: usize = 64 * 1024;
    let (tell, told) = mpsc::channel();
    let flood = Flood {
        chunk: payload(FLOOD_CHUNK + 251),
        accepted: 0,
        ticks: 0,
        tell,
    };
    let server = LoopThread::start(
        flood,
        Config {
            max_outbound: CAP,
            ..Config::default()
        },
    );
    let mut c = client(server.addr);

    let (accepted, pending) = match told.recv_timeout(WAIT) {
        Ok(Flooded::Refused {
            err,
            accepted,
            pending,
        }) => {
            assert_eq!(err, SendError::Full { pending, cap: CAP });
            (accepted, pending)
        }
        Ok(Flooded::GaveUp { accepted }) => {
            panic!("send never refused: {accepted} bytes accepted for a client that reads nothing")
        }
        other => panic!("expected SendError::Full, got {other:?}"),
    };
    assert!(
        pending <= CAP,
        "the loop held {pending} bytes, past its cap"
    );
    assert!(
        pending + FLOOD_CHUNK > CAP,
        "refused with room left: {pending} bytes pending"
    );
    assert!(
        accepted > CAP,
        "the kernel took nothing before the cap was reached ({accepted} bytes accepted)"
    );

    let (got, end) = read_pattern_to_end(&mut c, accepted);
    end.expect("end of file after the flush");
    assert_eq!(got, accepted, "bytes the loop accepted were lost");
    match told.recv_timeout(WAIT) {
        Ok(Flooded::Closed(CloseReason::Local)) => {}
        other => panic!("expected a local close, got {other:?}"),
    }
    let stats = server.stop();
    assert_eq!(stats.sends_refused, 1, "{stats:?}");
    assert_eq!(stats.bytes_out, accepted as u64, "{stats:?}");
}

/// Counts the bytes the loop hands it.
#[derive(Default)]
struct Sink {
    got: usize,
}

impl Handler for Sink {
    type Timer = ();
    type Message = ();

    fn data(&mut self, _: &mut Ctx<()>, _: ConnId, bytes: &[u8]) -> usize {
        self.got += bytes.len();
        bytes.len()
    }
}

/// The fairness cap holds per turn: a peer with far more waiting than one turn may read gets
/// `reads_per_event` reads of `read_chunk` in a turn, never more (what a broadcast server
/// queues for every recipient before the turn's flush is bounded by it), and the rest in the
/// turns after, without a new readiness event and without sleeping in between.
#[test]
fn one_turn_reads_at_most_reads_per_event_chunks_from_a_connection() {
    const CHUNK: usize = 4096;
    const READS: usize = 2;
    const TOTAL: usize = 1 << 20;
    let config = Config {
        read_chunk: CHUNK,
        reads_per_event: READS,
        ..Config::default()
    };
    let mut ev = EventLoop::new(Sink::default(), config).expect("the loop starts");
    let addr = ev.ctx().listen(any_port()).expect("listen");
    let mut c = client(addr);
    let writer = thread::spawn(move || {
        c.write_all(&payload(TOTAL))
            .expect("the loop reads all of it");
        c
    });
    let deadline = Instant::now() + WAIT;
    let (mut turns, mut most) = (0, 0);
    while ev.handler().got < TOTAL {
        assert!(
            Instant::now() < deadline,
            "only {} of {TOTAL} bytes read in {turns} turns",
            ev.handler().got
        );
        let before = ev.handler().got;
        ev.turn(Some(Duration::from_millis(100))).expect("turn");
        most = most.max(ev.handler().got - before);
        turns += 1;
    }
    assert!(
        most <= READS * CHUNK,
        "one turn read {most} bytes from one connection, past {READS} reads of {CHUNK}"
    );
    assert!(
        turns >= TOTAL / (READS * CHUNK),
        "{TOTAL} bytes in {turns} turns"
    );
    drop(writer.join().expect("the writer thread"));
}

// ---------------------------------------------------------------------------------------------
// Extra: input left over at the outbound cap.
// ---------------------------------------------------------------------------------------------

/// [`Echo`] takes only what fits under the outbound cap; the rest of a read stays in the
/// connection's input, to be offered again. Here the client sends, without reading, messages
/// a little larger than the room the loop has left (`CAP - pending + TAIL` bytes), until the
/// loop keeps a tail of one (less than a read chunk, so reading is not paused: nothing else
/// brings it back). Then the client goes quiet and reads everything back. No new bytes will
/// come to offer the tail to the handler again: the loop must do it when the output drains,
/// or the end of the echo never arrives.
#[test]
fn input_left_over_at_the_outbound_cap_is_echoed_once_output_drains() {
    const CAP: usize = 64 * 1024;
    const TAIL: usize = 4000;
    let server = EchoLoop::echo(Config {
        max_outbound: CAP,
        ..Config::default()
    });
    let mut c = client(server.addr);
    let me = c.local_addr().expect("getsockname");
    let mut sent = 0usize;
    // Waits for the loop to have read all we sent; returns what it holds for us and how
    // much input it kept unconsumed.
    let settle = |sent: usize| -> (usize, u64) {
        let mut last = None;
        wait_until("the loop to read everything sent", || {
            let r = server.report();
            let done = r.stats.bytes_in == sent as u64;
            last = Some(r);
            done
        });
        // `wait_until` returned, so the closure ran and stored a report.
        let r = last.expect("a report");
        (r.pending_for(me).unwrap_or(0), r.stats.bytes_in - r.echoed)
    };

    // The loop may take a message in one read or several, and the kernel may take its output
    // in between, so it takes a few tries (usually one, at most as many as fill the kernel's
    // buffers: some MiB). The loop keeps at most TAIL bytes of each.
    let (mut pending, mut kept) = (0, 0);
    for _ in 0..1000 {
        let len = CAP - pending + TAIL;
        c.write_all(&pattern_from(sent, len))
            .expect("write a message a little larger than the room left");
        sent += len;
        (pending, kept) = settle(sent);
        if kept > 0 {
            break;
        }
    }
    assert!(kept > 0, "the loop never kept input");
    assert!(kept as usize <= TAIL, "kept {kept} bytes, more than {TAIL}");

    // Quiet now: read everything back.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    for _ in 0..sent {
        if got == sent {
            break;
        }
        match c.read(&mut buf) {
            Ok(0) => panic!("end of file after {got} of {sent} bytes"),
            Ok(n) => {
                assert!(got + n <= sent, "more than {sent} bytes came back");
                check_pattern(&buf[..n], got);
                got += n;
            }
            Err(e) => {
                let r = server.report();
                panic!(
                    "the echo stopped after {got} of {sent} bytes ({e}); the loop still \
                     keeps {} bytes of input and holds {:?} bytes of output for us",
                    r.stats.bytes_in - r.echoed,
                    r.pending_for(me)
                );
            }
        }
    }
    assert_eq!(got, sent);
    server.stop();
}
