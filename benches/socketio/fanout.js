// Figure 3: broadcast fan-out. N socket.io-clients connect; the first emits M chat messages
// as fast as it can; the server sends each to every client (`io.emit`); the clock stops when
// every client has every message.
//
//   node fanout.js --url http://127.0.0.1:PORT --clients N --messages M
//                  [--warmup W] [--server-pid PID] [--hz 100] [--wait 0|1]
//
// A warm-up round of W messages goes first (the JIT of both sides gets going). With
// `--wait 1` the script prints {"ready": true} and waits for a line on stdin before the
// measured round (so that another client can start measuring at the same moment).
// Prints one JSON line: {"clients", "messages", "deliveries", "seconds", "server_cpu_ns",
// "complete"}.
"use strict";

const { parseArgs, connectMany, now, cpuNs, printJson, line, fail, MESSAGE } = require("./common");

const a = parseArgs({
  url: "",
  clients: 100,
  messages: 1000,
  warmup: 100,
  "server-pid": 0,
  hz: 100,
  wait: 0,
  "timeout-ms": 300000,
});

async function main() {
  const { sockets, failed } = await connectMany(a.url, a.clients, 100, 20000);
  if (failed > 0) fail(`${failed} of ${a.clients} clients did not connect`);
  const n = sockets.length;
  let total = 0;
  let target = 0;
  let done = null;
  for (const s of sockets) {
    s.on("chat message", () => {
      total += 1;
      if (total === target && done) done();
    });
  }
  const cpu = () => cpuNs(a["server-pid"], a.hz);
  // One round: M emits in a row from the first client, then wait for N x M deliveries.
  const round = (m) =>
    new Promise((resolve) => {
      total = 0;
      target = n * m;
      const timer = setTimeout(() => resolve(false), a["timeout-ms"]);
      done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      for (let i = 0; i < m; i++) sockets[0].emit("chat message", MESSAGE);
    });
  if (a.warmup > 0) await round(a.warmup);
  if (a.wait) {
    await printJson({ ready: true, clients: n });
    await line();
  }
  const cpu0 = cpu();
  const start = now();
  const complete = await round(a.messages);
  const seconds = Number(now() - start) / 1e9;
  const cpu1 = cpu();
  const deliveries = total;
  await printJson({
    clients: n,
    messages: a.messages,
    deliveries,
    seconds,
    server_cpu_ns: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0,
    complete,
  });
  for (const s of sockets) s.close();
  process.exit(0);
}

main().catch((e) => fail(e.message));
