//! A raw peer: a plain TCP client speaking socklab's protocol by hand (frames, HELLO and
//! CONNECT, reading packets back), for the bytes the library client would never send.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use socket2::{Domain, Socket, Type};
use socklab::wire::frame::HEADER_LEN;
use socklab::wire::packet::{self, Limits, Packet};

use super::WAIT;

pub fn frame(p: &Packet) -> Vec<u8> {
    let mut bytes = Vec::new();
    packet::encode(p, &mut bytes);
    bytes
}

pub fn hello_and_connect() -> Vec<u8> {
    packet::greeting(None)
}

/// Reads one packet; `Ok(None)` is end of file before a frame began.
pub fn read_packet(stream: &mut TcpStream) -> std::io::Result<Option<Packet>> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match stream.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload)?;
    let limits = Limits {
        max_frame: 8 << 20,
        ..Limits::default()
    };
    packet::decode(&payload, &limits)
        .map(Some)
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e.to_string()))
}

/// A plain TCP connection to `addr` with read and write timeouts of [`WAIT`].
pub fn connect_raw(addr: SocketAddr) -> TcpStream {
    connect_raw_with(addr, None)
}

/// [`connect_raw`]; `rcvbuf` shrinks SO_RCVBUF before connecting (a peer that cannot take
/// much, so the kernel's side fills sooner).
pub fn connect_raw_with(addr: SocketAddr, rcvbuf: Option<usize>) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    if let Some(n) = rcvbuf {
        socket.set_recv_buffer_size(n).expect("SO_RCVBUF");
    }
    socket
        .connect_timeout(&addr.into(), WAIT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    stream.set_write_timeout(Some(WAIT)).expect("SO_SNDTIMEO");
    stream
}

/// Sends HELLO and CONNECT to `/` (with `auth` as the CONNECT's data) on `stream`, reads
/// the server's HELLO and CONNECT reply, and returns the reply's data (`sid`, `pid`,
/// `recovered`, `offset`). Panics on anything else: the handshake is what the calling test
/// relies on, not what it tests.
pub fn handshake_with(
    stream: &mut TcpStream,
    auth: Option<serde_json::Value>,
) -> serde_json::Value {
    stream
        .write_all(&packet::greeting(auth))
        .expect("HELLO and CONNECT sent");
    // The server's HELLO comes first, then its CONNECT reply.
    for _ in 0..2 {
        match read_packet(stream) {
            Ok(Some(Packet::Connect { data: Some(d), .. })) => return d,
            Ok(Some(Packet::Hello { .. })) => continue,
            other => panic!("expected HELLO, then CONNECT; got {other:?}"),
        }
    }
    panic!("no CONNECT reply from the server")
}

/// [`handshake_with`] without auth; returns the socket id the server gave.
pub fn handshake(stream: &mut TcpStream) -> String {
    let reply = handshake_with(stream, None);
    let sid = reply.get("sid").and_then(serde_json::Value::as_str);
    sid.expect("CONNECT carries the sid").to_string()
}

/// A new raw connection that has completed HELLO and CONNECT with `auth`: the stream and the
/// CONNECT reply's data.
pub fn raw_connect(
    addr: SocketAddr,
    auth: Option<serde_json::Value>,
) -> (TcpStream, serde_json::Value) {
    let mut stream = connect_raw(addr);
    let reply = handshake_with(&mut stream, auth);
    (stream, reply)
}

/// A new raw connection that sends HELLO and a CONNECT to namespace `ns` with `auth`: the
/// stream and the server's answer to the CONNECT (CONNECT or CONNECT_ERROR).
pub fn raw_connect_ns(addr: SocketAddr, ns: &str, auth: serde_json::Value) -> (TcpStream, Packet) {
    let mut stream = connect_raw(addr);
    let mut bytes = frame(&Packet::hello(serde_json::json!({})));
    bytes.extend(frame(&Packet::Connect {
        ns: ns.into(),
        data: Some(auth),
    }));
    stream.write_all(&bytes).expect("HELLO and CONNECT sent");
    for _ in 0..2 {
        match read_packet(&mut stream) {
            Ok(Some(Packet::Hello { .. })) => continue,
            Ok(Some(p)) => return (stream, p),
            other => panic!("expected HELLO, then the CONNECT's answer; got {other:?}"),
        }
    }
    panic!("no answer to the CONNECT")
}

/// A raw peer that has completed HELLO and CONNECT: the stream and its socket id.
pub fn raw_peer(addr: SocketAddr) -> (TcpStream, String) {
    raw_peer_with(addr, None)
}

/// [`raw_peer`] with SO_RCVBUF shrunk to `rcvbuf` before connecting (see [`connect_raw_with`]).
pub fn raw_peer_with(addr: SocketAddr, rcvbuf: Option<usize>) -> (TcpStream, String) {
    let mut stream = connect_raw_with(addr, rcvbuf);
    let sid = handshake(&mut stream);
    (stream, sid)
}

/// Reads (and keeps) bytes until the server closes the connection: end of file, or a reset
/// (a server that closes with our bytes unread sends RST). Returns the bytes read.
pub fn wait_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let deadline = Instant::now() + WAIT;
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return all,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("{what}: the server did not close the connection: {e}"),
        }
    }
    panic!("{what}: the server did not close the connection within {WAIT:?}")
}
