// What the scripts here share: waits that cannot hang, and commands read from stdin. Each
// script has its own step limit (client.js stays under the Rust side's WAIT, so it speaks
// first), hence `within(ms)` rather than a constant here.
"use strict";

// `bounded` and `next`, each wait failing after `ms`.
function within(ms) {
  // `p`, or a failure after `limit` ms (`ms` unless said).
  function bounded(p, what, limit = ms) {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${limit} ms`)), limit);
    });
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }
  // The next `event` on `emitter`, its arguments as an array.
  function next(emitter, event) {
    return bounded(new Promise((resolve) => emitter.once(event, (...a) => resolve(a))), event);
  }
  return { bounded, next };
}

// Lines from stdin, one command each: `command(what, ms)` waits for the next, failing through
// `bounded` after `ms` (never, with `Infinity`: a test may stay quiet a while on purpose).
function stdinCommands(bounded) {
  const lines = [];
  const waiting = [];
  require("node:readline")
    .createInterface({ input: process.stdin })
    .on("line", (line) => {
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    });
  return function command(what, ms) {
    if (lines.length) return Promise.resolve(lines.shift());
    const p = new Promise((resolve) => waiting.push(resolve));
    return ms === Infinity ? p : bounded(p, `command ${what}`, ms);
  };
}

module.exports = { within, stdinCommands };
