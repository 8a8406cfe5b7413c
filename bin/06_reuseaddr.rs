//! Lesson 06: TIME_WAIT, EADDRINUSE on restart, and SO_REUSEADDR.
//!
//! Run it: `cargo run --bin 06_reuseaddr -- --trace`, or restart `06_reuseaddr serve` after a
//! client came by, with and without `--reuseaddr`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;
use socklab::blocking::{self, ListenOptions};
use socklab::lesson::{self, Endpoint, Role};
use socklab::{procnet, sys};

/// What `--help` says.
const HELP: lesson::Help = lesson::Help {
    about: "Lesson 06: a server that closes first leaves its connections in TIME_WAIT, and they keep its \
        port busy: restarting it fails with EADDRINUSE unless SO_REUSEADDR is set, on Linux by the \
        first listener too.\n\n\
        With no arguments it restarts a server twice, without and with SO_REUSEADDR. `serve` \
        greets and closes every client (default address 127.0.0.1:7006); stop it after a client \
        came by and start it again at once to see EADDRINUSE.",
    serve: "Listen; greet and close every connection (so the server side goes to TIME_WAIT)",
    client: "Connect and print the greeting",
};

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Set SO_REUSEADDR before bind()
    #[arg(long)]
    reuseaddr: bool,
}

const GREETING: &[u8] = b"hello from socklab lesson 06\n";

fn main() -> ExitCode {
    let cli = lesson::parse_sides::<ServeArgs, Endpoint>(7006, HELP);
    lesson::run(cli.trace, || match cli.role {
        None => demo(),
        Some(Role::Serve(s)) => serve(s.endpoint.addr, s.reuseaddr),
        Some(Role::Client(e)) => blocking::fetch(e.addr, &mut std::io::stdout()),
    })
}

// ANCHOR: round
/// Runs a server for one client, closing first, then stops it and starts it again.
/// `first` and `second` say whether each listener sets SO_REUSEADDR.
fn restart(first: bool, second: bool) -> Result<(), Box<dyn Error>> {
    let opts = ListenOptions {
        reuseaddr: first,
        ..ListenOptions::default()
    };
    let (listener, addr) = blocking::listen_tcp("127.0.0.1:0".parse()?, opts)?;
    let client = blocking::connect_tcp(addr)?;
    let (conn, _) = sys::accept(&listener, false)?;
    blocking::write_all(&conn, GREETING)?;
    conn.close()?; // the server closes first: its end goes to TIME_WAIT
    blocking::read_to_end(&client, 64)?;
    client.close()?;
    listener.close()?;
    for row in procnet::rows_for(addr) {
        println!("  {} {} -> {}", row.state, row.local, row.remote);
    }

    println!("restarting the server on {addr} ...");
    let opts = ListenOptions {
        reuseaddr: second,
        ..ListenOptions::default()
    };
    match blocking::listen_tcp(addr, opts) {
        Ok(_) => println!("  restarted"),
        Err(e) => println!("  {e}"),
    }
    Ok(())
}
// ANCHOR_END: round

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    println!("round 1: no SO_REUSEADDR");
    restart(false, false)?;
    println!("round 2: SO_REUSEADDR on the new listener only");
    restart(false, true)?;
    println!("round 3: SO_REUSEADDR on both listeners");
    restart(true, true)?;
    Ok(())
}
// ANCHOR_END: demo

fn serve(addr: SocketAddr, reuseaddr: bool) -> Result<(), Box<dyn Error>> {
    let opts = ListenOptions {
        reuseaddr,
        ..ListenOptions::default()
    };
    let (listener, local) = blocking::listen_tcp(addr, opts)?;
    lesson::listening(local);
    blocking::serve_forever(&listener, |conn, peer| {
        println!("greeted {peer}");
        blocking::write_all(&conn, GREETING)?;
        conn.close()
    })?;
    Ok(())
}
