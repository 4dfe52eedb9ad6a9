// Resumable uploads (tus 1.0) through tus-js-client, npm's reference client of the protocol (pinned in
// package-lock.json; `make gallery-assets` and the Dockerfile copy its browser bundle into
// vendor/tus-js-client/, which the page loads as a classic script: it defines `window.tus`).
//
// The file goes to a one-time upload URL, never with the API key: the gallery mints the URL with its key
// (POST /uploads), the upload-link page hands one to someone who has no key at all.

import { ApiError, apiRequest } from "./api.js";

// Files above this go by tus; smaller ones in one plain POST (one request, nothing worth resuming).
export const RESUMABLE_FROM_BYTES = 5 * 1024 * 1024;
// Each PATCH carries this much: what a lost connection costs at most, and how often the server confirms.
const CHUNK_BYTES = 2 * 1024 * 1024;
// The waits (ms) before each new try after a failed request: about two minutes in all, long enough for a
// phone to find its network again.
const RETRY_DELAYS = [0, 1000, 2000, 4000, 8000, 15000, 30000, 60000];

export function resumableSupported() {
  return typeof window.tus?.Upload === "function" && window.tus.isSupported !== false;
}

// POST /uploads with the tab's key: answers `{ id, upload_url, expires_at }`. `fields` fix what the upload
// will be (title, width, height, fit, visibility, expires_in...).
export async function mintUploadUrl(uploadsUrl, fields) {
  return (await apiRequest(uploadsUrl, { method: "POST", body: fields })).data;
}

// tus-js-client's error for a refused request carries the server's answer: read it as an ApiError (our
// problem JSON), or as the lost connection it was.
function toApiError(error) {
  const response = error.originalResponse;
  const status = response?.getStatus() ?? 0;
  if (!status) return new ApiError(0, { detail: "The connection to the server was lost." });
  let problem = null;
  try {
    problem = JSON.parse(response.getBody());
  } catch {
    // Not JSON (a proxy's own page): the status says enough.
  }
  return new ApiError(status, problem);
}

// Send `file` to `endpoint` (an upload URL) by tus, or go on with the upload at `resumeUrl` (its tus
// Location, from an earlier try that gave up). Answers { done, abort, url() }: `done` resolves to the image's
// API path (the final answer's `Imagery-Image` header), `url()` is the upload's own URL once created.
export function startResumable({ file, endpoint, resumeUrl = null, onProgress, onRetry }) {
  let imagePath = null;
  let upload;
  let fail;
  const done = new Promise((resolve, reject) => {
    fail = reject;
    upload = new window.tus.Upload(file, {
      endpoint,
      uploadUrl: resumeUrl,
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS,
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      // Each upload URL is new and used once: nothing to look up in (or leave behind in) localStorage.
      storeFingerprintForResuming: false,
      onProgress: (sent, total) => onProgress?.(total ? sent / total : 0),
      // A lost connection (status 0), a server that is busy or restarting, a conflict over the offset:
      // try again from the offset the server confirms. tus-js-client's own rule also gives up while the
      // browser says it is offline; a phone that loses its network for a moment should not.
      onShouldRetry: (error, attempt) => {
        const status = error.originalResponse?.getStatus() ?? 0;
        const retry = status === 0 || status >= 500 || [409, 423, 429].includes(status);
        if (retry) onRetry?.(RETRY_DELAYS[attempt] ?? 0);
        return retry;
      },
      onAfterResponse: (_request, response) => {
        const image = response.getHeader("Imagery-Image");
        if (image) imagePath = image;
      },
      onSuccess: () => resolve(imagePath),
      onError: (error) => reject(toApiError(error)),
    });
    upload.start();
  });
  return {
    done,
    // Cancelled by the user: the server may drop what it has (tus termination), and `done` fails as an
    // aborted fetch does.
    abort: () => {
      upload.abort(true).catch(() => {});
      fail(new DOMException("The upload was cancelled.", "AbortError"));
    },
    url: () => upload.url,
  };
}
