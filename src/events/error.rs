//! What can go wrong with an emit or an ack, and the checks both sides make before
//! encoding an emit.

use std::fmt;

use serde_json::Value;

use crate::wire::packet::{Limits, RESERVED_EVENTS};

/// The answer to an emit that asked for an ack.
#[derive(Debug, Clone, PartialEq)]
pub struct AckReply {
    pub args: Vec<Value>,
    pub attachments: Vec<Vec<u8>>,
}

/// Why an ack callback got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// No answer within the timeout.
    Timeout,
    /// The socket disconnected first.
    Disconnected,
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::Timeout => f.write_str("operation has timed out"),
            AckError::Disconnected => f.write_str("socket has been disconnected"),
        }
    }
}

impl std::error::Error for AckError {}

/// Why an emit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// `connect`, `disconnect` and the other reserved names belong to the library.
    Reserved(String),
    /// An event name must be 1 to `max_event_name` bytes long.
    BadName(usize),
    /// No such socket (it disconnected).
    NoSuchSocket(String),
    /// The encoded packet is over the frame limit.
    TooLarge { bytes: usize, limit: usize },
    /// Client side: not connected, and the offline buffer is full.
    BufferFull(usize),
    /// More attachments than the peer accepts (`Limits::max_attachments`).
    TooManyAttachments { count: usize, limit: usize },
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Reserved(n) => write!(f, "\"{n}\" is a reserved event name"),
            EmitError::BadName(len) => write!(f, "an event name of {len} bytes is not allowed"),
            EmitError::NoSuchSocket(s) => write!(f, "no socket {s}"),
            EmitError::TooLarge { bytes, limit } => {
                write!(f, "the packet is {bytes} bytes, over the limit of {limit}")
            }
            EmitError::TooManyAttachments { count, limit } => {
                write!(f, "{count} attachments, over the limit of {limit}")
            }
            EmitError::BufferFull(n) => {
                write!(
                    f,
                    "not connected, and the offline buffer is full ({n} packets)"
                )
            }
        }
    }
}

impl std::error::Error for EmitError {}

/// Refuses an emit whose name is reserved or out of bounds (both sides use it).
pub(super) fn check_name(name: &str, limits: &Limits) -> Result<(), EmitError> {
    if RESERVED_EVENTS.contains(&name) {
        return Err(EmitError::Reserved(name.to_string()));
    }
    if name.is_empty() || name.len() > limits.max_event_name {
        return Err(EmitError::BadName(name.len()));
    }
    Ok(())
}

/// Refuses more attachments than the peer accepts (at most 255: the count is one byte).
pub(super) fn check_attachments(n: usize, limits: &Limits) -> Result<(), EmitError> {
    let limit = limits.max_attachments.min(255);
    if n > limit {
        return Err(EmitError::TooManyAttachments { count: n, limit });
    }
    Ok(())
}

/// The server's loop has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerGone;

impl fmt::Display for ServerGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server has stopped")
    }
}

impl std::error::Error for ServerGone {}
