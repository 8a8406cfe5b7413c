//! Running a server: [`Server`] on the calling thread, [`RunningServer`] on a thread of its
//! own, and [`ServerHandle`] for other threads to reach it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::protocol::{ServerCore, ServerMsg};
use super::{ClusterConfig, Io, ServerConfig};
use crate::event_loop::{EventLoop, LoopHandle};
use crate::events::ServerGone;
use crate::sys;

/// An event server on its own event loop.
pub struct Server {
    ev: EventLoop<ServerCore>,
}

impl Server {
    pub fn new(config: ServerConfig) -> io::Result<Server> {
        let loop_config = config.loop_config.clone();
        let mut io = Io::new(config);
        io.namespace_mut(crate::wire::packet::DEFAULT_NAMESPACE);
        Ok(Server {
            ev: EventLoop::new(ServerCore { io }, loop_config)?,
        })
    }

    /// The server's state: register namespaces, middleware and connection handlers here.
    pub fn io(&mut self) -> &mut Io {
        &mut self.ev.handler().io
    }

    /// Starts listening; returns the real address.
    pub fn listen(&mut self, addr: SocketAddr) -> sys::Result<SocketAddr> {
        self.ev.ctx().listen(addr)
    }

    /// Starts listening with `SO_REUSEPORT`, so that other processes (or servers) that do
    /// the same can listen on the same port (lesson 23); returns the real address. Each
    /// server keeps its own sockets and rooms: a broadcast reaches its own clients only.
    pub fn listen_shared(&mut self, addr: SocketAddr) -> sys::Result<SocketAddr> {
        self.ev.ctx().listen_shared(addr)
    }

    /// Joins a cluster over the Redis at `redis` (`cluster.rs`): this server's broadcasts go
    /// to the other nodes too, and theirs reach this server's sockets. Fails if Redis does not
    /// take a connection now; once joined, a lost connection is dialled again with backoff.
    pub fn join_cluster(&mut self, redis: SocketAddr, config: ClusterConfig) -> io::Result<()> {
        let (core, ctx) = self.ev.parts();
        core.io.join_cluster(redis, config)?;
        core.io.flush(ctx); // dials both connections
        Ok(())
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            inner: self.ev.handle(),
        }
    }

    /// SIGINT and SIGTERM begin a graceful stop: every client is told `server shutting
    /// down`, output is flushed, connections close, and [`run`](Server::run) returns.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        self.ev.stop_on_signals()
    }

    /// Runs until stopped.
    pub fn run(&mut self) -> io::Result<()> {
        self.ev.run()
    }

    /// One turn of the loop (for demos and tests that step the server by hand). What was
    /// emitted through [`io`](Server::io) since the last turn goes out first.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let (core, ctx) = self.ev.parts();
        core.io.flush(ctx);
        self.ev.turn(timeout)
    }

    pub fn is_stopped(&self) -> bool {
        self.ev.is_stopped()
    }
}

/// For demos that turn a server and its clients in one thread (`event_loop::turn_together`).
impl crate::event_loop::Turn for Server {
    fn poll_fd(&self) -> std::os::fd::RawFd {
        self.ev.poll_fd()
    }
    fn flush_queued(&mut self) {
        let (core, ctx) = self.ev.parts();
        core.io.flush(ctx);
        self.ev.flush_queued();
    }
    fn sleep_for(&mut self) -> Option<Duration> {
        self.ev.sleep_for()
    }
    fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        Server::turn(self, timeout)
    }
}

/// A server running on a thread of its own (a server holds closures that stay on their
/// thread, so it is built there).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    /// Builds a server on a new thread, listens on `addr`, lets `setup` register its
    /// handlers, and runs it.
    pub fn start(
        config: ServerConfig,
        addr: SocketAddr,
        setup: impl FnOnce(&mut Io) + Send + 'static,
    ) -> io::Result<RunningServer> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || -> io::Result<()> {
            let started = (|| -> io::Result<Server> {
                let mut server = Server::new(config)?;
                let local = server.listen(addr)?;
                setup(server.io());
                let _ = tx.send(Ok((local, server.handle())));
                Ok(server)
            })();
            match started {
                Ok(mut server) => server.run(),
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    Err(e)
                }
            }
        });
        let (addr, handle) = rx
            .recv()
            .map_err(|_| io::Error::other("the server thread ended before listening"))??;
        Ok(RunningServer {
            addr,
            handle,
            thread: Some(thread),
        })
    }

    /// Stops the server gracefully and waits for its thread.
    pub fn stop(mut self) -> io::Result<()> {
        let _ = self.handle.stop();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.handle.stop();
            let _ = t.join();
        }
    }
}

// ANCHOR: server_handle
/// Lets other threads (a score feed, a timer) act on the server: the closure runs on the
/// loop thread with `&mut Io`, after the loop is woken through its `Waker`.
#[derive(Clone)]
pub struct ServerHandle {
    inner: LoopHandle<ServerMsg>,
}

impl ServerHandle {
    /// Runs `f` on the loop thread. Fails if the server is gone.
    pub fn run(&self, f: impl FnOnce(&mut Io) + Send + 'static) -> Result<(), ServerGone> {
        self.inner.send(Box::new(f)).map_err(|_| ServerGone)
    }

    /// Broadcasts `event` to `room` of namespace `ns` (every socket of `ns` when `room` is
    /// `None`).
    pub fn broadcast(
        &self,
        ns: &str,
        room: Option<&str>,
        event: &str,
        args: Vec<Value>,
    ) -> Result<(), ServerGone> {
        let (ns, room, event) = (ns.to_string(), room.map(str::to_string), event.to_string());
        self.run(move |io| {
            let mut b = io.broadcast(&ns);
            if let Some(r) = &room {
                b = b.to(r);
            }
            let _ = b.emit(&event, args);
        })
    }

    /// Begins a graceful stop.
    pub fn stop(&self) -> Result<(), ServerGone> {
        self.run(|io| io.stop())
    }
}
// ANCHOR_END: server_handle
