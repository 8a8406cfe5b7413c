// The browser side of tests/browser.rs: Debian's Chromium, driven by puppeteer-core, runs one
// scenario against a socklab server; one line a thing seen.
//
//   node browser.js SCENARIO URL SHOTS   e.g.  node browser.js chat-websocket http://127.0.0.1:7100 target/browser/try
//
// Each page the scenario uses is written to SHOTS-PAGE.png at the end (also after a failure,
// as far as the page still answers), and each path printed as `screenshot PATH`.
//
// Lines: `browser Chrome/...` first, then `PAGE THING` for what a page saw (`ann connect
// /chat transport=websocket recovered=false`, `ben chat message [{"room":...}] offset`,
// `ann ack join [["kitchen","lobby"]]`), a few words of the driver's own (`said`, `ready for
// restart`) at the moments the test acts on, and `bye` at the end. The test reads them
// (tests/browser.rs says what each scenario checks) and acts from outside: a terminal client
// speaks, the server restarts. It talks back on stdin only where the driver cannot know
// when to stop (`done`).
//
// Every wait is bounded: the driver prints `fail ...` and exits 1 when something is wrong,
// `timeout` (exit 3) when the whole run takes longer than LIMIT_MS. Chromium talks to
// puppeteer over a pipe (`pipe: true`), so it exits with this process however that ends,
// even by SIGKILL; the test also kills its process group by id (it is printed).
"use strict";

const path = require("node:path");
const fs = require("node:fs");
const puppeteer = require("puppeteer-core");

const LIMIT_MS = 45000; // the whole run
const STEP_MS = 8000; // one wait (under the Rust side's WAIT of 10 s, so we speak first)
const RESTART_MS = 15000; // a disconnect, or a reconnection, around a server restart
const SHOT_MS = 5000; // one screenshot

// The official browser bundle, from the pinned socket.io-client.
const BUNDLE = path.join(__dirname, "node_modules/socket.io-client/dist/socket.io.min.js");

// The data-testid attributes of socklab's own pages (/chat, /scores). The pages are being
// written while this is: these names are this driver's side of the contract.
const TESTID = {
  name: "name-input",
  connect: "connect-button",
  text: "message-input",
  send: "send-button",
  room: "room-input",
  join: "join-button",
  message: "message", // one row a message: `[lobby] ada: hi`
  status: "status", // `connected`, `offline`, `reconnecting (attempt N)`
  score: "score", // one row a match
  watch: "watch-button", // one a match, with data-match="ID"
};
const byTestid = (id) => `[data-testid="${id}"]`;

const [scenario, url, shots] = process.argv.slice(2);
if (!scenario || !url || !shots) {
  process.stderr.write("usage: node browser.js SCENARIO URL SHOTS\n");
  process.exit(2);
}

function out(line) {
  process.stdout.write(line + "\n");
}

let browser = null; // set once launched; closed (or killed) on every way out
const tabs = [];

// Screenshots of every page (bounded each), then the browser closed; never throws.
async function wrapUp() {
  for (const tab of tabs) {
    const file = `${shots}-${tab.name}.png`;
    try {
      // A tab in the background may produce no frame to capture: bring each to the front.
      await bounded(tab.page.bringToFront(), `${tab.name} to the front`, SHOT_MS);
      await bounded(tab.page.screenshot({ path: file }), `screenshot of ${tab.name}`, SHOT_MS);
      out(`screenshot ${file}`);
    } catch (e) {
      out(`no screenshot of ${tab.name}: ${e.message}`);
    }
  }
  if (browser) {
    const proc = browser.process();
    try {
      await bounded(browser.close(), "browser close", SHOT_MS);
    } catch {
      if (proc) proc.kill("SIGKILL");
    }
  }
}

let ending = false;
async function fail(message) {
  if (ending) return new Promise(() => {}); // the first failure is on its way out
  ending = true;
  out(`fail ${message}`);
  await wrapUp();
  process.exit(1);
}

setTimeout(() => {
  out("timeout");
  // No screenshots here: what hangs may be the browser itself.
  if (browser && browser.process()) browser.process().kill("SIGKILL");
  process.exit(3);
}, LIMIT_MS).unref();

// `bounded(p, what, ms)`: `p`, or a rejection after `ms` (STEP_MS unless said).
const { bounded } = require("./common.js").within(STEP_MS);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Lines from stdin, one command each; `command(what, ms)` waits (bounded) for the next.
const command = require("./common.js").stdinCommands(bounded);

