// DOM helpers shared by the views. Every piece of user data goes into the page as text
// (textContent or text nodes), never as HTML.

export const $ = (selector) => document.querySelector(selector);

/**
 * Builds an element. `props`: `class`, `text` (textContent), `data` (dataset entries),
 * `on` (event listeners); any other key becomes an attribute, or is skipped when it is
 * null, undefined or false. String children become text nodes.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "data") Object.assign(node.dataset, value);
    else if (key === "on") for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child != null && child !== false));
  return node;
}

/** Chat content is any JSON value: strings show as they are, anything else as its JSON. */
function contentText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Message ids are 16 hex digits, so string order is the server's acceptance order. */
export const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export const displayName = (user) => user?.name || user?.userId || "?";

export function timeEl(timestamp, withSeconds = false) {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return el("time", { class: "time" });
  const text = date.toLocaleTimeString([], {
    hour: "2-digit", minute: "2-digit", ...(withSeconds && { second: "2-digit" }),
  });
  return el("time", { class: "time", datetime: date.toISOString(), title: date.toLocaleString(), text });
}

/** One chat or private message, with the classes the tests look for. */
export function messageEl(message, mine) {
  return el("li", { class: mine ? "message mine" : "message", data: { id: message.id } },
    el("div", { class: "meta" },
      el("span", { class: "sender", title: message.from?.userId, text: displayName(message.from) }),
      timeEl(message.timestamp)),
    el("div", { class: "text", text: contentText(message.message) }));
}

/** Shows `items` in `list`, or one muted line when there are none. */
export function fillList(list, items, emptyText) {
  list.replaceChildren(...(items.length ? items : [el("li", { class: "empty", text: emptyText })]));
}

/** Replaces a list's content and keeps it scrolled to the end if it was there already. */
export function fillScrolled(list, items, emptyText, forceBottom = false) {
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
  fillList(list, items, emptyText);
  if (atBottom || forceBottom) list.scrollTop = list.scrollHeight;
}

let toastTimer = 0;

/** The status line at the bottom of the page: errors stay longer than news. */
export function toast(text, kind = "info") {
  const line = $("#toast");
  line.textContent = text;
  line.dataset.kind = kind;
  line.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { line.hidden = true; }, kind === "error" ? 8000 : 4000);
}

export function report(error) {
  const code = error?.code ? `${error.code}: ` : "";
  toast(`${code}${error?.message ?? error}`, "error");
}

/** Runs a promise for its effect; a rejection goes to the status line, not the console. */
export function run(promise) {
  Promise.resolve(promise).catch(report);
}
