//! msgpack, as the adapter writes it (`@msgpack/msgpack`), to and from JSON: a binary value
//! becomes a Socket.IO placeholder and an attachment, and back.

use rmpv::Value as Mp;
use serde_json::{Map, Number, Value};

use super::{Malformed, Result, MAX_DEPTH};
use crate::wire::socketio::{placeholder, placeholder_num};

pub(super) fn read_msgpack(mut bytes: &[u8]) -> Result<Mp> {
    let v = rmpv::decode::read_value_with_max_depth(&mut bytes, MAX_DEPTH)
        .map_err(|_| Malformed("bad msgpack"))?;
    if !bytes.is_empty() {
        return Err(Malformed("bytes after the msgpack value"));
    }
    Ok(v)
}

pub(super) fn write_msgpack(v: &Mp, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(out, v);
}

/// JSON to msgpack, each placeholder replaced by its attachment's bytes.
pub(super) fn to_msgpack(v: &Value, attachments: &[Vec<u8>]) -> Mp {
    if let Some(bytes) = placeholder_num(v).and_then(|n| attachments.get(n)) {
        return Mp::Binary(bytes.clone());
    }
    match v {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Mp::from(u),
            (_, Some(i)) => Mp::from(i),
            _ => Mp::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(a) => Mp::Array(a.iter().map(|x| to_msgpack(x, attachments)).collect()),
        Value::Object(o) => Mp::Map(
            o.iter()
                .map(|(k, x)| (Mp::from(k.as_str()), to_msgpack(x, attachments)))
                .collect(),
        ),
    }
}

/// msgpack to JSON, each binary value taken out as an attachment (at most `max`) and
/// replaced by its placeholder.
pub(super) fn from_msgpack(v: Mp, attachments: &mut Vec<Vec<u8>>, max: usize) -> Result<Value> {
    Ok(match v {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Value::from(u),
            (_, Some(i)) => Value::from(i),
            _ => return Err(Malformed("an integer out of range")),
        },
        Mp::F32(f) => Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number),
        Mp::F64(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Mp::String(s) => Value::String(s.into_str().ok_or(Malformed("a string not UTF-8"))?),
        Mp::Binary(bytes) => {
            if attachments.len() >= max {
                return Err(Malformed("too many binary values"));
            }
            attachments.push(bytes);
            placeholder(attachments.len() - 1)
        }
        Mp::Array(a) => Value::Array(
            a.into_iter()
                .map(|x| from_msgpack(x, attachments, max))
                .collect::<Result<_>>()?,
        ),
        Mp::Map(m) => {
            let mut o = Map::new();
            for (k, x) in m {
                let k = k.as_str().ok_or(Malformed("a key that is not a string"))?;
                o.insert(k.to_string(), from_msgpack(x, attachments, max)?);
            }
            Value::Object(o)
        }
        Mp::Ext(..) => return Err(Malformed("a msgpack extension")),
    })
}