// One page, and every line it reported, in order.
class Tab {
  constructor(name, page) {
    this.name = name;
    this.page = page;
    this.lines = [];
    this.cursor = 0; // `see` looks from here on
    this.wakers = [];
  }

  push(line) {
    out(`${this.name} ${line}`);
    this.lines.push(line);
    this.wakers.splice(0).forEach((w) => w());
  }

  // The first line from `from` (default: after the last one `see` returned) that `want`
  // accepts; fails the run if none comes within `ms`. Skipped lines stay in `lines`.
  async see(what, want, { from = this.cursor, ms = STEP_MS } = {}) {
    const deadline = Date.now() + ms;
    for (let i = from; ; i++) {
      while (i >= this.lines.length) {
        const left = deadline - Date.now();
        if (left <= 0) return fail(`${this.name}: no ${what} within ${ms} ms`);
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, left);
          this.wakers.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      if (want(this.lines[i])) {
        this.cursor = i + 1;
        return this.lines[i];
      }
    }
  }

  // `except`: a console error expected (and so not reported).
  watchConsole(except = null) {
    this.page.on("console", (m) => {
      if (m.type() === "error" && m.text() !== except) this.push(`console error ${m.text()}`);
    });
    this.page.on("pageerror", (e) => this.push(`page error ${e.message}`));
  }

  // Emits with an ack (the page's socket) and returns the ack's line, `ack EVENT JSON`.
  async call(...args) {
    const line = await bounded(
      this.page.evaluate((a) => window.socklab.call(...a), args),
      `ack for ${args[0]}`,
    );
    if (!line.startsWith("ack ")) return fail(`${this.name}: ${line}`);
    return line;
  }
}

// What runs in a bundle page, after the bundle: `socklab.report` (a line to the driver and
// to the page's own log, so the screenshot shows what the page saw), `socklab.chat` (the
// official client on /chat, every event reported), `socklab.call` (an emit with an ack).
function bundleHelpers(stepMs) {
  const log = document.getElementById("log");
  const report = (line) => {
    log.textContent += line + "\n";
    window.socklabReport(line);
  };
  // Socket.IO 4.8 (and socklab) append the broadcast's offset as a last string argument;
  // the client keeps it for recovery. The chat's payloads are objects: a last string is it.
  const show = (args) => {
    const offset = args.length > 1 && typeof args[args.length - 1] === "string";
    return JSON.stringify(offset ? args.slice(0, -1) : args) + (offset ? " offset" : "");
  };
  let sock = null;
  window.socklab = {
    report,
    chat(opts) {
      sock = window.io(location.origin + "/chat", opts);
      sock.on("connect", () =>
        report(
          `connect /chat transport=${sock.io.engine.transport.name} recovered=${sock.recovered}`,
        ),
      );
      // Each connection has an engine of its own; its upgrade (polling to WebSocket) comes
      // after it opened, and after the CONNECT more often than not.
      sock.io.on("open", () =>
        sock.io.engine.once("upgrade", (t) => report(`upgrade ${t.name}`)),
      );
      sock.io.on("reconnect_attempt", (n) => report(`reconnect_attempt ${n}`));
      sock.on("connect_error", (e) => report(`connect_error ${e.message}`));
      sock.on("disconnect", (reason) => report(`disconnect ${reason}`));
      for (const ev of ["chat message", "system", "notification"]) {
        sock.on(ev, (...args) => report(`${ev} ${show(args)}`));
      }
    },
    call(event, ...args) {
      return new Promise((resolve) => {
        sock.timeout(stepMs).emit(event, ...args, (err, ...reply) => {
          const line = err
            ? `no ack for ${event}: ${err.message}`
            : `ack ${event} ${JSON.stringify(reply)}`;
          report(line);
          resolve(line);
        });
      });
    },
    transport() {
      report(`transport ${sock.io.engine.transport.name}`);
    },
    drop() {
      // What a network failure looks like to the client: the transport closes under it.
      sock.io.engine.close();
    },
  };
}

// A new page; its console errors and uncaught exceptions are lines too (from the start, or
// from `watchConsole()`).
async function newTab(name, { consoleErrors = true } = {}) {
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_MS);
  const tab = new Tab(name, page);
  tabs.push(tab);
  await page.exposeFunction("socklabReport", (line) => tab.push(line));
  if (consoleErrors) tab.watchConsole();
  return tab;
}

