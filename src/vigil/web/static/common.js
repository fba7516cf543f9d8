// Helpers shared by every page: building elements, calling the API, showing errors and reasons.
(function () {
  "use strict";

  // el("td", {className: "x", title: "y"}, "text", childNode, ...)
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (value !== undefined && value !== null) node[key] = value;
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "object" && child.nodeType ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const pct = (p) => (typeof p === "number" && isFinite(p) ? (100 * p).toFixed(1) + "%" : "–");

  // The API's error body ({"error": ..., "detail": ...} or the course shape) as one readable line.
  function errorText(status, body) {
    if (!body || typeof body !== "object") return "Error " + status + ": " + String(body || "no answer");
    let detail = "";
    if (body.detail !== undefined && body.detail !== null) {
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      if (detail.length > 400) detail = detail.slice(0, 400) + "…";
      detail = " (" + detail + ")";
    }
    return "Error " + status + ": " + (body.error || body.message || "unknown error") + detail;
  }

  // POST or GET; resolves to the parsed JSON answer, or throws an Error whose message is readable.
  async function api(url, options) {
    let response;
    try {
      response = await fetch(url, options || {});
    } catch (err) {
      throw new Error("The service did not answer: " + err);
    }
    const raw = await response.text();
    let body = raw;
    try { body = JSON.parse(raw); } catch (err) { /* not JSON: keep the text */ }
    if (!response.ok || (body && body.success === false)) throw new Error(errorText(response.status, body));
    return body;
  }

  const postJSON = (url, value) =>
    api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(value) });

  // reasons: [{text, feature, value, contribution}] (see ?explain=N); a list of their texts, or nothing.
  function reasonsList(reasons) {
    if (!Array.isArray(reasons) || !reasons.length) return null;
    const list = el("ul", { className: "reasons" });
    for (const reason of reasons) {
      let text = reason && typeof reason === "object" ? reason.text : reason;
      if (!text && reason && reason.feature) text = reason.feature + " = " + reason.value;
      if (!text) continue;
      const item = el("li", {}, String(text));
      if (typeof reason.contribution === "number") {
        item.className = reason.contribution >= 0 ? "up" : "down";
        item.title = "contribution " + reason.contribution.toFixed(3);
      }
      list.appendChild(item);
    }
    return list.children.length ? list : null;
  }

  function showError(box, message) {
    box.textContent = message;
    box.hidden = !message;
  }

  function verdict(flagged, yes, no) {
    return el("span", { className: "verdict " + (flagged ? "alert" : "ok") }, flagged ? yes : no);
  }

  // Reads a chosen or dropped file as text.
  const readText = (file) => file.text();

  // A CSV parser for the quoted fields real logs have (RFC 4180: "" inside quotes, newlines in quotes).
  function parseCSV(text) {
    const rows = [];
    let row = [], field = "", quoted = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
        else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"' && field === "") quoted = true;
      else if (c === ",") { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field); field = "";
        if (row.length > 1 || row[0] !== "") rows.push(row);
        row = [];
      } else field += c;
    }
    row.push(field);
    if (row.length > 1 || row[0] !== "") rows.push(row);
    return rows;
  }

  // A drop zone on `zone` that hands the dropped files to `onFiles`; a click opens `input`.
  function dropZone(zone, input, onFiles) {
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer && event.dataTransfer.files.length) onFiles(Array.from(event.dataTransfer.files));
    });
    zone.addEventListener("click", (event) => { if (event.target === zone) input.click(); });
    zone.addEventListener("keydown", (event) => {
      if (event.target === zone && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); input.click(); }
    });
    input.addEventListener("change", () => onFiles(Array.from(input.files)));
  }

  window.Vigil = { el, pct, api, postJSON, reasonsList, showError, verdict, readText, parseCSV, dropZone, errorText };
})();
