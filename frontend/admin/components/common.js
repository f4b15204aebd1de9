/** Pieces every view uses: the live-update pulse, feedback for actions, and the status badge. */

import { ApiError } from "../api.js";
import { tone } from "./format.js";

const { ref, inject, watch, onMounted } = window.Vue;

/**
 * Run `load` now and again whenever the dashboard hears that something changed. Loads never overlap: a change
 * heard during one queues one more, so a slow answer read before the change cannot land after a fresh one.
 */
export function useLiveLoad(load) {
  const pulse = inject("pulse");
  const loadError = ref("");
  const loaded = ref(false);
  let inFlight = null;
  let again = false;
  const loadUntilCurrent = async () => {
    do {
      again = false;
      try {
        await load();
        loadError.value = "";
      } catch (error) {
        loadError.value = messageOf(error);
      }
    } while (again);
    loaded.value = true;
  };
  const run = async () => {
    if (inFlight) {
      again = true;
      return inFlight;
    }
    inFlight = loadUntilCurrent();
    try {
      await inFlight;
    } finally {
      inFlight = null;
    }
  };
  onMounted(run);
  watch(pulse, run);
  return { loadError, loaded, reload: run };
}

/** `run(action, successText)`: a button's work, with its outcome shown as a notice or an error. */
export function useFeedback() {
  const error = ref("");
  const notice = ref("");
  const busy = ref(false);
  const run = async (action, successText = "") => {
    busy.value = true;
    error.value = "";
    notice.value = "";
    try {
      const result = await action();
      notice.value = typeof successText === "function" ? successText(result) : successText;
      return result;
    } catch (failure) {
      error.value = messageOf(failure);
      return undefined;
    } finally {
      busy.value = false;
    }
  };
  return { error, notice, busy, run };
}

export function messageOf(error) {
  if (error instanceof ApiError) {
    if (error.status === 403) return `Not allowed: ${error.message}`;
    return error.message;
  }
  return String(error?.message || error);
}

export const StatusBadge = {
  name: "StatusBadge",
  props: { state: { type: String, default: "" }, label: { type: String, default: "" } },
  setup: () => ({ tone }),
  template: `<span class="badge" :class="tone(state)" :data-state="state">{{ label || state || "—" }}</span>`,
};

export const Feedback = {
  name: "Feedback",
  props: { error: String, notice: String },
  template: `
    <p v-if="error" class="message error" role="alert">{{ error }}</p>
    <p v-if="notice" class="message notice" role="status">{{ notice }}</p>`,
};
