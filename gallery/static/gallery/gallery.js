// The gallery page: upload, search, browse and view images through Imagery's public API.
//
// Everything shown comes from GET /images and GET /images/{id}; uploads go to POST /images. User data
// (titles above all) is only ever written with textContent and setAttribute, never as HTML.
//
// The address bar is the state: /?title=beach&page=2 is a page of search results and adding &image=12
// shows one image. Links are real links (they work in a new tab and without this script's help); clicks on
// them are turned into history.pushState so Back and Forward move between views without reloading.

import { KEY_STORAGE, apiRequest, authHeaders, formatBytes, getJson } from "./api.js";
import { RESUMABLE_FROM_BYTES, mintUploadUrl, resumableSupported, startResumable } from "./resumable.js";
import { renderFocal, renderSimilar } from "./detail-extras.js";
import { UploadSheet } from "./upload-sheet.js";

const app = document.getElementById("app");
const API_URL = app.dataset.apiUrl;
const PAGE_SIZE = Number(app.dataset.pageSize);
const MAX_UPLOAD_BYTES = Number(app.dataset.maxUploadBytes);
// POST /uploads: one-time upload URLs, which big files go to by tus (resumable.js).
const UPLOADS_URL = app.dataset.uploadsUrl;
// Whether this server can keep private images (it has API keys on): only then are the switches shown.
const PRIVATE_IMAGES = app.dataset.privateImages === "true";

// The `thumbhash` package of npm (pinned in package-lock.json; `make install` and the Dockerfile copy it
// into static/gallery/vendor/), loaded on its own: should it fail, the tiles still show their colour.
const thumbhash = import(app.dataset.thumbhashUrl).catch(() => null);

const $ = (id) => document.getElementById(id);

// --- Formatting ----------------------------------------------------------------------------------

const FORMAT_NAMES = { jpeg: "JPEG", png: "PNG", gif: "GIF", webp: "WebP", avif: "AVIF" };

function formatName(format) {
  return FORMAT_NAMES[format] ?? String(format).toUpperCase();
}

function formatDimensions(image) {
  return `${image.width} × ${image.height}`;
}

// Only http(s) URLs become links: a stored file's URL comes from the server, but a link is no place to trust.
function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

// --- The address bar -----------------------------------------------------------------------------

function positiveInt(text) {
  // Fifteen digits at most: every such number is exact in JavaScript.
  return /^[1-9][0-9]{0,14}$/.test(text ?? "") ? Number(text) : null;
}

function readState() {
  const query = new URLSearchParams(location.search);
  return {
    title: query.get("title") ?? "",
    page: positiveInt(query.get("page")) ?? 1,
    image: positiveInt(query.get("image")),
    // The list of the key's private images instead of the public ones.
    private: PRIVATE_IMAGES && query.get("private") === "1",
  };
}

function urlFor({ title = "", page = 1, image = null, private: privateList = false }) {
  const query = new URLSearchParams();
  if (privateList) query.set("private", "1");
  if (title) query.set("title", title);
  if (page > 1) query.set("page", String(page));
  if (image) query.set("image", String(image));
  const search = query.toString();
  return search ? `${location.pathname}?${search}` : location.pathname;
}

// `focus` moves the keyboard focus to the new view's heading, as a page load would; searching keeps it in
// the search box instead.
function navigate(state, { replace = false, focus = true } = {}) {
  const url = urlFor(state);
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render({ focus });
}

// A plain left click on one of our links navigates in place; a middle click, Ctrl/Cmd-click or Shift-click
// keeps its usual meaning (new tab, new window).
function isPlainClick(event) {
  return event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-route]");
  if (!link || !isPlainClick(event)) return;
  event.preventDefault();
  history.pushState(null, "", link.getAttribute("href"));
  render({ focus: true });
});

// Back and Forward show the view of their address; a jump to an anchor (the skip link) changes only the
// hash, and the view stays as it is.
window.addEventListener("popstate", () => {
  if (location.search !== shownSearch) render({ focus: true });
});

// --- Rendering -----------------------------------------------------------------------------------

