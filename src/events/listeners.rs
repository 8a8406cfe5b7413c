//! Event listeners, as in Socket.IO's `on`, `once`, `off` and `onAny`, shared by the server's
//! sockets and the client.
//!
//! A listener is a closure that gets the side's handle (`C`: the server's [`super::Io`] or
//! the client's [`super::ClientIo`]) and the event. While it runs it may register or remove
//! listeners, so dispatch takes each closure out of the table, calls it, and puts it back only
//! if its entry still exists: an `off` during a call wins, and a `once` listener is gone after
//! its first call.

use serde_json::Value;

use super::guard::{self, Panicked};

/// An event as a listener sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The socket it came from (on the client: its own id), shared with the server's
    /// tables (see [`super::Name`]): `&ev.socket` reads as a `&str`.
    pub socket: super::Name,
    pub name: String,
    /// The JSON arguments.
    pub args: Vec<Value>,
    /// The binary attachments, as sent.
    pub attachments: Vec<Vec<u8>>,
    /// The ack id, when the sender asked for an answer (see `Io::ack` / `ClientIo::ack`).
    pub ack: Option<u32>,
}

pub type Listener<C> = Box<dyn FnMut(&mut C, &Event)>;

struct Entry<C> {
    id: u64,
    once: bool,
    f: Option<Listener<C>>,
}

/// A listener taken out of its table to be called.
struct Taken<C> {
    id: u64,
    f: Listener<C>,
    once: bool,
    /// Whether another listener of this dispatch was waiting behind it when it was taken.
    /// None can appear while it runs: one added gets a later id than the dispatch's last,
    /// and one out of the table (taken by a dispatch further down the stack) stays out until
    /// that dispatch resumes, after this one. So `false` ends the dispatch without looking
    /// the socket and the event's name up once more only to find nothing.
    more: bool,
}

/// One side's listeners, by event name, plus the catch-all ones.
pub struct Listeners<C> {
    by_name: ByName<C>,
    any: Vec<Entry<C>>,
    next_id: u64,
}

impl<C> Default for Listeners<C> {
    fn default() -> Self {
        Listeners {
            by_name: ByName(Vec::new()),
            any: Vec::new(),
            next_id: 0,
        }
    }
}

/// Event name -> its listeners, for the few names a socket listens to. Every socket of a
/// server has a table, so it counts in idle memory: a short list costs one small allocation
/// (the reference handlers' two names: 80 bytes), where the smallest hash table costs over
/// 200; and finding one of a few names in a list is as quick as hashing it.
struct ByName<C>(Vec<(Box<str>, Vec<Entry<C>>)>);

impl<C> ByName<C> {
    fn get_mut(&mut self, name: &str) -> Option<&mut Vec<Entry<C>>> {
        self.0
            .iter_mut()
            .find(|(n, _)| &**n == name)
            .map(|(_, list)| list)
    }

    /// The list for `name`, made empty if there was none.
    fn entry(&mut self, name: &str) -> &mut Vec<Entry<C>> {
        let at = match self.0.iter().position(|(n, _)| &**n == name) {
            Some(at) => at,
            None => {
                // One slot at a time: names are added when a socket connects, and an exact
                // size is what stays for the socket's life. Most events have one listener:
                // room for one, not the four a first push reserves.
                self.0.reserve_exact(1);
                self.0.push((name.into(), Vec::with_capacity(1)));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| &**n != name);
    }
}

impl<C> Listeners<C> {
    fn add(&mut self, name: Option<&str>, once: bool, f: Listener<C>) {
        self.next_id += 1;
        let entry = Entry {
            id: self.next_id,
            once,
            f: Some(f),
        };
        match name {
            Some(n) => self.by_name.entry(n).push(entry),
            None => self.any.push(entry),
        }
    }

    pub fn on(&mut self, name: &str, f: Listener<C>) {
        self.add(Some(name), false, f);
    }

    pub fn once(&mut self, name: &str, f: Listener<C>) {
        self.add(Some(name), true, f);
    }

    pub fn on_any(&mut self, f: Listener<C>) {
        self.add(None, false, f);
    }

    /// Removes every listener for `name`.
    pub fn off(&mut self, name: &str) {
        self.by_name.remove(name);
    }

    /// Removes the catch-all listeners.
    pub fn off_any(&mut self) {
        self.any.clear();
    }

    /// Calls the listeners for `event` from a table that is not inside `c` (a socket that
    /// was just removed, say), each guarded: a panicking one does not stop the others.
    /// Returns the panics, if any.
    pub fn call_detached(&mut self, c: &mut C, event: &Event) -> Vec<Panicked> {
        let mut panics = Vec::new();
        let reserved = crate::wire::packet::RESERVED_EVENTS.contains(&event.name.as_str());
        let any = (!reserved).then_some(&mut self.any);
        for list in [self.by_name.get_mut(&event.name), any] {
            let Some(list) = list else { continue };
            for e in list.iter_mut() {
                if let Some(f) = e.f.as_mut() {
                    if let Err(p) = guard::call(|| f(c, event)) {
                        panics.push(p);
                    }
                }
            }
        }
        panics
    }

    /// Takes out the closure of the first listener for `name` registered after listener
    /// `after` and no later than `last` (ids grow in the order of registration). `None` when
    /// there is no such listener.
    fn take_next(&mut self, name: Option<&str>, after: u64, last: u64) -> Option<Taken<C>> {
        let list = match name {
            Some(n) => self.by_name.get_mut(n)?,
            None => &mut self.any,
        };
        let mut candidates = list
            .iter_mut()
            .filter(|e| e.id > after && e.id <= last && e.f.is_some());
        let e = candidates.next()?;
        let more = candidates.next().is_some();
        let f = e.f.take()?;
        Some(Taken {
            id: e.id,
            f,
            once: e.once,
            more,
        })
    }

