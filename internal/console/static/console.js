// The console's script: the player on a session page, and live updates of
// the approvals page. Everything from recordings and requests reaches the
// page as text (textContent), never as markup.
"use strict";

function replayPage() {
  const el = document.getElementById("player");
  const errBox = document.getElementById("player-error");
  const speed = document.getElementById("speed");
  const idle = document.getElementById("idle");
  const markersList = document.getElementById("markers");
  let player = null;
  let src = null;
  const showError = (msg) => { errBox.textContent = msg; errBox.hidden = false; };
  const markerNow = document.getElementById("marker-now");
  const showMarker = (label) => { markerNow.textContent = label; markerNow.hidden = false; };

  function create(opts) {
    if (player) { player.dispose(); }
    el.textContent = "";
    const o = { speed: Number(speed.value), fit: "width", controls: true, autoPlay: false, preload: true, ...opts };
    if (idle.value) { o.idleTimeLimit = Number(idle.value); }
    player = AsciinemaPlayer.create(src, el, o);
    player.addEventListener("marker", ({ label }) => showMarker(label));
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
      b.textContent = label;
      b.addEventListener("click", async () => {
        await player.seek({ marker: i });
        await player.pause();
        showMarker(label);
      });
      li.appendChild(b);
      markersList.appendChild(li);
    });
  }

  if (el.dataset.live) {
    src = { driver: "eventsource", url: el.dataset.live };
    create({ autoPlay: true, cols: Number(el.dataset.cols) || 80, rows: Number(el.dataset.rows) || 24 });
    document.body.dataset.ready = "1";
    return;
  }
  fetch(el.dataset.cast, { credentials: "same-origin" }).then(async (resp) => {
    if (!resp.ok) { throw new Error((await resp.text()) || resp.statusText); }
    const text = await resp.text();
    const labels = [];
    for (const line of text.split("\n").slice(1)) {
      if (!line.includes('"m"')) { continue; }
      try {
        const ev = JSON.parse(line);
        if (Array.isArray(ev) && ev[1] === "m") { labels.push(String(ev[2])); }
      } catch (e) { /* not an event line */ }
    }
    src = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    listMarkers(labels);
    create({});
    document.body.dataset.ready = "1";
  }).catch((e) => showError("The recording cannot be played: " + e.message));
  speed.addEventListener("change", () => src && create({}));
  idle.addEventListener("change", () => src && create({}));
}

function approvalsPage() {
  const refresh = async () => {
    const resp = await fetch(location.pathname, { credentials: "same-origin" });
    if (!resp.ok) { return; }
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    const fresh = doc.getElementById("requests");
    const cur = document.getElementById("requests");
    if (fresh && cur) { cur.replaceWith(document.importNode(fresh, true)); }
  };
  const es = new EventSource("/api/approvals/stream");
  let first = true;
  es.addEventListener("changed", () => {
    if (first) { first = false; return; }
    refresh();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  switch (document.body.dataset.page) {
    case "replay": replayPage(); break;
    case "approvals": approvalsPage(); break;
  }
});
