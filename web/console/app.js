// devicehub console: plain JavaScript over the REST API and the live stream, no build step.
//
// Tokens: the access token lives in this page's memory only; the refresh token is the HttpOnly
// cookie devicehub sets at login (script cannot read it), so a reload asks POST /api/auth/refresh
// for a new access token. Nothing is kept in localStorage or sessionStorage.
// Text from the API is always set as text (textContent), never parsed as HTML.
"use strict";

const ROLE_RANK = { viewer: 1, operator: 2, admin: 3 };
const SEVERITIES = ["critical", "error", "warning", "info"];
const PAGE = 25;
// `open`: auth is off on this devicehub (a trusted LAN), every call is answered without a token.
const session = { token: null, open: false, username: null, role: null, timer: null };
let pageCleanup = [];

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);
const view = () => $("#view");
const canAct = () => ROLE_RANK[session.role] >= ROLE_RANK.operator;

function fmtTime(t) {
  if (!t) return "—";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

function fmtNum(v, digits = 2) {
  return v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toFixed(digits);
}

function badge(text, cls) {
  return h("span", { class: `badge ${cls || text}` }, text);
}

function table(headers, rows, empty = "Nothing to show.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows)));
}

function show(...nodes) {
  const v = view();
  v.replaceChildren(...nodes);
}

function flash(node, message, isError) {
  const p = h("p", { class: isError ? "error" : "muted", role: isError ? "alert" : "status" }, message);
  node.replaceChildren(p);
}

// ---------------------------------------------------------------- API and session

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = "GET", body, retry = true } = {}) {
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && retry && session.token) {
    if (await refresh()) return api(path, { method, body, retry: false });
    showLogin("Your session ended; log in again.");
    throw new ApiError(401, "session ended");
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) {
    throw new ApiError(res.status, (data && data.error) || `${res.status} ${res.statusText}`);
  }
  return { data, total: Number(res.headers.get("X-Total-Count") ?? NaN), res };
}

function signedIn(answer) {
  session.token = answer.access_token;
  clearTimeout(session.timer);
  // A minute before it runs out (or at 80 % of a short life).
  const ms = Math.max(5, Math.min(answer.expires_in - 60, answer.expires_in * 0.8)) * 1000;
  session.timer = setTimeout(refresh, ms);
}

async function refresh() {
  const res = await fetch("/api/auth/refresh", { method: "POST", credentials: "same-origin" });
  if (!res.ok) { session.token = null; return false; }
  signedIn(await res.json());
  return true;
}

async function whoAmI() {
  const { data } = await api("/api/auth/me");
  session.username = data.username;
  session.role = data.role;
  $("#who-name").textContent = data.username;
  $("#who-role").textContent = data.role;
  $("#who").hidden = false;
  $("#nav").hidden = false;
}

function showLogin(message) {
  closePage();
  session.token = null;
  $("#who").hidden = true;
  $("#nav").hidden = true;
  const form = $("#login-template").content.cloneNode(true);
  show(form);
  const err = $("#login-error");
  if (message) { err.textContent = message; err.hidden = false; }
  $("#login-user").focus();
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = e.target.querySelector("button");
    button.disabled = true;
    err.hidden = true;
    try {
      const res = await fetch("/api/auth/login", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: $("#login-user").value, password: $("#login-password").value }),
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) {
        err.textContent = res.status === 401 ? "Wrong user name or password." : (data.error || `Login failed (${res.status}).`);
        err.hidden = false;
        return;
      }
      signedIn(data);
      await whoAmI();
      route();
    } catch (x) {
      err.textContent = `Cannot reach devicehub: ${x.message}`;
      err.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
}

async function logout() {
  await fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" }).catch(() => {});
  clearTimeout(session.timer);
  showLogin();
}

// ---------------------------------------------------------------- live stream

// Opens GET /api/stream with a fresh ticket; reconnects with a new ticket (and the last alert id
// seen, so missed alerts come first) when the connection drops. Returns a closer.
function live(params, handlers, indicator) {
  let source = null;
  let closed = false;
  let lastAlert = null;
  let timer = null;
  async function open() {
    if (closed) return;
    try {
      const { data } = await api("/api/stream/ticket", { method: "POST" });
      const q = new URLSearchParams(params);
      if (data.ticket) q.set("ticket", data.ticket);
      if (lastAlert) q.set("last_event_id", lastAlert);
      source = new EventSource(`/api/stream?${q}`);
      source.onopen = () => indicator && indicator.classList.add("on");
      source.onerror = () => {
        indicator && indicator.classList.remove("on");
        source.close();
        if (!closed) timer = setTimeout(open, 3000);
      };
      for (const [name, fn] of Object.entries(handlers)) {
        source.addEventListener(name, (ev) => {
          if (name === "alert" && ev.lastEventId) lastAlert = ev.lastEventId;
          fn(JSON.parse(ev.data));
        });
      }
      source.addEventListener("end", () => { closed = true; source.close(); });
    } catch {
      if (!closed) timer = setTimeout(open, 5000);
    }
  }
  open();
  return () => { closed = true; clearTimeout(timer); if (source) source.close(); };
}

