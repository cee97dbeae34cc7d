// The rows: one per file, in drops, each paired with its job by id; repainted once per frame,
// summarised in one polite live region, and remembered across reloads.

import { ApiError, download, objectUrl } from "./client.js";
import { save } from "./store.js";
import { bytes, sizes, warnings } from "./words.js";

const $ = (id) => document.getElementById(id);
export const rows = []; // every row in the order shown
export const byJob = new Map(); // job id -> row
export const drops = []; // every drop shown, oldest first: {element, title, groups, batches}
const STATUS_WORDS = { queued: "Waiting in the queue", started: "Compressing…", finished: "Done" };
// What the row buttons do, set by the page: compare(row), retry(row), again(row), fail(error).
export const handlers = { compare: null, retry: null, again: null, fail: null };
// Failures the file itself causes: sending it again, with any options, fails the same way.
const FILE_FAULTS = new Set(["corrupt_image", "unsupported_media"]);
const COMPACT_FROM = 12; // rows in one drop from which its rows are one line each
const GONE = "Gone: the server no longer keeps this file.";
const NOT_SENT = "Not sent: the page was reloaded before this file was uploaded.";

export function isPending(row) {
  return ["uploading", "waiting", "queued", "started"].includes(row.state);
}

// A drop's section: its title, its archives (one per part of `groups`), its rows. An earlier
// drop (restored after a reload) goes below the others, however soon a new one was made.
export function makeDrop(title, groups = 1, earlier = false) {
  const element = document.createElement("section");
  element.className = "batch";
  element.innerHTML = `<div class="batch-head"><h3></h3><span class="zips"></span></div><ul class="rows"></ul>`;
  element.querySelector("h3").textContent = title;
  const drop = { element, title, groups, batches: [] };
  if (earlier) {
    $("batches").append(element);
    drops.unshift(drop);
  } else {
    $("batches").prepend(element);
    drops.push(drop);
  }
  return drop;
}

export function compactIf(drop) {
  const list = drop.element.querySelector(".rows");
  list.classList.toggle("compact", list.childElementCount >= COMPACT_FROM);
}

// A drop's archives, one per part (the files sent in one batch): each offered once a row of
// that part has finished, and holding what its rows show, a row sent again included.
function showZips(drop) {
  const zips = drop.element.querySelector(".zips");
  const done = rows.filter((row) => row.drop === drop && row.state === "finished");
  for (let part = 0; part < drop.groups; part++) {
    const offered = done.some((row) => row.part === part);
    const shown = zips.querySelector(`[data-part="${part}"]`);
    if (offered && !shown) {
      const label = drop.groups > 1 ? `Download part ${part + 1} of ${drop.groups} (ZIP)` : "Download all (ZIP)";
      const zip = button(label, () => downloadPart(drop, part));
      zip.dataset.part = part;
      zips.insertBefore(zip, [...zips.children].find((other) => Number(other.dataset.part) > part) ?? null);
    } else if (!offered && shown) shown.remove();
  }
}

function downloadPart(drop, part) {
  const done = rows.filter((row) => row.drop === drop && row.part === part && row.state === "finished");
  const query = done.map((row) => `job=${row.job.id}`).join("&");
  download(`/v1/archive?${query}`, "imgpress.zip").catch(handlers.fail);
}

// maxBytes: the server's upload limit; a file over it gets no thumbnail (it is never sent).
export function makeRow(drop, name, file = null, maxBytes = Infinity) {
  const element = document.createElement("li");
  element.className = "row";
  element.innerHTML = `
    <img class="thumb" alt="" decoding="async" loading="lazy">
    <div class="info">
      <span class="name"></span>
      <span class="status"></span>
      <progress class="bar" max="100" value="0" hidden></progress>
      <span class="sizes"></span>
      <span class="warn"></span>
    </div>
    <div class="actions"></div>`;
  element.querySelector(".name").textContent = name;
  element.querySelector(".name").title = name;
  element.querySelector(".bar").setAttribute("aria-label", `Upload of ${name}`);
  const thumb = element.querySelector(".thumb");
  // A file the browser cannot draw (not really an image, or AVIF in an old browser) shows none.
  thumb.addEventListener("error", () => thumb.removeAttribute("src"), { once: true });
  if (file && file.type.startsWith("image/") && file.size && file.size <= maxBytes) {
    thumb.src = URL.createObjectURL(file);
  }
  const size = file ? file.size : null;
  const row = { name, file, size, drop, part: 0, element, job: null, batch: null, state: "", words: "", progress: null };
  rows.push(row);
  return row;
}

