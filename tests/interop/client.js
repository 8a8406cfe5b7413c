// socket.io-client 4.8.4 against socklab's server: one scenario a run, one line a thing seen.
//
//   node client.js SCENARIO URL [TRANSPORTS]   e.g.  node client.js ack http://127.0.0.1:7100
//
// TRANSPORTS is socket.io-client's `transports` option, comma-separated: `websocket` (the
// default here), `polling`, or `polling,websocket` (the client's own default: long-polling
// first, then the upgrade).
//
// tests/interop.rs starts a server with the handlers each scenario needs, runs this script,
// reads what it prints and checks what the server saw. Lines are plain words, then JSON:
// `connect /chat ok sid=...`, `ack ["hi",{"n":1}]`, `disconnect io server disconnect`.
// Binary values print as `<bytes N HEX>` (HEX only up to 16 bytes), so a line stays short.
//
// The test drives the moments chosen from outside (a second client speaks, a broadcast while
// this client is away, the end) through stdin, one command a line: `say`, `drop`, `done`
// (and, for tests/cluster_node.rs, the `member` scenario's chat commands and the `move`
// scenario's `cut` and `to URL2`).
// A command sent early waits in a queue, so the test needs no handshake before it writes
// one; it waits for the lines that show the state it wants instead. Every wait is bounded:
// the script prints `fail ...` and exits 1 when something is wrong, and `timeout` (exit 3)
// when the whole run takes longer than LIMIT_MS, whatever it was waiting for.
"use strict";

const { io } = require("socket.io-client");

const LIMIT_MS = 45000; // the whole run (a backstop: every wait is also bounded by STEP_MS)
const STEP_MS = 8000; // one wait (under the Rust side's WAIT of 10 s, so we speak first)
// `bounded(p, what)`: `p`, or a failure after STEP_MS; `next(emitter, event)`: the next
// `event`, its arguments as an array, as bounded (tests/interop/common.js).
const common = require("./common.js");
const { bounded, next } = common.within(STEP_MS);
const { stdinCommands } = common;

const [scenario, url, transportList] = process.argv.slice(2);
const transports = (transportList || "websocket").split(",");
if (!scenario || !url) {
  process.stderr.write("usage: node client.js SCENARIO URL [TRANSPORTS]\n");
  process.exit(2);
}

function out(line) {
  process.stdout.write(line + "\n");
}

function fail(message) {
  out(`fail ${message}`);
  process.exit(1);
}

setTimeout(() => {
  out("timeout");
  process.exit(3);
}, LIMIT_MS);

// JSON, with binary values shown as `<bytes N HEX>` (the bytes themselves are compared
// where they arrive: by this script, or by the server).
function show(value) {
  return JSON.stringify(value, (_, v) => {
    if (v && v.type === "Buffer" && Array.isArray(v.data)) v = Buffer.from(v.data);
    if (Buffer.isBuffer(v) || v instanceof ArrayBuffer) {
      const b = Buffer.from(v);
      return `<bytes ${b.length}${b.length <= 16 ? " " + b.toString("hex") : ""}>`;
    }
    return v;
  });
}

// The same bytes tests/interop.rs makes: a 32-bit LCG's high bytes, so the data has no short
// period that a shifted copy could match by accident.
function pattern(len, seed) {
  const b = Buffer.alloc(len);
  let x = seed >>> 0;
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = (x >>> 16) & 0xff;
  }
  return b;
}
const SMALL = Buffer.from([0, 1, 2, 127, 128, 253, 254, 255]);
const BIG = pattern(100000, 7);

// The broadcast offset: Socket.IO 4.8 (and socklab) append it to a broadcast's arguments as
// a last string, which the client keeps for connection state recovery. Returns the
// arguments without it, and whether it was there.
function splitOffset(args, expectOffset) {
  const last = args[args.length - 1];
  if (expectOffset && typeof last === "string") return [args.slice(0, -1), "string"];
  return [args, "none"];
}

