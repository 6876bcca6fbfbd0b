// digest preview: tabs, width and dark toggles, the email frame's height, live reload.
// Served as a file (the page's Content-Security-Policy allows no inline script).
(function () {
  "use strict";

  var POLL_MS = 350;
  var RETRY_MS = 2000;
  var store = window.localStorage;
  var live = document.getElementById("live");

  function setting(key, fallback) {
    try {
      return store.getItem("digest-preview." + key) || fallback;
    } catch (e) {
      return fallback;
    }
  }

  function remember(key, value) {
    try {
      store.setItem("digest-preview." + key, value);
    } catch (e) {
      /* private mode: the toggles just do not stick */
    }
  }

  var state = {
    width: setting("width", "desktop"),
    dark: setting("dark", "off"),
    tab: setting("tab", "email"),
  };

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  // -- state onto the page ---------------------------------------------------

  function apply() {
    document.body.classList.toggle("is-mobile", state.width === "mobile");
    document.body.classList.toggle("is-dark", state.dark === "on");
    each("[data-width]", function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.width === state.width));
    });
    each("[data-dark]", function (b) {
      b.setAttribute("aria-pressed", String(state.dark === "on"));
    });
    var tabs = document.querySelectorAll("[data-tab]");
    var known = Array.prototype.some.call(tabs, function (t) {
      return t.dataset.tab === state.tab;
    });
    var current = known ? state.tab : "email";
    each("[data-tab]", function (t) {
      t.setAttribute("aria-selected", String(t.dataset.tab === current));
    });
    each("[data-panel]", function (p) {
      p.hidden = p.dataset.panel !== current;
    });
    var f = frame();
    if (f && f.dataset.src) {
      var src = f.dataset.src + (state.dark === "on" ? "&scheme=dark" : "");
      if (f.getAttribute("src") !== src) f.setAttribute("src", src);
    }
    fitFrame();
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("button");
    if (!target) return;
    if (target.dataset.width) {
      state.width = target.dataset.width;
      remember("width", state.width);
    } else if (target.hasAttribute("data-dark")) {
      state.dark = state.dark === "on" ? "off" : "on";
      remember("dark", state.dark);
    } else if (target.dataset.tab) {
      state.tab = target.dataset.tab;
      remember("tab", state.tab);
    } else {
      return;
    }
    apply();
    window.setTimeout(fitFrame, 300);
  });

  // -- the email frame -------------------------------------------------------

  function frame() {
    return document.getElementById("email-frame");
  }

  // Grow the frame to the email's full height, so the page scrolls as one.
  function fitFrame() {
    var f = frame();
    if (!f || !f.contentDocument || !f.contentDocument.body) return;
    var doc = f.contentDocument;
    var height = Math.max(doc.body.scrollHeight, doc.body.getBoundingClientRect().height);
    var style = f.contentWindow.getComputedStyle(doc.body);
    height += parseFloat(style.marginTop) + parseFloat(style.marginBottom);
    if (height > 0) f.style.height = Math.ceil(height) + "px";
  }

  function frameLoaded(f) {
    fitFrame();
    var doc = f.contentDocument;
    if (!doc) return;
    // Links open in a new tab, not inside the preview.
    doc.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("a[href]");
      if (!link) return;
      event.preventDefault();
      window.open(link.href, "_blank", "noopener");
    });
    if (f.contentWindow && f.contentWindow.ResizeObserver) {
      new f.contentWindow.ResizeObserver(fitFrame).observe(doc.body);
    }
  }

  function watchFrame() {
    var f = frame();
    if (!f) return;
    f.addEventListener("load", function () {
      frameLoaded(f);
    });
    if (f.contentDocument && f.contentDocument.readyState === "complete") frameLoaded(f);
  }

  // -- live reload -----------------------------------------------------------

  function status(kind, text) {
    if (!live) return;
    live.className = "live is-" + kind;
    live.textContent = text;
  }

  // Fetch this page again and swap its content in place: the toggles, the tab
  // and the scroll position stay as the editor left them.
  function refresh(version) {
    status("updating", "Updating…");
    var oldFrame = frame();
    var oldHeight = oldFrame ? oldFrame.style.height : "";
    return fetch(window.location.href, { cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var region = doc.getElementById("live-region");
        if (!region) throw new Error("no live region in the page");
        document.getElementById("live-region").innerHTML = region.innerHTML;
        document.title = doc.title;
        document.body.dataset.version = doc.body.dataset.version || version;
        var f = frame();
        if (f && oldHeight) f.style.height = oldHeight;
        watchFrame();
        apply();
        status("on", "Live");
      });
  }

  function poll() {
    fetch("/_version", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (data) {
        var seen = document.body.dataset.version;
        if (!seen) {
          document.body.dataset.version = data.version;
        } else if (data.version !== seen) {
          return refresh(data.version);
        }
        status("on", "Live");
      })
      .then(
        function () {
          window.setTimeout(poll, POLL_MS);
        },
        function () {
          status("off", "Disconnected");
          window.setTimeout(poll, RETRY_MS);
        }
      );
  }

  apply();
  watchFrame();
  poll();
})();
