/** Small display helpers shared by the views: times, sizes, durations and status colours. */

export const JOB_STATES = ["pending", "queued", "running", "completed", "failed", "cancelled"];
export const FINAL_STATES = ["completed", "failed", "cancelled"];
export const STRATEGIES = ["round_robin", "least_loaded", "weighted", "random", "model_aware"];

export function time(value) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function clock(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function ago(value) {
  if (!value) return "never";
  const seconds = Math.round((Date.now() - new Date(value).getTime()) / 1000);
  if (seconds < 60) return `${Math.max(seconds, 0)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

export function bytes(value) {
  if (value === null || value === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let size = Number(value);
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  return value < 60 ? `${Number(value).toFixed(1)} s` : `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

export function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(0)} %`;
}

export function shortId(value) {
  return value ? String(value).slice(0, 8) : "—";
}

/** The CSS class of a badge for a job, attempt or node state. */
export function tone(state) {
  if (["completed", "succeeded", "healthy", "up", "ok", "active"].includes(state)) return "good";
  if (["failed", "unhealthy", "down", "error", "disabled"].includes(state)) return "bad";
  if (["running", "draining", "queued", "pending"].includes(state)) return "busy";
  return "muted";
}
