// Web-events page: CSV or ML-PT JSON -> POST /predict/web-events?partial=1&explain=3; the cluster of
// each event, whether the model's manifest counts that cluster as an attack cluster, and why.
(function () {
  "use strict";
  const { el, api, postJSON, reasonsList, showError, parseCSV } = window.Vigil;
  const COLUMNS = ["CLIENT_IP", "CLIENT_USERAGENT", "REQUEST_SIZE", "RESPONSE_CODE", "MATCHED_VARIABLE_SRC",
    "MATCHED_VARIABLE_NAME", "MATCHED_VARIABLE_VALUE", "EVENT_ID"];
  const NUMERIC = new Set(["REQUEST_SIZE", "RESPONSE_CODE"]);
  const errorBox = document.getElementById("error");
  let facts = null;

  // One event as ML-PT's client sends it: {"data": "<JSON object>"}, a missing value written NaN.
  function record(event) {
    const parts = COLUMNS.map((column) => {
      let value = event[column];
      if (value === undefined || value === null || value === "") return JSON.stringify(column) + ": NaN";
      if (NUMERIC.has(column) && /^-?\d+$/.test(String(value).trim())) value = Number(value);
      return JSON.stringify(column) + ": " + JSON.stringify(value);
    });
    return { data: "{" + parts.join(", ") + "}" };
  }

  // -> {records: [{data}], events: [{...}] (for display)}; throws an Error naming what is wrong.
  function parseInput(text) {
    const trimmed = text.trim();
    if (!trimmed) throw new Error("Paste some events first (CSV with a header line, or ML-PT's JSON).");
    if (trimmed.startsWith("[") || trimmed.startsWith("{")) {
      let value;
      try { value = JSON.parse(trimmed); } catch (err) {
        // a bare NaN (as Python writes a missing value) outside a string: read it as null
        try { value = JSON.parse(trimmed.replace(/\bNaN\b/g, "null")); } catch (again) { throw new Error("Not valid JSON: " + err.message); }
      }
      if (!Array.isArray(value)) value = [value];
      const events = value.map((item) => {
        if (item && typeof item.data === "string") {
          try { return JSON.parse(item.data.replace(/\bNaN\b/g, "null")); } catch (err) { return {}; }
        }
        return item && typeof item.data === "object" ? item.data : item;
      });
      // ML-PT's own records go as they are; bare event objects are wrapped as ML-PT's client does
      const records = value.map((item, i) => (item && item.data !== undefined ? item : record(events[i] || {})));
      return { records: records, events: events };
    }
    const rows = parseCSV(trimmed);
    const header = rows[0].map((name) => name.trim().toUpperCase());
    const missing = COLUMNS.filter((column) => !header.includes(column));
    if (missing.length) throw new Error("The CSV's header line lacks " + missing.join(", ") + ".");
    const events = rows.slice(1).map((row) => Object.fromEntries(header.map((name, i) => [name, row[i]])));
    return { records: events.map(record), events: events };
  }

  async function loadFacts() {
    if (facts) return facts;
    const model = await api("/models/web_events");
    facts = { version: model.version, ...(model.facts || {}) };
    facts.attack = new Set(facts.attack_clusters || []);
    facts.good = new Set(facts.good_clusters || []);
    return facts;
  }

  function kindOf(cluster) {
    if (facts.attack.has(cluster)) return "attack";
    if (facts.good.has(cluster)) return "good";
    return cluster === -1 ? "noise" : "unknown";
  }

  function why(cluster, kind) {
    const summary = facts.clustering || {};
    const total = summary.clusters ? " of " + summary.clusters : "";
    if (kind === "attack") {
      return "Cluster " + cluster + " is one of the " + facts.attack.size + " smallest clusters" + total +
        " in the training events: rare, unlike ordinary traffic, so an attack cluster.";
    }
    if (kind === "good") {
      return "Cluster " + cluster + " is one of the " + facts.good.size + " largest clusters" + total +
        " in the training events: ordinary traffic.";
    }
    if (kind === "noise") return "DBSCAN placed events like this one in no cluster (noise): neither attack nor ordinary.";
    return "The model's manifest does not say what cluster " + cluster + " is.";
  }

  const KIND = { attack: ["attack", "alert"], good: ["ordinary", "ok"], noise: ["noise", "neutral"], unknown: ["unknown", "neutral"] };
  const kindBadge = (kind) => el("span", { className: "verdict " + KIND[kind][1] }, KIND[kind][0]);

  const shorten = (value, n) => {
    const text = value === undefined || value === null ? "" : String(value);
    return text.length > n ? text.slice(0, n) + "…" : text;
  };

  async function label(event) {
    event.preventDefault();
    showError(errorBox, "");
    let parsed, body;
    try {
      parsed = parseInput(document.getElementById("events").value);
      if (!parsed.records.length) throw new Error("No events found under the header line.");
      await loadFacts();
      body = await postJSON("/predict/web-events?partial=1&explain=3", parsed.records);
    } catch (err) {
      showError(errorBox, err.message);
      document.getElementById("result").hidden = true;
      return;
    }
    const predictions = Array.isArray(body) ? body.map((p, i) => ({ index: i, ...p })) : body.predictions;
    const tbody = document.querySelector("#events-table tbody");
    tbody.textContent = "";
    const byCluster = new Map();
    let attacks = 0;
    for (const prediction of predictions) {
      const source = parsed.events[prediction.index] || {};
      const cluster = prediction.LABEL_PRED;
      const kind = kindOf(cluster);
      if (kind === "attack") attacks++;
      byCluster.set(cluster, (byCluster.get(cluster) || 0) + 1);
      tbody.appendChild(
        el("tr", { dataset: { event: prediction.EVENT_ID, kind: kind } },
          el("td", {}, prediction.index + 1),
          el("td", { className: "mono" }, prediction.EVENT_ID),
          el("td", { title: source.CLIENT_USERAGENT || "" }, source.CLIENT_IP || "–"),
          el("td", { className: "mono", title: String(source.MATCHED_VARIABLE_VALUE || "") },
            shorten(source.MATCHED_VARIABLE_NAME, 40), el("br"), shorten(source.MATCHED_VARIABLE_VALUE, 60)),
          el("td", { className: "cluster" }, cluster === -1 ? "noise (-1)" : cluster),
          el("td", {}, kindBadge(kind)),
          el("td", { className: "why" }, el("p", {}, why(cluster, kind)), reasonsList(prediction.reasons)),
        ),
      );
    }
    const clusters = document.querySelector("#clusters-table tbody");
    clusters.textContent = "";
    for (const [cluster, count] of [...byCluster.entries()].sort((a, b) =>
      (kindOf(b[0]) === "attack") - (kindOf(a[0]) === "attack") || b[1] - a[1])) {
      const kind = kindOf(cluster);
      clusters.appendChild(el("tr", { dataset: { cluster: cluster, kind: kind } },
        el("td", {}, cluster === -1 ? "noise (-1)" : cluster),
        el("td", {}, kindBadge(kind)),
        el("td", {}, count)));
    }
    const bad = document.getElementById("bad-events");
    bad.textContent = "";
    for (const error of body.errors || []) {
      bad.appendChild(el("li", {}, "Event " + (error.index + 1) + ": " + (error.error || error.message || JSON.stringify(error))));
    }
    document.getElementById("summary").textContent = attacks + " of " + predictions.length +
      " event(s) fall in an attack cluster" + ((body.errors || []).length ? "; " + body.errors.length + " could not be read" : "") + ".";
    document.getElementById("result-detail").textContent = "Model version " + facts.version + "; attack clusters " +
      [...facts.attack].join(", ") + "; ordinary clusters " + [...facts.good].join(", ") + ".";
    document.getElementById("result").hidden = false;
  }

  document.getElementById("events-form").addEventListener("submit", label);
  document.getElementById("events-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) document.getElementById("events").value = await file.text();
  });
  document.getElementById("example-events").addEventListener("click", (event) => {
    document.getElementById("events").value = JSON.stringify(JSON.parse(event.target.dataset.example), null, 1);
  });
  document.getElementById("clear-events").addEventListener("click", () => {
    document.getElementById("events").value = "";
    document.getElementById("events-file").value = "";
    document.getElementById("result").hidden = true;
    showError(errorBox, "");
  });
})();
