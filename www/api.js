// The server's dev-only HTTP endpoints: tokens for any user name, the user's stored
// notifications, and the admin proxy. They exist only when the server runs in dev mode;
// the admin calls carry the admin's own token, so the API key never reaches the browser.

/** Turns a typed name into a user id: lower case, spaces to dashes. Null if invalid. */
export function toUserId(name) {
  const id = name.trim().toLowerCase().replace(/\s+/g, "-");
  return /^[a-z0-9\-_.:@]{1,64}$/.test(id) ? id : null;
}

/** `POST /dev/token`: resolves `{ token, user, expiresIn }`. */
export function fetchToken(identity) {
  return request("/dev/token", { method: "POST", body: identity });
}

/**
 * Authenticated calls for the signed-in user; `getToken` returns (or resolves to) a
 * current token, asked for on every call so an expired one is replaced.
 */
export function devApi(getToken) {
  const call = async (method, path, body) =>
    request(path, { method, body, headers: { authorization: `Bearer ${await getToken()}` } });
  return {
    get: (path) => call("GET", path),
    post: (path, body) => call("POST", path, body),
    delete: (path) => call("DELETE", path),
  };
}

async function request(path, { method, body, headers = {} }) {
  const init = { method, headers };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    headers["content-type"] = "application/json";
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  const error = new Error(data?.error?.message ?? `${method} ${path}: HTTP ${response.status}`);
  error.code = data?.error?.code ?? `http_${response.status}`;
  throw error;
}
