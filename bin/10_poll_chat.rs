//! Lesson 10: poll(2) over many descriptors: a chat room in one thread.
//!
//! Run it: `cargo run --bin 10_poll_chat -- --trace`, or `10_poll_chat serve` and a few
//! `nc 127.0.0.1 7010` in other terminals.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use socklab::blocking::{self, ListenOptions};
use socklab::lesson::{self, Endpoint, Role};
use socklab::sys::{self, Fd, PollFd, PollFlags};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about:
        "Lesson 10: one thread serves many clients by asking poll() which descriptors are ready. \
        Everything a client sends goes to every other client.\n\n\
        With no arguments three clients chat in one process. `serve` runs the room until Ctrl-C; \
        `nc 127.0.0.1 7010` joins it, and so does `client`, which sends stdin and prints what \
        the others say (default address 127.0.0.1:7010).",
    serve: "Run the chat room: relay what each client sends to all the others",
    client: "Join the room: send stdin, print what arrives, until both ends are done",
};

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<Endpoint, Endpoint>(7010, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(e)) => serve(e.addr),
        Some(Role::Client(e)) => client(e.addr),
    })
}

// ANCHOR: room
/// The chat room: the listener and the clients, and the array poll() reads.
struct Room {
    listener: Fd,
    clients: Vec<(Fd, SocketAddr)>,
}

impl Room {
    /// One poll(), then everything it reported: new clients, messages, departures.
    /// Returns how many descriptors were ready (0 when `timeout_ms` passed quietly).
    fn turn(&mut self, timeout_ms: i32) -> sys::Result<usize> {
        // Slot 0 is the listener, slot i + 1 is client i.
        let mut fds = vec![PollFd::new(&self.listener, PollFlags::IN)];
        fds.extend(
            self.clients
                .iter()
                .map(|(fd, _)| PollFd::new(fd, PollFlags::IN)),
        );
        let ready = sys::poll(&mut fds, timeout_ms)?;

        let mut gone = Vec::new();
        let mut buf = [0u8; 4096];
        for (i, pfd) in fds.iter().enumerate().skip(1) {
            if pfd.revents().is_empty() {
                continue;
            }
            // A reset (an error) counts as leaving, like end of file.
            let n = sys::read(&self.clients[i - 1].0, &mut buf).unwrap_or(0);
            if n == 0 {
                gone.push(i - 1);
                continue;
            }
            for (j, (other, _)) in self.clients.iter().enumerate() {
                // A blocking write: one client that stops reading stalls the room (lesson 12).
                if j != i - 1 && blocking::write_all(other, &buf[..n]).is_err() {
                    gone.push(j);
                }
            }
        }
        gone.sort_unstable();
        gone.dedup();
        for i in gone.into_iter().rev() {
            let (fd, peer) = self.clients.remove(i);
            println!("{peer} left");
            drop(fd);
        }
        if fds[0].revents().contains(PollFlags::IN) {
            let (fd, peer) = sys::accept(&self.listener, false)?;
            println!("{peer} joined");
            self.clients.push((fd, peer));
        }
        Ok(ready)
    }
}
// ANCHOR_END: room

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let (listener, addr) = blocking::listen_tcp("127.0.0.1:0".parse()?, ListenOptions::default())?;
    let mut room = Room {
        listener,
        clients: Vec::new(),
    };
    let names = ["alice", "bob", "carol"];
    let mut people = Vec::new();
    for _ in names {
        people.push(blocking::connect_tcp(addr)?);
        room.turn(1000)?; // poll says the listener is readable: accept
    }

    blocking::write_all(&people[0], b"alice: hi all\n")?;
    room.turn(1000)?;
    let mut buf = [0u8; 256];
    for (name, fd) in names.iter().zip(&people).skip(1) {
        let n = sys::read(fd, &mut buf)?;
        println!("{name} got \"{}\"", lesson::show(&buf[..n]));
    }

    let carol = people.pop().ok_or("carol is missing")?;
    drop(carol);
    room.turn(1000)?; // poll says carol's socket is readable: read returns 0
    blocking::write_all(&people[1], b"bob: bye carol\n")?;
    room.turn(1000)?;
    let n = sys::read(&people[0], &mut buf)?;
    println!("alice got \"{}\"", lesson::show(&buf[..n]));
    println!("one thread served three clients; poll() slept until something was ready");
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    // SO_REUSEADDR (lesson 06): a restarted server gets its port back at once.
    let (listener, local) = blocking::listen_tcp(addr, ListenOptions::reusable())?;
    lesson::listening(local);
    let mut room = Room {
        listener,
        clients: Vec::new(),
    };
    loop {
        room.turn(-1)?;
    }
}

// ANCHOR: client
/// A chat client is two waits at once, stdin and the socket: poll() again.
fn client(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    use std::io::Write;
    let fd = blocking::connect_tcp(addr)?;
    let stdin = std::io::stdin();
    let mut stdin_open = true;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let mut fds = vec![PollFd::new(&fd, PollFlags::IN)];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        sys::poll(&mut fds, -1)?;
        if !fds[0].revents().is_empty() {
            let n = sys::read(&fd, &mut buf)?;
            if n == 0 {
                return Ok(()); // the room closed
            }
            std::io::stdout().write_all(&buf[..n])?;
            std::io::stdout().flush()?;
        }
        if fds.len() > 1 && !fds[1].revents().is_empty() {
            // One read(2) of what poll said is there: a buffered line reader could keep a
            // second line in its buffer, where poll cannot see it. (A read of at least 8 KiB
            // goes straight past std's empty buffer to the descriptor.)
            let n = std::io::Read::read(&mut stdin.lock(), &mut buf)?;
            if n == 0 {
                stdin_open = false;
                sys::shutdown(&fd, std::net::Shutdown::Write)?;
            } else {
                blocking::write_all(&fd, &buf[..n])?;
            }
        }
    }
}
// ANCHOR_END: client
