//! Property tests for the event protocol's codec (`socklab::wire::packet`, specified in
//! `docs/protocol.md`).
//!
//! The unit tests in `src/wire/packet.rs` check the cases somebody thought of; these check
//! rules that must hold for every input, on inputs nobody thought of:
//!
//! - (a) any packet survives `encode` then `PacketDecoder` unchanged;
//! - (b) the bytes of a few packets, cut in two at *every* offset, give the same packets,
//!   through `PacketDecoder` and through `decode_stream` (used the way the server uses it);
//! - (c) arbitrary bytes never make either decoder panic: they give packets or a
//!   `PacketError`, and both decoders agree on which;
//! - (d) a frame header declaring more than the limit is refused as soon as its 4 bytes are
//!   there, whatever follows it;
//! - (e) each limit (frame, event name, attachment count) holds at exactly its value.
//!
//! Each property runs a few hundred cases, so `cargo test` stays fast. Property (c) also has
//! a long run, `#[ignore]`d here: `make fuzz-codec` runs it for a million inputs in release
//! mode. When a property fails, proptest shrinks the input and prints the smallest one.

use std::cell::Cell;
use std::time::Instant;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Number, Value};
use socklab::wire::frame::HEADER_LEN;
use socklab::wire::packet::{
    decode_stream, encode, Decoded, Limits, Packet, PacketDecoder, PacketError, VERSION,
};

/// Cases per property on every `cargo test`: enough to find the easy bugs again, few enough
/// that the whole file runs in a few seconds in a debug build.
const CASES: u32 = 512;

/// Inputs for the long run of property (c).
const LONG_RUN_CASES: u32 = 1_000_000;

// ---- generators ------------------------------------------------------------------------

/// How big generated packets get. Round trips use the full sizes the protocol allows; the
/// split test cuts at every offset and decodes everything again each time (quadratic in the
/// packet size), so it uses smaller packets.
#[derive(Clone, Copy)]
struct Scale {
    /// Characters in free text (namespaces, messages, JSON strings and keys).
    text: usize,
    /// Characters generated for an event name (then cut to its 128-byte limit).
    name: usize,
    /// Nesting of JSON arrays and objects.
    depth: u32,
    /// Bytes in one attachment.
    attachment: usize,
}

const FULL: Scale = Scale {
    text: 24,
    name: 128,
    depth: 3,
    attachment: 64,
};

const SMALL: Scale = Scale {
    text: 6,
    name: 8,
    depth: 2,
    attachment: 8,
};

/// Longest event name the default limits accept, in bytes.
const MAX_NAME: usize = 128;

/// `s` cut to at most `max` bytes, on a character boundary (the limits count bytes, and a
/// cut inside a character would not be UTF-8).
fn cut_to(mut s: String, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

/// Any Unicode text of up to `max_chars` characters (1 to 4 bytes each in UTF-8).
fn text(max_chars: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=max_chars).prop_map(|cs| cs.into_iter().collect())
}

/// A namespace: `/`, then text; at most 255 bytes, what its one-byte length can say.
fn namespace(scale: Scale) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_string()),
        text(scale.text).prop_map(|s| cut_to(format!("/{s}"), 255)),
    ]
}

/// An event name of 1 to 128 bytes: printable ASCII (which reaches exactly 128 bytes), or
/// any Unicode cut to 128 bytes (the first character always survives the cut).
fn event_name(scale: Scale) -> impl Strategy<Value = String> {
    prop_oneof![
        vec(0x20u8..0x7f, 1..=scale.name.min(MAX_NAME))
            .prop_map(|b| b.into_iter().map(char::from).collect()),
        vec(any::<char>(), 1..=scale.name)
            .prop_map(|cs| cut_to(cs.into_iter().collect(), MAX_NAME)),
    ]
}

