//! Many clients at once, a slow reader, a reset and a half-close: each connection gets its own
//! bytes and only its own end.

use super::*;

/// 1,000 connections at once, each echoing 100 messages that name the client and the
/// sequence number: any mix-up between connections (a wrong slot, a stale token, a shared
/// buffer handed to the wrong peer) or within one (a lost, repeated or reordered chunk)
/// shows as a wrong echo.
///
/// Four threads drive 250 blocking clients each in lockstep: message i goes to all 250, then
/// each echo is read back, so the loop always has hundreds of ready connections per turn.
#[test]
fn a_thousand_clients_echo_a_hundred_messages_each() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 250;
    const CLIENTS: usize = THREADS * PER_THREAD;
    const MESSAGES: usize = 100;
    // `client 0999 message 099\n`: the same length for every message.
    const MSG_LEN: usize = 24;

    // Two descriptors per connection live in this process (the client's and the loop's),
    // plus the test harness's own.
    if !raise_nofile_limit(2 * CLIENTS as u64 + 100) {
        eprintln!(
            "skipped: the hard RLIMIT_NOFILE is below {}; 1,000 clients and their server \
             side do not fit in this process",
            2 * CLIENTS + 100
        );
        return;
    }
    let server = EchoLoop::echo(Config::default());
    let addr = server.addr;

    let workers: Vec<JoinHandle<()>> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let ids: Vec<usize> = (t * PER_THREAD..(t + 1) * PER_THREAD).collect();
                let mut conns: Vec<TcpStream> = ids.iter().map(|_| client(addr)).collect();
                let mut back = [0u8; MSG_LEN];
                for m in 0..MESSAGES {
                    let msgs: Vec<String> = ids
                        .iter()
                        .map(|c| format!("client {c:04} message {m:03}\n"))
                        .collect();
                    for (s, msg) in conns.iter_mut().zip(&msgs) {
                        assert_eq!(msg.len(), MSG_LEN);
                        s.write_all(msg.as_bytes())
                            .unwrap_or_else(|e| panic!("write {msg:?}: {e}"));
                    }
                    for (s, msg) in conns.iter_mut().zip(&msgs) {
                        s.read_exact(&mut back)
                            .unwrap_or_else(|e| panic!("read the echo of {msg:?}: {e}"));
                        assert_eq!(
                            String::from_utf8_lossy(&back),
                            msg.as_str(),
                            "an echo came back to the wrong client or out of order"
                        );
                    }
                }
            })
        })
        .collect();
    for w in workers {
        // A failing client panicked with its own message; pass it on.
        if let Err(panic) = w.join() {
            std::panic::resume_unwind(panic);
        }
    }

    // The clients are gone (dropped at the end of their threads): the loop sees 1,000 FINs.
    wait_until("the loop to close all 1,000 connections", || {
        server.report().closes.len() == CLIENTS
    });
    let report = server.report();
    let total = (CLIENTS * MESSAGES * MSG_LEN) as u64;
    assert_eq!(report.stats.accepted, CLIENTS as u64, "{:?}", report.stats);
    assert_eq!(report.stats.refused, 0, "{:?}", report.stats);
    assert_eq!(report.echoed, total);
    assert_eq!(report.stats.bytes_in, total, "{:?}", report.stats);
    assert_eq!(report.stats.bytes_out, total, "{:?}", report.stats);
    assert!(
        report
            .closes
            .iter()
            .all(|(_, r)| *r == CloseReason::PeerClosed),
        "every client closed its side first: {:?}",
        report
            .closes
            .iter()
            .find(|(_, r)| *r != CloseReason::PeerClosed)
    );
    assert!(report.open.is_empty());
    let stats = server.stop();
    assert_eq!(stats.closed, CLIENTS as u64, "{stats:?}");
}

// ---------------------------------------------------------------------------------------------
// A slow reader.
// ---------------------------------------------------------------------------------------------

