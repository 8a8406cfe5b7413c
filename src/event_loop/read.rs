//! The read path: a readable connection is read until EAGAIN (at most
//! [`Config::reads_per_event`](super::Config::reads_per_event) reads per turn) and the bytes
//! are handed to the handler, which keeps what it cannot use yet in the connection's input
//! buffer. Also here: the lingering close's reads, and reading paused for backpressure.

use super::classify::{interrupted, would_block};
use super::config::KEEP_CAPACITY;
use super::{CloseReason, ConnId, Ctx, Handler};
use crate::sys;

// ANCHOR: read_ready
pub(super) fn read_ready<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H, id: ConnId) {
    let turn = ctx.stats.turns;
    // Read once already in this turn: that read listed it for the next if it had to.
    if ctx.conns.get(id).is_none_or(|conn| conn.read_turn == turn) {
        return;
    }
    let mut scratch = std::mem::take(&mut ctx.scratch);
    let mut drained = false;
    for _ in 0..ctx.config.reads_per_event {
        let Some(conn) = ctx.conns.get_mut(id) else {
            drained = true;
            break;
        };
        if conn.lingering {
            match sys::read(&conn.fd, &mut scratch) {
                Ok(0) => {
                    // The peer's FIN: now the close is clean on both sides.
                    conn.read_closed = true;
                    ctx.abort(id);
                    drained = true;
                    break;
                }
                Ok(_) => continue, // dropped: the connection is closing
                Err(e) if would_block(&e) => {
                    drained = true;
                    break;
                }
                Err(e) if interrupted(&e) => continue,
                Err(_) => {
                    ctx.abort(id);
                    drained = true;
                    break;
                }
            }
        }
        if conn.closing.is_some() || conn.read_closed || conn.read_paused {
            drained = true;
            break;
        }
        if conn.input.len() >= scratch.len() && conn.pending() > 0 {
            // Backpressure: the handler could not take what it has, and the peer is not
            // reading our output. Stop reading until the output drains.
            conn.read_paused = true;
            drained = true;
            break;
        }
        if std::mem::take(&mut conn.reoffer) && !conn.input.is_empty() {
            // Resuming after a pause: offer what is waiting before reading more.
            deliver(ctx, h, id, &[]);
        }
        let Some(conn) = ctx.conns.get_mut(id) else {
            drained = true;
            break;
        };
        match sys::read(&conn.fd, &mut scratch) {
            Ok(0) => {
                conn.read_closed = true;
                // Bytes the handler left unconsumed are the start of a message that will
                // never be finished: end of file there is an error, not a clean close.
                let reason = match conn.input.len() {
                    0 => CloseReason::PeerClosed,
                    unconsumed => CloseReason::Truncated { unconsumed },
                };
                ctx.mark_closing(id, reason, true);
                drained = true;
                break;
            }
            Ok(n) => {
                ctx.stats.reads += 1;
                ctx.stats.bytes_in += n as u64;
                deliver(ctx, h, id, &scratch[..n]);
            }
            Err(e) if would_block(&e) => {
                ctx.stats.reads_would_block += 1;
                drained = true;
                break;
            }
            Err(e) if interrupted(&e) => continue,
            Err(e) => {
                ctx.fail(id, e);
                drained = true;
                break;
            }
        }
    }
    ctx.scratch = scratch;
    if let Some(conn) = ctx.conns.get_mut(id) {
        conn.read_turn = turn;
    }
    if !drained {
        ctx.read_later(id);
    }
}
// ANCHOR_END: read_ready

// ANCHOR: deliver
/// Hands bytes to the handler; keeps what it did not consume.
fn deliver<H: Handler>(ctx: &mut Ctx<H::Timer>, h: &mut H, id: ConnId, data: &[u8]) {
    let Some(conn) = ctx.conns.get_mut(id) else {
        return;
    };
    if conn.input.is_empty() {
        // The common case: no leftovers, so the handler reads straight from the scratch
        // buffer and nothing is copied.
        let used = h.data(ctx, id, data).min(data.len());
        if used < data.len() {
            if let Some(conn) = ctx.conns.get_mut(id) {
                conn.input.extend_from_slice(&data[used..]);
            }
        }
    } else {
        conn.input.extend_from_slice(data);
        let mut input = std::mem::take(&mut conn.input);
        let used = h.data(ctx, id, &input).min(input.len());
        input.drain(..used);
        if let Some(conn) = ctx.conns.get_mut(id) {
            conn.input = input;
        }
    }
    let max = ctx.config.max_inbound;
    if let Some(conn) = ctx.conns.get_mut(id) {
        if conn.input.len() > max {
            ctx.close_now(id, CloseReason::InputOverflow);
        } else if conn.input.is_empty() && conn.input.capacity() > KEEP_CAPACITY {
            conn.input.shrink_to(KEEP_CAPACITY);
        }
    }
}
// ANCHOR_END: deliver
