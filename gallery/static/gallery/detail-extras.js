// The single view's parts from issue 26, each shown only where the server has it:
// - "Similar images": GET /images?similar_to=ID (an image object with a `phash` can be compared);
// - the focal point: clicking the picture sets `focal` (PATCH), and the `thumb` rendition beside it shows the
//   crop that keeps it (an image object with a `focal` key takes one).

import { getJson } from "./api.js";

const $ = (id) => document.getElementById(id);

// Hamming distance of the perceptual hashes: the server's default, where resized and re-encoded copies fall.
const SIMILAR_DISTANCE = 8;
const SIMILAR_SHOWN = 12;
// One arrow key press moves the point this much of the picture's width or height.
const KEY_STEP = 0.05;

// --- Similar images ---------------------------------------------------------------------------------

// `card(image)` makes a grid tile (the gallery's own). The image itself is at distance 0: left out.
export async function renderSimilar(image, { apiUrl, signal, card }) {
  const grid = $("similar-grid");
  const status = $("similar-status");
  grid.replaceChildren();
  $("similar").hidden = !image.phash;
  if (!image.phash) return;
  status.textContent = "Looking for similar images…";
  const query = new URLSearchParams({
    similar_to: String(image.id),
    distance: String(SIMILAR_DISTANCE),
    page_size: String(SIMILAR_SHOWN + 1),
  });
  let data;
  try {
    data = await getJson(`${apiUrl}?${query}`, signal);
  } catch (error) {
    if (error.name === "AbortError") return;
    status.textContent = `Similar images could not be loaded: ${error.message}`;
    return;
  }
  const others = data.results.filter((other) => other.id !== image.id).slice(0, SIMILAR_SHOWN);
  grid.replaceChildren(...others.map(card));
  status.textContent = others.length ? "" : "No similar images.";
}

// --- The focal point --------------------------------------------------------------------------------

let focalImage = null; // the image shown, while it takes a focal point
let keyedPoint = null; // where the arrow keys have moved the point, not saved yet
let save = null; // (focal) => the updated image object: the gallery's PATCH, which holds the ETag

const clamp = (value) => Math.min(1, Math.max(0, Math.round(value * 1000) / 1000));

function showPoint(point) {
  const marker = $("focal-marker");
  marker.hidden = !point;
  if (!point) return;
  marker.style.left = `${point.x * 100}%`;
  marker.style.top = `${point.y * 100}%`;
}

function showThumb(image) {
  const thumb = $("focal-thumb");
  if (image.presets?.thumb) thumb.src = image.presets.thumb;
  else thumb.removeAttribute("src");
  // Not the title again: "the picture called <title>" is the big one.
  thumb.alt = "The thumb crop of this picture";
}

// `onSave(focal)` sends the change and answers the image object as the server has it now.
export function renderFocal(image, { onSave }) {
  const picture = $("detail-picture");
  const supported = Boolean(image) && "focal" in image;
  $("focal").hidden = !supported;
  $("focal-error").hidden = true;
  $("focal-status").textContent = "";
  keyedPoint = null;
  focalImage = supported ? image : null;
  save = onSave;
  if (!supported) {
    picture.removeAttribute("role");
    picture.removeAttribute("tabindex");
    picture.removeAttribute("aria-describedby");
    picture.classList.remove("focal-target");
    showPoint(null);
    return;
  }
  picture.setAttribute("role", "button");
  picture.tabIndex = 0;
  picture.setAttribute("aria-describedby", "focal-hint");
  picture.classList.add("focal-target");
  showPoint(image.focal);
  showThumb(image);
}

async function commit(point) {
  const image = focalImage;
  if (!image) return;
  const focal = { x: clamp(point.x), y: clamp(point.y) };
  showPoint(focal);
  $("focal-error").hidden = true;
  $("focal-status").textContent = "Saving the focal point…";
  try {
    const updated = await save(focal);
    if (focalImage !== image) return; // another image is shown by now
    focalImage = updated;
    keyedPoint = null;
    showPoint(updated.focal);
    showThumb(updated);
    $("focal-status").textContent = "Focal point saved: the thumb crop keeps it in.";
  } catch (error) {
    if (focalImage !== image) return;
    showPoint(image.focal);
    $("focal-status").textContent = "";
    $("focal-error").textContent = error.message;
    $("focal-error").hidden = false;
  }
}

$("detail-picture").addEventListener("click", (event) => {
  if (!focalImage) return;
  const rect = $("detail-image").getBoundingClientRect();
  if (!rect.width || !rect.height) return;
  commit({ x: (event.clientX - rect.left) / rect.width, y: (event.clientY - rect.top) / rect.height });
});

// From the keyboard: the arrow keys move the point, Enter or Space saves it.
const MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
$("detail-picture").addEventListener("keydown", (event) => {
  if (!focalImage) return;
  if (event.key in MOVES) {
    event.preventDefault();
    const [dx, dy] = MOVES[event.key];
    const from = keyedPoint ?? focalImage.focal ?? { x: 0.5, y: 0.5 };
    keyedPoint = { x: clamp(from.x + dx * KEY_STEP), y: clamp(from.y + dy * KEY_STEP) };
    showPoint(keyedPoint);
  } else if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    commit(keyedPoint ?? focalImage.focal ?? { x: 0.5, y: 0.5 });
  }
});
