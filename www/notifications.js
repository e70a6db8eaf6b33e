// Notifications: the bell's unread count, the list with mark-as-read, and banners for
// global notifications. A notification turns read only when the server says so (the
// markRead reply or `notification_read`, which every tab of the user gets), so all
// tabs agree.

import { $, el, byId, fillList, run, timeEl, toast } from "./dom.js";

/** Global banners on screen at once; a new one pushes out the oldest. */
const MAX_BANNERS = 5;

export function setupNotifications({ client, state, api }) {
  const notifications = (state.notifications = new Map());
  // Ids the server said are read (events and markRead replies). A read can arrive
  // before the notification itself is known (a `notification_read` racing the stored
  // list), and reading is final, so it applies whenever the notification is added.
  const readIds = new Set();
  let loads = 0; // the latest load(), so an older, slower answer is dropped

  /** `fromServer`: a stored copy, whose `read` replaces what the page had. */
  function add(notification, { announce = false, fromServer = false } = {}) {
    const known = notifications.get(notification.id);
    const read = readIds.has(notification.id) || Boolean(notification.read || (!fromServer && known?.read));
    notifications.set(notification.id, { ...notification, read });
    if (announce && !known && !read) toast(`New notification: ${notification.title}`);
  }

  function markedRead(id) {
    readIds.add(id);
    const notification = notifications.get(id);
    if (!notification || notification.read) return;
    notification.read = true;
    render();
  }

  client.on("notification", (notification) => {
    add(notification, { announce: true });
    render();
  });
  client.on("notification_read", ({ notificationId }) => markedRead(notificationId));
  client.on("global_notification", showBanner);

  // While the socket was down, other tabs may have read notifications (their
  // `notification_read` is lost to us), so each reconnect reloads the stored list. The
  // first auth_ok needs none: the page loads the list as it starts.
  let authCount = 0;
  client.on("auth_ok", () => {
    if (++authCount > 1) run(load());
  });

  $("#notifications").addEventListener("click", (event) => {
    const id = event.target.closest(".mark-read") && event.target.closest("[data-id]")?.dataset.id;
    if (id) run(client.markRead(id).then((reply) => markedRead(reply.notificationId)));
  });

  function render() {
    const sorted = [...notifications.values()].sort(byId).reverse();
    fillList($("#notifications"), sorted.map(notificationEl), "No notifications");
    const unread = sorted.filter((n) => !n.read).length;
    $("#unread-count").textContent = String(unread);
    $("#unread-count").hidden = unread === 0;
    $("#bell").setAttribute("aria-label", `Notifications, ${unread} unread`);
    document.title = unread ? `(${unread}) Roomcast demo` : "Roomcast demo";
  }

  /** The user's stored notifications, so a fresh tab starts with the right count. */
  async function load() {
    const seq = ++loads;
    const { items } = await api.get("/dev/notifications?limit=50");
    if (seq !== loads) return;
    items.forEach((notification) => add(notification, { fromServer: true }));
    render();
  }

  render();
  run(load());
}

function notificationEl(n) {
  return el("li", { class: n.read ? "notification" : "notification unread", data: { id: n.id } },
    el("div", { class: "head" },
      el("span", { class: "title", text: n.title }),
      n.priority && n.priority !== "normal" ? el("span", { class: `priority ${n.priority}`, text: n.priority }) : null,
      timeEl(n.timestamp)),
    el("p", { class: "content", text: n.content }),
    n.read ? null : el("button", { type: "button", class: "mark-read", text: "Mark as read" }));
}

function showBanner(notification) {
  const banner = el("div", { class: "banner", role: "alert", data: { id: notification.id } },
    el("div", {},
      el("strong", { class: "title", text: notification.title }), " ",
      el("span", { class: "content", text: notification.content })),
    el("button", { type: "button", class: "close", "aria-label": "Dismiss", text: "×",
      on: { click: () => banner.remove() } }));
  const banners = $("#banners");
  banners.append(banner);
  while (banners.children.length > MAX_BANNERS) banners.firstElementChild.remove();
}
