//! A broadcast's offset, as a client sees it and gives it back to recover its session.
//!
//! One server alone counts its broadcasts: `1`, `2`, `3`... In a cluster every broadcast is
//! an entry of the shared Redis stream, and its offset is the entry's id, `<ms>-<seq>`
//! (milliseconds of Redis's clock, and a sequence number within that millisecond), the same
//! on every node: that is what lets a client come back on another node and say what it saw
//! last. Node.js's Socket.IO with the Redis streams adapter sends that id as the event's
//! last argument; a client gives it back as is.
//!
//! The event layer keeps offsets as one `u64` (socklab's wire carries eight bytes): a stream
//! id is packed into it with its top bit set, milliseconds above, the sequence in the low
//! [`SEQ_BITS`]. Packed ids keep their order, and a counter never reaches the top bit, so
//! the two kinds never meet.

/// The top bit marks a packed stream id.
const STREAM: u64 = 1 << 63;
/// Bits of the sequence number (a million entries in one millisecond).
const SEQ_BITS: u32 = 20;
/// Milliseconds that fit (2^43 ms: the year 2248).
const MAX_MS: u64 = (1 << (63 - SEQ_BITS)) - 1;

/// The offset of stream entry `<ms>-<seq>`; `None` for anything else, or out of range.
pub fn from_stream_id(id: &str) -> Option<u64> {
    let (ms, seq) = id.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    let (ms, seq): (u64, u64) = (ms.parse().ok()?, seq.parse().ok()?);
    (ms <= MAX_MS && seq < 1 << SEQ_BITS).then_some(STREAM | ms << SEQ_BITS | seq)
}

/// The stream id `<ms>-<seq>` an offset was packed from, if it was.
pub fn stream_id(offset: u64) -> Option<String> {
    (offset & STREAM != 0).then(|| {
        let packed = offset & !STREAM;
        format!("{}-{}", packed >> SEQ_BITS, packed & ((1 << SEQ_BITS) - 1))
    })
}

/// How an offset is written in a Socket.IO event: a stream id as such, a counter in
/// decimal.
pub fn to_text(offset: u64) -> String {
    stream_id(offset).unwrap_or_else(|| offset.to_string())
}

/// [`to_text`] as a JSON string, appended to `out` without a `String` of its own: every
/// broadcast on the Socket.IO wire writes one, so this saves an allocation per message.
/// Its characters are digits and `-`, which JSON needs no escape for.
pub fn write_json(offset: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = if offset & STREAM != 0 {
        let packed = offset & !STREAM;
        let (ms, seq) = (packed >> SEQ_BITS, packed & ((1 << SEQ_BITS) - 1));
        write!(out, "\"{ms}-{seq}\"")
    } else {
        write!(out, "\"{offset}\"")
    };
}

/// The offset a client gave back as text: a counter or a stream id.
pub fn parse(text: &str) -> Option<u64> {
    text.parse::<u64>()
        .ok()
        .filter(|o| o & STREAM == 0)
        .or_else(|| from_stream_id(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_round_trip_and_keep_their_order() {
        let a = from_stream_id("1765000000000-0").unwrap();
        let b = from_stream_id("1765000000000-7").unwrap();
        let c = from_stream_id("1765000000001-0").unwrap();
        assert!(a < b && b < c && 1_000_000 < a);
        assert_eq!(stream_id(b).as_deref(), Some("1765000000000-7"));
        assert_eq!(to_text(c), "1765000000001-0");
        assert_eq!(to_text(42), "42");
        assert_eq!(parse("42"), Some(42));
        assert_eq!(parse("1765000000000-7"), Some(b));
        for o in [0, 42, u64::MAX >> 1, b] {
            let mut json = Vec::new();
            write_json(o, &mut json);
            assert_eq!(json, serde_json::to_vec(&to_text(o)).unwrap());
        }
    }

    #[test]
    fn anything_else_is_no_offset() {
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1-2-3",
            "a-1",
            "1-1048576",
            "99999999999999999999-0",
        ] {
            assert_eq!(from_stream_id(bad), None, "{bad}");
        }
        assert_eq!(parse(&(1u64 << 63).to_string()), None);
        assert_eq!(parse("x"), None);
    }
}
