//! No allocation per event on the loop thread (the counting allocator is installed in main.rs).

use super::*;

/// [`Echo`], publishing the loop thread's allocation count each time data arrives.
struct AllocProbe {
    echo: Echo,
    loop_allocations: Arc<AtomicU64>,
}

impl Handler for AllocProbe {
    type Timer = ();
    type Message = ();

    fn data(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        let used = self.echo.data(ctx, id, bytes);
        self.loop_allocations
            .store(allocations_on_this_thread(), Ordering::SeqCst);
        used
    }
}

/// After a warm-up (buffers grown, the connection set up), an echo round trip costs the
/// loop thread no allocation: epoll_wait, the reads (the last one EAGAIN), `Handler::data`,
/// the send and the flush all reuse what exists. The count is read from the loop thread's
/// own counter, published in `Handler::data`: from round trip 200's to round trip 2,200's it
/// covers 2,000 whole turns.
#[test]
fn steady_state_echo_does_not_allocate_on_the_loop_thread() {
    const WARM_UP: usize = 200;
    const MEASURED: usize = 2_000;
    let loop_allocations = Arc::new(AtomicU64::new(0));
    let probe = AllocProbe {
        echo: Echo::default(),
        loop_allocations: Arc::clone(&loop_allocations),
    };
    let server = LoopThread::start(probe, Config::default());
    let mut c = client(server.addr);

    // Messages of one length, built in one buffer: the test thread's own allocations do not
    // matter (they are counted on its thread), but this keeps the traffic uniform.
    let mut msg = *b"round trip 0000000\n";
    let mut round_trip = |i: usize| {
        let digits = format!("{i:07}");
        msg[11..18].copy_from_slice(digits.as_bytes());
        echo_round_trip(&mut c, &msg);
    };
    for i in 0..WARM_UP {
        round_trip(i);
    }
    // The loop stored its count in `data` before it sent the echo we just read.
    let before = loop_allocations.load(Ordering::SeqCst);
    for i in WARM_UP..WARM_UP + MEASURED {
        round_trip(i);
    }
    let after = loop_allocations.load(Ordering::SeqCst);
    assert!(
        before > 0,
        "the probe never reported (the loop allocates at start-up)"
    );
    assert_eq!(
        after - before,
        0,
        "the loop thread allocated {} times over {MEASURED} echo round trips",
        after - before
    );
    server.stop();
}
