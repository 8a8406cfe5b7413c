// Figure 4: idle connections. C socket.io-clients connect and do nothing; heartbeats stay on
// (the server PINGs every 25 s, socket.io-client answers).
//
//   node idle.js --url http://127.0.0.1:PORT --clients C [--warm 10]
//
// Talks with the orchestrator, which reads the server's RSS at two moments:
// 1. `warm` clients connect and leave (what a first connection sets up once is not
//    counted); prints {"warm": true}; waits for a line on stdin;
// 2. C clients connect; prints {"connected", "failed"}; waits for a line on stdin (they stay
//    connected meanwhile); then closes them all and exits.
"use strict";

const { parseArgs, connectMany, printJson, line, fail } = require("./common");

const a = parseArgs({ url: "", clients: 10000, warm: 10 });

async function main() {
  if (a.warm > 0) {
    const { sockets } = await connectMany(a.url, a.warm, 100, 20000);
    for (const s of sockets) s.close();
    await new Promise((r) => setTimeout(r, 200));
  }
  await printJson({ warm: true });
  await line();
  const { sockets, failed } = await connectMany(a.url, a.clients, 200, 20000);
  await printJson({ connected: sockets.length, failed });
  await line();
  for (const s of sockets) s.close();
  process.exit(0);
}

main().catch((e) => fail(e.message));
