// The Chat view: rooms (join, leave, history), the selected room's messages and members,
// and private conversations with members. Messages are kept per room in a Map keyed by
// id, so history, live chats and replays after a reconnect merge without doubles, and
// the list is always shown sorted by id. A live chat newer than the last one shown is
// appended; history merges and out-of-order chats redraw the list. A conversation is
// kept the same way, but keyed by id and `to` (each direction numbers its messages
// apart, so both can have an id) and shown in the server's order for it; opening it
// loads its stored history, so it survives a reload.

import { $, el, appendScrolled, byId, displayName, fillList, fillScrolled, messageEl, report, run, toast } from "./dom.js";

/** A private message's key in its conversation: its id names it only with its `to`. */
const privateKey = (message) => `${message.id} ${message.to}`; // ids have no spaces

const compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * A conversation's order, the one `privateHistory` pages in: timestamp, then `to`, then
 * id. (JS compares strings by UTF-16 units, the server by UTF-8 bytes: they disagree
 * only on a tie between user ids that differ past U+FFFF, which just swaps two messages
 * of one millisecond.)
 */
const byConversation = (a, b) => a.timestamp - b.timestamp || compare(a.to, b.to) || compare(a.id, b.id);

const QUICK_ROOMS = ["lobby", "random", "support"];
const HISTORY_LIMIT = 50;
/** Messages kept per room and per private conversation; the oldest go first. */
const MAX_MESSAGES = 500;
/** History pages fetched to fill a gap after a reconnect (10 × 50 = MAX_MESSAGES). */
const GAP_PAGES = 10;

