// The compare view: the original and the compressed image at one shared zoom and position, split
// by a divider (or side by side); wheel, pinch and button zoom around a point, drag to pan, no
// smoothing above 100 %; and re-encoding of the stored upload with other settings.

import { json, objectUrl, request } from "./client.js";
import { bytes, encoding, formatName } from "./words.js";

const $ = (id) => document.getElementById(id);
const dialog = $("compare");
const view = $("compare-view");
const panes = [$("pane-before"), $("pane-after")];
const images = [$("compare-before"), $("compare-after")];
const divider = $("compare-divider");
const MAX_SCALE = 16;
const STEP = 1.5;
const DIVIDER_GRAB_PX = 24;

let list = [];
let index = 0;
let keep = () => {};
let shown = null; // the job whose result is on the compressed side
let variants = []; // jobs tried in this view for the current file, the row's own first
let token = 0; // bumped on every file change: late answers for another file are dropped
let mode = "slider";
let split = 0.5;
let natural = { width: 1, height: 1 };
let scale = 1;
let x = 0;
let y = 0;

// --- geometry ------------------------------------------------------------------------------

function paneSize() {
  const box = view.getBoundingClientRect();
  return mode === "slider"
    ? { width: box.width, height: box.height }
    : { width: box.width / 2, height: box.height };
}

function fitScale() {
  const pane = paneSize();
  return Math.min(pane.width / natural.width, pane.height / natural.height);
}

// Centre an axis the image does not fill; otherwise keep the pane covered (no empty side).
function clampAxis(offset, size, room) {
  if (size <= room) return (room - size) / 2;
  return Math.min(0, Math.max(room - size, offset));
}

function apply() {
  const pane = paneSize();
  x = clampAxis(x, natural.width * scale, pane.width);
  y = clampAxis(y, natural.height * scale, pane.height);
  for (const image of images) {
    image.style.width = `${natural.width}px`;
    image.style.height = `${natural.height}px`;
    image.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
  }
  view.classList.toggle("pixelated", scale > 1);
  const box = view.getBoundingClientRect();
  const at = split * box.width;
  panes[1].style.clipPath = mode === "slider" ? `inset(0 0 0 ${at}px)` : "";
  divider.style.left = `${at}px`;
  const percent = Math.round(split * 100);
  divider.setAttribute("aria-valuenow", String(percent));
  divider.setAttribute("aria-valuetext", `${percent}% original`);
  $("zoom-value").textContent = `${Math.round(scale * 100)}%`;
}

// Zoom to `next` keeping the image point under (px, py) (pane coordinates) where it is.
function zoomAt(next, px, py) {
  // Smaller than fitting (or than 100 % for a small image) shows nothing more.
  next = Math.min(MAX_SCALE, Math.max(Math.min(fitScale(), 1), next));
  x = px - ((px - x) * next) / scale;
  y = py - ((py - y) * next) / scale;
  scale = next;
  apply();
}

function zoomCentre(next) {
  const pane = paneSize();
  zoomAt(next, pane.width / 2, pane.height / 2);
}

function fit() {
  scale = fitScale();
  apply();
}

// A point on the view in the coordinates of the pane under it.
function panePoint(clientX, clientY) {
  const box = view.getBoundingClientRect();
  let px = clientX - box.left;
  if (mode === "side" && px > box.width / 2) px -= box.width / 2;
  return { px, py: clientY - box.top, box };
}

function setSplit(fraction) {
  split = Math.min(1, Math.max(0, fraction));
  apply();
}

// --- pointer, wheel and keys ---------------------------------------------------------------

const pointers = new Map();
let gesture = null;

view.addEventListener("pointerdown", (event) => {
  view.setPointerCapture(event.pointerId);
  pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
  if (pointers.size === 2) {
    // The first finger of a pinch did not mean to move the divider.
    if (gesture?.kind === "divider") setSplit(gesture.splitBefore);
    const [a, b] = [...pointers.values()];
    gesture = { kind: "pinch", distance: Math.hypot(a.x - b.x, a.y - b.y), scale };
    return;
  }
  const { box } = panePoint(event.clientX, event.clientY);
  const offset = event.clientX - box.left;
  const fits = scale <= fitScale() + 1e-6;
  // Grab the divider along its whole height; on a picture with nothing to pan, anywhere.
  if (mode === "slider" && (Math.abs(offset - split * box.width) <= DIVIDER_GRAB_PX || fits)) {
    gesture = { kind: "divider", splitBefore: split };
    setSplit(offset / box.width);
  } else {
    gesture = { kind: "pan", startX: event.clientX, startY: event.clientY, x, y };
  }
  view.classList.add("grabbing");
});