function liveIndicator() {
  return h("span", { class: "live", title: "Live updates" }, "live");
}

function onLeave(fn) { pageCleanup.push(fn); }

function closePage() {
  for (const fn of pageCleanup) { try { fn(); } catch { /* already closed */ } }
  pageCleanup = [];
}

// ---------------------------------------------------------------- router

function route() {
  if (!session.token && !session.open) { showLogin(); return; }
  closePage();
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll("#nav a")) {
    const href = a.getAttribute("href").slice(1);
    const current = href === "/" ? path === "/" : path.startsWith(href);
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const device = path.match(/^\/devices\/(.+)$/);
  const page = device ? () => devicePage(decodeURIComponent(device[1]))
    : ({ "/": overview, "/devices": devicesPage, "/alerts": alertsPage,
         "/inventory": inventoryPage, "/energy": energyPage })[path];
  if (!page) { show(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the overview"))); return; }
  Promise.resolve(page(params)).catch((e) => {
    if (e instanceof ApiError && e.status === 401) return;
    show(h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, e.message));
  });
  view().focus({ preventScroll: true });
}

// ---------------------------------------------------------------- overview

async function overview() {
  const kpis = h("section", { class: "grid", "aria-label": "Today" });
  const fleet = h("section", { class: "grid", "aria-label": "Fleet" });
  const indicator = liveIndicator();
  show(h("div", { class: "row" }, h("h1", {}, "Overview"), indicator), kpis, h("h2", {}, "Fleet"), fleet);
  const kpi = (label, value, id) => h("div", { class: "card kpi", id }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
  const today = new Date().toISOString().slice(0, 10);
  let lastIngest = null;

  async function loadKpis() {
    let day = null;
    try { day = (await api(`/api/analytics/summary?from=${today}&to=${today}`)).data[0] || null; } catch { day = null; }
    kpis.replaceChildren(
      kpi("Energy today (kWh)", day ? fmtNum(day.total_kwh, 2) : "—", "kpi-energy"),
      kpi("Cost today", day ? fmtNum(day.total_cost, 2) : "—", "kpi-cost"),
      kpi("Active devices", day ? String(day.active_devices) : "—", "kpi-active"),
      kpi("Average health", day && day.avg_health !== null ? fmtNum(day.avg_health, 2) : "—", "kpi-health"));
  }
  async function loadFleet() {
    const { data: stats } = await api("/api/stats");
    const open = await Promise.all(SEVERITIES.map((s) =>
      api(`/api/alerts?acknowledged=false&severity=${s}&limit=1`).then((r) => [s, r.total])));
    let rate = "—";
    if (stats.ingest) {
      const now = Date.now();
      if (lastIngest) {
        const per = (stats.ingest.messages_accepted - lastIngest.n) / ((now - lastIngest.t) / 1000);
        rate = `${fmtNum(Math.max(0, per), 1)} msg/s`;
      }
      lastIngest = { n: stats.ingest.messages_accepted, t: now };
    }
    fleet.replaceChildren(
      kpi("Devices online", String(stats.online_devices), "kpi-online"),
      kpi("Not online", String(stats.total_devices - stats.online_devices), "kpi-offline"),
      ...open.map(([s, n]) => kpi(`Open ${s} alerts`, String(n), `kpi-alerts-${s}`)),
      kpi("Ingest rate", rate, "kpi-ingest"));
  }
  await Promise.all([loadKpis(), loadFleet()]);
  const every = setInterval(() => { loadFleet().catch(() => {}); }, 5000);
  const kpiEvery = setInterval(() => { loadKpis().catch(() => {}); }, 60000);
  let pending = null;
  const soon = () => { clearTimeout(pending); pending = setTimeout(() => loadFleet().catch(() => {}), 300); };
  const close = live({ kinds: "status,alert" }, { status: soon, alert: soon }, indicator);
  onLeave(() => { clearInterval(every); clearInterval(kpiEvery); clearTimeout(pending); close(); });
}

// ---------------------------------------------------------------- devices

function connectionBadge(status) {
  return badge(status || "unknown", status || "unknown");
}

async function devicesPage(params) {
  const offset = Math.max(0, Number(params.get("offset")) || 0);
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter devices" },
    h("div", {}, h("label", { for: "f-type" }, "Type"), h("input", { id: "f-type", name: "type", value: params.get("type") || "" })),
    h("div", {}, h("label", { for: "f-status" }, "Status"),
      h("select", { id: "f-status", name: "status" },
        ["", "active", "inactive", "maintenance", "unregistered", "decommissioned"].map((s) =>
          h("option", { value: s, selected: (params.get("status") || "") === s }, s || "any")))),
    h("div", {}, h("label", { for: "f-location" }, "Location"), h("input", { id: "f-location", name: "location", value: params.get("location") || "" })),
    h("button", { type: "submit", class: "primary" }, "Filter"));
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(filters)) if (v.trim()) q.set(k, v.trim());
    location.hash = `#/devices?${q}`;
  });
  const indicator = liveIndicator();
  const body = h("div", { id: "devices-body" }, h("p", { class: "muted" }, "Loading…"));
  show(h("div", { class: "row" }, h("h1", {}, "Devices"), indicator), filters, body);
  const q = new URLSearchParams();
  for (const k of ["type", "status", "location"]) if (params.get(k)) q.set(k, params.get(k));
  q.set("limit", PAGE);
  q.set("offset", offset);
  const { data, total } = await api(`/api/devices?${q}`);
  const rows = data.map((d) => h("tr", { dataset: { device: d.device_id } },
    h("td", {}, h("a", { href: `#/devices/${encodeURIComponent(d.device_id)}` }, d.device_id)),
    h("td", {}, d.device_name),
    h("td", {}, d.device_type || "—"),
    h("td", {}, d.location || "—"),
    h("td", {}, d.status),
    h("td", { class: "conn" }, connectionBadge(d.connection_status)),
    h("td", { class: "seen" }, fmtTime(d.last_seen))));
  const pageLink = (to, label) => {
    const p = new URLSearchParams(params);
    p.set("offset", to);
    return h("a", { href: `#/devices?${p}`, class: "page-link" }, label);
  };
  const shown = data.length ? `${offset + 1}–${offset + data.length} of ${total}` : `0 of ${total}`;
  body.replaceChildren(
    table(["Device", "Name", "Type", "Location", "Status", "Connection", "Last seen"], rows, "No devices match."),
    h("nav", { class: "pager", "aria-label": "Pages of devices" },
      offset > 0 ? pageLink(Math.max(0, offset - PAGE), "← Previous") : null,
      h("span", { id: "devices-range" }, shown),
      offset + PAGE < total ? pageLink(offset + PAGE, "Next →") : null));
  const close = live({ kinds: "status" }, {
    status: (s) => {
      const row = body.querySelector(`tr[data-device="${CSS.escape(s.device_id)}"]`);
      if (!row) return;
      row.querySelector(".conn").replaceChildren(connectionBadge(s.connection_status));
      row.querySelector(".seen").textContent = fmtTime(s.last_seen);
    },
  }, indicator);
  onLeave(close);
}

