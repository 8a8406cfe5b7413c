// The Socket.IO reference server of `make bench`: what socklab's bench server does, written
// the way a Socket.IO user would write it.
//
//   node server.js [--port 0]        prints "listening on 127.0.0.1:PORT", then serves until
//                                    SIGTERM or SIGINT
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
const portAt = args.indexOf("--port");
const port = portAt >= 0 ? Number(args[portAt + 1]) : 0;

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

httpServer.listen(port, "127.0.0.1", () => {
  const addr = httpServer.address();
  process.stdout.write(`listening on ${addr.address}:${addr.port}\n`);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
