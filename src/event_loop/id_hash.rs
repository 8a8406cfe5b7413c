//! A cheap hash for the tables keyed by ids this process made itself: connections, timers,
//! socket ids.
//!
//! std's `HashMap` hashes with SipHash-1-3 under a random key. That defends a table against
//! keys chosen by an attacker (hash flooding: many keys in one bucket, every lookup a walk),
//! and it costs some 100 to 250 instructions per lookup. An acked event looked a connection
//! up by id about fifteen times on its way through the server (read, route, dispatch, ack,
//! queue, the timers of the turn), and callgrind counted 39% of the server's instructions
//! in SipHash. A connection id or a timer id is a counter or a slot the server chose, and a
//! socket id is random text the server drew: nobody outside picks them, so nothing needs
//! defending, and a multiply per word does.
//!
//! Tables whose keys come from the peer (ack ids, room names, event names, namespaces) keep
//! std's default hasher: a client could choose keys that collide here.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` for keys the server made (see the module's comment for which).
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// An odd constant with its bits spread evenly (2^64 divided by the golden ratio): a
/// multiply by it carries every bit of a word into the high bits of the product.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// Mixes each word into the state with a rotate, an xor and a multiply.
#[derive(Default, Clone, Copy)]
pub struct IdHasher {
    state: u64,
}

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(SPREAD);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // The top byte, never part of a tail of 1 to 7 bytes, holds its length: "a" and
            // "a\0" must not make the same word.
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            word[7] = rest.len() as u8;
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }

    /// The table takes its bucket from the low bits and a tag from the top 7 bits. The
    /// multiply leaves its best bits at the top, so the top half is folded onto the bottom.
    fn finish(&self) -> u64 {
        self.state ^ (self.state >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash(v: impl Hash) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(v)
    }

    #[test]
    fn consecutive_ids_land_in_different_buckets_and_tags() {
        // A table of 1,024 buckets uses the low 10 bits; its tags are the top 7.
        let buckets: std::collections::HashSet<u64> =
            (0u64..1024).map(|i| hash(i) & 1023).collect();
        assert!(
            buckets.len() > 600,
            "{} of 1024 buckets used",
            buckets.len()
        );
        let tags: std::collections::HashSet<u64> = (0u64..1024).map(|i| hash(i) >> 57).collect();
        assert_eq!(tags.len(), 128, "every tag is used");
    }

    #[test]
    fn text_differing_in_its_last_byte_hashes_differently() {
        assert_ne!(hash("abcdefgh1"), hash("abcdefgh2"));
        assert_ne!(hash("a"), hash("a\0"));
        let mut map: IdMap<String, u32> = IdMap::default();
        map.insert("k".into(), 1);
        assert_eq!(map.get("k"), Some(&1));
    }
}
