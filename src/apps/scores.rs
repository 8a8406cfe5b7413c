//! Live scores: simulated cricket matches pushed to watchers as events.
//!
//! Namespace `/scores`; every match has a room `match:ID`. A watcher emits `watch` with the
//! match id (ack: the current score) and then receives `score` events for that match only:
//! the server pushes, nobody refreshes. The feed runs on a thread of its own and reaches the
//! loop through a [`ServerHandle`], as a real feed (a socket to a data provider, a timer)
//! would.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Value};

pub use super::feed::Feed;
use crate::events::{Io, ServerHandle};

pub const NAMESPACE: &str = "/scores";

const TEAMS: [&str; 8] = [
    "India",
    "Australia",
    "England",
    "New Zealand",
    "South Africa",
    "Pakistan",
    "Sri Lanka",
    "West Indies",
];

/// The room of match `id`.
pub fn room(id: u32) -> String {
    format!("match:{id}")
}

/// One simulated match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub id: u32,
    pub batting: String,
    pub bowling: String,
    pub runs: u32,
    pub wickets: u32,
    pub balls: u32,
    pub last_ball: String,
}

impl Match {
    pub fn new(id: u32) -> Match {
        let n = TEAMS.len() as u32;
        Match {
            id,
            batting: TEAMS[((id * 2) % n) as usize].to_string(),
            bowling: TEAMS[((id * 2 + 1) % n) as usize].to_string(),
            runs: 0,
            wickets: 0,
            balls: 0,
            last_ball: "-".to_string(),
        }
    }

    /// Overs as cricket writes them: 12.3 is twelve overs and three balls.
    pub fn overs(&self) -> String {
        format!("{}.{}", self.balls / 6, self.balls % 6)
    }

    /// One ball, from a random number: a dot, runs, a boundary or a wicket. An innings ends
    /// at 10 wickets or 20 overs, and a new one starts with the sides swapped.
    pub fn bowl(&mut self, r: u64) {
        if self.wickets >= 10 || self.balls >= 120 {
            std::mem::swap(&mut self.batting, &mut self.bowling);
            self.runs = 0;
            self.wickets = 0;
            self.balls = 0;
        }
        self.balls += 1;
        let outcome = match r % 20 {
            0..=6 => "0",
            7..=12 => "1",
            13..=14 => "2",
            15 => "3",
            16..=17 => "4",
            18 => "6",
            _ => "W",
        };
        match outcome {
            "W" => self.wickets += 1,
            n => self.runs += n.parse::<u32>().unwrap_or(0),
        }
        self.last_ball = outcome.to_string();
    }

    pub fn to_json(&self) -> Value {
        json!({
            "match": self.id,
            "batting": self.batting,
            "bowling": self.bowling,
            "runs": self.runs,
            "wickets": self.wickets,
            "overs": self.overs(),
            "last_ball": self.last_ball,
        })
    }
}

/// How `socklab watch` prints a `score` event.
pub fn render(v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    format!(
        "match {}: {} {}/{} ({} ov) v {}, last ball: {}",
        n("match"),
        s("batting"),
        n("runs"),
        n("wickets"),
        s("overs"),
        s("bowling"),
        s("last_ball")
    )
}

/// Registers the scores namespace; `matches` is shared with the feed.
pub fn install(io: &mut Io, count: u32) {
    let table: Rc<RefCell<HashMap<u32, Value>>> = Rc::new(RefCell::new(
        (1..=count)
            .map(|id| (id, Match::new(id).to_json()))
            .collect(),
    ));
    let for_watch = table.clone();
    io.on_connection(NAMESPACE, move |io, sid| {
        let table = for_watch.clone();
        io.on(sid, "watch", move |io, ev| {
            let id = ev.args.first().and_then(Value::as_u64).unwrap_or(0) as u32;
            let current = table.borrow().get(&id).cloned();
            match current {
                Some(score) => {
                    io.join(&ev.socket, &room(id));
                    io.ack(ev, vec![json!(true), score]);
                }
                None => io.ack(ev, vec![json!(false), json!(format!("no match {id}"))]),
            }
        });
        let table = for_watch.clone();
        io.on(sid, "matches", move |io, ev| {
            let mut ids: Vec<u32> = table.borrow().keys().copied().collect();
            ids.sort_unstable();
            io.ack(ev, vec![json!(ids)]);
        });
    });
    // The feed's updates arrive as closures on the loop thread and keep this table current.
    io.insert_data(ScoreTable(table));
}

