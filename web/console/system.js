// System (admins): what this devicehub process runs — its roles and background tasks — and the
// checks of `devicehub doctor`, run on request with the service's own settings.

import { h, $, show, table, badge } from "./dom.js";
import { api } from "./api.js";

export async function systemPage() {
  const run = h("button", { type: "button", class: "primary", id: "run-checks" }, "Run the checks");
  show(h("h1", {}, "System"),
    h("section", { "aria-labelledby": "s-process" }, h("h2", { id: "s-process" }, "This process"),
      h("div", { id: "system-info" }, h("p", { class: "muted" }, "Loading…"))),
    h("section", { "aria-labelledby": "s-checks" }, h("h2", { id: "s-checks" }, "Checks"),
      h("p", { class: "muted" }, "Each configured part tried as devicehub uses it (the same as `devicehub doctor`); takes a few seconds."),
      run, h("div", { id: "system-checks", "aria-live": "polite" })));
  run.addEventListener("click", () => checks(run));
  const { data } = await api("/api/system");
  $("#system-info").replaceChildren(
    h("p", {}, `devicehub ${data.version}, roles: `, data.roles.map((r) => [badge(r, "info"), " "])),
    table(["Task", "Restarts"], data.tasks.map((t) => h("tr", {},
      h("td", {}, t.name), h("td", {}, t.restarts ? badge(String(t.restarts), "warning") : "0")))));
}

const STATUS = { ok: "yes", warning: "warning", failed: "no" };

async function checks(button) {
  const out = $("#system-checks");
  button.disabled = true;
  out.replaceChildren(h("p", { class: "muted", role: "status" }, "Checking…"));
  try {
    const { data } = await api("/api/system/checks");
    const failed = data.checks.filter((c) => c.status === "failed").length;
    out.replaceChildren(
      h("p", { role: "status", class: failed ? "error" : "muted" },
        failed ? `${failed} of ${data.checks.length} checks failed.` : `All ${data.checks.length} checks passed.`),
      table(["Part", "Status", "Detail", "Fix"], data.checks.map((c) => h("tr", { dataset: { check: c.name } },
        h("td", {}, c.name), h("td", {}, badge(c.status, STATUS[c.status])),
        h("td", {}, c.detail), h("td", { class: "mono" }, c.fix || "—")))));
  } finally {
    button.disabled = false;
  }
}
