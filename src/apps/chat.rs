//! A chat room server, and how its client (`socklab chat`, in `chat_client.rs`) reads a typed
//! line and shows an event.
//!
//! The events, all in namespace `/chat`:
//!
//! | direction | event | arguments |
//! |---|---|---|
//! | client → server | CONNECT auth | `{"name": NAME, "room": ROOM}` (room optional, default `lobby`) |
//! | client → server | `chat message` | `ROOM`, `TEXT` |
//! | client → server | `join` / `leave` (ack) | `ROOM` → ack `[ROOMS]` |
//! | client → server | `who` (ack) | `ROOM` → ack `[NAMES]` |
//! | server → client | `chat message` | `{"room", "from", "text"}` |
//! | server → client | `notification` | `{"from", "room", "text"}`, sent to `user:NAME` when a message mentions `@NAME` |
//! | server → client | `system` | `{"room", "text"}`: joins and leaves |
//!
//! A message goes to everyone in its room but its sender, like Socket.IO's
//! `socket.to(room).emit(...)` from inside a handler.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{json, Value};

use crate::events::{Event, Io};

pub const NAMESPACE: &str = "/chat";
pub const DEFAULT_ROOM: &str = "lobby";
const MAX_NAME: usize = 32;

/// What the name of every personal room starts with.
const PERSONAL: &str = "user:";

/// The personal room of user `name`: notifications go there.
pub fn personal_room(name: &str) -> String {
    format!("{PERSONAL}{name}")
}

/// The arguments of a `system` event: a line about `room` that the server says.
fn system(room: &str, text: String) -> Vec<Value> {
    vec![json!({"room": room, "text": text})]
}

/// The name socket `sid` connected with.
fn name_of(names: &Names, sid: &str) -> String {
    names.borrow().get(sid).cloned().unwrap_or_default()
}

/// Checks a user name: 1 to 32 characters, letters, digits, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
}

/// Who is connected: socket id -> name. Shared by the handlers through `Rc<RefCell<..>>`:
/// they all run on the loop thread, so the borrow is never contended and no lock is needed.
type Names = Rc<RefCell<HashMap<String, String>>>;

