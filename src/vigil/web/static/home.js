// Home page: says beside each task whether a model answers it now (GET /models).
(function () {
  "use strict";
  window.Vigil.api("/models").then((body) => {
    const loaded = Object.fromEntries(body.models.map((m) => [m.task, m]));
    for (const item of document.querySelectorAll("#home-tasks li[data-name]")) {
      const model = loaded[item.dataset.name];
      const reason = (body.missing || {})[item.dataset.name];
      item.querySelector(".model-state").textContent = model
        ? "model version " + model.version + " answers"
        : "no model loaded" + (reason ? ": " + reason : "");
    }
  }).catch(() => { /* the list of tasks stands without the model states */ });
})();
