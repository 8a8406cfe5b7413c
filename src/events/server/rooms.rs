//! Rooms: who is in which room of which namespace.
//!
//! Every socket is always in the room named after its id. That room is not stored: a
//! table of one member per socket would cost each idle connection about 580 bytes
//! (`make bench`), so it is answered from the table of sockets instead.

use std::collections::{HashMap, HashSet};

use super::Io;
use crate::events::names::Name;

/// Namespace -> room -> socket ids, for the rooms sockets joined.
#[derive(Default)]
pub(super) struct Rooms {
    by_ns: HashMap<Name, HashMap<Name, HashSet<Name>>>,
}

impl Rooms {
    /// Puts `sid` in `room` of namespace `ns`.
    fn add(&mut self, ns: &Name, room: &str, sid: &Name) {
        let rooms = self.by_ns.entry(ns.clone()).or_default();
        match rooms.get_mut(room) {
            Some(members) => {
                members.insert(sid.clone());
            }
            None => {
                rooms.insert(Name::from(room), HashSet::from([sid.clone()]));
            }
        }
    }

    /// Takes `sid` out of `room` of namespace `ns`; an empty room goes.
    pub(super) fn remove(&mut self, ns: &str, room: &str, sid: &str) {
        if let Some(rooms) = self.by_ns.get_mut(ns) {
            if let Some(members) = rooms.get_mut(room) {
                members.remove(sid);
                if members.is_empty() {
                    rooms.remove(room);
                }
            }
        }
    }

    /// The sockets that joined `room` of namespace `ns`.
    fn joined<'a>(&'a self, ns: &str, room: &str) -> impl Iterator<Item = &'a Name> {
        let members = self.by_ns.get(ns).and_then(|r| r.get(room));
        members.into_iter().flatten()
    }

    /// The shared copy of the name of `room` in namespace `ns`, if anyone joined it.
    pub(super) fn name(&self, ns: &str, room: &str) -> Option<Name> {
        let rooms = self.by_ns.get(ns)?;
        rooms.get_key_value(room).map(|(name, _)| name.clone())
    }
}

impl Io {
    /// Puts socket `sid` in `room` (of its namespace).
    pub fn join(&mut self, sid: &str, room: &str) {
        let Some((key, s)) = self.sockets.get_key_value(sid).filter(|_| room != sid) else {
            return;
        };
        let (key, ns) = (key.clone(), s.namespace.clone());
        let offset = self.recovery.last_offset();
        if let Some(s) = self.sockets.get_mut(sid) {
            s.session.joined.entry(room.to_string()).or_insert(offset);
        }
        self.rooms.add(&ns, room, &key);
        self.cluster_session_changed(sid);
    }

    /// Takes socket `sid` out of `room`. A socket does not leave its own room (`sid`).
    pub fn leave(&mut self, sid: &str, room: &str) {
        let Some(s) = self.sockets.get_mut(sid).filter(|_| room != sid) else {
            return;
        };
        s.session.joined.remove(room);
        let ns = s.namespace.clone();
        self.rooms.remove(&ns, room, sid);
        self.cluster_session_changed(sid);
    }

    /// Whether socket `sid` is in `room` (its own room included).
    pub fn in_room(&self, sid: &str, room: &str) -> bool {
        self.sockets
            .get(sid)
            .is_some_and(|s| room == sid || s.session.joined.contains_key(room))
    }

    /// The rooms socket `sid` is in (its own id among them), sorted.
    pub fn rooms_of(&self, sid: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .sockets
            .get(sid)
            .map(|s| {
                let joined = s.session.joined.keys().cloned();
                joined.chain([sid.to_string()]).collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The sockets in `room` of namespace `ns`, sorted.
    pub fn sockets_in(&self, ns: &str, room: &str) -> Vec<String> {
        let mut v: Vec<String> = self.members(ns, room).map(|s| s.to_string()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The sockets in `room` of namespace `ns`: those that joined it, then the socket whose
    /// own room it is, if any. A socket may come twice (when a room named after a socket's
    /// id was also joined explicitly), so callers dedup.
    pub(super) fn members<'a>(
        &'a self,
        ns: &'a str,
        room: &'a str,
    ) -> impl Iterator<Item = &'a Name> {
        let owner = self
            .sockets
            .get_key_value(room)
            .filter(|(_, s)| &*s.namespace == ns)
            .map(|(id, _)| id);
        self.rooms.joined(ns, room).chain(owner)
    }

    /// Every socket of namespace `ns`, sorted.
    pub fn sockets(&self, ns: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .sockets
            .iter()
            .filter(|(_, s)| &*s.namespace == ns)
            .map(|(id, _)| id.to_string())
            .collect();
        v.sort();
        v
    }
}