// Lines from stdin, one command each; `command(what)` waits (bounded) for the next.
const command = stdinCommands(bounded);

// A socket of namespace `ns` over `transports`; `extra` are more client options. Each connect
// prints `connect NS ok sid=SID` from the listener itself: an event that came in the same
// read as the CONNECT (a replayed broadcast) prints after it, as it happened.
function open(ns, extra = {}) {
  const s = io(url + ns, { transports, reconnection: false, ...extra });
  s.on("connect", () => out(`connect ${ns} ok sid=${s.id}`));
  return s;
}

// Waits for `socket` to connect; a connect_error fails the run.
async function connected(socket, ns) {
  if (socket.connected) return;
  const result = await bounded(
    new Promise((resolve) => {
      socket.once("connect", () => resolve(null));
      socket.once("connect_error", (e) => resolve(e));
    }),
    `connect to ${ns}`,
  );
  if (result) fail(`connect_error ${ns} ${result.message}`);
}

// Emits with an ack and a timeout; resolves with the ack's arguments.
function call(socket, ...args) {
  return new Promise((resolve) => {
    socket.timeout(STEP_MS).emit(...args, (err, ...reply) => {
      if (err) fail(`no ack for ${args[0]}: ${err.message}`);
      resolve(reply);
    });
  });
}

// Waits for the test's `done`, then closes everything and exits 0.
async function finish(...sockets) {
  const c = await command("done");
  if (c !== "done") fail(`unexpected command ${c}`);
  sockets.forEach((s) => s.disconnect());
  out("bye");
  process.exit(0);
}

