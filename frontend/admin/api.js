/**
 * The one module that knows the admin API: every URL, fetch and WebSocket of the dashboard lives here.
 * Views call the functions below and receive parsed JSON or an ApiError carrying the API's own message.
 */

const TOKEN_KEY = "comfyws.admin.token";
const USER_KEY = "comfyws.admin.user";
const REFRESH_KEY = "comfyws.admin.refresh";
const EXPIRES_KEY = "comfyws.admin.expires";
// Access tokens live 15 minutes: renew a minute before the end (or after a 401) with the refresh token.
const RENEW_BEFORE_MS = 60_000;
const ADMIN = "/api/v2/admin";
const POLL_MS = 2500;
const RECONNECT_MS = 5000;

/** An API answer that was not 2xx (status 0: the API could not be reached). */
export class ApiError extends Error {
  constructor(status, code, detail, fields = []) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

/** The API's base URL from /config.js (window.COMFYWS_API); same origin when unset. */
export function apiBase() {
  const configured = window.COMFYWS_API;
  const url = typeof configured === "string" ? configured : configured?.url;
  return (url || "").replace(/\/+$/, "");
}

/** A flow run's page in the Prefect UI, whose base /config.js names (window.COMFYWS_PREFECT_UI); null if unknown. */
export function prefectRunUrl(flowRunId) {
  const base = (window.COMFYWS_PREFECT_UI || "").replace(/\/+$/, "");
  return base && flowRunId ? `${base}/runs/flow-run/${encodeURIComponent(flowRunId)}` : null;
}

// ---- the session -----------------------------------------------------------------------------------

const listeners = new Set();

/** Called with a reason when the API refuses the stored token, so the app can return to sign-in. */
export function onSignedOut(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function currentUser() {
  const raw = sessionStorage.getItem(USER_KEY);
  return raw ? JSON.parse(raw) : null;
}

export function signOut(reason = "") {
  for (const key of [TOKEN_KEY, USER_KEY, REFRESH_KEY, EXPIRES_KEY]) sessionStorage.removeItem(key);
  listeners.forEach((listener) => listener(reason));
}

function keepSession(body) {
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  if (body.refresh_token) sessionStorage.setItem(REFRESH_KEY, body.refresh_token);
  sessionStorage.setItem(EXPIRES_KEY, String(Date.now() + Number(body.expires_in || 0) * 1000));
}

/** POST /admin/auth/login; keeps the tokens for this tab only. */
export async function signIn(username, password) {
  const body = await request("POST", "/admin/auth/login", { body: { username, password }, auth: false });
  keepSession(body);
  sessionStorage.setItem(USER_KEY, JSON.stringify({ username, role: body.role }));
  return body;
}

const expiresSoon = () => Number(sessionStorage.getItem(EXPIRES_KEY) || 0) - Date.now() < RENEW_BEFORE_MS;
let renewal = null;

/** POST /admin/auth/refresh (one at a time): true once a new access token is kept, false if the session is over. */
function renew() {
  const refreshToken = sessionStorage.getItem(REFRESH_KEY);
  if (!refreshToken) return Promise.resolve(false);
  renewal ??= (async () => {
    try {
      const response = await fetch(`${apiBase()}/admin/auth/refresh`, {
        method: "POST",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: refreshToken }),
      });
      if (!response.ok) return false;
      keepSession(await response.json());
      return true;
    } catch {
      return false;
    }
  })().finally(() => {
    renewal = null;
  });
  return renewal;
}

// ---- HTTP ------------------------------------------------------------------------------------------

function query(params = {}) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? `?${new URLSearchParams(pairs)}` : "";
}

async function send(method, path, { body, params, auth }) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && token()) headers.Authorization = `Bearer ${token()}`;
  try {
    return await fetch(apiBase() + path + query(params), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "unreachable", `Cannot reach the API at ${apiBase() || location.origin}.`);
  }
}

async function request(method, path, { body, params, auth = true } = {}) {
  if (auth && token() && expiresSoon()) await renew();
  let response = await send(method, path, { body, params, auth });
  // An expired (or revoked) access token: one renewal, then the same request again; a refused renewal signs out.
  if (response.status === 401 && auth && token() && (await renew())) {
    response = await send(method, path, { body, params, auth });
  }
  const data = response.status === 204 ? null : parseJson(await response.text());
  if (!response.ok) throw errorOf(response.status, data, auth);
  return data;
}

/** JSON whose integers beyond 2^53 (64-bit seeds) stay exact: they become strings instead of rounded numbers. */
function parseJson(text) {
  try {
    return JSON.parse(text, (key, value, context) =>
      typeof value === "number" && !Number.isSafeInteger(value) && context?.source && /^-?\d+$/.test(context.source)
        ? context.source
        : value,
    );
  } catch {
    return null;
  }
}