let pending = null; // the request of the view being shown; a newer view cancels it
let shownSearch = null; // the query string of the view being shown

// A view moves the focus to its heading once its data is in, unless the user has moved it meanwhile: focus
// must never be taken from where someone just put it.
let focusMoves = 0;
document.addEventListener("focusin", () => {
  focusMoves += 1;
});

function focusIfStill(moves, element) {
  if (focusMoves === moves) element.focus();
}

// A message for the next view only (what was just deleted); any later view clears it.
let notice = "";

function render({ focus = false } = {}) {
  $("list-notice").textContent = notice;
  notice = "";
  shownSearch = location.search;
  pending?.abort();
  pending = new AbortController();
  const state = readState();
  const showDetail = state.image !== null;
  $("browse").hidden = showDetail;
  $("detail").hidden = !showDetail;
  const moves = focus ? focusMoves : null;
  if (showDetail) renderDetail(state, pending.signal, moves);
  else renderList(state, pending.signal, moves);
}

function setStatus(element, text, link) {
  element.replaceChildren(text);
  if (link) {
    const a = document.createElement("a");
    a.href = link.href;
    a.dataset.route = "";
    a.textContent = link.text;
    element.append(" ", a);
  }
}

// `moves` is the focus count when the view was asked for, or null when the focus stays where it is.
async function renderList(state, signal, moves) {
  $("search-input").value = state.title;
  document.title = state.title ? `“${state.title}” – Imagery` : "Imagery";
  const grid = $("grid");
  grid.setAttribute("aria-busy", "true");
  setStatus($("list-status"), "Loading…");

  const query = new URLSearchParams({ page: String(state.page), page_size: String(PAGE_SIZE) });
  if (state.title) query.set("title", state.title);
  if (state.private) query.set("visibility", "private");
  const switchLink = $("visibility-link");
  if (switchLink) {
    // Private images are listed for the key that uploaded them: the link to them, or back to the public ones.
    switchLink.textContent = state.private ? "Show public images" : "Show my private images";
    switchLink.href = urlFor({ title: state.title, private: !state.private });
    switchLink.dataset.route = "";
  }
  let data;
  try {
    data = await getJson(`${API_URL}?${query}`, signal);
  } catch (error) {
    if (error.name === "AbortError") return;
    grid.replaceChildren();
    grid.removeAttribute("aria-busy");
    $("pager").hidden = true;
    if (error.status === 401) askForKey(error.message);
    if (error.status === 404 && state.page > 1) {
      setStatus($("list-status"), `There is no page ${state.page}.`, {
        href: urlFor({ title: state.title }),
        text: "Go to the first page",
      });
    } else {
      setStatus($("list-status"), `The images could not be loaded: ${error.message}`);
    }
    return;
  }

  grid.replaceChildren(...data.results.map((image) => card(image, state)));
  grid.removeAttribute("aria-busy");
  // Past the server's count cap, `count` is a lower bound and `count_exact` is false: "500+ images".
  const exact = data.count_exact !== false;
  const count = exact ? `${data.count}` : `${data.count}+`;
  const noun = `${state.private ? "private " : ""}${data.count === 1 && exact ? "image" : "images"}`;
  if (data.count === 0) {
    setStatus(
      $("list-status"),
      state.title
        ? `No image title contains “${state.title}”.`
        : state.private
          ? "No private images of this API key."
          : "No images yet: upload the first one.",
    );
  } else {
    setStatus($("list-status"), state.title ? `${count} ${noun} match “${state.title}”` : `${count} ${noun}`);
  }
  renderPager(state, data);
  if (moves !== null) focusIfStill(moves, $("images-heading"));
}

