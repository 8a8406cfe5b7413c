//! The socketioxide server of `make bench`: what `benches/socketio/server.js` does, on
//! socketioxide 0.18 instead of Socket.IO on Node.js, written the way its documentation shows.
//!
//!   socketioxide-bench-server [--port 0]
//!                         prints "listening on 127.0.0.1:PORT", then serves until SIGTERM
//!                         or SIGINT, and exits 0
//!
//! - `echo`: answers its ack with its data (the ack round trip, figures 2 and 5);
//! - `chat message`: emitted to every socket of `/`, the sender included (the fan-out,
//!   figure 3), as `io.emit` does in server.js.
//!
//! One thread: a `current_thread` tokio runtime, as socklab's server is one event loop, so
//! that the comparison is one core against one core. Settings changed from socketioxide's
//! defaults are in [`serve`]; README.md beside this crate lists them with their reasons.

use std::net::SocketAddr;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use rmpv::Value;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::{BroadcastError, SocketIo, TransportType};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// Packets that may wait in one socket's outgoing queue. socketioxide's default is 128: in a
/// burst, the sender's events are read and broadcast faster than each recipient's WebSocket
/// is written, so a recipient's queue fills and `emit` to it fails, which drops that message
/// for that client (measured: a burst of 1,000 messages to 100 clients lost some). Node's
/// Socket.IO queues without a bound. 1,048,576 holds the largest burst `make bench` sends
/// (10,000 messages) a hundred times over; it costs nothing until used, since tokio's bounded
/// channel allocates its slots in small blocks as they fill.
const MAX_BUFFER_SIZE: usize = 1 << 20;

fn main() {
    let port = match port_from_args(std::env::args().skip(1)) {
        Ok(port) => port,
        Err(e) => {
            eprintln!("error: {e}\nusage: socketioxide-bench-server [--port N]");
            std::process::exit(2);
        }
    };
    // The timers too: socketioxide's heartbeats and timeouts run on tokio's clock.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(serve(port)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// `--port N` (default 0: any free port), and nothing else.
fn port_from_args(mut args: impl Iterator<Item = String>) -> Result<u16, String> {
    let mut port = 0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = value
                    .parse()
                    .map_err(|e| format!("--port {value:?}: {e}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(port)
}

/// The handlers of server.js on the namespace `/`.
fn handlers(io: &SocketIo) {
    // ANCHOR: handlers
    io.ns("/", async |socket: SocketRef| {
        socket.on("echo", async |Data::<Value>(data), ack: AckSender| {
            // A client that asked for no ack gets none; nothing else can fail here but a
            // socket already gone.
            ack.send(&data).ok();
        });
        socket.on("chat message", async |io: SocketIo, Data::<Value>(data)| {
            // Every socket of `/`, the sender included. A failure is a recipient whose
            // queue is full: said on stderr (the harness keeps it in the server's log),
            // never silent.
            match io.emit("chat message", &data).await {
                Ok(()) => {}
                Err(BroadcastError::Socket(failed)) => {
                    eprintln!("chat message not queued for {} socket(s)", failed.len())
                }
                Err(e) => eprintln!("chat message not sent: {e}"),
            }
        });
    });
    // ANCHOR_END: handlers
}

async fn serve(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    // The settings that differ from socketioxide's defaults; everything else is its default
    // (ping every 25 s, 20 s to answer, as server.js).
    let (svc, io) = SocketIo::builder()
        // WebSocket only, as server.js (`transports: ["websocket"]`) and the load scripts:
        // no HTTP long-polling handshake before the upgrade.
        .transports([TransportType::Websocket])
        .max_buffer_size(MAX_BUFFER_SIZE)
        .build_svc();
    handlers(&io);
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on {}", listener.local_addr()?);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        };
        // Small messages one at a time: no Nagle delay, as socklab and Node.js (which sets
        // TCP_NODELAY on every socket by default) do.
        stream.set_nodelay(true)?;
        let svc = svc.clone();
        // A task per connection, all on this one thread; `with_upgrades` hands the
        // connection to socketioxide's WebSocket once the upgrade is answered.
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            if let Err(e) = conn.await {
                eprintln!("connection: {e}");
            }
        });
    }
}