export function setState(row, state, words) {
  row.state = state;
  row.words = words;
  paint(row);
}

// Rows are repainted once per frame, however many events arrive: 120 files stay smooth.
const dirty = new Set();
let frame = 0;
export function paint(row) {
  dirty.add(row);
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  for (const row of dirty) render(row);
  for (const drop of new Set([...dirty].map((row) => row.drop))) showZips(drop);
  dirty.clear();
  showTotals();
}

function render(row) {
  const { element, job } = row;
  element.dataset.state = row.state;
  if (job) element.dataset.job = job.id;
  const status = element.querySelector(".status");
  status.textContent = row.words;
  status.title = row.words;
  const bar = element.querySelector(".bar");
  bar.hidden = row.progress === null;
  if (row.progress !== null) bar.value = Math.round(row.progress * 100);
  element.querySelector(".sizes").textContent = job ? sizes(job) : row.size === null ? "" : bytes(row.size);
  element.querySelector(".warn").textContent = job ? warnings(job).join(" ") : "";
  if (!row.file && !row.fetchesThumb && thumbLink(row)) {
    row.fetchesThumb = true;
    thumbRows.set(element.querySelector(".thumb"), row);
    nearScreen.observe(element.querySelector(".thumb"));
  }
  const actions = element.querySelector(".actions");
  actions.replaceChildren();
  if (row.state === "finished") {
    const name = job.input.filename;
    actions.append(
      button("Compare", () => handlers.compare(row), `Compare ${name}`),
      button("Download", () => download(job.links.result, name).catch((error) => goneOr(row, error)), `Download ${name}`),
    );
  } else if (row.state === "lost" && (row.file || job)) {
    actions.append(button("Retry", () => handlers.retry(row), `Retry ${row.name}`));
  } else if (row.state === "failed" && row.file && job?.error && !FILE_FAULTS.has(job.error.code)) {
    // e.g. a size it cannot fit: change the options above, then send the file again.
    actions.append(button("Try again", () => handlers.again(row), `Try ${row.name} again with the options above`));
  }
}

// A download the server answers 404 or 410 (the job expired or was deleted meanwhile) makes its row gone.
function goneOr(row, error) {
  if (!(error instanceof ApiError) || ![404, 410].includes(error.status)) {
    handlers.fail(error);
    return;
  }
  byJob.delete(row.job.id);
  row.job = null;
  setState(row, "gone", GONE);
  remember();
}

// A row without its file (after a reload) shows the server's copy, fetched (with the key) once it
// nears the screen: the result, or the upload while the job is still to run (a failed job keeps none).
const thumbRows = new WeakMap(); // thumbnail -> row
const nearScreen = new IntersectionObserver((entries) => {
  for (const entry of entries.filter((item) => item.isIntersecting)) {
    nearScreen.unobserve(entry.target);
    const link = thumbLink(thumbRows.get(entry.target));
    if (link) objectUrl(link).then((url) => { entry.target.src = url; }, () => {});
  }
}, { rootMargin: "200px" });

function thumbLink({ job, state }) {
  if (state === "finished") return job.links.result;
  return ["queued", "started"].includes(state) ? job.links.input : null;
}

export function button(label, onClick, name) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  if (name) element.setAttribute("aria-label", name);
  element.addEventListener("click", onClick);
  return element;
}

export function applyJob(data) {
  const row = byJob.get(data.id);
  if (!row) return;
  if (data.status === "deleted") {
    setState(row, "lost", "Lost: the server no longer has this file.");
    return;
  }
  row.job = data;
  row.progress = null;
  const words = data.status === "failed" ? `Failed: ${data.error.message}` : STATUS_WORDS[data.status];
  setState(row, data.status, words);
}

