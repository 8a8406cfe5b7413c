//! The timer heap and the waker, with `run()` returning after `ctx.stop()`.

use super::*;

enum ClockMsg {
    /// Set the timers.
    Arm,
    Stop,
}

/// Sets timers when told, and tells which fired.
struct Clock {
    fired: Sender<&'static str>,
    cancelled: Vec<Option<&'static str>>,
    timers_left: Option<usize>,
}

impl Handler for Clock {
    type Timer = &'static str;
    type Message = ClockMsg;

    fn data(&mut self, _: &mut Ctx<&'static str>, _: ConnId, bytes: &[u8]) -> usize {
        bytes.len()
    }

    fn timer(&mut self, ctx: &mut Ctx<&'static str>, _: TimerId, value: &'static str) {
        let _ = self.fired.send(value);
        if value == "30 ms" {
            self.timers_left = Some(ctx.timer_count());
        }
    }

    fn message(&mut self, ctx: &mut Ctx<&'static str>, msg: ClockMsg) {
        match msg {
            ClockMsg::Arm => {
                ctx.set_timer(Duration::from_millis(10), "10 ms");
                ctx.set_timer(Duration::from_millis(30), "30 ms");
                ctx.set_timer(Duration::from_millis(20), "20 ms");
                // Due before two of the others: had it not been cancelled it would fire.
                let doomed = ctx.set_timer(Duration::from_millis(15), "cancelled at 15 ms");
                self.cancelled.push(ctx.cancel_timer(doomed));
                self.cancelled.push(ctx.cancel_timer(doomed));
            }
            ClockMsg::Stop => ctx.stop(),
        }
    }
}

/// Timers set at 10, 30 and 20 ms fire in deadline order; one cancelled (due at 15 ms) never
/// fires, and cancelling it twice gives its value once. The loop sleeps in `run()` with no
/// timeout of its own, so only the waker can bring it the messages from this thread: `Arm`,
/// then `Stop`, which calls `ctx.stop()` and makes `run()` return.
#[test]
fn timers_fire_in_order_and_a_message_stops_run() {
    let (fired_tx, fired) = mpsc::channel();
    let (ready_tx, ready) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let looper = thread::spawn(move || {
        let clock = Clock {
            fired: fired_tx,
            cancelled: Vec::new(),
            timers_left: None,
        };
        let mut ev = EventLoop::new(clock, Config::default()).expect("a loop");
        let _ = ready_tx.send(ev.handle());
        let result = ev.run().map_err(|e| e.to_string());
        let h = ev.handler();
        let _ = done_tx.send((
            result,
            std::mem::take(&mut h.cancelled),
            h.timers_left,
            ev.is_stopped(),
        ));
    });
    let handle = ready.recv_timeout(WAIT).expect("the loop starts");

    assert!(handle.send(ClockMsg::Arm).is_ok(), "the loop is running");
    let order: Vec<&str> = (0..3)
        .map(|i| {
            fired
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("only {i} of 3 timers fired"))
        })
        .collect();
    assert_eq!(order, ["10 ms", "20 ms", "30 ms"]);

    assert!(handle.send(ClockMsg::Stop).is_ok(), "the loop is running");
    let (result, cancelled, timers_left, stopped) = done
        .recv_timeout(WAIT)
        .expect("run() returns after ctx.stop()");
    looper.join().expect("the loop thread");
    result.expect("run() ends without error");
    assert!(stopped);
    assert_eq!(cancelled, [Some("cancelled at 15 ms"), None]);
    assert_eq!(
        timers_left,
        Some(0),
        "no timer left after the last one fired"
    );
    let late: Vec<&str> = fired.try_iter().collect();
    assert!(late.is_empty(), "fired after the three: {late:?}");
    assert!(
        handle.send(ClockMsg::Stop).is_err(),
        "a handle fails once its loop is gone"
    );
}