/// A finite double: JSON has no NaN or infinity, so the generator never makes them (a
/// filter would reject inputs, and a million-case run would hit proptest's reject limit).
fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// Any JSON value: null, booleans, integers (signed and unsigned 64-bit), doubles, strings,
/// and arrays and objects of those, nested up to `scale.depth` deep.
fn json(scale: Scale) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // `from_f64` is `None` only for NaN and infinities, which `finite_f64` never makes.
        finite_f64().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text(scale.text).prop_map(Value::String),
    ];
    let text_len = scale.text;
    leaf.prop_recursive(scale.depth, 24, 4, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(text(text_len), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn args(scale: Scale) -> impl Strategy<Value = Vec<Value>> {
    vec(json(scale), 0..4)
}

fn attachments(scale: Scale) -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(vec(any::<u8>(), 0..=scale.attachment), 0..4)
}

/// Any packet the protocol can carry. Two encodings are not generated because they are not
/// round trips by design: a DISCONNECT reason of `Some("")` is sent as length 0, which
/// means "no reason" (`None`), and a HELLO always carries this side's [`VERSION`].
fn packet(scale: Scale) -> impl Strategy<Value = Packet> {
    prop_oneof![
        json(scale).prop_map(|info| Packet::Hello {
            version: VERSION,
            info
        }),
        (namespace(scale), proptest::option::of(json(scale)))
            .prop_map(|(ns, data)| Packet::Connect { ns, data }),
        (namespace(scale), text(scale.text)).prop_map(|(ns, message)| Packet::ConnectError {
            ns,
            message,
            data: None,
        }),
        (
            namespace(scale),
            proptest::option::of(
                text(scale.text).prop_filter_map("non-empty", |s| { (!s.is_empty()).then_some(s) })
            )
        )
            .prop_map(|(ns, reason)| Packet::Disconnect { ns, reason }),
        (
            namespace(scale),
            event_name(scale),
            args(scale),
            attachments(scale),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(ns, name, args, attachments, id, offset)| Packet::Event {
                ns,
                name,
                args,
                attachments,
                id,
                offset
            }),
        (
            namespace(scale),
            any::<u32>(),
            args(scale),
            attachments(scale)
        )
            .prop_map(|(ns, id, args, attachments)| Packet::Ack {
                ns,
                id,
                args,
                attachments
            }),
        Just(Packet::Ping),
        Just(Packet::Pong),
    ]
}

/// Frames of `packets`, back to back, as they would travel on one connection.
fn wire(packets: &[Packet]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        encode(p, &mut out);
    }
    out
}

/// Bytes that are not the protocol, three ways, because purely random bytes almost always
/// start with a header declaring far more than the limit and never reach the packet decoder:
/// raw random bytes (up to 4 KiB); well-formed frames around random payloads whose first
/// byte is usually a real packet type; real packets with a few bytes overwritten and the end
/// possibly cut off.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    let frames_of_garbage = vec(
        (prop_oneof![0u8..=7, any::<u8>()], vec(any::<u8>(), 0..64)),
        0..8,
    )
    .prop_map(|frames| {
        let mut out = Vec::new();
        for (kind, rest) in frames {
            let len = 1 + rest.len() as u32;
            out.extend_from_slice(&len.to_be_bytes());
            out.push(kind);
            out.extend_from_slice(&rest);
        }
        out
    });
    let damaged_packets = (
        vec(packet(SMALL), 1..4),
        vec((any::<Index>(), any::<u8>()), 1..6),
        any::<Index>(),
    )
        .prop_map(|(packets, edits, keep)| {
            let mut bytes = wire(&packets);
            for (at, b) in edits {
                let at = at.index(bytes.len());
                bytes[at] = b;
            }
            let keep = keep.index(bytes.len() + 1);
            bytes.truncate(keep.max(bytes.len() / 2));
            bytes
        });
    prop_oneof![
        vec(any::<u8>(), 0..=4096),
        frames_of_garbage,
        damaged_packets,
    ]
}

