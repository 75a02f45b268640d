// Home page upload: drag and drop or the file input, sent with XMLHttpRequest to
// POST /api/datasets so the page can show a byte progress bar; errors are the API's messages.
(function () {
  "use strict";

  function formatBytes(n) {
    var units = ["bytes", "KB", "MB", "GB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }  // as the server shows
    return i === 0 ? n + " bytes" : n.toFixed(1) + " " + units[i];
  }

  function setup() {
    var form = document.getElementById("upload-form");
    if (!form) return;
    var input = document.getElementById("upload-file");
    var progress = document.getElementById("upload-progress");
    var bar = document.getElementById("upload-bar");
    var status = document.getElementById("upload-status");
    var error = document.getElementById("upload-error");
    var busy = false;

    function showError(message) {
      error.textContent = message;  // text, never markup: messages quote file contents
      error.hidden = false;
      progress.hidden = true;
      form.classList.remove("busy");
      busy = false;
    }

    function apiMessage(xhr) {
      try {
        var body = JSON.parse(xhr.responseText);
        if (body && body.error && body.error.message) return body.error.message;
      } catch (e) { /* not JSON */ }
      return "The upload failed (" + (xhr.status || "no answer from the server") + ").";
    }

    function upload(file) {
      if (!file || busy) return;
      busy = true;
      error.hidden = true;
      form.classList.add("busy");
      progress.hidden = false;
      bar.value = 0;
      status.textContent = "Uploading " + file.name + "…";
      var data = new FormData();
      data.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("data-upload-url"));
      var headers = window.tabpilot.csrfHeaders();
      for (var name in headers) xhr.setRequestHeader(name, headers[name]);
      xhr.upload.addEventListener("progress", function (event) {
        if (!event.lengthComputable) return;
        bar.value = Math.round((event.loaded / event.total) * 100);
        status.textContent = formatBytes(event.loaded) + " of " + formatBytes(event.total);
        if (event.loaded >= event.total) status.textContent += ": reading and profiling…";
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 201) {
          var dataset = JSON.parse(xhr.responseText);
          bar.value = 100;
          status.textContent = "Uploaded: opening " + dataset.name + "…";
          window.location.assign("/datasets/" + encodeURIComponent(dataset.id));
        } else {
          showError(apiMessage(xhr));
        }
      });
      xhr.addEventListener("error", function () {
        showError("The upload did not reach the server (connection lost). Try again.");
      });
      xhr.send(data);
    }

    input.addEventListener("change", function () {
      if (input.files && input.files.length) upload(input.files[0]);
      input.value = "";  // choosing the same file again uploads it again
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    ["dragenter", "dragover"].forEach(function (type) {
      form.addEventListener(type, function (event) {
        event.preventDefault();
        form.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      form.addEventListener(type, function (event) {
        event.preventDefault();
        form.classList.remove("dragging");
      });
    });
    form.addEventListener("drop", function (event) {
      var files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length) return;
      if (files.length > 1) {
        showError("Drop one file at a time.");
        return;
      }
      upload(files[0]);
    });
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
