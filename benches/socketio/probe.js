// Figure 5: latency under load. One socket.io-client makes `echo` round trips with an ack,
// one after another, while the orchestrator runs the fan-out of fanout.js beside it.
//
//   node probe.js --url http://127.0.0.1:PORT [--warmup 200]
//
// After `warmup` round trips it prints {"ready": true} and goes on; round trips count from
// the first line on stdin ("go") to the second ("stop"); then it prints
// {"round_trips", "seconds", "latencies_ns": [...]} and exits.
"use strict";

const readline = require("node:readline");
const { parseArgs, connect, connected, now, printJson, fail, MESSAGE } = require("./common");

const a = parseArgs({ url: "", warmup: 200 });

async function main() {
  const socket = connect(a.url);
  await connected(socket, 10000);
  let phase = "warmup";
  let done = 0;
  let started = null;
  const samples = [];
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", () => {
    if (phase === "measure") phase = "stop";
    else {
      phase = "measure";
      started = now();
    }
  });
  rl.on("close", () => (phase = "stop"));
  const next = () => {
    if (phase === "stop") return finish();
    const counted = phase === "measure";
    const sent = now();
    socket.emit("echo", MESSAGE, () => {
      if (counted) samples.push(Number(now() - sent));
      done += 1;
      if (done === a.warmup && phase === "warmup") printJson({ ready: true });
      next();
    });
  };
  next();
  await finished;
  const seconds = started === null ? 0 : Number(now() - started) / 1e9;
  rl.close();
  socket.close();
  await printJson({ round_trips: samples.length, seconds, latencies_ns: samples });
  process.exit(0);
}

main().catch((e) => fail(e.message));
