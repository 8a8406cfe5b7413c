//! The server of lessons 14, 21 and 22, the same on every wire: two events it answers, and a
//! question it asks each client. Lesson 14 shows it on socklab's frames, lesson 21 on
//! Socket.IO over a WebSocket, lesson 22 over long-polling.

use std::time::Duration;

use serde_json::{json, Value};

use crate::events::{Emit, Io};

// ANCHOR: server
/// `greet` is answered `hello, NAME`; `upload` with the size of its first attachment; each
/// new client is asked `question` and the answer printed.
pub fn install(io: &mut Io) {
    io.on_connection("/", |io, sid| {
        io.on(sid, "greet", |io, ev| {
            let name = ev
                .args
                .first()
                .and_then(Value::as_str)
                .unwrap_or("stranger");
            io.ack(ev, vec![json!(format!("hello, {name}"))]);
        });
        io.on(sid, "upload", |io, ev| {
            let size = ev.attachments.first().map_or(0, Vec::len);
            io.ack(ev, vec![json!(size)]);
        });
        let ask = Emit::new("question").arg(json!("ready?"));
        let ask = ask.ack(Duration::from_secs(5), |_, answer| match answer {
            Ok(a) => println!("  (the server's ack callback got {})", json!(a.args)),
            Err(e) => println!("  (the server's ack callback: {e})"),
        });
        let _ = io.send(sid, ask);
    });
}
// ANCHOR_END: server
