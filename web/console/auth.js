// Logging in and out: the login form (from index.html's template) and the logout button.

import { $, show } from "./dom.js";
import { session, signedIn, whoAmI } from "./api.js";
import { closePage } from "./live.js";

// Shows the login form (with `message`, if any); once logged in, `then()` shows the page.
export function showLogin(message, then) {
  closePage();
  session.token = null;
  $("#who").hidden = true;
  $("#nav").hidden = true;
  const form = $("#login-template").content.cloneNode(true);
  show(form);
  const err = $("#login-error");
  if (message) { err.textContent = message; err.hidden = false; }
  $("#login-user").focus();
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = e.target.querySelector("button");
    button.disabled = true;
    err.hidden = true;
    try {
      const res = await fetch("/api/auth/login", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: $("#login-user").value, password: $("#login-password").value }),
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) {
        err.textContent = res.status === 401 ? "Wrong user name or password." : (data.error || `Login failed (${res.status}).`);
        err.hidden = false;
        return;
      }
      signedIn(data);
      await whoAmI();
      then();
    } catch (x) {
      err.textContent = `Cannot reach devicehub: ${x.message}`;
      err.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
}

// Ends the session here and at devicehub (the refresh cookie is revoked), then shows the form.
export async function logout(then) {
  await fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" }).catch(() => {});
  clearTimeout(session.timer);
  showLogin(undefined, then);
}
