//! Lesson 15: rooms and broadcasts.
//!
//! Run it: `cargo run --bin 15_rooms -- --trace`, or `15_rooms serve` and a few
//! `15_rooms client --name ada --room news`.

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use socklab::event_loop::{turn_together_until, Turn};
use socklab::events::{Client, ClientOptions, Io, Server, ServerConfig};
use socklab::lesson::{self, Endpoint, Role};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 15: a room is a named set of sockets on the server. Broadcasts pick their \
        recipients by room: one room, a union of rooms (each socket once), all but the sender, \
        all but a room. The server encodes each broadcast once and queues the same bytes to \
        every recipient.\n\n\
        With no arguments three clients join rooms and the server broadcasts four ways. `serve` \
        runs the room server; `client` joins the given rooms, sends each line of stdin to \
        everyone in them but itself, and prints what arrives (default address 127.0.0.1:7015).",
    serve:
        "Run the room server: `join`, `leave`, and `say` (to the sender's rooms, not the sender)",
    client: "Join rooms, send stdin lines to them, print what arrives",
};

#[derive(Args)]
struct ClientArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Your name, shown to the others
    #[arg(long, default_value = "guest")]
    name: String,
    /// A room to join (repeat for several)
    #[arg(long = "room", default_value = "lobby")]
    rooms: Vec<String>,
}

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, ClientArgs>(7015, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(c)) => client(c.endpoint.addr, &c.name, &c.rooms),
    })
}

// ANCHOR: server
fn install(io: &mut Io) {
    io.on_connection("/", |io, sid| {
        io.on(sid, "join", |io, ev| {
            if let Some(room) = ev.args.first().and_then(Value::as_str) {
                io.join(&ev.socket, room);
            }
            io.ack(ev, vec![json!(io.rooms_of(&ev.socket).len())]);
        });
        io.on(sid, "leave", |io, ev| {
            if let Some(room) = ev.args.first().and_then(Value::as_str) {
                io.leave(&ev.socket, room);
            }
        });
        // `sync` only answers: a client waits for it to know everything before was handled.
        io.on(sid, "sync", |io, ev| io.ack(ev, vec![]));
        // `say` goes to every room the sender is in (a union: each socket once), not back
        // to the sender.
        io.on(sid, "say", |io, ev| {
            let rooms = io.rooms_of(&ev.socket);
            let mut b = io.broadcast("/").except_socket(&ev.socket);
            for room in rooms.iter().filter(|r| r.as_str() != &*ev.socket) {
                b = b.to(room);
            }
            let _ = b.emit("said", ev.args.clone());
            io.ack(ev, vec![]);
        });
    });
}
// ANCHOR_END: server

