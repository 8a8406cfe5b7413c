// socklab-packets.js: Socket.IO v5 packets as text and bytes, for socklab-io.js.
//
// Pure code, like the server's src/wire: a packet in, the WebSocket frames that carry it out,
// and back. No socket, no timer. A packet is its type, its attachment count (binary only),
// its namespace ("/" is left out), its ack id, and its JSON data:
//
//   2/chat,7["who","lobby"]                        EVENT in /chat, ack id 7
//   3/chat,7[["ada","bob"]]                        its ACK
//   51-["upload",{"_placeholder":true,"num":0}]    BINARY_EVENT in /, one attachment follows
//
// socklab-io.js adds Engine.IO's "4" (message) in front; the attachments go as binary frames.
(function (root) {
  "use strict";

  // ---- Socket.IO v5 packets --------------------------------------------------------------
  const CONNECT = 0, DISCONNECT = 1, EVENT = 2, ACK = 3, CONNECT_ERROR = 4;
  const BINARY_EVENT = 5, BINARY_ACK = 6;
  // Names a page listens to but never sends: they describe the connection itself.
  const RESERVED = ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"];

  const isBinary = (x) => x instanceof ArrayBuffer || ArrayBuffer.isView(x);

  // Replaces every ArrayBuffer or typed array in `data` by a placeholder {_placeholder, num}
  // and collects the bytes in `buffers`, in order of `num`.
  function deconstruct(data, buffers) {
    if (isBinary(data)) {
      buffers.push(data);
      return { _placeholder: true, num: buffers.length - 1 };
    }
    if (Array.isArray(data)) return data.map((d) => deconstruct(d, buffers));
    if (data && typeof data === "object" && typeof data.toJSON !== "function") {
      const out = {};
      for (const k of Object.keys(data)) out[k] = deconstruct(data[k], buffers);
      return out;
    }
    return data;
  }

  // The reverse: each placeholder becomes its attachment (an ArrayBuffer).
  function reconstruct(data, buffers) {
    if (Array.isArray(data)) return data.map((d) => reconstruct(d, buffers));
    if (data && typeof data === "object") {
      if (data._placeholder === true && Number.isInteger(data.num)) {
        if (data.num < 0 || data.num >= buffers.length) throw new Error("illegal attachment");
        return buffers[data.num];
      }
      const out = {};
      for (const k of Object.keys(data)) out[k] = reconstruct(data[k], buffers);
      return out;
    }
    return data;
  }

  // A packet as the frames that carry it: one text frame ("4" is Engine.IO's message), then
  // one binary frame per attachment (Engine.IO v4 sends binary frames as they are).
  function encode(type, nsp, data, id) {
    const buffers = [];
    if (type === EVENT || type === ACK) {
      data = deconstruct(data, buffers);
      if (buffers.length) type = type === EVENT ? BINARY_EVENT : BINARY_ACK;
    }
    let text = "4" + type;
    if (buffers.length) text += buffers.length + "-";
    if (nsp !== "/") text += nsp + ",";
    if (id !== undefined) text += id;
    if (data !== undefined) text += JSON.stringify(data);
    return [text, ...buffers];
  }

  // A Socket.IO packet from the text after Engine.IO's "4": type, attachments, namespace, id,
  // data. Check then take, as the Rust decoder does; anything else is a parse error.
  function decode(text) {
    let i = 0;
    const type = Number(text[i++]);
    if (!(type >= 0 && type <= 6)) throw new Error("unknown packet type");
    let attachments = 0;
    if (type === BINARY_EVENT || type === BINARY_ACK) {
      const dash = text.indexOf("-", i);
      attachments = Number(text.slice(i, dash));
      if (dash < 0 || !Number.isInteger(attachments)) throw new Error("bad attachment count");
      i = dash + 1;
    }
    let nsp = "/";
    if (text[i] === "/") {
      const comma = text.indexOf(",", i);
      nsp = comma < 0 ? text.slice(i) : text.slice(i, comma);
      i = comma < 0 ? text.length : comma + 1;
    }
    let id;
    const digits = /^\d*/.exec(text.slice(i))[0];
    if (digits) {
      id = Number(digits);
      i += digits.length;
    }
    const data = i < text.length ? JSON.parse(text.slice(i)) : undefined;
    const isEvent = type === EVENT || type === BINARY_EVENT;
    if (isEvent && !(Array.isArray(data) && typeof data[0] === "string")) throw new Error("bad event");
    if ((type === ACK || type === BINARY_ACK) && !(Array.isArray(data) && id !== undefined)) throw new Error("bad ack");
    return { type, nsp, id, data, attachments };
  }

  const packets = { CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK };
  Object.assign(packets, { RESERVED, isBinary, deconstruct, reconstruct, encode, decode });
  root.socklabPackets = packets;
  if (typeof module === "object" && module.exports) module.exports = packets;
})(typeof globalThis !== "undefined" ? globalThis : this);
