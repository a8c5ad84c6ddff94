/* MedAI page behaviour. Loaded as a static file (CSP script-src 'self'); no inline handlers. */
(function () {
  "use strict";

  var POLL_HEADER = "X-MedAI-Poll";

  /* A browser without EventSource: the sse extension gets an inert stand-in, so the advice panel
     still works (it polls; see advicePush). */
  if (!window.EventSource && window.htmx) {
    window.htmx.createEventSource = function () {
      var noop = function () {};
      return { readyState: 2, addEventListener: noop, removeEventListener: noop, close: noop };
    };
  }

  /* --- Inactivity: the server ends idle sessions; this only takes the screen away in time.
     Typing and clicking are activity: while the doctor works on a long form, a keep-alive
     request (not marked as a poll) tells the server so. Polls keep nothing alive. */
  function idleTimer() {
    var body = document.body;
    var idle = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
    var sessionUrl = body.getAttribute("data-session-url");
    var loginUrl = body.getAttribute("data-login-url");
    if (!idle || !sessionUrl || !loginUrl) { return; }
    var lastInteraction = Date.now();
    var lastServerTouch = Date.now();
    ["keydown", "pointerdown", "wheel", "touchstart"].forEach(function (name) {
      document.addEventListener(name, function () { lastInteraction = Date.now(); }, { passive: true });
    });
    document.addEventListener("htmx:beforeRequest", function (event) {
      var headers = (event.detail.requestConfig || {}).headers || {};
      if (headers[POLL_HEADER] !== "1") { lastServerTouch = Date.now(); }
    });
    function expired() {
      window.location.assign(loginUrl + "?expired=1");
    }
    window.setInterval(function () {
      var now = Date.now();
      if (lastInteraction > lastServerTouch && now - lastServerTouch > 60000) {
        lastServerTouch = now;
        fetch(sessionUrl, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
          if (r.status !== 204) { expired(); }
        });
        return;
      }
      if (now - lastInteraction > idle * 1000 + 5000) {
        var headers = {}; headers[POLL_HEADER] = "1";
        fetch(sessionUrl, { credentials: "same-origin", cache: "no-store", headers: headers })
          .then(function (r) { if (r.status !== 204 || r.redirected) { expired(); } })
          .catch(function () { /* offline: try again next round */ });
      }
    }, 15000);
  }

  /* --- ICD-10 search-as-you-type: htmx fills the list; choosing an entry fills the field. */
  function combobox() {
    document.addEventListener("click", function (event) {
      var option = event.target.closest("[data-icd-code]");
      if (!option) { return; }
      event.preventDefault();
      var combo = option.closest(".combo");
      var input = combo.querySelector("input");
      input.value = option.getAttribute("data-icd-code");
      var chosen = combo.querySelector(".chosen");
      if (chosen) { chosen.textContent = option.getAttribute("data-icd-code") + " " + option.getAttribute("data-icd-display"); }
      combo.querySelector(".combo-list").innerHTML = "";
      input.setAttribute("aria-expanded", "false");
      input.focus();
    });
    document.addEventListener("keydown", function (event) {
      var combo = event.target.closest && event.target.closest(".combo");
      if (!combo) { return; }
      var options = Array.prototype.slice.call(combo.querySelectorAll("[data-icd-code]"));
      if (!options.length) { return; }
      var index = options.indexOf(document.activeElement);
      if (event.key === "ArrowDown") {
        event.preventDefault();
        options[Math.min(index + 1, options.length - 1)].focus();
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        if (index <= 0) { combo.querySelector("input").focus(); } else { options[index - 1].focus(); }
      } else if (event.key === "Escape") {
        combo.querySelector(".combo-list").innerHTML = "";
        combo.querySelector("input").focus();
      }
    });
    document.addEventListener("htmx:afterSwap", function (event) {
      var list = event.target;
      if (list.classList && list.classList.contains("combo-list")) {
        var input = list.closest(".combo").querySelector("input");
        input.setAttribute("aria-expanded", list.children.length ? "true" : "false");
      }
    });
  }

  /* --- Language buttons and other auto-submitting selects marked data-autosubmit. */
  function autosubmit() {
    document.addEventListener("change", function (event) {
      if (event.target.matches("[data-autosubmit]")) { event.target.form.submit(); }
    });
  }

  /* --- Advice: pushed by server-sent events (htmx's sse extension: the panel's sse-connect and
     hx-trigger="sse:advice"); while no stream is open (no EventSource, a proxy that drops it,
     a reconnect in progress) the panel polls itself every 2 s instead. data-advice-delivery on
     <body> says which path brought the advice ("push" or "poll"). */
  function advicePush() {
    document.addEventListener("htmx:sseOpen", function (event) { event.target.setAttribute("data-sse", "open"); });
    document.addEventListener("htmx:sseError", function (event) { event.target.setAttribute("data-sse", "error"); });
    document.addEventListener("htmx:sseMessage", function (event) {
      if (event.target.id === "advice-panel") { document.body.setAttribute("data-advice-delivery", "push"); }
    });
    function poll() {
      var panel = document.querySelector("#advice-panel[data-advice-pending]");
      if (!panel || !window.htmx) { return; }
      if (window.EventSource && panel.getAttribute("data-sse") === "open") { return; }
      document.body.setAttribute("data-advice-delivery", "poll");
      window.htmx.trigger(panel, "medai:poll");
    }
    /* No stream can open at all: the first look comes soon (advice usually takes well under a
       second), then every 2 s. With EventSource the stream gets its 2 s to open first. */
    if (!window.EventSource) { window.setTimeout(poll, 500); }
    window.setInterval(poll, 2000);
  }

  /* --- The normal range follows the unit picked for a value (glucose mg/dL <-> mmol/L). */
  function unitRanges() {
    document.addEventListener("change", function (event) {
      var select = event.target;
      if (!select.id) { return; }
      var cell = document.querySelector('[data-unit-select="' + select.id + '"]');
      if (!cell) { return; }
      var ranges = JSON.parse(cell.getAttribute("data-ranges") || "{}");
      cell.textContent = ranges[select.value] || "–";
    });
  }

  /* --- After a failed submit, focus goes to the error summary (screen readers read it). */
  function focusErrorSummary() {
    var summary = document.querySelector("[data-error-summary]");
    if (summary) { summary.focus(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    idleTimer();
    combobox();
    autosubmit();
    unitRanges();
    focusErrorSummary();
    advicePush();
  });
})();