function card(image, state) {
  const item = $("card-template").content.firstElementChild.cloneNode(true);
  const link = item.querySelector(".card-link");
  link.href = urlFor({ ...state, image: image.id });
  link.dataset.route = "";
  const img = item.querySelector("img");
  // A rendition about as wide as the tile, not the stored file: the browser picks from the object's srcset
  // by the laid-out width (`auto`, for lazy images; the rest is for browsers without it), so a page of 24
  // is kilobytes. width/height let the grid lay out before it loads, and lazy loading fetches only the
  // thumbnails that scroll into view.
  img.sizes = "auto, (min-width: 600px) 240px, 50vw";
  img.srcset = image.srcset;
  showStoredFileOnError(img, image.url);
  img.src = image.url;
  img.alt = image.title;
  img.width = image.width;
  img.height = image.height;
  showPlaceholder(item.querySelector(".thumb"), img, image);
  item.querySelector(".card-title").textContent = image.title;
  // Its URLs are signed and expire: the server made them for the key that may see it.
  item.querySelector(".badge.lock").hidden = image.visibility !== "private";
  item.querySelector(".card-meta").textContent =
    `${formatDimensions(image)} · ${formatName(image.format)} · ${formatBytes(image.size)}`;
  return item;
}

// Renditions are reads of the API: when it needs a key for them (IMAGERY_AUTH=all), which an <img> cannot
// send, the stored file (served without one) is shown instead.
function showStoredFileOnError(img, url) {
  img.onerror = () => {
    img.onerror = null;
    img.removeAttribute("srcset");
    img.src = url;
  };
}

// Until its image has loaded, a tile shows the image's colour and, once decoded, its ThumbHash placeholder
// (a blurred picture of the same aspect) over it: the grid has something to show at once. Both go when the
// image is in, so a transparent image shows over the tile's own background.
function showPlaceholder(thumb, img, image) {
  let loaded = false;
  const clear = () => {
    loaded = true;
    thumb.classList.remove("placeholder");
    thumb.style.removeProperty("background-color");
    thumb.style.removeProperty("background-image");
  };
  if (img.complete && img.naturalWidth) return;
  img.addEventListener("load", clear, { once: true });
  thumb.classList.add("placeholder");
  if (image.color) thumb.style.backgroundColor = image.color;
  if (!image.placeholder) return;
  thumbhash.then((module) => {
    if (!module || loaded) return;
    try {
      const hash = Uint8Array.from(atob(image.placeholder), (c) => c.charCodeAt(0));
      thumb.style.backgroundImage = `url("${module.thumbHashToDataURL(hash)}")`;
    } catch {
      // Not a ThumbHash this decoder reads: the colour stays.
    }
  });
}

function renderPager(state, data) {
  // The links come from the server and are right whatever the count; the total only when it is known.
  $("pager").hidden = !data.next && !data.previous;
  const pages = Math.max(1, Math.ceil(data.count / PAGE_SIZE));
  $("page-info").textContent =
    data.count_exact === false ? `Page ${state.page}` : `Page ${state.page} of ${pages}`;
  const list = { title: state.title, private: state.private };
  pagerLink($("prev-page"), data.previous ? urlFor({ ...list, page: state.page - 1 }) : null);
  pagerLink($("next-page"), data.next ? urlFor({ ...list, page: state.page + 1 }) : null);
}

// A link without href is not focusable and not announced as a link: what a disabled pager link should be.
function pagerLink(link, href) {
  if (href) {
    link.href = href;
    link.dataset.route = "";
    link.removeAttribute("aria-disabled");
  } else {
    link.removeAttribute("href");
    link.setAttribute("aria-disabled", "true");
  }
}

