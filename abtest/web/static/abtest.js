/* abtest: tested headlines in the slots a page marks with data-abtest="SLUG",
 * the impressions readers actually saw, and the clicks that turned into reading.
 *
 * Load it from where abtest is served, as an external script (no inline script,
 * so it runs under script-src 'self'), in the page's <head>:
 *   <script src="/abtest/abtest.js"></script>
 *
 * Slots.  It asks abtest's batch endpoint once for every slot's headline, puts
 * each headline in its slot and sends the slot's link through abtest's click
 * endpoint, which counts the click and goes on to the link's own address (a
 * path of this site).  While it waits, <html> carries the class "abtest-wait",
 * which a page may use to hide its slots (.abtest-wait [data-abtest]
 * {visibility: hidden}): hidden, not removed, so nothing moves.  After
 * data-wait milliseconds (300 unless the script tag says otherwise), or if the
 * request fails, the defaults stay as the page wrote them, uncounted.
 *
 * Seen.  A slot whose headline was counted (it carries data-abtest-token, set
 * here or by abtest's own pages) is seen once at least half of it was in the
 * viewport of a visible tab for one continuous second (the IAB/MRC display
 * standard).  Seen slots are reported in batches, with navigator.sendBeacon,
 * each by its assignment's signed token: abtest counts each visitor's once.
 *
 * Engaged time.  On a story page (an element with data-abtest-story="SLUG"),
 * a second counts as engaged while the tab is visible and the reader scrolled,
 * moved, clicked, touched or typed within the last five seconds.  At
 * QUALITY_SECONDS of it the page says so once, and the reader's counted click
 * on that story becomes a quality click.
 */
