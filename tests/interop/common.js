// What client.js and socklab_io_check.js share: waits that cannot hang. Each script has its
// own step limit (client.js stays under the Rust side's WAIT, so it speaks first), hence
// `within(ms)` rather than a constant here.
"use strict";

// `bounded` and `next`, each wait failing after `ms`.
function within(ms) {
  // `p`, or a failure after `ms`.
  function bounded(p, what) {
    let timer;
    const limit = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    });
    return Promise.race([p, limit]).finally(() => clearTimeout(timer));
  }
  // The next `event` on `emitter`, its arguments as an array.
  function next(emitter, event) {
    return bounded(new Promise((resolve) => emitter.once(event, (...a) => resolve(a))), event);
  }
  return { bounded, next };
}

module.exports = { within };