async function renderDetail(state, signal, moves) {
  $("back-link").href = urlFor({ title: state.title, page: state.page, private: state.private });
  $("back-link").dataset.route = "";
  $("detail-body").hidden = true;
  setStatus($("detail-status"), "Loading…");
  $("copy-status").textContent = "";

  shownImage = null;
  let image;
  let etag;
  try {
    ({ data: image, etag } = await apiRequest(`${API_URL}/${state.image}`, { signal }));
  } catch (error) {
    if (error.name === "AbortError") return;
    if (error.status === 401) askForKey(error.message);
    document.title = `${error.status === 404 ? "Image not found" : "Image not loaded"} – Imagery`;
    const text =
      error.status === 404 ? `There is no image ${state.image}.` : `The image could not be loaded: ${error.message}`;
    setStatus($("detail-status"), text);
    if (moves !== null) focusIfStill(moves, $("back-link"));
    return;
  }

  document.title = `${image.title} – Imagery`;
  setStatus($("detail-status"), "");
  $("detail-title").textContent = image.title;
  const url = safeUrl(image.url);
  const picture = $("detail-image");
  // The `large` rendition (at most 1600 wide, never larger than the image); the link opens the stored file.
  picture.removeAttribute("srcset");
  showStoredFileOnError(picture, image.url);
  picture.src = image.presets?.large ?? image.url;
  picture.alt = image.title;
  picture.width = image.width;
  picture.height = image.height;
  if (url) $("detail-open").href = url;
  else $("detail-open").removeAttribute("href");
  $("detail-size").textContent = `${formatDimensions(image)} pixels`;
  $("detail-format").textContent = formatName(image.format);
  $("detail-bytes").textContent = `${formatBytes(image.size)} (${image.size.toLocaleString("en")} bytes)`;
  const created = $("detail-created");
  created.dateTime = image.created_at;
  created.textContent = new Date(image.created_at).toLocaleString();
  $("detail-id").textContent = String(image.id);
  $("detail-url").value = image.url;
  $("detail-json").href = `${API_URL}/${image.id}`;
  $("detail-lock").hidden = image.visibility !== "private";
  const privateSwitch = $("private-switch");
  if (privateSwitch) {
    privateSwitch.checked = image.visibility === "private";
    $("switch-error").hidden = true;
  }
  const back = { title: state.title, page: state.page, private: state.private };
  shownImage = { id: image.id, title: image.title, etag, back };
  $("edit-title-input").value = image.title;
  showEditError("");
  $("edit-title-status").textContent = "";
  $("delete-error").hidden = true;
  $("detail-body").hidden = false;
  renderFocal(image, { onSave: saveFocal });
  renderSimilar(image, { apiUrl: API_URL, signal, card: (other) => card(other, state) });
  if (moves !== null) focusIfStill(moves, $("detail-title"));
}

// --- Editing and deleting the image shown ----------------------------------------------------------

// The image in the detail view: its id, title, the ETag it was read with, and the list to go back to.
let shownImage = null;

function showEditError(message) {
  $("edit-title-error").textContent = message;
  $("edit-title-error").hidden = !message;
  $("edit-title-input").setAttribute("aria-invalid", message ? "true" : "false");
}

function changeRefused(error) {
  if (error.status === 401) return "Changing images needs an API key: enter it in the upload form, then try again.";
  if (error.status === 403) return "This API key may not change this image (only the key that uploaded it, or an admin key).";
  return null;
}

// The focal point clicked on the picture (detail-extras.js): answers the image as it is now, or throws an
// error whose message says why not.
async function saveFocal(focal) {
  const image = shownImage;
  try {
    const { data, etag } = await apiRequest(`${API_URL}/${image.id}`, {
      method: "PATCH",
      body: { focal },
      headers: image.etag ? { "If-Match": image.etag } : {},
    });
    if (shownImage === image) shownImage = { ...image, etag };
    return data;
  } catch (error) {
    if (error.status === 401) askForKey(error.message);
    const field = error.problem?.errors?.find((item) => item.field?.startsWith("focal"));
    throw new Error(
      error.status === 412
        ? "Someone changed this image since you opened it: reload the page to see their change."
        : (changeRefused(error) ?? field?.message ?? error.message),
    );
  }
}