/// The current score of every match, kept on the loop thread (in [`Io`]'s data).
struct ScoreTable(Rc<RefCell<HashMap<u32, Value>>>);

// ANCHOR: feed
/// Runs the feed on a new thread: every `interval` one ball is bowled in one match and the
/// new score is pushed to that match's room. Stops at once on [`Feed::stop`], or when the
/// server is gone.
pub fn start_feed(handle: ServerHandle, count: u32, interval: Duration, seed: u64) -> Feed {
    let mut matches: Vec<Match> = (1..=count).map(Match::new).collect();
    let mut state = seed | 1;
    Feed::every(interval, move || {
        if matches.is_empty() {
            return false;
        }
        // xorshift64: a reproducible stream of balls for a given seed.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let m = &mut matches[(state % count as u64) as usize];
        m.bowl(state >> 8);
        let (id, score) = (m.id, m.to_json());
        let pushed = handle.run(move |io| {
            if let Some(ScoreTable(t)) = io.data::<ScoreTable>() {
                t.borrow_mut().insert(id, score.clone());
            }
            // Local: every `socklab serve` simulates the same matches for its own clients;
            // in a cluster (`--redis`) the other nodes' copies would come twice.
            let _ = io
                .broadcast(NAMESPACE)
                .to(&room(id))
                .local()
                .emit("score", vec![score]);
        });
        pushed.is_ok()
    })
}
// ANCHOR_END: feed

/// The client behind `socklab watch`: follows match `id` and prints each pushed score;
/// stops after `count` updates if given.
pub fn watch(
    addr: std::net::SocketAddr,
    id: u32,
    count: Option<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    use crate::events::{Client, ClientOptions};
    use std::cell::Cell;

    let mut opts = ClientOptions::new(addr);
    opts.namespace = NAMESPACE.to_string();
    let mut client = Client::connect(opts)?;
    let refused: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    let io = client.io();
    let say: super::status::Say = Rc::new(|line| println!("{line}"));
    super::status::narrate(
        io,
        addr,
        say,
        super::status::Catchup {
            fence: "matches",
            counted: &["score"],
            noun: ("score update", "score updates"),
        },
    );
    let why = refused.clone();
    io.on("connect", move |io, _| {
        // A recovered session is still in the match's room: the missed scores follow. A
        // new one (the first, or after a restart) asks to watch, and hears the score now.
        if io.recovered() {
            return;
        }
        let why = why.clone();
        let _ = io.emit_with_ack(
            "watch",
            vec![json!(id)],
            vec![],
            Duration::from_secs(10),
            move |io, r| match r {
                Ok(r) if r.args.first() == Some(&json!(true)) => {
                    println!(
                        "watching match {id}; now {}",
                        r.args.get(1).map(render).unwrap_or_default()
                    );
                }
                Ok(r) => {
                    *why.borrow_mut() = Some(
                        r.args
                            .get(1)
                            .and_then(Value::as_str)
                            .unwrap_or("refused")
                            .to_string(),
                    );
                    io.disconnect();
                }
                Err(e) => {
                    *why.borrow_mut() = Some(e.to_string());
                    io.disconnect();
                }
            },
        );
    });
    let seen = Rc::new(Cell::new(0u64));
    io.on("score", move |io, ev| {
        if let Some(v) = ev.args.first() {
            println!("{}", render(v));
        }
        seen.set(seen.get() + 1);
        if count.is_some_and(|c| seen.get() >= c) {
            io.disconnect();
        }
    });
    client.run()?;
    if let Some(e) = client.io().connect_error() {
        return Err(format!("could not connect: {e}").into());
    }
    if let Some(e) = refused.borrow().as_ref() {
        return Err(e.clone().into());
    }
    if count.is_none()
        || client.io().disconnect_reason() != Some(crate::events::reasons::IO_CLIENT_DISCONNECT)
    {
        if let Some(r) = client.io().disconnect_reason() {
            println!("disconnected: {r}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_innings_adds_up() {
        let mut m = Match::new(1);
        for r in 0..20u64 {
            m.bowl(r);
        }
        // One of each outcome of r % 20: 7 dots, 6 singles, 2 twos, a three, 2 fours, a six,
        // a wicket.
        assert_eq!(
            (m.runs, m.wickets, m.overs()),
            (6 + 4 + 3 + 8 + 6, 1, "3.2".to_string())
        );
    }
}
