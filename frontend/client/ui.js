/** Small DOM helpers: elements are built with textContent and attributes only, never from HTML strings. */

/** Create an element: `el("p", { class: "x", text: userValue, attrs: { "data-id": id } }, [children])`. */
export function el(tag, { text, cls, attrs = {}, on = {} } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const [event, handler] of Object.entries(on)) node.addEventListener(event, handler);
  for (const child of children) if (child) node.append(child);
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function show(node, visible = true) {
  node.hidden = !visible;
}

/** Human label of a task type: text_to_image -> "Text to image". */
export function label(name) {
  const words = String(name).replaceAll("_", " ").replaceAll("-", " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

let noticeTimer = null;

/** The page-wide message line: errors stay until dismissed or replaced, information fades. */
export function notify(message, { kind = "error" } = {}) {
  const notice = $("#notice");
  $("#notice-text").textContent = message;
  notice.dataset.kind = kind;
  show(notice, true);
  clearTimeout(noticeTimer);
  if (kind !== "error") noticeTimer = setTimeout(() => show(notice, false), 5000);
}

export function clearNotice() {
  show($("#notice"), false);
}

/** The connection line under the header: live updates lost / reconnecting / back. */
export function connectionState(message, kind) {
  const line = $("#connection");
  line.textContent = message;
  line.dataset.kind = kind || "";
  show(line, Boolean(message));
}
