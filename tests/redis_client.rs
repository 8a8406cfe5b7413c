//! The Redis client on the loop (`transport::redis`) against a real `redis-server`, one of
//! each test's own: replies in order through a pipeline, binary-safe stream entries, an
//! error reply that leaves the connection working, a server killed mid-pipeline, and the
//! bounds.

mod common;

use std::time::{Duration, Instant};

use common::{RedisServer, WAIT};
use socklab::event_loop::{CloseReason, Config, ConnId, Ctx, EventLoop, Handler};
use socklab::sys;
use socklab::transport::redis::{RedisConn, RedisError, RedisEvent};
use socklab::wire::resp::{Limits, Reply};

/// The standalone shape: a handler that owns nothing but the connection and keeps what it
/// reports.
struct Client {
    redis: RedisConn<u32>,
    events: Vec<RedisEvent<u32>>,
}

impl Handler for Client {
    type Timer = ();
    type Message = ();

    fn connected(&mut self, ctx: &mut Ctx<()>, id: ConnId, result: sys::Result<()>) {
        assert!(self.redis.owns(id));
        self.redis.connected(ctx, result, &mut self.events);
    }

    fn data(&mut self, ctx: &mut Ctx<()>, id: ConnId, bytes: &[u8]) -> usize {
        assert!(self.redis.owns(id));
        self.redis.data(ctx, bytes, &mut self.events)
    }

    fn closed(&mut self, ctx: &mut Ctx<()>, id: ConnId, reason: CloseReason) {
        assert!(self.redis.owns(id));
        self.redis.closed(ctx, reason, &mut self.events);
    }
}

/// A connected client's loop (the connect itself awaited), or `None` when skipped.
fn connect(server: &RedisServer, limits: Limits, max_pending: usize) -> EventLoop<Client> {
    let client = Client {
        redis: RedisConn::new(server.addr, limits, max_pending),
        events: Vec::new(),
    };
    let mut el = EventLoop::new(client, Config::default()).expect("a loop");
    let (h, ctx) = el.parts();
    h.redis.connect(ctx, Some(WAIT)).expect("connect");
    run_until(&mut el, |c| !c.events.is_empty());
    assert_eq!(el.handler().events.remove(0), RedisEvent::Connected);
    el
}

/// Turns the loop until `done` holds (at most [`WAIT`]).
fn run_until(el: &mut EventLoop<Client>, done: impl Fn(&Client) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(el.handler()) {
        assert!(Instant::now() < deadline, "timed out");
        el.turn(Some(Duration::from_millis(50))).expect("a turn");
    }
}

/// Sends one command and returns its result, turning the loop until it comes.
fn call(el: &mut EventLoop<Client>, args: &[&[u8]]) -> Result<Reply, RedisError> {
    let (h, ctx) = el.parts();
    h.redis.command(ctx, args, 0)?;
    run_until(el, |c| !c.events.is_empty());
    match el.handler().events.remove(0) {
        RedisEvent::Reply(0, r) => r,
        other => panic!("expected the reply, got {other:?}"),
    }
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(b.to_vec())
}

#[test]
fn ping_set_get() {
    let Some(server) = RedisServer::start("ping_set_get") else {
        return;
    };
    let mut el = connect(&server, Limits::default(), 16);
    assert_eq!(call(&mut el, &[b"PING"]), Ok(Reply::Simple("PONG".into())));
    assert_eq!(
        call(&mut el, &[b"SET", b"k", b"v\r\n\0"]),
        Ok(Reply::Simple("OK".into()))
    );
    assert_eq!(call(&mut el, &[b"GET", b"k"]), Ok(bulk(b"v\r\n\0")));
    assert_eq!(call(&mut el, &[b"GET", b"missing"]), Ok(Reply::Nil));
}

#[test]
fn a_pipeline_of_a_thousand_incrs_comes_back_in_order() {
    let Some(server) = RedisServer::start("pipeline") else {
        return;
    };
    let mut el = connect(&server, Limits::default(), 1000);
    let (h, ctx) = el.parts();
    // All queued in one turn: they leave together, before any reply has come.
    for tag in 0..1000u32 {
        h.redis.command(ctx, ["INCR", "n"], tag).expect("queued");
    }
    assert_eq!(h.redis.pending(), 1000);
    run_until(&mut el, |c| c.events.len() == 1000);
    for (i, ev) in el.handler().events.drain(..).enumerate() {
        let i = i as u32;
        assert_eq!(
            ev,
            RedisEvent::Reply(i, Ok(Reply::Integer(i64::from(i) + 1)))
        );
    }
}

