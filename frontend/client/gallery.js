/** The client's own finished results, newest first, with download and "use as input". */

import * as api from "./api.js";
import { resultBlob, resultFigure } from "./results.js";
import { $, el, label, notify, show } from "./ui.js";

const INPUT_TYPE = "image_to_video"; // where "use as input" goes
let useAsInput = async () => {};

export function initGallery({ preselect }) {
  useAsInput = preselect;
  $("#gallery-refresh").addEventListener("click", () => loadGallery());
}

export async function loadGallery() {
  try {
    const page = await api.listTasks({ status: "completed", limit: 48 });
    const items = page.items.flatMap((task) => task.results.map((result) => item(task, result)));
    $("#gallery-grid").replaceChildren(...items);
    show($("#gallery-empty"), items.length === 0);
  } catch (error) {
    if (!(error instanceof api.SessionExpired)) notify(`Could not load your results: ${error.message}`);
  }
}

function item(task, result) {
  const actions = [];
  if (result.kind === "image" && String(result.content_type).startsWith("image/")) {
    actions.push(
      el("button", {
        text: `Use as input (${label(INPUT_TYPE)})`,
        cls: "use-input",
        attrs: { type: "button" },
        on: { click: () => startFrom(result) },
      }),
    );
  }
  const figure = resultFigure(result, { actions });
  figure.dataset.taskId = task.task_id;
  figure.prepend(el("p", { cls: "result-prompt", text: (task.params && task.params.prompt) || label(task.task_type) }));
  return figure;
}

async function startFrom(result) {
  try {
    const { blob } = await resultBlob(result);
    await useAsInput(INPUT_TYPE, blob, result.filename);
  } catch (error) {
    if (!(error instanceof api.SessionExpired)) notify(`Could not use that result: ${error.message}`);
  }
}
