//! The WebSocket frame codec (`src/wire/websocket.rs`) against an oracle and against noise:
//!
//! - frames written by `tungstenite` (a client's, masked) are read by socklab's server-side
//!   decoder as the same messages, fragments joined and control frames in between;
//! - frames written by socklab (a server's, unmasked; a client's, masked) are read back by
//!   `tungstenite`'s header parser with the same flags, opcode, length and payload;
//! - random bytes never make the decoder panic, whatever the split;
//! - the RFC's byte examples, and each rule a server enforces, byte by byte (at the end).

use std::io::Cursor;

use proptest::prelude::*;
use socklab::wire::websocket::{
    self, apply_mask, encode_close, encode_frame, Decoder, Message, Opcode, Role, WsError,
};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameHeader};

/// One frame to send: its opcode, FIN, and payload.
#[derive(Debug, Clone)]
struct Part {
    opcode: Opcode,
    fin: bool,
    payload: Vec<u8>,
}

fn theirs(op: Opcode) -> OpCode {
    match op {
        Opcode::Continuation => OpCode::Data(Data::Continue),
        Opcode::Text => OpCode::Data(Data::Text),
        Opcode::Binary => OpCode::Data(Data::Binary),
        Opcode::Close => OpCode::Control(Control::Close),
        Opcode::Ping => OpCode::Control(Control::Ping),
        Opcode::Pong => OpCode::Control(Control::Pong),
    }
}

/// A valid conversation: messages, each a text (UTF-8) or binary payload cut into 1 to 4
/// fragments, with pings between the fragments; and the messages the decoder must give.
fn conversation() -> impl Strategy<Value = (Vec<Part>, Vec<Message>)> {
    let message = (
        any::<bool>(),
        prop::collection::vec(any::<char>(), 0..300),
        prop::collection::vec(any::<u8>(), 0..300),
        1usize..=4,
        prop::collection::vec(any::<u8>(), 0..20),
    );
    prop::collection::vec(message, 1..6).prop_map(|messages| {
        let mut parts = Vec::new();
        let mut want = Vec::new();
        for (text, chars, bin, pieces, ping) in messages {
            let (op, bytes, m) = if text {
                let s: String = chars.into_iter().collect();
                (Opcode::Text, s.clone().into_bytes(), Message::Text(s))
            } else {
                (Opcode::Binary, bin.clone(), Message::Binary(bin))
            };
            let step = bytes.len().div_ceil(pieces).max(1);
            let chunks: Vec<&[u8]> = if bytes.is_empty() {
                vec![&[][..]]
            } else {
                bytes.chunks(step).collect()
            };
            for (i, chunk) in chunks.iter().enumerate() {
                let last = i + 1 == chunks.len();
                parts.push(Part {
                    opcode: if i == 0 { op } else { Opcode::Continuation },
                    fin: last,
                    payload: chunk.to_vec(),
                });
                if !last {
                    parts.push(Part {
                        opcode: Opcode::Ping,
                        fin: true,
                        payload: ping.clone(),
                    });
                    want.push(Message::Ping(ping.clone()));
                }
            }
            want.push(m);
        }
        (parts, want)
    })
}