// A page on the server's origin with the official bundle in it. It has to come from the
// server itself: Chromium's Local Network Access checks block a WebSocket to 127.0.0.1 from
// a page that did not (a page made up by request interception counts as public, and
// about:blank too), and the bundle's polling requests must be same-origin (no CORS). The
// server has no such page: we load a path it does not know (a 404, which it will keep
// answering when its own pages land, unlike `/`) and write our own document over it.
async function bundleTab(name) {
  const tab = await newTab(name, { consoleErrors: false });
  const { page } = tab;
  const response = await page.goto(`${url}/socklab-browser-test/${name}`);
  if (!response) return fail(`${name}: no response for the blank page`);
  await page.setContent(
    `<!doctype html><meta charset="utf-8"><title>${name}</title><link rel="icon" href="data:,">` +
      `<style>body{font:14px monospace;margin:8px}pre{white-space:pre-wrap}</style>` +
      `<h3>${name}: socket.io-client ${scenario}</h3><pre id="log"></pre>`,
  );
  // Its 404 may still be reported (it was ours); any other error is a line.
  tab.watchConsole("Failed to load resource: the server responded with a status of 404 (Not Found)");
  await page.addScriptTag({ path: BUNDLE });
  await page.evaluate(bundleHelpers, STEP_MS);
  return tab;
}

// Connects `tab`'s page to /chat with `opts` (and its name as auth), and waits for it.
async function chat(tab, opts) {
  await tab.page.evaluate((o) => window.socklab.chat(o), { auth: { name: tab.name }, ...opts });
  await tab.see("connect", (l) => l.startsWith("connect /chat "));
}

// Whether `line` is a `chat message` from `from` with `text`, as a page reports it.
const message = (from, text) => (line) => {
  const m = /^chat message (\[.*\])( offset)?$/.exec(line);
  const msg = m && JSON.parse(m[1])[0];
  return Boolean(msg) && msg.from === from && msg.text === text;
};

// a, b, c: two pages and a terminal client (the test's, `socklab chat --name term --room
// kitchen`) chat in room kitchen over `transports` (undefined: the client's default,
// polling then WebSocket).
async function chatScenario(transports) {
  const opts = transports ? { transports } : {};
  const ann = await bundleTab("ann");
  const ben = await bundleTab("ben");
  for (const tab of [ann, ben]) {
    await chat(tab, opts);
    await tab.call("join", "kitchen");
  }
  await ann.call("chat message", "kitchen", "hello from ann");
  await ben.see("ann's message", message("ann", "hello from ann"));
  out("said"); // the test checks that the terminal got it too, then makes it speak
  await ann.see("term's message", message("term", "hello from term"));
  await ben.see("term's message", message("term", "hello from term"));
  if (!transports) {
    for (const tab of [ann, ben]) {
      await tab.see("upgrade", (l) => l === "upgrade websocket", { from: 0 });
    }
  }
  for (const tab of [ann, ben]) await tab.page.evaluate(() => window.socklab.transport());
  // One more round trip, on the transport the client ended up with.
  await ann.call("who", "kitchen");
}