/// Default limits half the time; otherwise small ones, so that random headers and counts
/// land on both sides of each limit.
fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        (0usize..=512, 0usize..=255, 0usize..=4).prop_map(
            |(max_frame, max_event_name, max_attachments)| Limits {
                max_frame,
                max_event_name,
                max_attachments,
            }
        ),
    ]
}

// ---- decoding helpers ------------------------------------------------------------------

/// Every result `PacketDecoder` gives for `bytes`, fed in one piece: packets and errors in
/// order. A bad packet uses up its frame, so decoding goes on after it; an oversized frame
/// does not (the decoder cannot know where the next frame starts), so it is the last result.
/// Also returns the bytes left buffered.
fn with_packet_decoder(bytes: &[u8], limits: Limits) -> (Vec<Result<Packet, PacketError>>, usize) {
    let mut d = PacketDecoder::new(limits);
    d.feed(bytes);
    let mut got = Vec::new();
    loop {
        match d.next_packet() {
            Ok(Some(p)) => got.push(Ok(p)),
            Ok(None) => break,
            Err(e @ PacketError::FrameTooLarge { .. }) => {
                got.push(Err(e));
                break;
            }
            Err(e) => got.push(Err(e)),
        }
    }
    (got, d.buffered())
}

/// The same through `decode_stream`, asking it to go on after every result. Returns the
/// bytes it used.
fn with_decode_stream(bytes: &[u8], limits: Limits) -> (Vec<Result<Packet, PacketError>>, usize) {
    let mut got = Vec::new();
    let used = decode_stream(bytes, &limits, |r| {
        got.push(r.map(Decoded::into_owned));
        true
    });
    (got, used)
}

/// Property (c) for one input: no panic (proptest turns a panic into a failure and shrinks
/// the input), both decoders give the same results, every error and packet can be
/// displayed, and every packet decoded from noise is one the encoder can write back.
fn check_noise(bytes: &[u8], limits: Limits) -> Result<(), TestCaseError> {
    let (from_decoder, buffered) = with_packet_decoder(bytes, limits);
    let (from_stream, used) = with_decode_stream(bytes, limits);
    prop_assert_eq!(&from_decoder, &from_stream);
    let oversized = matches!(
        from_decoder.last(),
        Some(Err(PacketError::FrameTooLarge { .. }))
    );
    if !oversized {
        // What decode_stream did not use is exactly what the decoder keeps for later.
        prop_assert_eq!(used + buffered, bytes.len());
    }
    for r in &from_decoder {
        match r {
            Err(e) => prop_assert!(!e.to_string().is_empty()),
            Ok(p) => {
                prop_assert!(!p.to_string().is_empty());
                // JSON may be written back longer than it came ("1e5" becomes "100000.0"),
                // so a small frame limit does not apply to the copy.
                let relaxed = Limits {
                    max_frame: limits.max_frame.max(Limits::default().max_frame),
                    ..limits
                };
                let again = with_packet_decoder(&wire(std::slice::from_ref(p)), relaxed).0;
                prop_assert_eq!(again, vec![Ok(p.clone())], "re-encoding changed the packet");
            }
        }
    }
    Ok(())
}

// ---- the properties ----------------------------------------------------------------------

