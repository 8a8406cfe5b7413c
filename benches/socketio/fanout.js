// Figures 3 and 6: broadcast fan-out. N socket.io-clients connect; the first emits M chat
// messages as fast as it can; the server sends each to every client (`io.emit`); the clock
// stops when every client has every message.
//
//   node fanout.js --url http://127.0.0.1:PORT[,http://127.0.0.1:PORT2] --clients N
//                  --messages M [--warmup W] [--paced K] [--server-pid PID[,PID2]]
//                  [--hz 100] [--wait 0|1] [--timeout-ms T] [--stall-ms S]
//
// With several URLs (the nodes of a cluster, figure 6), client i connects to URL i mod the
// count, and the sender is a client of the first. A warm-up round of W messages goes first
// (the JIT of both sides gets going); then K messages one at a time, each sent once every
// client has the one before, every delivery timed from the emit, split by whether the
// receiver is a client of the sender's node or of another. With `--wait 1` the script prints
// {"ready": true} and waits for a line on stdin before the measured round (so that another
// client can start measuring at the same moment). A round that goes S ms without a delivery
// is over: what has not come is lost.
//
// Prints one JSON line: {"clients", "messages", "deliveries", "lost_by_node", "seconds",
// "server_cpu_ns", "complete", "paced_sent", "paced_lost", "same_node_ns", "other_node_ns"};
// the CPU time is the servers' (summed) over the measured round.
"use strict";

const { parseArgs, connectMany, now, cpuNs, printJson, line, fail, MESSAGE } = require("./common");

const a = parseArgs({
  url: "",
  clients: 100,
  messages: 1000,
  warmup: 100,
  paced: 0,
  "server-pid": "",
  hz: 100,
  wait: 0,
  "timeout-ms": 300000,
  "stall-ms": 3000,
});

// CPU time of all of `pids` (a comma-separated list), or null.
function cpuOf(pids) {
  const list = pids.split(",").filter((p) => p !== "").map(Number);
  if (list.length === 0) return null;
  const each = list.map((p) => cpuNs(p, a.hz));
  return each.includes(null) ? null : each.reduce((x, y) => x + y, 0);
}

async function main() {
  const urls = a.url.split(",");
  // Client i on node i mod the count: node j gets every count-th client from the j-th.
  const sockets = [];
  const nodeOf = [];
  for (let j = 0; j < urls.length; j++) {
    const count = Math.ceil((a.clients - j) / urls.length);
    const got = await connectMany(urls[j], count, 100, 20000);
    if (got.failed > 0) fail(`${got.failed} of ${count} clients of ${urls[j]} did not connect`);
    for (const s of got.sockets) {
      sockets.push(s);
      nodeOf.push(j);
    }
  }
  const n = sockets.length;
  const clientsOf = urls.map((_, j) => nodeOf.filter((x) => x === j).length);
  let total = 0;
  const byNode = urls.map(() => 0);
  let target = 0;
  let done = null;
  // While a paced message is on its way: when it was sent, and its deliveries' times.
  let sentAt = null;
  const sameNs = [];
  const otherNs = [];
  sockets.forEach((s, i) => {
    const node = nodeOf[i];
    s.on("chat message", () => {
      total += 1;
      byNode[node] += 1;
      if (sentAt !== null) (node === 0 ? sameNs : otherNs).push(Number(now() - sentAt));
      if (total === target && done) done();
    });
  });
  const sender = sockets[0]; // a client of the first node: they connected first
  // One round: `m` emits in a row from the sender, then wait for n x m deliveries, at most
  // `limit` ms, and no more than `stall` ms without one. Resolves with whether all came and
  // when the last one did.
  const round = (m, limit, stall) =>
    new Promise((resolve) => {
      total = 0;
      byNode.fill(0);
      target = n * m;
      let seen = 0;
      let lastAt = now();
      const finish = (complete) => {
        clearTimeout(timer);
        clearInterval(watch);
        done = null;
        resolve({ complete, lastAt });
      };
      const timer = setTimeout(() => finish(false), limit);
      const watch = setInterval(() => {
        if (total !== seen) {
          seen = total;
          lastAt = now();
        } else if (Number(now() - lastAt) / 1e6 >= stall) finish(false);
      }, Math.min(100, stall));
      done = () => {
        lastAt = now();
        finish(true);
      };
      for (let i = 0; i < m; i++) sender.emit("chat message", MESSAGE);
    });
  const stall = a["stall-ms"];
  if (a.warmup > 0) await round(a.warmup, a["timeout-ms"], stall);
  let pacedSent = 0;
  let pacedLost = 0;
  for (let k = 0; k < a.paced; k++) {
    sentAt = now();
    pacedSent += 1;
    const { complete } = await round(1, stall, stall);
    if (!complete) {
      // A late one would be taken for the next message's: stop here.
      pacedLost = n - total;
      break;
    }
  }
  sentAt = null;
  if (a.wait) {
    await printJson({ ready: true, clients: n });
    await line();
  }
  const cpu0 = cpuOf(a["server-pid"]);
  const start = now();
  const { complete, lastAt } = await round(a.messages, a["timeout-ms"], stall);
  const seconds = Number(lastAt - start) / 1e9;
  const cpu1 = cpuOf(a["server-pid"]);
  const diff = (x, y) => (x === null || y === null ? null : y - x);
  await printJson({
    clients: n,
    messages: a.messages,
    deliveries: total,
    lost_by_node: clientsOf.map((c, j) => Math.max(0, c * a.messages - byNode[j])),
    seconds,
    server_cpu_ns: diff(cpu0, cpu1),
    complete,
    paced_sent: pacedSent,
    paced_lost: pacedLost,
    same_node_ns: sameNs,
    other_node_ns: otherNs,
  });
  for (const s of sockets) s.close();
  process.exit(0);
}

main().catch((e) => fail(e.message));