/** `keepJoined`: rooms another view needs; leaving them here only hides them. */
export function setupChat({ client, state, keepJoined }) {
  const chat = (state.chat = { rooms: new Map(), selected: null, conversations: new Map(), privateWith: null });
  const isMe = (userId) => userId === state.me.userId;

  // --- rooms -------------------------------------------------------------------------

  /**
   * Each join makes a new room object. After join, leave, join of one room, the first
   * join's late outcome must not touch the second's room: outcomes act only while their
   * room is still the current one (`isCurrent`).
   */
  async function joinRoom(name) {
    if (chat.rooms.has(name)) return selectRoom(name);
    const room = { messages: new Map(), members: new Map(), count: 0, more: null, unread: 0, mark: null };
    chat.rooms.set(name, room);
    selectRoom(name);
    try {
      await client.join(name);
    } catch (error) {
      if (!isCurrent(name, room)) return; // left (and maybe joined again) meanwhile
      forgetRoom(name);
      throw error;
    }
    if (isCurrent(name, room)) await loadHistory(name, room);
  }

  const isCurrent = (name, room) => chat.rooms.get(name) === room;

  async function loadHistory(name, room) {
    const { items } = await client.history(name, { limit: HISTORY_LIMIT });
    if (!isCurrent(name, room)) return; // left while loading
    mergeHistory(name, room, items);
  }

  /**
   * After a rejoin that could not replay everything, fetches the chats between the last
   * one the page had before the drop (`room.mark`) and the oldest one it got since, page
   * by page backwards, until a page reaches the mark or the room's beginning. Bounded:
   * past GAP_PAGES pages the oldest would be dropped by the cap anyway.
   */
  async function fillGap(name, room) {
    const { mark } = room;
    const since = [...room.messages.keys()].filter((id) => mark == null || id > mark).sort();
    let before = since[0];
    const found = [];
    for (let page = 0; page < GAP_PAGES; page++) {
      const { items } = await client.history(name, { limit: HISTORY_LIMIT, ...(before && { before }) });
      if (!isCurrent(name, room)) return;
      found.push(...items);
      const reached = mark != null && items.some((message) => message.id <= mark);
      if (reached || items.length < HISTORY_LIMIT) break;
      before = items[0].id; // oldest first
    }
    mergeHistory(name, room, found);
  }

  /** Adds stored chats to a room; the list is drawn anew, as they may go anywhere in it. */
  function mergeHistory(name, room, items) {
    for (const message of items) room.messages.set(message.id, message);
    trim(room.messages);
    if (chat.selected === name) renderMessages(true);
  }

  async function leaveRoom(name) {
    forgetRoom(name);
    if (!keepJoined.has(name)) await client.leave(name);
  }

  function forgetRoom(name) {
    chat.rooms.delete(name);
    if (chat.selected === name) selectRoom(chat.rooms.keys().next().value ?? null);
    else renderRooms();
  }

  /** Shows room `name`, or none when it is null. */
  function selectRoom(name) {
    chat.selected = name;
    const room = chat.rooms.get(name);
    if (room) room.unread = 0;
    renderRoom();
  }

  /** Keeps the newest MAX_MESSAGES of a room's messages. */
  function trim(messages) {
    if (messages.size <= MAX_MESSAGES) return;
    const ids = [...messages.keys()].sort();
    for (const id of ids.slice(0, ids.length - MAX_MESSAGES)) messages.delete(id);
  }

  // --- private conversations ---------------------------------------------------------

  function conversation(user) {
    let conv = chat.conversations.get(user.userId);
    if (!conv) chat.conversations.set(user.userId, (conv = { user, messages: new Map(), unread: 0 }));
    if (user.name) conv.user = user;
    return conv;
  }

  /** Adds messages to a conversation, keeping its newest MAX_MESSAGES. */
  function addPrivate(conv, ...messages) {
    for (const message of messages) conv.messages.set(privateKey(message), message);
    if (conv.messages.size <= MAX_MESSAGES) return;
    const sorted = [...conv.messages.values()].sort(byConversation);
    for (const old of sorted.slice(0, sorted.length - MAX_MESSAGES)) conv.messages.delete(privateKey(old));
  }

  function openPrivate(user) {
    const conv = conversation(user);
    conv.unread = 0;
    chat.privateWith = user.userId;
    $("#private").hidden = false;
    renderPeople();
    renderPrivate(true);
    $("#private-input").focus();
    run(loadPrivateHistory(conv));
  }

  /**
   * The newest stored messages of a conversation, merged with what the page has: what was
   * said before a reload, or while this tab was away but another one of the user's got it
   * live (so it never waited for this one).
   */
  async function loadPrivateHistory(conv) {
    const { items } = await client.privateHistory(conv.user.userId, { limit: HISTORY_LIMIT });
    addPrivate(conv, ...items);
    if (chat.privateWith === conv.user.userId) renderPrivate();
  }

  async function sendPrivate(text) {
    const conv = chat.conversations.get(chat.privateWith);
    const reply = await client.sendPrivate(conv.user.userId, text);
    // The sending tab gets only the reply, not the `private` event: add it from the reply.
    addPrivate(conv, { id: reply.id, from: state.me, to: reply.targetUserId, message: text, timestamp: reply.timestamp });
    if (!reply.delivered) toast(`${displayName(conv.user)} is offline: they get it when they connect.`);
    if (chat.privateWith === conv.user.userId) renderPrivate(true);
  }

  // --- server events -----------------------------------------------------------------

  client.on("auth_ok", (message) => {
    // The newest chat each room had before the drop, where a gap would begin: the
    // rejoins (and their replays) come after this event.
    for (const room of chat.rooms.values()) room.mark = newestId(room.messages);
    // Default rooms the server put us in: show them too (the SDK does not rejoin them).
    for (const name of message.rooms ?? []) if (!chat.rooms.has(name)) run(joinRoom(name));
    // Back after a drop: what the open conversation got meanwhile (by other tabs) is stored.
    const open = chat.conversations.get(chat.privateWith);
    if (open) run(loadPrivateHistory(open));
  });

  client.on("chat", (message) => {
    const room = chat.rooms.get(message.room);
    if (!room) return;
    room.messages.set(message.id, message);
    trim(room.messages);
    if (chat.selected === message.room) showNewMessage(room, message);
    else {
      room.unread += 1;
      renderRooms();
    }
  });

  client.on("private", (message) => {
    // Our other tabs' messages go in the conversation with their recipient, never unread.
    const mine = isMe(message.from.userId);
    if (mine && isMe(message.to)) return; // a note to ourselves: no conversation to show
    const peer = mine ? { userId: message.to } : message.from;
    const conv = conversation(peer);
    addPrivate(conv, message);
    if (chat.privateWith === peer.userId) renderPrivate();
    else if (!mine) conv.unread += 1;
    renderPeople();
  });

  // A big room's user_list holds only its first users by id (and the true count): the
  // rest come a page at a time from `members`, after the last one listed ("Show more").
  client.on("user_list", ({ room, users, count }) => {
    const known = chat.rooms.get(room);
    if (!known) return;
    known.members = new Map(users.map((user) => [user.userId, user]));
    known.members.set(state.me.userId, state.me);
    known.count = count;
    known.more = count > users.length ? (users.at(-1)?.userId ?? "") : null;
    if (chat.selected === room) renderPeople();
  });
  client.on("user_join", ({ room, user }) => updateMember(room, (r) => {
    if (!r.members.has(user.userId)) r.count += 1;
    r.members.set(user.userId, user);
  }));
  client.on("user_leave", ({ room, user }) => updateMember(room, (r) => {
    r.count = Math.max(0, r.count - 1);
    r.members.delete(user.userId);
  }));

  function updateMember(name, change) {
    const room = chat.rooms.get(name);
    if (!room) return;
    change(room);
    if (chat.selected === name) renderPeople();
  }

  async function showMore() {
    const name = chat.selected;
    const room = chat.rooms.get(name);
    if (!room || room.more === null) return;
    const page = await client.members(name, room.more ? { after: room.more } : {});
    if (!isCurrent(name, room)) return;
    for (const user of page.items) room.members.set(user.userId, user);
    room.count = page.count;
    room.more = page.next ?? null;
    if (chat.selected === name) renderPeople();
  }

  client.on("rejoined", ({ room: name, recovered }) => {
    const room = chat.rooms.get(name);
    if (!recovered && room) run(fillGap(name, room));
  });
  client.on("rejoin_failed", ({ room, code, message }) => {
    if (!chat.rooms.has(room)) return;
    forgetRoom(room);
    report({ code, message: `left ${room}: ${message}` });
  });

  // --- rendering ---------------------------------------------------------------------

  function renderRoom() {
    const name = chat.selected;
    $("#room-title").textContent = name ?? "No room";
    $("#chat-input").disabled = $("#chat-send").disabled = !name;
    renderRooms();
    renderMessages(true);
    renderPeople();
  }

  function renderRooms() {
    const items = [...chat.rooms].map(([name, room]) =>
      el("li", { class: name === chat.selected ? "room selected" : "room", data: { room: name } },
        el("button", { class: "room-name", type: "button" }, name,
          room.unread ? el("span", { class: "badge", text: String(room.unread) }) : null),
        el("button", { class: "leave", type: "button", title: `Leave ${name}`, "aria-label": `Leave ${name}`, text: "×" })));
    fillList($("#rooms"), items, "No rooms joined");
  }

  // What #messages shows: the room, and its last message's id (null: none, or no room).
  let shown = { room: null, lastId: null };

  function renderMessages(forceBottom = false) {
    const room = chat.rooms.get(chat.selected);
    const messages = room ? [...room.messages.values()].sort(byId) : [];
    const items = messages.map((message) => messageEl(message, isMe(message.from.userId)));
    fillScrolled($("#messages"), items, room ? "No messages yet" : "Join a room to chat", forceBottom);
    shown = { room, lastId: messages.at(-1)?.id ?? null };
  }

  /**
   * A live chat in the shown room: the usual newest one is appended; one that belongs
   * elsewhere in the list (older than the last shown) redraws it. The page's own chats
   * scroll the list down.
   */
  function showNewMessage(room, message) {
    const mine = isMe(message.from.userId);
    if (shown.room !== room || shown.lastId == null || message.id <= shown.lastId) {
      renderMessages(mine);
      return;
    }
    const list = $("#messages");
    appendScrolled(list, messageEl(message, mine), mine);
    // The room dropped its oldest message past the cap: so does the list.
    while (list.children.length > room.messages.size) list.firstElementChild.remove();
    shown.lastId = message.id;
  }

  function renderPeople() {
    const room = chat.rooms.get(chat.selected);
    const members = room ? [...room.members.values()].sort((a, b) => displayName(a).localeCompare(displayName(b))) : [];
    $("#member-count").textContent = room ? String(Math.max(room.count, members.length)) : "";
    fillList($("#members"), members.map(memberEl), room ? "Nobody here yet" : "No room selected");
    $("#members-more").hidden = !room || room.more === null;
    const convs = [...chat.conversations.values()];
    fillList($("#conversations"), convs.map(conversationEl), "Click a member to talk privately");
  }

  function memberEl(user) {
    if (isMe(user.userId)) {
      return el("li", { class: "member self", data: { user: user.userId } },
        el("span", { class: "who", title: user.userId, text: `${displayName(user)} (you)` }));
    }
    const unread = chat.conversations.get(user.userId)?.unread;
    return el("li", { class: "member", data: { user: user.userId } },
      el("button", { type: "button", class: "who", title: `Message ${user.userId} privately` }, displayName(user),
        unread ? el("span", { class: "dot", title: "unread private messages" }) : null));
  }

  function conversationEl({ user, unread }) {
    const open = user.userId === chat.privateWith;
    return el("li", { class: open ? "conversation selected" : "conversation", data: { user: user.userId } },
      el("button", { type: "button", class: "who", title: user.userId }, displayName(user),
        unread ? el("span", { class: "badge", text: String(unread) }) : null));
  }

  function renderPrivate(forceBottom = false) {
    const conv = chat.conversations.get(chat.privateWith);
    if (!conv) return;
    $("#private-with").textContent = conv.user.userId;
    $("#private-name").textContent = displayName(conv.user);
    const items = [...conv.messages.values()].sort(byConversation).map((m) => messageEl(m, isMe(m.from.userId)));
    fillScrolled($("#private-messages"), items, "No private messages yet", forceBottom);
  }

  // --- user input --------------------------------------------------------------------

  /** A click on a member or a conversation opens the private conversation with that user. */
  function openClickedUser(event) {
    const userId = event.target.closest("button") && event.target.closest("[data-user]")?.dataset.user;
    const user = userId && (chat.rooms.get(chat.selected)?.members.get(userId) ?? chat.conversations.get(userId)?.user);
    if (user && !isMe(user.userId)) openPrivate(user);
  }

  $("#members").addEventListener("click", openClickedUser);
  $("#members-more").addEventListener("click", () => run(showMore()));
  $("#conversations").addEventListener("click", openClickedUser);
  $("#private-close").addEventListener("click", () => {
    chat.privateWith = null;
    $("#private").hidden = true;
    renderPeople();
  });

  $("#rooms").addEventListener("click", (event) => {
    const name = event.target.closest("[data-room]")?.dataset.room;
    if (!name) return;
    if (event.target.closest(".leave")) run(leaveRoom(name));
    else selectRoom(name);
  });
  $("#room-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("#room-input").value.trim();
    if (!name) return;
    $("#room-input").value = "";
    run(joinRoom(name));
  });
  $("#quick-rooms").append(...QUICK_ROOMS.map((name) =>
    el("button", { type: "button", class: "chip", text: name, on: { click: () => run(joinRoom(name)) } })));

  submitText("#chat-form", "#chat-input", (text) => client.chat(chat.selected, text));
  submitText("#private-form", "#private-input", sendPrivate);

  renderRoom();
  return { joinRoom };
}

/** The greatest id among a Map's keys (ids sort as strings), or null when it is empty. */
function newestId(messages) {
  let newest = null;
  for (const id of messages.keys()) if (newest == null || id > newest) newest = id;
  return newest;
}

/**
 * Sends a form's text field. The field clears at once so a slow reply (say, while
 * reconnecting) invites no second send; the text comes back if sending fails.
 */
function submitText(form, input, send) {
  $(form).addEventListener("submit", (event) => {
    event.preventDefault();
    const field = $(input);
    const text = field.value;
    if (!text.trim()) return;
    field.value = "";
    Promise.resolve(send(text)).catch((error) => {
      if (!field.value) field.value = text;
      report(error);
    });
  });
}