view.addEventListener("pointermove", (event) => {
  if (!pointers.has(event.pointerId) || !gesture) return;
  pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
  if (gesture.kind === "pinch" && pointers.size === 2) {
    const [a, b] = [...pointers.values()];
    const { px, py } = panePoint((a.x + b.x) / 2, (a.y + b.y) / 2);
    zoomAt((gesture.scale * Math.hypot(a.x - b.x, a.y - b.y)) / gesture.distance, px, py);
  } else if (gesture.kind === "divider") {
    const box = view.getBoundingClientRect();
    setSplit((event.clientX - box.left) / box.width);
  } else if (gesture.kind === "pan") {
    x = gesture.x + event.clientX - gesture.startX;
    y = gesture.y + event.clientY - gesture.startY;
    apply();
  }
});

function release(event) {
  pointers.delete(event.pointerId);
  if (pointers.size === 1 && gesture?.kind === "pinch") {
    const [rest] = pointers.values();
    gesture = { kind: "pan", startX: rest.x, startY: rest.y, x, y };
    return;
  }
  if (!pointers.size) {
    gesture = null;
    view.classList.remove("grabbing");
  }
}
view.addEventListener("pointerup", release);
view.addEventListener("pointercancel", release);

view.addEventListener(
  "wheel",
  (event) => {
    event.preventDefault();
    const { px, py } = panePoint(event.clientX, event.clientY);
    zoomAt(scale * Math.exp(-event.deltaY * 0.0015), px, py);
  },
  { passive: false },
);

divider.addEventListener("keydown", (event) => {
  const step = event.shiftKey ? 0.1 : 0.02;
  const moves = { ArrowLeft: -step, ArrowDown: -step, ArrowRight: step, ArrowUp: step };
  if (event.key in moves) setSplit(split + moves[event.key]);
  else if (event.key === "Home") setSplit(0);
  else if (event.key === "End") setSplit(1);
  else return;
  event.preventDefault();
});

dialog.addEventListener("keydown", (event) => {
  if (event.target.closest("input, select, textarea")) return;
  const keys = { "+": () => zoomCentre(scale * STEP), "=": () => zoomCentre(scale * STEP),
    "-": () => zoomCentre(scale / STEP), 0: fit, 1: () => zoomCentre(1),
    PageUp: () => go(-1), PageDown: () => go(1) };
  if (!(event.key in keys)) return;
  keys[event.key]();
  event.preventDefault();
});

$("zoom-in").addEventListener("click", () => zoomCentre(scale * STEP));
$("zoom-out").addEventListener("click", () => zoomCentre(scale / STEP));
$("zoom-fit").addEventListener("click", fit);
$("zoom-actual").addEventListener("click", () => zoomCentre(1));
$("compare-mode").addEventListener("click", () => {
  const ratio = scale / fitScale();
  mode = mode === "slider" ? "side" : "slider";
  view.dataset.mode = mode;
  $("compare-mode").setAttribute("aria-pressed", String(mode === "side"));
  $("compare-mode").textContent = mode === "side" ? "Slider" : "Side by side";
  scale = ratio * fitScale();
  apply();
});
new ResizeObserver(() => dialog.open && apply()).observe(view);

// --- files ---------------------------------------------------------------------------------

function describeSides() {
  const job = list[index];
  const input = job.input;
  // The size as shown: the browser turns the original upright by its EXIF orientation, as the
  // result is; the job's width and height are the pixels as stored.
  const [width, height] = images[0].naturalWidth
    ? [images[0].naturalWidth, images[0].naturalHeight]
    : [input.width, input.height];
  const unseen = images[0].naturalWidth ? "" : " (this browser cannot show it)";
  $("side-before").textContent =
    `◀ Original: ${bytes(input.bytes)} · ${formatName(input.media_type)} · ${width}×${height}${unseen}`;
  const output = shown.output;
  const change = Math.round((1 - output.bytes / input.bytes) * 100);
  const word = change >= 0 ? `${change}% smaller` : `${-change}% larger`;
  $("side-after").textContent =
    `Compressed: ${bytes(output.bytes)} (${word}) · ${encoding(output)} · ${output.width}×${output.height} ▶`;
  $("compare-prev").disabled = index === 0;
  $("compare-next").disabled = index === list.length - 1;
  $("variant-keep").disabled = shown.id === job.id;
}

async function showResult(job) {
  const mine = token;
  const url = await objectUrl(job.links.result);
  if (mine !== token) return URL.revokeObjectURL(url);
  release_url(images[1]);
  images[1].src = url;
  shown = job;
  describeSides();
  renderVariants();
}

function release_url(image) {
  if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
}