function pair(row, job, batchId) {
  if (row.job) byJob.delete(row.job.id);
  row.batch = batchId;
  byJob.set(job.id, row);
  applyJob(job);
}

export function adopt(row, job, batchId) {
  pair(row, job, batchId);
  remember();
}

// Show a drop saved before a reload, with the jobs (by id) the server still has; the newest first.
export function restoreDrop(saved, jobs) {
  const drop = makeDrop(saved.title, saved.groups, true);
  drop.batches = [...saved.batches];
  const list = drop.element.querySelector(".rows");
  for (const entry of saved.rows) {
    const row = makeRow(drop, entry.name);
    row.size = entry.size ?? null;
    // Saved by an earlier page: a row's part is its batch's place in the drop, else the first.
    const place = saved.batches.indexOf(entry.batch);
    row.part = entry.part ?? (place >= 0 && place < saved.groups ? place : 0);
    list.append(row.element);
    if (jobs.has(entry.id)) pair(row, jobs.get(entry.id), entry.batch);
    else if (entry.id) setState(row, "gone", GONE);
    else setState(row, entry.state, entry.words);
  }
  compactIf(drop);
}

// The live region: one summary for all rows, at most once a second.
let totalsAt = -Infinity;

let totalsTimer = 0;
export function showTotals() {
  const wait = totalsAt + 1000 - performance.now();
  // Throttled while work goes on; the last word (nothing pending) is said at once.
  if (wait > 0 && rows.some(isPending)) {
    if (!totalsTimer) totalsTimer = setTimeout(() => { totalsTimer = 0; showTotals(); }, wait);
    return;
  }
  totalsAt = performance.now();
  $("clear").hidden = !rows.some((row) => row.job);
  if (!rows.length) {
    $("totals").textContent = "No files yet.";
    return;
  }
  const count = (state) => rows.filter((row) => row.state === state).length;
  const done = rows.filter((row) => row.state === "finished");
  const input = done.reduce((sum, row) => sum + row.job.input.bytes, 0);
  const output = done.reduce((sum, row) => sum + row.job.output.bytes, 0);
  const percent = input ? Math.round(((input - output) / input) * 100) : 0;
  const parts = [`${done.length} of ${rows.length} done`];
  if (count("failed")) parts.push(`${count("failed")} failed`);
  if (count("lost")) parts.push(`${count("lost")} lost`);
  if (count("gone")) parts.push(`${count("gone")} gone`);
  const working = rows.filter(isPending).length;
  if (working) parts.push(`${working} in progress`);
  if (done.length) parts.push(`${bytes(input)} → ${bytes(output)} (saved ${percent}%)`);
  $("totals").textContent = parts.join(" · ");
}

// Forget every row and drop (their jobs were deleted on the server).
export function forgetAll() {
  for (const row of rows) {
    const thumb = row.element.querySelector(".thumb");
    if (thumb.src.startsWith("blob:")) URL.revokeObjectURL(thumb.src);
  }
  rows.length = 0;
  drops.length = 0;
  unread.length = 0;
  byJob.clear();
  $("batches").replaceChildren();
  save([]);
  totalsAt = -Infinity; // say "No files yet." at once
  showTotals();
}

// Saved drops this page could not read yet (they need an API key): kept as they were.
export const unread = [];

// Save every drop the server still keeps a job of, each row as its job or as the words it shows.
export function remember() {
  const shown = new Map(drops.map((drop) => [drop, []]));
  for (const row of rows) shown.get(row.drop).push(row);
  const kept = drops.filter((drop) => shown.get(drop).some((row) => row.job)).map((drop) => ({
    title: drop.title,
    groups: drop.groups,
    batches: drop.batches,
    rows: shown.get(drop).map(saving),
  }));
  save([...unread, ...kept]);
}

// A file not sent by now never will be: the page loses it on a reload.
function saving(row) {
  if (row.job) return { name: row.name, id: row.job.id, batch: row.batch, part: row.part };
  if (isPending(row)) return { name: row.name, state: "lost", words: NOT_SENT };
  return { name: row.name, size: row.size, state: row.state, words: row.words };
}
