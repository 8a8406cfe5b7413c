//! A session as the Redis streams adapter keeps it for connection state recovery.

use base64::Engine as _;
use rmpv::Value as Mp;

use super::msgpack::{from_msgpack, read_msgpack, write_msgpack};
use super::{Malformed, Result};

/// A session as the adapter keeps it in Redis for connection state recovery
/// (`SET sio:session:<pid> <base64 msgpack> PX <ms>`): the socket's id, its private id and
/// its rooms (its own id among them).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    pub sid: String,
    pub pid: String,
    pub rooms: Vec<String>,
}

impl StoredSession {
    /// The value of its key: msgpack `{sid, pid, rooms, data: {}}` in base64.
    pub fn to_text(&self) -> String {
        let strings = |v: &[String]| Mp::Array(v.iter().map(|s| Mp::from(s.as_str())).collect());
        let map = Mp::Map(vec![
            (Mp::from("sid"), Mp::from(self.sid.as_str())),
            (Mp::from("pid"), Mp::from(self.pid.as_str())),
            (Mp::from("rooms"), strings(&self.rooms)),
            (Mp::from("data"), Mp::Map(Vec::new())),
        ]);
        let mut bytes = Vec::new();
        write_msgpack(&map, &mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn from_text(text: &[u8]) -> Result<StoredSession> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| Malformed("a session not in base64"))?;
        let v = from_msgpack(read_msgpack(&bytes)?, &mut Vec::new(), 0)?;
        let text = |k: &str| v[k].as_str().map(str::to_string);
        let rooms = v["rooms"]
            .as_array()
            .ok_or(Malformed("a session without rooms"))?;
        Ok(StoredSession {
            sid: text("sid").ok_or(Malformed("a session without sid"))?,
            pid: text("pid").ok_or(Malformed("a session without pid"))?,
            rooms: rooms
                .iter()
                .map(|r| r.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or(Malformed("a room that is not a string"))?,
        })
    }
}
