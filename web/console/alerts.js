// Alerts: the list with filters and pages, acknowledgement, new alerts live.

import { h, show, badge, fmtTime, PAGE, SEVERITIES } from "./dom.js";
import { api, canAct } from "./api.js";
import { live, liveIndicator, onLeave } from "./live.js";

export function alertRow(a, onAck) {
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

export const ALERT_HEADERS = ["When", "Device", "Severity", "Type", "Message", ""];

export async function alertsPage(params) {
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
