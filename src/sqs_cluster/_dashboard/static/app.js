// sqs-cluster dashboard: polls the JSON API every 2 s and updates the page in place.
// Data only ever reaches the page through textContent and attributes, never as HTML.
"use strict";
(function () {
  var PARTS = ["completed", "failed", "cancelled", "outstanding"];
  var INTERVAL = 2000;
  var body = document.body;
  var live = document.getElementById("live");
  var tokenTag = document.querySelector('meta[name="dashboard-token"]');
  var token = tokenTag ? tokenTag.getAttribute("content") : "";

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function setLive(ok) {
    if (!live) return;
    live.className = "live " + (ok ? "on" : "off");
    live.textContent = ok ? "live" : "offline";
  }

  function rate(v) { return v === null || v === undefined ? "-" : v + "/s"; }

  function age(s) {
    if (s === null || s === undefined) return "-";
    var units = [["d", 86400], ["h", 3600], ["m", 60]];
    for (var i = 0; i < units.length; i++) {
      if (s >= units[i][1]) return Math.floor(s / units[i][1]) + units[i][0];
    }
    return Math.floor(s) + "s";
  }

  function counts(row) {
    return row.completed + " done · " + row.failed + " failed · " + row.cancelled +
      " cancelled · " + row.outstanding + " left of " + row.total;
  }

  function applyShares(root) {
    var spans = (root || document).querySelectorAll(".bar span[data-share]");
    for (var i = 0; i < spans.length; i++) {
      spans[i].style.width = spans[i].getAttribute("data-share") + "%";
    }
  }

  function bar(row) {
    var node = el("div", null, "bar");
    node.setAttribute("role", "img");
    node.setAttribute("aria-label", counts(row));
    var total = Math.max(1, row.total);
    PARTS.forEach(function (name) {
      var part = el("span", null, "bar-" + name);
      part.setAttribute("data-part", name);
      part.setAttribute("data-share", (100 * row[name] / total).toFixed(2));
      node.appendChild(part);
    });
    return node;
  }

  function homeRow(row) {
    var tr = el("tr");
    tr.setAttribute("data-id", row.id);
    var id = el("td", null, "id");
    var link = el("a", row.id);
    link.href = "/clusters/" + encodeURIComponent(row.id);
    id.appendChild(link);
    var status = el("td");
    status.appendChild(el("span", row.status, "status status-" + String(row.status).replace(/ /g, "-")));
    var progress = el("td", null, "progress");
    progress.appendChild(bar(row));
    progress.appendChild(el("div", counts(row), "counts"));
    tr.appendChild(id);
    tr.appendChild(status);
    tr.appendChild(progress);
    tr.appendChild(el("td", rate(row.throughput), "num"));
    tr.appendChild(el("td", age(row.age), "num"));
    return tr;
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) {
        return r.json().then(function (data) {
          if (!r.ok) throw new Error(data.error || r.statusText);
          return data;
        });
      });
  }

  function refreshHome() {
    var before = new URLSearchParams(location.search).get("before");
    var url = "/api/clusters" + (before ? "?before=" + encodeURIComponent(before) : "");
    return getJSON(url).then(function (data) {
      var tbody = document.getElementById("clusters");
      var rows = data.clusters.map(homeRow);
      tbody.replaceChildren.apply(tbody, rows);
      applyShares(tbody);
    });
  }

  var lastFailed = null;

  function setField(name, value) {
    var node = document.querySelector('[data-field="' + name + '"]');
    if (node) node.textContent = value === null || value === undefined ? "-" : String(value);
  }

  function refreshCluster(id) {
    return getJSON("/api/clusters/" + encodeURIComponent(id)).then(function (d) {
      ["status", "total", "sent", "completed", "failed", "cancelled", "outstanding",
        "startedAt", "completedAt", "redrives", "cancelReason"].forEach(function (f) {
        setField(f, d[f]);
      });
      setField("throughput", rate(d.throughput));
      setField("age", age(d.age));
      setField("counts", counts(d));
      var results = d.results ? "s3://" + d.results.Bucket + "/" + d.results.Key : null;
      setField("results", results);
      var old = document.querySelector(".progress-wide .bar");
      if (old) { var fresh = bar(d); old.replaceWith(fresh); applyShares(fresh.parentNode); }
      updateQueues(d.queues || {});
      if (lastFailed !== null && lastFailed !== d.failed) refreshFailed(id);
      lastFailed = d.failed;
    });
  }

  function updateQueues(queues) {
    ["queue", "deadLetters"].forEach(function (name) {
      var depth = queues[name];
      var row = document.querySelector('tr[data-queue="' + name + '"]');
      if (!depth || !row) return;
      var cells = row.querySelectorAll("td[data-depth]");
      for (var i = 0; i < cells.length; i++) {
        cells[i].textContent = String(depth[cells[i].getAttribute("data-depth")]);
      }
    });
  }

  function refreshFailed(id) {
    var offset = new URLSearchParams(location.search).get("offset") || "0";
    var url = "/api/clusters/" + encodeURIComponent(id) + "/failed?offset=" + encodeURIComponent(offset);
    return getJSON(url).then(function (data) {
      var tbody = document.getElementById("failed");
      if (!tbody) return;
      tbody.replaceChildren.apply(tbody, data.tasks.map(function (task) {
        var tr = el("tr");
        tr.appendChild(el("td", task.index, "num"));
        tr.appendChild(el("td", task.receives, "num"));
        var cell = el("td");
        var list = el("ul", null, "errors");
        (task.errors.length ? task.errors : [null]).forEach(function (x) {
          var li = el("li");
          if (x === null) { li.textContent = "no error recorded"; } else {
            li.appendChild(el("b", x.type));
            li.appendChild(document.createTextNode(": " + x.message + " "));
            li.appendChild(el("small", x.at));
          }
          list.appendChild(li);
        });
        cell.appendChild(list);
        tr.appendChild(cell);
        return tr;
      }));
    });
  }

  function act(id, action) {
    var words = action === "cancel" ? "Cancel cluster " + id + "? Its unstarted tasks will not run."
      : "Redrive the failed and cancelled tasks of cluster " + id + "?";
    if (!window.confirm(words)) return;
    var reason = document.getElementById("reason");
    var result = document.getElementById("action-result");
    var payload = action === "cancel" && reason && reason.value ? { reason: reason.value } : {};
    fetch("/api/clusters/" + encodeURIComponent(id) + "/" + action, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Dashboard-Token": token },
      body: JSON.stringify(payload)
    }).then(function (r) {
      return r.json().then(function (data) {
        result.textContent = r.ok ? action + ": " + JSON.stringify(data) : "refused: " + data.error;
        result.setAttribute("data-outcome", r.ok ? "ok" : "refused");
      });
    }).catch(function (err) { result.textContent = action + " failed: " + err.message; });
  }

  function loop(refresh) {
    function tick() {
      refresh().then(function () { setLive(true); }, function () { setLive(false); })
        .then(function () { setTimeout(tick, INTERVAL); });
    }
    tick();
  }

  applyShares();
  var page = body.getAttribute("data-page");
  var id = body.getAttribute("data-cluster");
  if (page === "home") {
    loop(refreshHome);
  } else if (page === "cluster") {
    loop(function () { return refreshCluster(id); });
    var buttons = document.querySelectorAll("button[data-action]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function (event) {
        act(id, event.currentTarget.getAttribute("data-action"));
      });
    }
  }
})();
