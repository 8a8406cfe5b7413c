//! The client behind `socklab chat`: what each typed line does, the rooms you are in, and
//! the room your lines go to.
//!
//! On a terminal (stdin and stdout both), lines are read by a line editor with a prompt that
//! shows the current room (`[lobby] ada> `), incoming messages appear above it
//! (`terminal.rs`), and your own messages are shown like everyone else's once the server has
//! taken them. Otherwise (a pipe, a file, a script) it is a plain line client: one message a
//! line, and it leaves once the server has handled them all.
//!
//! The state ([`Chat`]) lives on the client's loop thread with the client; the thread that
//! reads lines hands each one over with a [`ClientHandle`] and, on a terminal, waits for the
//! next prompt. Nothing is shared between threads but the handle and the screen.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::chat::{parse_command, render, valid_room, Command, DEFAULT_ROOM, NAMESPACE};
use super::status::{self, Catchup, Say};
use super::terminal;
use crate::events::{
    AckError, AckReply, Client, ClientHandle, ClientIo, ClientOptions, ClientState,
};

/// How long the server may take to answer a message, a join or a `/who`.
const ACK: Duration = Duration::from_secs(10);

/// The client's side of the conversation.
struct Chat {
    me: String,
    /// The room in the CONNECT auth: where a new session starts.
    start: String,
    /// The rooms you are in, as the last answer of the server (and your commands since) say.
    rooms: BTreeSet<String>,
    /// Where plain lines go; `None` once you have left every room.
    current: Option<String>,
    /// Whether your own messages are printed (a terminal); a script's output stays as it was.
    echo_own: bool,
    say: Say,
}

type Shared = Rc<RefCell<Chat>>;

/// `[lobby] ada> `, or `[no room] ada> `.
fn prompt(room: Option<&str>, me: &str) -> String {
    format!("[{}] {me}> ", room.unwrap_or("no room"))
}

impl Chat {
    /// The prompt: the room your lines go to, and who you are.
    fn prompt(&self) -> String {
        prompt(self.current.as_deref(), &self.me)
    }

    /// Your rooms, `a, b`, or `none`.
    fn room_list(&self) -> String {
        if self.rooms.is_empty() {
            return "none".to_string();
        }
        let rooms: Vec<&str> = self.rooms.iter().map(String::as_str).collect();
        rooms.join(", ")
    }

    /// What `/join` and `/leave` print: your rooms and where your lines go.
    fn rooms_line(&self) -> String {
        match (&self.current, self.rooms.is_empty()) {
            (_, true) => "* you are in no room now; /join ROOM to talk".to_string(),
            (Some(c), false) => format!("* your rooms: {} (talking in {c})", self.room_list()),
            (None, false) => format!("* your rooms: {}; /room ROOM to talk", self.room_list()),
        }
    }

    /// Takes the server's list of your rooms (the ack of `join` and `leave`).
    fn set_rooms(&mut self, reply: &AckReply) {
        self.rooms = names(&reply.args).into_iter().collect();
        if self
            .current
            .as_ref()
            .is_some_and(|c| !self.rooms.contains(c))
        {
            self.current = self.rooms.iter().next().cloned();
        }
    }
}

thread_local! {
    /// The chat of the client on this thread (its loop thread): what the closures that
    /// another thread sends through the [`ClientHandle`] work on. They must be `Send`, and
    /// the state, shared with the listeners through an `Rc`, is not; so it stays here.
    static CHAT: RefCell<Option<Shared>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's chat, on the client's loop thread.
fn with_chat<T>(io: &mut ClientIo, f: impl FnOnce(&Shared, &mut ClientIo) -> T) -> T {
    // `connect` put it there, on this thread, before the loop ran a single closure.
    let chat = CHAT
        .with(|c| c.borrow().clone())
        .expect("the chat is set by connect");
    f(&chat, io)
}

/// What reading should do after a line.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Quit,
}

