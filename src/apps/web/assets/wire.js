// The /wire page: a live inspector, on socklab-io.js. The events are the inspector's
// (src/apps/wire.rs): `list` (ack: the sockets), `watch` and `unwatch` a socket id (ack:
// true, or false and why) out; `packet` (the bytes of one packet of a watched socket) and
// `gone` (a watched socket left) in. The decoding is wire-decode.js's.
"use strict";

const W = window.socklabWire;
const ACK_MS = 10000;
const MAX_ROWS = 500; // rows kept in each list; the oldest go first

// The page's own frames, through socklab-io.js's hook: set before the socket opens.
const ownStart = Date.now();
let ownLast = null;
io.onFrame = (direction, data, time) => own(direction, data, time);

const socket = io("/wire");
const watched = new Map(); // sid -> {last: at_ms of its last packet}
let everConnected = false;

// ---- the sockets -------------------------------------------------------------------------
function list() {
  socket.timeout(ACK_MS).emit("list", (err, rows, total) => {
    if (err) return notice(`no list of sockets (${err.message})`);
    const ul = $("sockets");
    ul.replaceChildren();
    for (const s of rows) {
      const li = document.createElement("li");
      li.dataset.testid = "socket";
      li.dataset.sid = s.sid;
      li.dataset.watched = String(watched.has(s.sid));
      const me = s.sid === socket.id ? " (this page)" : "";
      li.append(`${s.ns} ${s.sid}${me} · ${s.transport} · conn ${s.conn} `);
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.testid = "watch-button";
      b.dataset.sid = s.sid;
      b.textContent = watched.has(s.sid) ? "unwatch" : "watch";
      b.addEventListener("click", () => (watched.has(s.sid) ? unwatch(s.sid) : watch(s.sid)));
      li.appendChild(b);
      ul.appendChild(li);
    }
    if (total > rows.length) notice(`${total} sockets; the first ${rows.length} are listed`);
  });
}

function markWatched(sid) {
  const li = document.querySelector(`#sockets li[data-sid="${CSS.escape(sid)}"]`);
  if (!li) return;
  li.dataset.watched = String(watched.has(sid));
  li.querySelector("button").textContent = watched.has(sid) ? "unwatch" : "watch";
}

function watch(sid) {
  socket.timeout(ACK_MS).emit("watch", sid, (err, ok, about) => {
    if (err) return notice(`watch ${sid}: no answer (${err.message})`);
    if (!ok) return notice(`watch ${sid}: ${about}`);
    watched.set(sid, { last: null });
    markWatched(sid);
    notice(`watching ${sid} (${about.transport}, conn ${about.conn})`);
  });
}

function unwatch(sid) {
  socket.timeout(ACK_MS).emit("unwatch", sid, () => {
    watched.delete(sid);
    markWatched(sid);
  });
}

// ---- rows --------------------------------------------------------------------------------
function fromB64(text) {
  const s = atob(text);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes;
}

// A row of `list` (packets or own), newest at the bottom; clicking it shows `detail()`.
function addRow(list, testid, dir, text, detail) {
  const li = document.createElement("li");
  li.dataset.testid = testid;
  li.dataset.dir = dir;
  li.tabIndex = 0;
  li.textContent = text;
  const pick = () => {
    for (const x of document.querySelectorAll('.packets li[aria-selected="true"]')) x.removeAttribute("aria-selected");
    li.setAttribute("aria-selected", "true");
    showDecoded(detail());
  };
  li.addEventListener("click", pick);
  li.addEventListener("keydown", (e) => { if (e.key === "Enter") pick(); });
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.appendChild(li);
  while (list.children.length > MAX_ROWS) list.firstChild.remove();
  if (atBottom) li.scrollIntoView({ block: "nearest" });
  return li;
}

const ms = (x) => x.toFixed(3);
const arrow = (dir) => (dir === "in" ? "▶ in " : "◀ out");

