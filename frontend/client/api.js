/**
 * The one module that talks to the ComfyUI Web Service API: every fetch and WebSocket goes through here,
 * and no other module knows a URL. Tokens live in sessionStorage; the client secret only in memory.
 */

const BASE = String(window.COMFYWS_API || `${location.protocol}//${location.hostname}:8000`).replace(/\/+$/, "");
const TOKEN_KEY = "comfyws.client.session";
const REFRESH_MARGIN_MS = 60_000; // renew this long before the token runs out
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
const CLOSE_UNAUTHORIZED = 4401; // the API closes a socket with this code when its token is refused

/** An API failure with the service's error code and a message fit to show a person. */
export class ApiError extends Error {
  constructor(status, code, message, fields = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

/** The access token is missing, expired or revoked: the person must sign in again. */
export class SessionExpired extends ApiError {}

let secret = null; // kept in memory only, so a refresh needs no re-typing but nothing persists it
let refreshTimer = null;
const expiredListeners = new Set();

export function apiBase() {
  return BASE;
}

export function currentSession() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
    return stored && stored.token ? stored : null;
  } catch {
    return null;
  }
}

export function sessionIsFresh() {
  const session = currentSession();
  return Boolean(session && session.expiresAt > Date.now());
}

export function onSessionExpired(listener) {
  expiredListeners.add(listener);
}

export function signOut() {
  secret = null;
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Exchange client credentials for an access token; it is renewed before it expires while the page is open. */
export async function signIn(clientId, clientSecret) {
  const body = await request("POST", "/api/v2/auth/token", {
    json: { grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret },
    auth: false,
  });
  secret = clientSecret;
  storeToken(clientId, body);
  return currentSession();
}

function storeToken(clientId, body) {
  const expiresAt = Date.now() + Number(body.expires_in) * 1000;
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ clientId, token: body.access_token, expiresAt }));
  clearTimeout(refreshTimer);
  const delay = Math.max(5_000, expiresAt - Date.now() - REFRESH_MARGIN_MS);
  refreshTimer = setTimeout(() => refresh().catch(() => {}), delay);
}

async function refresh() {
  const session = currentSession();
  if (!session || !secret) return false;
  try {
    await signIn(session.clientId, secret);
    return true;
  } catch {
    return false;
  }
}

function expire(message) {
  secret = null;
  clearTimeout(refreshTimer);
  const session = currentSession();
  sessionStorage.removeItem(TOKEN_KEY);
  const error = new SessionExpired(401, "unauthorized", message);
  error.clientId = session ? session.clientId : "";
  expiredListeners.forEach((listener) => listener(error));
  return error;
}

export function register(clientName, description) {
  return request("POST", "/api/v2/auth/register", {
    json: { client_name: clientName, description },
    auth: false,
  });
}

export function listWorkflows() {
  return request("GET", "/api/v2/workflows");
}

export function uploadImage(blob, filename) {
  const form = new FormData();
  form.append("file", blob, filename || "image.png");
  return request("POST", "/api/v2/upload/image", { form });
}

export function submitTask(taskType, body) {
  return request("POST", `/api/v2/tasks/${encodeURIComponent(taskType.replaceAll("_", "-"))}`, { json: body });
}

export function getTask(taskId) {
  return request("GET", `/api/v2/tasks/${encodeURIComponent(taskId)}`);
}

export function listTasks({ limit = 50, status = "" } = {}) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (status) query.set("status", status);
  return request("GET", `/api/v2/tasks?${query}`);
}

export function cancelTask(taskId) {
  return request("DELETE", `/api/v2/tasks/${encodeURIComponent(taskId)}`);
}

/** A result file (a path the API gave us) fetched with the bearer token, as a Blob. */
export async function fetchResult(resultUrl) {
  if (!String(resultUrl).startsWith("/api/")) {
    throw new ApiError(0, "bad_url", "the service named a result outside its API"); // never send the token elsewhere
  }
  const response = await request("GET", resultUrl, { raw: true });
  return response.blob();
}

async function request(method, path, { json, form, auth = true, raw = false, retried = false } = {}) {
  const headers = {};
  if (auth) {
    const session = currentSession();
    if (!session) throw expire("Please sign in to continue.");
    headers.Authorization = `Bearer ${session.token}`;
  }
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(BASE + path, { method, headers, body });
  } catch (error) {
    throw new ApiError(0, "network_error", `Cannot reach the service at ${BASE}. Check your connection and try again.`);
  }
  if (response.status === 401 && auth) {
    if (!retried && (await refresh())) return request(method, path, { json, form, auth, raw, retried: true });
    throw expire("Your session has expired. Please sign in again.");
  }
  if (!response.ok) throw await errorFrom(response);
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

async function errorFrom(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's error page): the status alone has to do
  }
  let detail = body.detail;
  if (typeof detail !== "string") detail = detail ? JSON.stringify(detail) : response.statusText;
  const fields = Array.isArray(body.fields) ? body.fields : [];
  if (response.status >= 500) {
    const message = `The service had a problem (${response.status}${detail ? `: ${detail}` : ""}). Please try again.`;
    return new ApiError(response.status, body.error || "server_error", message, fields);
  }
  return new ApiError(response.status, body.error || "error", detail || `request failed (${response.status})`, fields);
}

/**
 * Live updates of all the client's jobs over one WebSocket. Reconnects with backoff after a loss;
 * `onState` hears "open", "lost" (with the delay before the next try) and "closed".
 */
export function openTaskStream({ onMessage, onState }) {
  let socket = null;
  let attempt = 0;
  let timer = null;
  let stopped = false;
  let renewed = false; // a token refused again right after a renewal means the client itself was refused

  function connect() {
    const session = currentSession();
    if (!session || stopped) return;
    const url = `${BASE.replace(/^http/, "ws")}/api/v2/ws/tasks?token=${encodeURIComponent(session.token)}`;
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      attempt = 0;
      onState("open", 0);
    });
    socket.addEventListener("message", (event) => {
      renewed = false;
      try {
        onMessage(JSON.parse(event.data));
      } catch {
        // a message we cannot read is skipped; the next status or a refresh brings the truth
      }
    });
    socket.addEventListener("close", async (event) => {
      socket = null;
      if (stopped) return;
      if (event.code === CLOSE_UNAUTHORIZED) {
        // The token ran out while the socket was away: renew it once, or ask the person to sign in.
        if (!renewed && (await refresh())) {
          renewed = true;
          return connect();
        }
        expire("Your session has expired. Please sign in again.");
        return;
      }
      const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
      attempt += 1;
      onState("lost", delay);
      timer = setTimeout(connect, delay);
    });
  }

  connect();
  return {
    close() {
      stopped = true;
      clearTimeout(timer);
      if (socket) socket.close(1000, "page closed the stream");
      onState("closed", 0);
    },
  };
}
