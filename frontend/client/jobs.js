/** Job cards: status, step progress, preview frames, queue position and cancel, kept live by the WebSocket. */

import * as api from "./api.js";
import { resultFigure } from "./results.js";
import { $, el, label, notify, show } from "./ui.js";

const FINAL = new Set(["completed", "failed", "cancelled"]);
const cards = new Map(); // task id -> { node, task }
let onFinished = () => {};

export function initJobs({ finished }) {
  onFinished = finished;
}

export function clearJobs() {
  cards.clear();
  $("#job-list").replaceChildren();
  show($("#jobs-empty"), true);
}

/** Add or update the card of a task (a Task from the REST API). */
export function trackTask(task) {
  const card = cards.get(task.task_id) || createCard(task.task_id);
  const wasFinal = FINAL.has(card.task.status);
  card.task = { ...card.task, ...task };
  render(card);
  if (!wasFinal && FINAL.has(card.task.status)) onFinished(card.task);
}

/** Apply one WebSocket message. */
export function applyMessage(message) {
  const id = message.task_id;
  if (!id) return;
  const known = cards.get(id);
  if (!known) {
    // An event for a job this page has not seen (submitted elsewhere or before the POST returned): read it.
    createCard(id);
    refreshTask(id);
  }
  const card = cards.get(id);
  if (message.type === "status") {
    const update = { status: message.status };
    for (const key of ["queue_position", "node_id", "error", "progress"]) {
      if (key in message) update[key] = message[key];
    }
    if (message.status === "completed") {
      update.progress = 1;
      if (!card.task.results || !card.task.results.length) refreshTask(id);
    }
    trackTask({ task_id: id, ...update });
  } else if (message.type === "progress") {
    trackTask({ task_id: id, status: "running", progress: message.progress, current_step: message.step,
      total_steps: message.total, queue_position: null });
  } else if (message.type === "preview") {
    showPreview(card, message.image);
  } else if (message.type === "result") {
    trackTask({ task_id: id, results: message.results });
  }
}

/** Bring every unfinished card up to date from the REST API (after a reconnect or a re-sign-in). */
export async function refreshOpenTasks() {
  const open = [...cards.values()].filter((card) => !FINAL.has(card.task.status)).map((card) => card.task.task_id);
  await Promise.all(open.map(refreshTask));
}

async function refreshTask(id) {
  try {
    trackTask(await api.getTask(id));
  } catch (error) {
    if (!(error instanceof api.SessionExpired)) notify(`Could not refresh job ${id}: ${error.message}`);
  }
}

function createCard(id) {
  const node = el("li", { cls: "job", attrs: { "data-task-id": id } }, [
    el("div", { cls: "job-head" }, [
      el("strong", { cls: "job-type" }),
      el("span", { cls: "job-status", attrs: { "data-testid": "job-status" } }),
    ]),
    el("p", { cls: "job-prompt" }),
    el("progress", { attrs: { max: "100", value: "0" } }),
    el("span", { cls: "job-progress-text", attrs: { "aria-live": "polite" } }),
    el("p", { cls: "job-queue" }),
    el("p", { cls: "job-error error" }),
    el("img", { cls: "job-preview", attrs: { alt: "preview of the job in progress", hidden: true } }),
    el("div", { cls: "job-results" }),
    el("button", { text: "Cancel", cls: "job-cancel danger", attrs: { type: "button" } }),
  ]);
  $(".job-cancel", node).addEventListener("click", () => cancel(id));
  $("#job-list").prepend(node);
  show($("#jobs-empty"), false);
  const card = { node, task: { task_id: id, status: "pending", progress: 0 }, shownResults: 0 };
  cards.set(id, card);
  return card;
}

function render(card) {
  const { node, task } = card;
  node.dataset.status = task.status;
  $(".job-type", node).textContent = task.task_type ? label(task.task_type) : "Job";
  $(".job-status", node).textContent = label(task.status || "");
  const prompt = task.params && task.params.prompt;
  $(".job-prompt", node).textContent = prompt || "";
  const percent = Math.round(100 * Math.min(1, Math.max(0, Number(task.progress) || 0)));
  $("progress", node).value = percent;
  const steps = task.current_step && task.total_steps ? ` — step ${task.current_step} of ${task.total_steps}` : "";
  $(".job-progress-text", node).textContent = `${percent}%${steps}`;
  const waiting = task.status === "pending" || task.status === "queued";
  const position = waiting && task.queue_position ? `Waiting in queue: position ${task.queue_position}` : "";
  $(".job-queue", node).textContent = position || (waiting ? "Waiting in queue" : "");
  $(".job-error", node).textContent = task.error ? `Failed: ${task.error}` : "";
  show($(".job-cancel", node), !FINAL.has(task.status));
  renderResults(card);
}

function renderResults(card) {
  const results = card.task.results || [];
  if (results.length === card.shownResults) return;
  card.shownResults = results.length;
  $(".job-results", card.node).replaceChildren(...results.map((result) => resultFigure(result)));
  if (results.length) show($(".job-preview", card.node), false);
}

function showPreview(card, image) {
  // Only inline images are accepted as previews: a URL from a message never leads anywhere else.
  if (typeof image !== "string" || !image.startsWith("data:image/")) return;
  if (FINAL.has(card.task.status)) return;
  const preview = $(".job-preview", card.node);
  preview.src = image;
  show(preview, true);
}

async function cancel(id) {
  const button = $(".job-cancel", cards.get(id).node);
  button.disabled = true;
  try {
    trackTask(await api.cancelTask(id));
  } catch (error) {
    if (!(error instanceof api.SessionExpired)) notify(`Could not cancel the job: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}
