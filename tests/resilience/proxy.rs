//! A proxy that can cut connections while the server runs on.

use super::*;

/// What the proxy's threads share.
#[derive(Default)]
pub(crate) struct ProxyShared {
    pub(crate) stop: AtomicBool,
    /// Both ends of every connection relayed since the last cut.
    pub(crate) live: Mutex<Vec<TcpStream>>,
    pub(crate) relays: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) accepted: AtomicUsize,
}

/// Cuts every connection the proxy relays (from any thread: a server handler may use it).
#[derive(Clone, Default)]
pub(crate) struct Cutter(pub(crate) Arc<ProxyShared>);

impl Cutter {
    /// `shutdown(SHUT_RDWR)` on both ends of every relayed connection: each peer reads end
    /// of file, as when a NAT box or a Wi-Fi link drops a connection, while the proxy goes on
    /// accepting new ones.
    pub(crate) fn cut(&self) {
        let live = std::mem::take(&mut *lock(&self.0.live));
        for s in &live {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A TCP proxy on 127.0.0.1: each connection accepted is relayed to `upstream` by two
/// threads, one per direction.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    pub(crate) cutter: Cutter,
    pub(crate) accept: Option<JoinHandle<()>>,
}

impl Proxy {
    pub(crate) fn start(cutter: &Cutter, upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(any_port()).expect("the proxy listens");
        let addr = listener.local_addr().expect("getsockname");
        // Non-blocking, so that the accept loop can see the stop flag.
        listener.set_nonblocking(true).expect("O_NONBLOCK");
        let shared = cutter.0.clone();
        let accept = thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((down, _)) => relay_pair(&shared, down, upstream),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Proxy {
            addr,
            cutter: cutter.clone(),
            accept: Some(accept),
        }
    }

    pub(crate) fn cut(&self) {
        self.cutter.cut();
    }

    pub(crate) fn accepted(&self) -> usize {
        self.cutter.0.accepted.load(Ordering::SeqCst)
    }
}

pub(crate) fn relay_pair(shared: &Arc<ProxyShared>, down: TcpStream, upstream: SocketAddr) {
    let _ = down.set_nonblocking(false);
    let Ok(up) = TcpStream::connect_timeout(&upstream, WAIT) else {
        return; // the server is not there: the client sees the connection close
    };
    shared.accepted.fetch_add(1, Ordering::SeqCst);
    let _ = up.set_nodelay(true);
    let _ = down.set_nodelay(true);
    let clones = (
        down.try_clone(),
        up.try_clone(),
        down.try_clone(),
        up.try_clone(),
    );
    let (Ok(d1), Ok(u1), Ok(d2), Ok(u2)) = clones else {
        return;
    };
    lock(&shared.live).extend([d2, u2]);
    let (s1, s2) = (shared.clone(), shared.clone());
    let a = thread::spawn(move || relay(&s1, down, up));
    let b = thread::spawn(move || relay(&s2, u1, d1));
    lock(&shared.relays).extend([a, b]);
}

/// Copies `from` to `to` until end of file, an error, or the proxy stops.
pub(crate) fn relay(shared: &ProxyShared, mut from: TcpStream, mut to: TcpStream) {
    // A short read timeout only to look at the stop flag now and then.
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = to.set_write_timeout(Some(WAIT));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let shared = &self.cutter.0;
        shared.stop.store(true, Ordering::SeqCst);
        self.cutter.cut();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let relays = std::mem::take(&mut *lock(&shared.relays));
        for t in relays {
            let _ = t.join();
        }
    }
}
