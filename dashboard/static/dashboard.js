// Live updates for the dashboard: every few seconds, fetch the page's JSON
// endpoint and swap in the fragments (table, charts, tests, audit) the server
// re-rendered.  Without JavaScript the page is the same, minus the updates.
(function () {
  "use strict";

  var root = document.querySelector("[data-live-url]");
  if (!root || !window.fetch) return;

  var url = root.getAttribute("data-live-url");
  var every = Math.max(0.5, parseFloat(root.getAttribute("data-refresh-seconds")) || 5) * 1000;
  var indicator = document.querySelector("[data-live-state]");
  var stamp = document.querySelector("[data-updated-at]");
  var word = document.querySelector("[data-live-word]");
  var hint = document.querySelector("[data-live-hint]");
  var applied = {};
  var failures = 0;
  var timer = null;
  var stopped = false;
  var inflight = false;

  function show(state, wordText, hintText) {
    if (indicator) indicator.setAttribute("data-live-state", state);
    if (word) word.textContent = wordText;
    if (hint) hint.textContent = hintText;
  }

  function seconds(ms) {
    var s = ms / 1000;
    return (s === Math.round(s) ? s : s.toFixed(1)) + " s";
  }

  function swap(name, html) {
    if (applied[name] === html) return;
    var element = document.querySelector('[data-fragment="' + name + '"]');
    if (!element) return;
    // Keep keyboard focus on the same control across the swap.
    var active = document.activeElement;
    var focusId = active && element.contains(active) ? active.id : null;
    var before = {};
    element.querySelectorAll("[data-count]").forEach(function (cell) {
      before[cell.id] = cell.textContent;
    });
    element.innerHTML = html;
    applied[name] = html;
    // Mark the counts that just changed, for a couple of seconds.
    element.querySelectorAll("[data-count]").forEach(function (cell) {
      if (cell.id in before && before[cell.id] !== cell.textContent) {
        cell.classList.add("changed");
        setTimeout(function () { cell.classList.remove("changed"); }, 2000);
      }
    });
    if (focusId) {
      var again = document.getElementById(focusId);
      if (again) again.focus();
    }
  }

  function schedule(delay) {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(tick, delay);
  }

  function tick() {
    if (inflight) return;
    if (document.hidden) {
      schedule(every);  // nobody is looking: don't poll, look again later
      return;
    }
    inflight = true;
    fetch(url, {
      headers: { "Accept": "application/json" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      inflight = false;
      if (response.status === 401) {
        stopped = true;
        show("signed-out", "Signed out", "· reload the page to sign in again");
        return null;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (data) {
      if (!data) return;
      var fragments = data.fragments || {};
      Object.keys(fragments).forEach(function (name) { swap(name, fragments[name]); });
      if (stamp) {
        stamp.textContent = data.updated_at_text;
        stamp.setAttribute("datetime", data.updated_at);
      }
      failures = 0;
      show("live", "Live · updated", "· refreshes every " + seconds(every));
      schedule(every);
    }).catch(function () {
      inflight = false;
      failures += 1;
      show("offline", "Connection lost · last update", "· retrying");
      schedule(every * Math.min(Math.pow(2, failures), 12));
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !stopped) schedule(0);
  });
  show("live", "Live · updated", "· refreshes every " + seconds(every));
  schedule(every);
})();
