/* abtest: tested headlines in the slots a page marks with data-abtest="SLUG".
 *
 * Load it from where abtest is served, as an external script (no inline script,
 * so it runs under script-src 'self'), in the page's <head>:
 *   <script src="/abtest/abtest.js"></script>
 * It asks abtest's batch endpoint once for every slot's headline, puts each
 * headline in its slot and sends the slot's link through abtest's click
 * endpoint.  While it waits, <html> carries the class "abtest-wait", which a
 * page may use to hide its slots (.abtest-wait [data-abtest] {visibility:
 * hidden}): hidden, not removed, so nothing moves.  After data-wait
 * milliseconds (300 unless the script tag says otherwise), or if the request
 * fails, the defaults stay as the page wrote them.
 */
(function () {
  "use strict";
  var WAITING = "abtest-wait";
  var MAX_SLUGS = 20;
  var SLUG = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
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

  function settle() {
    settled = true;
    root.classList.remove(WAITING);
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
        slot.setAttribute("href", one.click_url);
      }
      slot.setAttribute("data-abtest-variant", one.variant);
    }
  }

  function start() {
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
      });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
