// Predict page: copy buttons for the snippets, and the batch CSV upload to the JSON API's
// predict.csv (the same service as curl), with upload and download progress and the answer
// offered as a file.
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Fallback for plain-http hosts other than localhost: a hidden textarea and execCommand.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  // One listener for every Copy button: htmx replaces the snippets after each change.
  function setupCopyButtons() {
    document.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
      if (!button) return;
      var source = document.getElementById(button.getAttribute("data-copy"));
      var status = button.parentNode.querySelector(".copy-status");
      if (!source) return;
      copyText(source.textContent).then(function () {
        button.textContent = "Copied";
        if (status) status.textContent = "Copied to the clipboard.";
        window.setTimeout(function () {
          button.textContent = "Copy";
          if (status) status.textContent = "";
        }, 2000);
      }, function () {
        if (status) status.textContent = "Copying was refused: select the text and copy it.";
      });
    });
  }

  function formatBytes(n) {
    if (n < 1024) return n + " bytes";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
    return (n / 1024 / 1024).toFixed(1) + " MiB";
  }

  function errorMessage(xhr, body) {
    try {
      var data = JSON.parse(body);
      if (data && data.error && data.error.message) return data.error.message;
    } catch (e) { /* not JSON */ }
    return "The server answered " + xhr.status + (xhr.statusText ? " " + xhr.statusText : "") + ".";
  }

  function setupBatch() {
    var form = document.getElementById("batch-form");
    if (!form) return;
    var input = document.getElementById("batch-file");
    var button = document.getElementById("batch-submit");
    var box = document.getElementById("batch-progress");
    var bar = document.getElementById("batch-bar");
    var status = document.getElementById("batch-status");
    var error = document.getElementById("batch-error");
    var done = document.getElementById("batch-done");
    var link = document.getElementById("batch-download");
    var summary = document.getElementById("batch-summary");
    var lastUrl = null;

    function fail(message) {
      box.hidden = true;
      error.textContent = message;
      error.hidden = false;
      button.disabled = false;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = input.files && input.files[0];
      error.hidden = true;
      done.hidden = true;
      if (!file) { fail("Choose a CSV file first."); return; }
      if (lastUrl) { URL.revokeObjectURL(lastUrl); lastUrl = null; }
      var data = new FormData();
      data.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("data-url"));
      var headers = window.tabpilot.csrfHeaders({ "Accept": "text/csv" });
      Object.keys(headers).forEach(function (name) { xhr.setRequestHeader(name, headers[name]); });
      xhr.responseType = "blob";
      box.hidden = false;
      bar.value = 0;
      status.textContent = "Uploading " + file.name + "…";
      button.disabled = true;
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        bar.value = Math.round((e.loaded / e.total) * 100);
        status.textContent = "Uploading: " + formatBytes(e.loaded) + " of " + formatBytes(e.total);
      });
      xhr.upload.addEventListener("load", function () {
        bar.removeAttribute("value");  // indeterminate while the server predicts
        status.textContent = "Uploaded; predicting…";
      });
      xhr.addEventListener("progress", function (e) {
        status.textContent = "Receiving predictions: " + formatBytes(e.loaded);
      });
      xhr.addEventListener("error", function () {
        fail("The transfer broke off before the predictions were complete (a value further down "
          + "the file may be invalid, or the server stopped). Nothing was saved.");
      });
      xhr.addEventListener("load", function () {
        var blob = xhr.response;
        if (xhr.status !== 200) {
          blob.text().then(function (body) { fail(errorMessage(xhr, body)); });
          return;
        }
        lastUrl = URL.createObjectURL(blob);
        link.href = lastUrl;
        box.hidden = true;
        button.disabled = false;
        blob.text().then(function (text) {
          var lines = text.split("\n").filter(function (line) { return line !== ""; }).length;
          summary.textContent = Math.max(lines - 1, 0).toLocaleString("en") + " rows predicted (" + formatBytes(blob.size) + ").";
          done.hidden = false;
          link.focus();
        });
      });
      xhr.send(data);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupCopyButtons();
    setupBatch();
  });
})();