proptest! {
    #![proptest_config(Config::with_cases(CASES))]

    /// (a) Whatever the packet, `encode` then `PacketDecoder` gives it back, and nothing
    /// else: the frame is used up exactly.
    #[test]
    fn round_trip(p in packet(FULL)) {
        let bytes = wire(std::slice::from_ref(&p));
        let mut d = PacketDecoder::new(Limits::default());
        d.feed(&bytes);
        prop_assert_eq!(d.next_packet(), Ok(Some(p)));
        prop_assert_eq!(d.next_packet(), Ok(None));
        prop_assert_eq!(d.buffered(), 0);
        prop_assert_eq!(d.finish(), Ok(()));
    }

    /// (b) TCP may cut the stream anywhere. For every cut of 1 to 4 packets' bytes into two
    /// reads, both decoders give the same packets as in one piece. `decode_stream` is used
    /// as the server uses it: the bytes it did not use are kept and offered again with the
    /// next read.
    #[test]
    fn every_split_point(packets in vec(packet(SMALL), 1..=4)) {
        let bytes = wire(&packets);
        let expected: Vec<Result<Packet, PacketError>> =
            packets.iter().cloned().map(Ok).collect();
        let limits = Limits::default();
        for cut in 0..=bytes.len() {
            let (first, second) = bytes.split_at(cut);

            let mut d = PacketDecoder::new(limits);
            let mut got = Vec::new();
            for piece in [first, second] {
                d.feed(piece);
                while let Some(p) = d.next_packet().transpose() {
                    got.push(p);
                }
            }
            prop_assert_eq!(&got, &expected, "PacketDecoder, cut at {}", cut);
            prop_assert_eq!(d.finish(), Ok(()), "cut at {}", cut);

            let mut kept = Vec::new();
            let mut got = Vec::new();
            for piece in [first, second] {
                kept.extend_from_slice(piece);
                let used = decode_stream(&kept, &limits, |r| {
                    got.push(r.map(Decoded::into_owned));
                    true
                });
                kept.drain(..used);
            }
            prop_assert_eq!(&got, &expected, "decode_stream, cut at {}", cut);
            prop_assert!(kept.is_empty(), "cut at {}: {} bytes never used", cut, kept.len());
        }
    }

    /// (c) Bytes that are not the protocol give packets or clean errors, never a panic.
    #[test]
    fn noise_never_panics(bytes in noise(), limits in limits()) {
        check_noise(&bytes, limits)?;
    }

    /// (d) A header that declares more than the limit is refused from its 4 bytes alone:
    /// not before (3 bytes could still become a small length), not later (nothing after
    /// the header is waited for), and the same way whatever follows. Packets before it
    /// still come out.
    #[test]
    fn oversized_header_refused_at_four_bytes(
        max_frame in prop_oneof![Just(Limits::default().max_frame), 0usize..=4096],
        // Often right at the boundary (limit + 1), otherwise anywhere up to u32::MAX.
        over in prop_oneof![0u32..4, any::<u32>()],
        before in vec(packet(SMALL), 0..3),
        tail in vec(any::<u8>(), 0..64),
    ) {
        let limits = Limits { max_frame, ..Limits::default() };
        // A length in limit+1 ..= u32::MAX.
        let room = u64::from(u32::MAX) - max_frame as u64;
        let declared = max_frame as u64 + 1 + u64::from(over) % room;
        let refused = PacketError::FrameTooLarge { declared, limit: max_frame };
        // Packets larger than a small limit would be refused first: keep those that fit.
        let before: Vec<Packet> = before
            .into_iter()
            .filter(|p| wire(std::slice::from_ref(p)).len() - HEADER_LEN <= max_frame)
            .collect();
        let prefix = wire(&before);
        let mut rest = (declared as u32).to_be_bytes().to_vec();
        rest.extend_from_slice(&tail);

        // PacketDecoder, fed the header one byte at a time, then whatever follows.
        let mut d = PacketDecoder::new(limits);
        d.feed(&prefix);
        for p in &before {
            prop_assert_eq!(d.next_packet(), Ok(Some(p.clone())));
        }
        for (i, b) in rest[..HEADER_LEN].iter().enumerate() {
            d.feed(std::slice::from_ref(b));
            if i + 1 < HEADER_LEN {
                prop_assert_eq!(d.next_packet(), Ok(None), "after {} header bytes", i + 1);
            } else {
                prop_assert_eq!(d.next_packet(), Err(refused.clone()), "after the 4th header byte");
            }
        }
        d.feed(&rest[HEADER_LEN..]);
        prop_assert_eq!(d.next_packet(), Err(refused.clone()), "with the tail fed too");

        // decode_stream, offered every prefix of the header and its tail.
        for k in 0..=rest.len() {
            let mut input = prefix.clone();
            input.extend_from_slice(&rest[..k]);
            let (got, used) = with_decode_stream(&input, limits);
            let mut expected: Vec<Result<Packet, PacketError>> =
                before.iter().cloned().map(Ok).collect();
            if k >= HEADER_LEN {
                expected.push(Err(refused.clone()));
            }
            prop_assert_eq!(got, expected, "{} bytes of header and tail", k);
            prop_assert_eq!(used, prefix.len(), "the refused frame is never consumed");
        }
    }
}