/// Does what `line` asks, on the loop thread.
fn handle_line(chat: &Shared, io: &mut ClientIo, line: &str) -> Flow {
    let say = chat.borrow().say.clone();
    match parse_command(line) {
        Command::Empty => {}
        Command::Quit => return Flow::Quit,
        Command::Help => say(
            "* commands: /join ROOM, /leave ROOM, /room ROOM, /who [ROOM], /quit; @name notifies name"
                .to_string(),
        ),
        Command::Say(text) => {
            let Some(room) = chat.borrow().current.clone() else {
                say("* you are in no room, so nobody would read that; /join ROOM first".to_string());
                return Flow::Go;
            };
            if io.state() == ClientState::Reconnecting {
                say("* offline: your message goes out when the connection is back".to_string());
            }
            let (c, shown) = (chat.clone(), text.clone());
            let args = vec![json!(room.clone()), json!(text)];
            let _ = io.emit_with_ack("chat message", args, vec![], ACK, move |_, r| {
                let c = c.borrow();
                match r {
                    Ok(_) if c.echo_own => (c.say)(format!("[{room}] {}: {shown}", c.me)),
                    Ok(_) => {}
                    Err(AckError::Timeout) => (c.say)(format!(
                        "* not delivered to {room} (no answer within {} s): {shown}",
                        ACK.as_secs()
                    )),
                    Err(AckError::Disconnected) => {
                        (c.say)(format!("* not delivered to {room} (disconnected): {shown}"))
                    }
                }
            });
        }
        Command::Join(room) => {
            if !valid_room(&room) {
                say(format!(
                    "* {room:?} is not a room name: 1 to 64 bytes, not starting with user:"
                ));
                return Flow::Go;
            }
            {
                let mut c = chat.borrow_mut();
                c.rooms.insert(room.clone());
                c.current = Some(room.clone());
            }
            let c = chat.clone();
            let _ = io.emit_with_ack("join", vec![json!(room)], vec![], ACK, move |_, r| {
                if let Ok(r) = r {
                    let mut c = c.borrow_mut();
                    c.set_rooms(&r);
                    (c.say)(c.rooms_line());
                }
            });
        }
        Command::Leave(room) => {
            if !chat.borrow().rooms.contains(&room) {
                let rooms = chat.borrow().room_list();
                say(format!("* you are not in {room} (your rooms: {rooms})"));
                return Flow::Go;
            }
            {
                let mut c = chat.borrow_mut();
                c.rooms.remove(&room);
                if c.current.as_deref() == Some(&room) {
                    c.current = c.rooms.iter().next().cloned();
                }
            }
            let c = chat.clone();
            let _ = io.emit_with_ack("leave", vec![json!(room)], vec![], ACK, move |_, r| {
                if let Ok(r) = r {
                    let mut c = c.borrow_mut();
                    c.set_rooms(&r);
                    (c.say)(c.rooms_line());
                }
            });
        }
        Command::Who(room) => {
            let Some(room) = room.or_else(|| chat.borrow().current.clone()) else {
                say("* /who ROOM: you are in no room".to_string());
                return Flow::Go;
            };
            let shown = room.clone();
            let _ = io.emit_with_ack("who", vec![json!(room)], vec![], ACK, move |_, r| {
                if let Ok(r) = r {
                    say(format!("* in {shown}: {}", names(&r.args).join(", ")));
                }
            });
        }
        Command::Switch(room) => {
            let mut c = chat.borrow_mut();
            if c.rooms.contains(&room) {
                c.current = Some(room.clone());
                say(format!("* now talking in {room}"));
            } else {
                say(format!(
                    "* you are not in {room}, so nobody there would read you; /join {room} first (your rooms: {})",
                    c.room_list()
                ));
            }
        }
    }
    Flow::Go
}

/// After a reconnection in a new session the server has put you back in the starting room
/// only: join the others again (and leave the start if you had left it), quietly.
fn rejoin(chat: &Shared, io: &mut ClientIo) {
    let (start, rooms) = {
        let c = chat.borrow();
        (c.start.clone(), c.rooms.clone())
    };
    let mut asks: Vec<(&str, String)> = rooms
        .iter()
        .filter(|r| **r != start)
        .map(|r| ("join", r.clone()))
        .collect();
    if !rooms.contains(&start) {
        asks.push(("leave", start));
    }
    let shown: Vec<&str> = rooms.iter().map(String::as_str).collect();
    (chat.borrow().say)(if shown.is_empty() {
        "* you are in no room; /join ROOM to talk".to_string()
    } else {
        format!("* back in {}", shown.join(", "))
    });
    for (verb, room) in asks {
        let c = chat.clone();
        let _ = io.emit_with_ack(verb, vec![json!(room)], vec![], ACK, move |_, r| {
            if let Ok(r) = r {
                c.borrow_mut().set_rooms(&r);
            }
        });
    }
}

