// The device list: filters, pages, connection status live.

import { h, show, table, fmtTime, connectionBadge, PAGE } from "./dom.js";
import { api } from "./api.js";
import { live, liveIndicator, onLeave } from "./live.js";

export async function devicesPage(params) {
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
