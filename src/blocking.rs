//! Blocking helpers built from the [`crate::sys`] calls: the loops every socket program ends
//! up writing, spelled out once (lessons 02-08).
//!
//! Each helper is a few syscalls in a row or in a loop, nothing hidden: with `--trace` you
//! see every call it makes.

use std::net::SocketAddr;

use crate::sys::{self, Family, Fd, IntOpt};

/// What [`listen_tcp`] should do besides the basics.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// Length of the queue of finished handshakes waiting for `accept` (`listen(2)`).
    pub backlog: i32,
    /// Set `SO_REUSEADDR` before `bind` (lesson 06).
    pub reuseaddr: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        // 128 was SOMAXCONN for decades; the kernel caps it at net.core.somaxconn anyway.
        ListenOptions {
            backlog: 128,
            reuseaddr: false,
        }
    }
}

impl ListenOptions {
    /// The defaults plus `SO_REUSEADDR` (lesson 06): a restarted server gets its port back
    /// at once, even with connections of its previous run in TIME_WAIT.
    pub fn reusable() -> ListenOptions {
        ListenOptions {
            reuseaddr: true,
            ..ListenOptions::default()
        }
    }
}

/// `socket`, optionally `setsockopt(SO_REUSEADDR)`, `bind`, `listen`, `getsockname`:
/// a listening TCP socket and the address it really got (port 0 becomes a real port).
pub fn listen_tcp(addr: SocketAddr, opts: ListenOptions) -> sys::Result<(Fd, SocketAddr)> {
    let fd = sys::socket(Family::of(&addr), false)?;
    if opts.reuseaddr {
        sys::setsockopt(&fd, IntOpt::ReuseAddr, 1)?;
    }
    sys::bind(&fd, &addr)?;
    sys::listen(&fd, opts.backlog)?;
    let local = sys::getsockname(&fd)?;
    Ok((fd, local))
}

/// `socket` then `connect`: a connected TCP socket.
pub fn connect_tcp(addr: SocketAddr) -> sys::Result<Fd> {
    let fd = sys::socket(Family::of(&addr), false)?;
    sys::connect(&fd, &addr)?;
    Ok(fd)
}

/// The write-all loop: `write` until every byte was taken. A blocking `write` usually takes
/// everything at once, but it may stop short (a signal, a full buffer on a non-blocking
/// socket), and it is the caller's job to send the rest.
pub fn write_all(fd: &Fd, mut buf: &[u8]) -> sys::Result<()> {
    while !buf.is_empty() {
        let n = sys::write(fd, buf)?;
        buf = &buf[n..];
    }
    Ok(())
}

/// `read` into a buffer of `chunk` bytes until `read` returns 0 (end of file: the peer sent
/// FIN). Returns everything read.
pub fn read_to_end(fd: &Fd, chunk: usize) -> sys::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk.max(1)];
    loop {
        let n = sys::read(fd, &mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// `read` until exactly `want` bytes arrived, however the stream split them. Returns fewer
/// only if the peer closed first.
pub fn read_up_to(fd: &Fd, want: usize, chunk: usize) -> sys::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(want);
    let mut buf = vec![0u8; chunk.max(1)];
    while out.len() < want {
        let room = (want - out.len()).min(buf.len());
        let n = sys::read(fd, &mut buf[..room])?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(out)
}

/// Serves connections one at a time, for ever: `accept`, hand the connection to `serve`,
/// drop it (which closes it). An error inside one connection is printed and the loop goes on;
/// an error from `accept` itself ends it.
pub fn serve_forever(
    listener: &Fd,
    mut serve: impl FnMut(Fd, SocketAddr) -> sys::Result<()>,
) -> sys::Result<()> {
    loop {
        let (conn, peer) = sys::accept(listener, false)?;
        if let Err(e) = serve(conn, peer) {
            eprintln!("connection from {peer}: {e}");
        }
    }
}

/// A whole client in one call: connect, read until the server closes, copy what arrived to
/// `out`. What `nc HOST PORT` does when you type nothing.
pub fn fetch(
    addr: SocketAddr,
    out: &mut impl std::io::Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let fd = connect_tcp(addr)?;
    let data = read_to_end(&fd, 4096)?;
    out.write_all(&data)?;
    out.flush()?;
    Ok(())
}

// ANCHOR: echo_client
/// An echo client: send `input` chunk by chunk, and after each chunk read back as many bytes
/// before sending the next, so neither side's buffers can fill up. Lessons 04 and 11.
pub fn echo_client(
    addr: SocketAddr,
    mut input: impl std::io::Read,
    out: &mut impl std::io::Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let fd = connect_tcp(addr)?;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = input.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        write_all(&fd, &chunk[..n])?;
        let back = read_up_to(&fd, n, 16 * 1024)?;
        if back.len() < n {
            return Err("the server closed before echoing everything".into());
        }
        out.write_all(&back)?;
        out.flush()?;
    }
}
// ANCHOR_END: echo_client
