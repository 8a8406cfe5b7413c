//! A blocking WebSocket client on the `sys` calls, for the lessons that show the client's
//! side byte by byte (20, 21): the upgrade request, the answer, masked frames out, messages
//! in. No event loop: each call blocks until it is done, so a lesson reads top to bottom.

use std::error::Error;
use std::net::SocketAddr;

use crate::blocking;
use crate::sys::{self, Fd, IntOpt};
use crate::wire::http;
use crate::wire::websocket::{self, Decoder, Message, Opcode, Role};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// One client connection: the socket, what was read and not used yet, the frame decoder.
pub struct WsClient {
    fd: Fd,
    kept: Vec<u8>,
    frames: Decoder,
    /// The masking key of every frame sent. A real client draws one per frame; a lesson
    /// keeps one, so that its recorded bytes are the same every run.
    key: [u8; 4],
    /// Bytes written and read so far (the upgrade included), for the lessons' counts.
    pub sent: usize,
    pub received: usize,
}

impl WsClient {
    /// Connects to `addr`; frames will be masked with `key`. Nagle's algorithm is off
    /// (`TCP_NODELAY`, lesson 12), as in browsers and Node's `ws`: a client's small frames
    /// leave at once instead of waiting for the ACK of the one before.
    pub fn connect(addr: SocketAddr, key: [u8; 4]) -> Result<WsClient> {
        let fd = blocking::connect_tcp(addr)?;
        sys::setsockopt(&fd, IntOpt::NoDelay, 1)?;
        Ok(WsClient {
            fd,
            kept: Vec::new(),
            frames: Decoder::new(Role::Client, 1 << 20),
            key,
            sent: 0,
            received: 0,
        })
    }

    /// Sends the upgrade request for `target` (a path and its query) with header `Host`.
    pub fn request_upgrade(&mut self, target: &str, host: &str) -> Result<()> {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        blocking::write_all(&self.fd, request.as_bytes())?;
        self.sent += request.len();
        Ok(())
    }

    fn read_more(&mut self) -> Result<()> {
        let mut buf = [0u8; 4096];
        let n = sys::read(&self.fd, &mut buf)?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        self.kept.extend_from_slice(&buf[..n]);
        Ok(())
    }

    /// The answer to the upgrade request: its status, and its body if it has one.
    pub fn answer(&mut self) -> Result<(u16, String)> {
        loop {
            if let Some(res) = http::parse_response(&self.kept)? {
                let whole = res.head_len + res.content_length;
                if self.kept.len() >= whole {
                    let body = String::from_utf8_lossy(&self.kept[res.head_len..whole]);
                    let body = body.into_owned();
                    self.kept.drain(..whole);
                    self.received += whole;
                    return Ok((res.status, body));
                }
            }
            self.read_more()?;
        }
    }

    /// The next message (or control frame) from the server, with the bytes of its frame.
    pub fn next_framed(&mut self) -> Result<(Message, Vec<u8>)> {
        loop {
            let mut got = None;
            let used = self.frames.decode(&self.kept, |m| {
                got = Some(m);
                false
            });
            let bytes: Vec<u8> = self.kept.drain(..used).collect();
            self.received += bytes.len();
            if let Some(m) = got {
                return Ok((m?, bytes));
            }
            self.read_more()?;
        }
    }

    /// The next message (or control frame) from the server.
    pub fn next_message(&mut self) -> Result<Message> {
        Ok(self.next_framed()?.0)
    }

    /// Sends one masked frame; returns its bytes.
    pub fn send(&mut self, opcode: Opcode, payload: &[u8]) -> Result<Vec<u8>> {
        let mut frame = Vec::new();
        websocket::encode_frame(true, opcode, payload, Some(self.key), &mut frame);
        blocking::write_all(&self.fd, &frame)?;
        self.sent += frame.len();
        Ok(frame)
    }

    /// Sends one text frame; returns its bytes.
    pub fn send_text(&mut self, text: &str) -> Result<Vec<u8>> {
        self.send(Opcode::Text, text.as_bytes())
    }
}
