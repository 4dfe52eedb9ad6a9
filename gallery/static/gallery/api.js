// Talking to Imagery's public API: the one place that knows how a request is made and an error is read.
// Shared by the gallery (gallery.js) and the upload-link pages (upload-link.js, direct-upload.js).

// An API key is only needed when the server says so (401); it lives in this tab's session storage.
export const KEY_STORAGE = "imagery.apiKey";

export function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? `The server answered ${status}.`);
    this.status = status;
    this.problem = problem;
  }
}

// One API call: `body` goes as JSON; answers `{ data, etag }` (data null for a 204), or throws ApiError.
// `auth: false` sends no key (an upload URL is the uploader's only credential).
export async function apiRequest(url, { method = "GET", body, headers = {}, signal, auth = true } = {}) {
  const init = {
    method,
    headers: { Accept: "application/json", ...(auth ? authHeaders() : {}), ...headers },
    signal,
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, init);
  if (response.status === 204) return { data: null, etag: null };
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    // Cancelled while the body was arriving: the newer view takes over. Anything else is a body that is
    // not JSON, such as a proxy's HTML error page.
    if (error.name === "AbortError") throw error;
  }
  if (!response.ok || data === null) throw new ApiError(response.status, data);
  return { data, etag: response.headers.get("ETag") };
}

export async function getJson(url, signal) {
  return (await apiRequest(url, { signal })).data;
}

// Binary units, as Django's filesizeformat writes the upload limit in the form's hint.
export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
