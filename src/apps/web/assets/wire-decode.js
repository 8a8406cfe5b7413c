// wire-decode.js: the bytes of one packet, field by field, for the /wire page. Pure code
// (bytes in, a description out), like the server's src/wire; it decodes what the server's
// wire tap recorded (src/apps/wire.rs):
//
//   socklab     frames: a u32 length, then the packet (docs/protocol.md, sections 2 to 4)
//   websocket   HTTP (the upgrade, or a page's request), then WebSocket frames (RFC 6455):
//               FIN/opcode, mask, length; in a text frame an Engine.IO packet ("4" message,
//               "2" ping, ...) holding a Socket.IO packet ("2/chat,7[...]")
//   polling     Engine.IO records, "\x1e" between them ("b" + base64 for a binary one)
//
// A description is a list of parts; a part is a title and its fields, each a label, the
// bytes it spans (offset, length) and what they mean. Bytes cut off by the recorder end the
// description where they end: "need more bytes" is said, never guessed.
(function (root) {
  "use strict";

  const P = root.socklabPackets || require("./socklab-packets.js");
  const SOCKLAB_TYPES = ["CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "PING", "PONG", "HELLO"];
  const SIO_TYPES = ["CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"];
  const EIO_TYPES = { 0: "open", 1: "close", 2: "ping", 3: "pong", 4: "message", 5: "upgrade", 6: "noop" };
  const OPCODES = { 0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong" };
  const utf8 = new TextDecoder();

  function hex(bytes, max) {
    const shown = max === undefined ? bytes : bytes.subarray(0, max);
    const s = Array.from(shown, (b) => b.toString(16).padStart(2, "0")).join(" ");
    return shown.length < bytes.length ? `${s} ...` : s;
  }

  // Lines of 16 bytes: offset, hex, and the printable characters.
  function dump(bytes) {
    const lines = [];
    for (let i = 0; i < bytes.length; i += 16) {
      const row = bytes.subarray(i, i + 16);
      const text = Array.from(row, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
      lines.push(`${i.toString(16).padStart(6, "0")}  ${hex(row).padEnd(47)}  ${text}`);
    }
    return lines.join("\n");
  }

  // A cursor over `bytes` that records each field it takes; it throws "short" at the end.
  class Reader {
    constructor(bytes, base) {
      this.b = bytes;
      this.at = 0;
      this.base = base || 0;
      this.fields = [];
      this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    left() { return this.b.length - this.at; }
    take(n, label, show) {
      if (this.left() < n) throw new Error(`short: ${label} needs ${n} bytes, ${this.left()} left`);
      const start = this.at;
      this.at += n;
      const bytes = this.b.subarray(start, this.at);
      this.fields.push({ label, offset: this.base + start, length: n, value: show(bytes, start) });
      return bytes;
    }
    u8(label, show) { return this.take(1, label, (b) => (show ? show(b[0]) : String(b[0])))[0]; }
    u16(label) { this.take(2, label, (_, s) => String(this.view.getUint16(s))); return this.view.getUint16(this.at - 2); }
    u32(label) { this.take(4, label, (_, s) => String(this.view.getUint32(s))); return this.view.getUint32(this.at - 4); }
    u64(label) { this.take(8, label, (_, s) => String(this.view.getBigUint64(s))); }
    // A length of `width` bytes, then that many bytes of text (or JSON).
    str(width, label, json) {
      const n = width === 1 ? this.u8(`${label} length`) : width === 2 ? this.u16(`${label} length`) : this.u32(`${label} length`);
      if (n === 0) return "";
      const text = utf8.decode(this.take(n, label, (b) => (json ? pretty(utf8.decode(b)) : JSON.stringify(utf8.decode(b)))));
      return text;
    }
  }

  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text)); } catch (e) { return `${text} (not JSON)`; }
  }

  // ---- socklab frames (docs/protocol.md) ------------------------------------------------
  function socklabFrame(r) {
    const len = r.u32("frame length");
    const start = r.at;
    const type = r.u8("packet type", (t) => `${t} ${SOCKLAB_TYPES[t] || "unknown"}`);
    const name = SOCKLAB_TYPES[type] || `type ${type}`;
    let summary = name;
    const attachments = () => {
      const n = r.u8("attachment count");
      for (let i = 0; i < n; i++) {
        const size = r.u32(`attachment ${i} length`);
        r.take(size, `attachment ${i}`, (b) => hex(b, 32));
      }
    };
    switch (type) {
      case 0: summary += ` ${r.str(1, "namespace")}`; r.str(4, "data (JSON)", true); break;
      case 1: case 4: summary += ` ${r.str(1, "namespace")}`; r.str(2, type === 1 ? "reason" : "message"); break;
      case 2: case 3: {
        const flags = r.u8("flags", (f) => `0x${f.toString(16).padStart(2, "0")}: ` +
          [f & 1 && "ack id", f & 2 && "attachments", f & 4 && "offset"].filter(Boolean).join(", ") || "none");
        summary += ` ${r.str(1, "namespace")}`;
        if (flags & 1 || type === 3) summary += ` ack ${r.u32("ack id")}`;
        if (type === 2 && flags & 4) r.u64("offset (broadcast)");
        if (type === 2) summary += ` "${r.str(1, "event name")}"`;
        r.str(4, "arguments (JSON)", true);
        if (flags & 2) attachments();
        break;
      }
      case 7:
        r.take(7, "magic", (b) => JSON.stringify(utf8.decode(b)));
        r.u8("version");
        r.str(4, "settings (JSON)", true);
        break;
    }
    if (r.at - start !== len) throw new Error(`the frame says ${len} bytes, its packet used ${r.at - start}`);
    return summary;
  }

  // ---- WebSocket frames, Engine.IO, Socket.IO --------------------------------------------
  function sioSummary(text) {
    try {
      const p = P.decode(text);
      let s = `Socket.IO ${SIO_TYPES[p.type]} ${p.nsp}`;
      if (p.attachments) s += ` (${p.attachments} attachments follow)`;
      if (p.id !== undefined) s += ` ack ${p.id}`;
      if ((p.type === P.EVENT || p.type === P.BINARY_EVENT) && p.data) s += ` "${p.data[0]}"`;
      return { summary: s, packet: p };
    } catch (e) {
      return { summary: `Socket.IO: ${e.message}` };
    }
  }

  // One Engine.IO packet as text: its type, and the Socket.IO packet in a message.
  function engineio(text, fields, offset) {
    const type = EIO_TYPES[text[0]] || "unknown";
    fields.push({ label: "Engine.IO type", offset, length: 1, value: `${text[0]} ${type}` });
    if (text[0] !== "4") return `Engine.IO ${type}${text.length > 1 ? " " + text.slice(1, 80) : ""}`;
    const { summary, packet } = sioSummary(text.slice(1));
    if (packet) {
      fields.push({ label: "Socket.IO type", offset: offset + 1, length: 1, value: `${packet.type} ${SIO_TYPES[packet.type]}` });
      fields.push({ label: "namespace", value: packet.nsp });
      if (packet.id !== undefined) fields.push({ label: "ack id", value: String(packet.id) });
      if (packet.attachments) fields.push({ label: "attachments", value: String(packet.attachments) });
      if (packet.data !== undefined) fields.push({ label: "data (JSON)", value: JSON.stringify(packet.data) });
    }
    return summary;
  }

  function wsFrame(r) {
    const b0 = r.u8("FIN, RSV, opcode", (b) => `FIN ${b >> 7}, opcode ${b & 15} ${OPCODES[b & 15] || "reserved"}`);
    const b1 = r.u8("MASK, length", (b) => `MASK ${b >> 7}, length ${b & 127}${(b & 127) > 125 ? " (longer: next)" : ""}`);
    let len = b1 & 127;
    if (len === 126) len = r.u16("length (16 bits)");
    else if (len === 127) { r.u64("length (64 bits)"); len = Number(r.view.getBigUint64(r.at - 8)); }
    let key = null;
    if (b1 & 128) key = r.take(4, "masking key", (k) => hex(k));
    const opcode = b0 & 15;
    const cut = Math.min(len, r.left());
    const raw = r.take(cut, cut < len ? `payload (cut: ${cut} of ${len} bytes)` : "payload", (b) => hex(b, 24));
    const payload = key ? raw.map((x, i) => x ^ key[i % 4]) : raw;
    const base = r.base + r.at - cut;
    let summary = `WebSocket ${OPCODES[opcode] || "opcode " + opcode}${key ? " (masked)" : ""}, ${len} bytes`;
    if (opcode === 1) {
      const text = utf8.decode(payload);
      r.fields.push({ label: "payload as text", offset: base, length: cut, value: text.slice(0, 400) });
      summary += ": " + engineio(text, r.fields, base);
    } else if (opcode === 8 && payload.length >= 2) {
      summary += `: close ${(payload[0] << 8) | payload[1]} ${utf8.decode(payload.subarray(2))}`;
    } else if (opcode === 2) {
      summary += ": an attachment";
    }
    if (cut < len) throw new Error("short: the rest was cut by the recorder");
    return summary;
  }

  // An HTTP head at the start of `bytes`: its lines, and where it ends (0: not HTTP).
  function httpHead(bytes) {
    const start = utf8.decode(bytes.subarray(0, 8));
    if (!/^(GET|POST|OPTIONS|HEAD|PUT|DELETE) |^HTTP\/1\./.test(start)) return null;
    const text = utf8.decode(bytes);
    const end = text.indexOf("\r\n\r\n");
    const head = end < 0 ? text : text.slice(0, end);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    const bodyLen = length ? Number(length[1]) : 0;
    const headLen = end < 0 ? bytes.length : new TextEncoder().encode(text.slice(0, end + 4)).length;
    return { lines: head.split("\r\n"), headLen, bodyLen };
  }

  // ---- one recorded packet ------------------------------------------------------------------
  // `bytes` a Uint8Array; `transport` socklab | websocket | polling.
  function describe(bytes, transport) {
    const parts = [];
    let at = 0;
    const run = (title, fn) => {
      const r = new Reader(bytes.subarray(at), at);
      const part = { title, fields: r.fields };
      parts.push(part);
      try {
        part.title = fn(r) || title;
      } catch (e) {
        part.error = e.message;
        at = bytes.length;
        return;
      }
      at += r.at;
    };
    if (transport === "polling") return polling(bytes);
    while (at < bytes.length) {
      if (transport === "socklab") { run("socklab frame", socklabFrame); continue; }
      const http = httpHead(bytes.subarray(at));
      if (http) {
        const fields = http.lines.map((l, i) => ({ label: i ? "header" : "start line", value: l }));
        const body = bytes.subarray(at + http.headLen, at + http.headLen + http.bodyLen);
        if (body.length) fields.push({ label: "body", offset: at + http.headLen, length: body.length, value: utf8.decode(body).slice(0, 400) });
        parts.push({ title: `HTTP ${http.lines[0]}`, fields });
        at += http.headLen + http.bodyLen;
        continue;
      }
      run("WebSocket frame", wsFrame);
    }
    return parts;
  }

  // A long-polling body: Engine.IO records, "\x1e" between them.
  function polling(bytes) {
    const parts = [];
    let offset = 0;
    for (const record of utf8.decode(bytes).split("\x1e")) {
      const fields = [];
      let title;
      if (record[0] === "b") {
        fields.push({ label: "binary record (base64)", offset, length: record.length, value: record.slice(1, 80) });
        title = "Engine.IO binary message (an attachment)";
      } else {
        title = record ? engineio(record, fields, offset) : "empty record";
      }
      parts.push({ title: `record: ${title}`, fields });
      offset += new TextEncoder().encode(record).length + 1;
    }
    return parts;
  }

  // What a page's own frame looks like on the wire. Received: the server's frame is rebuilt
  // from its payload, exactly (a server never masks, and never fragments here). Sent: the
  // browser sets the mask bit and masks the payload with a key this script never sees, so
  // the frame is shown unmasked (mask bit 0, no key) and the fields say what differs.
  function ownFrame(direction, data) {
    const text = typeof data === "string";
    const payload = text ? new TextEncoder().encode(data) : new Uint8Array(data);
    const n = payload.length;
    const head = [0x80 | (text ? 1 : 2)];
    if (n < 126) head.push(n);
    else if (n < 65536) head.push(126, n >> 8, n & 255);
    else {
      head.push(127, 0, 0, 0, 0);
      for (let s = 24; s >= 0; s -= 8) head.push((n >>> s) & 255);
    }
    const frame = new Uint8Array(head.length + n);
    frame.set(head);
    frame.set(payload, head.length);
    const parts = describe(frame, "websocket");
    const masked = direction === "out";
    if (masked && parts[0]) {
      const fields = parts[0].fields;
      fields[1].value = fields[1].value.replace("MASK 0", "MASK 1 on the wire (0 here: shown unmasked)");
      const at = fields.findIndex((f) => f.label.startsWith("payload"));
      fields.splice(at, 0, { label: "masking key", value: "4 bytes chosen by the browser; JavaScript never sees them" });
    }
    return { frame, parts, masked };
  }

  const api = { describe, ownFrame, dump, hex, polling };
  root.socklabWire = api;
  if (typeof module === "object" && module.exports) module.exports = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
