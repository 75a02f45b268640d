// Shared page code: the dark-mode toggle and the CSRF header for scripts and htmx.
// Pages call the JSON API with tabpilot.csrfHeaders() (see web/__init__.py).
(function () {
  "use strict";
  var KEY = "tabpilot-theme";
  var root = document.documentElement;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function csrfHeaders(extra) {
    var headers = { "X-CSRF-Token": csrfToken(), "Accept": "application/json" };
    for (var name in extra || {}) headers[name] = extra[name];
    return headers;
  }

  function isDark() {
    var chosen = root.getAttribute("data-theme");
    if (chosen) return chosen === "dark";
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  }

  function showTheme(button) {
    button.setAttribute("aria-pressed", isDark() ? "true" : "false");
  }

  function setupThemeToggle() {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    showTheme(button);
    button.addEventListener("click", function () {
      var next = isDark() ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { window.localStorage.setItem(KEY, next); } catch (e) { /* not remembered */ }
      showTheme(button);
    });
    if (window.matchMedia) {
      window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () {
        showTheme(button);
      });
    }
  }

  // htmx requests carry the CSRF token like every other script request.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  window.tabpilot = { csrfToken: csrfToken, csrfHeaders: csrfHeaders };
  document.addEventListener("DOMContentLoaded", setupThemeToggle);
})();