    fn slot(&mut self, name: Option<&str>, id: u64) -> Option<&mut Entry<C>> {
        let list = match name {
            Some(n) => self.by_name.get_mut(n)?,
            None => &mut self.any,
        };
        list.iter_mut().find(|e| e.id == id)
    }

    fn remove(&mut self, name: Option<&str>, id: u64) {
        let list = match name {
            Some(n) => self.by_name.get_mut(n),
            None => Some(&mut self.any),
        };
        if let Some(list) = list {
            list.retain(|e| e.id != id);
        }
    }
}

/// Calls the listeners for `event` (the named ones, then the catch-all ones). `table` finds
/// the listener table inside `c` each time, since a listener may have removed its socket.
/// Returns how many listeners ran; a listener that panics stops the dispatch (its socket is
/// about to be closed) and stays registered, like one that returned.
pub fn dispatch<C>(
    c: &mut C,
    event: &Event,
    table: impl Fn(&mut C) -> Option<&mut Listeners<C>>,
) -> Result<usize, Panicked> {
    let mut ran = 0;
    // Catch-all listeners see the peer's events, not the library's own (`connect`, ...).
    let reserved = crate::wire::packet::RESERVED_EVENTS.contains(&event.name.as_str());
    for name in [Some(event.name.as_str()), None] {
        if name.is_none() && reserved {
            break;
        }
        // The listeners registered when the event arrived run; those added meanwhile wait
        // for the next event. Walking by id allocates nothing per event.
        let Some(last) = table(c).map(|t| t.next_id) else {
            return Ok(ran);
        };
        let mut after = 0;
        while let Some(taken) = table(c).and_then(|t| t.take_next(name, after, last)) {
            let Taken {
                id,
                mut f,
                once,
                more,
            } = taken;
            after = id;
            let result = guard::call(|| f(c, event));
            ran += 1;
            if let Some(t) = table(c) {
                if once {
                    t.remove(name, id);
                } else if let Some(e) = t.slot(name, id) {
                    e.f = Some(f);
                }
            }
            result?;
            if !more {
                break;
            }
        }
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What owns a listener table in these tests, as a server's or a client's state does.
    #[derive(Default)]
    struct Owner {
        table: Listeners<Owner>,
        log: Vec<String>,
    }

    fn ev(name: &str) -> Event {
        Event {
            socket: "s".into(),
            name: name.into(),
            args: vec![],
            attachments: vec![],
            ack: None,
        }
    }

    #[test]
    fn on_once_off_and_any() {
        let mut s = Owner::default();
        s.table.on(
            "a",
            Box::new(|s: &mut Owner, e| s.log.push(format!("on {}", e.name))),
        );
        s.table
            .once("a", Box::new(|s: &mut Owner, _| s.log.push("once".into())));
        s.table.on_any(Box::new(|s: &mut Owner, e| {
            s.log.push(format!("any {}", e.name))
        }));
        dispatch(&mut s, &ev("a"), |s| Some(&mut s.table)).unwrap();
        dispatch(&mut s, &ev("a"), |s| Some(&mut s.table)).unwrap();
        s.table.off("a");
        dispatch(&mut s, &ev("a"), |s| Some(&mut s.table)).unwrap();
        assert_eq!(s.log, ["on a", "once", "any a", "on a", "any a", "any a"]);
    }

    #[test]
    fn a_listener_may_remove_itself_and_add_others() {
        let mut s = Owner::default();
        s.table.on(
            "a",
            Box::new(|s: &mut Owner, _| {
                s.log.push("first".into());
                s.table.off("a");
                s.table.on(
                    "a",
                    Box::new(|s: &mut Owner, _| s.log.push("second".into())),
                );
            }),
        );
        dispatch(&mut s, &ev("a"), |s| Some(&mut s.table)).unwrap();
        dispatch(&mut s, &ev("a"), |s| Some(&mut s.table)).unwrap();
        assert_eq!(s.log, ["first", "second"]);
    }

    #[test]
    fn each_listener_waiting_runs_once_and_one_removed_meanwhile_does_not() {
        let mut s = Owner::default();
        for name in ["first", "second", "third"] {
            s.table.on(
                "a",
                Box::new(move |s: &mut Owner, _| s.log.push(name.into())),
            );
        }
        dispatch(&mut s, &ev("a"), |s| Some(&mut s.table)).unwrap();
        assert_eq!(s.log, ["first", "second", "third"]);
        s.log.clear();
        // The first takes the others away while it runs: they are not called.
        s.table.off("a");
        s.table.on(
            "a",
            Box::new(|s: &mut Owner, _| {
                s.log.push("remover".into());
                s.table.off("a");
            }),
        );
        s.table.on(
            "a",
            Box::new(|s: &mut Owner, _| s.log.push("removed".into())),
        );
        assert_eq!(dispatch(&mut s, &ev("a"), |s| Some(&mut s.table)), Ok(1));
        assert_eq!(s.log, ["remover"]);
    }

    #[test]
    fn a_panicking_listener_stops_the_dispatch_and_stays_registered() {
        let mut s = Owner::default();
        s.table.on(
            "a",
            Box::new(|s: &mut Owner, _| {
                s.log.push("boom".into());
                panic!("boom");
            }),
        );
        s.table
            .on_any(Box::new(|s: &mut Owner, _| s.log.push("any".into())));
        for _ in 0..2 {
            let err = dispatch(&mut s, &ev("a"), |s| Some(&mut s.table)).unwrap_err();
            assert!(err.message.starts_with("boom"), "{}", err.message);
        }
        assert_eq!(s.log, ["boom", "boom"], "the catch-all ones did not run");
    }
}
