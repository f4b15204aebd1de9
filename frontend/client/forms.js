/** Generation forms, one per task type, built from GET /api/v2/workflows: a new workflow needs no code here. */

import * as api from "./api.js";
import { $, el, label, notify, show } from "./ui.js";

const IMAGE_TYPES = "image/png,image/jpeg,image/webp";
let catalog = { task_types: {} };
let currentType = null;
let onSubmitted = () => {};

export async function initForms({ submitted }) {
  onSubmitted = submitted;
  catalog = await api.listWorkflows();
  const tabs = $("#type-tabs");
  tabs.replaceChildren();
  for (const taskType of Object.keys(catalog.task_types)) {
    tabs.append(
      el("button", {
        text: label(taskType),
        attrs: { type: "button", role: "tab", "data-type": taskType, "aria-selected": "false" },
        on: { click: () => selectType(taskType) },
      }),
    );
  }
  const first = Object.keys(catalog.task_types)[0];
  if (first && !currentType) selectType(first);
  else if (currentType) selectType(currentType);
}

export function taskTypes() {
  return Object.keys(catalog.task_types);
}

/** Switch the form to a task type; choosing the type already shown keeps what was filled in. */
export function selectType(taskType, { workflow } = {}) {
  const info = catalog.task_types[taskType];
  if (!info) return;
  if (taskType === currentType && !workflow && $("#fields").childElementCount) return;
  currentType = taskType;
  for (const tab of $("#type-tabs").children) {
    tab.setAttribute("aria-selected", String(tab.dataset.type === taskType));
  }
  const select = $("#workflow-select");
  select.replaceChildren(
    ...Object.keys(info.workflows).map((name) => el("option", { text: name, attrs: { value: name } })),
  );
  select.value = workflow || info.default_workflow;
  show($("#workflow-row"), Object.keys(info.workflows).length > 1);
  renderFields();
}

function workflowInfo() {
  return catalog.task_types[currentType].workflows[$("#workflow-select").value];
}

function renderFields() {
  const workflow = workflowInfo();
  $("#workflow-description").textContent = workflow.description || "";
  $("#form-error").textContent = "";
  const fields = $("#fields");
  fields.replaceChildren(...workflow.parameters.map(field));
}

function field(param) {
  const id = `param-${param.name}`;
  const wrapper = el("div", { cls: `field field-${param.type}`, attrs: { "data-param": param.name } });
  wrapper.append(el("label", { text: label(param.name), attrs: { for: id } }));
  wrapper.append(param.type === "image" ? imageInput(param, id) : valueInput(param, id));
  if (param.description) wrapper.append(el("small", { text: param.description }));
  wrapper.append(el("span", { cls: "field-error", attrs: { "aria-live": "polite" } }));
  return wrapper;
}

function valueInput(param, id) {
  const required = param.required && (param.default === null || param.default === undefined);
  if (Array.isArray(param.choices) && param.choices.length) {
    const select = el("select", { attrs: { id, name: param.name } },
      param.choices.map((choice) => el("option", { text: choice, attrs: { value: choice } })));
    if (param.default !== null && param.default !== undefined) select.value = String(param.default);
    return select;
  }
  if (param.type === "boolean") {
    return el("input", { attrs: { id, name: param.name, type: "checkbox", checked: Boolean(param.default) } });
  }
  if (param.type === "integer" || param.type === "number") {
    const input = el("input", {
      attrs: { id, name: param.name, type: "number", step: param.type === "integer" ? "1" : "any", required },
    });
    // A default outside the bounds is a sentinel (seed -1 = random): the bound must not reject it.
    const fallback = param.default ?? "";
    if (param.minimum !== null && param.minimum !== undefined) {
      input.min = String(fallback !== "" ? Math.min(param.minimum, fallback) : param.minimum);
    }
    if (param.maximum !== null && param.maximum !== undefined) input.max = String(param.maximum);
    input.value = String(fallback);
    return input;
  }
  const long = /prompt/i.test(param.name);
  const input = el(long ? "textarea" : "input", { attrs: { id, name: param.name, required, rows: long ? 3 : null } });
  input.value = param.default ?? "";
  return input;
}

