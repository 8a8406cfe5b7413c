// What the three pages (chat, scores, wire) share, loaded before each page's own script:
// the status line and the notice under it, and what they say as the page's socket loses its
// connection, tries again, or is refused.
"use strict";

const $ = (id) => document.getElementById(id);

// The status line: `data-state` for tests and style, the text for people.
function status(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text || state;
}

function notice(text) {
  $("notice").textContent = text;
}

// The status line follows `socket`'s connection. `left(reason)` may say what an ended
// session means on this page (it returns true if it said it); `refused(err)` may add to
// what a refusal by the server's middleware shows.
function followConnection(socket, { left, refused } = {}) {
  socket.on("disconnect", (reason) => {
    if (left && left(reason)) return;
    if (reason === "io client disconnect") return status("disconnected");
    status("offline");
    notice(`offline: lost the connection (${reason}); reconnecting`);
  });
  socket.io.on("reconnect_attempt", (n) => status("reconnecting", `reconnecting (attempt ${n})`));
  socket.on("connect_error", (err) => {
    if (socket.active) {
      // Not refused, just not reachable: the client keeps trying.
      notice(`the server is not reachable (${err.message}); retrying`);
      return;
    }
    status("refused", `refused: ${err.message}`);
    if (refused) refused(err);
  });
}
