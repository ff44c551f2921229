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
  function saysItself(e) { // forms that show their own failure in place (KYC uploads, (g))
    var elt = e.detail && e.detail.elt;
    return !!(elt && elt.closest && elt.closest("form[data-upload]"));
  }
  document.addEventListener("htmx:responseError", function (e) {
    if (saysItself(e)) return;
    var xhr = e.detail && e.detail.xhr, status = xhr ? xhr.status : "?";
    toast("Something went wrong (HTTP " + status + "). Your input is kept; try again.");
  });
  document.addEventListener("htmx:sendError", function (e) {
    if (saysItself(e)) return;
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

  // (e) <input type="checkbox" data-check-all="form-id"> ticks every row checkbox of that form.
  document.addEventListener("change", function (e) {
    var box = e.target;
    if (!box.matches || !box.matches("input[data-check-all]")) return;
    var form = box.getAttribute("data-check-all");
    document.querySelectorAll('input[type="checkbox"][name="ids"][form="' + form + '"]').forEach(function (c) {
      c.checked = box.checked;
    });
  });

  // (f) Links that carry the page's query (the client list's exports) follow the URL htmx pushes.
  function syncQueryLinks() {
    document.querySelectorAll("a[data-keep-query]").forEach(function (a) {
      a.href = a.getAttribute("data-keep-query") + location.search;
    });
  }
  document.addEventListener("htmx:pushedIntoHistory", syncQueryLinks);
  document.addEventListener("htmx:replacedInHistory", syncQueryLinks);
  window.addEventListener("popstate", syncQueryLinks);

  // (g) KYC uploads: one form[data-upload] per document side. A progress bar while it sends; on a
  // network failure or timeout "Upload failed — Retry" (a submit button: the same chosen file is
  // sent again); a card with a side in flight or failed is not replaced under it (live update, or
  // the other side's answer: then only that side's form is swapped in).
  function uploadForm(e) {
    var f = e.detail && e.detail.elt;
    return f && f.matches && f.matches("form[data-upload]") ? f : null;
  }
  function uploadFailed(f, message, retry) {
    f.dataset.state = retry ? "failed" : "refused";
    f.querySelector("[data-upload-message]").textContent = message;
  }
  // While the camera or the file picker is open, the side counts as busy: a live update must not
  // replace the input the photo is about to land in. Cancelling the picker ends that.
  document.addEventListener("click", function (e) {
    var input = e.target;
    if (!input.matches || !input.matches("form[data-upload] input[type=file]")) return;
    var state = input.form.dataset.state;
    if (!state || state === "refused") input.form.dataset.state = "picking";
  }, true);
  document.addEventListener("cancel", function (e) {
    var input = e.target;
    if (input.matches && input.matches("form[data-upload] input[type=file]") && input.form.dataset.state === "picking") {
      delete input.form.dataset.state;
    }
  }, true);
  document.addEventListener("change", function (e) { // capture: before htmx reads the form
    var input = e.target;
    if (!input.matches || !input.matches("form[data-upload] input[type=file]")) return;
    input.form.querySelectorAll("input[type=file]").forEach(function (other) {
      if (other !== input) other.value = ""; // camera or picker: send only the one just used
    });
  }, true);
  document.addEventListener("htmx:beforeRequest", function (e) {
    var f = uploadForm(e);
    if (!f) return;
    var max = Number(f.dataset.maxBytes), big = Array.prototype.some.call(f.querySelectorAll("input[type=file]"), function (i) {
      return i.files && i.files[0] && max && i.files[0].size > max;
    });
    if (big) {
      e.preventDefault();
      uploadFailed(f, "This file is larger than " + Math.round(max / 1048576) + " MB. Take a photo or choose a smaller file.", false);
      return;
    }
    f.dataset.state = "sending";
    f.querySelector("progress").value = 0;
  });
  document.addEventListener("htmx:xhr:progress", function (e) {
    var f = uploadForm(e), bar = f && f.querySelector("progress");
    if (bar && e.detail.lengthComputable && e.detail.total) {
      bar.value = Math.max(bar.value, Math.round((100 * e.detail.loaded) / e.detail.total));
    }
  });
  ["htmx:sendError", "htmx:timeout"].forEach(function (name) {
    document.addEventListener(name, function (e) {
      var f = uploadForm(e);
      if (f) uploadFailed(f, "Upload failed — check your connection.", true);
    });
  });
  document.addEventListener("htmx:responseError", function (e) {
    var f = uploadForm(e), status = e.detail.xhr ? e.detail.xhr.status : 0;
    if (!f) return;
    if (status === 413) uploadFailed(f, "This file is too large. Take a photo or choose a smaller file.", false);
    else uploadFailed(f, "Upload failed (HTTP " + status + ").", true);
  });
  function busySides(card, except) {
    return Array.prototype.some.call(card.querySelectorAll("form[data-upload][data-state]"), function (o) {
      return o !== except && o.dataset.state !== "refused";
    });
  }
  document.addEventListener("htmx:beforeSwap", function (e) {
    var f = uploadForm(e), card = e.detail.target;
    if (!f || !card || !card.matches(".doc-card") || !busySides(card, f)) return;
    e.detail.shouldSwap = false;
    var twin = new DOMParser().parseFromString(e.detail.serverResponse, "text/html").getElementById(f.id);
    if (twin) {
      f.replaceWith(twin);
      htmx.process(twin);
    }
  });
  document.addEventListener("htmx:oobBeforeSwap", function (e) {
    var card = e.detail.target;
    if (card && card.matches && card.matches(".doc-card") && busySides(card, null)) e.detail.shouldSwap = false;
  });
})();

/* KYC review: zoom and rotate a document's photo (<figure data-doc-viewer> with buttons
   data-doc-zoom="in|out", data-doc-rotate="±90", data-doc-reset); the image itself is untouched. */
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("[data-doc-zoom], [data-doc-rotate], [data-doc-reset]");
    var fig = btn && btn.closest("[data-doc-viewer]");
    var img = fig && fig.querySelector(".doc-frame img");
    if (!img) return;
    var zoom = parseFloat(fig.dataset.zoom || "1"), turn = parseInt(fig.dataset.turn || "0", 10);
    if (btn.hasAttribute("data-doc-zoom")) {
      zoom = Math.min(4, Math.max(0.5, zoom * (btn.getAttribute("data-doc-zoom") === "in" ? 1.25 : 0.8)));
    } else if (btn.hasAttribute("data-doc-rotate")) {
      turn = (turn + parseInt(btn.getAttribute("data-doc-rotate"), 10) + 360) % 360;
    } else {
      zoom = 1;
      turn = 0;
    }
    fig.dataset.zoom = zoom.toFixed(3);
    fig.dataset.turn = String(turn);
    img.style.width = Math.round(zoom * 100) + "%";
    img.style.transform = turn ? "rotate(" + turn + "deg)" : "";
  });
})();
