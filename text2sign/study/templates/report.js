// report.html's only script: keep the videos of each clip row playing in sync, and the controls.
(function () {
  "use strict";
  const rows = Array.from(document.querySelectorAll(".clip-row"));
  const all = () => Array.from(document.querySelectorAll(".clip-row video"));

  function restart() {
    for (const v of all()) { v.currentTime = 0; v.play().catch(() => {}); }
  }
  // A row's videos have the same frames and rate: let the first lead, pull the others to it
  // when they drift by more than a frame.
  function resync() {
    for (const row of rows) {
      const vids = Array.from(row.querySelectorAll("video"));
      const lead = vids[0];
      if (!lead || lead.readyState < 2) continue;
      for (const v of vids.slice(1)) {
        if (Math.abs(v.currentTime - lead.currentTime) > 0.1) v.currentTime = lead.currentTime;
        if (v.paused !== lead.paused) lead.paused ? v.pause() : v.play().catch(() => {});
      }
    }
  }
  document.querySelectorAll("[data-action]").forEach((el) => {
    const act = el.dataset.action;
    if (act === "speed") {
      el.addEventListener("change", () => { for (const v of all()) v.playbackRate = Number(el.value); });
    } else {
      el.addEventListener("click", () => {
        if (act === "play") all().forEach((v) => v.play().catch(() => {}));
        if (act === "pause") all().forEach((v) => v.pause());
        if (act === "restart") restart();
      });
    }
  });
  window.addEventListener("load", restart);
  setInterval(resync, 500);
})();
