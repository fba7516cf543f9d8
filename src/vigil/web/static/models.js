// Models page: GET /models as a table for a person: task names, versions, dates, metrics by their names.
(function () {
  "use strict";
  const { el, api } = window.Vigil;
  const table = document.getElementById("models");
  const tasks = JSON.parse(table.dataset.tasks || "[]");
  const byName = Object.fromEntries(tasks.map((t) => [t.name, t]));

  const NAMES = {
    roc_auc: "ROC AUC", pr_auc: "PR AUC", f1: "F1", accuracy: "accuracy", precision: "precision", recall: "recall",
    cv_f1_weighted: "F1, weighted (cross-validated)", train_f1_weighted: "F1, weighted (training events)",
    noise_share: "share of training events in no cluster", clusters: "clusters found",
    tpr: "true-positive rate", fpr: "false-positive rate", tnr: "true-negative rate", fnr: "false-negative rate",
    ppv: "precision (PPV)", fit_predict_seconds: "fit + predict time (s)", test_rows: "test rows", n: "test rows",
    positives: "positives in the test rows", cv_roc_auc_mean: "ROC AUC (cross-validated mean)",
    n_train: "training rows", n_holdout: "held-out rows", holdout_positives: "positives held out",
    benign_test_fpr: "false-positive rate on held-out benign names", benign_test_names: "held-out benign names",
    training_benign_names: "benign names trained on", training_tunnel_queries: "tunnel queries trained on",
  };
  const SHARES = new Set(["tpr", "fpr", "tnr", "fnr", "ppv", "noise_share", "benign_test_fpr", "precision", "recall", "accuracy"]);

  // detection_rate_at_1pct_fpr -> "detection rate at 1% FPR"; others: words, with the usual capitals
  function humane(name) {
    if (NAMES[name]) return NAMES[name];
    const at = name.match(/^(.*)_at_([\d.]+)pct_fpr$/);
    if (at) return humane(at[1]) + " at " + at[2] + "% FPR";
    return name.split("_").map((w) => ({ auc: "AUC", roc: "ROC", pr: "PR", fpr: "FPR", tpr: "TPR", f1: "F1", cv: "cross-validated" })[w] || w).join(" ");
  }

  const base = (name) => { const at = name.match(/^(.*)_at_[\d.]+pct_fpr$/); return at ? at[1] : name; };
  // the scores a person looks for first, then the rest in the manifest's order
  const FIRST = ["roc_auc", "pr_auc", "f1", "cv_f1_weighted", "cv_roc_auc_mean", "detection_rate_at_1pct_fpr", "accuracy", "precision", "recall"];
  const rank = (name) => (FIRST.includes(name) ? FIRST.indexOf(name) : FIRST.length);

  function show(name, value) {
    if (typeof value !== "number") return String(value);
    const kind = base(name);
    if (kind.startsWith("threshold")) return value.toFixed(4);
    if (SHARES.has(kind) || /rate$/.test(kind)) return (100 * value).toFixed(2) + "%";
    if (Number.isInteger(value)) return value.toLocaleString("en");
    return value.toFixed(4);
  }

  function metricsList(metrics) {
    const list = el("ul", { className: "metrics" });
    const entries = Object.entries(metrics || {}).sort((a, b) => rank(a[0]) - rank(b[0]));
    for (const [name, value] of entries) {
      if (typeof value === "number" || typeof value === "string") {
        list.appendChild(el("li", { dataset: { metric: name }, title: name }, humane(name) + ": " + show(name, value)));
      } else if (value && typeof value === "object" && !Array.isArray(value)) {
        // one level of nesting, e.g. cross-validated AUC per candidate model
        for (const [key, inner] of Object.entries(value)) {
          if (typeof inner === "number") {
            list.appendChild(el("li", { title: name + "." + key }, humane(name) + ", " + humane(key) + ": " + show(key, inner)));
          }
        }
      }
    }
    return list;
  }

  function when(text) {
    if (!text) return "–";
    const date = new Date(text);
    if (isNaN(date)) return String(text);
    return el("time", { dateTime: text, title: text },
      date.toLocaleString("en-GB", { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC" }) + " UTC");
  }

  api("/models").then((body) => {
    const tbody = table.querySelector("tbody");
    tbody.textContent = "";
    for (const model of body.models) {
      const task = byName[model.task];
      const name = task ? el("a", { href: task.page ? "/ui/" + task.slug : "/ui/tasks/" + task.slug }, task.label) : model.task;
      tbody.appendChild(el("tr", { dataset: { task: model.task } },
        el("td", {}, name, task ? el("div", { className: "hint" }, task.title) : null),
        el("td", { className: "version" }, "version " + model.version, el("div", { className: "hint" },
          task ? "answers POST /predict/" + task.slug : "")),
        el("td", {}, when(model.created_at)),
        el("td", {}, metricsList(model.metrics)),
        el("td", {}, typeof model.threshold === "number" ? model.threshold.toFixed(4) : "–")));
    }
    if (!body.models.length) tbody.appendChild(el("tr", {}, el("td", { colSpan: 5 }, "No model is loaded.")));
    const missing = document.getElementById("missing");
    for (const [task, reason] of Object.entries(body.missing || {})) missing.appendChild(el("li", {}, task + ": " + reason));
    if (!missing.children.length) missing.appendChild(el("li", {}, "none: every task has a model"));
  }).catch((err) => {
    const tbody = table.querySelector("tbody");
    tbody.textContent = "";
    tbody.appendChild(el("tr", {}, el("td", { colSpan: 5 }, err.message)));
  });
})();
