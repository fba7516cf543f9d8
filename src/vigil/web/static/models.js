// Renders GET /models as a table.
(function () {
  "use strict";
  const text = (value) => document.createTextNode(value === null || value === undefined ? "–" : String(value));

  function cell(row, content) {
    const td = document.createElement("td");
    td.appendChild(typeof content === "object" && content !== null && content.nodeType ? content : text(content));
    row.appendChild(td);
  }

  function metricsList(metrics) {
    const list = document.createElement("ul");
    list.className = "metrics";
    for (const [name, value] of Object.entries(metrics || {})) {
      if (typeof value !== "number") continue;
      const item = document.createElement("li");
      item.textContent = name + " = " + (Number.isInteger(value) ? value : value.toFixed(4));
      list.appendChild(item);
    }
    return list;
  }

  fetch("/models").then((r) => r.json()).then((body) => {
    const tbody = document.querySelector("#models tbody");
    tbody.textContent = "";
    for (const model of body.models) {
      const row = document.createElement("tr");
      row.dataset.task = model.task;
      cell(row, model.task);
      cell(row, model.version);
      cell(row, model.created_at);
      cell(row, metricsList(model.metrics));
      cell(row, typeof model.threshold === "number" ? model.threshold.toFixed(4) : model.threshold);
      tbody.appendChild(row);
    }
    if (!body.models.length) tbody.innerHTML = "<tr><td colspan=5>No model is loaded.</td></tr>";
    const missing = document.getElementById("missing");
    for (const [task, reason] of Object.entries(body.missing || {})) {
      const item = document.createElement("li");
      item.textContent = task + ": " + reason;
      missing.appendChild(item);
    }
    if (!missing.children.length) missing.appendChild(text("none"));
  }).catch((err) => {
    document.querySelector("#models tbody").innerHTML = "";
    document.querySelector("#models tbody").appendChild(text("GET /models failed: " + err));
  });
})();
