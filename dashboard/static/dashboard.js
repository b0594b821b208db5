// Live updates for the dashboard: every few seconds, fetch the page's JSON
// endpoint and swap in the fragments (table, charts, tests, audit) the server
// re-rendered.  Between updates, "started 5 minutes ago" keeps counting; a
// changed verdict is announced to screen readers.  Without JavaScript the
// page is the same, minus the updates.
(function () {
  "use strict";

  // How long ago, in words: the server's wording (present.ago in
  // dashboard/present.py), rule for rule; the tests hold both to one table.
  // [seconds under which a wording applies, its unit in seconds, singular, plural]
  var AGO = [
    [60, 0, "just now", "just now"],
    [3600, 60, "1 minute ago", "{} minutes ago"],
    [86400, 3600, "1 hour ago", "{} hours ago"],
    [2 * 86400, 0, "yesterday", "yesterday"],
    [7 * 86400, 86400, "", "{} days ago"],
    [60 * 86400, 7 * 86400, "1 week ago", "{} weeks ago"],
    [365 * 86400, 30 * 86400, "", "{} months ago"],
    [Infinity, 365 * 86400, "1 year ago", "{} years ago"]
  ];

  function ago(seconds) {
    seconds = isFinite(seconds) ? Math.max(0, seconds) : 0;
    for (var i = 0; i < AGO.length; i++) {
      var rule = AGO[i];
      if (seconds < rule[0]) {
        var number = rule[1] ? Math.floor(seconds / rule[1]) : 1;
        return number === 1 ? rule[2] : rule[3].replace("{}", String(number));
      }
    }
  }

  window.abtestDashboard = { ago: ago };

  var root = document.querySelector("[data-live-url]");
  if (!root || !window.fetch) return;

  var url = root.getAttribute("data-live-url");
  var every = Math.max(0.5, parseFloat(root.getAttribute("data-refresh-seconds")) || 5) * 1000;
  var indicator = document.querySelector("[data-live-state]");
  var stamp = document.querySelector("[data-updated-at]");
  var word = document.querySelector("[data-live-word]");
  var hint = document.querySelector("[data-live-hint]");
  var announcer = document.getElementById("verdict-announcer");
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

  // The server's clock minus this browser's, in seconds: ages are counted in
  // the server's time, as the page it rendered counted them.
  var serverNow = parseFloat(stamp && stamp.getAttribute("data-now"));
  var offset = isFinite(serverNow) ? serverNow - Date.now() / 1000 : 0;

  function refreshAges() {
    var now = Date.now() / 1000 + offset;
    document.querySelectorAll("[data-ago]").forEach(function (element) {
      var since = parseFloat(element.getAttribute("data-ago"));
      if (!isFinite(since)) return;
      var words = ago(now - since);
      if (element.textContent !== words) element.textContent = words;
    });
  }

  // The verdict as it stands: what makes it change (its kind and its claim)
  // and what to say (the claim and the advice).
  function verdictNow() {
    var box = document.getElementById("verdict");
    if (!box) return null;
    var claim = document.getElementById("verdict-claim");
    var advice = document.getElementById("verdict-advice");
    return {
      key: box.className + "|" + (claim ? claim.textContent.trim() : ""),
      words: [claim, advice].filter(Boolean).map(function (p) {
        return p.textContent.trim();
      }).join(" ")
    };
  }

  var lastVerdict = verdictNow();

  // Into the polite live region only when the verdict changed, not at every update.
  function announceVerdict() {
    var now = verdictNow();
    if (!announcer || !now || (lastVerdict && now.key === lastVerdict.key)) return;
    lastVerdict = now;
    announcer.textContent = "The verdict changed: " + now.words;
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
      announceVerdict();
      if (stamp) {
        stamp.textContent = data.updated_at_text;
        stamp.setAttribute("datetime", data.updated_at);
      }
      var at = Date.parse(data.updated_at);
      if (isFinite(at)) offset = at / 1000 - Date.now() / 1000;
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
  setInterval(refreshAges, 10000);
  window.abtestDashboard.refreshAges = refreshAges;
})();