function errorOf(status, data, auth) {
  const detail = typeof data?.detail === "string" ? data.detail : data?.error;
  if (status === 401 && auth && token()) signOut("Your session has ended; sign in again.");
  return new ApiError(status, data?.error, detail || `HTTP ${status}`, data?.fields || []);
}

const get = (path, params) => request("GET", path, { params });
const post = (path, body) => request("POST", path, { body });
const id = (value) => encodeURIComponent(value);

// ---- admin routes ----------------------------------------------------------------------------------

export const overview = () => get(`${ADMIN}/overview`);
export const databaseStatus = () => get(`${ADMIN}/database/status`);
export const nodePerformance = () => get(`${ADMIN}/performance/nodes`);

export const nodes = {
  list: () => get(`${ADMIN}/nodes`),
  add: (node) => post(`${ADMIN}/nodes`, node),
  remove: (nodeId) => request("DELETE", `${ADMIN}/nodes/${id(nodeId)}`),
  /** action: drain | undrain | disable | enable */
  act: (nodeId, action) => post(`${ADMIN}/nodes/${id(nodeId)}/${action}`),
  health: (nodeId) => get(`${ADMIN}/nodes/${id(nodeId)}/health`),
};

export const strategies = {
  get: (group) => get(`${ADMIN}/strategy/${id(group)}`),
  put: (group, strategy) => request("PUT", `${ADMIN}/strategy/${id(group)}`, { body: { strategy } }),
};

export const tasks = {
  /** filters: status, task_type, client_id, node_id, limit, offset */
  list: (filters) => get(`${ADMIN}/tasks`, filters),
  get: (taskId) => get(`${ADMIN}/tasks/${id(taskId)}`),
  cancel: (taskId) => post(`${ADMIN}/tasks/${id(taskId)}/cancel`),
  retry: (taskId) => post(`${ADMIN}/tasks/${id(taskId)}/retry`),
};

export const clients = {
  list: (params = { limit: 500 }) => get(`${ADMIN}/clients`, params),
  create: (client) => post(`${ADMIN}/clients`, client),
  setActive: (clientId, active) => post(`${ADMIN}/clients/${id(clientId)}/${active ? "enable" : "disable"}`),
  rotate: (clientId) => post(`${ADMIN}/clients/${id(clientId)}/rotate`),
  update: (clientId, changes) => request("PATCH", `${ADMIN}/clients/${id(clientId)}`, { body: changes }),
};

export const users = {
  list: () => get(`${ADMIN}/users`),
  create: (user) => post(`${ADMIN}/users`, user),
  setActive: (userId, active) => post(`${ADMIN}/users/${id(userId)}/${active ? "enable" : "disable"}`),
  setRole: (userId, role) => request("PATCH", `${ADMIN}/users/${id(userId)}`, { body: { role } }),
};

/** The task types the service knows, for the jobs filter. */
export const taskTypes = async () => Object.keys((await get("/api/v2/workflows")).task_types || {});

// ---- live updates ----------------------------------------------------------------------------------

function liveSocketUrl() {
  const base = apiBase() || location.origin;
  return `${base.replace(/^http/, "ws")}${ADMIN}/ws?token=${encodeURIComponent(token() || "")}`;
}

/**
 * Tell `onChange(message)` whenever something may have changed: each admin WebSocket message, or a poll
 * tick every 2.5 s while the socket is unavailable. `onMode("live" | "polling")` reports which is in use.
 * Returns a function that stops both.
 */
export function watchChanges(onChange, onMode = () => {}) {
  let socket = null;
  let poller = null;
  let retry = null;
  let stopped = false;
  let everOpened = false;

  const startPolling = () => {
    if (poller || stopped) return;
    onMode("polling");
    poller = setInterval(() => onChange({ type: "poll" }), POLL_MS);
  };
  const stopPolling = () => {
    clearInterval(poller);
    poller = null;
  };
  const connect = () => {
    if (stopped || !token()) return;
    try {
      socket = new WebSocket(liveSocketUrl());
    } catch {
      startPolling();
      return;
    }
    socket.onopen = () => {
      everOpened = true;
      stopPolling();
      onMode("live");
    };
    socket.onmessage = (event) => onChange(parse(event.data));
    socket.onclose = () => {
      socket = null;
      startPolling();
      // A server without the admin socket answers the upgrade with an error: poll instead of retrying forever.
      if (!stopped && everOpened) retry = setTimeout(connect, RECONNECT_MS);
    };
  };

  connect();
  if (!socket) startPolling();
  return () => {
    stopped = true;
    stopPolling();
    clearTimeout(retry);
    socket?.close();
  };
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { type: "unknown" };
  }
}