/// The client ends. A script's lines are delivered even if the connection is not up yet
/// (`wait`): once everything sent before has been handled (the server answers in order, so
/// the answer to a last `who` is the fence), disconnect. A person who quits leaves at once:
/// what they typed went out before the DISCONNECT, or waits offline and is dropped.
fn leave(io: &mut ClientIo, wait: bool) {
    if !wait {
        io.disconnect();
        return;
    }
    let go = |io: &mut ClientIo| {
        let _ = io.emit_with_ack("who", vec![json!(DEFAULT_ROOM)], vec![], ACK, |io, _| {
            io.disconnect()
        });
    };
    match io.state() {
        ClientState::Connected => go(io),
        // What was typed waits in the offline buffer and goes out on `connect`; leave then.
        ClientState::Connecting | ClientState::Reconnecting => {
            let mut once = Some(go);
            io.once("connect", move |io, _| {
                if let Some(go) = once.take() {
                    go(io);
                }
            });
        }
        ClientState::Disconnected => {}
    }
}

/// `socklab chat`: a terminal client if stdin and stdout are terminals, else a line client
/// reading stdin. Returns when you leave or the connection ends; `Err` carries a refusal or
/// a network error.
pub fn run(addr: SocketAddr, name: &str, room: &str) -> Result<(), Box<dyn std::error::Error>> {
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        run_on_terminal(addr, name, room)
    } else {
        run_lines(addr, name, room, std::io::BufReader::new(std::io::stdin()))
    }
}

/// The line client: lines from `input` go to the room, events from the server are printed as
/// they arrive. Returns when the input ends (after the server has taken everything sent) or
/// the connection does.
pub fn run_lines(
    addr: SocketAddr,
    name: &str,
    room: &str,
    input: impl std::io::BufRead + Send + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    let say: Say = Rc::new(|line| println!("{line}"));
    let (mut client, _) = connect(addr, name, room, say, false)?;
    let handle = client.handle();
    std::thread::spawn(move || {
        for line in input.lines() {
            let Ok(line) = line else { break };
            let (tx, rx) = mpsc::channel();
            let sent = handle.run(move |io| {
                let _ = tx.send(with_chat(io, |chat, io| handle_line(chat, io, &line)));
            });
            // The answer only says whether to go on; the loop thread always sends it.
            if !sent || rx.recv() != Ok(Flow::Go) {
                break;
            }
        }
        handle.run(|io| leave(io, true));
    });
    finish(&mut client)
}

/// The terminal client (see the module's comment).
fn run_on_terminal(
    addr: SocketAddr,
    name: &str,
    room: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    // The screen needs the client's handle and the client needs the screen: the handle goes
    // through a slot filled right after both exist. A line typed before that (within
    // milliseconds of the start) waits for it.
    let slot: Arc<Mutex<Option<ClientHandle>>> = Arc::default();
    let (for_lines, for_done) = (slot.clone(), slot.clone());
    let on_line: terminal::OnLine = Box::new(move |line| {
        let handle = handle_in(&for_lines)?;
        let (tx, rx) = mpsc::channel();
        let sent = handle.run(move |io| {
            let _ = tx.send(with_chat(io, |chat, io| {
                let flow = handle_line(chat, io, &line);
                (flow, chat.borrow().prompt())
            }));
        });
        // The loop thread answers within a turn; a client that has ended does not.
        match rx.recv_timeout(ACK) {
            Ok((Flow::Go, prompt)) if sent => Some(prompt),
            _ => None,
        }
    });
    let done = Box::new(move || {
        if let Some(h) = handle_in(&for_done) {
            h.run(|io| leave(io, false));
        }
    });
    let first_prompt = prompt(Some(&start_room(room)), name);
    let screen = terminal::start(first_prompt, on_line, done)?;
    let printer = screen.clone();
    let say: Say = Rc::new(move |line| printer.print(line));
    let result = connect(addr, name, room, say, true).and_then(|(mut client, _)| {
        if let Ok(mut s) = slot.lock() {
            *s = Some(client.handle());
        }
        finish(&mut client)
    });
    // The editor may still be reading (the client was refused, or sent away): the terminal
    // goes back as it was before the process ends.
    screen.restore();
    result
}

