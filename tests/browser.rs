//! Tests in a real browser (issue 13): Debian's Chromium, driven by puppeteer-core through
//! `tests/interop/browser.js`, against the real `socklab serve` on 127.0.0.1 port 0.
//!
//! Each test starts its own server (the binary, as a learner runs it), sometimes a
//! `socklab chat` terminal client in the same room, then one scenario of the driver, and
//! checks the lines the driver printed (what each page saw) and what the terminal client and
//! the server printed. The moments chosen from outside (the terminal speaks, the server
//! restarts) follow the driver's lines `said` and `ready for restart`.
//!
//! | test | the pages | checks |
//! |---|---|---|
//! | a. `bundle_websocket_chat` | 2 × the official bundle, WebSocket only | join with ack; a message reaches the other page and the terminal; the terminal's reaches both |
//! | b. `bundle_polling_then_upgrade_chat` | the same, default transports | a.'s checks; polling first, then the upgrade to WebSocket |
//! | c. `bundle_polling_only_chat` | the same, `transports: ["polling"]` | a.'s checks, on polling all along |
//! | d. `bundle_recovery_and_restart` | 2 × the bundle, WebSocket only | a dropped transport comes back `recovered` with the missed message; after a restart on the same port both reconnect and chat |
//! | e. `pages_chat` | 2 × socklab's `/chat` | as a., typed and clicked; a room; after a restart the status line goes `offline` (or `reconnecting (attempt N)`), then `connected`, and chat works |
//! | e. `pages_scores` | socklab's `/scores` | shows the score `socklab watch` was just pushed |
//! | e. `pages_wire` | socklab's `/chat` and `/wire` | the inspector lists and watches the chat's socket; its message shows as a packet in (masked, decoded) and the ack as a packet out |
//!
//! Every test writes a screenshot of each page to `target/browser/TEST-PAGE.png` and prints
//! the path (`cargo test --test browser -- --nocapture` shows them, and the driver's lines).
//! Without Chromium or puppeteer-core a test prints `SKIPPED: ...` and passes, unless
//! `SOCKLAB_REQUIRE_BROWSER=1` (CI). Nothing waits without a limit: the driver bounds every
//! wait and its whole run, the test's reads are bounded by `WAIT`; the server, the terminal
//! client, the driver and Chromium are killed on drop, by their ids. Loopback only.

mod common;
use common::{Browser, Exited, Input, Proc};

use std::net::SocketAddr;

const SOCKLAB: &str = env!("CARGO_BIN_EXE_socklab");

/// `socklab serve` on `addr` (port 0: a free one), with `extra` arguments; waits for its
/// `listening on` line.
fn serve(addr: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["serve", "--addr", addr];
    args.extend_from_slice(extra);
    let mut server = Proc::spawn(SOCKLAB, &args, Input::Null);
    let addr = server.listening_on();
    (server, addr)
}

/// Stops a server with SIGTERM, as Ctrl-C would, and checks that it stopped cleanly.
fn stop(server: Proc) -> Exited {
    server.sigterm();
    let out = server.finish();
    assert!(
        out.code() == Some(0) && out.has_line("stopped") && !out.stderr.contains("panicked"),
        "{}",
        out.describe()
    );
    out
}

/// `socklab chat --name term` in `room`, connected; its stdin is what it says.
fn terminal(addr: SocketAddr, room: &str) -> Proc {
    let addr = addr.to_string();
    let mut term = Proc::spawn(
        SOCKLAB,
        &["chat", "--name", "term", "--room", room, "--addr", &addr],
        Input::Open,
    );
    term.expect_line("`connected as term`", |l| {
        l.starts_with("connected as term")
    });
    term
}

/// The index of the first line from `from` on that is exactly `want`; panics with all of
/// them if there is none.
fn line_after(out: &Exited, from: usize, want: &str) -> usize {
    out.stdout[from..]
        .iter()
        .position(|l| l == want)
        .map(|i| from + i)
        .unwrap_or_else(|| panic!("no line {want:?} after line {from}\n{}", out.describe()))
}

/// The page's lines that report a console error or an uncaught exception.
fn errors(out: &Exited) -> Vec<&String> {
    out.stdout
        .iter()
        .filter(|l| l.contains(" console error ") || l.contains(" page error "))
        .collect()
}

/// The transport the official client uses in a scenario.
#[derive(Clone, Copy, PartialEq)]
enum Transports {
    WebSocket,
    /// The client's default: polling, then the upgrade to WebSocket.
    Default,
    Polling,
}

