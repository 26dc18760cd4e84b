// The JSON API: one helper that returns the answer's JSON or throws its error.

/** An error the API answered with: its HTTP status and its message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Send the page to the login form: the server wants a session. */
export function toLogin() {
  if (location.pathname !== "/login") location.assign("/login");
}

/**
 * Call the API; the parsed JSON answer (null for 204).
 * Throws ApiError with the API's own message ({"error": {"message"}}).
 */
export async function api(method, path, body) {
  const answer = await send(method, path, body);
  if (answer.status === 204) return null;
  let data = null;
  try {
    data = await answer.json();
  } catch {
    if (answer.ok) throw new ApiError(answer.status, "the answer is not JSON");
  }
  if (!answer.ok) {
    throw new ApiError(answer.status, data?.error?.message ?? `${answer.status} ${answer.statusText}`);
  }
  return data;
}

/** GET an API answer that is text (a CSV export); errors as api() throws them. */
export async function apiText(path) {
  const answer = await send("GET", path);
  if (!answer.ok) {
    let message = `${answer.status} ${answer.statusText}`;
    try {
      message = (await answer.json())?.error?.message ?? message;
    } catch {
      // Not JSON: the status line says enough.
    }
    throw new ApiError(answer.status, message);
  }
  return answer.text();
}

/** The fetch of one API call; a 401 sends the page to the login form. */
async function send(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let answer;
  try {
    answer = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, `the server cannot be reached (${error.message})`);
  }
  if (answer.status === 401) {
    toLogin();
    throw new ApiError(401, "sign in first");
  }
  return answer;
}

/** A query string of the non-empty values of `params`. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
