// History: the Compare button is enabled only with 2 to 6 succeeded jobs picked (the server
// checks again and says why). The table is replaced by htmx when filters change, so the count
// is taken afresh after every swap.
(function () {
  "use strict";

  function update() {
    var form = document.getElementById("compare-form");
    var button = document.getElementById("compare-button");
    var hint = document.getElementById("compare-hint");
    if (!form || !button || !hint) return;
    var max = parseInt(form.getAttribute("data-max") || "6", 10);
    var picked = document.querySelectorAll('input.pick[form="compare-form"]:checked').length;
    var ok = picked >= 2 && picked <= max;
    button.disabled = !ok;
    if (picked === 0) hint.textContent = "Pick 2 to " + max + " succeeded jobs to compare them.";
    else if (picked < 2) hint.textContent = "1 job picked: pick at least one more.";
    else if (picked > max) hint.textContent = picked + " jobs picked: at most " + max + " fit side by side.";
    else hint.textContent = picked + " jobs picked.";
  }

  document.addEventListener("change", function (event) {
    if (event.target && event.target.classList && event.target.classList.contains("pick")) update();
  });
  document.addEventListener("htmx:afterSwap", update);
  document.addEventListener("DOMContentLoaded", update);
})();