// ---------------------------------------------------------------- one device

const WINDOW_MS = 60 * 60 * 1000;

// One uPlot chart per metric, fed the last hour from the metrics API and then the stream.
class Charts {
  constructor(root) { this.root = root; this.series = new Map(); }

  add(points) {
    const touched = new Set();
    for (const p of points) {
      let s = this.series.get(p.metric);
      if (!s) {
        s = { xs: [], ys: [], unit: p.unit, plot: null, box: null, count: null };
        this.series.set(p.metric, s);
      }
      const t = Date.parse(p.time) / 1000;
      // Keep time order (the stream can deliver a late reading).
      let i = s.xs.length;
      while (i > 0 && s.xs[i - 1] > t) i--;
      s.xs.splice(i, 0, t);
      s.ys.splice(i, 0, p.value);
      touched.add(p.metric);
    }
    const cutoff = (Date.now() - WINDOW_MS) / 1000;
    for (const metric of touched) {
      const s = this.series.get(metric);
      let drop = 0;
      while (drop < s.xs.length - 1 && s.xs[drop] < cutoff) drop++;
      if (drop) { s.xs.splice(0, drop); s.ys.splice(0, drop); }
      this.draw(metric, s);
    }
  }

  draw(metric, s) {
    if (!s.box) {
      s.count = h("span", { class: "muted points" }, "");
      s.box = h("div", { class: "card chart", dataset: { metric } },
        h("h3", {}, metric, s.unit ? ` (${s.unit})` : "", " ", s.count),
        h("div", { class: "plot" }));
      this.root.append(s.box);
      const width = Math.max(240, s.box.clientWidth - 28);
      s.plot = new uPlot({
        width, height: 180,
        // Points while there are too few for a line.
        series: [{}, { label: metric, stroke: "#1f6feb", width: 1.5,
                       points: { show: (u) => u.data[0].length < 3, size: 6 } }],
        axes: [{}, { size: 56 }],
        legend: { show: false },
      }, [s.xs, s.ys], s.box.querySelector(".plot"));
    } else {
      s.plot.setData([s.xs, s.ys]);
    }
    // At least the last hour up to now: a series of one point (a device's hello numbers) spans
    // no time, and uPlot would make up a range of years.
    const now = Date.now() / 1000;
    s.plot.setScale("x", { min: Math.min(s.xs[0], now - 3600), max: Math.max(s.xs[s.xs.length - 1], now) });
    s.count.textContent = `${s.xs.length} points`;
    s.box.dataset.points = String(s.xs.length);
  }