const scenarios = {
  "chat-websocket": () => chatScenario(["websocket"]),
  "chat-default": () => chatScenario(undefined),
  "chat-polling": () => chatScenario(["polling"]),

  // d. Connection state recovery, then a server restart, over WebSocket. ann's transport
  // drops (engine.close()) and ben speaks meanwhile: ann comes back by herself, recovered,
  // with ben's message replayed, and still known by her name. Then the server restarts (the
  // test does it, after `ready for restart`): both pages reconnect by themselves, to a server
  // that cannot recover them, and chat again.
  async "recover-restart"() {
    const ann = await bundleTab("ann");
    const ben = await bundleTab("ben");
    // A fixed 2 s before ann's first attempt: ben's message certainly goes out while she is
    // away. Attempts after a restart: 2 s, 4 s, 5 s...
    await chat(ann, { transports: ["websocket"], reconnectionDelay: 2000, randomizationFactor: 0 });
    await chat(ben, { transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 500 });

    await ann.page.evaluate(() => window.socklab.drop());
    const away = ann.lines.length;
    await ann.see("disconnect", (l) => l.startsWith("disconnect "));
    await ben.call("chat message", "lobby", "while ann was away");
    await ann.see("recovered connect", (l) => l.startsWith("connect /chat "));
    await ann.see("the missed message", message("ben", "while ann was away"), { from: away });
    await ann.call("chat message", "lobby", "ann is back");
    await ben.see("ann's message", message("ann", "ann is back"));

    out("ready for restart");
    for (const tab of [ann, ben]) {
      await tab.see("disconnect", (l) => l.startsWith("disconnect "), { ms: RESTART_MS });
    }
    for (const tab of [ann, ben]) {
      await tab.see("reconnect", (l) => l.startsWith("connect /chat "), { ms: RESTART_MS });
    }
    await ann.call("chat message", "lobby", "after the restart");
    await ben.see("ann's message", message("ann", "after the restart"));
  },

  // e. socklab's own /chat page, two of them and the test's terminal client (`socklab chat
  // --name term`, in lobby), driven as a person would: type, click, read the rows.
  async "pages-chat"() {
    const ann = await pageTab("ann", "/chat");
    const ben = await pageTab("ben", "/chat");
    for (const tab of [ann, ben]) {
      await tab.page.bringToFront(); // a background tab may not get input events
      await tab.page.type(byTestid(TESTID.name), tab.name);
      await tab.page.click(byTestid(TESTID.connect));
      await tab.see("status connected", (l) => l === "status connected");
    }
    await say(ann, "hello from ann");
    await ben.see("ann's row", (l) => l === "message [lobby] ann: hello from ann");
    out("said"); // the test checks that the terminal got it too, then makes it speak
    for (const tab of [ann, ben]) {
      await tab.see("term's row", (l) => l === "message [lobby] term: hello from term");
    }
    for (const tab of [ann, ben]) {
      await tab.page.bringToFront();
      await tab.page.type(byTestid(TESTID.room), "kitchen");
      await tab.page.click(byTestid(TESTID.join));
    }
    // The page shows no acknowledgement of a join, and ben's join travels on another
    // connection than ann's message: give the joins a moment to reach the server.
    await sleep(300);
    await say(ann, "in the kitchen");
    await ben.see("ann's kitchen row", (l) => l === "message [kitchen] ann: in the kitchen");

    out("ready for restart");
    // The page says it is away: `offline` at once, `reconnecting (attempt N)` while it
    // tries (a restart quicker than the first retry may show only `offline`).
    for (const tab of [ann, ben]) {
      const away = /^status (offline|reconnecting \(attempt \d+\))$/;
      await tab.see("offline or reconnecting", (l) => away.test(l), { ms: RESTART_MS });
    }
    for (const tab of [ann, ben]) {
      await tab.see("connected again", (l) => l === "status connected", { ms: RESTART_MS });
    }
    await say(ann, "after the restart");
    await ben.see("ann's row", (l) => /^message \[[^\]]+\] ann: after the restart$/.test(l));
  },

  // e. socklab's /wire page watches ann's chat socket: ann's message shows there as a packet
  // the server received, and its ack as one it sent; clicking a row decodes it.
  async "pages-wire"() {
    const ann = await pageTab("ann", "/chat");
    await ann.page.bringToFront();
    await ann.page.type(byTestid(TESTID.name), ann.name);
    await ann.page.click(byTestid(TESTID.connect));
    await ann.see("status connected", (l) => l === "status connected");
    const wire = await newTab("wire");
    const response = await wire.page.goto(url + "/wire");
    wire.push(`page /wire ${response ? response.status() : "no response"}`);
    await wire.page.bringToFront();
    const chatRow = `${byTestid("socket")}`;
    await bounded(
      wire.page.waitForFunction(
        (sel) => [...document.querySelectorAll(sel)].some((li) => li.textContent.startsWith("/chat ")),
        {},
        chatRow,
      ),
      "ann's socket in the list",
    );
    await wire.page.evaluate((sel) => {
      const li = [...document.querySelectorAll(sel)].find((x) => x.textContent.startsWith("/chat "));
      li.querySelector('[data-testid="watch-button"]').click();
    }, chatRow);
    await bounded(
      wire.page.waitForFunction(() => document.querySelector('[data-testid="socket"][data-watched="true"]')),
      "the watch to take",
    );
    await say(ann, "hello wire");
    await ann.see("ann's own row", (l) => l === "message [lobby] ann: hello wire");
    await wire.page.bringToFront();
    const rows = await bounded(
      wire.page.waitForFunction(() => {
        const texts = (dir) =>
          [...document.querySelectorAll(`[data-testid="packet"][data-dir="${dir}"]`)].map((li) => li.textContent);
        const inn = texts("in").find((t) => t.includes('EVENT /chat') && t.includes('"chat message"'));
        const out = texts("out").find((t) => t.includes("ACK /chat"));
        return inn && out ? [inn, out] : null;
      }),
      "the message's packets on /wire",
    ).then((h) => h.jsonValue());
    out(`wire in ${rows[0].includes("websocket") ? "websocket" : "other"}`);
    out(`wire out ${rows[1].includes("websocket") ? "websocket" : "other"}`);
    await wire.page.evaluate(() => {
      const li = [...document.querySelectorAll('[data-testid="packet"][data-dir="in"]')].find((x) =>
        x.textContent.includes('"chat message"'),
      );
      li.click();
    });
    const decoded = await wire.page.$eval('[data-testid="decoded"]', (e) => e.textContent);
    out(`wire decoded ${decoded.includes("masking key") || decoded.includes("mask") ? "mask" : "no mask"}`);
  },

  // e. socklab's /scores page shows the feed's pushes: each new score row is a line, until
  // the test (which compares them with `socklab watch`) says `done`.
  async "pages-scores"() {
    const tab = await pageTab("scores", "/scores");
    await tab.see("status connected", (l) => l === "status connected");
    // Watch match 1, as a person would: the page lists the matches with a button each.
    const watch = `${byTestid(TESTID.watch)}[data-match="1"]`;
    await bounded(tab.page.waitForSelector(watch), "the watch button of match 1");
    await tab.page.click(watch);
    await tab.see("a score row", (l) => l.startsWith("score "));
    out("ready");
    const c = await command("done", LIMIT_MS);
    if (c !== "done") return fail(`unexpected command ${c}`);
  },
};

