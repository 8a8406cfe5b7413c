//! RESP2, the Redis serialization protocol, as pure code: commands out, replies in, no I/O.
//!
//! A client sends every command as an array of bulk strings, and reads back one reply per
//! command, in the order it sent them. That order is the whole of pipelining: a client may
//! write a thousand commands in one go and match the thousand replies to them by position.
//!
//! ```text
//!   SET k v    ->  *3\r\n $3\r\nSET\r\n $1\r\nk\r\n $1\r\nv\r\n     (an array of 3 bulks)
//!   +OK\r\n                       a simple string: a line, no CR or LF inside
//!   -ERR unknown command\r\n      an error: a line; the first word is its kind
//!   :42\r\n                       an integer: a signed 64-bit decimal
//!   $5\r\nhello\r\n               a bulk string: a length, then that many bytes (binary-safe)
//!   $-1\r\n                       the null bulk string (GET of a missing key)
//!   *2\r\n:1\r\n$1\r\nx\r\n       an array: a count, then that many replies, nested freely
//!   *-1\r\n                       the null array (a BLPOP that timed out)
//! ```
//!
//! RESP3 (`_` null, `#` boolean, `,` double, `%` map, `>` push, ...) is not decoded: a
//! connection starts in RESP2 and only switches after `HELLO 3`, which this client never
//! sends, so Redis 7 sends none of those types here. A RESP3 type byte is an
//! [`RespError::UnknownType`] like any other unknown byte.
//!
//! The [`Decoder`] is incremental in the way of `frame.rs`: `Ok(None)` means "not a whole
//! reply yet, call again with more bytes", and the caller keeps the bytes; `Some((reply,
//! used))` says how many to drop. Every length the peer announces is checked against the
//! caller's [`Limits`] as soon as its header line is read, before the bytes it announces are
//! waited for, so a hostile or broken peer cannot make the decoder hold more than the
//! caller allowed. A simplification: an incomplete reply is parsed again from its start
//! when more bytes come (as mini-redis does); a real client would keep its place.

use std::fmt;

/// One reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`: a short status line.
    Simple(String),
    /// `-ERR ...`: the command failed; the connection goes on.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$n`: binary-safe bytes.
    Bulk(Vec<u8>),
    /// An array of replies.
    Array(Vec<Reply>),
    /// `$-1` or `*-1`: RESP2's two nulls, one value here (RESP3 merged them too).
    Nil,
}

impl Reply {
    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(b) => Some(b),
            Reply::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}

/// How much the decoder accepts from its peer; a reply past any of them is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest bulk string (Redis's own cap, `proto-max-bulk-len`, is 512 MiB).
    pub max_bulk: usize,
    /// The most elements one array may announce.
    pub max_elements: usize,
    /// How deeply arrays may nest (an array is depth 1, an array in it depth 2). It also
    /// bounds the decoder's recursion.
    pub max_depth: usize,
    /// The longest header or simple line (simple string, error, integer, a length).
    pub max_line: usize,
}

impl Default for Limits {
    /// Sized for a client on the event loop, whose input buffer holds about 1 MiB: a bigger
    /// bulk could never be buffered whole there anyway.
    fn default() -> Limits {
        Limits {
            max_bulk: 1 << 20,
            max_elements: 1 << 16,
            max_depth: 8,
            max_line: 64 * 1024,
        }
    }
}

/// Why bytes are not a RESP2 reply. After any of these the stream has lost its framing:
/// the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    /// A first byte that is none of `+ - : $ *` (RESP3 types included).
    UnknownType(u8),
    /// A length or integer that is not a decimal number, or a negative length other than -1.
    BadNumber,
    /// A bulk string not followed by CRLF.
    BadTerminator,
    /// A bulk string longer than [`Limits::max_bulk`].
    BulkTooLong { len: u64, max: usize },
    /// An array longer than [`Limits::max_elements`].
    TooManyElements { len: u64, max: usize },
    /// Arrays nested deeper than [`Limits::max_depth`].
    TooDeep { max: usize },
    /// A line longer than [`Limits::max_line`], or one without its CRLF past it.
    LineTooLong { max: usize },
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::UnknownType(b) => write!(f, "unknown RESP2 type byte {:?}", *b as char),
            RespError::BadNumber => f.write_str("a RESP length or integer is not a number"),
            RespError::BadTerminator => f.write_str("a bulk string not ended by CRLF"),
            RespError::BulkTooLong { len, max } => {
                write!(f, "a bulk string of {len} bytes (the limit is {max})")
            }
            RespError::TooManyElements { len, max } => {
                write!(f, "an array of {len} elements (the limit is {max})")
            }
            RespError::TooDeep { max } => write!(f, "arrays nested deeper than {max}"),
            RespError::LineTooLong { max } => write!(f, "a RESP line past {max} bytes"),
        }
    }
}

impl std::error::Error for RespError {}