  resize() {
    for (const s of this.series.values()) {
      if (s.plot) s.plot.setSize({ width: Math.max(240, s.box.clientWidth - 28), height: 180 });
    }
  }
}

async function devicePage(id) {
  const enc = encodeURIComponent(id);
  const { data: d } = await api(`/api/devices/${enc}`);
  const indicator = liveIndicator();
  const conn = h("span", { id: "device-connection" }, connectionBadge(d.connection_status));
  const seen = h("dd", {}, fmtTime(d.last_seen));
  const chartsRoot = h("div", { class: "charts", id: "charts" });
  const charts = new Charts(chartsRoot);
  const alertsBox = h("div", { id: "device-alerts" });
  const commandsBox = h("div", { id: "device-commands" });
  const configsBox = h("div", { id: "device-configs" });
  const eventsBox = h("div", { id: "device-events" });
  const rawBox = h("div", { id: "device-raw" });
  show(
    h("p", {}, h("a", { href: "#/devices" }, "← Devices")),
    h("div", { class: "row" }, h("h1", {}, d.device_name), conn, indicator),
    h("dl", { class: "facts card" },
      h("dt", {}, "Device id"), h("dd", { class: "mono" }, d.device_id),
      h("dt", {}, "Type"), h("dd", {}, d.device_type || "—"),
      h("dt", {}, "Location"), h("dd", {}, d.location || "—"),
      h("dt", {}, "Status"), h("dd", {}, d.status),
      h("dt", {}, "Firmware"), h("dd", {}, d.fw_version || "—"),
      h("dt", {}, "Last seen"), seen),
    h("h2", {}, "Metrics (last hour, live)"), chartsRoot,
    h("h2", {}, "Alerts"), alertsBox,
    h("h2", {}, "Commands"), commandsBox,
    h("h2", {}, "Configuration"), configsBox,
    h("h2", {}, "Events"), eventsBox,
    h("h2", {}, "Raw data"), rawBox);

  const history = await api(`/api/devices/${enc}/metrics?start=-1h&limit=5000`).catch(() => ({ data: [] }));
  charts.add(history.data);
  if (!history.data.length) chartsRoot.append(h("p", { class: "muted", id: "no-metrics" }, "No readings in the last hour yet."));
  const onResize = () => charts.resize();
  window.addEventListener("resize", onResize);

  const alertRows = new Map();
  const renderAlerts = await deviceAlerts(enc, alertsBox, alertRows);
  const commandRows = await deviceCommands(d, enc, commandsBox);
  await Promise.all([deviceConfigs(enc, configsBox), deviceEvents(enc, eventsBox), deviceRaw(enc, rawBox)]);

  const close = live({ device_id: id, kinds: "reading,status,alert,command" }, {
    readings: (points) => { const none = $("#no-metrics"); if (none) none.remove(); charts.add(points); },
    status: (s) => { conn.replaceChildren(connectionBadge(s.connection_status)); seen.textContent = fmtTime(s.last_seen); },
    alert: (a) => renderAlerts(a),
    command: (c) => commandRows(c),
  }, indicator);
  onLeave(() => { close(); window.removeEventListener("resize", onResize); });
}

