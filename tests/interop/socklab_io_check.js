// socklab-io.js (the web pages' own Socket.IO client, src/apps/web/assets/) under Node,
// against a socklab server that tests/web.rs starts in-process: `node socklab_io_check.js URL`.
//
// Node 20 has no global WebSocket, so the `ws` package (installed here by `npm ci`) stands in
// for the browser's. Each step prints `ok STEP ...`; anything unexpected prints `FAIL ...`
// and exits 1. Every wait is bounded (STEP_MS), and so is the whole run (RUN_MS).
"use strict";

globalThis.WebSocket = require("ws");
const { io } = require("../../src/apps/web/assets/socklab-io.js");

const url = process.argv[2];
const STEP_MS = 5000;
const RUN_MS = 30000;
// `bounded(p, what)`: `p`, or a failure after STEP_MS; `next(emitter, event)`: the next
// `event`, its arguments as an array, as bounded (tests/interop/common.js).
const { bounded, next } = require("./common.js").within(STEP_MS);

function out(line) {
  process.stdout.write(line + "\n");
}
function fail(why) {
  out(`FAIL ${why}`);
  process.exit(1);
}
setTimeout(() => fail(`the whole run took over ${RUN_MS} ms`), RUN_MS).unref();

// JSON with the keys of every object sorted: serde_json writes them in its own order.
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
  return v;
}
function same(a, b, what) {
  if (JSON.stringify(canon(a)) !== JSON.stringify(canon(b))) {
    fail(`${what}: got ${JSON.stringify(a)}, expected ${JSON.stringify(b)}`);
  }
}
const bytes = (b) => Array.from(new Uint8Array(b));

// Every frame, through the inspector's hook.
const frames = [];
io.onFrame = (direction, data, time) => frames.push({ direction, data, time });
const opens = () => frames.filter((f) => f.direction === "in" && typeof f.data === "string" && f.data[0] === "0").length;

// Fixed, short reconnection delays: the test's window for what happens while away.
const quick = { reconnectionDelay: 500, reconnectionDelayMax: 500, randomizationFactor: 0 };

async function main() {
  // 1. Two namespaces, one WebSocket.
  const root = io(url + "/", quick);
  const chat = io(url + "/chat", { ...quick, auth: { name: "node-ada" } });
  await Promise.all([next(root, "connect"), next(chat, "connect")]);
  if (root.io !== chat.io) fail("the two namespaces have a WebSocket each");
  if (opens() !== 1) fail(`${opens()} Engine.IO open packets`);
  if (!chat.id || chat.recovered) fail(`chat id ${chat.id} recovered ${chat.recovered}`);
  out("ok multiplex");

  // 2. Middleware refuses: connect_error with its message, and no retry.
  const nameless = io(url + "/chat", { auth: { name: "" } });
  const [err] = await next(nameless, "connect_error");
  if (!/name/.test(err.message) || nameless.active) fail(`refusal: ${err.message}`);
  out(`ok refused ${err.message}`);

  // 3. Acks, client to server, on both namespaces; an ack that never comes times out.
  same(await root.emitWithAck("echo", 1, "two", { three: [3] }), 1, "echo's first answer");
  const echoed = await bounded(new Promise((r) => root.emit("echo", 1, "two", (...a) => r(a))), "echo");
  same(echoed, [1, "two"], "echo");
  same(await chat.emitWithAck("who", "lobby"), ["node-ada"], "who");
  const [late] = await bounded(new Promise((r) => root.timeout(200).emit("nobody-answers", (...a) => r(a))), "timeout");
  if (!late || !/timed out/.test(late.message)) fail(`timeout: ${late}`);
  out("ok acks");

  // 4. The server asks, the client answers (an ack id from the server).
  root.once("ask", (question, answer) => answer({ got: question }));
  root.emit("ask-me");
  const [answered] = await next(root, "answered");
  same(answered, { got: { q: "life" } }, "answered");
  out("ok server-ack");

  // 5. Binary both ways: a Uint8Array at the top, an ArrayBuffer inside an object.
  const small = new Uint8Array([0, 1, 2, 127, 128, 253, 254, 255]);
  const big = new Uint8Array(70000).map((_, i) => (i * 7 + 3) & 0xff).buffer;
  const back = await bounded(new Promise((r) => root.emit("echo", small, { note: "x", data: big }, (...a) => r(a))), "binary echo");
  if (!(back[0] instanceof ArrayBuffer)) fail("an attachment is not an ArrayBuffer");
  same(bytes(back[0]), bytes(small), "small");
  same(back[1].note, "x", "note");
  same(bytes(back[1].data), bytes(big), "big");
  const sent = frames.filter((f) => f.direction === "out" && typeof f.data === "string" && f.data.startsWith("452-"));
  if (!sent.length) fail("no BINARY_EVENT with two attachments went out");
  out("ok binary");

  // 6. A broadcast: bob speaks in the lobby and mentions ada. The offset is kept, not shown.
  const bob = io(url + "/chat", { forceNew: true, auth: { name: "node-bob" } });
  await next(bob, "connect");
  const heard = next(chat, "chat message");
  const noticed = next(chat, "notification");
  same(await bob.emitWithAck("chat message", "lobby", "hi @node-ada"), true, "bob's ack");
  same(await heard, [{ room: "lobby", from: "node-bob", text: "hi @node-ada" }], "message");
  same((await noticed)[0].from, "node-bob", "notification");
  if (!/^\d+$/.test(chat._lastOffset)) fail(`offset ${chat._lastOffset}`);
  out("ok broadcast");

  // 7. The WebSocket drops (as a network failure would look): both sockets go offline, bob
  // speaks meanwhile, ada types meanwhile; both come back in their sessions, the missed
  // message is replayed and ada's goes out.
  const attempt = next(chat.io, "reconnect_attempt");
  const gone = Promise.all([next(root, "disconnect"), next(chat, "disconnect")]);
  const ids = [root.id, chat.id];
  const openedBefore = opens();
  chat.io.ws.close();
  same((await gone).map((a) => a[0]), ["transport close", "transport close"], "reasons");
  same(await bob.emitWithAck("chat message", "lobby", "while you were away"), true, "bob's second ack");
  const typed = bounded(new Promise((r) => chat.emit("chat message", "lobby", "typed offline", r)), "offline ack");
  const missed = next(chat, "chat message");
  same(await attempt, [1], "attempt");
  await Promise.all([next(root, "connect"), next(chat, "connect")]);
  if (!root.recovered || !chat.recovered) fail(`recovered ${root.recovered} ${chat.recovered}`);
  same([root.id, chat.id], ids, "ids after recovery");
  same((await missed)[0].text, "while you were away", "missed");
  same(await typed, true, "the offline buffer");
  if (opens() !== openedBefore + 1) fail("the reconnection opened more than one WebSocket");
  out("ok recovery");

  // 8. Disconnections: by the server (no retry), by the client.
  const kicked = next(root, "disconnect");
  root.emit("kick-me");
  same(await kicked, ["io server disconnect"], "kicked");
  const left = next(chat, "disconnect");
  chat.disconnect();
  same(await left, ["io client disconnect"], "left");
  bob.disconnect();
  if (frames.some((f) => typeof f.time !== "number")) fail("a frame without a time");
  out("ok disconnect");
  out("done");
  process.exit(0);
}

main().catch((e) => fail(e.message));
