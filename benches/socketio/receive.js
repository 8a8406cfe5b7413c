// The check of the Rust load generator (benches/harness/src/sio_load.rs): N socket.io-clients
// that only receive. They connect, print {"ready": true}, then count every `chat message`
// event and keep each distinct one as JSON (the event's name and arguments); once every
// client has M, or nothing came for S ms, they print one JSON line and exit:
//
//   node receive.js --url http://127.0.0.1:PORT --clients N --messages M [--stall-ms S]
//
// {"clients", "deliveries", "complete", "events"}: `events` holds each distinct event once,
// e.g. ["chat message","xxx..."]. benches/harness/tests/sio_load.rs compares it with what
// the Rust generator received from the same server, for the same messages.
"use strict";

const { parseArgs, connectMany, printJson, fail } = require("./common");

const a = parseArgs({ url: "", clients: 3, messages: 10, "stall-ms": 3000 });

async function main() {
  const got = await connectMany(a.url, a.clients, 100, 10000);
  if (got.failed > 0) fail(`${got.failed} of ${a.clients} clients did not connect`);
  const sockets = got.sockets;
  let deliveries = 0;
  let lastAt = Date.now();
  const events = new Set();
  const target = sockets.length * a.messages;
  let finished = false;
  const finish = async (complete) => {
    if (finished) return;
    finished = true;
    clearInterval(watch);
    await printJson({ clients: sockets.length, deliveries, complete, events: [...events].map((e) => JSON.parse(e)) });
    for (const s of sockets) s.close();
    process.exit(0);
  };
  for (const s of sockets) {
    s.on("chat message", (...args) => {
      deliveries += 1;
      lastAt = Date.now();
      events.add(JSON.stringify(["chat message", ...args]));
      if (deliveries === target) finish(true);
    });
  }
  // The stall clock starts once the clients are ready; the whole run is bounded below.
  const watch = setInterval(() => {
    if (Date.now() - lastAt >= a["stall-ms"]) finish(false);
  }, 100);
  setTimeout(() => finish(false), 60000);
  await printJson({ ready: true, clients: sockets.length });
  lastAt = Date.now();
}

main().catch((e) => fail(e.message));