function alertRow(a, onAck) {
  const cell = h("td", { class: "ack" });
  const fill = (al) => {
    if (al.acknowledged) cell.replaceChildren(badge("acknowledged", "yes"), " ", h("span", { class: "muted" }, al.acknowledged_by || ""));
    else if (canAct()) {
      cell.replaceChildren(h("button", {
        type: "button", class: "ack-button", "aria-label": `Acknowledge alert ${al.id}`,
        onclick: async (e) => {
          e.target.disabled = true;
          try { fill((await api(`/api/alerts/${al.id}/acknowledge`, { method: "POST" })).data); onAck && onAck(); }
          catch (x) { e.target.disabled = false; cell.append(h("span", { class: "error", role: "alert" }, ` ${x.message}`)); }
        },
      }, "Acknowledge"));
    } else cell.replaceChildren(badge("open", "no"));
  };
  fill(a);
  return h("tr", { dataset: { alert: a.id } },
    h("td", {}, fmtTime(a.created_at)),
    h("td", {}, a.device_id ? h("a", { href: `#/devices/${encodeURIComponent(a.device_id)}` }, a.device_id) : "devicehub"),
    h("td", {}, badge(a.severity)),
    h("td", {}, a.alert_type),
    h("td", {}, a.message),
    cell);
}

const ALERT_HEADERS = ["When", "Device", "Severity", "Type", "Message", ""];

async function deviceAlerts(enc, box, rows) {
  const { data } = await api(`/api/devices/${enc}/alerts?limit=20`);
  const tbody = h("tbody", {});
  const render = () => box.replaceChildren(rows.size
    ? h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ALERT_HEADERS.map((x) => h("th", { scope: "col" }, x)))), tbody))
    : h("p", { class: "muted" }, "No alerts."));
  for (const a of data) { const r = alertRow(a); rows.set(a.id, r); tbody.append(r); }
  render();
  return (a) => {
    if (rows.has(a.id)) return;
    const r = alertRow(a);
    rows.set(a.id, r);
    tbody.prepend(r);
    render();
  };
}

async function deviceCommands(d, enc, box) {
  const rows = new Map();
  const tbody = h("tbody", {});
  const commandRow = (c) => h("tr", { dataset: { cmd: c.cmd_id } },
    h("td", {}, fmtTime(c.created_at)), h("td", {}, c.cmd),
    h("td", { class: "mono" }, JSON.stringify(c.params)),
    h("td", { class: "status" }, badge(c.status, c.status === "accepted" ? "yes" : ["rejected", "error", "unsupported"].includes(c.status) ? "no" : "")),
    h("td", {}, c.detail || (c.ota_state ? `${c.ota_state} ${c.ota_progress ?? ""}%` : "")));
  const none = h("p", { class: "muted" }, "No commands yet.");
  const upsert = (c) => {
    none.remove();
    const r = commandRow(c);
    if (rows.has(c.cmd_id)) rows.get(c.cmd_id).replaceWith(r); else tbody.prepend(r);
    rows.set(c.cmd_id, r);
  };
  const { data } = await api(`/api/devices/${enc}/commands?limit=20`);
  for (const c of data.slice().reverse()) upsert(c);
  const list = h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["When", "Command", "Parameters", "Status", "Detail"].map((x) => h("th", { scope: "col" }, x)))), tbody));
  const out = h("div", { id: "command-result" });
  const send = async (cmd, params) => {
    try {
      const { data: c } = await api(`/api/devices/${enc}/commands`, { method: "POST", body: { cmd, params } });
      if (!list.isConnected) box.append(list);
      upsert(c);
      flash(out, `Sent ${cmd}.`);
    }
    catch (x) { flash(out, x.message, true); }
  };
  const parts = [];
  if (canAct()) {
    const isShelly = d.device_type === "shelly" || (!d.device_type && d.device_id.startsWith("shelly"));
    if (isShelly) {
      const channels = Number((d.metadata && d.metadata.channels) || 2);
      parts.push(h("div", { class: "row card", id: "relays" }, h("strong", {}, "Relays"),
        Array.from({ length: channels }, (_, ch) => [
          h("button", { type: "button", onclick: () => send("switch_set", { channel: ch, on: true }) }, `Channel ${ch} on`),
          h("button", { type: "button", onclick: () => send("switch_set", { channel: ch, on: false }) }, `Channel ${ch} off`)])));
    }
    const form = h("form", { class: "filters", id: "command-form", "aria-label": "Send a command" },
      h("div", {}, h("label", { for: "cmd" }, "Command"),
        h("select", { id: "cmd", name: "cmd" }, ["request_status", "update_config", "reboot", "start_ota", "factory_reset", "switch_set"].map((c) => h("option", { value: c }, c)))),
      h("div", { style: "flex:1 1 220px" }, h("label", { for: "cmd-params" }, "Parameters (JSON object)"), h("textarea", { id: "cmd-params", name: "params" }, "{}")),
      h("button", { type: "submit", class: "primary" }, "Send"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      let params;
      try { params = JSON.parse($("#cmd-params").value || "{}"); } catch { flash(out, "Parameters must be JSON.", true); return; }
      const cmd = $("#cmd").value;
      if (cmd === "factory_reset" && !confirm(`Factory-reset ${d.device_id}?`)) return;
      send(cmd, params);
    });
    parts.push(form);
  }
  box.replaceChildren(...parts, out, rows.size ? list : none);
  const first = upsert;
  return (c) => { if (!list.isConnected) box.append(list); first(c); };
}