(function () {
  "use strict";
  var QUALITY_SECONDS = 15;
  var WAITING = "abtest-wait";
  var MAX_SLUGS = 20;
  var SLUG = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
  var SEEN_SHARE = 0.5;
  var SEEN_MS = 1000;
  var ACTIVE_MS = 5000;
  var root = document.documentElement;
  var script = document.currentScript;
  if (!script || !window.fetch) {
    return;
  }
  // abtest's own address, from this script's: it works wherever abtest is mounted.
  var base = script.src.replace(/\/abtest\.js(?:[?#].*)?$/, "");
  var wait = parseInt(script.getAttribute("data-wait"), 10);
  if (!(wait >= 0)) {
    wait = 300;
  }
  var settled = false;
  root.classList.add(WAITING);

  function visible() {
    return document.visibilityState === "visible";
  }

  function beacon(path, body) {
    var url = base + path;
    var data = JSON.stringify(body);
    // A string goes as text/plain: a request the server needs no preflight for.
    if (!(navigator.sendBeacon && navigator.sendBeacon(url, data))) {
      fetch(url, { method: "POST", body: data, credentials: "include", keepalive: true }).catch(
        function () {}
      );
    }
  }

  // -- seen ----------------------------------------------------------------

  var pending = [];
  var reported = {};
  var flushTimer = null;
  var watched = [];
  var observer = window.IntersectionObserver
    ? new IntersectionObserver(observed, { threshold: [0, SEEN_SHARE] })
    : null;

  function flush() {
    clearTimeout(flushTimer);
    flushTimer = null;
    if (pending.length) {
      beacon("/api/v1/seen", { tokens: pending.splice(0, pending.length) });
    }
  }

  function seen(slot) {
    var token = slot.getAttribute("data-abtest-token");
    observer.unobserve(slot);
    slot.abtestInView = false;
    if (reported[token]) {
      return;
    }
    reported[token] = true;
    pending.push(token);
    // Slots seen together go in one beacon.
    if (!flushTimer) {
      flushTimer = setTimeout(flush, SEEN_MS);
    }
  }

  // A slot's second starts when it is half in view in a visible tab, and stops
  // when either ends.
  function time(slot) {
    var due = slot.abtestInView && visible();
    if (due && !slot.abtestTimer) {
      slot.abtestTimer = setTimeout(function () {
        slot.abtestTimer = null;
        seen(slot);
      }, SEEN_MS);
    } else if (!due && slot.abtestTimer) {
      clearTimeout(slot.abtestTimer);
      slot.abtestTimer = null;
    }
  }

  function observed(entries) {
    for (var i = 0; i < entries.length; i++) {
      var entry = entries[i];
      entry.target.abtestInView = entry.isIntersecting && entry.intersectionRatio >= SEEN_SHARE;
      time(entry.target);
    }
  }

  function watch() {
    if (!observer) {
      return;
    }
    var slots = document.querySelectorAll("[data-abtest-token]");
    for (var i = 0; i < slots.length; i++) {
      if (watched.indexOf(slots[i]) < 0) {
        watched.push(slots[i]);
        observer.observe(slots[i]);
      }
    }
  }

  // -- engaged time --------------------------------------------------------

  function engage() {
    var story = document.querySelector("[data-abtest-story]");
    var slug = story && story.getAttribute("data-abtest-story");
    if (!slug || !SLUG.test(slug)) {
      return;
    }
    var engaged = 0;
    var active = Date.now();
    var events = ["scroll", "mousemove", "mousedown", "keydown", "touchstart", "wheel"];
    function activity() {
      active = Date.now();
    }
    for (var i = 0; i < events.length; i++) {
      window.addEventListener(events[i], activity, { passive: true, capture: true });
    }
    var ticker = setInterval(function () {
      if (visible() && Date.now() - active < ACTIVE_MS) {
        engaged += 1;
      }
      if (engaged >= QUALITY_SECONDS) {
        clearInterval(ticker);
        beacon("/api/v1/engaged", { experiment: slug, seconds: engaged });
      }
    }, 1000);
  }

  // -- slots ---------------------------------------------------------------

  function settle() {
    settled = true;
    root.classList.remove(WAITING);
  }

  // Where the click goes after abtest counted it: the slot's own link, when it
  // is a page of this site.
  function onward(slot) {
    var link;
    try {
      link = new URL(slot.getAttribute("href"), location.href);
    } catch (error) {
      return "";
    }
    if (link.origin !== location.origin) {
      return "";
    }
    return "?to=" + encodeURIComponent(link.pathname + link.search + link.hash);
  }

  function swap(slots, found) {
    for (var i = 0; i < slots.length; i++) {
      var slot = slots[i];
      var one = found[slot.getAttribute("data-abtest")];
      if (!one) {
        continue;
      }
      slot.textContent = one.headline;
      if (slot.hasAttribute("href")) {
        slot.setAttribute("href", one.click_url + (one.token ? onward(slot) : ""));
      }
      slot.setAttribute("data-abtest-variant", one.variant);
      if (one.token) {
        slot.setAttribute("data-abtest-token", one.token);
      }
    }
  }

  function start() {
    engage();
    var slots = document.querySelectorAll("[data-abtest]");
    var slugs = [];
    for (var i = 0; i < slots.length; i++) {
      var slug = slots[i].getAttribute("data-abtest");
      if (SLUG.test(slug) && slugs.indexOf(slug) < 0 && slugs.length < MAX_SLUGS) {
        slugs.push(slug);
      }
    }
    if (!slugs.length) {
      settle();
      watch();
      return;
    }
    var timer = setTimeout(settle, wait);
    fetch(base + "/api/v1/assignments?slugs=" + slugs.join(","), {
      credentials: "include",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (answer) {
        // Too late: the reader already sees the defaults, which stay.
        if (settled || !answer || !answer.assignments) {
          return;
        }
        var found = {};
        for (var i = 0; i < answer.assignments.length; i++) {
          found[answer.assignments[i].experiment] = answer.assignments[i];
        }
        swap(slots, found);
      })
      .catch(function () {})
      .then(function () {
        clearTimeout(timer);
        settle();
        watch();
      });
  }

  document.addEventListener("visibilitychange", function () {
    for (var i = 0; i < watched.length; i++) {
      time(watched[i]);
    }
    if (!visible()) {
      flush();
    }
  });
  window.addEventListener("pagehide", flush);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