#[test]
fn xadd_and_xrange_round_trip_binary_values() {
    let Some(server) = RedisServer::start("streams") else {
        return;
    };
    let mut el = connect(&server, Limits::default(), 16);
    let value: Vec<u8> = (0..=255u8).collect();
    let id = match call(&mut el, &[b"XADD", b"s", b"*", b"data", &value]) {
        Ok(Reply::Bulk(id)) => id,
        other => panic!("XADD: {other:?}"),
    };
    let want = Reply::Array(vec![Reply::Array(vec![
        Reply::Bulk(id),
        Reply::Array(vec![bulk(b"data"), Reply::Bulk(value)]),
    ])]);
    assert_eq!(call(&mut el, &[b"XRANGE", b"s", b"-", b"+"]), Ok(want));
}

#[test]
fn an_error_reply_fails_one_command_and_the_connection_goes_on() {
    let Some(server) = RedisServer::start("error_reply") else {
        return;
    };
    let mut el = connect(&server, Limits::default(), 16);
    match call(&mut el, &[b"NOSUCHCOMMAND", b"x"]) {
        Err(RedisError::Server(msg)) => assert!(msg.starts_with("ERR unknown command"), "{msg}"),
        other => panic!("expected an error reply, got {other:?}"),
    }
    call(&mut el, &[b"SET", b"s", b"text"]).unwrap();
    match call(&mut el, &[b"INCR", b"s"]) {
        Err(RedisError::Server(msg)) => assert!(msg.starts_with("ERR"), "{msg}"),
        other => panic!("expected an error reply, got {other:?}"),
    }
    assert_eq!(call(&mut el, &[b"PING"]), Ok(Reply::Simple("PONG".into())));
}

#[test]
fn a_server_killed_mid_pipeline_fails_every_pending_command() {
    let Some(mut server) = RedisServer::start("killed") else {
        return;
    };
    let mut el = connect(&server, Limits::default(), 100);
    // A BLPOP on an empty list holds this connection (the reason a blocking read needs a
    // connection of its own), so the commands behind it are surely pending when it dies.
    let (h, ctx) = el.parts();
    h.redis.command(ctx, ["BLPOP", "nothing", "0"], 0).unwrap();
    for tag in 1..50 {
        h.redis.command(ctx, ["INCR", "n"], tag).unwrap();
    }
    el.turn(Some(Duration::from_millis(100))).unwrap();
    server.kill();
    run_until(&mut el, |c| {
        c.events.iter().any(|e| matches!(e, RedisEvent::Lost(_)))
    });
    let events = std::mem::take(&mut el.handler().events);
    assert_eq!(events.len(), 51, "{events:?}");
    for (tag, ev) in events[..50].iter().enumerate() {
        match ev {
            RedisEvent::Reply(t, Err(RedisError::Lost(_))) => assert_eq!(*t, tag as u32),
            other => panic!("expected a lost reply for {tag}, got {other:?}"),
        }
    }
    assert!(matches!(events[50], RedisEvent::Lost(_)));
    // The connection is gone: a new command is refused until the owner connects again.
    let (h, ctx) = el.parts();
    assert!(!h.redis.is_usable());
    assert_eq!(
        h.redis.command(ctx, ["PING"], 99),
        Err(RedisError::NotConnected)
    );
}

#[test]
fn bounds_refuse_commands_and_replies_past_them() {
    let Some(server) = RedisServer::start("bounds") else {
        return;
    };
    // The pending queue: the 4th command is refused, and nothing of it was sent.
    let mut el = connect(&server, Limits::default(), 3);
    let (h, ctx) = el.parts();
    for tag in 0..3 {
        h.redis.command(ctx, ["PING"], tag).unwrap();
    }
    assert_eq!(
        h.redis.command(ctx, ["PING"], 3),
        Err(RedisError::TooManyPending { max: 3 })
    );
    run_until(&mut el, |c| c.events.len() == 3);
    el.handler().events.clear();

    // The outbound buffer: a command larger than the loop's cap is refused whole.
    let big = vec![b'x'; Config::default().max_outbound + 1];
    let (h, ctx) = el.parts();
    assert!(matches!(
        h.redis.command(ctx, [&b"SET"[..], b"big", &big], 9),
        Err(RedisError::Send(_))
    ));
    assert_eq!(h.redis.pending(), 0);

    // A reply past the decoder's limit: the connection is dropped and the command fails.
    let mut el = connect(
        &server,
        Limits {
            max_bulk: 100,
            ..Limits::default()
        },
        16,
    );
    call(&mut el, &[b"SET", b"long", &[b'y'; 101]]).unwrap();
    match call(&mut el, &[b"GET", b"long"]) {
        Err(RedisError::Lost(why)) => assert!(why.contains("bulk string of 101"), "{why}"),
        other => panic!("expected the connection lost, got {other:?}"),
    }
    run_until(&mut el, |c| {
        c.events.iter().any(|e| matches!(e, RedisEvent::Lost(_)))
    });
}