async function deviceConfigs(enc, box) {
  const { data } = await api(`/api/devices/${enc}/configs`);
  const out = h("div");
  const save = async (key, raw) => {
    let value;
    try { value = JSON.parse(raw); } catch { value = raw; }
    try { await api(`/api/devices/${enc}/configs/${encodeURIComponent(key)}`, { method: "PUT", body: { value } }); await deviceConfigs(enc, box); }
    catch (x) { flash(out, x.message, true); }
  };
  const rows = data.map((c) => {
    const input = h("input", { value: JSON.stringify(c.value), "aria-label": `Value of ${c.key}` });
    return h("tr", {}, h("td", { class: "mono" }, c.key),
      h("td", {}, canAct() ? input : h("span", { class: "mono" }, JSON.stringify(c.value))),
      h("td", {}, fmtTime(c.updated_at)),
      h("td", {}, canAct() ? h("div", { class: "row" },
        h("button", { type: "button", onclick: () => save(c.key, input.value) }, "Save"),
        h("button", { type: "button", onclick: async () => {
          try { await api(`/api/devices/${enc}/configs/${encodeURIComponent(c.key)}`, { method: "DELETE" }); await deviceConfigs(enc, box); }
          catch (x) { flash(out, x.message, true); }
        } }, "Delete")) : ""));
  });
  const parts = [table(["Key", "Value (JSON)", "Updated", ""], rows, "No configuration yet.")];
  if (canAct()) {
    const form = h("form", { class: "filters", id: "config-form", "aria-label": "Add a configuration key" },
      h("div", {}, h("label", { for: "cfg-key" }, "Key"), h("input", { id: "cfg-key", required: true, pattern: "[A-Za-z0-9._\\-]{1,64}" })),
      h("div", {}, h("label", { for: "cfg-value" }, "Value (JSON)"), h("input", { id: "cfg-value", required: true })),
      h("button", { type: "submit" }, "Set"));
    form.addEventListener("submit", (e) => { e.preventDefault(); save($("#cfg-key").value, $("#cfg-value").value); });
    parts.push(form);
  }
  box.replaceChildren(...parts, out);
}

async function deviceEvents(enc, box) {
  const { data } = await api(`/api/devices/${enc}/events?limit=20`);
  box.replaceChildren(table(["When", "Type", "Value", "Unit"], data.map((e) => h("tr", {},
    h("td", {}, fmtTime(e.ts_device || e.ts_server)), h("td", {}, e.event_type),
    h("td", {}, e.value_num ?? e.value_text ?? ""), h("td", {}, e.unit || ""))), "No events."));
}

async function deviceRaw(enc, box) {
  let data = [];
  try { data = (await api(`/api/devices/${enc}/raw-data?limit=20`)).data; } catch (x) { flash(box, x.message, true); return; }
  box.replaceChildren(table(["Object", "Size", "Modified"], data.map((o) => h("tr", {},
    h("td", { class: "mono" }, h("a", { href: "#", onclick: async (e) => {
      e.preventDefault();
      const res = await fetch(`/api/devices/${enc}/raw-data/${o.filename.split("/").map(encodeURIComponent).join("/")}`,
        { headers: { Authorization: `Bearer ${session.token}` } });
      if (!res.ok) return;
      const url = URL.createObjectURL(await res.blob());
      const a = h("a", { href: url, download: o.filename.split("/").pop() });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } }, o.filename)),
    h("td", { class: "num" }, o.size), h("td", {}, fmtTime(o.last_modified)))), "No archive objects yet."));
}

// ---------------------------------------------------------------- alerts

