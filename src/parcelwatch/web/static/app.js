// parcelwatch dashboard: local times, live regions, refresh, carrier detection, admin controls.
// Plain JavaScript, no build step; every page works without it (times then show in UTC).
(function () {
  "use strict";

  var serverHtml = new WeakMap();

  // A signed-in browser's changes carry its session's CSRF token (the page's <meta>).
  function writeHeaders(headers) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) headers["X-CSRF-Token"] = meta.getAttribute("content");
    return headers;
  }

  // ---- times: <time datetime="ISO" data-local="datetime|date|relative"> ----
  var sameYear = function (d) { return d.getFullYear() === new Date().getFullYear(); };
  function formatDateTime(d) {
    var options = { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
    if (!sameYear(d)) options.year = "numeric";
    return new Intl.DateTimeFormat(undefined, options).format(d);
  }
  function formatDate(d) {
    var options = { weekday: "short", day: "numeric", month: "short" };
    if (!sameYear(d)) options.year = "numeric";
    return new Intl.DateTimeFormat(undefined, options).format(d);
  }
  function formatRelative(d) {
    var seconds = Math.round((d.getTime() - Date.now()) / 1000);
    var abs = Math.abs(seconds);
    var rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
    if (abs < 45) return seconds <= 0 ? "just now" : "in a few seconds";
    if (abs < 3600) return rtf.format(Math.round(seconds / 60), "minute");
    if (abs < 86400) return rtf.format(Math.round(seconds / 3600), "hour");
    if (abs < 86400 * 14) return rtf.format(Math.round(seconds / 86400), "day");
    return formatDate(d);
  }
  function localizeTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) return;
      var kind = el.getAttribute("data-local");
      el.textContent = kind === "date" ? formatDate(d) : kind === "relative" ? formatRelative(d) : formatDateTime(d);
      el.title = formatDateTime(d) + " (" + Intl.DateTimeFormat().resolvedOptions().timeZone + ")";
    });
  }

  // ---- live regions: re-fetch this page and swap [data-live] blocks that changed ----
  function announce(text) {
    var box = document.getElementById("live-announcer");
    if (box) { box.textContent = ""; window.setTimeout(function () { box.textContent = text; }, 50); }
  }
  function remember() {
    document.querySelectorAll("[data-live][id]").forEach(function (el) { serverHtml.set(el, el.innerHTML); });
  }
  var polling = false;
  function poll() {
    if (polling || document.hidden) return Promise.resolve();
    polling = true;
    return fetch(window.location.href, { headers: { "X-Live-Update": "1" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var changed = 0;
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var next = fresh.getElementById(el.id);
          if (!next || next.innerHTML === serverHtml.get(el)) return;
          if (el.contains(document.activeElement) && document.activeElement !== document.body) return;
          el.innerHTML = next.innerHTML;
          serverHtml.set(el, next.innerHTML);
          changed += 1;
        });
        localizeTimes();
        if (changed) syncRefreshBox();
        var state = document.getElementById("live-state");
        if (state) state.textContent = "Live · checked " + new Date().toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
        if (changed) { document.body.setAttribute("data-updated", String(Date.now())); announce("Page updated with new information."); }
      })
      .catch(function () { /* offline for a moment: try again next tick */ })
      .finally(function () { polling = false; });
  }
  window.parcelwatchPoll = poll;

  // ---- manual refresh with the cool-down (the box is a live region: look it up each time) ----
  var refreshTimer = null;
  var coolingUntil = 0;
  function refreshParts() {
    return { box: document.getElementById("refresh"), button: document.getElementById("refresh-button"), message: document.getElementById("refresh-message") };
  }
  function coolDownUntil(when) {
    var parts = refreshParts();
    if (!parts.button) return;
    coolingUntil = when.getTime();
    parts.button.disabled = true;
    var clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(when);
    parts.message.textContent = "You can refresh again at " + clock + ".";
    window.clearTimeout(refreshTimer);
    refreshTimer = window.setTimeout(function () {
      var now = refreshParts();
      if (!now.button) return;
      now.button.disabled = false;
      now.message.textContent = "You can refresh again now.";
    }, Math.max(0, coolingUntil - Date.now()) + 500);
  }
  function syncRefreshBox() {
    // After the server re-rendered the box: keep showing a cool-down the server knows of.
    var parts = refreshParts();
    if (!parts.box) return;
    var until = parts.box.getAttribute("data-available-at");
    if (until && new Date(until).getTime() > Date.now()) coolDownUntil(new Date(until));
  }
  function refresh() {
    var parts = refreshParts();
    var button = parts.button;
    var message = parts.message;
    button.disabled = true;
    message.textContent = "Asking the carrier…";
    fetch(parts.box.getAttribute("data-refresh-url"), { method: "POST", headers: writeHeaders({ Accept: "application/json" }), credentials: "same-origin" })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          var detail = body && body.detail ? String(body.detail) : "";
          if (response.status === 429) {
            var wait = parseInt(response.headers.get("Retry-After") || "300", 10);
            coolDownUntil(new Date(Date.now() + wait * 1000));
            message.textContent = "Refreshed recently. " + message.textContent;
            return;
          }
          if (!response.ok) {
            button.disabled = false;
            message.textContent = detail || ("The refresh failed (HTTP " + response.status + ").");
            return;
          }
          var refreshedAt = body.shipment && body.shipment.last_manual_refresh ? new Date(body.shipment.last_manual_refresh) : new Date();
          coolDownUntil(new Date(refreshedAt.getTime() + 5 * 60 * 1000));
          var notice = (detail || "Refreshed.") + " " + refreshParts().message.textContent;
          poll().then(function () { refreshParts().message.textContent = notice; });
        });
      })
      .catch(function () { button.disabled = false; message.textContent = "Could not reach parcelwatch. Try again."; });
  }
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target && target.id === "refresh-button" && !target.disabled) refresh();
  });

  // ---- live carrier detection on the add page ----
  function debounce(fn, ms) { var t = null; return function () { window.clearTimeout(t); t = window.setTimeout(fn, ms); }; }
  function detect(text) {
    return fetch("/api/detect", { method: "POST", headers: writeHeaders({ "Content-Type": "application/json", Accept: "application/json" }), body: JSON.stringify({ text: text }), credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { numbers: [] }; })
      .then(function (body) { return body.numbers || []; })
      .catch(function () { return []; });
  }
  // A number several carriers fit: "FedEx or Purolator" (the person chooses; nothing is guessed).
  function choiceNames(number) {
    return (number.candidates || []).map(function (c) { return c.carrier_name; }).join(" or ");
  }
  function setupDetection() {
    var input = document.getElementById("tracking_number");
    var hint = document.getElementById("detected");
    if (input && hint) {
      input.addEventListener("input", debounce(function () {
        var value = input.value.trim();
        if (value.replace(/[\s-]/g, "").length < 8) { hint.className = "small"; hint.textContent = "Spaces and dashes are fine; the carrier is detected as you type."; return; }
        detect(value).then(function (numbers) {
          if (numbers.length && numbers[0].ambiguous) { hint.className = "small detected-none"; hint.textContent = "Fits several carriers: " + choiceNames(numbers[0]) + ". Choose the carrier below."; }
          else if (numbers.length) { hint.className = "small detected-ok"; hint.textContent = "✓ Detected: " + numbers[0].carrier_name + " (" + numbers[0].tracking_number + ")"; }
          else { hint.className = "small detected-none"; hint.textContent = "No carrier recognised from the number: choose the carrier below."; }
        });
      }, 250));
    }
    var area = document.getElementById("text");
    var found = document.getElementById("found");
    if (area && found) {
      area.addEventListener("input", debounce(function () {
        if (!area.value.trim()) { found.className = "small"; found.textContent = "Every tracking number in the text is found and added in one go."; return; }
        detect(area.value).then(function (numbers) {
          if (!numbers.length) { found.className = "small detected-none"; found.textContent = "No tracking number found yet."; return; }
          found.className = "small detected-ok";
          found.textContent = "✓ Found " + numbers.length + " tracking number" + (numbers.length === 1 ? "" : "s") + ": " +
            numbers.slice(0, 6).map(function (n) { return (n.ambiguous ? choiceNames(n) + "?" : n.carrier_name) + " " + n.tracking_number; }).join(", ") + (numbers.length > 6 ? ", …" : "");
        });
      }, 400));
    }
  }

  // ---- admin: pause and resume the updater, as the signed-in owner or administrator ----
  function setupAdmin() {
    var box = document.getElementById("admin-controls");
    if (!box) return;
    var message = document.getElementById("admin-message");
    box.querySelectorAll("[data-admin-action]").forEach(function (button) {
      button.addEventListener("click", function () {
        var action = button.getAttribute("data-admin-action");
        message.textContent = action === "pause" ? "Pausing…" : "Resuming…";
        fetch(box.getAttribute("data-" + action + "-url"), { method: "POST", headers: writeHeaders({ Accept: "application/json" }), credentials: "same-origin" })
          .then(function (response) {
            return response.json().catch(function () { return {}; }).then(function (body) {
              if (response.ok) {
                message.textContent = body.paused ? "Automatic updates are paused." : "Automatic updates are running.";
                poll();
                return;
              }
              message.textContent = (body && body.detail) ? String(body.detail) : "The request failed (HTTP " + response.status + ").";
            });
          })
          .catch(function () { message.textContent = "Could not reach parcelwatch."; });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    remember();
    localizeTimes();
    syncRefreshBox();
    setupDetection();
    setupAdmin();
    var every = parseInt(document.body.getAttribute("data-poll") || "0", 10);
    if (every > 0) {
      window.setInterval(poll, every);
      document.addEventListener("visibilitychange", function () { if (!document.hidden) poll(); });
    }
  });
})();
