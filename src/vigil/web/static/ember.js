// Malware page: PE files (chosen or dropped) -> multipart POST /predict/ember?explain=3 -> a table.
(function () {
  "use strict";
  const { el, pct, api, reasonsList, showError, verdict, dropZone } = window.Vigil;
  const input = document.getElementById("files");
  const button = document.getElementById("check-files");
  const errorBox = document.getElementById("error");
  let files = [];

  function choose(chosen) {
    files = chosen;
    document.getElementById("chosen").textContent = files.length
      ? files.length + " file(s): " + files.map((f) => f.name + " (" + f.size.toLocaleString("en") + " bytes)").join(", ")
      : "";
    button.disabled = !files.length;
  }

  async function check(event) {
    event.preventDefault();
    showError(errorBox, "");
    const form = new FormData();
    const seen = {};
    for (const file of files) {
      // one form field per file, named after it (two files of one name get "name (2)")
      seen[file.name] = (seen[file.name] || 0) + 1;
      const name = seen[file.name] > 1 ? file.name + " (" + seen[file.name] + ")" : file.name;
      form.append(name, file, file.name);
    }
    button.disabled = true;
    button.textContent = "Checking…";
    let body;
    try {
      body = await api("/predict/ember?explain=3", { method: "POST", body: form });
    } catch (err) {
      showError(errorBox, err.message);
      document.getElementById("result").hidden = true;
      return;
    } finally {
      button.disabled = !files.length;
      button.textContent = "Check files";
    }
    const tbody = document.querySelector("#files-table tbody");
    tbody.textContent = "";
    let flagged = 0;
    body.results.forEach((result, i) => {
      const name = result.name || (files[i] && files[i].name) || "file " + (i + 1);
      if (result.malicious) flagged++;
      const notes = [];
      if (result.pe === false) notes.push("not a parsable PE file: only its bytes were scored");
      if (result.note) notes.push(result.note);
      tbody.appendChild(
        el("tr", { dataset: { file: name } },
          el("td", { className: "name" }, name),
          el("td", { className: "sha", title: result.sha256 || "" }, el("code", {}, (result.sha256 || "").slice(0, 16) + "…")),
          el("td", { className: "verdict-cell" }, verdict(result.malicious, "malicious", "benign")),
          el("td", { className: "probability" }, pct(result.probability)),
          el("td", { className: "why" }, reasonsList(result.reasons), notes.map((n) => el("p", { className: "hint" }, n))),
        ),
      );
    });
    document.getElementById("summary").textContent =
      flagged + " of " + body.results.length + " file(s) flagged as malicious.";
    document.getElementById("result-detail").textContent =
      "Model version " + body.model_version + " (EMBER feature version " + body.feature_version +
      "); a file is flagged at probability ≥ " + pct(body.threshold) +
      " (the threshold for a " + pct(body.threshold_fpr) + " false-positive rate).";
    document.getElementById("result").hidden = false;
  }

  // the model's manifest says whether it is the demo model (trained on a synthetic set)
  api("/models/ember").then((model) => {
    const facts = model.facts || {};
    if (facts.demo) {
      const warning = document.getElementById("demo-warning");
      warning.textContent = "The model serving now (version " + model.version + ") is the demo model, trained on " +
        (facts.data || "a synthetic set") + ": it shows the pipeline working and is not a malware detector. " +
        "Train one on EMBER's data (vigil ember train) for real verdicts.";
      warning.hidden = false;
    }
  }).catch((err) => showError(errorBox, err.message));

  dropZone(document.getElementById("drop"), input, choose);
  document.getElementById("ember-form").addEventListener("submit", check);
  document.getElementById("clear-files").addEventListener("click", () => {
    input.value = "";
    choose([]);
    document.getElementById("result").hidden = true;
    showError(errorBox, "");
  });
})();
