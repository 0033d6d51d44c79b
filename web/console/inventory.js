// The home network: the inventory's hosts.

import { h, $, show, table, badge, fmtTime } from "./dom.js";
import { api } from "./api.js";

export async function inventoryPage(params) {
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