/// The messages `bytes` decode to, offered in two reads cut at `cut`. Decoded twice, by
/// `decode` (a fresh buffer per call) and by `decode_ref` with one buffer kept from read to
/// read, as the server keeps it: what a message left in the buffer must not show in the next.
fn decode_in_two(bytes: &[u8], cut: usize, role: Role) -> Vec<Message> {
    let (mut owned, mut borrowed) = (Decoder::new(role, 1 << 20), Decoder::new(role, 1 << 20));
    let mut scratch = Vec::new();
    let (mut kept, mut got, mut got_ref) = (Vec::new(), Vec::new(), Vec::new());
    for piece in [&bytes[..cut], &bytes[cut..]] {
        kept.extend_from_slice(piece);
        let used = owned.decode(&kept, |m| {
            got.push(m.expect("a valid conversation"));
            true
        });
        let used_ref = borrowed.decode_ref(&kept, &mut scratch, |m| {
            got_ref.push(m.expect("a valid conversation").to_owned());
            true
        });
        assert_eq!(used, used_ref);
        kept.drain(..used);
    }
    assert!(kept.is_empty(), "{} bytes left over", kept.len());
    assert_eq!(got, got_ref);
    got
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// tungstenite writes a client's frames; socklab's server reads the same messages.
    #[test]
    fn frames_from_tungstenite_decode_to_the_same_messages(
        (parts, want) in conversation(),
        key in any::<[u8; 4]>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = Vec::new();
        for p in &parts {
            let header = FrameHeader {
                is_final: p.fin,
                opcode: theirs(p.opcode),
                mask: Some(key),
                ..FrameHeader::default()
            };
            let f = Frame::from_payload(header, p.payload.clone().into());
            f.format(&mut bytes).expect("tungstenite writes into a Vec");
        }
        let got = decode_in_two(&bytes, cut.index(bytes.len() + 1), Role::Server);
        prop_assert_eq!(got, want);
    }

    /// socklab writes frames; tungstenite's parser reads the same header and payload.
    #[test]
    fn frames_from_socklab_parse_in_tungstenite(
        (parts, _) in conversation(),
        key in proptest::option::of(any::<[u8; 4]>()),
    ) {
        let mut bytes = Vec::new();
        for p in &parts {
            websocket::encode_frame(p.fin, p.opcode, &p.payload, key, &mut bytes);
        }
        let mut cursor = Cursor::new(&bytes[..]);
        for p in &parts {
            let (header, len): (FrameHeader, u64) = FrameHeader::parse(&mut cursor)
                .expect("a valid header")
                .expect("a whole header");
            prop_assert_eq!(header.is_final, p.fin);
            prop_assert_eq!(header.opcode, theirs(p.opcode));
            prop_assert_eq!(header.mask, key);
            prop_assert_eq!(len, p.payload.len() as u64);
            let at = cursor.position() as usize;
            let mut payload = bytes[at..at + len as usize].to_vec();
            if let Some(k) = key {
                websocket::apply_mask(&mut payload, k, 0);
            }
            prop_assert_eq!(&payload, &p.payload);
            cursor.set_position((at + len as usize) as u64);
        }
        prop_assert_eq!(cursor.position() as usize, bytes.len());
    }

    /// Noise never panics, in one piece or two, on either side.
    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        cut in any::<prop::sample::Index>(),
    ) {
        for role in [Role::Server, Role::Client] {
            let cut = cut.index(bytes.len() + 1);
            let mut d = Decoder::new(role, 300);
            let mut kept = Vec::new();
            let mut failed = false;
            for piece in [&bytes[..cut], &bytes[cut..]] {
                if failed {
                    break;
                }
                kept.extend_from_slice(piece);
                let used = d.decode(&kept, |m| {
                    failed |= m.is_err();
                    !failed
                });
                prop_assert!(used <= kept.len());
                kept.drain(..used);
            }
            prop_assert!(d.buffered() <= 300, "the limit holds: {}", d.buffered());
        }
    }
}

/// A close frame tungstenite writes is read as its code and reason.
#[test]
fn a_close_from_tungstenite() {
    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::protocol::CloseFrame;
    let mut f = Frame::close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "going away".into(),
    }));
    f.header_mut().mask = Some([1, 2, 3, 4]);
    let mut bytes = Vec::new();
    f.format(&mut bytes).expect("format");
    assert_eq!(
        decode_in_two(&bytes, 0, Role::Server),
        [Message::Close(Some((1001, "going away".into())))]
    );
}

// ---- byte-level examples and rules (RFC 6455, sections 5 and 7.4) ----

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn decode_all(d: &mut Decoder, bytes: &[u8]) -> (Vec<Result<Message, WsError>>, usize) {
    let mut got = Vec::new();
    let used = d.decode(bytes, |m| {
        got.push(m);
        true
    });
    (got, used)
}