/// The names mentioned in `text` (`@ada` mentions `ada`), each once, in order.
pub fn mentions(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        if let Some(rest) = word.strip_prefix('@') {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            if valid_name(&name) && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// A room a person may name: 1 to 64 bytes, and not someone's personal room.
pub fn valid_room(room: &str) -> bool {
    !room.is_empty() && room.len() <= 64 && !room.starts_with(PERSONAL)
}

fn room_arg(ev: &Event) -> Option<String> {
    ev.args
        .first()
        .and_then(Value::as_str)
        .filter(|r| valid_room(r))
        .map(str::to_string)
}

/// Registers the chat namespace on a server.
pub fn install(io: &mut Io) {
    let names: Names = Rc::new(RefCell::new(HashMap::new()));

    let taken = names.clone();
    io.use_middleware(NAMESPACE, move |hs| {
        let name = hs
            .auth
            .as_ref()
            .and_then(|a| a.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !valid_name(name) {
            return Err("a name of 1 to 32 letters, digits, - or _ is required".into());
        }
        if taken.borrow().values().any(|n| n == name) {
            return Err(format!("the name {name} is taken").into());
        }
        Ok(())
    });

    io.on_connection(NAMESPACE, move |io, sid| {
        let auth = io.handshake(sid).and_then(|h| h.auth.clone());
        let field = |k: &str| {
            auth.as_ref()
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let name = field("name").unwrap_or_default();
        let room = field("room")
            .filter(|r| valid_room(r))
            .unwrap_or_else(|| DEFAULT_ROOM.to_string());
        names.borrow_mut().insert(sid.to_string(), name.clone());
        io.join(sid, &personal_room(&name));
        io.join(sid, &room);
        let _ = io
            .broadcast(NAMESPACE)
            .to(&room)
            .emit("system", system(&room, format!("{name} joined {room}")));

        let who_names = names.clone();
        let msg_names = names.clone();
        // ANCHOR: chat_message
        io.on(sid, "chat message", move |io, ev| {
            let (Some(room), Some(text)) = (room_arg(ev), ev.args.get(1).and_then(Value::as_str))
            else {
                return;
            };
            let from = name_of(&msg_names, &ev.socket);
            if !io.in_room(&ev.socket, &room) {
                return; // only members speak in a room
            }
            let message = json!({"room": room, "from": from, "text": text});
            let _ = io
                .broadcast(NAMESPACE)
                .to(&room)
                .except_socket(&ev.socket)
                .emit("chat message", vec![message]);
            for target in mentions(text) {
                if target != from {
                    let _ = io.broadcast(NAMESPACE).to(&personal_room(&target)).emit(
                        "notification",
                        vec![json!({"from": from, "room": room, "text": text})],
                    );
                }
            }
            io.ack(ev, vec![json!(true)]);
        });
        // ANCHOR_END: chat_message

        let join_names = names.clone();
        io.on(sid, "join", move |io, ev| {
            if let Some(room) = room_arg(ev) {
                io.join(&ev.socket, &room);
                let name = name_of(&join_names, &ev.socket);
                let _ = io
                    .broadcast(NAMESPACE)
                    .to(&room)
                    .emit("system", system(&room, format!("{name} joined {room}")));
            }
            let rooms = public_rooms(io, &ev.socket);
            io.ack(ev, vec![json!(rooms)]);
        });

        let leave_names = names.clone();
        io.on(sid, "leave", move |io, ev| {
            if let Some(room) = room_arg(ev) {
                let name = name_of(&leave_names, &ev.socket);
                io.leave(&ev.socket, &room);
                let _ = io
                    .broadcast(NAMESPACE)
                    .to(&room)
                    .emit("system", system(&room, format!("{name} left {room}")));
            }
            let rooms = public_rooms(io, &ev.socket);
            io.ack(ev, vec![json!(rooms)]);
        });

        io.on(sid, "who", move |io, ev| {
            let room = room_arg(ev).unwrap_or_else(|| DEFAULT_ROOM.to_string());
            let names = who_names.borrow();
            let mut list: Vec<String> = io
                .sockets_in(NAMESPACE, &room)
                .iter()
                .filter_map(|s| names.get(s).cloned())
                .collect();
            list.sort();
            drop(names);
            io.ack(ev, vec![json!(list)]);
        });

        let bye_names = names.clone();
        io.on(sid, "disconnecting", move |io, ev| {
            let name = bye_names
                .borrow_mut()
                .remove(&*ev.socket)
                .unwrap_or_default();
            for room in public_rooms(io, &ev.socket) {
                let _ = io
                    .broadcast(NAMESPACE)
                    .to(&room)
                    .except_socket(&ev.socket)
                    .emit("system", system(&room, format!("{name} left {room}")));
            }
        });
    });
}

/// The rooms of `sid` a person chose (not its own id or its personal room), sorted.
fn public_rooms(io: &Io, sid: &str) -> Vec<String> {
    io.rooms_of(sid)
        .into_iter()
        .filter(|r| r != sid && !r.starts_with(PERSONAL))
        .collect()
}

/// What a line typed into `socklab chat` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Say(String),
    Join(String),
    Leave(String),
    /// `/who` (the current room) or `/who ROOM`.
    Who(Option<String>),
    /// `/room ROOM`: where plain lines go from now on.
    Switch(String),
    Quit,
    Help,
    Empty,
}

/// Parses one line typed into `socklab chat`.
pub fn parse_command(line: &str) -> Command {
    let line = line.trim_end_matches(['\r', '\n']);
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Command::Empty;
    }
    let Some(cmd) = trimmed.strip_prefix('/') else {
        return Command::Say(line.to_string());
    };
    let mut parts = cmd.split_whitespace();
    let verb = parts.next().unwrap_or("");
    let arg = parts.next().map(str::to_string);
    match (verb, arg) {
        ("join", Some(r)) => Command::Join(r),
        ("leave", Some(r)) => Command::Leave(r),
        ("room", Some(r)) => Command::Switch(r),
        ("who", r) => Command::Who(r),
        ("quit", _) | ("exit", _) => Command::Quit,
        _ => Command::Help,
    }
}

/// How `socklab chat` prints an event from the server (`None` for events it ignores).
pub fn render(ev: &Event) -> Option<String> {
    let obj = ev.args.first()?;
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    match ev.name.as_str() {
        "chat message" => Some(format!("[{}] {}: {}", s("room"), s("from"), s("text"))),
        "notification" => Some(format!(
            "(@ from {} in {}) {}",
            s("from"),
            s("room"),
            s("text")
        )),
        "system" => Some(format!("[{}] * {}", s("room"), s("text"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_short_and_not_personal() {
        assert!(valid_room("general"));
        assert!(valid_room(&"r".repeat(64)));
        assert!(
            !valid_room(&"r".repeat(65)),
            "the starting room has the same cap"
        );
        assert!(!valid_room(""));
        assert!(!valid_room("user:ada"));
    }

    #[test]
    fn mentions_and_commands() {
        assert_eq!(mentions("hi @ada and @bob, @ada again"), ["ada", "bob"]);
        assert_eq!(mentions("mail me at x@y.z"), Vec::<String>::new());
        assert_eq!(parse_command("/join news\n"), Command::Join("news".into()));
        assert_eq!(parse_command("/who"), Command::Who(None));
        assert_eq!(parse_command("hello\n"), Command::Say("hello".into()));
        assert_eq!(parse_command("  "), Command::Empty);
        assert_eq!(parse_command("/nonsense"), Command::Help);
        assert!(valid_name("ada_1") && !valid_name("") && !valid_name("a b"));
    }
}
