//! The event server all event benchmarks run (`socklab-bench server`): socklab's event
//! server with the handlers of the Socket.IO reference server, and nothing else.

use std::error::Error;
use std::net::SocketAddr;

use socklab::event_loop::Config;
use socklab::events::{ClusterConfig, Io, Server, ServerConfig};
use socklab::lesson;

/// The handlers of the Socket.IO reference server (`benches/socketio/server.js`), and no
/// others: `echo` answers its ack with its arguments, `chat message` goes to every socket of
/// `/` (the sender included). `socklab-bench compare` runs its server with these, so that both
/// servers do the same work per event and keep the same listeners per socket (each costs
/// memory in the idle-connections figure).
// ANCHOR: reference
pub fn install_reference_handlers(io: &mut Io) {
    io.on_connection("/", |io, sid| {
        io.on(sid, "echo", |io, ev| io.ack(ev, ev.args.clone()));
        io.on(sid, "chat message", |io, ev| {
            let _ = io.broadcast("/").emit("chat message", ev.args.clone());
        });
    });
}
// ANCHOR_END: reference

/// The bench server in this process, on a free port of 127.0.0.1, with the reference
/// handlers and the default settings: what the harness's tests measure against (it speaks
/// socklab's protocol and the Socket.IO wire on one port).
pub fn in_process() -> std::io::Result<socklab::events::RunningServer> {
    socklab::events::RunningServer::start(
        ServerConfig::default(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        install_reference_handlers,
    )
}

/// Serves on `addr` until SIGINT or SIGTERM, after printing `listening on ADDR` (what the
/// harness waits for). Room for 100,000 connections: the idle-connections figure opens 10,000.
/// With `redis`, the server is a node of the cluster over that Redis (the cluster figure),
/// with the cluster's default settings, those of `socklab serve --redis`.
pub fn serve(addr: SocketAddr, redis: Option<SocketAddr>) -> Result<(), Box<dyn Error>> {
    let config = ServerConfig {
        loop_config: Config {
            max_connections: 100_000,
            ..Config::default()
        },
        ..ServerConfig::default()
    };
    let mut server = Server::new(config)?;
    server.stop_on_signals()?;
    if let Some(redis) = redis {
        server.join_cluster(redis, ClusterConfig::default())?;
    }
    let local = server.listen(addr)?;
    install_reference_handlers(server.io());
    lesson::listening(local);
    server.run()?;
    Ok(())
}
