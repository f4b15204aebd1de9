/** Sign-in, client registration and the re-auth prompt after a session ends. */

import * as api from "./api.js";
import { $, el, show } from "./ui.js";

export function initAuth({ onSignedIn }) {
  $("#signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#signin-submit");
    button.disabled = true;
    setSignInError("");
    try {
      await api.signIn($("#client-id").value.trim(), $("#client-secret").value);
      $("#client-secret").value = "";
      show($("#signin-reason"), false);
      onSignedIn();
    } catch (error) {
      setSignInError(
        error.status === 401 || error.status === 400
          ? "Sign-in failed: the client ID or secret is wrong."
          : `Sign-in failed: ${error.message}`,
      );
    } finally {
      button.disabled = false;
    }
  });
  $("#register-form").addEventListener("submit", registerClient);
}

async function registerClient(event) {
  event.preventDefault();
  const out = $("#register-result");
  out.replaceChildren();
  try {
    const created = await api.register($("#register-name").value.trim(), $("#register-description").value);
    out.append(
      el("p", { cls: "warning", text: "Copy the secret now: it is shown only this once." }),
      el("dl", {}, [
        el("dt", { text: "Client ID" }),
        el("dd", { text: created.client_id, attrs: { "data-testid": "new-client-id" } }),
        el("dt", { text: "Client secret" }),
        el("dd", { text: created.client_secret, attrs: { "data-testid": "new-client-secret" } }),
      ]),
      el("button", {
        text: "Use these credentials",
        attrs: { type: "button" },
        on: {
          click: () => {
            $("#client-id").value = created.client_id;
            $("#client-secret").value = created.client_secret;
            $("#register-details").open = false;
            out.replaceChildren();
          },
        },
      }),
    );
  } catch (error) {
    out.append(el("p", { cls: "error", text: `Registration failed: ${error.message}`, attrs: { role: "alert" } }));
  }
}

function setSignInError(message) {
  const line = $("#signin-error");
  line.textContent = message;
  show(line, Boolean(message));
}

/** Show the sign-in form; with a reason (an expired session) the client ID is filled in again. */
export function showSignIn({ reason = "", clientId = "" } = {}) {
  show($("#app-view"), false);
  show($("#signin-view"), true);
  show($("#account"), false);
  setSignInError("");
  const why = $("#signin-reason");
  why.textContent = reason;
  show(why, Boolean(reason));
  if (clientId) $("#client-id").value = clientId;
  (clientId ? $("#client-secret") : $("#client-id")).focus();
}