$("title-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!shownImage) return;
  showEditError("");
  $("edit-title-status").textContent = "";
  const image = shownImage;
  try {
    // If-Match: the change is made only if nobody changed the image since it was read here.
    const { data, etag } = await apiRequest(`${API_URL}/${image.id}`, {
      method: "PATCH",
      body: { title: $("edit-title-input").value },
      headers: image.etag ? { "If-Match": image.etag } : {},
    });
    if (shownImage !== image) return; // another image is shown by now
    shownImage = { ...image, title: data.title, etag };
    $("detail-title").textContent = data.title;
    $("detail-image").alt = data.title;
    $("edit-title-input").value = data.title;
    document.title = `${data.title} – Imagery`;
    $("edit-title-status").textContent = "Title saved.";
  } catch (error) {
    if (shownImage !== image) return; // another view is shown by now: this answer is not about it
    if (error.status === 401) askForKey(error.message);
    const field = error.problem?.errors?.find((item) => item.field === "title");
    showEditError(
      error.status === 412
        ? "Someone changed this image since you opened it: reload the page to see their change."
        : (changeRefused(error) ?? field?.message ?? error.message),
    );
    $("edit-title-input").focus();
  }
});

// The public/private switch: the server moves the file and answers the object with its new URLs (signed
// for a private image), which the view then shows.
$("private-switch")?.addEventListener("change", async () => {
  if (!shownImage) return;
  const image = shownImage;
  const visibility = $("private-switch").checked ? "private" : "public";
  $("switch-error").hidden = true;
  $("switch-status").textContent = "";
  try {
    await apiRequest(`${API_URL}/${image.id}`, {
      method: "PATCH",
      body: { visibility },
      headers: image.etag ? { "If-Match": image.etag } : {},
    });
    if (shownImage !== image) return;
    render();
    $("switch-status").textContent = visibility === "private" ? "The image is private now." : "The image is public now.";
  } catch (error) {
    if (shownImage !== image) return;
    $("private-switch").checked = visibility !== "private";
    if (error.status === 401) askForKey(error.message);
    const field = error.problem?.errors?.find((item) => item.field === "visibility");
    $("switch-error").textContent =
      error.status === 412
        ? "Someone changed this image since you opened it: reload the page to see their change."
        : (changeRefused(error) ?? field?.message ?? error.message);
    $("switch-error").hidden = false;
  }
});

$("delete-button").addEventListener("click", () => {
  if (!shownImage) return;
  $("delete-error").hidden = true;
  $("delete-dialog-text").textContent =
    `“${shownImage.title}” will be deleted for good. Copies that browsers or a CDN already keep may still show for a while.`;
  // Escape closes the dialog without setting a return value: clear the last one, or it would count again.
  $("delete-dialog").returnValue = "";
  $("delete-dialog").showModal();
});

$("delete-dialog").addEventListener("close", async () => {
  if ($("delete-dialog").returnValue !== "delete" || !shownImage) return;
  const image = shownImage;
  try {
    await apiRequest(`${API_URL}/${image.id}`, { method: "DELETE" });
  } catch (error) {
    if (error.status !== 404) {
      if (error.status === 401) askForKey(error.message);
      $("delete-error").textContent = changeRefused(error) ?? `The image was not deleted: ${error.message}`;
      $("delete-error").hidden = false;
      $("delete-button").focus();
      return;
    }
    // Already gone: the list it goes back to is right either way.
  }
  notice = `Deleted “${image.title}”.`;
  navigate(image.back);
});

// Escape leaves the detail view, like closing a dialog.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || $("detail").hidden) return;
  event.preventDefault();
  $("back-link").click();
});

$("copy-button").addEventListener("click", async () => {
  const field = $("detail-url");
  try {
    await navigator.clipboard.writeText(field.value);
    $("copy-status").textContent = "Copied to the clipboard.";
  } catch {
    // No clipboard access (an insecure origin, a denied permission): select it for a manual copy.
    field.select();
    $("copy-status").textContent = "Selected: press Ctrl+C (⌘C) to copy.";
  }
});

// --- Search --------------------------------------------------------------------------------------

let searchTimer;

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(searchTimer);
  const title = $("search-input").value.trim();
  if (title !== readState().title) navigate({ title }, { focus: false });
});

// Typing searches after a short pause. The first keystroke of a search adds a history entry, the next ones
// replace it, so Back leaves the search instead of undoing it one letter at a time.
$("search-input").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    const title = $("search-input").value.trim();
    const current = readState().title;
    if (title !== current) navigate({ title }, { replace: current !== "", focus: false });
  }, 300);
});

// --- Upload --------------------------------------------------------------------------------------

