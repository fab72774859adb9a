// The live board: applies the server's events to the tiles. Our own code; no third-party scripts.
(function () {
  "use strict";
  const board = document.getElementById("board");
  const lost = document.getElementById("lost");
  const labels = JSON.parse(board.dataset.labels);
  const alarmLabel = board.dataset.alarmLabel;
  const alarmWords = JSON.parse(board.dataset.alarms);  // a stop or a printer's error, in the reader's words
  // The server's clock may differ from the browser's (and tests set it): durations count from the server's.
  let skew = Date.parse(board.dataset.now) - Date.now();

  function field(tile, name) { return tile.querySelector('[data-field="' + name + '"]'); }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(s).padStart(2, "0");
  }

  function tick() {
    const now = Date.now() + skew;
    for (const tile of board.querySelectorAll(".tile")) {
      const since = Date.parse(tile.dataset.since);
      field(tile, "duration").textContent = isNaN(since) ? "–" : duration((now - since) / 1000);
    }
  }

  function setAlarm(tile, text) {
    const el = field(tile, "alarm");
    el.hidden = !text;
    el.textContent = text ? alarmLabel + " " + text : "";
  }

  function apply(device, signal, value, time) {
    const tile = document.getElementById("tile-" + device);
    if (!tile) return;
    if (signal === "state") {
      if (tile.dataset.state !== value) {
        tile.classList.remove("state-" + tile.dataset.state);
        tile.classList.add("state-" + value);
        tile.dataset.state = value;
        tile.dataset.since = time;
        field(tile, "state").textContent = labels[value] || value;
        if (value !== "down") setAlarm(tile, "");
      }
    } else if (signal === "program") {
      field(tile, "program").textContent = value || "–";
    } else if (signal === "progress_pct") {
      field(tile, "progress_pct").textContent = Math.round(value) + " %";
    } else if (signal === "parts_total") {
      field(tile, "parts_total").textContent = Math.round(value);
    } else if (signal.startsWith("temperature.")) {
      field(tile, "temperature").textContent = Number(value).toFixed(1) + " °C";
    } else if (signal === "alarm") {
      setAlarm(tile, value);
    } else if (signal === "emergency_stop" || signal === "protective_stop" || signal === "print_error") {
      if (value) setAlarm(tile, alarmWords[signal] + (signal === "print_error" ? " " + value : ""));
    }
  }

  async function reload() {
    try {
      const r = await fetch("/board/tiles", { credentials: "same-origin" });
      if (r.redirected || !r.ok) { window.location.reload(); return; }
      board.innerHTML = await r.text();
      tick();
    } catch (e) { /* the stream's own reconnection reports the outage */ }
  }

  let wasLost = false;
  function connect() {
    const events = new EventSource("/board/events");
    events.addEventListener("hello", function () {
      lost.classList.remove("shown");
      if (wasLost) { wasLost = false; reload(); }
    });
    events.addEventListener("error", function () { lost.classList.add("shown"); wasLost = true; });
    events.addEventListener("samples", function (e) {
      for (const [device, signal, value, time] of JSON.parse(e.data)) apply(device, signal, value, time);
    });
    events.addEventListener("resync", reload);
    // The session ended (logged out elsewhere, deactivated, expired): the page sends the browser to log in.
    events.addEventListener("expired", function () { events.close(); window.location.reload(); });
  }

  connect();
  tick();
  setInterval(tick, 1000);
  setInterval(reload, 60000);  // bookings begin and end without a machine event
})();
