// Figure 2: sequential emit-with-ack round trips from one socket.io-client (WebSocket only).
//
//   node ack.js --url http://127.0.0.1:PORT [--warmup 1000] [--count 20000]
//
// Prints one JSON line: {"round_trips", "seconds", "latencies_ns": [...]}.
"use strict";

const { parseArgs, connect, connected, now, printJson, fail, MESSAGE } = require("./common");

const a = parseArgs({ url: "", warmup: 1000, count: 20000 });

async function main() {
  const socket = connect(a.url);
  await connected(socket, 10000);
  // One emit, its ack, the next emit from the ack callback: one round trip in flight.
  const run = (count, samples) =>
    new Promise((resolve, reject) => {
      let i = 0;
      let sent = now();
      const timeout = setTimeout(() => reject(new Error("acks stopped coming")), 120000);
      const next = () => {
        sent = now();
        socket.emit("echo", MESSAGE, (reply) => {
          if (reply !== MESSAGE) return reject(new Error(`bad echo ${reply}`));
          if (samples) samples[i] = Number(now() - sent);
          i += 1;
          if (i < count) next();
          else {
            clearTimeout(timeout);
            resolve();
          }
        });
      };
      next();
    });
  await run(a.warmup, null);
  const samples = new Array(a.count);
  const start = now();
  await run(a.count, samples);
  const seconds = Number(now() - start) / 1e9;
  socket.close();
  await printJson({ round_trips: a.count, seconds, latencies_ns: samples });
  process.exit(0);
}

main().catch((e) => fail(e.message));
