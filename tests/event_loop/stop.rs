//! Stopping: SIGTERM to a lesson binary and a graceful stop deliver everything echoed and exit 0.

use super::*;

/// `11_mio_loop serve` on SIGTERM stops gracefully: the connected client, whose echo it
/// already has, sees end of file; the process prints `stopped:` with the byte count it echoed
/// and exits 0.
#[test]
fn sigterm_stops_the_mio_loop_server_with_exit_code_0() {
    let mut server = Served::start(MIO_LOOP);
    let mut c = client(server.addr);
    echo_round_trip(&mut c, b"hello before SIGTERM\n");

    server.terminate();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)
        .expect("end of file once the server stops");
    assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    let out = server.rest_of_stdout();
    assert!(
        out.iter().any(|l| l == "stopped: echoed 21 bytes"),
        "stdout after `listening on`: {out:#?}"
    );
}

/// A client sends without reading until the loop itself holds part of the echo: the
/// server has read every byte sent (its receive queue and our send queue are empty, as
/// `/proc/net/tcp` shows), but the kernel does not hold all of the echo (our receive queue
/// plus its send queue are less than what was sent), so the rest waits in the loop's
/// outbound buffer. Then SIGTERM: a graceful stop must deliver every byte, then end of file,
/// and exit 0.
///
/// How much the kernel holds depends on its buffer tuning (on a test machine, 2 MiB sent
/// without reading fitted in the kernel entirely, and the loop's buffer was empty), so the
/// client sends 256 KiB steps until the loop holds some: never as much as its 1 MiB cap, so
/// no input is left unread, which a stop would not echo (it stops reading; see
/// `a_graceful_stop_delivers_every_echoed_byte_though_input_is_unread` for that case).
#[test]
fn sigterm_flushes_an_echo_still_queued() {
    const STEP: usize = 256 * 1024;
    let mut server = Served::start(MIO_LOOP);
    let mut c = client(server.addr);
    let me = c.local_addr().expect("getsockname");
    let mut sent = 0usize;
    let mut in_loop = 0usize;
    // At most 256 steps (64 MiB); each waits at most WAIT.
    for _ in 0..256 {
        c.write_all(&pattern_from(sent, STEP))
            .expect("write a step");
        sent += STEP;
        let mut held_by_kernel = 0;
        wait_until("the server to read everything sent", || {
            match queues(me, server.addr) {
                Some((our_rx, 0, 0, their_tx)) => {
                    held_by_kernel = our_rx as usize + their_tx as usize;
                    true
                }
                _ => false,
            }
        });
        in_loop = sent.saturating_sub(held_by_kernel);
        if in_loop > 0 {
            break;
        }
    }
    assert!(
        in_loop > 0,
        "the loop never held any echo after {sent} bytes"
    );

    server.terminate();
    let (got, end) = read_pattern_to_end(&mut c, sent);
    assert_eq!(
        got, sent,
        "the echo queued at SIGTERM ({in_loop} bytes of it in the loop) was cut short \
         ({end:?})"
    );
    end.expect("end of file after the whole echo");
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    let out = server.rest_of_stdout();
    let want = format!("stopped: echoed {sent} bytes");
    assert!(out.contains(&want), "stdout after `listening on`: {out:#?}");
}

/// A graceful stop while a client has sent more than the loop will read: the loop is paused
/// (its outbound buffer for the client is full, and it keeps a read chunk of input), the
/// kernel holds more input unread. A stop does not read any more, so that input is never
/// echoed; but everything the loop did echo must reach the client, then end of file.
///
/// `SIGTERM` does nothing more than `ctx.stop()` does here: the signal's self-pipe only sets
/// the same flag, so this runs in-process, where the test can see that the loop is paused.
#[test]
fn a_graceful_stop_delivers_every_echoed_byte_though_input_is_unread() {
    let server = EchoLoop::echo(Config::default());
    let mut c = client(server.addr);
    let me = c.local_addr().expect("getsockname");
    c.set_nonblocking(true).expect("O_NONBLOCK");
    let mut sent = 0usize;
    let mut paused = None;
    let deadline = Instant::now() + WAIT;
    // At most 4,096 tries of 64 KiB (256 MiB), and WAIT.
    for _ in 0..4096 {
        match c.write(&pattern_from(sent, 64 * 1024)) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let r = server.report();
                // Paused: output waits for us and a read chunk of input (64 KiB) is kept.
                if r.pending_for(me).unwrap_or(0) > 0 && r.stats.bytes_in - r.echoed >= 64 * 1024 {
                    paused = Some(r);
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("write after {sent} bytes: {e}"),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let paused = paused.expect("the loop never paused reading from a client that does not read");
    c.set_nonblocking(false).expect("blocking again");

    server.begin_stop();
    let (got, end) = read_pattern_to_end(&mut c, sent);
    let stats = server.stop();
    // The kernel may have taken more output after the snapshot, letting the loop read and
    // echo a little more before the stop: the final count of bytes written is what counts.
    assert!(stats.bytes_out >= paused.echoed, "{stats:?}");
    assert!(
        (stats.bytes_out as usize) < sent,
        "the loop echoed everything ({sent} bytes): nothing was left unread"
    );
    assert_eq!(
        got as u64, stats.bytes_out,
        "the loop wrote {} bytes of echo (of {sent} sent) but the client got {got}, then {end:?}",
        stats.bytes_out
    );
    end.expect("end of file after the echo, not a reset");
}
