//! Lesson 00: a socket is a descriptor, and a descriptor is a small integer.
//!
//! Run it: `cargo run --bin 00_socket -- --trace`

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use socklab::lesson;
use socklab::sys::{self, Family};

/// Lesson 00: socket() and close(). A socket is a small integer, and Rust ignores SIGPIPE
/// before main.
///
/// With no arguments it opens and closes a few sockets and tells what the kernel handed back.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    trace: lesson::Trace,
}

fn main() -> ExitCode {
    let cli: Cli = lesson::parse(7000);
    lesson::run(cli.trace, demo)
}

// ANCHOR: demo
fn demo() -> Result<(), Box<dyn Error>> {
    // Rust's runtime changed one thing before main: SIGPIPE (lesson 07).
    let sigpipe = sys::signal::sigpipe_disposition();
    println!("before main, Rust's runtime set SIGPIPE to {sigpipe}");

    let a = sys::socket(Family::Inet, false)?;
    println!(
        "socket() returned {}: 0, 1 and 2 are stdin, stdout and stderr",
        a.raw()
    );
    println!("/proc/self/fd/{} -> {}", a.raw(), fd_link(a.raw()));

    let b = sys::socket(Family::Inet, false)?;
    println!("a second socket() returned {}", b.raw());

    let first = a.raw();
    a.close()?;
    println!("closed {first}; its number is free again");

    let c = sys::socket(Family::Inet, false)?;
    println!(
        "a third socket() returned {}: the kernel hands out the lowest free number",
        c.raw()
    );
    println!("none of them has an address or has sent a packet: they exist only in the kernel");
    println!(
        "returning from main drops {} and then {}; each drop calls close()",
        c.raw(),
        b.raw()
    );
    Ok(())
}
// ANCHOR_END: demo

/// What the kernel says descriptor `fd` is: `socket:[inode]` for a socket.
fn fd_link(fd: i32) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}
