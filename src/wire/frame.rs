//! Length-prefixed frames over a byte stream (lesson 08).
//!
//! TCP delivers a stream of bytes, not messages: one `write` of 10 bytes may arrive as ten
//! reads of 1 byte, and two writes may arrive in one read. A frame puts the boundaries back:
//!
//! ```text
//! +----------------+----------------------+
//! | length: u32 BE | payload: length bytes|
//! +----------------+----------------------+
//!   00 00 00 05      68 65 6c 6c 6f         = the frame "hello"
//! ```
//!
//! The [`Decoder`] is incremental: feed it whatever `read` returned, then take every complete
//! frame out. An incomplete frame is not an error (`Ok(None)`, the bytes stay buffered); a
//! declared length above the limit is, and it is refused from the 4 header bytes alone, before
//! anything is allocated for it. End of file in the middle of a frame is an error too
//! ([`Decoder::finish`]).

use std::fmt;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// The default largest payload: 1 MB, the same as Socket.IO's `maxHttpBufferSize`.
pub const DEFAULT_MAX_PAYLOAD: usize = 1_000_000;

/// Why a byte stream is not a valid sequence of frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The header declares a payload larger than the decoder's limit.
    TooLarge { declared: u64, limit: usize },
    /// The stream ended inside a frame.
    Truncated { buffered: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { declared, limit } => write!(
                f,
                "frame declares {declared} bytes, over the limit of {limit}"
            ),
            FrameError::Truncated { buffered } => write!(
                f,
                "stream ended inside a frame ({buffered} bytes of it arrived)"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Appends one frame carrying `payload` to `out`.
///
/// # Panics
/// If `payload` is longer than `u32::MAX` bytes, which no frame can describe.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("a frame payload must fit in a u32 length");
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Incremental frame decoder: bytes in with [`feed`](Decoder::feed), frames out with
/// [`next_frame`](Decoder::next_frame).
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Start of the first byte not yet returned as part of a frame.
    start: usize,
    limit: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_PAYLOAD)
    }
}

/// The first frame at the start of `input`: its payload and how many bytes it takes with its
/// header; `Ok(None)` while it is not all there, an error as soon as the header declares
/// more than `limit` bytes (before anything is allocated for it). No copy: the payload is a
/// slice of `input`.
pub fn split(input: &[u8], limit: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(header) = input.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let declared = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if u64::from(declared) > limit as u64 {
        return Err(FrameError::TooLarge {
            declared: u64::from(declared),
            limit,
        });
    }
    // `declared <= limit`, a usize, so this cannot truncate.
    let end = HEADER_LEN + declared as usize;
    Ok(input.get(HEADER_LEN..end).map(|payload| (payload, end)))
}

impl Decoder {
    /// A decoder that refuses payloads over `limit` bytes.
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            start: 0,
            limit,
        }
    }

    /// Adds bytes just read from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        // Drop what earlier frames used before growing: the buffer holds at most one
        // unfinished frame plus what this read brought.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The length the next frame declares, once its header has arrived.
    /// The next complete frame's payload, `Ok(None)` if more bytes are needed, or an error if
    /// the header declares too much. Check first, then take: the buffer only moves past a
    /// frame once all of it is here.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let Some((payload, used)) = split(&self.buf[self.start..], self.limit)? else {
            return Ok(None);
        };
        self.start += used;
        Ok(Some(payload))
    }

    /// Call at end of file: an error if a frame was cut off.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.buffered() {
            0 => Ok(()),
            buffered => Err(FrameError::Truncated { buffered }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode(p, &mut out);
        }
        out
    }

    fn drain(dec: &mut Decoder) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut got = Vec::new();
        while let Some(f) = dec.next_frame()? {
            got.push(f.to_vec());
        }
        Ok(got)
    }

    #[test]
    fn encodes_big_endian_length_then_payload() {
        assert_eq!(frames(&[b"hello"]), b"\0\0\0\x05hello");
        assert_eq!(frames(&[b""]), b"\0\0\0\0");
    }

    #[test]
    fn same_frames_for_every_split_point() {
        let payloads: [&[u8]; 4] = [b"hello", b"", b"frames survive", &[0xff; 300]];
        let wire = frames(&payloads);
        for cut in 0..=wire.len() {
            let mut dec = Decoder::default();
            dec.feed(&wire[..cut]);
            let mut got = drain(&mut dec).unwrap();
            dec.feed(&wire[cut..]);
            got.extend(drain(&mut dec).unwrap());
            assert_eq!(got, payloads.map(<[u8]>::to_vec), "cut at {cut}");
            dec.finish().unwrap();
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let payloads: [&[u8]; 2] = [b"one", b"two!"];
        let wire = frames(&payloads);
        let mut dec = Decoder::default();
        let mut got = Vec::new();
        for b in &wire {
            dec.feed(std::slice::from_ref(b));
            got.extend(drain(&mut dec).unwrap());
        }
        assert_eq!(got, payloads.map(<[u8]>::to_vec));
    }

    #[test]
    fn oversized_length_refused_from_the_header_alone() {
        let mut dec = Decoder::new(16);
        dec.feed(&[0xff, 0xff, 0xff, 0xf0]);
        let before = dec.buf.capacity();
        assert_eq!(
            dec.next_frame(),
            Err(FrameError::TooLarge {
                declared: 0xffff_fff0,
                limit: 16
            })
        );
        assert_eq!(
            dec.buf.capacity(),
            before,
            "nothing allocated for the frame"
        );
        // At the limit is fine.
        let mut ok = Decoder::new(16);
        ok.feed(&frames(&[&[7; 16]]));
        assert_eq!(ok.next_frame().unwrap(), Some(&[7u8; 16][..]));
    }

    #[test]
    fn eof_inside_a_frame_is_an_error() {
        let mut dec = Decoder::default();
        dec.feed(b"\0\0\0\x05hel");
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.finish(), Err(FrameError::Truncated { buffered: 7 }));
    }
}
