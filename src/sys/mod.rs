//! Layer 1: thin wrappers over the socket syscalls.
//!
//! One function per syscall, named after it, doing nothing the syscall does not do. Each
//! returns [`Result`], whose error names the syscall, the argument, the errno and a hint. When
//! the self-trace is on ([`trace::enable`], `--trace`, `SOCKLAB_TRACE=1`) each prints one
//! strace-style line to stderr as it returns.
//!
//! This is the only module of the crate allowed to use `unsafe`; every block says why it is
//! sound.
//!
//! | file | what it holds |
//! |---|---|
//! | `fd.rs` | [`Fd`], an owned descriptor whose drop is a traced `close(2)`; starting a child with only descriptors 0-2 open |
//! | `socket.rs` | `socket`, `bind`, `listen`, `accept4`, `connect`, `read`, `write`, `recv`, `send`, `shutdown`, `getsockname`, `getpeername` |
//! | `sockopt.rs` | `setsockopt`/`getsockopt` (`SO_REUSEADDR`, `SO_REUSEPORT`, `SO_LINGER`, `SO_ERROR`, `TCP_NODELAY`), `fcntl` `O_NONBLOCK` |
//! | `poll.rs` | `poll(2)` over many descriptors (lesson 10) |
//! | `signal.rs` | SIGPIPE's disposition and a counter for lesson 07; the self-pipe that turns SIGINT/SIGTERM into a readable descriptor |
//! | `error.rs` | [`Error`]: syscall, argument, errno name, hint |
//! | `trace.rs` | the strace-format self-trace |
//! | `alloc.rs` | a counting global allocator, for the test that the loop does not allocate |

mod alloc;
mod error;
mod fd;
mod poll;
pub mod signal;
mod socket;
mod sockopt;
pub mod trace;

pub use alloc::{allocations_on_this_thread, CountingAlloc};
pub use error::{errno_name, errno_of, Errno, Error, Result};
pub use fd::{spawn_with_std_fds_only, Fd};
pub use poll::{poll, PollFd, PollFlags};
pub use socket::{
    accept, bind, connect, getpeername, getsockname, listen, read, recv, send, shutdown, socket,
    write, Family, MsgFlags,
};
pub use sockopt::{
    fcntl_getfl, fcntl_setfl, get_linger, getsockopt, set_linger, set_nonblocking, setsockopt,
    take_error, IntOpt,
};