/// Lesson 12's server answers `big\n` with 8 MiB. The slow client reads it in reads of up to
/// 64 KiB with a 10 ms pause after each ("slow" means a pause per read: one byte per 10 ms
/// would take a day), so most of the reply waits in the server's outbound buffer and the
/// kernel's buffers. Meanwhile a quick client echoes 50 messages through the same server.
///
/// The quick client starts once the big reply is under way. At the 1 MiB mark the slow
/// client stops reading until the quick client is done, and checks with `/proc/net/tcp`
/// that part of the reply is still inside the server process (neither read by us, nor in
/// our receive queue, nor in the server's send queue): so the 50 echoes provably happened
/// while the big reply was waiting (a server that blocked on the slow reader would time the
/// quick client out). Every byte of the reply is checked, and the end of file after it shows
/// nothing extra was sent.
#[test]
fn a_slow_reader_gets_every_byte_while_others_are_served() {
    const BIG: usize = 8 << 20;
    const PAUSE: Duration = Duration::from_millis(10);
    const QUICK: usize = 50;
    // Where the slow client waits for the quick one: far enough into the reply that it is
    // surely flowing, far enough from its end that the kernel's buffers cannot hold the rest
    // (about 4 MiB on loopback with default tuning).
    const MARK: usize = 1 << 20;

    let server = Served::start(BACKPRESSURE);
    let addr = server.addr;
    let mut slow = client(addr);
    let me = slow.local_addr().expect("getsockname");
    slow.write_all(b"big\n").expect("ask for the big reply");

    let (quick_tx, quick_done) = mpsc::channel::<usize>();
    let mut quick: Option<JoinHandle<()>> = None;
    let mut quick_finished = false;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    // A read returns at least 1 byte, so BIG reads bound the loop; the deadline bounds it
    // in time (at 10 ms per read, reads of under 1.4 KiB would run out of time).
    for _ in 0..BIG {
        if got == BIG {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow client read only {got} of {BIG} bytes"
        );
        let n = slow
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read after {got} of {BIG} bytes: {e}"));
        assert_ne!(n, 0, "the server closed after {got} of {BIG} bytes");
        assert!(got + n <= BIG, "more than {BIG} bytes arrived");
        check_pattern(&buf[..n], got);
        got += n;

        if quick.is_none() {
            let tx = quick_tx.clone();
            quick = Some(thread::spawn(move || {
                let mut s = client(addr);
                for i in 0..QUICK {
                    echo_round_trip(&mut s, format!("quick message {i:02}\n").as_bytes());
                    let _ = tx.send(i + 1);
                }
            }));
        }
        if got >= MARK && !quick_finished {
            // Count the quick client's echoes; a gap of WAIT with no progress fails.
            let mut done = 0;
            while done < QUICK {
                done = quick_done
                    .recv_timeout(WAIT)
                    .unwrap_or_else(|_| panic!("the quick client got {done} of {QUICK} echoes"));
            }
            quick_finished = true;
            // Only more of the reply can have left the server since the quick client was
            // done, so what is still inside now was inside then.
            let (our_rx, _, _, their_tx) =
                queues(me, addr).expect("both ends of the slow connection in /proc/net/tcp");
            let in_kernel = our_rx as usize + their_tx as usize;
            assert!(
                got + in_kernel < BIG,
                "the whole reply had left the server before the quick client was done \
                 ({got} bytes read, {in_kernel} in the kernel): this proves nothing"
            );
        }
        thread::sleep(PAUSE);
    }
    assert_eq!(got, BIG);
    if let Some(Err(panic)) = quick.map(JoinHandle::join) {
        std::panic::resume_unwind(panic);
    }
    assert!(quick_finished);

    // Our FIN: the server closes in turn, and anything it sent past the 8 MiB would show
    // before the end of file.
    slow.shutdown(Shutdown::Write).expect("shutdown(SHUT_WR)");
    let (extra, end) = read_pattern_to_end(&mut slow, 0);
    assert_eq!(extra, 0);
    end.expect("end of file after the big reply");
}

// ---------------------------------------------------------------------------------------------
// A reset and a half-close.
// ---------------------------------------------------------------------------------------------

