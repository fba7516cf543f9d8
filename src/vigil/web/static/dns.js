// DNS page: names (pasted or from a log) -> POST /predict/dns?explain=3; verdicts per name and per
// domain; and a live chart of the running streams' windows (GET /dns/streams/windows, polled).
(function () {
  "use strict";
  const { el, pct, api, postJSON, reasonsList, showError, verdict, parseCSV } = window.Vigil;
  const errorBox = document.getElementById("error");
  const fmt = (v) => (typeof v === "number" ? v.toFixed(3) : "–");

  // Query names out of a log: a CSV with a name column, BIND or dnsmasq query lines, or plain names.
  function namesFrom(text) {
    const lines = text.split(/\r?\n/).filter((line) => line.trim());
    if (!lines.length) return [];
    const header = lines[0].split(",").map((h) => h.trim().toLowerCase());
    const column = ["qname", "query", "query_name", "name", "domain"].find((c) => header.includes(c));
    if (column && header.length > 1) {
      const at = header.indexOf(column);
      return parseCSV(lines.join("\n")).slice(1).map((row) => (row[at] || "").trim()).filter(Boolean);
    }
    const names = [];
    for (const line of lines) {
      const bind = line.match(/query: (\S+) IN /);
      const dnsmasq = line.match(/query\[[A-Z0-9]+\] (\S+) from /);
      if (bind || dnsmasq) { names.push((bind || dnsmasq)[1]); continue; }
      const first = line.trim().split(/[\s,;]+/)[0];
      if (first && first !== "name" && first !== "qname") names.push(first);
    }
    return names;
  }

  async function check(event) {
    event.preventDefault();
    showError(errorBox, "");
    const names = namesFrom(document.getElementById("names").value);
    let body;
    try {
      if (!names.length) throw new Error("Paste some query names first (or upload a log).");
      body = await postJSON("/predict/dns?explain=3&domains=1", { queries: names });
    } catch (err) {
      showError(errorBox, err.message);
      document.getElementById("result").hidden = true;
      return;
    }
    const tbody = document.querySelector("#names-table tbody");
    tbody.textContent = "";
    let flagged = 0;
    for (const result of body.results) {
      const name = result.query !== undefined ? result.query : names[result.index];
      if (result.is_exfiltration) flagged++;
      tbody.appendChild(el("tr", { dataset: { name: name } },
        el("td", {}, result.index + 1),
        el("td", { className: "mono name" }, name),
        el("td", {}, verdict(result.is_exfiltration, "exfiltration", "benign")),
        el("td", { className: "probability" }, pct(result.probability)),
        el("td", { className: "why" }, reasonsList(result.reasons))));
    }
    const domains = Array.isArray(body.domains) ? body.domains : [];
    const dbody = document.querySelector("#domains-table tbody");
    dbody.textContent = "";
    for (const domain of domains) {
      const flaggedDomain = domain.flagged !== undefined ? domain.flagged : domain.is_exfiltration === true;
      const count = domain.queries !== undefined ? domain.queries : domain.names;
      const why = reasonsList(domain.reasons);
      dbody.appendChild(el("tr", { dataset: { domain: domain.domain, flagged: String(flaggedDomain) } },
        el("td", { className: "mono" }, domain.domain),
        el("td", {}, verdict(flaggedDomain, "exfiltration", "benign")),
        el("td", {}, Array.isArray(count) ? count.length : count === undefined ? "–" : count),
        el("td", { className: "why" }, why || el("p", { className: "hint" }, flaggedDomain ? "" : "nothing unusual for its names"))));
    }
    document.getElementById("domains-section").hidden = !domains.length;
    const bad = document.getElementById("bad-names");
    bad.textContent = "";
    for (const error of body.errors || []) {
      bad.appendChild(el("li", {}, "Name " + (error.index + 1) + ": " + (error.error || error.message || JSON.stringify(error))));
    }
    document.getElementById("summary").textContent = flagged + " of " + body.results.length +
      " name(s) look like exfiltration" + (domains.length ? ", in " + domains.filter((d) => d.flagged || d.is_exfiltration === true).length +
      " of " + domains.length + " domain(s)" : "") + ".";
    const model = body.model || {};
    document.getElementById("result-detail").textContent = "Answered by " + (model.task || "the DNS model") +
      (model.version ? " version " + model.version : "") + "; a name is flagged at probability ≥ " + pct(body.threshold) + ".";
    document.getElementById("result").hidden = false;
  }

  // -- the live view: one SVG chart per running stream ------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function chart(windows) {
    const W = 860, H = 280, left = 44, right = 14, top = 34, bottom = 40;
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img" });
    const n = Math.max(windows.length, 2);
    const first = windows.length ? windows[0].window_index : 0;
    const x = (i) => left + ((i - first) / Math.max(n - 1, 1)) * (W - left - right);
    const y = (f1) => top + (1 - f1) * (H - top - bottom);
    for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
      root.appendChild(svg("line", { x1: left, x2: W - right, y1: y(tick), y2: y(tick), class: "grid-line" }));
      root.appendChild(svg("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, tick.toFixed(2)));
    }
    root.appendChild(svg("text", { x: (W + left) / 2, y: H - 4, "text-anchor": "middle", class: "tick" }, "window"));
    const every = Math.max(1, Math.ceil(windows.length / 20));
    windows.forEach((w, i) => {
      if (i % every === 0 || i === windows.length - 1) {
        root.appendChild(svg("text", { x: x(w.window_index), y: H - bottom + 14, "text-anchor": "middle", class: "tick" }, w.window_index));
      }
    });
    for (const w of windows) {
      if (w.retrained) {
        root.appendChild(svg("line", { x1: x(w.window_index), x2: x(w.window_index), y1: top, y2: H - bottom, class: "retrain" }));
      }
    }
    for (const [key, cls] of [["static_f1", "static"], ["dynamic_f1", "dynamic"]]) {
      const points = windows.filter((w) => typeof w[key] === "number").map((w) => x(w.window_index).toFixed(1) + "," + y(w[key]).toFixed(1));
      if (points.length) root.appendChild(svg("polyline", { points: points.join(" "), class: "series " + cls }));
    }
    const legend = [["static", "static model F1"], ["dynamic", "dynamic model F1"], ["retrain", "retrain"]];
    legend.forEach(([cls, label], i) => {
      const lx = left + 10 + i * 170;
      root.appendChild(svg("line", { x1: lx, x2: lx + 22, y1: 12, y2: 12, class: (cls === "retrain" ? "retrain" : "series " + cls) }));
      root.appendChild(svg("text", { x: lx + 28, y: 16, class: "tick" }, label));
    });
    return root;
  }

  function streamBlock(stream) {
    const windows = stream.windows || [];
    const last = windows[windows.length - 1];
    const retrains = windows.filter((w) => w.retrained).length;
    const line = windows.length
      ? windows.length + " window(s); latest #" + last.window_index + ": static F1 " + fmt(last.static_f1) +
        ", dynamic F1 " + fmt(last.dynamic_f1) + "; " + retrains + " retrain(s); dynamic model v" + (stream.dynamic_version || "?")
      : "no window recorded yet";
    return el("div", { className: "stream", dataset: { consumer: stream.consumer_id || "" } },
      el("h3", {}, "Topic " + stream.topic + ", group " + stream.group),
      el("p", { className: "stream-line" }, line),
      chart(windows),
      last && last.reason ? el("p", { className: "hint" }, "Latest window: " + last.reason) : null,
      flaggedList(stream.flagged_domains));
  }
  // the domains the stream has flagged (its heartbeat's newest ones), with their reasons
  function flaggedList(flagged) {
    if (!Array.isArray(flagged) || !flagged.length) return null;
    return el("div", { className: "flagged" }, el("h4", {}, "Domains this stream flagged"),
      el("ul", { className: "flagged-domains" }, flagged.map((alert) => {
        const name = alert.domain || alert.key || "?";
        const reasons = alert.reasons || (alert.detail && alert.detail.reasons);
        return el("li", { dataset: { domain: name } }, el("span", { className: "mono" }, name), reasonsList(reasons));
      })));
  }

  async function poll() {
    const box = document.getElementById("streams");
    try {
      const body = await api("/dns/streams/windows?limit=200");
      box.textContent = "";
      if (!body.streams.length) box.appendChild(el("p", { id: "streams-none", className: "hint" }, "No stream is running."));
      for (const stream of body.streams) box.appendChild(streamBlock(stream));
    } catch (err) {
      box.textContent = "";
      box.appendChild(el("p", { className: "hint" }, "Cannot read the streams: " + err.message));
    }
    setTimeout(poll, 2000);
  }

  document.getElementById("dns-form").addEventListener("submit", check);
  document.getElementById("log-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) document.getElementById("names").value = namesFrom(await file.text()).join("\n");
  });
  document.getElementById("example-names").addEventListener("click", (event) => {
    const example = JSON.parse(event.target.dataset.example);
    document.getElementById("names").value = (example.queries || example).join("\n");
  });
  document.getElementById("clear-names").addEventListener("click", () => {
    document.getElementById("names").value = "";
    document.getElementById("log-file").value = "";
    document.getElementById("result").hidden = true;
    showError(errorBox, "");
  });
  poll();
})();
