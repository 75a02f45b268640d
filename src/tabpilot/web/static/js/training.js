// The Training page (templates/job_training.html): follows the job through the API's event
// stream (GET /api/jobs/{id}/stream, Server-Sent Events) and updates the page in place: status,
// phase, time used of the budget, trials, the estimator being tried, the best score so far (a
// step line drawn into <svg id="best-chart">) and the event log. When the job ends the page
// reloads: the server then shows the results, or the error with Retry.
// Values from the stream are set with textContent only, never as HTML.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var FINAL = { succeeded: true, failed: true, canceled: true };
  var MAX_LOG = 500;

  function byId(id) { return document.getElementById(id); }

  function setText(id, text) {
    var node = byId(id);
    if (node) node.textContent = text;
  }

  function formatNumber(value) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    if (Number.isInteger(value)) return value.toLocaleString("en");
    return Number(value.toPrecision(4)).toLocaleString("en", { maximumSignificantDigits: 4 });
  }

  function Live(root) {
    this.root = root;
    this.points = [];          // [elapsed seconds, best score]
    this.budget = 0;
    this.elapsed = 0;
    this.elapsedAt = 0;        // when this.elapsed was last set (ms)
    this.status = root.getAttribute("data-status");
    this.greater = root.getAttribute("data-greater");
    this.seen = {};
    var items = byId("event-log").querySelectorAll("li[data-seq]");
    for (var i = 0; i < items.length; i++) this.seen[items[i].getAttribute("data-seq")] = true;
  }

  Live.prototype.start = function () {
    var self = this;
    var source = new EventSource(this.root.getAttribute("data-stream-url"));
    this.source = source;
    source.addEventListener("job", function (e) { self.onJob(JSON.parse(e.data)); });
    source.addEventListener("progress", function (e) { self.onProgress(JSON.parse(e.data)); });
    source.addEventListener("log", function (e) { self.onLog(JSON.parse(e.data)); });
    source.addEventListener("status", function (e) { self.onStatus(JSON.parse(e.data)); });
    source.addEventListener("end", function () { self.finish(); });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        setText("progress-message", "Live updates stopped; reload the page to see the latest state.");
      }
    };
    this.timer = window.setInterval(function () { self.tick(); }, 1000);
  };

  Live.prototype.finish = function () {
    if (this.source) this.source.close();
    if (this.timer) window.clearInterval(this.timer);
    // The server renders the ending: the results, or the error with Retry.
    window.setTimeout(function () { window.location.reload(); }, 300);
  };

  Live.prototype.onJob = function (job) {
    this.setStatus(job.status);
    if (job.progress) this.showProgress(job.progress, false);
    if (FINAL[job.status]) this.finish();
  };

  Live.prototype.setStatus = function (status) {
    if (!status) return;
    this.status = status;
    this.root.setAttribute("data-status", status);
    var badge = byId("job-status");
    if (badge) {
      badge.textContent = status;
      badge.className = "status status-" + status;
    }
    var cancel = byId("cancel-button");
    if (cancel && FINAL[status]) cancel.disabled = true;
  };

  Live.prototype.onStatus = function (event) {
    this.addLog(event, event.data.status, event.data.message || "");
    this.setStatus(event.data.status);
    if (FINAL[event.data.status]) this.finish();
  };

  Live.prototype.onLog = function (event) {
    this.addLog(event, event.data.phase || "log", event.data.message || "");
    if (event.data.phase) setText("progress-phase", event.data.phase);
    if (event.data.message) setText("progress-message", event.data.message);
  };

  Live.prototype.onProgress = function (event) {
    this.showProgress(event.data, true);
    var count = Number(this.root.getAttribute("data-updates") || "0") + 1;
    this.root.setAttribute("data-updates", String(count));
    document.dispatchEvent(new CustomEvent("tabpilot:progress", { detail: event.data }));
  };

  Live.prototype.showProgress = function (p, chart) {
    if (p.phase) setText("progress-phase", p.phase);
    if (p.message) setText("progress-message", p.message);
    if (p.trials !== null && p.trials !== undefined) setText("progress-trials", formatNumber(p.trials));
    setText("progress-estimator", p.estimator || "–");
    if (p.budget) this.budget = Number(p.budget);
    if (p.best_score !== null && p.best_score !== undefined) {
      setText("progress-best", formatNumber(p.best_score) + (p.best_estimator ? " (" + p.best_estimator + ")" : ""));
      if (chart && p.elapsed !== null && p.elapsed !== undefined) {
        this.points.push([Number(p.elapsed), Number(p.best_score)]);
        this.draw();
      }
    }
    if (p.elapsed !== null && p.elapsed !== undefined && Number(p.elapsed) >= this.currentElapsed()) {
      this.elapsed = Number(p.elapsed);
      this.elapsedAt = Date.now();
    }
    this.showElapsed();
  };

  Live.prototype.currentElapsed = function () {
    if (this.status !== "running" || !this.elapsedAt) return this.elapsed;
    return this.elapsed + (Date.now() - this.elapsedAt) / 1000;
  };

  Live.prototype.tick = function () { if (this.status === "running") this.showElapsed(); };

  Live.prototype.showElapsed = function () {
    var bar = byId("budget-bar");
    var elapsed = this.currentElapsed();
    var budget = this.budget || Number(bar ? bar.getAttribute("max") : 0) || 0;
    if (bar && budget) {
      bar.setAttribute("max", String(budget));
      bar.value = Math.min(elapsed, budget);
    }
    setText("budget-text", elapsed.toFixed(1) + " s of " + formatNumber(budget) + " s");
  };

  Live.prototype.addLog = function (event, kind, message) {
    var key = String(event.seq);
    if (this.seen[key]) return;
    this.seen[key] = true;
    var list = byId("event-log");
    var item = document.createElement("li");
    item.setAttribute("data-seq", key);
    var when = document.createElement("time");
    var at = new Date(event.at);
    when.setAttribute("datetime", event.at);
    when.textContent = isNaN(at) ? "" : at.toISOString().slice(11, 19);
    var what = document.createElement("span");
    what.className = "event-kind";
    what.textContent = kind;
    var text = document.createElement("span");
    text.className = "event-message";
    text.textContent = message;
    item.appendChild(when);
    item.appendChild(what);
    item.appendChild(text);
    list.appendChild(item);
    while (list.children.length > MAX_LOG) list.removeChild(list.firstElementChild);
    list.scrollTop = list.scrollHeight;
  };

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    for (var key in attrs) node.setAttribute(key, String(attrs[key]));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The best score so far as a step line over seconds since the start, with its extremes
  // marked on the y axis and 0 and the last time (or the budget) on the x axis.
  Live.prototype.draw = function () {
    var svg = byId("best-chart");
    if (!svg || !this.points.length) return;
    var empty = byId("best-chart-empty");
    if (empty) empty.hidden = true;
    svg.removeAttribute("hidden");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var W = 640, H = 220, left = 64, right = W - 16, top = 12, bottom = H - 34;
    var xs = this.points.map(function (p) { return p[0]; });
    var ys = this.points.map(function (p) { return p[1]; });
    var xMax = Math.max(this.budget || 0, Math.max.apply(null, xs), 1);
    var yLo = Math.min.apply(null, ys), yHi = Math.max.apply(null, ys);
    if (yHi === yLo) { var pad = Math.abs(yLo) * 0.01 || 0.01; yLo -= pad; yHi += pad; }
    function X(v) { return left + (v / xMax) * (right - left); }
    function Y(v) { return bottom - ((v - yLo) / (yHi - yLo)) * (bottom - top); }
    svg.appendChild(el("line", { "class": "axis", x1: left, x2: right, y1: bottom, y2: bottom }));
    svg.appendChild(el("line", { "class": "axis", x1: left, x2: left, y1: top, y2: bottom }));
    [yLo, yHi].forEach(function (v) {
      svg.appendChild(el("line", { "class": "grid", x1: left, x2: right, y1: Y(v), y2: Y(v) }));
      svg.appendChild(el("text", { "class": "tick", x: left - 6, y: Y(v) + 4, "text-anchor": "end" }, formatNumber(v)));
    });
    [0, xMax].forEach(function (v) {
      svg.appendChild(el("text", { "class": "tick", x: X(v), y: bottom + 14, "text-anchor": "middle" }, formatNumber(v) + " s"));
    });
    svg.appendChild(el("text", { "class": "label", x: (left + right) / 2, y: H - 4, "text-anchor": "middle" }, "seconds since the start"));
    var pts = [];
    for (var i = 0; i < this.points.length; i++) {
      if (i) pts.push(X(xs[i]).toFixed(1) + "," + Y(ys[i - 1]).toFixed(1));
      pts.push(X(xs[i]).toFixed(1) + "," + Y(ys[i]).toFixed(1));
    }
    svg.appendChild(el("polyline", { "class": "line s0", points: pts.join(" ") }));
    for (var j = 0; j < this.points.length; j++) {
      var dot = el("circle", { "class": "live-point", cx: X(xs[j]).toFixed(1), cy: Y(ys[j]).toFixed(1), r: 3.5 });
      dot.appendChild(el("title", {}, formatNumber(ys[j]) + " at " + xs[j].toFixed(1) + " s"));
      svg.appendChild(dot);
    }
  };

  document.addEventListener("DOMContentLoaded", function () {
    var root = byId("training");
    if (!root || root.getAttribute("data-live") !== "true" || !window.EventSource) return;
    new Live(root).start();
  });
})();