function imageInput(param, id) {
  const box = el("div", { cls: "image-input" });
  const hidden = el("input", { attrs: { type: "hidden", name: param.name, "data-upload": "" } });
  const preview = el("img", { cls: "preview", attrs: { alt: "selected image", hidden: true } });
  const state = el("span", { cls: "upload-state" });
  const file = el("input", { attrs: { id, type: "file", accept: IMAGE_TYPES } });
  file.addEventListener("change", async () => {
    const chosen = file.files[0];
    if (chosen) await useImage(box, chosen, chosen.name);
  });
  box.append(file, hidden, preview, state);
  return box;
}

/** Upload a file or blob for the image field in `box` and show it; the field then carries the upload id. */
async function useImage(box, blob, filename) {
  const hidden = $("input[data-upload]", box);
  const preview = $("img.preview", box);
  const state = $(".upload-state", box);
  hidden.value = "";
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(blob);
  show(preview, true);
  state.textContent = "Uploading…";
  try {
    const upload = await api.uploadImage(blob, filename);
    hidden.value = upload.upload_id;
    state.textContent = `Uploaded ${upload.width || "?"}×${upload.height || "?"}`;
  } catch (error) {
    state.textContent = `Upload failed: ${error.message}`;
    if (!(error instanceof api.SessionExpired)) notify(`Upload failed: ${error.message}`);
  }
}

/** "Use as input": switch to a task type taking an image and preselect `blob` there. */
export async function preselectImage(taskType, blob, filename) {
  selectType(taskType);
  const box = $(".image-input", $("#fields"));
  if (!box) return;
  $("#create").scrollIntoView({ behavior: "smooth" });
  await useImage(box, blob, filename);
}

function collect() {
  const body = {};
  const missing = [];
  for (const param of workflowInfo().parameters) {
    const wrapper = $(`[data-param="${CSS.escape(param.name)}"]`, $("#fields"));
    const input = $(`[name="${CSS.escape(param.name)}"]`, wrapper);
    const value = readValue(param, input);
    if (value === undefined) {
      if (param.required || (param.type === "image" && param.default == null)) missing.push(param.name);
      continue;
    }
    body[param.name] = value;
  }
  return { body, missing };
}

function readValue(param, input) {
  if (param.type === "boolean" && input.type === "checkbox") return input.checked;
  const raw = input.value;
  if (raw === "" || raw === null) return undefined;
  if (param.type === "integer") return Number.parseInt(raw, 10);
  if (param.type === "number") return Number.parseFloat(raw);
  return raw;
}

function markFields(fields) {
  for (const node of document.querySelectorAll("#fields .field-error")) node.textContent = "";
  for (const { field, message } of fields) {
    const wrapper = $(`[data-param="${CSS.escape(String(field))}"]`, $("#fields"));
    if (wrapper) $(".field-error", wrapper).textContent = message;
  }
}

export function initSubmit() {
  $("#job-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const { body, missing } = collect();
    markFields(missing.map((name) => ({ field: name, message: "required" })));
    if (missing.length) {
      $("#form-error").textContent = `Please fill in: ${missing.map(label).join(", ")}`;
      return;
    }
    body.workflow_name = $("#workflow-select").value;
    body.priority = $("#priority").value;
    $("#form-error").textContent = "";
    const button = $("#submit-job");
    button.disabled = true;
    try {
      onSubmitted(await api.submitTask(currentType, body));
    } catch (error) {
      markFields(error.fields || []);
      $("#form-error").textContent = `Could not start the job: ${error.message}`;
      if (error.status >= 500 || error.status === 0) notify(error.message);
    } finally {
      button.disabled = false;
    }
  });
  $("#workflow-select").addEventListener("change", renderFields);
}
