//! WebSocket frames (RFC 6455, section 5), as pure code: bytes in, messages out, no I/O.
//!
//! After the HTTP upgrade, a WebSocket connection is a byte stream cut into frames:
//!
//! ```text
//!  byte 0           byte 1           then
//! +-+-+-+-+-------+-+-------------+- - - - - - - - - - - - - - -+- - - - - - - -+- - - - -+
//! |F|R|R|R| opcode|M| length (7)  | length, if 126: 16 bits,    | masking key,  | payload |
//! |I|S|S|S|  (4)  |A|             |   if 127: 64 bits (big-     | if MASK: 4    |         |
//! |N|V|V|V|       |S|             |   endian)                   | bytes         |         |
//! +-+-+-+-+-------+-+-------------+- - - - - - - - - - - - - - -+- - - - - - - -+- - - - -+
//!   81 05 68 65 6c 6c 6f            = an unmasked text frame "hello" (a server's)
//! ```
//!
//! - **Opcodes:** 0 continuation, 1 text (UTF-8), 2 binary, 8 close, 9 ping, 10 pong. A message
//!   may be cut into fragments: a text or binary frame without FIN, then continuations, the
//!   last with FIN. Control frames (close, ping, pong) are never fragmented, carry at most 125
//!   bytes, and may come between the fragments of a message.
//! - **Masking:** every frame a client sends is masked: its payload XORed with 4 random bytes
//!   sent in the header. It is not secrecy (the key is right there); it keeps a browser's
//!   script from choosing the bytes that cross a proxy, which could otherwise be made to look
//!   like an HTTP request and poison the proxy's cache. Servers never mask, so a server can
//!   encode a broadcast once and send the same bytes to everyone.
//! - **Closing:** a close frame carries a 2-byte status code and an optional UTF-8 reason;
//!   the other side answers with a close frame, then the server closes the TCP connection.
//!
//! The [`Decoder`] enforces the rules a server must (section 5 and 7.4): a violation is a
//! [`WsError`] with the close code to send (1002 protocol error, 1007 invalid UTF-8, 1009 too
//! big), and it is found from the header alone wherever it can be, before the payload is
//! waited for or stored.

use std::fmt;

/// The largest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest header: 2 bytes, 8 of extended length, 4 of masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// Close status codes (RFC 6455, 7.4.1).
pub mod close {
    /// The purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (a server shutting down).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A message of a type this endpoint does not accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Text that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message that breaks the endpoint's policy.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message over the endpoint's size limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server met a condition it cannot handle.
    pub const INTERNAL_ERROR: u16 = 1011;

    /// Whether `code` may be sent in a close frame: 1000-1003, 1007-1014 are defined or
    /// registered, 3000-4999 belong to libraries and applications. 1004-1006 and 1015 are
    /// reserved, and must never be on the wire.
    pub fn is_sendable(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// A frame's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation = 0,
    Text = 1,
    Binary = 2,
    Close = 8,
    Ping = 9,
    Pong = 10,
}

impl Opcode {
    fn from_bits(b: u8) -> Option<Opcode> {
        Some(match b {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            10 => Opcode::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Which end is decoding: a server accepts only masked frames, a client only unmasked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// What the peer sent: a whole message (its fragments joined), or a control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The peer is closing: its status code and reason, if it gave any.
    Close(Option<(u16, String)>),
}

/// A violation of the protocol: the close code to answer with, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsError {
    pub code: u16,
    pub reason: &'static str,
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (close code {})", self.reason, self.code)
    }
}

impl std::error::Error for WsError {}

fn protocol(reason: &'static str) -> WsError {
    WsError {
        code: close::PROTOCOL_ERROR,
        reason,
    }
}

/// A frame's header, read from its first 2 to 14 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    len: u64,
    /// Bytes the header took.
    size: usize,
}

/// Reads a header from the start of `input`: `Ok(None)` if more bytes are needed. Every rule
/// that the header alone can break is checked here.
fn header(input: &[u8], role: Role) -> Result<Option<Header>, WsError> {
    let [b0, b1, ..] = *input else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(protocol("reserved bits set, and no extension was agreed"));
    }
    let opcode = Opcode::from_bits(b0 & 0x0f).ok_or(protocol("unknown opcode"))?;
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    match role {
        Role::Server if !masked => return Err(protocol("a client's frame must be masked")),
        Role::Client if masked => return Err(protocol("a server's frame must not be masked")),
        _ => {}
    }
    let (len, mut size) = match b1 & 0x7f {
        126 => match input.get(2..4) {
            Some(b) => (u16::from_be_bytes([b[0], b[1]]) as u64, 4),
            None => return Ok(None),
        },
        127 => match input.get(2..10) {
            Some(b) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(None),
        },
        n => (n as u64, 2),
    };
    if len >> 63 != 0 {
        return Err(protocol("a 64-bit length must have its top bit clear"));
    }
    if opcode.is_control() {
        if !fin {
            return Err(protocol("a control frame must not be fragmented"));
        }
        if len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(protocol("a control frame carries at most 125 bytes"));
        }
    }
    let mask = if masked {
        let Some(k) = input.get(size..size + 4) else {
            return Ok(None);
        };
        size += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        len,
        size,
    }))
}

