// Energy and cost: the gold tables per day and per device, room or type.

import { h, show, table, fmtNum } from "./dom.js";
import { api } from "./api.js";

export async function energyPage(params) {
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
