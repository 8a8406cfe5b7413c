//! The allocation budget of the chat path: how many allocations the server's loop thread
//! makes for one chat message (an EVENT in, a broadcast to a room out), with 1, 10 and 100
//! recipients. Measured with the counting allocator (`socklab::sys::CountingAlloc`), like
//! the echo path's test in `tests/event_loop`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;

use serde_json::{json, Value};
use socklab::events::{RunningServer, ServerConfig, ServerHandle};
use socklab::sys::allocations_on_this_thread;
use socklab::wire::packet::Packet;

use common::{any_port, frame, raw_peer, read_packet, SioPeer, WAIT};

#[global_allocator]
static GLOBAL: socklab::sys::CountingAlloc = socklab::sys::CountingAlloc;

/// The loop thread's allocation count, read on the loop thread.
fn loop_allocations(h: &ServerHandle) -> u64 {
    let (tx, rx) = mpsc::channel();
    h.run(move |_| {
        let _ = tx.send(allocations_on_this_thread());
    })
    .expect("the server runs");
    rx.recv_timeout(WAIT).expect("the loop answered")
}

const MEASURED: u64 = 1000;

/// Allocations allowed in the whole run, not per message: a buffer that now and then grows
/// to a new working size (a connection's outbound buffer, for instance, is used only when
/// its socket is full for a moment, and the test reads its peers one after another). Far
/// below one per message: a single allocation more per message would be 1,000 more.
const ONE_OFF: u64 = 32;

/// The wire the clients speak.
#[derive(Clone, Copy, Debug)]
enum Wire {
    Socklab,
    SocketIo,
}

/// A client of the test: the message it sends, and reading one it receives.
enum Client {
    Socklab(TcpStream),
    SocketIo(Box<SioPeer>),
}

impl Client {
    fn connect(addr: std::net::SocketAddr, wire: Wire) -> Client {
        match wire {
            Wire::Socklab => Client::Socklab(raw_peer(addr).0),
            Wire::SocketIo => Client::SocketIo(Box::new(SioPeer::connect(addr, "/", None).0)),
        }
    }

    fn say(&mut self, socklab_frame: &[u8]) {
        match self {
            Client::Socklab(s) => s.write_all(socklab_frame).expect("the message sent"),
            Client::SocketIo(p) => p.send_text(r#"42["chat message","r","hello, room"]"#),
        }
    }

    fn hear(&mut self) {
        match self {
            Client::Socklab(s) => match read_packet(s) {
                Ok(Some(Packet::Event { name, args, .. })) => {
                    assert_eq!(name, "chat message");
                    assert_eq!(args[0], json!("hello, room"));
                }
                other => panic!("expected the chat message, got {other:?}"),
            },
            Client::SocketIo(p) => {
                let text = p.expect_text("the chat message");
                let want = r#"42["chat message","hello, room","#;
                assert!(text.starts_with(want), "{text}");
            }
        }
    }
}

/// Allocations on the loop thread for `MEASURED` chat messages from one sender to
/// `recipients` others in room `r`, all speaking `wire`, in the steady state: after a
/// warm-up long enough for every buffer to have grown, and the replay log full (it keeps its
/// last 64 broadcasts, so it drops one for each it logs instead of growing).
fn allocations_for_messages(recipients: usize, wire: Wire) -> u64 {
    const WARM_UP: usize = 200;
    let config = ServerConfig {
        replay_limit: 64,
        ..ServerConfig::default()
    };
    let server = RunningServer::start(config, any_port(), |io| {
        io.on_connection("/", |io, sid| {
            io.join(sid, "r");
            io.on(sid, "chat message", |io, ev| {
                let Some(room) = ev.args.first().and_then(Value::as_str) else {
                    return;
                };
                let _ = io
                    .broadcast("/")
                    .to(room)
                    .except_socket(&ev.socket)
                    .emit_args("chat message", &ev.args[1..]);
            });
        });
    })
    .expect("a server");
    let mut peers: Vec<Client> = (0..recipients)
        .map(|_| Client::connect(server.addr, wire))
        .collect();
    let mut sender = Client::connect(server.addr, wire);
    let message = frame(&Packet::Event {
        ns: "/".into(),
        name: "chat message".into(),
        args: vec![json!("r"), json!("hello, room")],
        attachments: Vec::new(),
        id: None,
        offset: None,
    });
    let mut send_and_receive = |n: usize| {
        for _ in 0..n {
            sender.say(&message);
            peers.iter_mut().for_each(Client::hear);
        }
    };
    send_and_receive(WARM_UP);
    let probe = {
        let a = loop_allocations(&server.handle);
        loop_allocations(&server.handle) - a
    };
    let before = loop_allocations(&server.handle);
    send_and_receive(MEASURED as usize);
    let after = loop_allocations(&server.handle);
    server.stop().expect("a clean stop");
    (after - before).saturating_sub(probe)
}

/// The budget: the four allocations of the event the handler receives (its name, and its
/// arguments `["r", "hello, room"]`: the array and two strings, which the application
/// owns), and a few in the whole run (`ONE_OFF`). Finding the socket and its listeners,
/// choosing the recipients, encoding once, queueing to each, logging for replay and writing
/// allocate nothing, whatever the number of recipients.
#[test]
fn a_chat_message_costs_at_most_four_allocations_whatever_the_recipients() {
    within_budget(Wire::Socklab, 4);
}

/// Checks that `MEASURED` chat messages on `wire` cost at most `per_message` allocations
/// each (and `ONE_OFF` in the whole run), for 1, 10 and 100 recipients.
fn within_budget(wire: Wire, per_message: u64) {
    for recipients in [1, 10, 100] {
        let total = allocations_for_messages(recipients, wire);
        let per = total as f64 / MEASURED as f64;
        eprintln!(
            "{wire:?}, {recipients} recipients: {per:.3} allocations per chat message ({total} in all)"
        );
        assert!(
            total <= per_message * MEASURED + ONE_OFF,
            "{wire:?}, {recipients} recipients: {total} allocations for {MEASURED} messages ({per:.2} each)"
        );
    }
}

/// The same chat message on the Socket.IO wire (Engine.IO in WebSocket frames): the same four,
/// and nothing per recipient either (the broadcast is encoded once for every recipient of
/// that wire). The text is unmasked into one buffer the server keeps for every connection,
/// the Socket.IO packet is read from it in place (its namespace borrowed), the JSON parser's
/// array and strings become the event's name and arguments without a copy, and the
/// broadcast's offset is written straight into the frame.
#[test]
fn on_the_socketio_wire_a_chat_message_costs_four_allocations_whatever_the_recipients() {
    within_budget(Wire::SocketIo, 4);
}
