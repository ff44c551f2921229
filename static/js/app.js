/* fxcrm — small progressive enhancements shared by all portals. No framework. */
(function () {
  "use strict";

  // (a) Live indicator: every .live-dot follows the htmx WebSocket state.
  var live = false;
  function paintLive() {
    document.querySelectorAll(".live-dot").forEach(function (el) {
      el.classList.toggle("on", live);
      el.title = live ? "Live updates connected" : "Live updates disconnected";
    });
  }
  document.addEventListener("htmx:wsOpen", function () { live = true; paintLive(); });
  document.addEventListener("htmx:wsClose", function () { live = false; paintLive(); });
  document.addEventListener("htmx:load", paintLive); // dots swapped in later

  // (b) Copy to clipboard: <button data-copy="element-id">.
  function fallbackCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.style.cssText = "position:fixed;opacity:0";
    document.body.appendChild(ta).select();
    try { document.execCommand("copy"); } catch (_) { /* nothing else to try */ }
    ta.remove();
  }
  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("button[data-copy]");
    if (!btn) return;
    e.preventDefault();
    var src = document.getElementById(btn.getAttribute("data-copy"));
    if (!src) return;
    var text = src.matches("input, textarea, select") ? src.value : src.textContent.trim();
    var done = function () {
      if (btn.dataset.label === undefined) btn.dataset.label = btn.textContent;
      btn.textContent = "Copied";
      clearTimeout(btn._copyTimer);
      btn._copyTimer = setTimeout(function () { btn.textContent = btn.dataset.label; delete btn.dataset.label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else { fallbackCopy(text); done(); }
  });

  // (c) Failed htmx requests: show a toast; the form and its input stay as they were.
  function toast(message) {
    var box = document.getElementById("toasts");
    if (!box) {
      box = document.body.appendChild(document.createElement("div"));
      box.id = "toasts";
    }
    var t = document.createElement("div");
    t.className = "toast";
    t.setAttribute("role", "alert");
    t.textContent = message;
    t.addEventListener("click", function () { t.remove(); });
    box.appendChild(t);
    while (box.children.length > 3) box.firstElementChild.remove();
    setTimeout(function () { t.remove(); }, 8000);
  }
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail && e.detail.xhr, status = xhr ? xhr.status : "?";
    toast("Something went wrong (HTTP " + status + "). Your input is kept; try again.");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Network error: the server could not be reached. Your input is kept; try again.");
  });

  // (d) "/" focuses the quick search, unless the user is typing somewhere.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    var t = e.target, q = document.getElementById("quick-search");
    if (!q || (t && (/^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) || t.isContentEditable))) return;
    e.preventDefault();
    q.focus();
    if (q.select) q.select();
  });
})();