/// Three clients on one echo loop:
/// - `reset` sends far more than it reads until the loop holds output for it (the loop is in
///   the middle of writing to it), then closes with SO_LINGER 0 and unread data: an RST.
/// - `half` sends 256 KiB, shuts down its write side (FIN), and still reads the whole echo
///   back, then end of file: the loop flushes before it closes.
/// - `steady` echoes without pause before, during and after, and must never notice.
///
/// The loop's own record must show two closes: the reset as an error (ECONNRESET or EPIPE,
/// whichever call met it first), the half-close as `PeerClosed`; `steady` stays open.
#[test]
fn a_reset_and_a_half_close_do_not_disturb_another_client() {
    const HALF: usize = 256 * 1024;
    let server = EchoLoop::echo(Config::default());
    let addr = server.addr;

    let rounds = Arc::new(AtomicU64::new(0));
    let stop_steady = Arc::new(AtomicBool::new(false));
    let (steady_addr_tx, steady_addr) = mpsc::channel();
    let steady = {
        let rounds = Arc::clone(&rounds);
        let stop = Arc::clone(&stop_steady);
        thread::spawn(move || {
            let mut s = client(addr);
            let _ = steady_addr_tx.send(s.local_addr().expect("getsockname"));
            // Bounded in count; stopped by the flag long before.
            for i in 0..1_000_000u64 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                echo_round_trip(&mut s, format!("steady {i:07}\n").as_bytes());
                rounds.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let steady_addr: SocketAddr = steady_addr
        .recv_timeout(WAIT)
        .expect("the steady client connects");
    let at_least = |n: u64| {
        let rounds = Arc::clone(&rounds);
        move || rounds.load(Ordering::SeqCst) >= n
    };
    wait_until("20 steady echoes before", at_least(20));

    // The reset: write without reading until the loop holds output for this client (the
    // kernel's buffers on both sides are full by then: a few MiB on loopback).
    let mut reset = client(addr);
    let reset_addr = reset.local_addr().expect("getsockname");
    reset.set_nonblocking(true).expect("O_NONBLOCK");
    let chunk = payload(64 * 1024);
    let mut written = 0usize;
    let mut held = 0;
    let deadline = Instant::now() + WAIT;
    // At most 4,096 chunks (256 MiB), and WAIT.
    for _ in 0..4096 {
        match reset.write(&chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("write to the loop after {written} bytes: {e}"),
        }
        held = server.report().pending_for(reset_addr).unwrap_or(0);
        if held > 0 || Instant::now() >= deadline {
            break;
        }
    }
    assert!(
        held > 0,
        "the loop never held output for the client after {written} bytes"
    );
    let during = rounds.load(Ordering::SeqCst);
    socket2::SockRef::from(&reset)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(reset); // RST: linger 0, and unread echo in the receive queue besides

    // The half-close.
    let mut half = client(addr);
    let half_addr = half.local_addr().expect("getsockname");
    half.write_all(&payload(HALF)).expect("write 256 KiB");
    half.shutdown(Shutdown::Write).expect("shutdown(SHUT_WR)");
    let (echoed, end) = read_pattern_to_end(&mut half, HALF);
    assert_eq!(
        echoed, HALF,
        "the half-closed client got only part of its echo"
    );
    end.expect("end of file after the echo");

    wait_until("the loop to record both closes", || {
        server.report().closes.len() >= 2
    });
    wait_until("20 steady echoes after", at_least(during + 20));
    let report = server.report();
    match report.close_of(reset_addr) {
        Some(CloseReason::Error(e)) => assert!(
            matches!(e.errno(), Errno::ECONNRESET | Errno::EPIPE),
            "the reset should end in ECONNRESET or EPIPE, not {e}"
        ),
        other => panic!(
            "the reset client's close: {other:?}; closes {:?}",
            report.closes
        ),
    }
    assert_eq!(
        report.close_of(half_addr),
        Some(&CloseReason::PeerClosed),
        "closes {:?}",
        report.closes
    );
    assert_eq!(report.closes.len(), 2, "{:?}", report.closes);
    assert_eq!(report.stats.closed, 2, "{:?}", report.stats);
    assert!(
        report.pending_for(steady_addr).is_some(),
        "the steady client is still open: {:?}",
        report.open
    );

    stop_steady.store(true, Ordering::SeqCst);
    if let Err(panic) = steady.join() {
        std::panic::resume_unwind(panic);
    }
    server.stop();
}