/// a, b, c: pages ann and ben (the official bundle) and the terminal client chat in room
/// kitchen.
fn bundle_chat(test: &str, transports: Transports) {
    let scenario = match transports {
        Transports::WebSocket => "chat-websocket",
        Transports::Default => "chat-default",
        Transports::Polling => "chat-polling",
    };
    let (server, addr) = serve("127.0.0.1:0", &[]);
    let mut term = terminal(addr, "kitchen");
    let Some(mut browser) = Browser::start(test, scenario, addr) else {
        return;
    };
    browser.expect("said");
    term.expect_line("with ann's message", |l| {
        l == "[kitchen] ann: hello from ann"
    });
    term.write_stdin("hello from term\n");
    let out = browser.finish();

    // With the default transports the CONNECT's answer may come before or after the
    // upgrade (the client upgrades as soon as its probe is answered).
    let first: &[&str] = match transports {
        Transports::WebSocket => &["websocket"],
        Transports::Polling => &["polling"],
        Transports::Default => &["polling", "websocket"],
    };
    let last = if transports == Transports::Polling {
        "polling"
    } else {
        "websocket"
    };
    for page in ["ann", "ben"] {
        let connected = |t: &&str| format!("{page} connect /chat transport={t} recovered=false");
        let connect = out
            .stdout
            .iter()
            .position(|l| first.iter().any(|t| *l == connected(t)))
            .unwrap_or_else(|| panic!("{page} never connected over {first:?}\n{}", out.describe()));
        let joined = line_after(
            &out,
            connect,
            &format!("{page} ack join [[\"kitchen\",\"lobby\"]]"),
        );
        let from_term = format!(
            "{page} chat message [{{\"from\":\"term\",\"room\":\"kitchen\",\"text\":\"hello from term\"}}] offset"
        );
        line_after(&out, joined, &from_term);
        line_after(&out, joined, &format!("{page} transport {last}"));
        let upgraded = out
            .stdout
            .iter()
            .any(|l| l.starts_with(&format!("{page} upgrade")));
        assert_eq!(
            upgraded,
            transports == Transports::Default,
            "{page}: an upgrade only with the default transports\n{}",
            out.describe()
        );
    }
    line_after(&out, 0, "ann ack chat message [true]");
    line_after(
        &out,
        0,
        "ben chat message [{\"from\":\"ann\",\"room\":\"kitchen\",\"text\":\"hello from ann\"}] offset",
    );
    line_after(&out, 0, "ann ack who [[\"ann\",\"ben\",\"term\"]]");
    assert!(errors(&out).is_empty(), "{}", out.describe());

    term.close_stdin();
    let term = term.finish();
    assert_eq!(term.code(), Some(0), "{}", term.describe());
    stop(server);
}

#[test]
fn bundle_websocket_chat() {
    bundle_chat("bundle_websocket_chat", Transports::WebSocket);
}

#[test]
fn bundle_polling_then_upgrade_chat() {
    bundle_chat("bundle_polling_then_upgrade_chat", Transports::Default);
}

#[test]
fn bundle_polling_only_chat() {
    bundle_chat("bundle_polling_only_chat", Transports::Polling);
}

