//! The entries of the cluster's stream, in the format of `@socket.io/redis-streams-adapter`
//! 0.3 (see `cluster.rs`): a broadcast's `data` written as JSON, and the entries of an `XREAD`
//! reply read back, checked field by field (a stream is shared: anyone with access to Redis
//! can write anything in it).

use serde_json::{json, Value};

use crate::wire::resp::Reply;

/// Socket.IO's `ClusterAdapter` message type of a broadcast.
pub(super) const BROADCAST: &str = "3";
/// Socket.IO's packet type of an event (`socket.io-parser`'s `EVENT`).
pub(super) const EVENT_PACKET: u64 = 2;

/// A broadcast read from the stream, to deliver here.
pub(super) struct Remote {
    pub(super) nsp: String,
    pub(super) rooms: Vec<String>,
    pub(super) except: Vec<String>,
    pub(super) volatile: bool,
    pub(super) event: String,
    pub(super) args: Vec<Value>,
}

/// The `data` of a BROADCAST message: Socket.IO's EVENT packet and the options that choose
/// its recipients (no flags: volatile broadcasts are not published).
pub(super) fn broadcast_data(
    nsp: &str,
    event: &str,
    args: &[Value],
    rooms: &[String],
    except: &[String],
) -> String {
    let mut data = Vec::with_capacity(args.len() + 1);
    data.push(Value::from(event));
    data.extend(args.iter().cloned());
    let message = json!({
        "packet": {"type": EVENT_PACKET, "data": data, "nsp": nsp},
        "opts": {"rooms": rooms, "except": except, "flags": {}},
    });
    message.to_string()
}

/// Takes the entries of an `XREAD` reply: each moves `last_id` on; those of other nodes that
/// are broadcasts go to `remotes`. Returns how many were malformed.
pub(super) fn read_entries(
    reply: Reply,
    uid: &str,
    last_id: &mut String,
    remotes: &mut Vec<Remote>,
) -> u64 {
    let streams = match reply {
        Reply::Nil => return 0, // the block timed out: nothing new
        Reply::Array(streams) => streams,
        _ => return 1,
    };
    let mut bad = 0;
    for stream in streams {
        let Reply::Array(mut parts) = stream else {
            bad += 1;
            continue;
        };
        let Some(Reply::Array(entries)) = parts.pop() else {
            bad += 1;
            continue;
        };
        for entry in entries {
            let Reply::Array(mut parts) = entry else {
                bad += 1;
                continue;
            };
            let (Some(Reply::Array(fields)), Some(id)) = (parts.pop(), parts.pop()) else {
                bad += 1;
                continue;
            };
            if let Some(id) = id.as_bytes().and_then(|b| std::str::from_utf8(b).ok()) {
                *last_id = id.to_string();
            }
            match decode_entry(&fields, uid) {
                Ok(Some(r)) => remotes.push(r),
                Ok(None) => {}
                Err(()) => bad += 1,
            }
        }
    }
    bad
}

/// The id of the one entry of an `XREVRANGE ... COUNT 1` reply; `None` for an empty stream.
pub(super) fn newest_id(reply: Reply) -> Option<String> {
    let Reply::Array(mut entries) = reply else {
        return None;
    };
    let Some(Reply::Array(mut entry)) = entries.pop() else {
        return None;
    };
    entry.truncate(1);
    let id = entry.pop()?;
    id.as_bytes()
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_string)
}

/// One entry's fields: `Ok(None)` for this node's own entries and for message types not
/// handled yet; `Err` for anything that is not a message of the adapter's format.
fn decode_entry(fields: &[Reply], own: &str) -> Result<Option<Remote>, ()> {
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|kv| kv[0].as_bytes() == Some(name.as_bytes()))
            .and_then(|kv| kv.get(1)?.as_bytes())
            .and_then(|v| std::str::from_utf8(v).ok())
    };
    let (Some(uid), Some(nsp), Some(kind)) = (field("uid"), field("nsp"), field("type")) else {
        return Err(());
    };
    kind.parse::<u32>().map_err(|_| ())?;
    if uid == own || kind != BROADCAST {
        return Ok(None);
    }
    // JSON starts with `{`; anything else is msgpack in base64 (binary), not read yet.
    let data: Value = serde_json::from_str(field("data").ok_or(())?).map_err(|_| ())?;
    let packet = &data["packet"];
    if packet["type"].as_u64() != Some(EVENT_PACKET) {
        return Err(());
    }
    let mut items = packet["data"].as_array().ok_or(())?.iter().cloned();
    let Some(Value::String(event)) = items.next() else {
        return Err(());
    };
    let names = |v: &Value| -> Result<Vec<String>, ()> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a
                .iter()
                .map(|s| s.as_str().map(str::to_string).ok_or(()))
                .collect(),
            _ => Err(()),
        }
    };
    let opts = &data["opts"];
    Ok(Some(Remote {
        nsp: nsp.to_string(),
        rooms: names(&opts["rooms"])?,
        except: names(&opts["except"])?,
        volatile: opts["flags"]["volatile"].as_bool().unwrap_or(false),
        event,
        args: items.collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Reply {
        Reply::Array(vec![
            bulk(id),
            Reply::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    #[test]
    fn entries_of_other_nodes_are_read_own_skipped_garbage_counted() {
        let data = r#"{"packet":{"type":2,"data":["chat",{"text":"hi"}],"nsp":"/chat"},
            "opts":{"rooms":["lobby"],"except":["x"],"flags":{}}}"#;
        let reply = Reply::Array(vec![Reply::Array(vec![
            bulk("socket.io"),
            Reply::Array(vec![
                entry(
                    "1-0",
                    &["uid", "other", "nsp", "/chat", "type", "3", "data", data],
                ),
                entry(
                    "2-0",
                    &["uid", "me", "nsp", "/chat", "type", "3", "data", data],
                ),
                entry("3-0", &["foo", "bar"]),
                entry(
                    "4-0",
                    &["uid", "other", "nsp", "/", "type", "3", "data", "gAA="],
                ),
                entry("5-0", &["uid", "other", "nsp", "/", "type", "2"]),
            ]),
        ])]);
        let (mut last, mut remotes) = ("$".to_string(), Vec::new());
        assert_eq!(read_entries(reply, "me", &mut last, &mut remotes), 2);
        assert_eq!(last, "5-0");
        assert_eq!(remotes.len(), 1);
        let r = &remotes[0];
        assert_eq!((r.nsp.as_str(), r.event.as_str()), ("/chat", "chat"));
        assert_eq!(
            (r.rooms.clone(), r.except.clone()),
            (vec!["lobby".into()], vec!["x".into()])
        );
        assert_eq!(r.args, vec![json!({"text": "hi"})]);
    }
}
