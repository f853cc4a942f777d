// report.html's only script. A row of clips loads its videos when it scrolls near the view (a
// page with dozens of videos opens at once), then they loop in sync: the first video of a row
// leads, the others are pulled to it when they drift. The controls act on every row.
(function () {
  "use strict";
  const rows = Array.from(document.querySelectorAll(".clip-row"));
  const videos = (scope) => Array.from(scope.querySelectorAll("video"));

  function activate(row) {
    if (row.dataset.live) return;
    row.dataset.live = "1";
    row.querySelectorAll("source[data-src]").forEach((s) => { s.src = s.dataset.src; });
    for (const v of videos(row)) { v.autoplay = true; v.preload = "auto"; v.load(); }
  }
  function resync() {
    for (const row of rows) {
      const [lead, ...rest] = videos(row);
      if (!lead || lead.readyState < 2) continue;
      for (const v of rest) {
        if (v.readyState < 2) continue;
        if (Math.abs(v.currentTime - lead.currentTime) > 0.1) v.currentTime = lead.currentTime;
        if (v.paused !== lead.paused) lead.paused ? v.pause() : v.play().catch(() => {});
      }
    }
  }
  const seen = new IntersectionObserver((entries) => {
    for (const e of entries) if (e.isIntersecting) activate(e.target);
  }, { rootMargin: "400px" });
  rows.forEach((row) => seen.observe(row));

  document.querySelectorAll("[data-action]").forEach((el) => {
    const act = el.dataset.action;
    if (act === "speed") {
      el.addEventListener("change", () => {
        for (const v of videos(document)) v.playbackRate = Number(el.value);
      });
      return;
    }
    el.addEventListener("click", () => {
      rows.forEach(activate);
      for (const v of videos(document)) {
        if (act === "restart") v.currentTime = 0;
        if (act === "pause") v.pause(); else v.play().catch(() => {});
      }
    });
  });
  setInterval(resync, 500);
})();
