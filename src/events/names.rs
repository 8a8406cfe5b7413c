//! Names the server keeps in many places (namespaces, rooms, socket ids), each held once
//! and shared by reference count: a socket id is in the table of sockets, in its rooms, in
//! its connection's list and in every event it sends, and copying it each time cost a
//! chat message dozens of allocations.

use std::sync::Arc;

/// A shared name: cloning it counts a reference, it does not copy the text. `Arc`, not
/// `Rc`, because [`super::Event`] carries the socket id and events may be sent to other
/// threads.
pub type Name = Arc<str>;

/// A short list of names, such as a broadcast's rooms: one name without a heap allocation
/// (the usual `to(room)` and `except_socket(sender)`), more in a vector.
#[derive(Debug, Clone, Default)]
pub(crate) enum Names {
    #[default]
    None,
    One(Name),
    Many(Vec<Name>),
}

impl Names {
    pub(crate) fn push(&mut self, name: Name) {
        *self = match std::mem::take(self) {
            Names::None => Names::One(name),
            Names::One(first) => Names::Many(vec![first, name]),
            Names::Many(mut v) => {
                v.push(name);
                Names::Many(v)
            }
        };
    }

    pub(crate) fn as_slice(&self) -> &[Name] {
        match self {
            Names::None => &[],
            Names::One(n) => std::slice::from_ref(n),
            Names::Many(v) => v,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.as_slice().iter().any(|n| &**n == name)
    }
}
