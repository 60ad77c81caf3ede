// The console's script: the player on a session page, and live updates of
// the approvals page. Everything from recordings and requests reaches the
// page as text (textContent), never as markup.
"use strict";

// A recorded session's page asks for its recording in its head (a
// preload link, taken up here) and this script reads it as soon as the
// document is parsed, before the player's script runs (this script comes
// first), so the download and the player's start overlap.
const earlyCast = (() => {
  const el = document.getElementById("player");
  if (!el || el.dataset.live || !el.dataset.cast) { return null; }
  performance.mark("bastion-cast-request"); // read by the bench
  return fetch(el.dataset.cast, { credentials: "same-origin" });
})();

// visible returns a marker's label (a command, a statement) in its own
// order and with nothing hidden: controls, bidirectional controls,
// zero-width and other invisible characters as escapes, as the server's
// pages show them (safetext.Visible).
const hiddenChars = /[\p{C}\p{Z}\p{Variation_Selector}\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\uffa0\u2800]/gu;
function visible(s) {
  return s.replace(hiddenChars, (c) => {
    if (c === " " || c === "\n" || c === "\t") { return c; }
    const cp = c.codePointAt(0);
    if (cp < 0x80) { return "\\x" + cp.toString(16).padStart(2, "0"); }
    if (cp > 0xffff) { return "\\U" + cp.toString(16).padStart(8, "0"); }
    return "\\u" + cp.toString(16).padStart(4, "0");
  });
}

