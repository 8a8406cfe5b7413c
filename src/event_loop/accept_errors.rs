//! What `accept4` failures the loop can meet, and what each costs: counted by errno, some
//! skipped (they lost one queued connection), the others paused on (lesson 11, "Out of
//! descriptors"). `accept_all` in `accept.rs` acts on them.

use crate::sys::{self, Errno};

/// How often `accept4` failed, one counter per errno. The loop pauses the listener for the
/// kinds in the first group and skips the lost connection for those in the second; either
/// way it reports on stderr the 1st, 2nd, 4th, ... failure of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptErrors {
    /// This process is out of descriptors (pause).
    pub emfile: u64,
    /// The whole system is out of descriptors (pause).
    pub enfile: u64,
    /// The kernel is out of memory for a new socket (pause): ENOBUFS...
    pub enobufs: u64,
    /// ...or ENOMEM.
    pub enomem: u64,
    /// Any errno not named here (pause: the loop does not know what would help).
    pub other: u64,
    /// The peer reset the connection while it waited in the queue (skip).
    pub econnaborted: u64,
    /// A protocol error on the new connection (skip).
    pub eproto: u64,
    /// A firewall rule refused the connection (skip).
    pub eperm: u64,
    /// Another network error pending on the new connection: ENETDOWN, EHOSTUNREACH, ... (skip).
    pub network: u64,
}

impl AcceptErrors {
    /// Counts one failure; returns how many of its kind there have been.
    pub(super) fn count(&mut self, errno: Errno) -> u64 {
        use Errno::*;
        let n = match errno {
            EMFILE => &mut self.emfile,
            ENFILE => &mut self.enfile,
            ENOBUFS => &mut self.enobufs,
            ENOMEM => &mut self.enomem,
            ECONNABORTED => &mut self.econnaborted,
            EPROTO => &mut self.eproto,
            EPERM => &mut self.eperm,
            e if one_connection_lost(e) => &mut self.network,
            _ => &mut self.other,
        };
        *n += 1;
        *n
    }

    /// All failures, of every kind.
    pub fn total(&self) -> u64 {
        self.emfile
            + self.enfile
            + self.enobufs
            + self.enomem
            + self.other
            + self.econnaborted
            + self.eproto
            + self.eperm
            + self.network
    }
}

/// Failures in a row that [`one_connection_lost`] lets `accept_all` skip before it pauses.
pub(super) const MAX_SKIPPED: u32 = 16;

/// Whether `accept4` failing with `errno` cost one queued connection and nothing else: the
/// peer reset it while it waited (ECONNABORTED), a firewall rule refused it (EPERM), or a
/// network error was already pending on it (EPROTO and the others `accept(2)` lists for
/// Linux). The listener is fine and the next connection may be too.
pub(super) fn one_connection_lost(errno: Errno) -> bool {
    use Errno::*;
    matches!(
        errno,
        ECONNABORTED
            | EPROTO
            | EPERM
            | ENETDOWN
            | ENOPROTOOPT
            | EHOSTDOWN
            | ENONET
            | EHOSTUNREACH
            | EOPNOTSUPP
            | ENETUNREACH
    )
}

/// Says on stderr that `accept4` failed, the 1st, 2nd, 4th, 8th, ... time for each kind of
/// failure: enough for a person to notice and to see it go on, without a line per failure
/// (a server out of descriptors fails ten times a second).
pub(super) fn report_accept_error(e: &sys::Error, seen: u64, action: &str) {
    if seen.is_power_of_two() {
        eprintln!("event loop: {e} ({seen} so far; {action})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each errno lands in its own counter, and whether it is skipped or paused on matches
    /// what the counters' docs say.
    #[test]
    fn accept_errors_are_counted_by_kind() {
        let mut errors = AcceptErrors::default();
        for errno in [Errno::EMFILE, Errno::EMFILE, Errno::EMFILE] {
            errors.count(errno);
        }
        assert_eq!(errors.count(Errno::EMFILE), 4, "the 4th EMFILE");
        assert_eq!(errors.count(Errno::EPERM), 1);
        assert_eq!(errors.count(Errno::EHOSTUNREACH), 1, "counted as network");
        assert_eq!(errors.count(Errno::EBADF), 1, "counted as other");
        assert_eq!(
            (errors.emfile, errors.eperm, errors.network, errors.other),
            (4, 1, 1, 1)
        );
        assert_eq!(errors.total(), 7);

        for skipped in [
            Errno::ECONNABORTED,
            Errno::EPROTO,
            Errno::EPERM,
            Errno::ENETDOWN,
        ] {
            assert!(
                one_connection_lost(skipped),
                "{skipped:?} skips one connection"
            );
        }
        for paused in [
            Errno::EMFILE,
            Errno::ENFILE,
            Errno::ENOBUFS,
            Errno::ENOMEM,
            Errno::EBADF,
            Errno::EINVAL,
        ] {
            assert!(
                !one_connection_lost(paused),
                "{paused:?} pauses the listener"
            );
        }
    }
}
