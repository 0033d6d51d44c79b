// One device: its facts, live charts, alerts, commands (Shelly relays as switches), configs,
// events and raw archive objects.

import { h, $, show, table, flash, badge, fmtTime, connectionBadge } from "./dom.js";
import { api, canAct, session } from "./api.js";
import { live, liveIndicator, onLeave } from "./live.js";
import { Charts } from "./chart.js";
import { alertRow, ALERT_HEADERS } from "./alerts.js";

export async function devicePage(id) {
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
