//! The WebSocket frame codec (`src/wire/websocket.rs`) against an oracle and against noise:
//!
//! - frames written by `tungstenite` (a client's, masked) are read by socklab's server-side
//!   decoder as the same messages, fragments joined and control frames in between;
//! - frames written by socklab (a server's, unmasked; a client's, masked) are read back by
//!   `tungstenite`'s header parser with the same flags, opcode, length and payload;
//! - random bytes never make the decoder panic, whatever the split.

use std::io::Cursor;

use proptest::prelude::*;
use socklab::wire::websocket::{self, Decoder, Message, Opcode, Role};
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

fn decode_in_two(bytes: &[u8], cut: usize, role: Role) -> Vec<Message> {
    let mut d = Decoder::new(role, 1 << 20);
    let (mut kept, mut got) = (Vec::new(), Vec::new());
    for piece in [&bytes[..cut], &bytes[cut..]] {
        kept.extend_from_slice(piece);
        let used = d.decode(&kept, |m| {
            got.push(m.expect("a valid conversation"));
            true
        });
        kept.drain(..used);
    }
    assert!(kept.is_empty(), "{} bytes left over", kept.len());
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
