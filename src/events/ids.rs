//! Socket ids and private session ids, and the client's reconnection jitter.
//!
//! A private session id (`pid`) is a bearer secret: whoever presents it in a CONNECT gets
//! the session back (its socket id, rooms and missed broadcasts). So ids come from the
//! operating system's random generator (`getrandom(2)`), 120 bits each, never from a
//! generator whose state can be worked out from ids a client has seen. (The SplitMix64
//! generator used before could be inverted from two socket ids: the next client's `pid`
//! was predictable, and its session could be taken.)
//!
//! Recorded demos (lessons 14-17) need the same ids every run, so a server can be given a
//! seed instead. Seeded ids are predictable by design: for demos on loopback only.

/// 20 characters of 6 bits each from this URL-safe alphabet: 120 bits (Socket.IO's ids are
/// 20 characters too).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const ID_LEN: usize = 20;

/// Where a server's ids come from.
pub(crate) enum Ids {
    /// The operating system's random generator: unpredictable.
    Os,
    /// A SplitMix64 stream from a fixed seed: the same ids every run, and predictable by
    /// anyone who sees two of them. Only for recorded demos.
    Seeded(u64),
}

impl Ids {
    pub(crate) fn new(seed: Option<u64>) -> Ids {
        match seed {
            Some(s) => Ids::Seeded(s),
            None => Ids::Os,
        }
    }

    /// A new id, or `None` if the operating system's generator failed (it does not on any
    /// Linux since 3.17; a caller refuses the connection rather than use a weaker id).
    pub(crate) fn next_id(&mut self) -> Option<String> {
        let bits: [u64; 2] = match self {
            Ids::Os => {
                let mut raw = [0u8; 16];
                getrandom::fill(&mut raw).ok()?;
                let (a, b) = raw.split_at(8);
                // Both halves are 8 bytes: `split_at(8)` of a 16-byte array.
                [
                    u64::from_le_bytes(a.try_into().ok()?),
                    u64::from_le_bytes(b.try_into().ok()?),
                ]
            }
            Ids::Seeded(state) => [splitmix(state), splitmix(state)],
        };
        // 10 characters from the low 60 bits of each half.
        let id = (0..ID_LEN)
            .map(|i| {
                let word = bits[i / 10] >> ((i % 10) * 6);
                ALPHABET[(word & 63) as usize] as char
            })
            .collect();
        Some(id)
    }
}

/// One step of SplitMix64 (for seeded demo ids only).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in [0, 1) for the reconnection jitter. Unpredictability matters less here than
/// for ids, but the operating system's generator costs one call per reconnection, which is
/// nothing; if it fails, the middle of the range (no jitter) is a safe answer.
pub(crate) fn unit_random() -> f64 {
    match getrandom::u64() {
        Ok(r) => (r >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_ids_are_20_url_safe_characters_and_differ() {
        let mut ids = Ids::new(None);
        let a = ids.next_id().unwrap();
        let b = ids.next_id().unwrap();
        assert_eq!(a.len(), ID_LEN);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }

    #[test]
    fn seeded_ids_repeat_for_the_same_seed() {
        let (mut x, mut y) = (Ids::new(Some(14)), Ids::new(Some(14)));
        assert_eq!(x.next_id(), y.next_id());
        assert_eq!(x.next_id(), y.next_id());
    }

    #[test]
    fn unit_random_is_in_range() {
        for _ in 0..100 {
            let r = unit_random();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