/// A client that records what it receives.
fn person(
    addr: SocketAddr,
    name: &str,
    inbox: &Rc<RefCell<Vec<String>>>,
) -> Result<Client, Box<dyn Error>> {
    let mut client = Client::connect(ClientOptions::new(addr))?;
    let (inbox, name) = (inbox.clone(), name.to_string());
    client.io().on_any(move |_, ev| {
        inbox
            .borrow_mut()
            .push(format!("{name} got {} {}", ev.name, json!(ev.args)));
    });
    Ok(client)
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let config = ServerConfig {
        id_seed: Some(15),
        ..ServerConfig::default()
    };
    let mut server = Server::new(config)?;
    let addr = server.listen("127.0.0.1:0".parse()?)?;
    install(server.io());

    let inbox: Rc<RefCell<Vec<String>>> = Rc::default();
    let names = ["alice", "bob", "carol"];
    let mut people = Vec::new();
    for name in names {
        people.push(person(addr, name, &inbox)?);
    }
    // alice: news; bob: news and sport; carol: sport.
    let plan: [&[&str]; 3] = [&["news"], &["news", "sport"], &["sport"]];
    let joined = Rc::new(Cell::new(0));
    for (p, rooms) in people.iter_mut().zip(plan) {
        for room in rooms {
            let joined = joined.clone();
            p.io().emit_with_ack(
                "join",
                vec![json!(room)],
                vec![],
                Duration::from_secs(5),
                move |_, _| joined.set(joined.get() + 1),
            )?;
        }
    }
    run_until(&mut server, &mut people, || joined.get() == 4)?;
    let ids: Vec<String> = people
        .iter_mut()
        .map(|p| p.io().id().unwrap_or("").to_string())
        .collect();
    println!("alice is in news; bob in news and sport; carol in sport");

    let step = |title: &str,
                server: &mut Server,
                people: &mut Vec<Client>,
                send: &dyn Fn(&mut Io) -> usize|
     -> Result<(), Box<dyn Error>> {
        let n = send(server.io());
        run_until(server, people, || inbox.borrow().len() >= n)?;
        println!("{title}: queued to {n}");
        for line in inbox.borrow_mut().drain(..) {
            println!("  {line}");
        }
        Ok(())
    };
    step("to(news)", &mut server, &mut people, &|io| {
        io.broadcast("/")
            .to("news")
            .emit("headline", vec![json!("rain later")])
            .unwrap_or(0)
    })?;
    step(
        "to(news).to(sport), a union",
        &mut server,
        &mut people,
        &|io| {
            io.broadcast("/")
                .to("news")
                .to("sport")
                .emit("flash", vec![json!("1-0")])
                .unwrap_or(0)
        },
    )?;
    let alice = ids[0].clone();
    step(
        "everyone but alice (alice's broadcast)",
        &mut server,
        &mut people,
        &|io| {
            io.broadcast_from(&alice)
                .emit("hello", vec![json!("from alice")])
                .unwrap_or(0)
        },
    )?;
    step("everyone except(sport)", &mut server, &mut people, &|io| {
        io.broadcast("/")
            .except("sport")
            .emit("quiet", vec![json!("no sport fans")])
            .unwrap_or(0)
    })?;
    let stats = server.io().stats().clone();
    println!(
        "{} broadcasts, {} deliveries; each broadcast encoded once",
        stats.broadcasts, stats.events_out
    );
    Ok(())
}
// ANCHOR_END: demo

/// Runs the server and the clients until `done` (at most 5 s): one `poll` sleeps for all
/// the loops until one has an event or a timer due (see `event_loop::turn_together`).
fn run_until(
    server: &mut Server,
    people: &mut [Client],
    done: impl FnMut() -> bool,
) -> Result<(), Box<dyn Error>> {
    let mut loops: Vec<&mut dyn Turn> = vec![server];
    for p in people.iter_mut() {
        loops.push(p);
    }
    turn_together_until(&mut loops, Duration::from_secs(5), done)?;
    Ok(())
}

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    lesson::serve_events(ServerConfig::default(), addr, install)
}

fn client(addr: SocketAddr, name: &str, rooms: &[String]) -> Result<(), Box<dyn Error>> {
    use std::io::BufRead;
    let mut client = Client::connect(ClientOptions::new(addr))?;
    let io = client.io();
    io.on("said", |_, ev| {
        let from = ev.args.first().and_then(Value::as_str).unwrap_or("?");
        let text = ev.args.get(1).and_then(Value::as_str).unwrap_or("");
        println!("{from}: {text}");
    });
    for room in rooms {
        io.emit("join", vec![json!(room)])?;
    }
    let handle = client.handle();
    let name = name.to_string();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let (name, line) = (name.clone(), line.clone());
            if !handle.run(move |io| {
                let _ = io.emit("say", vec![json!(name), json!(line)]);
            }) {
                return;
            }
        }
        // Leave once the server has handled everything sent before.
        handle.run(|io| {
            let _ = io.emit_with_ack("sync", vec![], vec![], Duration::from_secs(5), |io, _| {
                io.disconnect()
            });
        });
    });
    client.run()?;
    if let Some(e) = client.io().connect_error() {
        return Err(e.to_string().into());
    }
    Ok(())
}