function replayPage() {
  const el = document.getElementById("player");
  const errBox = document.getElementById("player-error");
  const speed = document.getElementById("speed");
  const idle = document.getElementById("idle");
  const markersList = document.getElementById("markers");
  let player = null;
  let src = null;
  let playing = false;
  let endedNow = false; // the player reached the end of what it holds
  const showError = (msg) => { errBox.textContent = msg; errBox.hidden = false; };
  const markerNow = document.getElementById("marker-now");
  const showMarker = (label) => { markerNow.textContent = visible(label); markerNow.hidden = false; };
  // The recording's first screen, drawn by the server into the page, shows
  // until the player has started.
  const screenEl = document.getElementById("first-screen");
  const firstScreen = screenEl ? screenEl.textContent : null;
  if (screenEl) { screenEl.addEventListener("click", () => { touched = true; player && player.play(); }); }
  window.bastionFirstScreen = firstScreen; // for the bench, after the player has replaced it

  let mount = null;
  function create(opts) {
    if (player) { player.dispose(); }
    if (mount) { mount.remove(); }
    // The player goes into a mount of its own; while the server's first
    // screen is still there, the mount is laid out but hidden under it,
    // and the screen gives way once the player is ready (its poster is
    // the same screen) or plays.
    mount = document.createElement("div");
    el.appendChild(mount);
    const pre = document.getElementById("first-screen");
    if (pre) { mount.className = "player-pending"; }
    const o = { speed: Number(speed.value), fit: "width", controls: true, autoPlay: false, preload: true, ...opts };
    if (firstScreen !== null && !el.dataset.live) {
      // The player shows the first screen the page came with until it plays.
      o.poster = "data:text/plain," + firstScreen.replace(/\n/g, "\r\n");
    }
    if (idle.value && !el.dataset.segments) { o.idleTimeLimit = Number(idle.value); } // a segmented recording's times come cut
    player = AsciinemaPlayer.create(src, mount, o);
    if (pre) {
      const m = mount;
      const reveal = () => { if (pre.isConnected) { pre.remove(); } m.className = ""; };
      player.addEventListener("ready", reveal);
      player.addEventListener("play", reveal);
    }
    if (!performance.getEntriesByName("bastion-player-created").length) { performance.mark("bastion-player-created"); } // read by the bench
    player.addEventListener("marker", ({ label }) => showMarker(label));
    // A swap waiting for the person to be done with the first part runs
    // at their next play, pause or end (after the player's own handling).
    const later = (resume) => setTimeout(() => { if (pendingSwap) { pendingSwap(resume); } }, 0);
    endedNow = false;
    player.addEventListener("play", () => { playing = true; endedNow = false; later(true); });
    player.addEventListener("pause", () => { playing = false; later(false); });
    player.addEventListener("ended", () => { playing = false; endedNow = true; later(true); });
    window.bastionPlayer = player; // for tests and the console
  }

  function listMarkers(labels) {
    markersList.textContent = "";
    if (labels.length === 0) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "None.";
      markersList.appendChild(li);
      return;
    }
    labels.forEach((label, i) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "marker";
      b.dataset.marker = String(i);
      b.textContent = visible(label);
      b.addEventListener("click", async () => {
        await player.seek({ marker: i });
        await player.pause();
        showMarker(label);
      });
      li.appendChild(b);
      markersList.appendChild(li);
    });
  }

  // The recording streams in: the player is created at once (its start,
  // the WebAssembly terminal, overlaps the download) on a promise of the
  // recording's first part, so the first frame waits neither for a large
  // recording nor for the player; the rest is read in the background and
  // swapped in at the same position: at once if nobody has touched the
  // player yet, else at its next play, pause or end of the first part.
  // The browser holds at most maxHeld bytes; beyond that the page says so
  // and points to `bastion replay`, which streams any size.
  const headBytes = 64 << 10;
  const maxHeld = 64 << 20;
  let touched = false;
  let pendingSwap = null;
  for (const ev of ["pointerdown", "keydown", "click"]) {
    el.addEventListener(ev, () => { touched = true; }, { capture: true });
  }
  // upToLine is a Blob of the complete lines in parts.
  const upToLine = (parts) => {
    for (let i = parts.length - 1; i >= 0; i--) {
      const nl = parts[i].lastIndexOf(10);
      if (nl >= 0) { return new Blob([...parts.slice(0, i), parts[i].subarray(0, nl + 1)], { type: "text/plain" }); }
    }
    return new Blob([], { type: "text/plain" });
  };
  const markerLabels = (text) => {
    const labels = [];
    for (const line of text.split("\n").slice(1)) {
      if (!line.includes('"m"')) { continue; }
      try {
        const ev = JSON.parse(line);
        if (Array.isArray(ev) && ev[1] === "m") { labels.push(String(ev[2])); }
      } catch (e) { /* not an event line */ }
    }
    return labels;
  };
  let giveHead, failHead;
  const head = new Promise((resolve, reject) => { giveHead = resolve; failHead = reject; });
  head.catch(() => {}); // the player reports it too
  async function loadProgressively() {
    const resp = await (earlyCast || fetch(el.dataset.cast, { credentials: "same-origin" }));
    performance.mark("bastion-cast-response");
    if (!resp.ok) { throw new Error((await resp.text()) || resp.statusText); }
    const reader = resp.body.getReader();
    const parts = [];
    let size = 0;
    let ended = false;
    while (size < headBytes) {
      const { done, value } = await reader.read();
      if (done) { ended = true; break; }
      parts.push(value);
      size += value.length;
    }
    performance.mark("bastion-first-part");
    if (ended) {
      // All of it is here: it is the player's, with its markers.
      const full = upToLine(parts);
      src = URL.createObjectURL(full);
      const text = await full.text();
      giveHead(text);
      listMarkers(markerLabels(text));
      document.body.dataset.ready = "1";
      return;
    }
    giveHead(await upToLine(parts).text());
    let capped = false;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) { break; }
      parts.push(value);
      size += value.length;
      if (size >= maxHeld) {
        capped = true;
        reader.cancel();
        break;
      }
    }
    if (capped) {
      showError("This recording is larger than the browser holds: the player has its first " + (maxHeld >> 20) +
        " MiB. `bastion replay " + el.dataset.id + "` or `bastion export` play all of it.");
    }
    const full = upToLine(parts);
    const labels = markerLabels(await full.text());
    const swap = async (resume) => {
      pendingSwap = null;
      const touchedBefore = touched;
      const old = src;
      const at = player ? await player.getCurrentTime() : 0;
      if (!touchedBefore && touched) { resume = true; } // a click on play while the swap began
      src = URL.createObjectURL(full);
      listMarkers(labels);
      create({});
      if (typeof old === "string") { URL.revokeObjectURL(old); }
      if (at > 0) { await player.seek(at); }
      if (resume) { await player.play(); }
      document.body.dataset.ready = "1";
    };
    if (player && touched && !endedNow) {
      pendingSwap = swap; // at the next play, pause or end of the first part
    } else {
      // Untouched, or the first part already played to its end before
      // the rest arrived: swap now, and play on from there if it ended.
      await swap(endedNow);
    }
  }

  // A live session: followed from now (the present screen, then live) or
  // from the start (its history with its own timing, sped up and with
  // pauses cut by the server as the page's speed and idle limit say, then
  // live), as `bastion replay --follow --from now|start` in a terminal.
  if (el.dataset.live) {
    const from = document.getElementById("from");
    const ended = document.getElementById("live-ended");
    const follow = () => {
      const q = new URLSearchParams({ from: from.value });
      if (from.value === "start") {
        q.set("speed", speed.value);
        if (idle.value) { q.set("idle", idle.value); }
      }
      src = { driver: "eventsource", url: el.dataset.live + "?" + q.toString() };
      ended.hidden = true;
      delete document.body.dataset.ended;
      create({ autoPlay: true, cols: Number(el.dataset.cols) || 80, rows: Number(el.dataset.rows) || 24 });
      player.addEventListener("ended", () => { ended.hidden = false; document.body.dataset.ended = "1"; });
    };
    follow();
    for (const input of [from, speed, idle]) { input.addEventListener("change", follow); }
    document.body.dataset.ready = "1";
    return;
  }
  // A large recording plays in segments (the player's segmented source):
  // the server's index of the whole recording (its duration, markers and
  // segments, with times cut to the idle limit), then the segment the
  // player plays or seeks into, each with a snapshot of the screen at its
  // start; the player holds only that segment and its neighbours, so a
  // seek anywhere in a recording of any size is one fetch.
  if (el.dataset.segments) {
    const load = () => {
      const u = new URL(el.dataset.segments, location.href);
      if (idle.value) { u.searchParams.set("idle", idle.value); } else { u.searchParams.delete("idle"); }
      src = { url: u.pathname + u.search, format: "segmented" };
      create({});
      player.addEventListener("metadata", ({ markers }) => {
        listMarkers((markers || []).map((m) => String(m[1])));
        document.body.dataset.ready = "1";
      });
      player.addEventListener("error", (e) => showError("The recording cannot be played: " + ((e && e.message) || "see the browser's console")));
    };
    load();
    speed.addEventListener("change", load);
    idle.addEventListener("change", load);
    return;
  }
  src = { data: () => head };
  create({});
  loadProgressively().catch((e) => {
    failHead(e);
    showError("The recording cannot be played: " + e.message);
  });
  speed.addEventListener("change", () => create({}));
  idle.addEventListener("change", () => create({}));
}

