//! Lesson 24 (`24_cluster`) runs as its page says: two nodes on a Redis it starts itself,
//! printing what `docs/src/output/24.txt` recorded (ports numbered in order, lines marked
//! `varies` masked); without `redis-server` it says what to install and stops, so that
//! `make tour` goes on.

mod common;

use std::process::Command;

use common::{run, RedisServer};

const LESSON: &str = env!("CARGO_BIN_EXE_24_cluster");

#[test]
fn lesson_24_prints_what_the_book_shows() {
    // Only to skip (or fail under SOCKLAB_REQUIRE_REDIS=1) where redis-server is missing:
    // the lesson starts a Redis of its own.
    let Some(redis) = RedisServer::start("lesson_24") else {
        return;
    };
    drop(redis);
    common::assert_prints_recorded_output(LESSON, "24");
}

#[test]
fn lesson_24_without_redis_says_what_to_install_and_ends_well() {
    let out = Command::new(LESSON)
        .env("PATH", "/nonexistent")
        .output()
        .expect("the lesson runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("redis-server is not installed")
            && text.contains("apt-get install redis-server"),
        "{text}"
    );
}

#[test]
fn lesson_24_help_shows_its_default_address_and_redis() {
    for side in ["serve", "client"] {
        let out = run(LESSON, &[side, "--help"], None);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        let text = out.stdout_text();
        assert!(text.contains("[default: 127.0.0.1:7024]"), "{text}");
    }
    let serve = run(LESSON, &["serve", "--help"], None).stdout_text();
    assert!(
        serve.contains("[default: redis://127.0.0.1:6379]"),
        "{serve}"
    );
    let bad = run(LESSON, &["serve", "--redis", "127.0.0.1:6379"], None);
    assert_eq!(bad.code(), Some(2), "{}", bad.describe());
    assert!(
        bad.stderr.contains("expected redis://HOST:PORT"),
        "{}",
        bad.describe()
    );
}