proptest! {
    #![proptest_config(Config::with_cases(CASES))]

    /// (e) Each limit is enforced at exactly its value: the limits are set to the packet's
    /// own sizes plus or minus up to 2, and the decoder must accept at the limit and refuse
    /// one over it, with the error that names the limit. Properties (a) to (d) cannot see
    /// a limit that is off by one; this one is the oracle for that.
    #[test]
    fn limits_hold_at_their_exact_values(
        p in packet(SMALL).prop_filter("events and acks carry the limited fields", |p| {
            matches!(p, Packet::Event { .. } | Packet::Ack { .. })
        }),
        d_frame in -2i64..=2,
        d_name in -2i64..=2,
        d_attachments in -2i64..=2,
    ) {
        let around = |n: usize, d: i64| (n as i64 + d).max(0) as usize;
        let bytes = wire(std::slice::from_ref(&p));
        let payload = bytes.len() - HEADER_LEN;
        let (name_len, count) = match &p {
            Packet::Event { name, attachments, .. } => (Some(name.len()), attachments.len()),
            Packet::Ack { attachments, .. } => (None, attachments.len()),
            _ => unreachable!("filtered above"),
        };
        let limits = Limits {
            max_frame: around(payload, d_frame),
            max_event_name: around(name_len.unwrap_or(MAX_NAME), d_name),
            max_attachments: around(count, d_attachments),
        };
        // The order the decoder meets them: the frame header, then the name, then the count.
        let expected = if payload > limits.max_frame {
            Err(PacketError::FrameTooLarge {
                declared: payload as u64,
                limit: limits.max_frame,
            })
        } else if let Some(len) = name_len.filter(|&len| len > limits.max_event_name) {
            Err(PacketError::BadEventName { len, limit: limits.max_event_name })
        } else if count > limits.max_attachments {
            Err(PacketError::TooManyAttachments { count, limit: limits.max_attachments })
        } else {
            Ok(p)
        };
        let (got, _) = with_packet_decoder(&bytes, limits);
        prop_assert_eq!(got, vec![expected]);
    }
}

/// The long run of property (c): a million inputs, for `make fuzz-codec` (release mode;
/// a debug build would take many minutes). Prints how long it took and what the inputs
/// turned into, so a run that stopped exercising the packet decoder would show.
#[test]
#[ignore = "long run (a million inputs): make fuzz-codec"]
fn noise_never_panics_long_run() {
    let mut runner = TestRunner::new(Config {
        cases: LONG_RUN_CASES,
        // A failure is printed, shrunk, with its input; no regression file is written.
        failure_persistence: None,
        ..Config::default()
    });
    let packets = Cell::new(0u64);
    let errors = Cell::new(0u64);
    let oversized = Cell::new(0u64);
    let started = Instant::now();
    let result = runner.run(&(noise(), limits()), |(bytes, limits)| {
        check_noise(&bytes, limits)?;
        let (got, _) = with_packet_decoder(&bytes, limits);
        for r in &got {
            match r {
                Ok(_) => packets.set(packets.get() + 1),
                Err(PacketError::FrameTooLarge { .. }) => oversized.set(oversized.get() + 1),
                Err(_) => errors.set(errors.get() + 1),
            }
        }
        Ok(())
    });
    println!(
        "codec long run: {LONG_RUN_CASES} inputs in {:.1?}: {} packets decoded, {} packets \
         refused with an error, {} oversized frame headers; result: {}",
        started.elapsed(),
        packets.get(),
        errors.get(),
        oversized.get(),
        if result.is_ok() { "ok" } else { "FAILED" },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