const scenarios = {
  // a. `/` without auth and `/chat` with auth, multiplexed on one connection (the client's
  // default for one URL).
  async connect() {
    const root = open("/");
    await connected(root, "/");
    const chat = open("/chat", { auth: { name: "nodey" } });
    await connected(chat, "/chat");
    await finish(root, chat);
  },

  // b. Client-to-server acks: the server's echo comes back, argument for argument.
  async ack() {
    const root = open("/");
    await connected(root, "/");
    out(`ack ${show(await call(root, "echo", "hi", { n: 1 }, [1, 2, 3], null))}`);
    out(`ack ${show(await call(root, "sum", 1, 2, 39))}`);
    await finish(root);
  },

  // c. Server-to-client acks: the server asks, this callback answers, the server reports
  // what it got (back to us as `answered`).
  async "server-ack"() {
    const root = open("/");
    root.on("ask", (question, ack) => {
      out(`ask ${show(question)}`);
      ack({ answer: 42 }, "and more");
    });
    await connected(root, "/");
    const answered = next(root, "answered");
    root.emit("ask-me");
    out(`answered ${show(await answered)}`);
    await finish(root);
  },

  // d. Binary both ways: Buffers up (in an object and as an argument) and back in the ack;
  // then the server's own bytes down, and sent back for the server to compare.
  async binary() {
    const root = open("/");
    await connected(root, "/");
    const reply = await call(root, "upload", { name: "blob", data: SMALL }, BIG);
    const [lens, ...back] = reply;
    const same = back.length === 2 && SMALL.equals(back[0]) && BIG.equals(back[1]);
    out(`upload ack ${show(lens)} same=${same}`);
    const blob = next(root, "blob");
    root.emit("download");
    const [meta, extra] = await blob;
    out(`blob ${show(meta)} ${show(extra)}`);
    const sizes = [meta.data, extra].map((b) => Buffer.from(b).length);
    out(`blob lengths ${show(sizes)}`);
    out(`returned ${show(await call(root, "returned", meta.data, extra))}`);
    await finish(root);
  },

  // e. The chat room with a socklab-protocol client in it (the test's): it sees what we
  // say, we see what it says. Broadcasts carry the offset as a last string argument.
  async rooms() {
    const chat = open("/chat", { auth: { name: "nodey" } });
    for (const ev of ["chat message", "system"]) {
      chat.on(ev, (...args) => {
        const [rest, offset] = splitOffset(args, true);
        out(`${ev} ${show(rest)} offset=${offset}`);
      });
    }
    await connected(chat, "/chat");
    out(`ack join ${show(await call(chat, "join", "kitchen"))}`);
    const c = await command("say");
    if (c !== "say") fail(`unexpected command ${c}`);
    out(`ack chat message ${show(await call(chat, "chat message", "lobby", "hello from node"))}`);
    await finish(chat);
  },

  // f. A namespace the server does not have, then middleware that refuses with data, then
  // the same middleware admitting.
  async refused() {
    for (const [ns, auth] of [
      ["/nope", undefined],
      ["/vault", { token: "guess" }],
    ]) {
      const s = open(ns, { auth, forceNew: true });
      const [err] = await next(s, "connect_error");
      out(`connect_error ${ns} ${err.message} data=${err.data === undefined ? "none" : show(err.data)}`);
      s.close();
    }
    const ok = open("/vault", { auth: { token: "letmein" }, forceNew: true });
    await connected(ok, "/vault");
    await finish(ok);
  },

  // g. The server disconnects this socket; the client must not reconnect.
  async kick() {
    const root = open("/", { reconnection: true, reconnectionDelay: 50 });
    await connected(root, "/");
    const gone = next(root, "disconnect");
    root.emit("kick-me");
    const [reason] = await gone;
    out(`disconnect ${reason}`);
    // Give a reconnection (which must not happen) the time it would take, then look.
    await new Promise((resolve) => setTimeout(resolve, 500));
    out(`active ${root.active || root.connected}`);
    await finish(root);
  },

  // h. The server stops (WebSocket close 1001) and a new one starts on the same port; the
  // client reconnects by itself, with a short delay so the test does not wait long.
  async restart() {
    const root = open("/", {
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
    });
    root.on("disconnect", (reason) => out(`disconnect ${reason}`));
    await connected(root, "/");
    const again = next(root, "connect");
    await again;
    await finish(root);
  },

  // i. Connection state recovery: the transport drops (engine.close(), as a network
  // failure would look to the client), the server broadcasts to our room meanwhile, and the
  // client comes back by itself with `recovered` true and the missed broadcast replayed.
  // The reconnection delay is fixed at 2 s, the test's window for its broadcast (it checks
  // that nobody was there to receive it).
  async recovery() {
    const root = open("/", {
      reconnection: true,
      reconnectionDelay: 2000,
      randomizationFactor: 0,
    });
    root.on("news", (...args) => {
      const [rest, offset] = splitOffset(args, true);
      out(`news ${show(rest)} offset=${offset}`);
    });
    root.on("disconnect", (reason) => out(`disconnect ${reason}`));
    root.on("connect", () => out(`recovered ${root.recovered}`));
    await connected(root, "/");
    const c = await command("drop");
    if (c !== "drop") fail(`unexpected command ${c}`);
    const again = next(root, "connect");
    root.io.engine.close();
    await again;
    await finish(root);
  },

  // j. A chat member, for the cluster tests (tests/cluster_node.rs: the same client on a
  // socklab node or on the Node.js one). The first command is `as NAME [ROOM]`, its CONNECT's
  // auth; then `say ROOM TEXT...`, `join ROOM`, `leave ROOM` and `who ROOM`, each printing its
  // ack (`ack say [true]`), until `done`. Every event (`chat message`, `notification`,
  // `system`, or any other a test broadcasts) prints as it comes, as in `rooms`; a refused
  // CONNECT prints `connect_error /chat MESSAGE`, a disconnect the client did not ask for
  // `disconnect REASON` (`io server disconnect` when a server disconnected the socket).
  // The commands are awaited without STEP_MS: the test may stay quiet for a while, listening
  // for what must not come (the whole run's LIMIT_MS still holds).
  async member() {
    const first = await command("as NAME ROOM");
    const [verb, name, room] = first.split(" ");
    if (verb !== "as" || !name) fail(`unexpected command ${first}`);
    const chat = open("/chat", { auth: room ? { name, room } : { name } });
    chat.onAny((ev, ...args) => {
      const [rest, offset] = splitOffset(args, true);
      out(`${ev} ${show(rest)} offset=${offset}`);
    });
    chat.on("disconnect", (reason) => out(`disconnect ${reason}`));
    const refused = await bounded(
      new Promise((resolve) => {
        chat.once("connect", () => resolve(null));
        chat.once("connect_error", (e) => resolve(e));
      }),
      "connect to /chat",
    );
    if (refused) out(`connect_error /chat ${refused.message}`);
    for (;;) {
      const line = await command("a chat command", Infinity);
      const [verb, arg, ...words] = line.split(" ");
      if (verb === "done") break;
      if (refused) fail(`${verb} after a refused CONNECT`);
      if (verb === "say") {
        out(`ack say ${show(await call(chat, "chat message", arg, words.join(" ")))}`);
      } else if (["join", "leave", "who"].includes(verb)) {
        out(`ack ${verb} ${show(await call(chat, verb, arg))}`);
      } else {
        fail(`unexpected command ${line}`);
      }
    }
    chat.off("disconnect"); // this one was asked for
    chat.disconnect();
    out("bye");
    process.exit(0);
  },

  // k. A client moved to another server, as a load balancer moves one when its server goes
  // away: the connection to URL is cut (`cut`), then the same client connects to the server
  // at URL2 (`to URL2`) with what it knew of its session, socket.io-client's private
  // `_pid` (the session's private id) and `_lastOffset` (the offset of the last broadcast it
  // got), which it sends in its CONNECT as `{pid, offset}` (`_sendConnectPacket`); the
  // servers share their sessions and broadcasts through the cluster. socket.io-client has
  // no public way to do this: its own reconnection always goes back to the same URL.
  // Prints `left pid=PID offset=OFFSET` and `disconnect REASON` when cut, then
  // `connect / ok recovered=BOOL sid=SID` on URL2; every `news` prints with its offset's
  // value (`news ["one"] offset=1712345678901-0`) or `offset=none`, on either server.
  async move() {
    const printNews = (s) =>
      s.on("news", (...args) => {
        const [rest, kind] = splitOffset(args, true);
        out(`news ${show(rest)} offset=${kind === "string" ? args[args.length - 1] : "none"}`);
      });
    const first = open("/", { forceNew: true });
    printNews(first);
    await connected(first, "/");
    const cut = await command("cut");
    if (cut !== "cut") fail(`unexpected command ${cut}`);
    const pid = first._pid;
    const offset = first._lastOffset;
    out(`left pid=${pid} offset=${offset}`);
    const gone = next(first, "disconnect");
    first.io.engine.close(); // the connection drops: the server keeps the session
    out(`disconnect ${(await gone)[0]}`);

    const to = await command("to URL2");
    const [verb, url2] = to.split(" ");
    if (verb !== "to" || !url2) fail(`unexpected command ${to}`);
    const second = io(url2 + "/", {
      transports,
      reconnection: false,
      forceNew: true,
      autoConnect: false,
    });
    second._pid = pid;
    second._lastOffset = offset;
    // Node's Socket.IO sends the missed broadcasts before its CONNECT (the client holds them
    // back, and emits them just before `connect`), socklab after it: they print before this
    // line from a Node.js server, after it from socklab.
    second.on("connect", () =>
      out(`connect / ok recovered=${second.recovered} sid=${second.id}`),
    );
    printNews(second);
    second.connect();
    await connected(second, "/");
    await finish(second);
  },
};

const run = scenarios[scenario];
if (!run) fail(`unknown scenario ${scenario}`);
run().catch((e) => fail(e.message));
