// A Node.js Socket.IO 4.8.4 server in socklab's cluster, for tests/cluster_node.rs: the chat
// application of src/apps/chat.rs, on @socket.io/redis-streams-adapter 0.3.1 (the Redis
// stream socklab's nodes share), driven by the test through JSON lines.
//
//   node cluster_node.js redis://HOST:PORT [PORT]      (PORT 0, the default: any free one)
//
// stdout, one JSON object a line:
//   {"ready": true, "port": N}                          once, when it listens on 127.0.0.1
//   {"id": ID, "ok": true, ...}  {"id": ID, "error": "..."}   the answer to command ID
//   {"connection": {"ns", "id", "recovered"}}           a socket connected (to `/` or `/chat`)
//   {"disconnect": {"ns", "id", "reason"}}              ...and went away
//   {"serverSideEmit": {"ns", "event", "args"}}         another node's serverSideEmit arrived
//   {"fatal": "..."}                                    it cannot start (then exit 1)
//
// stdin, one command a line, `{"id": ID, "cmd": NAME, ...}` (the commands are listed at
// `COMMANDS` below, and in README.md). A bad line is answered with an error, never a crash.
// End of file on stdin stops the server: it never outlives the test that started it.
//
// A test fixture, not a production server: the handlers are written to match socklab's
// chat argument for argument, even where idiomatic Node code would differ.
"use strict";

const http = require("node:http");
const readline = require("node:readline");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-streams-adapter");