/// The client's handle once `run_on_terminal` has put it in `slot` (`None` if that takes
/// longer than a moment: the client could not start).
fn handle_in(slot: &Mutex<Option<ClientHandle>>) -> Option<ClientHandle> {
    let deadline = std::time::Instant::now() + ACK;
    loop {
        if let Some(h) = slot.lock().ok()?.clone() {
            return Some(h);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The room the server will start you in (it takes `lobby` for a name it would refuse).
fn start_room(room: &str) -> String {
    if valid_room(room) {
        room.to_string()
    } else {
        DEFAULT_ROOM.to_string()
    }
}

/// Connects to the chat at `addr` as `name`, starting in `room`, with every listener set.
fn connect(
    addr: SocketAddr,
    name: &str,
    room: &str,
    say: Say,
    echo_own: bool,
) -> Result<(Client, Shared), Box<dyn std::error::Error>> {
    let mut opts = ClientOptions::new(addr);
    opts.namespace = NAMESPACE.to_string();
    opts.auth = Some(json!({"name": name, "room": room}));
    let mut client = Client::connect(opts)?;
    let start = start_room(room);
    let chat: Shared = Rc::new(RefCell::new(Chat {
        me: name.to_string(),
        start: start.clone(),
        rooms: BTreeSet::from([start.clone()]),
        current: Some(start),
        echo_own,
        say: say.clone(),
    }));
    CHAT.with(|c| *c.borrow_mut() = Some(chat.clone()));
    let io = client.io();
    status::narrate(
        io,
        addr,
        say.clone(),
        Catchup {
            fence: "who",
            counted: &["chat message", "notification"],
            noun: ("message", "messages"),
        },
    );
    let (c, first) = (chat.clone(), std::cell::Cell::new(true));
    io.on("connect", move |io, _| {
        if first.replace(false) {
            let c = c.borrow();
            let room = c.current.as_deref().unwrap_or("no room");
            (c.say)(format!(
                "connected as {} in {room} (type /help for commands)",
                c.me
            ));
        } else if !io.recovered() {
            rejoin(&c, io);
        }
    });
    let out = say.clone();
    io.on_any(move |_, ev| {
        if let Some(line) = render(ev) {
            out(line);
        }
    });
    io.on("disconnect", move |io, ev| {
        if io.state() == ClientState::Disconnected {
            let reason = ev.args.first().and_then(Value::as_str).unwrap_or("");
            say(format!("disconnected: {reason}"));
        }
    });
    Ok((client, chat))
}

/// Runs the client to its end and says why it ended, if a refusal did it.
fn finish(client: &mut Client) -> Result<(), Box<dyn std::error::Error>> {
    // Until the client has disconnected; then a moment for its loop to close what it has
    // (the DISCONNECT goes out first). The loop stops by itself once no connection is left;
    // the bound is for a connection attempt still under way when you quit, which nothing
    // would end.
    while !client.run_until(Duration::from_secs(3600), |io| {
        io.state() == ClientState::Disconnected
    })? {}
    client.run_until(Duration::from_secs(1), |_| false)?;
    let io = client.io();
    if io.disconnect_reason() == Some(crate::events::reasons::IO_SERVER_DISCONNECT) {
        if let Some(refusal) = io.connect_error() {
            return Err(format!("the server refused: {refusal}").into());
        }
    }
    Ok(())
}

/// `["a","b"]` as `a`, `b`.
fn names(args: &[Value]) -> Vec<String> {
    args.first()
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