// One packet of a watched socket, from the server's wire tap.
function packet(p) {
  const w = watched.get(p.sid);
  if (!w) return; // unwatched since
  const bytes = fromB64(p.bytes_b64);
  const dir = p.out ? "out" : "in";
  const delta = w.last === null ? "" : ` +${ms(p.at_ms - w.last)}`;
  w.last = p.at_ms;
  const parts = W.describe(bytes, p.transport);
  const what = parts.map((x) => x.title).join(" | ");
  const cut = p.truncated ? ` (first ${bytes.length} of ${p.len} bytes)` : "";
  const text = `${ms(p.at_ms)}${delta} ms ${arrow(dir)} ${p.sid} ${p.transport} ${p.len} B${cut}: ${what}`;
  const li = addRow($("packets"), "packet", dir, text, () => ({
    head: `${dir === "in" ? "received by" : "sent by"} the server, socket ${p.sid}, conn ${p.conn}, ` +
      `${p.transport}, ${p.len} bytes${cut}, at ${ms(p.at_ms)} ms` +
      (p.dropped ? `; the recorder has dropped ${p.dropped} packets so far` : ""),
    bytes,
    parts,
    note: p.transport === "polling"
      ? "long-polling: out, one record as queued for the next poll (its answer's body joins the records with 0x1e); in, a POST body"
      : p.transport === "websocket" && !p.out ? "a client's frame is masked: the payload is decoded with the key in its header" : "",
  }));
  li.dataset.sid = p.sid;
}

// One frame of this page's own WebSocket.
function own(direction, data, time) {
  const isFeed = typeof data === "string" && data.startsWith('42/wire,["packet"');
  const { frame, parts, masked } = W.ownFrame(direction, data);
  const at = time - ownStart;
  const delta = ownLast === null ? "" : ` +${at - ownLast}`;
  ownLast = at;
  const what = parts.map((x) => x.title).join(" | ");
  const way = direction === "out" ? "▶ sent" : "◀ received";
  const text = `${at}${delta} ms ${way} ${frame.length} B: ${what}`;
  // `data-dir` is the page's side here (socklab-io.js's): out = sent by this page.
  const li = addRow($("own"), "own-packet", direction, text, () => ({
    head: `this page ${direction === "out" ? "sent" : "received"} ${frame.length} bytes at ${at} ms`,
    bytes: frame,
    parts,
    note: masked
      ? "sent: the browser masks the payload with a random 4-byte key that JavaScript never sees; " +
        "these are the bytes before masking (mask bit 0, no key), so a capture shows other bytes"
      : "received: rebuilt from the payload, exactly as the server sent it (a server's frame is not masked)",
  }));
  li.dataset.feed = String(isFeed);
  li.hidden = isFeed && $("hide-feed").checked;
}

// ---- the decoded panel -------------------------------------------------------------------
function showDecoded(d) {
  const box = $("decoded");
  box.replaceChildren();
  const head = document.createElement("p");
  head.textContent = d.head;
  box.appendChild(head);
  if (d.note) {
    const note = document.createElement("p");
    note.className = "legend";
    note.textContent = d.note;
    box.appendChild(note);
  }
  for (const part of d.parts) {
    const h = document.createElement("h3");
    h.textContent = part.title;
    box.appendChild(h);
    const table = document.createElement("table");
    for (const f of part.fields) {
      const tr = table.insertRow();
      const place = f.offset === undefined ? "" : `${f.offset}+${f.length}`;
      const bytes = f.offset === undefined ? "" : W.hex(d.bytes.subarray(f.offset, f.offset + f.length), 12);
      for (const cell of [place, f.label, bytes, f.value]) tr.insertCell().textContent = cell;
    }
    box.appendChild(table);
    if (part.error) {
      const bad = document.createElement("p");
      bad.className = "bad";
      bad.textContent = part.error;
      box.appendChild(bad);
    }
  }
  const pre = document.createElement("pre");
  pre.textContent = W.dump(d.bytes);
  box.appendChild(pre);
}

// ---- the connection ----------------------------------------------------------------------
socket.on("connect", () => {
  status("connected", `connected as ${socket.id}`);
  if (everConnected) {
    // A new session watches nothing: ask again.
    notice("back online: watching again");
    const sids = [...watched.keys()];
    watched.clear();
    for (const sid of sids) watch(sid);
  }
  everConnected = true;
  list();
});

followConnection(socket);

socket.on("packet", packet);

socket.on("gone", (g) => {
  watched.delete(g.sid);
  markWatched(g.sid);
  notice(`${g.sid} is gone (disconnected, or back on another connection): refresh to watch again`);
});

$("refresh").addEventListener("click", list);
$("clear").addEventListener("click", () => $("packets").replaceChildren());
$("hide-feed").addEventListener("change", () => {
  for (const li of $("own").children) li.hidden = li.dataset.feed === "true" && $("hide-feed").checked;
});
