// Sends the textarea (JSON) or a chosen file (raw body) to POST /predict/<slug>; shows status and answer.
(function () {
  "use strict";
  const form = document.getElementById("try-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("file").files[0];
    const options = file
      ? { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: file }
      : { method: "POST", headers: { "Content-Type": "application/json" }, body: document.getElementById("body").value };
    const status = document.getElementById("status");
    const output = document.getElementById("response");
    try {
      const response = await fetch(form.dataset.url, options);
      const raw = await response.text();
      let shown = raw;
      try { shown = JSON.stringify(JSON.parse(raw), null, 2); } catch (err) { /* not JSON: show as is */ }
      status.textContent = response.status + " " + response.statusText;
      status.className = "status " + (response.ok ? "ok" : "alert");
      output.textContent = shown;
    } catch (err) {
      status.textContent = "no answer";
      status.className = "status alert";
      output.textContent = String(err);
    }
  });
})();
