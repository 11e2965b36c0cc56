// FID Arena progressive enhancement. Every page works without this file; it only adds
// (1) live deadline countdowns, (2) live submission status by polling a small HTML fragment, (3) times in the
// viewer's zone and (4) the signed-in team's own rows marked on shared pages.
(function () {
  "use strict";

  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  function formatRemaining(ms) {
    if (ms <= 0) return "closed";
    var s = Math.floor(ms / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d > 0) return plural(d, "day") + " " + plural(h, "hour") + " left";
    if (h > 0) return plural(h, "hour") + " " + plural(m, "minute") + " left";
    return plural(m, "minute") + " " + plural(s % 60, "second") + " left";
  }

  function startCountdowns() {
    var nodes = document.querySelectorAll("[data-deadline]");
    if (!nodes.length) return;
    function tick() {
      nodes.forEach(function (node) {
        node.textContent = formatRemaining(Date.parse(node.getAttribute("data-deadline")) - Date.now());
      });
    }
    tick();
    setInterval(tick, 1000);
  }

  // A [data-poll-url] element is replaced by the fragment at that URL every few seconds. When the fragment
  // says the submission reached a final state (data-final), reload once so scores and sample grids appear.
  function startPolling() {
    var box = document.querySelector("[data-poll-url]");
    if (!box || box.hasAttribute("data-final")) return;
    var url = box.getAttribute("data-poll-url");
    var delay = 1500;
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          box.innerHTML = html;
          var inner = box.querySelector("[data-status]");
          if (inner && inner.hasAttribute("data-final")) {
            window.location.reload();
            return;
          }
          delay = 1500;
          setTimeout(poll, delay);
        })
        .catch(function () {
          delay = Math.min(delay * 2, 30000);  // back off while the server is unreachable
          setTimeout(poll, delay);
        });
    }
    setTimeout(poll, delay);
  }

  // <time data-local-time> holds UTC text; add the same moment in the viewer's own time zone.
  function showLocalTimes() {
    document.querySelectorAll("time[data-local-time]").forEach(function (node) {
      var when = new Date(node.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      var local = document.createElement("span");
      local.className = "muted small local-time";
      local.textContent = " (your time: " + when.toLocaleString() + ")";
      node.after(local);
    });
  }

  // Shared pages are the same for every team; the header names the signed-in one, whose own rows are marked here.
  function markOwnRows() {
    var header = document.querySelector("header[data-team]");
    if (!header) return;
    var team = header.getAttribute("data-team");
    document.querySelectorAll("tr[data-team]").forEach(function (row) {
      if (row.getAttribute("data-team") === team) row.classList.add("mine");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.documentElement.classList.add("js");
    markOwnRows();
    showLocalTimes();
    startCountdowns();
    startPolling();
  });
})();
