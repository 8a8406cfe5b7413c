//! Layer 3: the wire protocol, as pure code: bytes in, frames out, no I/O.
//!
//! | file | what it holds | lessons |
//! |---|---|---|
//! | `frame.rs` | length-prefixed frames: [`frame::encode`] and the incremental [`frame::Decoder`] | 08 |

pub mod frame;