async function alertsPage(params) {
  const offset = Math.max(0, Number(params.get("offset")) || 0);
  const ack = params.get("acknowledged") ?? "false";
  const severity = params.get("severity") || "";
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter alerts" },
    h("div", {}, h("label", { for: "a-state" }, "State"),
      h("select", { id: "a-state", name: "acknowledged" },
        [["false", "open"], ["true", "acknowledged"], ["", "all"]].map(([v, l]) => h("option", { value: v, selected: ack === v }, l)))),
    h("div", {}, h("label", { for: "a-severity" }, "Severity"),
      h("select", { id: "a-severity", name: "severity" },
        ["", ...SEVERITIES].map((s) => h("option", { value: s, selected: severity === s }, s || "any")))),
    h("button", { type: "submit", class: "primary" }, "Filter"));
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(filters)) q.set(k, v);
    location.hash = `#/alerts?${q}`;
  });
  const indicator = liveIndicator();
  const body = h("div", { id: "alerts-body" });
  show(h("div", { class: "row" }, h("h1", {}, "Alerts"), indicator), filters, body);
  const q = new URLSearchParams({ limit: PAGE, offset });
  if (ack) q.set("acknowledged", ack);
  if (severity) q.set("severity", severity);
  const { data, total } = await api(`/api/alerts?${q}`);
  const tbody = h("tbody", {}, data.map((a) => alertRow(a)));
  const pageLink = (to, label) => { const p = new URLSearchParams(params); p.set("offset", to); return h("a", { href: `#/alerts?${p}` }, label); };
  body.replaceChildren(
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ALERT_HEADERS.map((x) => h("th", { scope: "col" }, x)))), tbody)),
    h("nav", { class: "pager", "aria-label": "Pages of alerts" },
      offset > 0 ? pageLink(Math.max(0, offset - PAGE), "← Previous") : null,
      h("span", {}, data.length ? `${offset + 1}–${offset + data.length} of ${total}` : "No alerts match."),
      offset + PAGE < total ? pageLink(offset + PAGE, "Next →") : null));
  const close = live({ kinds: "alert" }, {
    alert: (a) => {
      if (offset > 0 || ack === "true" || (severity && a.severity !== severity)) return;
      if (tbody.querySelector(`tr[data-alert="${a.id}"]`)) return;
      tbody.prepend(alertRow(a));
    },
  }, indicator);
  onLeave(close);
}

// ---------------------------------------------------------------- network inventory

async function inventoryPage(params) {
  const present = params.get("present") || "";
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter hosts" },
    h("div", {}, h("label", { for: "i-present" }, "On Wi-Fi now"),
      h("select", { id: "i-present", name: "present" }, [["", "any"], ["true", "yes"], ["false", "no"]].map(([v, l]) => h("option", { value: v, selected: present === v }, l)))),
    h("button", { type: "submit", class: "primary" }, "Filter"));
  filters.addEventListener("submit", (e) => { e.preventDefault(); location.hash = `#/inventory?${new URLSearchParams(new FormData(filters))}`; });
  show(h("h1", {}, "Home network"), filters, h("div", { id: "inventory-body" }, h("p", { class: "muted" }, "Loading…")));
  const q = new URLSearchParams();
  if (present) q.set("present", present);
  const { data } = await api(`/api/inventory?${q}`);
  $("#inventory-body").replaceChildren(
    h("p", { class: "muted" }, `${data.filter((x) => x.present).length} of ${data.length} hosts on Wi-Fi now.`),
    table(["Name", "Owner", "Location", "Type", "IP", "MAC", "Lease", "On Wi-Fi", "Last seen"], data.map((x) => h("tr", {},
      h("td", {}, x.device_id ? h("a", { href: `#/devices/${encodeURIComponent(x.device_id)}` }, x.name || x.host_name || x.device_id) : (x.name || x.host_name || "—")),
      h("td", {}, x.owner || "—"), h("td", {}, x.location || "—"), h("td", {}, x.device_type),
      h("td", { class: "mono" }, x.ip || "—"), h("td", { class: "mono" }, x.mac),
      h("td", {}, x.lease_status || "—"), h("td", {}, badge(x.present ? "yes" : "no")), h("td", {}, fmtTime(x.last_seen)))),
    "The router has reported no hosts yet."));
}

// ---------------------------------------------------------------- energy