/// Appends a command, an array of bulk strings, to `out`. Arguments are bytes: a key or a
/// value may hold anything, CRLF included, because each is sent with its length.
pub fn encode_command<I, A>(args: I, out: &mut Vec<u8>)
where
    I: IntoIterator<Item = A>,
    I::IntoIter: ExactSizeIterator,
    A: AsRef<[u8]>,
{
    let args = args.into_iter();
    header(b'*', args.len() as i64, out);
    for a in args {
        let a = a.as_ref();
        header(b'$', a.len() as i64, out);
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `reply` as a server would send it (for tests and fake servers). A `Simple` or
/// `Error` holding CR or LF would break the framing: they are the caller's to keep clean.
pub fn encode_reply(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Simple(s) => line(b'+', s.as_bytes(), out),
        Reply::Error(s) => line(b'-', s.as_bytes(), out),
        Reply::Integer(n) => header(b':', *n, out),
        Reply::Bulk(b) => {
            header(b'$', b.len() as i64, out);
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Array(items) => {
            header(b'*', items.len() as i64, out);
            for r in items {
                encode_reply(r, out);
            }
        }
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
    }
}

fn header(kind: u8, n: i64, out: &mut Vec<u8>) {
    line(kind, n.to_string().as_bytes(), out);
}

fn line(kind: u8, text: &[u8], out: &mut Vec<u8>) {
    out.push(kind);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// The incremental reply decoder; it keeps no state between calls but its limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Decoder {
    limits: Limits,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder { limits }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decodes the first reply in `buf`: `Ok(None)` while it is incomplete, else the reply
    /// and how many bytes of `buf` it used.
    pub fn decode(&self, buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
        let mut cur = Cursor { buf, pos: 0 };
        Ok(self.reply(&mut cur, 1)?.map(|r| (r, cur.pos)))
    }

    /// One reply at `cur`, itself inside `depth - 1` arrays. `Ok(None)`: incomplete.
    fn reply(&self, cur: &mut Cursor<'_>, depth: usize) -> Result<Option<Reply>, RespError> {
        let Some(line) = cur.line(self.limits.max_line)? else {
            return Ok(None);
        };
        // `line` returns only lines that hold at least their type byte: see `Cursor::line`.
        let (kind, rest) = (line[0], &line[1..]);
        let reply = match kind {
            b'+' => Reply::Simple(text(rest)),
            b'-' => Reply::Error(text(rest)),
            b':' => Reply::Integer(number(rest)?),
            b'$' => {
                let Some(len) = length(rest)? else {
                    return Ok(Some(Reply::Nil));
                };
                if len > self.limits.max_bulk as u64 {
                    return Err(RespError::BulkTooLong {
                        len,
                        max: self.limits.max_bulk,
                    });
                }
                // Fits in usize: it is at most `max_bulk`.
                let len = len as usize;
                let Some(body) = cur.take(len + 2) else {
                    return Ok(None);
                };
                if &body[len..] != b"\r\n" {
                    return Err(RespError::BadTerminator);
                }
                Reply::Bulk(body[..len].to_vec())
            }
            b'*' => {
                let Some(len) = length(rest)? else {
                    return Ok(Some(Reply::Nil));
                };
                if len > self.limits.max_elements as u64 {
                    return Err(RespError::TooManyElements {
                        len,
                        max: self.limits.max_elements,
                    });
                }
                if depth > self.limits.max_depth {
                    return Err(RespError::TooDeep {
                        max: self.limits.max_depth,
                    });
                }
                // Every element takes at least 3 bytes (`+\r\n`): reserve no more than the
                // bytes at hand could hold, whatever the count announced.
                let len = len as usize;
                let mut items = Vec::with_capacity(len.min(cur.remaining() / 3));
                for _ in 0..len {
                    match self.reply(cur, depth + 1)? {
                        Some(r) => items.push(r),
                        None => return Ok(None),
                    }
                }
                Reply::Array(items)
            }
            other => return Err(RespError::UnknownType(other)),
        };
        Ok(Some(reply))
    }
}

/// A read position in the caller's buffer; it moves only forward, and the caller drops
/// the bytes only once a whole reply was read.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next line without its CRLF; `None` until its CRLF has arrived. A line is refused
    /// as soon as it passes `max` bytes, found or not: a peer that never sends CRLF cannot
    /// make the caller buffer more than that. An empty line has no type byte: refused too.
    fn line(&mut self, max: usize) -> Result<Option<&'a [u8]>, RespError> {
        let rest = &self.buf[self.pos..];
        let window = &rest[..rest.len().min(max.saturating_add(2))];
        match window.windows(2).position(|w| w == b"\r\n") {
            Some(0) => Err(RespError::UnknownType(b'\r')),
            Some(end) => {
                self.pos += end + 2;
                Ok(Some(&rest[..end]))
            }
            None if rest.len() >= max.saturating_add(2) => Err(RespError::LineTooLong { max }),
            None => Ok(None),
        }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }
}

/// A status or error line, for a person to read: bytes that are not UTF-8 (a key echoed in
/// an error message, say) are replaced rather than refused.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A signed decimal, as RESP writes it: an optional `-`, then digits, nothing else.
fn number(bytes: &[u8]) -> Result<i64, RespError> {
    let (neg, digits) = match bytes.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, bytes),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(RespError::BadNumber);
    }
    let mut n: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        n = n
            .checked_mul(10)
            .and_then(|n| {
                if neg {
                    n.checked_sub(d)
                } else {
                    n.checked_add(d)
                }
            })
            .ok_or(RespError::BadNumber)?;
    }
    Ok(n)
}

/// A bulk or array length: `None` for -1 (null), an error for any other negative.
fn length(bytes: &[u8]) -> Result<Option<u64>, RespError> {
    match number(bytes)? {
        -1 => Ok(None),
        n if n < 0 => Err(RespError::BadNumber),
        // Not negative: checked just above.
        n => Ok(Some(n as u64)),
    }
}