/// d. Connection state recovery after a dropped transport, then a server restart on the
/// same port, with the official bundle over WebSocket (see the driver's `recover-restart`).
#[test]
fn bundle_recovery_and_restart() {
    let test = "bundle_recovery_and_restart";
    let (server, addr) = serve("127.0.0.1:0", &[]);
    let Some(mut browser) = Browser::start(test, "recover-restart", addr) else {
        return;
    };
    browser.expect("ready for restart");
    stop(server);
    // The same port: the listener sets SO_REUSEADDR, so TIME_WAIT does not stand in the way.
    let (server, again) = serve(&addr.to_string(), &[]);
    assert_eq!(again, addr);
    let out = browser.finish();

    // The drop: ann's client closed its transport ("forced close"); ben spoke meanwhile.
    let away = line_after(&out, 0, "ann disconnect forced close");
    let back = line_after(
        &out,
        away,
        "ann connect /chat transport=websocket recovered=true",
    );
    let missed =
        "ann chat message [{\"from\":\"ben\",\"room\":\"lobby\",\"text\":\"while ann was away\"}] offset";
    assert!(
        line_after(&out, away, missed) > back,
        "the missed message is replayed after the CONNECT\n{}",
        out.describe()
    );
    // She is still ann to the server: the chat's name table knows the recovered socket.
    line_after(
        &out,
        back,
        "ben chat message [{\"from\":\"ann\",\"room\":\"lobby\",\"text\":\"ann is back\"}] offset",
    );

    // The restart: the server said goodbye (a close, so the clients reconnect), and the new
    // one cannot recover anybody.
    let restart = line_after(&out, back, "ready for restart");
    for page in ["ann", "ben"] {
        let gone = line_after(&out, restart, &format!("{page} disconnect transport close"));
        line_after(
            &out,
            gone,
            &format!("{page} connect /chat transport=websocket recovered=false"),
        );
    }
    line_after(
        &out,
        restart,
        "ben chat message [{\"from\":\"ann\",\"room\":\"lobby\",\"text\":\"after the restart\"}] offset",
    );
    // While the server was away, the browser's failed WebSocket connections are logged;
    // anything else is a fault.
    let unexpected: Vec<_> = errors(&out)
        .into_iter()
        .filter(|l| !l.contains("net::ERR_CONNECTION_REFUSED"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}\n{}", out.describe());
    stop(server);
}

/// e. socklab's own `/chat` page: two of them and the terminal client in lobby, then a room,
/// then a server restart (see the driver's `pages-chat`).
#[test]
fn pages_chat() {
    let test = "pages_chat";
    let (server, addr) = serve("127.0.0.1:0", &[]);
    let mut term = terminal(addr, "lobby");
    let Some(mut browser) = Browser::start(test, "pages-chat", addr) else {
        return;
    };
    browser.expect("said");
    term.expect_line("with ann's message", |l| l == "[lobby] ann: hello from ann");
    term.write_stdin("hello from term\n");
    browser.expect("ann message [lobby] term: hello from term");
    browser.expect("ready for restart");
    term.close_stdin();
    let term = term.finish();
    assert_eq!(term.code(), Some(0), "{}", term.describe());
    stop(server);
    let (server, again) = serve(&addr.to_string(), &[]);
    assert_eq!(again, addr);
    let out = browser.finish();

    for page in ["ann", "ben"] {
        line_after(&out, 0, &format!("{page} page /chat 200"));
        let on = line_after(&out, 0, &format!("{page} status connected"));
        line_after(
            &out,
            on,
            &format!("{page} message [lobby] term: hello from term"),
        );
    }
    line_after(&out, 0, "ben message [lobby] ann: hello from ann");
    let restart = line_after(&out, 0, "ready for restart");
    for page in ["ann", "ben"] {
        // Away: `offline` at once, `reconnecting (attempt N)` while it retries (a restart
        // quicker than the first retry shows only `offline`).
        let offline = format!("{page} status offline");
        let retrying = format!("{page} status reconnecting (attempt ");
        let retrying = out.stdout[restart..]
            .iter()
            .position(|l| *l == offline || l.starts_with(&retrying))
            .unwrap_or_else(|| panic!("{page} never showed it was away\n{}", out.describe()));
        line_after(
            &out,
            restart + retrying,
            &format!("{page} status connected"),
        );
    }
    // The style's rule for every page: no console errors, but for the browser's own log of
    // the connections refused while the server was away.
    let unexpected: Vec<_> = errors(&out)
        .into_iter()
        .filter(|l| !l.contains("net::ERR_CONNECTION_REFUSED"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}\n{}", out.describe());
    stop(server);
}

/// What a `socklab watch` line says: `match 1: India 12/0 (2.3 ov) v Australia, last
/// ball: 1` gives ("India", "12/0", "2.3").
fn watched(line: &str) -> (String, String, String) {
    let parsed = (|| {
        let (_, rest) = line.split_once(": ")?;
        let (side, rest) = rest.split_once(" (")?;
        let (team, score) = side.rsplit_once(' ')?;
        let (overs, _) = rest.split_once(" ov)")?;
        Some((team.to_string(), score.to_string(), overs.to_string()))
    })();
    parsed.unwrap_or_else(|| panic!("not a score line of socklab watch: {line:?}"))
}

/// e. socklab's own `/scores` page shows what the feed pushes: the score `socklab watch`
/// received appears in a score row too (as the page's row changes are lines of the driver).
#[test]
fn pages_scores() {
    let test = "pages_scores";
    // A ball every 200 ms: match 1 changes every 0.6 s or so.
    let (server, addr) = serve("127.0.0.1:0", &["--interval-ms", "200"]);
    let Some(mut browser) = Browser::start(test, "pages-scores", addr) else {
        return;
    };
    browser.expect("ready");
    let watch = Proc::spawn(
        SOCKLAB,
        &[
            "watch",
            "--match",
            "1",
            "--count",
            "1",
            "--addr",
            &addr.to_string(),
        ],
        Input::Null,
    )
    .finish();
    assert_eq!(watch.code(), Some(0), "{}", watch.describe());
    let pushed = watch
        .stdout
        .iter()
        .rfind(|l| l.starts_with("match 1: "))
        .unwrap_or_else(|| panic!("no score\n{}", watch.describe()));
    let (team, score, overs) = watched(pushed);
    // The page writes a score as `socklab watch` does: team, runs/wickets, overs.
    browser.expect_line(&format!("a score row with {pushed:?}"), |l| {
        l.starts_with("scores score ")
            && l.contains(&team)
            && l.contains(&score)
            && l.contains(&overs)
    });
    browser.write_stdin("done\n");
    let out = browser.finish();
    line_after(&out, 0, "scores page /scores 200");
    assert!(errors(&out).is_empty(), "{}", out.describe());
    stop(server);
}

/// e. socklab's own `/wire` page: it lists ann's chat socket, watches it, and shows ann's
/// message as a packet the server received over her WebSocket (masked, decoded with its
/// key) and its ack as one the server sent.
#[test]
fn pages_wire() {
    let test = "pages_wire";
    let (server, addr) = serve("127.0.0.1:0", &["--matches", "0"]);
    let Some(browser) = Browser::start(test, "pages-wire", addr) else {
        return;
    };
    let out = browser.finish();
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    line_after(&out, 0, "wire page /wire 200");
    line_after(&out, 0, "wire in websocket");
    line_after(&out, 0, "wire out websocket");
    line_after(&out, 0, "wire decoded mask");
    assert!(errors(&out).is_empty(), "{}", out.describe());
    stop(server);
}