async function energyPage(params) {
  const day = (offset) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
  const from = params.get("from") || day(-6);
  const to = params.get("to") || day(0);
  const groupBy = params.get("group_by") || "device";
  const filters = h("form", { class: "filters", "aria-label": "Energy period" },
    h("div", {}, h("label", { for: "e-from" }, "From"), h("input", { id: "e-from", name: "from", type: "date", value: from })),
    h("div", {}, h("label", { for: "e-to" }, "To"), h("input", { id: "e-to", name: "to", type: "date", value: to })),
    h("div", {}, h("label", { for: "e-group" }, "By"),
      h("select", { id: "e-group", name: "group_by" }, [["device", "device"], ["location", "room"], ["type", "device type"]].map(([v, l]) => h("option", { value: v, selected: groupBy === v }, l)))),
    h("button", { type: "submit", class: "primary" }, "Show"));
  filters.addEventListener("submit", (e) => { e.preventDefault(); location.hash = `#/energy?${new URLSearchParams(new FormData(filters))}`; });
  const chart = h("div", { class: "card chart", id: "energy-chart" });
  const body = h("div", { id: "energy-body" });
  show(h("h1", {}, "Energy and cost"), filters, chart, body);
  const [{ data: rows }, { data: summary }] = await Promise.all([
    api(`/api/analytics/energy/daily?from=${from}&to=${to}&group_by=${groupBy}`),
    api(`/api/analytics/summary?from=${from}&to=${to}`)]);
  const key = { device: "device_id", location: "location", type: "device_type" }[groupBy];
  const days = [...new Set(summary.map((s) => s.date).concat(rows.map((r) => r.date)))].sort();
  if (days.length) {
    const xs = days.map((d) => Date.parse(`${d}T12:00:00Z`) / 1000);
    const byDay = new Map(summary.map((s) => [s.date, s]));
    chart.replaceChildren(h("h3", {}, "Daily energy (kWh)"), h("div", { class: "plot" }));
    new uPlot({
      width: Math.max(240, chart.clientWidth - 28), height: 200,
      series: [{}, { label: "kWh", stroke: "#1a7f37", fill: "rgba(26,127,55,.25)", paths: uPlot.paths.bars({ size: [0.6, 60] }), points: { show: false } }],
      axes: [{}, { size: 56 }], legend: { show: false },
    }, [xs, days.map((d) => (byDay.get(d) ? byDay.get(d).total_kwh : null))], chart.querySelector(".plot"));
  } else chart.replaceChildren(h("p", { class: "muted" }, "No gold rows for these days yet (analytics runs every few minutes)."));
  body.replaceChildren(
    h("h2", {}, "Per day"),
    table(["Date", "kWh", "Cost", "Active devices", "Average health"], summary.map((s) => h("tr", {},
      h("td", {}, s.date), h("td", { class: "num" }, fmtNum(s.total_kwh, 3)), h("td", { class: "num" }, fmtNum(s.total_cost, 2)),
      h("td", { class: "num" }, s.active_devices), h("td", { class: "num" }, fmtNum(s.avg_health, 2))))),
    h("h2", {}, `Per ${groupBy === "location" ? "room" : groupBy === "type" ? "device type" : "device"}`),
    table(["Date", groupBy === "location" ? "Room" : groupBy === "type" ? "Type" : "Device", "kWh", "Cost", "Method", "Readings"], rows.map((r) => h("tr", {},
      h("td", {}, r.date), h("td", {}, r[key] ?? "—"), h("td", { class: "num" }, fmtNum(r.energy_kwh, 3)),
      h("td", { class: "num" }, fmtNum(r.cost, 2)), h("td", {}, r.method), h("td", { class: "num" }, r.readings)))));
}

// ---------------------------------------------------------------- phone layout

// At phone width each table row becomes a card whose cells name their column (CSS shows
// data-label); rows are added later too (live alerts, commands), so cells are labelled as they
// appear.
function labelCells(root) {
  for (const tbl of root.querySelectorAll("table")) {
    const names = [...tbl.querySelectorAll("thead th")].map((th) => th.textContent);
    for (const tr of tbl.querySelectorAll("tbody tr")) {
      [...tr.children].forEach((td, i) => { if (td.dataset.label === undefined) td.dataset.label = names[i] || ""; });
    }
  }
}

// ---------------------------------------------------------------- start

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", async () => {
  $("#logout").addEventListener("click", logout);
  new MutationObserver(() => labelCells(view())).observe(view(), { childList: true, subtree: true });
  if (await refresh().catch(() => false)) {
    try { await whoAmI(); } catch { showLogin(); return; }
  } else {
    // Auth off: /api/auth/me answers without a token.
    try { await whoAmI(); session.open = true; $("#logout").hidden = true; } catch { /* log in */ }
  }
  route();
});