/// The examples of RFC 6455, section 5.7.
#[test]
fn the_rfc_examples() {
    // A single-frame unmasked text message, "Hello".
    let mut out = Vec::new();
    encode_frame(true, Opcode::Text, b"Hello", None, &mut out);
    assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    // The same, masked with 37 fa 21 3d.
    let mut masked = Vec::new();
    encode_frame(true, Opcode::Text, b"Hello", Some(KEY), &mut masked);
    assert_eq!(
        masked,
        [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
    let mut server = Decoder::new(Role::Server, 1 << 20);
    let (got, used) = decode_all(&mut server, &masked);
    assert_eq!(got, [Ok(Message::Text("Hello".into()))]);
    assert_eq!(used, masked.len());
    // A fragmented unmasked text message: "Hel", then "lo".
    let mut client = Decoder::new(Role::Client, 1 << 20);
    let frags = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    assert_eq!(
        decode_all(&mut client, &frags).0,
        [Ok(Message::Text("Hello".into()))]
    );
    // 256 bytes and 64 KiB of binary: the 16-bit and 64-bit lengths.
    let mut big = Vec::new();
    encode_frame(true, Opcode::Binary, &[0; 256], None, &mut big);
    assert_eq!(big[..4], [0x82, 0x7e, 0x01, 0x00]);
    big.clear();
    encode_frame(true, Opcode::Binary, &[0; 65536], None, &mut big);
    assert_eq!(big[..10], [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
}

fn refused(bytes: &[u8], role: Role) -> u16 {
    let mut d = Decoder::new(role, 1000);
    match decode_all(&mut d, bytes).0.pop() {
        Some(Err(e)) => e.code,
        other => panic!("{bytes:02x?} was not refused: {other:?}"),
    }
}

#[test]
fn the_server_side_rules() {
    let masked = |b0: u8, payload: &[u8]| {
        let mut v = vec![b0, 0x80 | payload.len() as u8];
        v.extend_from_slice(&KEY);
        let start = v.len();
        v.extend_from_slice(payload);
        apply_mask(&mut v[start..], KEY, 0);
        v
    };
    assert_eq!(refused(&[0x81, 0x01, b'x'], Role::Server), 1002, "unmasked");
    assert_eq!(refused(&masked(0xc1, b"x"), Role::Server), 1002, "RSV1");
    assert_eq!(refused(&masked(0x83, b"x"), Role::Server), 1002, "opcode 3");
    assert_eq!(
        refused(&masked(0x09, b""), Role::Server),
        1002,
        "ping without FIN"
    );
    assert_eq!(
        refused(&masked(0x80, b"x"), Role::Server),
        1002,
        "continuation alone"
    );
    let mut two = masked(0x01, b"a");
    two.extend(masked(0x81, b"b"));
    assert_eq!(
        refused(&two, Role::Server),
        1002,
        "a new message inside one"
    );
    assert_eq!(refused(&masked(0x81, &[0xff]), Role::Server), 1007);
    assert_eq!(
        refused(&masked(0x88, &[0x03]), Role::Server),
        1002,
        "1-byte close"
    );
    assert_eq!(
        refused(&masked(0x88, &[0x03, 0xed]), Role::Server),
        1002,
        "1005"
    );
    assert_eq!(
        refused(&masked(0x88, &[0x03, 0xe8, 0xff]), Role::Server),
        1007
    );
    // A control frame over 125 bytes, from its header alone.
    assert_eq!(refused(&[0x89, 0xfe, 0x00, 0x7e], Role::Server), 1002);
    // Over the limit of 1000, from the header alone: no payload follows.
    let over = [0x82, 0xfe, 0x03, 0xe9, KEY[0], KEY[1], KEY[2], KEY[3]];
    assert_eq!(refused(&over, Role::Server), 1009);
    let mut huge = vec![0x82, 0xff];
    huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
    assert_eq!(
        refused(&huge, Role::Server),
        1002,
        "top bit of a 64-bit length"
    );
    huge[2] = 0x7f;
    huge.extend_from_slice(&KEY);
    assert_eq!(refused(&huge, Role::Server), 1009, "2^63 - 1 bytes");
    // Fragments that add up to more than the limit: 100, then 901.
    let mut frags = masked(0x02, &[0; 100]);
    frags.extend([0x80, 0xfe, 0x03, 0x85]);
    frags.extend(KEY);
    assert_eq!(refused(&frags, Role::Server), 1009);
    assert_eq!(
        refused(&masked(0x81, b"x"), Role::Client),
        1002,
        "masked to a client"
    );
}

#[test]
fn control_frames_between_fragments_and_every_split_point() {
    let mut bytes = Vec::new();
    encode_frame(
        false,
        Opcode::Text,
        "héllo ".as_bytes(),
        Some(KEY),
        &mut bytes,
    );
    encode_frame(true, Opcode::Ping, b"are you there", Some(KEY), &mut bytes);
    encode_frame(
        true,
        Opcode::Continuation,
        "wörld".as_bytes(),
        Some(KEY),
        &mut bytes,
    );
    encode_close(1000, "bye", Some(KEY), &mut bytes);
    let want = [
        Message::Ping(b"are you there".to_vec()),
        Message::Text("héllo wörld".into()),
        Message::Close(Some((1000, "bye".into()))),
    ];
    for cut in 0..=bytes.len() {
        let mut d = Decoder::new(Role::Server, 1 << 20);
        let mut kept = Vec::new();
        let mut got = Vec::new();
        for piece in [&bytes[..cut], &bytes[cut..]] {
            kept.extend_from_slice(piece);
            let used = d.decode(&kept, |m| {
                got.push(m.expect("valid"));
                true
            });
            kept.drain(..used);
        }
        assert_eq!(got, want, "cut at {cut}");
        assert!(kept.is_empty());
    }
}

#[test]
fn a_close_reason_is_cut_at_a_character_boundary() {
    let mut out = Vec::new();
    encode_close(1001, &"é".repeat(100), None, &mut out);
    assert_eq!(
        out[1] as usize,
        2 + 122,
        "61 two-byte characters fit in 123 bytes"
    );
    let mut d = Decoder::new(Role::Client, 1000);
    let (got, _) = decode_all(&mut d, &out);
    assert_eq!(got, [Ok(Message::Close(Some((1001, "é".repeat(61)))))]);
}
