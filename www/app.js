// The demo app's entry point: dev-mode sign-in, the SDK client and its connection state,
// and the tabs. Each view lives in its own module (chat, notifications, live, admin).

import init, { RoomcastClient } from "./pkg/roomcast_client.js";
import { $, el, errors, recordError, report, run } from "./dom.js";
import { devApi, fetchToken, toUserId } from "./api.js";
import { setupChat } from "./chat.js";
import { setupNotifications } from "./notifications.js";
import { GAME_ROOMS, setupLive } from "./live.js";
import { setupAdmin } from "./admin.js";

const STATE_LABELS = { connecting: "connecting", open: "connected", closed: "offline" };
const ROLES = ["user", "admin"];
const TOKEN_MARGIN_MS = 60_000;

/** What the page knows; the views add their parts (chat, notifications, live). */
const state = { me: null, token: null, clientId: null, connection: "connecting", view: "chat" };
// For tests and the console: `errors` lists every error the page reported (see dom.js).
window.roomcast = { client: null, state, errors };

// Fetch and compile the SDK while the user types a name. The catch only marks the
// rejection handled: signIn awaits the same promise and shows the error.
const sdkReady = init();
sdkReady.catch(() => {});

// A promise nobody awaited: shown and recorded like any reported error (report() pushes
// it to window.roomcast.errors), and kept off the console.
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  report(event.reason);
});

// --- sign-in -------------------------------------------------------------------------

$("#signin").addEventListener("submit", (event) => {
  event.preventDefault();
  const button = $("#signin button[type=submit]");
  button.disabled = true;
  $("#signin-error").hidden = true;
  signIn($("#signin-user").value, $("#signin-role").value).catch((error) => {
    recordError(error);
    $("#signin-error").textContent = error.message;
    $("#signin-error").hidden = false;
    button.disabled = false;
  });
});

async function signIn(typedName, role) {
  const userId = toUserId(typedName);
  if (!userId) {
    throw new Error("A name is 1–64 letters, digits, spaces or - _ . : @ (spaces become dashes in the user id).");
  }
  const identity = { userId, name: typedName.trim(), role };
  const answer = await fetchToken(identity);
  await sdkReady;
  Object.assign(state, { me: answer.user, token: issued(answer) });
  // Keep the identity in the URL, so a reload signs in again.
  const query = new URLSearchParams({ user: typedName.trim(), role });
  history.replaceState(null, "", `?${query}${location.hash}`);
  start(identity);
}

/**
 * The token for each (re)connect and each dev API call. The last one is reused while it
 * has time left and the server has not refused it: fetching a new one while the server
 * is down (restarting) would fail, and the browser logs every failed request, while a
 * failed socket attempt is simply retried. If a fetch fails anyway, the old token stands
 * in: a throwing getToken would end the client for good. Callers at the same moment (a
 * reconnect and an admin refresh) share one fetch.
 */
let tokenFetch = null;

async function tokenFor(identity) {
  const { token } = state;
  if (token && !token.refused && Date.now() < token.expiresAt - TOKEN_MARGIN_MS) return token.value;
  tokenFetch ??= fetchToken(identity).finally(() => { tokenFetch = null; });
  try {
    state.token = issued(await tokenFetch);
  } catch (error) {
    if (!token) throw error;
  }
  return state.token.value;
}

const issued = ({ token, expiresIn }) => ({ value: token, expiresAt: Date.now() + expiresIn * 1000, refused: false });

function autoSignIn() {
  const params = new URLSearchParams(location.search);
  if (!params.get("user")) return;
  $("#signin-user").value = params.get("user");
  if (ROLES.includes(params.get("role"))) $("#signin-role").value = params.get("role");
  $("#signin").requestSubmit();
}

// --- the app -------------------------------------------------------------------------

function start(identity) {
  const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const client = new RoomcastClient(wsUrl, { getToken: () => tokenFor(identity) });
  // The HTTP calls use the same fresh token as the socket: a long-open admin page would
  // otherwise send an expired one.
  const api = devApi(() => tokenFor(identity));
  window.roomcast.client = client;

  client.onStateChange(showConnection);
  client.on("auth_ok", ({ user, clientId }) => Object.assign(state, { me: user, clientId }));
  client.on("error", (error) => {
    // The SDK's `auth` has no request id, so a refused token is reported here.
    if (error.code === "auth_failed") state.token.refused = true;
    report(error);
  });

  const chat = setupChat({ client, state, keepJoined: new Set(GAME_ROOMS) });
  setupNotifications({ client, state, api });
  setupLive({ client, state });
  if (state.me.roles?.includes("admin")) setupAdmin({ client, state, api, addView });

  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#me").textContent = `${state.me.name ?? state.me.userId} · ${identity.role}`;
  $("#me").title = state.me.userId;
  $("#signout").addEventListener("click", () => {
    client.close();
    location.assign(location.pathname);
  });
  $("#reconnect").addEventListener("click", () => location.reload());
  const linked = location.hash.slice(1);
  showView(document.getElementById(`view-${linked}`) ? linked : "chat");

  // Requests made before the first auth_ok are queued by the SDK.
  run(client.connect());
  run(chat.joinRoom("lobby"));
}

let countdown = 0;

function showConnection(change) {
  const node = $("#conn-state");
  clearInterval(countdown);
  state.connection = change.state;
  node.dataset.state = change.state;
  node.title = change.state === "closed" ? `closed ${change.code ?? ""} ${change.reason ?? ""}`.trim() : "";
  $("#reconnect").hidden = change.state !== "closed";
  if (change.state !== "reconnecting") {
    node.textContent = STATE_LABELS[change.state] ?? change.state;
    return;
  }
  const until = Date.now() + change.delayMs;
  const tick = () => {
    const text = `reconnecting in ${Math.max(0, Math.ceil((until - Date.now()) / 1000))}s`;
    if (node.textContent !== text) node.textContent = text;
  };
  tick();
  countdown = setInterval(tick, 250);
}

// --- tabs ----------------------------------------------------------------------------

/** Adds a tab and its view (`content` holds the element `#view-<name>`). */
function addView(name, label, content) {
  $("#tabs").append(el("button", { type: "button", id: `tab-${name}`, role: "tab", data: { view: name }, text: label }));
  $("#views").append(content);
}

function showView(name) {
  state.view = name;
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  for (const tab of document.querySelectorAll("#tabs [data-view]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === name));
  }
  history.replaceState(null, "", `${location.search}#${name}`);
}

$("#tabs").addEventListener("click", (event) => {
  const name = event.target.closest("[data-view]")?.dataset.view;
  if (name) showView(name);
});
$("#bell").addEventListener("click", () => showView("notifications"));

autoSignIn();
