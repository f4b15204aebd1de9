/** The client page: wires sign-in, forms, live jobs and the gallery together, and recovers from failures. */

import * as api from "./api.js";
import { initAuth, showSignIn } from "./auth.js";
import { initForms, initSubmit, preselectImage } from "./forms.js";
import { initGallery, loadGallery } from "./gallery.js";
import { applyMessage, clearJobs, initJobs, refreshOpenTasks, trackTask } from "./jobs.js";
import { forgetResults } from "./results.js";
import { $, clearNotice, connectionState, notify, show } from "./ui.js";

let stream = null;
let started = false;
let lastClientId = null;

function startStream() {
  if (stream) stream.close();
  stream = api.openTaskStream({ onMessage: applyMessage, onState: streamState });
}

function streamState(state, delay) {
  if (state === "lost") {
    connectionState(`Live updates lost. Reconnecting in ${Math.round(delay / 1000)} s…`, "lost");
    show($("#connection-retry"), true);
  } else if (state === "open") {
    const wasLost = $("#connection").dataset.kind === "lost";
    connectionState(wasLost ? "Live updates reconnected." : "", "ok");
    show($("#connection-retry"), false);
    if (wasLost) {
      // Events sent while we were away are gone: read the state again.
      refreshOpenTasks();
      loadGallery();
    }
  }
}

async function enterApp() {
  const session = api.currentSession();
  show($("#signin-view"), false);
  show($("#app-view"), true);
  show($("#account"), true);
  $("#account-name").textContent = session ? session.clientId : "";
  if (session && lastClientId && session.clientId !== lastClientId) {
    clearJobs(); // another client signed in after a re-auth prompt: the previous one's jobs are not theirs
    forgetResults();
  }
  lastClientId = session ? session.clientId : null;
  clearNotice();
  try {
    if (!started) await initForms({ submitted: (task) => trackTask(task) });
    started = true;
  } catch (error) {
    if (!(error instanceof api.SessionExpired)) notify(`Could not load the generation types: ${error.message}`);
  }
  startStream();
  await Promise.all([refreshOpenTasks(), loadGallery()]);
}

function leaveApp() {
  if (stream) stream.close();
  stream = null;
  connectionState("", "");
}

function boot() {
  initAuth({ onSignedIn: enterApp });
  initSubmit();
  initJobs({ finished: (task) => (task.status === "completed" ? loadGallery() : null) });
  initGallery({ preselect: preselectImage });
  api.onSessionExpired((error) => {
    leaveApp();
    showSignIn({ reason: error.message, clientId: error.clientId });
  });
  $("#sign-out").addEventListener("click", () => {
    api.signOut();
    leaveApp();
    clearJobs();
    forgetResults();
    started = false;
    showSignIn();
  });
  $("#notice-close").addEventListener("click", clearNotice);
  $("#connection-retry").addEventListener("click", startStream);
  window.addEventListener("unhandledrejection", (event) => {
    // A failure nobody caught still gets a message; the page keeps working.
    if (!(event.reason instanceof api.SessionExpired)) notify(String(event.reason?.message || event.reason));
  });
  if (api.sessionIsFresh()) enterApp();
  else if (api.currentSession()) {
    const { clientId } = api.currentSession();
    api.signOut();
    showSignIn({ reason: "Your session has expired. Please sign in again.", clientId });
  } else showSignIn();
}

boot();
