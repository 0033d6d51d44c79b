// The API and the session. Tokens: the access token lives in this page's memory only; the
// refresh token is the HttpOnly cookie devicehub sets at login (script cannot read it), so a
// reload asks POST /api/auth/refresh for a new access token. Nothing is kept in localStorage or
// sessionStorage.

import { $ } from "./dom.js";

const ROLE_RANK = { viewer: 1, operator: 2, admin: 3 };
// `open`: auth is off on this devicehub (a trusted LAN), every call is answered without a token.
export const session = { token: null, open: false, username: null, role: null, timer: null };
export const canAct = () => ROLE_RANK[session.role] >= ROLE_RANK.operator;

// What to do when the session ends under a call (the app shows the login form).
let sessionEnded = () => {};
export function onSessionEnded(fn) { sessionEnded = fn; }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(path, { method = "GET", body, retry = true } = {}) {
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && retry && session.token) {
    if (await refresh()) return api(path, { method, body, retry: false });
    sessionEnded();
    throw new ApiError(401, "session ended");
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) {
    throw new ApiError(res.status, (data && data.error) || `${res.status} ${res.statusText}`);
  }
  return { data, total: Number(res.headers.get("X-Total-Count") ?? NaN), res };
}

export function signedIn(answer) {
  session.token = answer.access_token;
  clearTimeout(session.timer);
  // A minute before it runs out (or at 80 % of a short life).
  const ms = Math.max(5, Math.min(answer.expires_in - 60, answer.expires_in * 0.8)) * 1000;
  session.timer = setTimeout(refresh, ms);
}

export async function refresh() {
  const res = await fetch("/api/auth/refresh", { method: "POST", credentials: "same-origin" });
  if (!res.ok) { session.token = null; return false; }
  signedIn(await res.json());
  return true;
}

export async function whoAmI() {
  const { data } = await api("/api/auth/me");
  session.username = data.username;
  session.role = data.role;
  $("#who-name").textContent = data.username;
  $("#who-role").textContent = data.role;
  $("#who").hidden = false;
  $("#nav").hidden = false;
  // The System page is the admins' (its API answers 403 to others).
  $("#nav-system").hidden = data.role !== "admin";
}
