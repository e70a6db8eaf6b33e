// The Admin view, built only for admins: live server charts from `stats_update` pushes,
// the connection list with a disconnect button each, and forms that send notifications.
// HTTP calls go through the dev admin proxy with the admin's own token.

import { $, el, run, timeEl, toast } from "./dom.js";
import { LineChart } from "./chart.js";

const REFRESH_MS = 5000;
const count = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

export function setupAdmin({ client, state, api, addView }) {
  addView("admin", "Admin", $("#admin-template").content.cloneNode(true));
  const view = $("#view-admin");

  const charts = [
    { id: "connections", series: [{ key: "connections", label: "connections" }, { key: "users", label: "users" }] },
    { id: "rooms", series: [{ key: "rooms", label: "rooms" }] },
    { id: "messages", series: [{ key: "messagesInPerSec", label: "in/s" }, { key: "messagesOutPerSec", label: "out/s" }] },
  ].map(({ id, series }) =>
    ({ series, chart: new LineChart($(`#chart-${id}`), $(`#legend-${id}`), { series, format: count, zero: true }) }));

  client.on("stats_update", (stats) => {
    for (const { series, chart } of charts) {
      for (const { key } of series) chart.push(key, stats.timestamp, Number(stats[key]));
    }
  });

  let refreshes = 0; // the latest request: an older answer that comes later is dropped

  async function refreshConnections() {
    const seq = ++refreshes;
    const { items } = await api.get("/dev/admin/connections");
    if (seq !== refreshes) return;
    const empty = el("tr", {}, el("td", { colspan: 6, class: "empty", text: "No connections" }));
    $("#connections").replaceChildren(...(items.length ? items.map(connectionEl) : [empty]));
    $("#connections-updated").replaceChildren("Updated ", timeEl(Date.now(), true));
  }

  function connectionEl(c) {
    const mine = c.clientId === state.clientId;
    return el("tr", { class: "connection", data: { client: c.clientId } },
      el("td", {},
        el("span", { class: "user", title: c.user?.userId, text: c.user ? c.user.userId : "(not authenticated)" }),
        c.user?.name && c.user.name !== c.user.userId ? el("span", { class: "muted", text: ` ${c.user.name}` }) : null,
        mine ? el("span", { class: "tag", text: "this tab" }) : null),
      el("td", { class: "rooms" }, ...roomTags(c.rooms)),
      el("td", { class: "addr wide-only", text: c.remoteAddr ?? "" }),
      el("td", { class: "wide-only" }, timeEl(c.connectedAt, true)),
      el("td", { class: "num wide-only", text: `${c.messagesIn ?? 0} / ${c.messagesOut ?? 0}` }),
      el("td", {}, el("button", { type: "button", class: "disconnect danger small", text: "Disconnect" })));
  }

  async function disconnect(clientId) {
    const { disconnected } = await api.delete(`/dev/admin/connections/${encodeURIComponent(clientId)}`);
    toast(disconnected ? "Disconnected." : "That connection was already gone.");
    await refreshConnections();
  }

  $("#connections").addEventListener("click", (event) => {
    const clientId = event.target.closest(".disconnect") && event.target.closest("[data-client]")?.dataset.client;
    if (clientId) run(disconnect(clientId));
  });
  $("#connections-refresh").addEventListener("click", () => {
    if (state.connection === "open") run(refreshConnections());
    else toast("Offline: the list refreshes once the connection is back.");
  });

  /**
   * Polls only while the list is on screen and the socket is open: while the server is
   * down every fetch would fail, and Chromium logs each failed fetch as a console error.
   * Opening the view, and the connection coming back, refresh at once.
   */
  function refreshIfShown() {
    if (!view.hidden && !document.hidden && state.connection === "open") run(refreshConnections());
  }

  setInterval(refreshIfShown, REFRESH_MS);
  new MutationObserver(refreshIfShown).observe(view, { attributes: true, attributeFilter: ["hidden"] });
  // app.js sets state.connection before the SDK emits auth_ok, so the check passes here.
  client.on("auth_ok", refreshIfShown);

  // Fields by `form.elements`: `form.title` would be the form's own title attribute.
  onSubmit("#notify-form", async ({ elements: { userId, title, content, priority } }) => {
    const body = { userId: userId.value.trim(), title: title.value, content: content.value, priority: priority.value };
    const { delivered } = await api.post("/dev/admin/notify", body);
    toast(`Notification stored for ${body.userId}; delivered to ${delivered} connection(s).`);
  });
  onSubmit("#notify-all-form", async ({ elements: { title, content } }) => {
    const { delivered } = await api.post("/dev/admin/notify_all", { title: title.value, content: content.value });
    toast(`Global notification delivered to ${delivered} connection(s).`);
  });
}

/** One tag per room, spaced so the cell's text still reads "lobby game-1". */
function roomTags(rooms = []) {
  if (!rooms.length) return ["—"];
  return rooms.flatMap((room, i) => [i ? " " : null, el("span", { class: "tag", text: room })]);
}

/** Runs `send(form)` on submit; the form clears only once the server accepted it. */
function onSubmit(selector, send) {
  const form = $(selector);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(send(form).then(() => form.reset()));
  });
}
