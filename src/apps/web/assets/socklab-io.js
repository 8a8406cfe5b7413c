// socklab-io.js: a small Socket.IO client, the browser side of lesson 21.
//
// Lesson 21 showed the packets from the server's side; here they are from the browser's. One
// WebSocket carries three layers, each a few characters at the front of a frame:
//
//   WebSocket frame   "42/chat,7[\"who\",\"lobby\"]"
//   Engine.IO packet   4 = message (0 open, 1 close, 2 ping, 3 pong, 6 noop)
//   Socket.IO packet    2 = EVENT, namespace /chat, ack id 7, then the JSON arguments
//
// Binary data travels as whole binary frames after a text frame that announces them:
// "451-/chat,[\"upload\",{\"_placeholder\":true,\"num\":0}]" then one binary frame.
//
// The API follows socket.io-client 4.x closely enough for the pages here:
//
//   const s = io("/chat", { auth: { name: "ada" } });
//   s.on("connect", () => console.log(s.id, s.recovered));
//   s.emit("who", "lobby", (names) => console.log(names));        // ack
//   s.timeout(2000).emit("who", "lobby", (err, names) => {});     // ack with a time limit
//   const names = await s.emitWithAck("who", "lobby");
//   s.io.on("reconnect_attempt", (n) => {});                      // the Manager: the WebSocket
//
// What it leaves out: HTTP long-polling (WebSocket only), volatile emits, `onAny`, Blob
// attachments (ArrayBuffer and typed arrays only), packet retries. Every frame in and out goes
// to `io.onFrame(direction, data, time)` (or the `onFrame` option) when one is set, for a
// wire inspector. Under Node (the tests) it needs a global WebSocket (the `ws` package).
//
// The packets themselves (text and bytes, no I/O) are in socklab-packets.js, loaded first.
(function (root) {
  "use strict";

  const P = root.socklabPackets || require("./socklab-packets.js");
  const { CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK } = P;
  const { RESERVED, encode, decode, reconstruct } = P;

  // Calls `fn`; what it throws is reported (on the console) but breaks nothing here: a bug in
  // a page's listener must not look like a broken connection.
  function safely(fn, args) {
    try { fn(...args); } catch (e) { setTimeout(() => { throw e; }); }
  }

  // ---- a tiny event emitter, for sockets and managers ---------------------------------------
  class Emitter {
    constructor() { this._listeners = {}; }
    on(name, fn) { (this._listeners[name] = this._listeners[name] || []).push(fn); return this; }
    once(name, fn) {
      const wrapped = (...a) => { this.off(name, wrapped); fn(...a); };
      return this.on(name, wrapped);
    }
    off(name, fn) {
      if (!name) this._listeners = {};
      else if (!fn) delete this._listeners[name];
      else this._listeners[name] = (this._listeners[name] || []).filter((f) => f !== fn);
      return this;
    }
    // Calls the listeners of `name`; a listener that throws is reported, the others still run.
    _fire(name, ...args) {
      for (const fn of (this._listeners[name] || []).slice()) safely(fn, args);
    }
  }

  // ---- the Manager: one WebSocket, Engine.IO, reconnection ----------------------------------
  class Manager extends Emitter {
    constructor(url, opts) {
      super();
      this.url = url; // ws://host:port/socket.io/?EIO=4&transport=websocket
      this.opts = opts;
      this.nsps = {}; // namespace -> Socket, the sockets sharing this WebSocket
      this.ws = null;
      this.state = "closed"; // closed | opening | open
      this.attempts = 0; // reconnection attempts since the last open
      this.skipReconnect = false;
      this.timer = null; // the backoff's timer
      this.heartbeat = null;
      this.pending = null; // a binary packet waiting for its attachments
    }

    socket(nsp, opts) {
      return this.nsps[nsp] || (this.nsps[nsp] = new Socket(this, nsp, opts));
    }

    open() {
      if (this.state !== "closed") return;
      this.state = "opening";
      this.skipReconnect = false;
      let ws;
      try {
        ws = new root.WebSocket(this.url);
      } catch (e) {
        return this._lost("transport error", e);
      }
      this.ws = ws;
      ws.binaryType = "arraybuffer";
      ws.onmessage = (m) => this._frame(m.data);
      ws.onclose = () => this._lost(this.state === "open" ? "transport close" : "transport error");
      ws.onerror = () => {}; // a close event always follows, with what we need
    }

    _record(direction, data) {
      const hook = this.opts.onFrame || io.onFrame;
      if (hook) hook(direction, data, Date.now());
    }

    _send(frames) {
      for (const f of frames) {
        this._record("out", f);
        this.ws.send(f);
      }
    }

    // One WebSocket frame in: Engine.IO first.
    _frame(data) {
      if (this.ws === null) return;
      this._record("in", data);
      try {
        if (typeof data !== "string") return this._attachment(data);
        switch (data[0]) {
          case "0": return this._opened(JSON.parse(data.slice(1)));
          case "1": return this._close("transport close");
          case "2": this._send(["3" + data.slice(1)]); return this._alive();
          case "4": return this._packet(decode(data.slice(1)));
          case "6": return; // noop
          default: throw new Error("unknown Engine.IO packet");
        }
      } catch (e) {
        this._close("parse error");
      }
    }

    // Engine.IO's open packet: the session's timers. Then every socket sends its CONNECT.
    _opened(info) {
      this.state = "open";
      this.engine = info;
      this._alive();
      const again = this.attempts > 0;
      this.attempts = 0;
      this._fire("open");
      if (again) this._fire("reconnect");
      for (const s of Object.values(this.nsps)) if (s.active) s._sendConnect();
    }

    // The server pings every pingInterval; silence beyond pingInterval + pingTimeout means the
    // connection is dead, even though no close ever arrived.
    _alive() {
      clearTimeout(this.heartbeat);
      const { pingInterval, pingTimeout } = this.engine;
      this.heartbeat = setTimeout(() => this._close("ping timeout"), pingInterval + pingTimeout);
    }

    _packet(p) {
      if (p.attachments > 0) {
        this.pending = { p, buffers: [] };
        return;
      }
      this._deliver(p);
    }

    _attachment(bytes) {
      if (!this.pending) throw new Error("unexpected binary frame");
      const { p, buffers } = this.pending;
      buffers.push(bytes);
      if (buffers.length < p.attachments) return;
      this.pending = null;
      p.data = reconstruct(p.data, buffers);
      this._deliver(p);
    }

    _deliver(p) {
      const s = this.nsps[p.nsp];
      if (s) s._onPacket(p);
    }

    // Closes the WebSocket ourselves (`why` is what the sockets are told), then reconnects
    // unless asked not to.
    _close(why) {
      const ws = this.ws;
      if (ws) {
        this._lost(why);
        try { ws.close(); } catch (e) { /* already closing */ }
      }
    }

    // The WebSocket is gone (or never came): tell the sockets, then try again with backoff.
    _lost(why, error) {
      const wasOpen = this.state === "open";
      if (this.ws) this.ws.onmessage = this.ws.onclose = null;
      this.ws = null;
      this.state = "closed";
      this.pending = null;
      clearTimeout(this.heartbeat);
      const sockets = Object.values(this.nsps).filter((s) => s.active);
      if (!wasOpen) {
        const err = error || new Error("websocket error");
        this._fire("error", err);
        for (const s of sockets) s._fire("connect_error", err);
      }
      for (const s of sockets) s._onClose(why);
      this._fire("close", why);
      if (!this.skipReconnect && this.opts.reconnection !== false && sockets.length) this._reconnect();
    }

    // Exponential backoff with jitter (socket.io-client's formula): 1 s, 2 s, 4 s ... capped
    // at 5 s, each moved by up to +-50 % at random, so that a thousand browsers cut off by one
    // server restart do not all come back in the same millisecond.
    delay() {
      const { reconnectionDelay: min = 1000, reconnectionDelayMax: max = 5000 } = this.opts;
      const jitter = this.opts.randomizationFactor ?? 0.5;
      let ms = min * Math.pow(2, this.attempts);
      const r = Math.random();
      const deviation = Math.floor(r * jitter * ms);
      ms = (Math.floor(r * 10) & 1) === 0 ? ms - deviation : ms + deviation;
      return Math.min(ms, max);
    }

    _reconnect() {
      if (this.timer) return;
      if (this.attempts >= (this.opts.reconnectionAttempts ?? Infinity)) {
        return this._fire("reconnect_failed");
      }
      const ms = this.delay();
      this.attempts++;
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.skipReconnect) return;
        this._fire("reconnect_attempt", this.attempts);
        this.open();
      }, ms);
    }

    // The last socket left: close the WebSocket for good.
    _release() {
      if (Object.values(this.nsps).some((s) => s.active)) return;
      this.skipReconnect = true;
      clearTimeout(this.timer);
      this.timer = null;
      this.attempts = 0;
      if (this.ws) {
        if (this.state === "open") this._send(["1"]); // Engine.IO close
        this._close("forced close");
      }
    }
  }

  // ---- the Socket: one namespace on a Manager -----------------------------------------------
  class Socket extends Emitter {
    constructor(manager, nsp, opts) {
      super();
      this.io = manager;
      this.nsp = nsp;
      this.auth = opts.auth;
      this.ackTimeout = opts.ackTimeout;
      this.stripOffset = opts.stripOffset !== false;
      this.id = undefined;
      this.connected = false;
      this.recovered = false;
      this.active = false; // wants to be connected (reconnects while true)
      this._pid = undefined; // the session's private id, for recovery
      this._lastOffset = undefined; // the offset of the last broadcast received
      this._ids = 0;
      this._acks = {}; // ack id -> callback
      this._buffer = []; // emits waiting for the connection
      this._timeout = undefined; // set by timeout(ms) for the next emit only
    }

    get disconnected() { return !this.connected; }

    connect() {
      if (this.connected) return this;
      this.active = true;
      if (this.io.state === "open") this._sendConnect();
      else this.io.open();
      return this;
    }

    // CONNECT carries the auth; after a first connection also `pid` and `offset`: "I am that
    // session, and I have seen the broadcasts up to this one" (connection state recovery).
    _sendConnect() {
      let auth = typeof this.auth === "function" ? this.auth() : this.auth;
      if (this._pid) auth = Object.assign({ pid: this._pid, offset: this._lastOffset }, auth);
      this.io._send(encode(CONNECT, this.nsp, auth));
    }

    timeout(ms) {
      this._timeout = ms;
      return this;
    }

    // emit(name, ...args, [ack]): to the server. An ack callback gets the server's answer; with
    // timeout(ms) (or the ackTimeout option) it gets (err, ...answer), err set when none came.
    emit(name, ...args) {
      if (RESERVED.includes(name)) throw new Error(`"${name}" is a reserved event name`);
      const timeout = this._timeout ?? this.ackTimeout;
      this._timeout = undefined;
      let id;
      if (typeof args[args.length - 1] === "function") {
        const fn = args.pop();
        id = this._ids++;
        this._acks[id] = timeout === undefined ? fn : this._limited(id, fn, timeout);
      }
      const frames = encode(EVENT, this.nsp, [name, ...args], id);
      if (this.connected) this.io._send(frames);
      else this._buffer.push({ id, frames }); // the offline buffer, sent on connect
      return this;
    }

    emitWithAck(name, ...args) {
      const limited = this._timeout !== undefined || this.ackTimeout !== undefined;
      return new Promise((resolve, reject) => {
        this.emit(name, ...args, (...answer) => {
          if (!limited) return resolve(answer[0]);
          if (answer[0]) reject(answer[0]);
          else resolve(answer[1]);
        });
      });
    }

    // An ack callback with a time limit: (err, ...answer).
    _limited(id, fn, ms) {
      const timer = setTimeout(() => {
        delete this._acks[id];
        // Not sent yet? Then never: the page was told it failed.
        this._buffer = this._buffer.filter((b) => b.id !== id);
        fn(new Error("operation has timed out"));
      }, ms);
      const call = (...answer) => {
        clearTimeout(timer);
        fn(null, ...answer);
      };
      call.fail = (why) => {
        clearTimeout(timer);
        fn(new Error(why));
      };
      return call;
    }

    _onPacket(p) {
      switch (p.type) {
        case CONNECT: return this._onConnect(p.data || {});
        case CONNECT_ERROR: {
          // Refused (the server's middleware, or no such namespace): no retry.
          this.active = false;
          const data = p.data || {};
          const err = new Error(typeof data === "string" ? data : data.message);
          err.data = data.data;
          this._fire("connect_error", err);
          return this.io._release();
        }
        case EVENT:
        case BINARY_EVENT: return this._onEvent(p);
        case ACK:
        case BINARY_ACK: {
          const fn = this._acks[p.id];
          delete this._acks[p.id];
          if (fn) safely(fn, p.data);
          return;
        }
        case DISCONNECT:
          this.active = false;
          this._onClose("io server disconnect");
          return this.io._release();
      }
    }

    _onConnect(data) {
      // The server says `recovered`; a server that does not is recognised by the same pid.
      this.recovered = data.recovered ?? (this._pid !== undefined && this._pid === data.pid);
      if (!this.recovered) this._lastOffset = data.offset === undefined ? undefined : String(data.offset);
      this.id = data.sid;
      this._pid = data.pid;
      this.connected = true;
      const waiting = this._buffer;
      this._buffer = [];
      for (const b of waiting) this.io._send(b.frames);
      this._fire("connect");
    }

    _onEvent(p) {
      const args = p.data.slice();
      // With a session to recover (a pid), the server appends each broadcast's offset as a last
      // string argument. Keep it for the next CONNECT, and take it off: listeners see the
      // arguments the server's application sent. (socket.io-client leaves it on.) A string that
      // really was the last argument of a direct emit is taken too: on the wire they look the
      // same. With such a server, pass `stripOffset: false`.
      if (this._pid && this.stripOffset && args.length > 1 && typeof args[args.length - 1] === "string") {
        this._lastOffset = args.pop();
      }
      if (p.id !== undefined) {
        let sent = false;
        args.push((...answer) => {
          if (sent || !this.connected) return; // one answer, on this connection
          sent = true;
          this.io._send(encode(ACK, this.nsp, answer, p.id));
        });
      }
      this._fire(...args);
    }

    // The connection of this socket is gone: `reason` is one of Socket.IO's strings ("io server
    // disconnect", "io client disconnect", "transport close", "transport error", "ping timeout",
    // "parse error", "forced close"). The acks of packets that went out are given up (their
    // answers cannot come on another connection): those with a time limit fail now. Packets
    // still in the offline buffer keep theirs.
    _onClose(reason) {
      const was = this.connected;
      this.connected = false;
      this.id = undefined;
      const buffered = new Set(this._buffer.map((b) => String(b.id)));
      for (const id of Object.keys(this._acks)) {
        if (buffered.has(id)) continue;
        const fn = this._acks[id];
        delete this._acks[id];
        if (fn.fail) fn.fail("socket has been disconnected");
      }
      if (was) this._fire("disconnect", reason);
    }

    disconnect() {
      if (this.connected) this.io._send(encode(DISCONNECT, this.nsp));
      this.active = false;
      this._buffer = [];
      this._onClose("io client disconnect");
      this.io._release();
      return this;
    }

    close() { return this.disconnect(); }
  }

  // ---- io(): the entry point ----------------------------------------------------------------
  const managers = {};

  // io("/chat"), io("http://127.0.0.1:7100/scores", opts): a socket of that namespace, on the
  // page's server's WebSocket when one exists already (multiplexing), else on a new one.
  function io(uri, opts) {
    if (typeof uri === "object") [uri, opts] = [undefined, uri];
    opts = opts || {};
    const base = root.location ? root.location.href : "http://localhost/";
    const url = new URL(uri || "/", base);
    const scheme = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
    const path = opts.path || "/socket.io/";
    const ws = `${scheme}//${url.host}${path}?EIO=4&transport=websocket`;
    const nsp = url.pathname || "/";
    let m = managers[ws];
    // A second socket for the same namespace gets a connection of its own, as in Socket.IO.
    if (!m || opts.forceNew || opts.multiplex === false || m.nsps[nsp]) {
      m = new Manager(ws, opts);
      if (!opts.forceNew && opts.multiplex !== false && !managers[ws]) managers[ws] = m;
    }
    const s = m.socket(nsp, opts);
    if (opts.autoConnect !== false) s.connect();
    return s;
  }
  io.onFrame = null; // (direction "in"|"out", data string|ArrayBuffer, time ms) for an inspector
  io.Manager = Manager;
  io.Socket = Socket;
  io.protocol = 5;
  io.encode = encode; // for lessons and tests
  io.decode = decode;

  root.io = io;
  if (typeof module === "object" && module.exports) module.exports = { io };
})(typeof globalThis !== "undefined" ? globalThis : this);
