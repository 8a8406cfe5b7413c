//! Lesson 01: bind, listen, getsockname; port 0; the backlog.
//!
//! Run it: `cargo run --bin 01_listen -- --trace`, or `01_listen serve` and look with `ss -ltn`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;
use socklab::blocking::{self, ListenOptions};
use socklab::lesson::{self, Endpoint, Role};
use socklab::{procnet, sys};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about:
        "Lesson 01: bind() an address, listen() on it, ask getsockname() which port port 0 became, \
        and watch the kernel queue connections that nobody accepted.\n\n\
        With no arguments it runs the whole demonstration. `serve` listens until you press Enter \
        (look with `ss -ltn`); `client` connects to it and waits too (default 127.0.0.1:7001).",
    serve: "Listen (never accept) until Enter is pressed or stdin closes",
    client: "Connect, print both ends of the connection, wait for Enter",
};

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Length of the accept queue passed to listen()
    #[arg(long, default_value_t = 128)]
    backlog: i32,
}

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<ServeArgs, Endpoint>(7001, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(s)) => serve(s.endpoint.addr, s.backlog),
        Some(Role::Client(e)) => client(e.addr),
    })
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    let opts = ListenOptions {
        backlog: 4,
        ..ListenOptions::default()
    };
    let (listener, addr) = blocking::listen_tcp("127.0.0.1:0".parse()?, opts)?;
    println!("bound to port 0; getsockname() says the kernel picked {addr}");
    println!("listening on {addr}");
    show_table(addr);

    let first = blocking::connect_tcp(addr)?;
    let second = blocking::connect_tcp(addr)?;
    println!("two clients connected, and nobody called accept():");
    show_table(addr);
    println!("Recv-Q of a LISTEN socket counts the connections waiting for accept(); Linux queues up to backlog + 1");
    drop((first, second, listener));
    Ok(())
}
// ANCHOR_END: demo

/// Prints what the kernel's table (/proc/net/tcp, what `ss` reads) says about `port`.
fn show_table(addr: SocketAddr) {
    let rows = procnet::rows_for(addr);
    for row in rows.iter().filter(|r| r.state == "LISTEN") {
        println!("  {} {} Recv-Q={}", row.state, row.local, row.rx_queue);
    }
    let established = rows.iter().filter(|r| r.state == "ESTAB").count();
    println!(
        "  ESTAB rows on the server's side: {established} (finished handshakes, not yet accepted)"
    );
}

fn serve(addr: SocketAddr, backlog: i32) -> Result<(), Box<dyn Error>> {
    let opts = ListenOptions {
        backlog,
        ..ListenOptions::default()
    };
    let (_listener, local) = blocking::listen_tcp(addr, opts)?;
    lesson::listening(local);
    lesson::wait_for_enter("try `ss -ltn` in another terminal");
    Ok(())
}

fn client(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let fd = blocking::connect_tcp(addr)?;
    let local = sys::getsockname(&fd)?;
    let peer = sys::getpeername(&fd)?;
    println!("connected from {local} to {peer}, though the server never called accept()");
    lesson::wait_for_enter("try `ss -tn` in another terminal");
    Ok(())
}
