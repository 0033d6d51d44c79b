// DOM helpers: elements from plain data, formatting, tables. Text from the API is always set as
// text (textContent), never parsed as HTML.

export const SEVERITIES = ["critical", "error", "warning", "info"];
export const PAGE = 25;

export function h(tag, attrs, ...children) {
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

export const $ = (sel, root = document) => root.querySelector(sel);
export const view = () => $("#view");

export function fmtTime(t) {
  if (!t) return "—";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

export function fmtNum(v, digits = 2) {
  return v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toFixed(digits);
}

export function badge(text, cls) {
  return h("span", { class: `badge ${cls || text}` }, text);
}

export function table(headers, rows, empty = "Nothing to show.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows)));
}

export function show(...nodes) {
  const v = view();
  v.replaceChildren(...nodes);
}

export function flash(node, message, isError) {
  const p = h("p", { class: isError ? "error" : "muted", role: isError ? "alert" : "status" }, message);
  node.replaceChildren(p);
}

export function connectionBadge(status) {
  return badge(status || "unknown", status || "unknown");
}

// At phone width each table row becomes a card whose cells name their column (CSS shows
// data-label); rows are added later too (live alerts, commands), so cells are labelled as they
// appear.
export function labelCells(root) {
  for (const tbl of root.querySelectorAll("table")) {
    const names = [...tbl.querySelectorAll("thead th")].map((th) => th.textContent);
    for (const tr of tbl.querySelectorAll("tbody tr")) {
      [...tr.children].forEach((td, i) => { if (td.dataset.label === undefined) td.dataset.label = names[i] || ""; });
    }
  }
}
