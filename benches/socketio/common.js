// What the load scripts share: arguments, clients, clocks, /proc readings, the JSON result.
"use strict";

const fs = require("node:fs");
const readline = require("node:readline");
const { io } = require("socket.io-client");

// `--name value` pairs from the command line, with defaults.
function parseArgs(defaults) {
  const out = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in defaults)) fail(`unknown option --${key}`);
    out[key] = typeof defaults[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  return out;
}

function fail(message) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

// One socket.io-client connection of its own (`forceNew`: no Manager shared between the
// clients of this process, so N clients are N WebSocket connections), WebSocket only.
function connect(url) {
  return io(url, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
  });
}

// Resolves once `socket` is connected; rejects on `connect_error` or after `ms`.
function connected(socket, ms) {
  return new Promise((resolve, reject) => {
    if (socket.connected) return resolve();
    const t = setTimeout(() => reject(new Error("connect timed out")), ms);
    socket.once("connect", () => {
      clearTimeout(t);
      resolve();
    });
    socket.once("connect_error", (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

// Opens `n` clients, at most `batch` handshakes at a time; returns those that connected.
async function connectMany(url, n, batch, ms) {
  const sockets = [];
  let failed = 0;
  for (let i = 0; i < n; i += batch) {
    const group = [];
    for (let j = i; j < Math.min(n, i + batch); j++) group.push(connect(url));
    const results = await Promise.allSettled(group.map((s) => connected(s, ms)));
    results.forEach((r, k) => {
      if (r.status === "fulfilled") sockets.push(group[k]);
      else {
        failed += 1;
        group[k].close();
      }
    });
  }
  return { sockets, failed };
}

// A monotonic clock in nanoseconds.
const now = () => process.hrtime.bigint();

// CPU time (user + system, all threads) of process `pid` in nanoseconds, from
// /proc/PID/stat; `hz` is the clock tick (`getconf CLK_TCK`, 100 on Linux).
function cpuNs(pid, hz) {
  if (!pid) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may hold spaces.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(f[11]) + Number(f[12]);
    return (ticks * 1e9) / hz;
  } catch {
    return null;
  }
}

// Waits for one line on stdin (the orchestrator's "go"); resolves at end of input too.
function line() {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin });
    let done = false;
    const finish = (l) => {
      if (done) return;
      done = true;
      rl.close();
      resolve(l);
    };
    rl.once("line", finish);
    rl.once("close", () => finish(null));
  });
}

// Prints one JSON line on stdout (what the orchestrator reads); resolves once it is written.
// (On Linux a write to a pipe may be asynchronous in Node: exiting before it finished would
// cut the line at the pipe's 64 KiB.)
function printJson(obj) {
  return new Promise((resolve) => process.stdout.write(JSON.stringify(obj) + "\n", resolve));
}

// A 32-byte string payload.
const MESSAGE = "x".repeat(32);

module.exports = { parseArgs, fail, connect, connected, connectMany, now, cpuNs, line, printJson, MESSAGE };
