// The Socket.IO reference server of `make bench`: what socklab's bench server does, written
// the way a Socket.IO user would write it.
//
//   node server.js [--port 0] [--redis redis://HOST:PORT]
//                                    prints "listening on 127.0.0.1:PORT", then serves until
//                                    SIGTERM or SIGINT
//
// With `--redis`, the server is a node of a cluster over that Redis, through
// @socket.io/redis-streams-adapter (the cluster figure of `make bench`): `io.emit` reaches
// the clients of every node, through one Redis stream, in the format socklab's cluster speaks.
//
// - `echo`: answers its ack with its argument (the ack round trip, figures 2 and 5);
// - `chat message`: `io.emit` to every socket, the sender included (the fan-out, figure 3).
//
// WebSocket transport only (no HTTP long-polling), default heartbeats (ping every 25 s,
// 20 s to answer), no per-message compression (the default): the same settings as socklab.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const args = process.argv.slice(2);
const option = (name) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const port = Number(option("--port") ?? 0);
const redisUrl = option("--redis");

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
});

// ANCHOR: handlers
io.on("connection", (socket) => {
  socket.on("echo", (msg, ack) => {
    if (typeof ack === "function") ack(msg);
  });
  socket.on("chat message", (msg) => {
    io.emit("chat message", msg);
  });
});
// ANCHOR_END: handlers

// The adapter's defaults, as in its README: stream `socket.io`, MAXLEN ~10000, XREAD of 100
// entries blocking 5 s. It reads with a client of its own (`duplicate()`), since a blocking
// XREAD holds its connection.
async function joinCluster(url) {
  const { createClient } = require("redis");
  const { createAdapter } = require("@socket.io/redis-streams-adapter");
  const client = createClient({ url });
  client.on("error", (e) => process.stderr.write(`redis: ${e.message}\n`));
  await client.connect();
  io.adapter(createAdapter(client));
}

async function main() {
  if (redisUrl) await joinCluster(redisUrl);
  httpServer.listen(port, "127.0.0.1", () => {
    const addr = httpServer.address();
    process.stdout.write(`listening on ${addr.address}:${addr.port}\n`);
  });
}

const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

main().catch((e) => {
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(1);
});