const form = $("upload-form");
const fileInput = $("image-input");
// `visibility` only where the server can keep private images (the form has the field then).
const FIELDS = ["image", "title", "width", "height", "fit", "api_key", ...(PRIVATE_IMAGES ? ["visibility"] : [])];
let inFlight = null; // the upload's XMLHttpRequest, while it runs

function fieldInput(field) {
  return form.querySelector(`[data-field="${field}"] :is(input, select)`);
}

function clearErrors() {
  for (const field of FIELDS) {
    const slot = form.querySelector(`[data-field="${field}"] .field-error`);
    slot.hidden = true;
    slot.textContent = "";
    fieldInput(field).removeAttribute("aria-invalid");
  }
  $("upload-error").hidden = true;
  $("upload-error").textContent = "";
}

function showFieldError(field, message) {
  if (!FIELDS.includes(field)) return false;
  const slot = form.querySelector(`[data-field="${field}"] .field-error`);
  slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
  slot.hidden = false;
  fieldInput(field).setAttribute("aria-invalid", "true");
  return true;
}

function showFormError(message) {
  $("upload-error").textContent = message;
  $("upload-error").hidden = false;
}

// Focus moves to the first field in error, whose description (aria-describedby) reads the message out.
function focusFirstError() {
  const first = form.querySelector("[aria-invalid='true']");
  if (first) first.focus();
}

function askForKey(message) {
  $("key-field").hidden = false;
  $("key-error").textContent = ""; // a refused read and a refused upload say the same thing once
  showFieldError("api_key", message);
}

function saveKey() {
  const key = $("key-input").value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

// A key entered after a refused read is used at once: the view that needed it loads again. (The form's
// errors stay until the next upload: clearing them here would move the Upload button under the pointer.)
$("key-input").addEventListener("change", () => {
  saveKey();
  render();
});

function showProblem(status, problem) {
  if (status === 401) {
    askForKey(problem?.detail ?? "This needs an API key.");
    focusFirstError();
    return;
  }
  if (status === 413 && !problem?.errors) {
    // Refused before it reached Imagery (a proxy's own size limit answers in HTML): still the file's fault.
    showFieldError("image", problem?.detail ?? "This file is larger than the server accepts.");
    focusFirstError();
    return;
  }
  let placed = false;
  for (const error of problem?.errors ?? []) {
    // Every field error lands next to its field; what belongs to no field goes above the button.
    if (!showFieldError(error.field, error.message)) showFormError(error.message);
    placed = true;
  }
  if (!placed) {
    const retry = status === 429 || status === 503 ? " Try again in a moment." : "";
    showFormError(`${problem?.detail ?? `The server answered ${status}.`}${retry}`);
  }
  focusFirstError();
}

function setUploading(active) {
  $("upload-button").disabled = active;
  $("cancel-button").hidden = !active;
  $("upload-progress").hidden = !active;
  form.setAttribute("aria-busy", String(active));
}

function setProgressLabel(text) {
  $("progress-label").textContent = text;
}

function setProgress(fraction) {
  const percent = Math.round(fraction * 100);
  $("progress-bar").value = percent;
  $("progress-text").textContent = `${percent}%`;
}

// Only the fields the user filled in are sent: an empty field means "the server's default".
function uploadData() {
  const data = new FormData();
  data.append("image", fileInput.files[0]);
  const title = $("title-input").value.trim();
  if (title) data.append("title", title);
  for (const field of ["width", "height"]) {
    const value = fieldInput(field).value.trim();
    if (value) data.append(field, value);
  }
  data.append("fit", $("fit-input").value);
  if ($("private-input")?.checked) data.append("visibility", "private");
  return data;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (inFlight) return;
  clearErrors();
  $("upload-status").textContent = "";
  $("list-notice").textContent = "";
  saveKey();

  const file = fileInput.files[0];
  if (!file) {
    showFieldError("image", "Choose an image file.");
    focusFirstError();
    return;
  }
  // A file over the limit is refused before it is sent: the server would refuse it too, but only after the
  // browser started sending, and a server that closes early can look like a lost connection.
  if (file.size > MAX_UPLOAD_BYTES) {
    showFieldError(
      "image",
      `This file is ${formatBytes(file.size)}; the largest accepted is ${formatBytes(MAX_UPLOAD_BYTES)}.`,
    );
    focusFirstError();
    return;
  }
  if (file.size > RESUMABLE_FROM_BYTES && resumableSupported()) uploadResumable(file);
  else uploadPlain();
});