const [redisUrl, portArg] = process.argv.slice(2);
if (!redisUrl) {
  process.stderr.write("usage: node cluster_node.js redis://HOST:PORT [PORT]\n");
  process.exit(2);
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// A rejected promise nobody awaited (the adapter's own publishing, say) is reported, not a
// crash: Node 20 would exit on it.
process.on("unhandledRejection", (e) => {
  process.stderr.write(`unhandled rejection: ${e && e.stack ? e.stack : e}\n`);
});

// ---------------------------------------------------------------------------------------------
// The chat application: src/apps/chat.rs, in Node
// ---------------------------------------------------------------------------------------------

const NAMESPACE = "/chat";
const DEFAULT_ROOM = "lobby";
const MAX_NAME = 32;
const PERSONAL = "user:";

// Rust's `char::is_alphanumeric` is Unicode's Alphabetic property or a number (Nd, Nl, No).
const NAME_CHAR = /^[\p{Alphabetic}\p{N}_-]$/u;

// 1 to 32 characters (code points, as Rust counts `chars()`), letters, digits, `-` and `_`.
function validName(name) {
  if (typeof name !== "string") return false;
  const chars = [...name];
  return chars.length >= 1 && chars.length <= MAX_NAME && chars.every((c) => NAME_CHAR.test(c));
}

// 1 to 64 *bytes* of UTF-8 (Rust's `str::len`), and not someone's personal room.
function validRoom(room) {
  return (
    typeof room === "string" &&
    room.length > 0 &&
    Buffer.byteLength(room, "utf8") <= 64 &&
    !room.startsWith(PERSONAL)
  );
}

function personalRoom(name) {
  return PERSONAL + name;
}

// The names mentioned in `text` (`@ada` mentions `ada`), each once, in order.
function mentions(text) {
  const found = [];
  for (const word of text.split(/\s+/u)) {
    if (!word.startsWith("@")) continue;
    let name = "";
    for (const c of word.slice(1)) {
      if (!NAME_CHAR.test(c)) break;
      name += c;
    }
    if (validName(name) && !found.includes(name)) found.push(name);
  }
  return found;
}

// Sorted as Rust sorts `String`s: by UTF-8 bytes (JavaScript's default sort compares UTF-16
// code units, which differs beyond the Basic Multilingual Plane).
function byBytes(a, b) {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

// The objects are built with their keys in alphabetical order: serde_json (without its
// `preserve_order` feature) writes them so, and a client printing the JSON it got should see
// the same text from either node.
function system(room, text) {
  return { room, text };
}

// A handler's arguments without the ack callback, and the callback (if the client asked one).
function takeAck(args) {
  const ack = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
  return [args, ack];
}

// The first argument, if it is a room a person may name.
function roomArg(args) {
  return validRoom(args[0]) ? args[0] : null;
}

function installChat(io) {
  const chat = io.of(NAMESPACE);
  // Who is connected *to this node*: socket id -> name, as socklab's map is per node (the
  // "taken" check and `who` see this node's sockets only, on either server).
  const names = new Map();
  const nameOf = (sid) => names.get(sid) ?? "";
  // The rooms a person chose (not the socket's own id, not its personal room), sorted.
  const publicRooms = (socket) =>
    [...socket.rooms].filter((r) => r !== socket.id && !r.startsWith(PERSONAL)).sort(byBytes);

  // socklab runs its middleware on every CONNECT; Node skips it for a recovered session
  // (`skipMiddlewares`), whose name is free again anyway (the old socket is gone).
  chat.use((socket, next) => {
    const auth = socket.handshake.auth;
    const name = auth && typeof auth.name === "string" ? auth.name : "";
    if (!validName(name)) {
      return next(new Error("a name of 1 to 32 letters, digits, - or _ is required"));
    }
    if ([...names.values()].includes(name)) {
      return next(new Error(`the name ${name} is taken`));
    }
    next();
  });

  // Like socklab, the same for a new socket and a recovered one (joining again a room it is
  // back in changes nothing; the `joined` line is said again, as socklab says it).
  chat.on("connection", (socket) => {
    const auth = socket.handshake.auth || {};
    const name = typeof auth.name === "string" ? auth.name : "";
    const room = validRoom(auth.room) ? auth.room : DEFAULT_ROOM;
    names.set(socket.id, name);
    socket.data.name = name; // shown by fetchSockets
    socket.join(personalRoom(name));
    socket.join(room);
    chat.to(room).emit("system", system(room, `${name} joined ${room}`));

    // A message goes to its room but not its sender (socklab: `.except_socket(sid)`).
    socket.on("chat message", (...raw) => {
      const [args, ack] = takeAck(raw);
      const room = roomArg(args);
      const text = args[1];
      if (room === null || typeof text !== "string") return; // no ack, as socklab
      const from = nameOf(socket.id);
      if (!socket.rooms.has(room)) return; // only members speak in a room
      socket.to(room).emit("chat message", { from, room, text });
      for (const target of mentions(text)) {
        if (target !== from) {
          chat.to(personalRoom(target)).emit("notification", { from, room, text });
        }
      }
      if (ack) ack(true);
    });

    socket.on("join", (...raw) => {
      const [args, ack] = takeAck(raw);
      const room = roomArg(args);
      if (room !== null) {
        socket.join(room);
        chat.to(room).emit("system", system(room, `${nameOf(socket.id)} joined ${room}`));
      }
      if (ack) ack(publicRooms(socket));
    });

    socket.on("leave", (...raw) => {
      const [args, ack] = takeAck(raw);
      const room = roomArg(args);
      if (room !== null) {
        const who = nameOf(socket.id);
        socket.leave(room);
        chat.to(room).emit("system", system(room, `${who} left ${room}`));
      }
      if (ack) ack(publicRooms(socket));
    });

    // This node's members of the room (socklab's `sockets_in` is local too).
    socket.on("who", (...raw) => {
      const [args, ack] = takeAck(raw);
      const room = roomArg(args) ?? DEFAULT_ROOM;
      const sids = chat.adapter.rooms.get(room) ?? new Set();
      const list = [...sids].filter((sid) => names.has(sid)).map((sid) => names.get(sid));
      if (ack) ack(list.sort(byBytes));
    });

    socket.on("disconnecting", () => {
      const who = nameOf(socket.id);
      names.delete(socket.id);
      for (const room of publicRooms(socket)) {
        socket.to(room).emit("system", system(room, `${who} left ${room}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// What the test sees: connections, and serverSideEmits from other nodes
// ---------------------------------------------------------------------------------------------

function report(nsp) {
  nsp.on("connection", (socket) => {
    out({ connection: { ns: nsp.name, id: socket.id, recovered: socket.recovered } });
    socket.on("disconnect", (reason) => out({ disconnect: { ns: nsp.name, id: socket.id, reason } }));
  });
  // A serverSideEmit from another node reaches `Namespace#_onServerSideEmit` (an internal
  // method: Socket.IO has no public "any server-side event" listener), its ack callback last
  // when the sender wants answers. This fixture has no listeners of its own: it reports the
  // event and answers the callback itself.
  nsp._onServerSideEmit = (packet) => {
    const args = [...packet];
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
    const [event, ...rest] = args;
    out({ serverSideEmit: { ns: nsp.name, event, args: rest } });
    if (ack) ack({ from: "node", event });
  };
}

// ---------------------------------------------------------------------------------------------
// The commands
// ---------------------------------------------------------------------------------------------

// The longest a command that asks the other nodes waits for them (the Rust side waits 10 s).
const ASK_MS = 3000;

function namespace(io, ns) {
  if (typeof ns !== "string" || !ns.startsWith("/")) throw new Error(`bad namespace ${JSON.stringify(ns)}`);
  return io.of(ns);
}

// `in`/`room` and `except` take a room or a list of rooms; absent, they do not narrow.
function narrowed(op, { room, in: within, except }) {
  const to = room !== undefined ? room : within;
  if (to !== undefined) op = op.in(to);
  if (except !== undefined) op = op.except(except);
  return op;
}

// JSON has no bytes: `{"$bytes": "HEX"}` (that one key) stands for a Buffer of those bytes,
// at any depth of a command's `args`, so that a test can send binary (Socket.IO sends a
// Buffer as an attachment, the adapter writes the entry as msgpack).
function withBytes(v) {
  if (Array.isArray(v)) return v.map(withBytes);
  if (v === null || typeof v !== "object") return v;
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === "$bytes") {
    if (typeof v.$bytes !== "string" || !/^(?:[0-9a-fA-F]{2})*$/.test(v.$bytes)) {
      throw new Error("$bytes takes an even number of hex digits");
    }
    return Buffer.from(v.$bytes, "hex");
  }
  return Object.fromEntries(keys.map((k) => [k, withBytes(v[k])]));
}

function argsOf(c) {
  if (c.args === undefined) return [];
  if (!Array.isArray(c.args)) throw new Error("args must be an array");
  return withBytes(c.args);
}

// Every command's `args` may hold bytes as `{"$bytes": "HEX"}` (`withBytes`).
const COMMANDS = {
  // {ns, room?, except?, event, args}: io.of(ns).to(room).except(except).emit(event, ...args)
  broadcast(io, c) {
    narrowed(namespace(io, c.ns), c).emit(c.event, ...argsOf(c));
    return {};
  },

  // {ns, room?} -> {sockets: [{id, rooms (sorted), data}]}, the whole cluster's (as the
  // adapter sees it: the nodes that answer in time).
  async fetchSockets(io, c) {
    const sockets = await narrowed(namespace(io, c.ns).timeout(ASK_MS), c).fetchSockets();
    return {
      sockets: sockets.map((s) => ({ id: s.id, rooms: [...s.rooms].sort(byBytes), data: s.data })),
    };
  },

  // {ns, in?, rooms}
  socketsJoin(io, c) {
    narrowed(namespace(io, c.ns), c).socketsJoin(c.rooms);
    return {};
  },

  // {ns, in?, rooms}
  socketsLeave(io, c) {
    narrowed(namespace(io, c.ns), c).socketsLeave(c.rooms);
    return {};
  },

  // {ns, in?, close}: close true closes the underlying connections too.
  disconnectSockets(io, c) {
    narrowed(namespace(io, c.ns), c).disconnectSockets(Boolean(c.close));
    return {};
  },

  // {ns, event, args, ack?}. With `ack`, answers {responses} once every other node answered,
  // or the error with the responses so far. The adapter's own limit is 5 s (ClusterAdapter's
  // DEFAULT_TIMEOUT; a Namespace has no `timeout()` for serverSideEmit), so the command's.
  serverSideEmit(io, c) {
    const nsp = namespace(io, c.ns);
    const args = argsOf(c);
    if (!c.ack) {
      nsp.serverSideEmit(c.event, ...args);
      return {};
    }
    return new Promise((resolve, reject) => {
      nsp.serverSideEmit(c.event, ...args, (err, responses) => {
        if (err) {
          const e = new Error(err.message);
          e.responses = responses;
          reject(e);
        } else {
          resolve({ responses });
        }
      });
    });
  },

  // {ns} -> {count}: the adapter's count of servers (Redis PUBSUB NUMSUB of the namespace's
  // channel).
  async serverCount(io, c) {
    return { count: await namespace(io, c.ns).adapter.serverCount() };
  },
};

async function answer(io, line) {
  let c;
  try {
    c = JSON.parse(line);
  } catch (e) {
    return out({ id: null, error: `not JSON: ${e.message}` });
  }
  const id = c && c.id !== undefined ? c.id : null;
  const run = c && Object.prototype.hasOwnProperty.call(COMMANDS, c.cmd) ? COMMANDS[c.cmd] : null;
  if (!run) return out({ id, error: `unknown command ${JSON.stringify(c && c.cmd)}` });
  try {
    const result = await run(io, c);
    out({ id, ok: true, ...result });
  } catch (e) {
    const error = { id, error: e && e.message ? e.message : String(e) };
    if (e && e.responses !== undefined) error.responses = e.responses;
    out(error);
  }
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

// Read from the start, so that end of file stops the server even while it connects; a
// command sent early waits for the server (`started`). Commands run side by side (one that
// waits for the other nodes does not hold up the next); at end of file, those still running
// are answered first.
let started;
const running = new Set();
const commands = readline.createInterface({ input: process.stdin });
commands.on("line", (line) => {
  if (line.trim() === "") return;
  const p = started.then((io) => answer(io, line));
  running.add(p);
  p.finally(() => running.delete(p));
});
commands.on("close", () => {
  Promise.allSettled([...running]).then(() => process.exit(0));
});

async function main() {
  const redis = createClient({ url: redisUrl });
  // Without a listener an error event would crash the process; once connected, the client
  // reconnects by itself. The first connect must succeed, though: a node that cannot reach
  // Redis says so and exits rather than retry forever.
  redis.on("error", (e) => process.stderr.write(`redis: ${e.message}\n`));
  await new Promise((resolve, reject) => {
    redis.once("error", reject);
    redis.connect().then(() => {
      redis.off("error", reject);
      resolve();
    }, reject);
  });

  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(redis),
    connectionStateRecovery: { maxDisconnectionDuration: 120000, skipMiddlewares: true },
    transports: ["polling", "websocket"],
  });
  installChat(io);
  report(io.of("/"));
  report(io.of(NAMESPACE));

  const port = portArg === undefined ? 0 : Number(portArg);
  await new Promise((resolve, reject) => {
    httpServer.once("error", reject); // the port is taken, say
    httpServer.listen(port, "127.0.0.1", resolve);
  });
  out({ ready: true, port: httpServer.address().port });
  return io;
}

started = main();
started.catch((e) => {
  out({ fatal: e && e.message ? e.message : String(e) });
  process.exit(1);
});
