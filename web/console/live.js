// Live updates (GET /api/stream) and the cleanup a page leaves behind when another is shown.

import { h } from "./dom.js";
import { api } from "./api.js";

let pageCleanup = [];

// Opens GET /api/stream with a fresh ticket; reconnects with a new ticket (and the last alert id
// seen, so missed alerts come first) when the connection drops or devicehub ends the stream.
// Returns a closer.
export function live(params, handlers, indicator) {
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
      // The stream ends when its access token expires (or access ends): a new ticket, asked
      // with a refreshed token, opens the next one; without access the ticket is refused.
      source.addEventListener("end", () => {
        indicator && indicator.classList.remove("on");
        source.close();
        if (!closed) timer = setTimeout(open, 1000);
      });
    } catch {
      if (!closed) timer = setTimeout(open, 5000);
    }
  }
  open();
  return () => { closed = true; clearTimeout(timer); if (source) source.close(); };
}

export function liveIndicator() {
  return h("span", { class: "live", title: "Live updates" }, "live");
}

export function onLeave(fn) { pageCleanup.push(fn); }

export function closePage() {
  for (const fn of pageCleanup) { try { fn(); } catch { /* already closed */ } }
  pageCleanup = [];
}