/// XORs `bytes` with the masking key, starting at the key's byte `offset % 4`.
pub fn apply_mask(bytes: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= key[(offset + i) % 4];
    }
}

/// An incremental decoder for one direction of one connection.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    max_message: usize,
    /// The message being assembled from fragments: its type and what arrived so far. Boxed:
    /// few messages are fragmented, and a server keeps a decoder for every connection for its
    /// whole life, so the room for one would count in every idle connection's memory.
    open: Option<Box<(Opcode, Vec<u8>)>>,
}

impl Decoder {
    /// A decoder for `role` that refuses messages over `max_message` bytes (close 1009).
    pub fn new(role: Role, max_message: usize) -> Decoder {
        Decoder {
            role,
            max_message,
            open: None,
        }
    }

    /// Bytes of a fragmented message held, waiting for its last fragment.
    pub fn buffered(&self) -> usize {
        self.open.as_ref().map_or(0, |held| held.1.len())
    }

    /// Decodes the whole frames at the start of `input`, handing each complete message and
    /// each control frame to `each`, until `each` returns `false` or an error is met (it is
    /// handed to `each` too, and decoding stops: the connection must be closed with its
    /// code). Returns the bytes used; the rest is an incomplete frame to offer again with
    /// more bytes after it.
    pub fn decode(
        &mut self,
        input: &[u8],
        mut each: impl FnMut(Result<Message, WsError>) -> bool,
    ) -> usize {
        // Each message owns its bytes: a copy of what `decode_ref` lends.
        let mut scratch = Vec::new();
        self.decode_ref(input, &mut scratch, |m| each(m.map(MessageRef::to_owned)))
    }

