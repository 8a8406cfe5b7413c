//! A private session id (`pid`) is a bearer secret: a CONNECT that presents it gets the
//! session back. These tests play the attacker of issue 9: socket ids used to come from a
//! SplitMix64 generator, which is invertible, so from one socket id a client saw (its own)
//! the generator's state could be worked out and the *next* client's `pid` predicted; a
//! CONNECT with that `pid` took the victim's session and cut the victim off.
//!
//! The attack is run for real, twice: against a server given a demo seed (which still uses
//! SplitMix64, for recorded lessons), where it must succeed, which proves the attack code
//! works, and against a default server, whose ids come from the operating system's
//! generator, where it must fail and leave the victim connected.

mod common;
use common::{any_port, raw_connect, read_packet};

use std::io::ErrorKind;
use std::time::Duration;

use serde_json::{json, Value};
use socklab::events::{RunningServer, ServerConfig};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
const M1: u64 = 0xBF58_476D_1CE4_E5B9;
const M2: u64 = 0x94D0_49BB_1331_11EB;
const LOW60: u64 = (1 << 60) - 1;

/// SplitMix64's output function for the state `x`.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(M1);
    z = (z ^ (z >> 27)).wrapping_mul(M2);
    z ^ (z >> 31)
}

/// The inverse of `y = x ^ (x >> k)`.
fn unshift(y: u64, k: u32) -> u64 {
    let mut x = y;
    for _ in 0..64 / k + 1 {
        x = y ^ (x >> k);
    }
    x
}

/// The inverse of an odd number modulo 2^64 (Newton's iteration doubles the good bits).
fn inverse(c: u64) -> u64 {
    let mut inv = c;
    for _ in 0..6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(c.wrapping_mul(inv)));
    }
    inv
}

/// The state that produced output `out`.
fn unmix(out: u64) -> u64 {
    let z = unshift(out, 31).wrapping_mul(inverse(M2));
    let z = unshift(z, 27).wrapping_mul(inverse(M1));
    unshift(z, 30)
}

/// The low 60 bits of the two outputs a 20-character id was made of.
fn id_bits(id: &str) -> [u64; 2] {
    let mut bits = [0u64; 2];
    for (i, c) in id.bytes().enumerate() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("an id character") as u64;
        bits[i / 10] |= v << ((i % 10) * 6);
    }
    bits
}

fn id_of(a: u64, b: u64) -> String {
    (0..20)
        .map(|i| {
            let word = [a, b][i / 10] >> ((i % 10) * 6);
            ALPHABET[(word & 63) as usize] as char
        })
        .collect()
}

/// The attacker's guesses for the next client's `pid`, from the attacker's own socket id:
/// each of the 16 values of the 4 bits an id does not show gives a state; a state whose next
/// output matches the id's second half is the generator's, and the two outputs after it are
/// the next `pid`. A random id matches none (or, by chance, a few wrong ones).
fn predict_next_pid(sid: &str) -> Vec<String> {
    let [a, b] = id_bits(sid);
    (0..16u64)
        .map(|high| unmix(a | (high << 60)))
        .filter(|state| mix(state.wrapping_add(GAMMA)) & LOW60 == b)
        .map(|state| {
            let next = |n: u64| mix(state.wrapping_add(GAMMA.wrapping_mul(n)));
            id_of(next(2), next(3))
        })
        .collect()
}

fn start(config: ServerConfig) -> RunningServer {
    RunningServer::start(config, any_port(), |_| {}).expect("a server on 127.0.0.1")
}

/// What the attack achieved.
struct Outcome {
    /// The guesses were the victim's real `pid`.
    predicted: bool,
    /// Some guess got the victim's session.
    took_session: bool,
    victim_connected: bool,
}

/// The attacker connects and reads its own socket id; the victim connects; the attacker
/// presents each predicted `pid` in a CONNECT of its own.
fn attack(server: &RunningServer) -> Outcome {
    let (_attacker, reply) = raw_connect(server.addr, None);
    let guesses = predict_next_pid(reply["sid"].as_str().expect("a sid"));
    let (mut victim, reply) = raw_connect(server.addr, None);
    let victim_sid = reply["sid"].as_str().expect("a sid").to_string();
    let predicted = guesses.iter().any(|g| reply["pid"] == json!(g));
    let mut took_session = false;
    let mut kept = Vec::new();
    for pid in guesses.iter().chain(["A".repeat(20)].iter()) {
        let (stream, reply) = raw_connect(server.addr, Some(json!({ "pid": pid, "offset": 0 })));
        took_session |= reply["recovered"] == Value::Bool(true)
            || reply["sid"].as_str() == Some(victim_sid.as_str());
        kept.push(stream);
    }
    // A replaced socket is sent its DISCONNECT before the newcomer's CONNECT reply, in the
    // same write round: by now it has been sent, if it was.
    victim
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("SO_RCVTIMEO");
    let victim_connected = match read_packet(&mut victim) {
        Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        Ok(_) => false, // a DISCONNECT, or end of file
    };
    Outcome {
        predicted,
        took_session,
        victim_connected,
    }
}

/// The attack code is real: against predictable (seeded) ids it predicts the next `pid` and
/// takes the session.
#[test]
fn the_attack_works_against_predictable_demo_ids() {
    let server = start(ServerConfig {
        id_seed: Some(7),
        ..ServerConfig::default()
    });
    let out = attack(&server);
    assert!(
        out.predicted,
        "the seeded generator was recovered from one id"
    );
    assert!(out.took_session, "and the victim's session was taken");
    assert!(!out.victim_connected, "the victim was cut off");
    server.stop().expect("the server stops cleanly");
}

/// Against the default server, twenty times: no guess is the victim's `pid`, no CONNECT
/// gets its session, and the victim stays connected.
#[test]
fn the_attack_fails_against_ids_from_the_operating_system() {
    let server = start(ServerConfig::default());
    for round in 0..20 {
        let out = attack(&server);
        assert!(
            !out.predicted,
            "round {round}: the victim's pid was predicted"
        );
        assert!(!out.took_session, "round {round}: the session was taken");
        assert!(
            out.victim_connected,
            "round {round}: the victim was cut off"
        );
    }
    server.stop().expect("the server stops cleanly");
}

/// Ids from the operating system: 20 characters of the URL-safe alphabet (120 bits), all
/// different, and each character position takes many values (not a counter, not a constant).
#[test]
fn session_ids_are_120_random_bits() {
    let server = start(ServerConfig::default());
    let mut pids = Vec::new();
    for _ in 0..200 {
        let (_s, reply) = raw_connect(server.addr, None);
        let pid = reply["pid"].as_str().expect("a pid").to_string();
        assert_eq!(pid.len(), 20);
        assert!(pid.bytes().all(|c| ALPHABET.contains(&c)), "{pid}");
        pids.push(pid);
    }
    let mut unique = pids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), pids.len(), "every pid differs");
    for pos in 0..20 {
        let mut seen: Vec<u8> = pids.iter().map(|p| p.as_bytes()[pos]).collect();
        seen.sort();
        seen.dedup();
        // 200 draws from 64 values: about 61 different ones; fewer than 40 is not random.
        assert!(
            seen.len() >= 40,
            "position {pos} takes {} values",
            seen.len()
        );
    }
    server.stop().expect("the server stops cleanly");
}
