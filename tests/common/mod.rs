//! Helpers shared by the integration tests that talk the protocol by hand: a raw peer's
//! frames, its handshake, and reading packets back.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::json;
use socklab::wire::frame::HEADER_LEN;
use socklab::wire::packet::{self, Limits, Packet};

/// How long any one wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn frame(p: &Packet) -> Vec<u8> {
    let mut bytes = Vec::new();
    packet::encode(p, &mut bytes);
    bytes
}

pub fn hello_and_connect() -> Vec<u8> {
    let mut bytes = frame(&Packet::hello(json!({})));
    bytes.extend(frame(&Packet::Connect {
        ns: "/".into(),
        data: None,
    }));
    bytes
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

pub fn connect_raw(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    stream.set_write_timeout(Some(WAIT)).expect("SO_SNDTIMEO");
    stream
}
