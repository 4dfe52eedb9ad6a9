// /upload-link: make a one-time upload URL with an API key (POST /uploads), as an app's backend would, and
// show the link that hands it to someone without a key: the /u page, with the URL in its fragment.

import { ApiError, KEY_STORAGE, apiRequest } from "./api.js";

const $ = (id) => document.getElementById(id);
const form = $("link-form");

$("link-key-input").value = sessionStorage.getItem(KEY_STORAGE) ?? "";

function problemText(error) {
  if (error.status === 401) return "This server needs an API key to make upload links: enter one above.";
  if (error.status === 403) return "This API key may not make upload links.";
  if (error.status === 404 || error.status === 405) return "This server does not make upload links.";
  const fields = (error.problem?.errors ?? []).map((item) => item.message);
  return fields.length ? fields.join(" ") : error.message;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  $("link-error").hidden = true;
  const key = $("link-key-input").value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  const body = { expires_in: Number($("link-expiry-input").value) };
  const title = $("link-title-input").value.trim();
  if (title) body.title = title;
  $("make-link-button").disabled = true;
  let data;
  try {
    ({ data } = await apiRequest(form.dataset.uploadsUrl, { method: "POST", body }));
  } catch (error) {
    $("link-error").textContent = problemText(error instanceof ApiError ? error : new ApiError(0, null));
    $("link-error").hidden = false;
    return;
  } finally {
    $("make-link-button").disabled = false;
  }
  const link = new URL(form.dataset.uploadPage, location.href);
  link.hash = new URL(data.upload_url, location.href).href;
  $("link-url").value = link.href;
  $("link-open").href = link.href;
  const expires = new Date(data.expires_at);
  $("link-expires").textContent = `Usable once, until ${expires.toLocaleString()}.`;
  $("link-copy-status").textContent = "";
  $("link-result").hidden = false;
  $("link-result-heading").focus();
});

$("copy-link-button").addEventListener("click", async () => {
  const field = $("link-url");
  try {
    await navigator.clipboard.writeText(field.value);
    $("link-copy-status").textContent = "Copied to the clipboard.";
  } catch {
    field.select();
    $("link-copy-status").textContent = "Selected: press Ctrl+C (⌘C) to copy.";
  }
});
