//! A fake server: a listener on a thread of its own that hands each connection to the test's
//! closure, for the bytes and the silences a real socklab server would never produce.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::{any_port, WAIT};

/// What the fake server does with its `n`th connection (from 0); it returns the stream to
/// keep open, or `None` to let it go.
pub type Behaviour = Box<dyn FnMut(usize, TcpStream) -> Option<TcpStream> + Send>;

/// A listener on its own thread that accepts (polling, every 2 ms) and hands each connection
/// to a [`Behaviour`]. It stops when dropped, and after `3 * WAIT` in any case.
pub struct FakeServer {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(
        behaviour: impl FnMut(usize, TcpStream) -> Option<TcpStream> + Send + 'static,
    ) -> Self {
        Self::start_with(None, Box::new(behaviour))
    }

    /// `recv_buffer`: SO_RCVBUF for the listener, which accepted sockets inherit (a small
    /// one makes a server that does not read fill up sooner).
    pub fn start_with(recv_buffer: Option<usize>, mut behaviour: Behaviour) -> Self {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        socket.bind(&any_port().into()).expect("bind 127.0.0.1:0");
        socket.listen(128).expect("listen");
        let listener: TcpListener = socket.into();
        listener.set_nonblocking(true).expect("O_NONBLOCK");
        let addr = listener.local_addr().expect("getsockname");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (accepted.clone(), stop.clone());
        let thread = thread::spawn(move || {
            // Kept open until the fake server stops; at most a few hundred in any test.
            let mut kept = Vec::new();
            let deadline = Instant::now() + 3 * WAIT;
            while !halt.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        stream.set_nonblocking(false).expect("blocking again");
                        // A write never blocks this thread for long, whatever the client does.
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                        if let Some(s) = behaviour(n, stream) {
                            kept.push(s);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2))
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => panic!("the fake server's accept failed: {e}"),
                }
            }
        });
        FakeServer {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // Its panic, if any, shows in the test output; a failing test is failing already.
            let _ = t.join();
        }
    }
}
