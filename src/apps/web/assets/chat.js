// The chat page: `socklab chat` in a browser, on socklab-io.js. The events are the chat
// server's (src/apps/chat.rs): `chat message`, `join`, `leave`, `who` (with acks) out;
// `chat message`, `notification`, `system` in.
"use strict";

const START = "lobby"; // where the server puts a new session (the auth's `room`)
const ACK_MS = 10000;

// One socket for the page's whole life: a refused name is tried again on the same socket.
const socket = io("/chat", { autoConnect: false });

const chat = {
  me: "",
  rooms: [], // the rooms you are in, as the server last said
  current: null, // where your messages go
  everConnected: false,
  counting: null, // messages counted since a recovered reconnection, until the fence
};

// ---- what the page shows ----------------------------------------------------------------

// A row of the message list; `testid` says what it is: message, system, notification.
function row(testid, text, classes) {
  const li = document.createElement("li");
  li.dataset.testid = testid;
  li.className = [testid, ...(classes || [])].join(" ");
  li.textContent = text;
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.appendChild(li);
  if (atBottom) li.scrollIntoView({ block: "end" });
  return li;
}

// Whether `text` says @me, as the server reads mentions: `@` then the name, then a character
// that cannot be part of a name.
function mentionsMe(text) {
  const name = chat.me.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|\\s)@${name}(?![\\p{L}\\p{N}_-])`, "u").test(text);
}

function showRooms() {
  const list = $("rooms");
  list.replaceChildren();
  for (const room of chat.rooms) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.testid = "room";
    b.dataset.room = room;
    b.textContent = room;
    b.setAttribute("aria-pressed", String(room === chat.current));
    b.addEventListener("click", () => switchTo(room));
    const li = document.createElement("li");
    li.appendChild(b);
    list.appendChild(li);
  }
  $("current-room").textContent = chat.current || "no room";
  $("message").placeholder = chat.current
    ? `a message to ${chat.current}; @name notifies name`
    : "join a room to talk";
}

function showPeople(names) {
  const list = $("people");
  list.replaceChildren();
  for (const name of names) {
    const li = document.createElement("li");
    li.dataset.testid = "person";
    li.textContent = name === chat.me ? `${name} (you)` : name;
    list.appendChild(li);
  }
}

// ---- asking the server ----------------------------------------------------------------------

function who() {
  if (!chat.current || !socket.connected) return;
  const room = chat.current;
  socket.timeout(ACK_MS).emit("who", room, (err, names) => {
    if (!err && room === chat.current) showPeople(names);
  });
}

function switchTo(room) {
  chat.current = room;
  showRooms();
  who();
}

// join/leave answer with your rooms.
function roomsCall(verb, room, then) {
  socket.timeout(ACK_MS).emit(verb, room, (err, rooms) => {
    if (err) return notice(`${verb} ${room}: no answer (${err.message})`);
    chat.rooms = rooms;
    if (then) then();
    if (!chat.rooms.includes(chat.current)) chat.current = chat.rooms[0] || null;
    showRooms();
    who();
  });
}

function say(text) {
  const room = chat.current;
  const shown = row("message", `[${room}] ${chat.me}: ${text}`, ["mine"]);
  shown.dataset.state = "pending";
  // Offline, the message waits in the client's buffer; no answer within ACK_MS and it is
  // taken out of the buffer and marked, never sent later behind the person's back.
  socket.timeout(ACK_MS).emit("chat message", room, text, (err) => {
    shown.dataset.state = err ? "failed" : "delivered";
    if (err) shown.title = `not delivered: ${err.message}`;
  });
}

function notify(n) {
  row("notification", `(@ from ${n.from} in ${n.room}) ${n.text}`, ["highlight"]);
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification(`${n.from} in ${n.room}`, { body: n.text, tag: "socklab-chat" });
  }
}

// ---- the connection's life -----------------------------------------------------------------

socket.on("connect", () => {
  status("connected");
  $("login").hidden = true;
  $("chat").hidden = false;
  if (!chat.everConnected) {
    chat.everConnected = true;
    chat.rooms = [START];
    chat.current = START;
    notice(`connected as ${chat.me} in ${START}`);
  } else if (socket.recovered) {
    // The server kept the session and replays what we missed right behind its CONNECT
    // reply, so everything missed arrives before the answer to this `who`: a fence.
    chat.counting = 0;
    notice("back online: your session was recovered");
    socket.timeout(ACK_MS).emit("who", chat.current || START, () => {
      notice(`back online; recovered: missed messages delivered (${chat.counting})`);
      chat.counting = null;
    });
  } else {
    // A new session (the server restarted): it put us in START only. Join the rest again.
    notice("back online in a new session: what was sent while you were offline is lost");
    const had = chat.rooms;
    for (const room of had.filter((r) => r !== START)) roomsCall("join", room);
    if (!had.includes(START)) roomsCall("leave", START);
    chat.rooms = had.includes(START) ? had : [START, ...had];
  }
  showRooms();
  who();
});

followConnection(socket, {
  left(reason) {
    if (reason === "io client disconnect") {
      status("disconnected");
      notice("you left the chat");
    } else if (reason === "io server disconnect") {
      status("disconnected", "disconnected by the server");
      notice("the server ended the session");
    } else {
      return false;
    }
    return true;
  },
  // The server's middleware said no (the name is taken, or not a name).
  refused(err) {
    $("login-error").textContent = err.message;
    $("login").hidden = false;
    $("chat").hidden = !chat.everConnected;
    $("name").focus();
  },
});

socket.on("chat message", (m) => {
  if (chat.counting !== null) chat.counting++;
  row("message", `[${m.room}] ${m.from}: ${m.text}`, mentionsMe(m.text) ? ["mention"] : []);
});
socket.on("notification", notify);
socket.on("system", (s) => {
  row("system", `[${s.room}] * ${s.text}`);
  if (s.room === chat.current) who();
});

// ---- the forms ---------------------------------------------------------------------------------

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("name").value.trim();
  if (!name) return;
  if (chat.everConnected && name !== chat.me) chat.everConnected = false; // someone else now
  chat.me = name;
  $("me").textContent = name;
  $("login-error").textContent = "";
  // Asked here, on a click: browsers ignore the question outside a user's gesture.
  if ("Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().catch(() => {});
  }
  socket.auth = { name, room: START };
  status("connecting");
  socket.connect();
});

$("say").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("message").value;
  if (!text.trim()) return;
  if (!chat.current) return notice("you are in no room: join one to talk");
  say(text);
  $("message").value = "";
});

$("rooms-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const room = $("room").value.trim();
  if (!room) return;
  roomsCall("join", room, () => (chat.current = room));
  $("room").value = "";
});

$("leave").addEventListener("click", () => {
  const room = $("room").value.trim() || chat.current;
  if (room) roomsCall("leave", room);
  $("room").value = "";
});

$("who").addEventListener("click", who);

$("disconnect").addEventListener("click", () => {
  socket.disconnect();
  chat.everConnected = false;
  $("login").hidden = false;
  $("chat").hidden = true;
  $("messages").replaceChildren();
});

// `/chat?name=ada` fills the name in (handy for two windows side by side).
const preset = new URLSearchParams(location.search).get("name");
if (preset) $("name").value = preset;