    /// [`decode`](Decoder::decode) without an allocation per message: each payload is
    /// unmasked into `scratch`, a buffer the caller lends and keeps for the next call, and the
    /// message handed to `each` borrows it. A server reads every message of every
    /// connection this way through one buffer.
    pub fn decode_ref(
        &mut self,
        input: &[u8],
        scratch: &mut Vec<u8>,
        mut each: impl FnMut(Result<MessageRef<'_>, WsError>) -> bool,
    ) -> usize {
        let mut used = 0;
        loop {
            match self.next(&input[used..], scratch) {
                Ok(None) => return used,
                Ok(Some((n, kind))) => {
                    used += n;
                    let Some(kind) = kind else { continue };
                    // A message that breaks the protocol (text not UTF-8, a bad close
                    // frame) ends decoding like a frame that does.
                    let m = borrowed(kind, scratch);
                    let fine = m.is_ok();
                    if !each(m) || !fine {
                        return used;
                    }
                }
                Err(e) => {
                    each(Err(e));
                    return used;
                }
            }
        }
    }

    /// One frame from the start of `input`: the bytes it took and, if it completed a
    /// message or is a control frame, its type, its payload unmasked in `payload` (a
    /// fragment that is not the last completes none: it is held).
    fn next(
        &mut self,
        input: &[u8],
        payload: &mut Vec<u8>,
    ) -> Result<Option<(usize, Option<Opcode>)>, WsError> {
        let Some(h) = header(input, self.role)? else {
            return Ok(None);
        };
        match (h.opcode, &self.open) {
            (Opcode::Continuation, None) => {
                return Err(protocol("a continuation frame with no message open"))
            }
            (Opcode::Text | Opcode::Binary, Some(_)) => {
                return Err(protocol("a new message inside an unfinished one"))
            }
            _ => {}
        }
        if !h.opcode.is_control() && h.len > (self.max_message - self.buffered()) as u64 {
            return Err(WsError {
                code: close::MESSAGE_TOO_BIG,
                reason: "the message is over the size limit",
            });
        }
        let len = h.len as usize; // at most `max_message`, or 125
        let Some(bytes) = input.get(h.size..h.size + len) else {
            return Ok(None);
        };
        let used = h.size + len;
        // Unmasks `bytes` onto the end of `into`.
        let unmask = |into: &mut Vec<u8>| {
            let start = into.len();
            into.extend_from_slice(bytes);
            if let Some(key) = h.mask {
                apply_mask(&mut into[start..], key, 0);
            }
        };
        let kind = match h.opcode {
            Opcode::Text | Opcode::Binary if !h.fin => {
                let mut held = Vec::new();
                unmask(&mut held);
                self.open = Some(Box::new((h.opcode, held)));
                None
            }
            Opcode::Continuation => {
                let mut open = self.open.take().expect("checked above");
                unmask(&mut open.1);
                if h.fin {
                    let (kind, held) = *open;
                    *payload = held; // rare: the message was fragmented
                    Some(kind)
                } else {
                    self.open = Some(open);
                    None
                }
            }
            // A control frame, or a whole message in one frame: the common case.
            kind => {
                payload.clear();
                unmask(payload);
                Some(kind)
            }
        };
        Ok(Some((used, kind)))
    }
}

/// A message as [`Decoder::decode_ref`] hands it over: borrowed from the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRef<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// The peer is closing: its status code and reason, if it gave any.
    Close(Option<(u16, &'a str)>),
}

impl MessageRef<'_> {
    /// The same message, owning its bytes.
    pub fn to_owned(self) -> Message {
        match self {
            MessageRef::Text(t) => Message::Text(t.to_owned()),
            MessageRef::Binary(b) => Message::Binary(b.to_vec()),
            MessageRef::Ping(b) => Message::Ping(b.to_vec()),
            MessageRef::Pong(b) => Message::Pong(b.to_vec()),
            MessageRef::Close(c) => Message::Close(c.map(|(code, r)| (code, r.to_owned()))),
        }
    }
}

/// A complete message or control frame of type `kind`, borrowing `bytes`.
fn borrowed(kind: Opcode, bytes: &[u8]) -> Result<MessageRef<'_>, WsError> {
    Ok(match kind {
        Opcode::Ping => MessageRef::Ping(bytes),
        Opcode::Pong => MessageRef::Pong(bytes),
        Opcode::Close => MessageRef::Close(close_frame(bytes)?),
        Opcode::Binary => MessageRef::Binary(bytes),
        _ => MessageRef::Text(std::str::from_utf8(bytes).map_err(|_| WsError {
            code: close::INVALID_PAYLOAD,
            reason: "a text message that is not UTF-8",
        })?),
    })
}

/// A close frame's payload: nothing, or a status code and a UTF-8 reason.
fn close_frame(bytes: &[u8]) -> Result<Option<(u16, &str)>, WsError> {
    match bytes {
        [] => Ok(None),
        [_] => Err(protocol("a close frame of 1 byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !close::is_sendable(code) {
                return Err(protocol("a close frame with an invalid status code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError {
                code: close::INVALID_PAYLOAD,
                reason: "a close reason that is not UTF-8",
            })?;
            Ok(Some((code, reason)))
        }
    }
}

/// Appends one frame to `out`: masked with `mask` if given (a client's), unmasked otherwise
/// (a server's).
pub fn encode_frame(
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    out: &mut Vec<u8>,
) {
    out.reserve(MAX_HEADER_LEN + payload.len());
    out.push(if fin { 0x80 } else { 0 } | opcode as u8);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            let start = out.len();
            out.extend_from_slice(payload);
            apply_mask(&mut out[start..], key, 0);
        }
        None => out.extend_from_slice(payload),
    }
}

/// Appends a close frame with `code` and `reason` (cut to fit 125 bytes at a character
/// boundary) to `out`.
pub fn encode_close(code: u16, reason: &str, mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(true, Opcode::Close, &payload, mask, out);
}
