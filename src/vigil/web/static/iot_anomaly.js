// IoT page: a reading -> POST /predict/iot-anomaly?explain=3; the verdict, and the decision boundary
// of the current model for its class with the reading marked (GET /ui/iot-anomaly/picture.png).
(function () {
  "use strict";
  const { el, pct, api, postJSON, reasonsList, showError } = window.Vigil;
  const errorBox = document.getElementById("error");
  const select = document.getElementById("klass");
  const image = document.getElementById("boundary");
  let version = "";

  function picture(reading) {
    const query = new URLSearchParams({ class: select.value, v: version });
    if (reading) { query.set("length", reading.length); query.set("width", reading.width); }
    image.dataset.loaded = "";
    image.src = "/ui/iot-anomaly/picture.png?" + query.toString();
    document.getElementById("boundary-caption").textContent = "Decision boundary of model version " + version +
      " for class " + select.value + (reading ? ", reading " + reading.length + " × " + reading.width + " mm marked ★" : "") + ".";
  }
  image.addEventListener("load", () => { image.dataset.loaded = image.src; });

  async function start() {
    try {
      const model = await api("/models/iot_anomaly");
      version = model.version;
      for (const name of (model.facts && model.facts.classes) || ["human", "moto", "car"]) {
        select.appendChild(el("option", { value: name }, name));
      }
      picture(null);
    } catch (err) {
      showError(errorBox, err.message);
    }
  }

  async function check(event) {
    event.preventDefault();
    showError(errorBox, "");
    const reading = { class: select.value, length: Number(document.getElementById("length").value),
      width: Number(document.getElementById("width").value) };
    const raw = [document.getElementById("length").value.trim(), document.getElementById("width").value.trim()];
    let answer;
    try {
      if (raw.some((v) => v === "" || !isFinite(Number(v)))) throw new Error("Give the length and the width in millimetres (numbers).");
      const body = await postJSON("/predict/iot-anomaly?explain=3", [reading]);
      answer = Array.isArray(body) ? body[0] : (body.results || body.items || [])[0];
    } catch (err) {
      showError(errorBox, err.message);
      document.getElementById("result").hidden = true;
      return;
    }
    document.getElementById("probability").textContent = pct(answer.probability);
    const decision = document.getElementById("decision");
    decision.textContent = answer.malicious ? "Odd: check this object" : "Fits its class";
    decision.className = "decision " + (answer.malicious ? "alert" : "ok");
    const reasons = document.getElementById("reasons");
    reasons.textContent = "";
    const list = reasonsList(answer.reasons);
    if (list) reasons.appendChild(list);
    document.getElementById("result-detail").textContent = "Model label: " + answer.label + "; model version " + version + ".";
    document.getElementById("result").hidden = false;
    picture(reading);
  }

  select.addEventListener("change", () => picture(null));
  document.getElementById("iot-form").addEventListener("submit", check);
  start();
})();
