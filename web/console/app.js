// devicehub console: plain JavaScript modules over the REST API and the live stream, no build step.
// This module routes between the pages (one module each) and starts the session.

import { h, $, show, view, labelCells } from "./dom.js";
import { ApiError, onSessionEnded, refresh, session, whoAmI } from "./api.js";
import { showLogin, logout } from "./auth.js";
import { closePage } from "./live.js";
import { overview } from "./overview.js";
import { devicesPage } from "./devices.js";
import { devicePage } from "./device.js";
import { alertsPage } from "./alerts.js";
import { inventoryPage } from "./inventory.js";
import { energyPage } from "./energy.js";
import { systemPage } from "./system.js";

const login = (message) => showLogin(message, route);

function route() {
  if (!session.token && !session.open) { login(); return; }
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
         "/inventory": inventoryPage, "/energy": energyPage, "/system": systemPage })[path];
  if (!page) { show(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the overview"))); return; }
  Promise.resolve(page(params)).catch((e) => {
    if (e instanceof ApiError && e.status === 401) return;
    show(h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, e.message));
  });
  view().focus({ preventScroll: true });
}

onSessionEnded(() => login("Your session ended; log in again."));
window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", async () => {
  $("#logout").addEventListener("click", () => logout(route));
  new MutationObserver(() => labelCells(view())).observe(view(), { childList: true, subtree: true });
  if (await refresh().catch(() => false)) {
    try { await whoAmI(); } catch { login(); return; }
  } else {
    // Auth off: /api/auth/me answers without a token.
    try { await whoAmI(); session.open = true; $("#logout").hidden = true; } catch { /* log in */ }
  }
  route();
});
