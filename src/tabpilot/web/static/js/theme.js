// Runs in <head> before the first paint: applies the remembered theme (localStorage
// "tabpilot-theme": "light" or "dark"); without one the system's prefers-color-scheme decides.
(function () {
  "use strict";
  try {
    var saved = window.localStorage.getItem("tabpilot-theme");
    if (saved === "light" || saved === "dark") {
      document.documentElement.setAttribute("data-theme", saved);
    }
  } catch (e) {
    // Storage blocked (privacy mode): the system theme applies.
  }
})();
