// The session form: collects the visits, calls POST /predict/web-sessions, shows probability and decision.
(function () {
  "use strict";
  const N = 10;
  const form = document.getElementById("session-form");
  const field = (kind, i) => document.getElementById(kind + i);

  function fill(sites, times) {
    for (let i = 1; i <= N; i++) {
      field("site", i).value = i <= sites.length ? String(sites[i - 1]) : "";
      field("time", i).value = i <= times.length ? String(times[i - 1]) : "";
    }
  }

  function collect() {
    const sites = [], times = [];
    for (let i = 1; i <= N; i++) {
      const site = field("site", i).value.trim(), time = field("time", i).value.trim();
      if (!site && !time) continue;
      sites.push(/^\d+$/.test(site) ? Number(site) : site);
      times.push(time);
    }
    return { sites: sites, times: times };
  }

  function show(id, visible) { document.getElementById(id).hidden = !visible; }

  function showError(message) {
    const box = document.getElementById("error");
    box.textContent = message;
    show("error", true);
    show("result", false);
  }

  async function check(event) {
    event.preventDefault();
    show("error", false);
    let response, body;
    try {
      response = await fetch("/predict/web-sessions?explain=3", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(collect()),
      });
      body = await response.json();
    } catch (err) {
      showError("The service did not answer: " + err);
      return;
    }
    if (!response.ok || !body.success) {
      const detail = body.detail ? " (" + JSON.stringify(body.detail) + ")" : "";
      showError("Error " + response.status + ": " + (body.error || "unknown error") + detail);
      return;
    }
    const p = body.predictions[0], alice = body.is_alice[0];
    document.getElementById("probability").textContent = (100 * p).toFixed(1) + "%";
    const decision = document.getElementById("decision");
    decision.textContent = alice ? "Alice: flag this session" : "Not Alice";
    decision.className = "decision " + (alice ? "alert" : "ok");
    const reasons = document.getElementById("reasons");
    reasons.textContent = "";
    const list = window.Vigil.reasonsList(body.reasons ? body.reasons[0] : p && p.reasons);
    if (list) reasons.appendChild(list);
    document.getElementById("result-detail").textContent =
      "Decision threshold " + (100 * body.threshold).toFixed(1) + "%, model version " + body.model_version + ".";
    show("result", true);
  }

  async function randomSession() {
    const response = await fetch("/ui/web-sessions/random");
    const session = await response.json();
    fill(session.sites, session.times);
    document.getElementById("random-origin").textContent = "Filled a real session; it came from " + session.label + ".";
  }

  function pasteFill() {
    const sites = [], times = [];
    const timePattern = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?/;
    for (const line of document.getElementById("paste").value.split(/\r?\n/)) {
      const parts = line.split(/[,;\t]/).map((part) => part.trim()).filter(Boolean);
      if (parts.length < 2 || parts[0] === "timestamp") continue;
      const [first, second] = parts;
      if (timePattern.test(first)) { times.push(first); sites.push(second); } else { sites.push(first); times.push(second); }
      if (sites.length === N) break;
    }
    fill(sites, times);
  }

  form.addEventListener("submit", check);
  document.getElementById("random-session").addEventListener("click", randomSession);
  document.getElementById("clear-session").addEventListener("click", () => {
    fill([], []);
    document.getElementById("random-origin").textContent = "";
  });
  document.getElementById("paste-fill").addEventListener("click", pasteFill);
})();