// One POST /images with the form's fields. XMLHttpRequest rather than fetch: only it reports upload progress.
function uploadPlain() {
  const xhr = new XMLHttpRequest();
  inFlight = xhr;
  xhr.open("POST", API_URL);
  xhr.responseType = "json";
  xhr.setRequestHeader("Accept", "application/json");
  for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) setProgress(e.loaded / e.total);
  });
  xhr.addEventListener("loadend", () => {
    inFlight = null;
    setUploading(false);
  });
  xhr.addEventListener("load", () => {
    if (xhr.status === 201) uploaded(xhr.response);
    else showProblem(xhr.status, xhr.response);
  });
  xhr.addEventListener("error", () => {
    showFormError(
      "The upload did not reach the server or its answer was lost. Check the connection and try again.",
    );
  });
  xhr.addEventListener("abort", () => {
    $("upload-status").textContent = "Upload cancelled.";
  });
  setProgress(0);
  setProgressLabel("Uploading");
  setUploading(true);
  xhr.send(uploadData());
}

// What the form fixes of a resumable upload: the same fields as a plain POST, sent when the upload URL is
// minted (the tus part sends only the file).
function uploadFields() {
  const fields = {};
  const title = $("title-input").value.trim();
  if (title) fields.title = title;
  for (const field of ["width", "height"]) {
    const value = fieldInput(field).value.trim();
    if (value) fields[field] = Number(value);
  }
  fields.fit = $("fit-input").value;
  if ($("private-input")?.checked) fields.visibility = "private";
  return fields;
}

// A resumable upload that gave up (the connection stayed down through every retry): pressing Upload again
// with the same file goes on from the last byte the server confirmed, at the same upload URL.
let unfinished = null;

// A big file: mint a one-time upload URL with the key (POST /uploads), then send the file to it by tus in
// chunks. A dropped connection is retried from the server's offset; the progress bar carries on from there.
async function uploadResumable(file) {
  // Cancelled while the URL is being minted: nothing was sent yet, the upload just does not start.
  const job = {
    abort: () => {
      inFlight = null;
      setUploading(false);
      $("upload-status").textContent = "Upload cancelled.";
    },
  };
  inFlight = job;
  setProgress(0);
  setProgressLabel("Uploading");
  setUploading(true);
  try {
    let link = unfinished?.file === file ? unfinished.link : null;
    if (!link) {
      try {
        link = await mintUploadUrl(UPLOADS_URL, uploadFields());
      } catch (error) {
        // A server without upload URLs (404, 405): the file goes in one POST, as before them.
        if (error.status === 404 || error.status === 405) {
          inFlight = null;
          uploadPlain();
          return;
        }
        throw error;
      }
    }
    if (inFlight !== job) return; // cancelled while the URL was minted
    const upload = startResumable({
      file,
      endpoint: link.upload_url,
      resumeUrl: unfinished?.file === file ? unfinished.url : null,
      onProgress: (fraction) => {
        setProgress(fraction);
        setProgressLabel(unfinished?.retried ? "Uploading (resumed)" : "Uploading");
      },
      onRetry: (delay) => {
        if (unfinished) unfinished.retried = true;
        setProgressLabel(
          delay >= 1000
            ? `Connection lost: trying again in ${Math.round(delay / 1000)} s…`
            : "Connection lost: resuming…",
        );
      },
    });
    unfinished = { file, link, upload, url: null, retried: false };
    job.abort = upload.abort;
    const path = await upload.done;
    unfinished = null;
    // The last answer names the image; without that header, the upload URL's state carries it.
    const image = path
      ? (await apiRequest(path)).data
      : (await apiRequest(`${UPLOADS_URL}/${link.id}`)).data.image;
    uploaded(image);
  } catch (error) {
    if (error.name === "AbortError") {
      unfinished = null;
      $("upload-status").textContent = "Upload cancelled.";
    } else if (error.status === 0 && unfinished) {
      unfinished.url = unfinished.upload.url();
      showFormError("The connection was lost and did not come back. Press Upload to go on from where it stopped.");
    } else if (error.status === undefined) {
      // fetch's own failure (no answer at all) while minting the URL or reading the image back.
      showFormError("The upload did not reach the server or its answer was lost. Check the connection and try again.");
    } else {
      unfinished = null;
      showProblem(error.status, error.problem);
    }
  } finally {
    if (inFlight === job) {
      inFlight = null;
      setUploading(false);
    }
  }
}

