// DOM helpers shared by the views. Every piece of user data goes into the page as text
// (textContent or text nodes), never as HTML.

export const $ = (selector) => document.querySelector(selector);

/**
 * Attributes `el()` refuses: an inline handler runs its value as code, and a URL can be
 * `javascript:`. Values here are often user data, so no such attribute is ever set
 * through `el()`; listeners go through `on`.
 */
const UNSAFE_ATTRIBUTE = /^(on.+|href|src|srcdoc|action|formaction|xlink:href)$/i;

/**
 * Builds an element. `props`: `class`, `text` (textContent), `data` (dataset entries),
 * `on` (event listeners); any other key becomes an attribute, or is skipped when it is
 * null, undefined or false. String children become text nodes. Throws for a handler or
 * URL attribute (see UNSAFE_ATTRIBUTE), whatever its value.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (UNSAFE_ATTRIBUTE.test(key)) throw new Error(`el(): the attribute "${key}" is not allowed`);
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

const isAtBottom = (list) => list.scrollHeight - list.scrollTop - list.clientHeight < 48;

/** Replaces a list's content and keeps it scrolled to the end if it was there already. */
export function fillScrolled(list, items, emptyText, forceBottom = false) {
  const atBottom = isAtBottom(list);
  fillList(list, items, emptyText);
  if (atBottom || forceBottom) list.scrollTop = list.scrollHeight;
}

/** Adds one item at the end of a list, with the same scrolling as fillScrolled. */
export function appendScrolled(list, item, forceBottom = false) {
  const atBottom = isAtBottom(list);
  list.append(item);
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

/**
 * Every error the page reported, oldest first, as `{ message, code }` (code null when
 * there is none): app.js exposes it as `window.roomcast.errors`, so tests can see what
 * the user saw. Not logged: these are feedback to the user (a refused room, an offline
 * send), not faults of the page, and tests treat console errors as faults.
 */
export const errors = [];
const MAX_ERRORS = 200;

/** Records an error and shows it on the status line. */
export function report(error) {
  const entry = recordError(error);
  toast(entry.code ? `${entry.code}: ${entry.message}` : entry.message, "error");
}

/** Records an error shown elsewhere (the sign-in form shows its own); returns the entry. */
export function recordError(error) {
  const entry = { message: String(error?.message ?? error), code: error?.code ?? null };
  errors.push(entry);
  if (errors.length > MAX_ERRORS) errors.shift(); // a page left open for days stays small
  return entry;
}

/** Runs a promise for its effect; a rejection goes to the status line, not the console. */
export function run(promise) {
  Promise.resolve(promise).catch(report);
}