// The approvals page updates in place without moving what is on it: a click
// aimed at one request must not land on another that moved under the
// pointer. A request that is no longer pending stays where it was, greyed
// and without working buttons, until the page is reloaded; new ones are
// added at the end.
function approvalsPage() {
  const refresh = async () => {
    const resp = await fetch(location.pathname, { credentials: "same-origin" });
    if (!resp.ok) { return; }
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    const fresh = doc.getElementById("requests");
    const cur = document.getElementById("requests");
    if (!fresh || !cur) { return; }
    const pending = new Map();
    for (const sec of fresh.querySelectorAll("section.request")) { pending.set(sec.dataset.request, sec); }
    for (const sec of cur.querySelectorAll("section.request")) {
      const id = sec.dataset.request;
      if (pending.has(id)) { pending.delete(id); continue; }
      if (sec.classList.contains("gone")) { continue; }
      sec.classList.add("gone");
      for (const el of sec.querySelectorAll("button, input")) { el.disabled = true; }
      for (const f of sec.querySelectorAll("form")) { f.addEventListener("submit", (e) => e.preventDefault()); }
      const h = sec.querySelector("h2");
      if (h) { h.title = "no longer pending: decided, expired or cancelled"; }
    }
    if (pending.size > 0) {
      for (const none of cur.querySelectorAll("p.none")) { none.remove(); }
      for (const sec of pending.values()) { cur.appendChild(document.importNode(sec, true)); }
    }
  };
  const es = new EventSource("/api/approvals/stream");
  let first = true;
  es.addEventListener("changed", () => {
    if (first) { first = false; return; }
    refresh();
  });
}

// loadPlayer runs the player's script once the page has painted its first
// frame (the server's first screen): a script in the page, even deferred,
// runs before the browser's first paint, and the player's takes a few
// hundred milliseconds to compile and run. The page's head preloads it,
// so it is there by then.
function loadPlayer() {
  return new Promise((resolve, reject) => {
    if (window.AsciinemaPlayer) { resolve(); return; }
    requestAnimationFrame(() => setTimeout(() => {
      const s = document.createElement("script");
      s.src = document.getElementById("player").dataset.playerScript;
      s.onload = () => { performance.mark("bastion-player-script"); resolve(); }; // read by the bench
      s.onerror = () => reject(new Error("the player's script did not load"));
      document.head.appendChild(s);
    }, 0));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  switch (document.body.dataset.page) {
    case "replay":
      loadPlayer().then(replayPage, (e) => {
        const box = document.getElementById("player-error");
        box.textContent = e.message;
        box.hidden = false;
      });
      break;
    case "approvals": approvalsPage(); break;
  }
});
