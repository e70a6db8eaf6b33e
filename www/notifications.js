// Notifications: the bell's unread count, the list with mark-as-read, and banners for
// global notifications. A notification turns read only when the server says so (the
// markRead reply or `notification_read`, which every tab of the user gets), so all
// tabs agree.

import { $, el, byId, fillList, run, timeEl, toast } from "./dom.js";

export function setupNotifications({ client, state, api }) {
  const notifications = (state.notifications = new Map());

  function add(notification, { announce = false } = {}) {
    const known = notifications.get(notification.id);
    notifications.set(notification.id, { ...notification, read: Boolean(known?.read || notification.read) });
    if (announce && !known && !notification.read) toast(`New notification: ${notification.title}`);
  }

  function markedRead(id) {
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
    const { items } = await api.get("/dev/notifications?limit=50");
    items.forEach((notification) => add(notification));
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
  $("#banners").append(banner);
}
