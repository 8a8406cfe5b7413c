//! Accepting: a listener's event means one or more connections are waiting, so the loop
//! accepts until EAGAIN, refuses past [`Config::max_connections`], and on `accept4` failures
//! skips or pauses as [`accept_errors`](super::accept_errors) says.
//!
//! [`Config::max_connections`]: super::Config::max_connections

use std::time::Instant;

use super::accept_errors::{one_connection_lost, report_accept_error, MAX_SKIPPED};
use super::classify::{interrupted, would_block};
use super::conn::State;
use super::ctx::TimerKind;
use super::{Ctx, Handler};
use crate::sys::{self, IntOpt};

// ANCHOR: accept_all
pub(super) fn accept_all<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H, index: usize) {
    // Failures in a row that each should have cost one queued connection: past a few, the
    // error is not what it seems (nothing leaves the queue) and retrying at once would spin.
    let mut skipped = 0;
    loop {
        // Gone (the loop is stopping) or paused: nothing to do until `AcceptResume`.
        let Some(listener) = ctx.listeners.ready(index) else {
            return;
        };
        match sys::accept(listener, true) {
            Ok((fd, peer)) => {
                skipped = 0;
                ctx.stats.accepted += 1;
                if ctx.conns.len() >= ctx.config.max_connections {
                    ctx.stats.refused += 1;
                    drop(fd); // refused: closed at once
                    continue;
                }
                if ctx.config.nodelay {
                    // Failing to set it only costs latency; the connection is still good.
                    let _ = sys::setsockopt(&fd, IntOpt::NoDelay, 1);
                }
                let Ok(id) = ctx.add_conn(fd, peer, State::Open) else {
                    continue; // not watched, so closed at once
                };
                h.accepted(ctx, id, peer);
            }
            Err(e) if would_block(&e) => return, // drained
            Err(e) if interrupted(&e) => continue,
            Err(e) => {
                let seen = ctx.stats.accept_errors.count(e.errno());
                let skip = one_connection_lost(e.errno()) && skipped < MAX_SKIPPED;
                if skip {
                    // That connection is gone; the next one in the queue may be fine.
                    skipped += 1;
                    report_accept_error(&e, seen, "skipped that connection");
                    continue;
                }
                // Out of descriptors or memory, or an error the loop does not know: trying
                // again at once would fail again (a spin), and returning without a timer
                // would strand the queue (edge-triggered: no new event until the next
                // client). Rest, then drain again.
                let backoff = ctx.config.accept_backoff;
                report_accept_error(
                    &e,
                    seen,
                    &format!("accepting paused for {} ms", backoff.as_millis()),
                );
                ctx.stats.accept_backoffs += 1;
                ctx.listeners.set_paused(index, true);
                let at = Instant::now() + backoff;
                ctx.timers.insert(at, TimerKind::AcceptResume(index));
                return;
            }
        }
    }
}
// ANCHOR_END: accept_all
