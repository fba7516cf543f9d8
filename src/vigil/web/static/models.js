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
    const show = (value) => (typeof value === "number" && !Number.isInteger(value) ? value.toFixed(4) : String(value));
    for (const [name, value] of Object.entries(metrics || {})) {
      const entries = [];
      if (typeof value === "number" || typeof value === "string") entries.push([name, value]);
      else if (value && typeof value === "object" && !Array.isArray(value)) {
        // one level of nesting, e.g. cross-validated AUC per candidate model
        for (const [key, inner] of Object.entries(value)) {
          if (typeof inner === "number") entries.push([name + "." + key, inner]);
        }
      }
      for (const [label, shown] of entries) {
        const item = document.createElement("li");
        item.textContent = label + " = " + show(shown);
        list.appendChild(item);
      }
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