async function load(at) {
  discardVariants();
  index = at;
  const mine = ++token;
  const job = list[index];
  shown = job;
  variants = [job];
  $("compare-title").textContent = `Compare: ${job.input.filename}`;
  fillVariantForm(job.options);
  $("variant-status").textContent = "";
  const [original, result] = await Promise.all([objectUrl(job.links.input), objectUrl(job.links.result)]);
  if (mine !== token) return;
  release_url(images[0]);
  release_url(images[1]);
  images[0].src = original;
  images[1].src = result;
  await images[0].decode().catch(() => {});
  // An original this browser cannot decode (HEIC in Chromium) still lays the view out at its size.
  natural = images[0].naturalWidth
    ? { width: images[0].naturalWidth, height: images[0].naturalHeight }
    : { width: job.input.width || 1, height: job.input.height || 1 };
  describeSides();
  renderVariants();
  fit();
}

function go(step) {
  const next = index + step;
  if (next >= 0 && next < list.length) load(next).catch(say);
}
$("compare-prev").addEventListener("click", () => go(-1));
$("compare-next").addEventListener("click", () => go(1));

function say(error) {
  $("variant-status").textContent = error.message || String(error);
}

// --- re-encoding the stored upload -----------------------------------------------------------

function fillVariantForm(options) {
  $("variant-format").value = options.format || "same";
  $("variant-quality").value = options.quality == null ? "auto" : String(options.quality);
  $("variant-width").value = options.width || "";
}

function variantFields() {
  const options = { ...shown.options, format: $("variant-format").value };
  options.quality = $("variant-quality").value.trim().toLowerCase() || "auto";
  options.width = $("variant-width").value || null;
  if (options.quality !== "auto") options.target = null; // the target is for auto only
  const fields = new URLSearchParams();
  for (const [name, value] of Object.entries(options)) if (value != null) fields.set(name, String(value));
  return fields;
}

async function reencode() {
  const mine = token;
  const started = performance.now();
  $("variant-status").textContent = "Re-encoding the stored upload…";
  $("variant-run").disabled = true;
  try {
    let job = await json(`${list[index].links.self}/variants`, { method: "POST", body: variantFields() });
    while (!["finished", "failed"].includes(job.status)) {
      job = await json(`${job.links.self}?wait=25`);
    }
    if (mine !== token) return;
    if (job.status === "failed") {
      $("variant-status").textContent = `Failed: ${job.error.message}`;
      request(job.links.self, { method: "DELETE" }).catch(() => {});
      return;
    }
    variants.push(job);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    $("variant-status").textContent = `New version in ${seconds} s: ${bytes(job.output.bytes)}, ${encoding(job.output)}.`;
    await showResult(job);
  } catch (error) {
    if (mine === token) say(error);
  } finally {
    $("variant-run").disabled = false;
  }
}

let pendingRun = 0;
$("variant").addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(pendingRun);
  reencode();
});
$("variant").addEventListener("change", () => {
  clearTimeout(pendingRun);
  pendingRun = setTimeout(reencode, 300);
});

function renderVariants() {
  const items = variants.map((job, at) => {
    const item = document.createElement("li");
    const choose = document.createElement("button");
    choose.type = "button";
    choose.textContent = `${at === 0 ? "Current" : `Try ${at}`}: ${bytes(job.output.bytes)}, ${encoding(job.output)}`;
    choose.setAttribute("aria-pressed", String(job.id === shown.id));
    choose.addEventListener("click", () => showResult(job).catch(say));
    item.append(choose);
    return item;
  });
  $("variant-list").replaceChildren(...items);
}

$("variant-keep").addEventListener("click", () => {
  const kept = shown;
  keep(index, kept);
  variants = [kept, ...variants.filter((job) => job.id !== kept.id && job.id !== list[index].id)];
  list[index] = kept;
  $("variant-status").textContent = `Kept: ${bytes(kept.output.bytes)}, ${encoding(kept.output)}. Download gives this version.`;
  describeSides();
  renderVariants();
});

// Versions tried and not kept are deleted on the server when the user moves on.
function discardVariants() {
  const current = list[index];
  for (const job of variants) {
    if (current && job.id !== current.id) request(job.links.self, { method: "DELETE" }).catch(() => {});
  }
  variants = [];
}

// --- opening and closing ---------------------------------------------------------------------

$("compare-close").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", () => {
  discardVariants();
  token++;
  for (const image of images) {
    release_url(image);
    image.removeAttribute("src");
  }
});

// jobs: the finished jobs to step through; start: the one to show; keep(index, job): the user
// chose this version of jobs[index].
export async function openCompare({ jobs, start, keep: onKeep }) {
  list = [...jobs];
  keep = onKeep;
  split = 0.5;
  index = start;
  dialog.showModal();
  divider.focus();
  await load(start);
}
