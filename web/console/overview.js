// The overview: today's energy KPIs and the fleet, kept current by the stream.

import { h, show, fmtNum, SEVERITIES } from "./dom.js";
import { api } from "./api.js";
import { live, liveIndicator, onLeave } from "./live.js";

export async function overview() {
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
