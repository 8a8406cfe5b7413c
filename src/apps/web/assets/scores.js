// The live-scores page: `socklab watch` in a browser, on socklab-io.js. The events are the
// scores server's (src/apps/scores.rs): `matches` (ack: the match ids) and `watch` (ack:
// true and the score now, or false and why) out; `score` in, for the matches watched.
"use strict";

const ACK_MS = 10000;
const socket = io("/scores");
const watching = new Set(); // match ids, kept across reconnections
let everConnected = false;

// One score as `socklab watch` prints it.
function render(s) {
  return `match ${s.match}: ${s.batting} ${s.runs}/${s.wickets} (${s.overs} ov) v ${s.bowling}, last ball: ${s.last_ball}`;
}

// The row of match `id` in the watched list, made on first use.
function scoreRow(id) {
  let li = document.querySelector(`#scores li[data-match="${id}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.testid = "score";
    li.dataset.match = String(id);
    li.dataset.updates = "0";
    const rows = [...$("scores").children];
    const after = rows.find((r) => Number(r.dataset.match) > id);
    $("scores").insertBefore(li, after || null);
  }
  return li;
}

function show(score) {
  const li = scoreRow(score.match);
  li.textContent = render(score);
  li.dataset.updates = String(Number(li.dataset.updates) + 1);
  li.dataset.lastBall = score.last_ball;
  // Restart the flash: the class is removed, the layout read, and the class added again.
  li.classList.remove("flash");
  void li.offsetWidth;
  li.classList.add("flash");
}

function watch(id) {
  socket.timeout(ACK_MS).emit("watch", id, (err, ok, score) => {
    if (err) return notice(`watch ${id}: no answer (${err.message})`);
    if (!ok) return notice(`watch ${id}: ${score}`);
    watching.add(id);
    const button = document.querySelector(`button[data-match="${id}"]`);
    if (button) {
      button.disabled = true;
      button.textContent = "watching";
    }
    show(score);
  });
}

function showMatches(ids) {
  const list = $("matches");
  list.replaceChildren();
  for (const id of ids) {
    const li = document.createElement("li");
    li.dataset.testid = "match";
    li.dataset.match = String(id);
    li.append(`match ${id} `);
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.testid = "watch-button";
    b.dataset.match = String(id);
    b.textContent = watching.has(id) ? "watching" : "watch";
    b.disabled = watching.has(id);
    b.addEventListener("click", () => watch(id));
    li.appendChild(b);
    list.appendChild(li);
  }
}

socket.on("connect", () => {
  status("connected");
  if (everConnected && socket.recovered) {
    // Still in the matches' rooms: the missed scores are on their way.
    notice("back online; recovered: missed scores delivered");
    return;
  }
  if (everConnected) notice("back online in a new session: watching again");
  everConnected = true;
  socket.timeout(ACK_MS).emit("matches", (err, ids) => {
    if (err) return notice(`no list of matches (${err.message})`);
    showMatches(ids);
    // A new session is in no room: ask again for what was watched.
    for (const id of watching) watch(id);
  });
});

followConnection(socket);

socket.on("score", show);

$("watch-all").addEventListener("click", () => {
  for (const li of $("matches").children) watch(Number(li.dataset.match));
});
