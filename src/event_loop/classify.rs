//! What a failed call means for the loop, in the words of mio's `tcp_server` example: "would
//! block" is not an error (the kernel buffer is empty, or full: try again on the next
//! event), "interrupted" asks to try again at once (a signal arrived), anything else is real.

use std::io;

use crate::sys;

/// The loop's own syscalls fail with [`sys::Error`], mio's `poll` with [`io::Error`]; both
/// say which [`io::ErrorKind`] they are, and the classifiers below take either.
pub(super) trait HasKind {
    fn error_kind(&self) -> io::ErrorKind;
}

impl HasKind for io::Error {
    fn error_kind(&self) -> io::ErrorKind {
        self.kind()
    }
}

impl HasKind for sys::Error {
    fn error_kind(&self) -> io::ErrorKind {
        self.kind()
    }
}

/// EAGAIN: nothing to read, no room to write, no connection waiting. The end of a drain.
pub(super) fn would_block(e: &impl HasKind) -> bool {
    e.error_kind() == io::ErrorKind::WouldBlock
}

/// EINTR: a signal arrived during the call; nothing happened, so trying again is safe.
pub(super) fn interrupted(e: &impl HasKind) -> bool {
    e.error_kind() == io::ErrorKind::Interrupted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Errno;

    #[test]
    fn eagain_would_block_and_eintr_is_interrupted() {
        let eagain = sys::Error::new("read", "fd 4", Errno::EAGAIN);
        let eintr = sys::Error::new("read", "fd 4", Errno::EINTR);
        let reset = sys::Error::new("read", "fd 4", Errno::ECONNRESET);
        assert!(would_block(&eagain) && !interrupted(&eagain));
        assert!(interrupted(&eintr) && !would_block(&eintr));
        assert!(!would_block(&reset) && !interrupted(&reset));
        assert!(interrupted(&io::Error::from(io::ErrorKind::Interrupted)));
        assert!(would_block(&io::Error::from(io::ErrorKind::WouldBlock)));
    }
}
