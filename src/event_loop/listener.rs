//! The loop's listeners: one slot each (its token is fixed by the slot), and whether
//! accepting on it is paused after `accept4` ran out of descriptors or memory.

use super::token::MAX_LISTENERS;
use crate::sys::Fd;

struct Listener {
    fd: Fd,
    paused: bool,
}

/// The listener slots. A closed listener leaves its slot free for the next one.
#[derive(Default)]
pub(super) struct Listeners {
    slots: Vec<Option<Listener>>,
}

impl Listeners {
    /// The first free slot, if fewer than [`MAX_LISTENERS`] are open.
    pub(super) fn free_slot(&self) -> Option<usize> {
        let index = self
            .slots
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.slots.len());
        (index < MAX_LISTENERS).then_some(index)
    }

    /// Puts a listening socket into slot `index` (from [`free_slot`](Self::free_slot)).
    pub(super) fn put(&mut self, index: usize, fd: Fd) {
        let listener = Some(Listener { fd, paused: false });
        if index == self.slots.len() {
            self.slots.push(listener);
        } else {
            self.slots[index] = listener;
        }
    }

    /// The socket in slot `index`, unless the slot is empty or accepting there is paused.
    pub(super) fn ready(&self, index: usize) -> Option<&Fd> {
        match self.slots.get(index) {
            Some(Some(l)) if !l.paused => Some(&l.fd),
            _ => None,
        }
    }

    /// Pauses (or resumes) accepting on slot `index`.
    pub(super) fn set_paused(&mut self, index: usize, paused: bool) {
        if let Some(Some(l)) = self.slots.get_mut(index) {
            l.paused = paused;
        }
    }

    /// Empties every slot and returns the sockets, to be deregistered and closed.
    pub(super) fn take_all(&mut self) -> Vec<Fd> {
        self.slots
            .iter_mut()
            .filter_map(Option::take)
            .map(|l| l.fd)
            .collect()
    }
}