// Types `text` into a project page's message input and clicks send.
async function say(tab, text) {
  await tab.page.bringToFront();
  await tab.page.type(byTestid(TESTID.text), text);
  await tab.page.click(byTestid(TESTID.send));
}

// One of socklab's own pages. What a person would read is reported as it changes, by a
// loop in the page (it knows nothing of how the page is built, only its data-testid
// attributes): `status TEXT`, `message TEXT` for each new message row, `score TEXT` for each
// score row whose text changed.
async function pageTab(name, route) {
  const tab = await newTab(name);
  const response = await tab.page.goto(url + route);
  tab.push(`page ${route} ${response ? response.status() : "no response"}`);
  if (!response || !response.ok()) return fail(`${name}: ${route} answered ${response && response.status()}`);
  await tab.page.evaluate((ids) => {
    const texts = (id) =>
      [...document.querySelectorAll(`[data-testid="${id}"]`)].map((e) => e.textContent.trim());
    let status = null;
    let messages = 0;
    const scores = new Map();
    setInterval(() => {
      const now = texts(ids.status)[0];
      if (now !== undefined && now !== status) {
        status = now;
        window.socklabReport(`status ${now}`);
      }
      const rows = texts(ids.message);
      for (; messages < rows.length; messages++) window.socklabReport(`message ${rows[messages]}`);
      texts(ids.score).forEach((row, i) => {
        if (scores.get(i) !== row) {
          scores.set(i, row);
          window.socklabReport(`score ${row}`);
        }
      });
    }, 25);
  }, TESTID);
  return tab;
}

async function main() {
  const run = scenarios[scenario];
  if (!run) return fail(`unknown scenario ${scenario}`);
  fs.mkdirSync(path.dirname(shots), { recursive: true });
  browser = await bounded(
    puppeteer.launch({
      executablePath: process.env.SOCKLAB_CHROMIUM || "/usr/bin/chromium",
      headless: true,
      // CDP over a pipe, not a WebSocket: Chromium exits when this process does.
      pipe: true,
      // --no-sandbox: the tests run as root in CI, and Chromium refuses to start its sandbox
      // as root. Safe here: it only loads pages of the test's own server on 127.0.0.1.
      args: ["--no-sandbox", "--window-size=800,600"],
      defaultViewport: { width: 800, height: 600 },
    }),
    "browser launch",
  );
  out(`browser ${await browser.version()} pgid=${browser.process().pid}`);
  await run();
  if (ending) return;
  ending = true;
  await wrapUp();
  out("bye");
  process.exit(0);
}

main().catch((e) => fail(e.message));