$("cancel-button").addEventListener("click", () => inFlight?.abort());

function uploaded(image) {
  // Start the next upload afresh, but keep the API key: it is the user's, not this upload's.
  const key = $("key-input").value;
  form.reset();
  $("key-input").value = key;
  showPreview(null);
  const status = $("upload-status");
  setStatus(status, `Uploaded “${image.title}”.`, { href: urlFor({ image: image.id }), text: "View it" });
  // The same file was uploaded before (issue 26): say where, so the user may keep one of them.
  if (image.duplicate_of) {
    const line = document.createElement("span");
    line.className = "duplicate";
    const link = document.createElement("a");
    link.href = urlFor({ image: image.duplicate_of });
    link.dataset.route = "";
    link.textContent = `#${image.duplicate_of}`;
    line.append(" This file is already here as ", link, ".");
    status.append(line);
  }
  // The newest image is first on the first page of all images (a private one: of the private images):
  // show that, so the upload is in sight.
  const state = readState();
  const privateList = image.visibility === "private";
  if (state.title || state.page > 1 || state.image || state.private !== privateList) {
    navigate({ private: privateList }, { focus: false });
  } else render();
  // On a phone the form is a sheet over the grid: close it, and say it above the list, where the image is.
  if (uploadSheet.isOpen()) {
    uploadSheet.close({ focus: false });
    $("list-notice").replaceChildren(...[...status.childNodes].map((node) => node.cloneNode(true)));
  }
}

// --- Choosing and dropping a file ----------------------------------------------------------------

let previewUrl = null;

function showPreview(file) {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = file ? URL.createObjectURL(file) : null;
  const preview = $("image-preview");
  preview.hidden = !previewUrl;
  if (previewUrl) preview.src = previewUrl;
  else preview.removeAttribute("src");
}

// A file the browser cannot show (HEIC in most browsers, or not an image at all) gets no preview; the
// server decides whether it is an image.
$("image-preview").addEventListener("error", () => {
  $("image-preview").hidden = true;
});

fileInput.addEventListener("change", () => {
  clearErrors();
  showPreview(fileInput.files[0] ?? null);
});

const dropzone = $("dropzone");
dropzone.addEventListener("dragover", (event) => {
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  dropzone.classList.add("dragging");
});
dropzone.addEventListener("dragleave", () => dropzone.classList.remove("dragging"));
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropzone.classList.remove("dragging");
  if (!event.dataTransfer.files.length) return;
  fileInput.files = event.dataTransfer.files;
  fileInput.dispatchEvent(new Event("change"));
});

// A file dropped beside the drop zone would otherwise replace the page with the file.
for (const type of ["dragover", "drop"]) {
  window.addEventListener(type, (event) => {
    if (dropzone.contains(event.target)) return;
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "none";
  });
}

// --- Start ---------------------------------------------------------------------------------------

const uploadSheet = new UploadSheet({
  panel: $("upload-panel"),
  toggle: $("open-upload"),
  closeButton: $("close-upload"),
  firstField: fileInput,
});

if (sessionStorage.getItem(KEY_STORAGE)) {
  $("key-field").hidden = false;
  $("key-input").value = sessionStorage.getItem(KEY_STORAGE);
}
render();
