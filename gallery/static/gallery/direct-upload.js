// /u#<upload URL>: upload one image to a one-time upload URL, with no API key. Big files go by tus
// (resumable.js) and survive a dropped connection; small ones in one multipart POST.
//
// The page posts only to its own server (the Content-Security-Policy's connect-src says so too): a link
// whose URL names another host is refused here rather than sending someone's file there.

import { formatBytes } from "./api.js";
import { RESUMABLE_FROM_BYTES, resumableSupported, startResumable } from "./resumable.js";

const $ = (id) => document.getElementById(id);
const form = $("direct-form");
const MAX_UPLOAD_BYTES = Number(form.dataset.maxUploadBytes);

function uploadTarget() {
  const raw = location.hash.slice(1);
  if (!raw) return { error: "This link has no upload URL in it: ask for the whole link again." };
  let url;
  try {
    url = new URL(decodeURIComponent(raw), location.href);
  } catch {
    return { error: "This link's upload URL is not a URL: ask for the whole link again." };
  }
  if (url.origin !== location.origin) return { error: "This link's upload URL is for another server." };
  return { url: url.href };
}

const target = uploadTarget();
if (target.error) {
  $("direct-missing").textContent = target.error;
  $("direct-missing").hidden = false;
} else {
  form.hidden = false;
}

let inFlight = null; // { abort } of the running upload

function showError(message) {
  $("direct-error").textContent = message;
  $("direct-error").hidden = !message;
}

// What each refusal means to someone holding a link (the upload URL's own statuses, issue 24).
function problemText(status, problem) {
  if (status === 0) return "The connection was lost and did not come back. Try again when you are online.";
  if (status === 409) return "This link has been used already: each link takes one image.";
  if (status === 410 || status === 404) return "This link has expired: ask for a new one.";
  if (status === 413) return problem?.detail ?? "This file is larger than the link accepts.";
  const fields = (problem?.errors ?? []).map((item) => item.message);
  if (fields.length) return fields.join(" ");
  return problem?.detail ?? `The server answered ${status}.`;
}

function setProgress(fraction, label) {
  const percent = Math.round(fraction * 100);
  $("direct-progress-bar").value = percent;
  $("direct-progress-text").textContent = `${percent}%`;
  if (label) $("direct-progress-label").textContent = label;
}

function setUploading(active) {
  $("direct-upload-button").disabled = active;
  $("direct-cancel-button").hidden = !active;
  $("direct-progress").hidden = !active;
  form.setAttribute("aria-busy", String(active));
}

// The image is the key's: this page may not be able to read it back (private, or reads need a key), so it
// shows what it got, and the title and picture only when it has them.
function done(image, path) {
  form.hidden = true;
  const id = image?.id ?? path?.split("/").pop();
  $("direct-status").textContent = image
    ? `Uploaded “${image.title}” (image ${image.id}). Thank you!`
    : `Uploaded (image ${id}). Thank you!`;
  const preview = $("direct-preview");
  if (image?.presets?.small ?? image?.url) preview.src = image.presets?.small ?? image.url;
  else preview.hidden = true;
  $("direct-done").hidden = false;
  $("direct-status").focus();
}

function uploadPlain(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    inFlight = xhr;
    xhr.open("POST", target.url);
    xhr.responseType = "json";
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) setProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () =>
      xhr.status === 201 ? resolve(xhr.response) : reject({ status: xhr.status, problem: xhr.response }),
    );
    xhr.addEventListener("error", () => reject({ status: 0 }));
    xhr.addEventListener("abort", () => reject({ name: "AbortError" }));
    const data = new FormData();
    data.append("image", file);
    xhr.send(data);
  });
}

async function uploadResumable(file) {
  const upload = startResumable({
    file,
    endpoint: target.url,
    onProgress: (fraction) => setProgress(fraction, "Uploading"),
    onRetry: () => setProgress($("direct-progress-bar").value / 100, "Connection lost: resuming…"),
  });
  inFlight = upload;
  const path = await upload.done;
  // Read back without a key where the server allows it; a refusal still leaves the upload done.
  try {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    if (response.ok) return { image: await response.json(), path };
  } catch {
    // The image is uploaded all the same.
  }
  return { image: null, path };
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (inFlight) return;
  showError("");
  const file = $("direct-file-input").files[0];
  if (!file) {
    showError("Choose an image file.");
    $("direct-file-input").focus();
    return;
  }
  if (file.size > MAX_UPLOAD_BYTES) {
    showError(`This file is ${formatBytes(file.size)}; the largest accepted is ${formatBytes(MAX_UPLOAD_BYTES)}.`);
    return;
  }
  setProgress(0, "Uploading");
  setUploading(true);
  try {
    if (file.size > RESUMABLE_FROM_BYTES && resumableSupported()) {
      const { image, path } = await uploadResumable(file);
      done(image, path);
    } else {
      done(await uploadPlain(file), null);
    }
  } catch (error) {
    if (error.name === "AbortError") showError("Upload cancelled. The link can still be used.");
    else showError(problemText(error.status ?? 0, error.problem));
  } finally {
    inFlight = null;
    setUploading(false);
  }
});

$("direct-cancel-button").addEventListener("click", () => inFlight?.abort());
