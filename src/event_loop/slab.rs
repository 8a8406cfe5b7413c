//! A slab: connections stored in a `Vec`, addressed by slot, with freed slots reused.
//!
//! The slot doubles as the mio `Token`, so an event finds its connection in O(1). A
//! generation counter per slot makes an old [`ConnId`] useless once its connection is gone
//! and the slot holds a new one: a late message for a closed connection cannot reach a
//! stranger.

use std::fmt;

/// Names one connection of a loop for as long as it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    slot: u32,
    gen: u32,
}

impl ConnId {
    /// The slot in the loop's table (what the mio token is made from).
    pub fn slot(self) -> usize {
        self.slot as usize
    }

    /// A number unique to this connection among all the loop ever had (slot and generation).
    pub fn as_u64(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.slot)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn {}.{}", self.slot, self.gen)
    }
}

enum Entry<T> {
    Used { gen: u32, value: T },
    Free { gen: u32 },
}

pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Slab<T> {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, value: T) -> ConnId {
        self.len += 1;
        if let Some(slot) = self.free.pop() {
            let entry = &mut self.entries[slot as usize];
            let gen = match entry {
                Entry::Free { gen } => gen.wrapping_add(1),
                // The free list only holds free slots.
                Entry::Used { .. } => unreachable!("slot {slot} on the free list is in use"),
            };
            *entry = Entry::Used { gen, value };
            ConnId { slot, gen }
        } else {
            let slot = self.entries.len() as u32;
            self.entries.push(Entry::Used { gen: 0, value });
            ConnId { slot, gen: 0 }
        }
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&T> {
        match self.entries.get(id.slot as usize)? {
            Entry::Used { gen, value } if *gen == id.gen => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        match self.entries.get_mut(id.slot as usize)? {
            Entry::Used { gen, value } if *gen == id.gen => Some(value),
            _ => None,
        }
    }

    /// The live connection in `slot`, whatever its generation (how an event finds it).
    pub(crate) fn id_at(&self, slot: usize) -> Option<ConnId> {
        match self.entries.get(slot)? {
            Entry::Used { gen, .. } => Some(ConnId {
                slot: slot as u32,
                gen: *gen,
            }),
            Entry::Free { .. } => None,
        }
    }

    pub(crate) fn remove(&mut self, id: ConnId) -> Option<T> {
        let entry = self.entries.get_mut(id.slot as usize)?;
        match entry {
            Entry::Used { gen, .. } if *gen == id.gen => {
                let old = std::mem::replace(entry, Entry::Free { gen: id.gen });
                self.free.push(id.slot);
                self.len -= 1;
                match old {
                    Entry::Used { value, .. } => Some(value),
                    Entry::Free { .. } => None,
                }
            }
            _ => None,
        }
    }

    /// Every live id, in slot order.
    pub(crate) fn ids(&self) -> Vec<ConnId> {
        (0..self.entries.len())
            .filter_map(|s| self.id_at(s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_gets_a_new_generation() {
        let mut s = Slab::new();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.slot(), b.slot());
        assert_ne!(a, b);
        assert_eq!(s.get(a), None, "the old id no longer reaches the slot");
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.len(), 1);
    }
}
