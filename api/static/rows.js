// The rows: one per file, in the order shown, each paired with its job by id; repainted once per
// frame, summarised in one polite live region, and remembered across reloads.

import { download } from "./client.js";
import { save } from "./store.js";
import { bytes, sizes, warnings } from "./words.js";

const $ = (id) => document.getElementById(id);
export const rows = []; // every row in the order shown
export const byJob = new Map(); // job id -> row
const STATUS_WORDS = { queued: "Waiting in the queue", started: "Compressing…", finished: "Done" };
// What the row buttons do, set by the page: compare(row), retry(row), again(row), fail(error).
export const handlers = { compare: null, retry: null, again: null, fail: null };
// Failures the file itself causes: sending it again, with any options, fails the same way.
const FILE_FAULTS = new Set(["corrupt_image", "unsupported_media"]);

export function isPending(row) {
  return ["uploading", "waiting", "queued", "started"].includes(row.state);
}

// maxBytes: the server's upload limit; a file over it gets no thumbnail (it is never sent).
export function makeRow(name, file = null, maxBytes = Infinity) {
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
  if (file && file.type.startsWith("image/") && file.size && file.size <= maxBytes) {
    const thumb = element.querySelector(".thumb");
    // A file the browser cannot draw (not really an image, or AVIF in an old browser) shows none.
    thumb.addEventListener("error", () => thumb.removeAttribute("src"), { once: true });
    thumb.src = URL.createObjectURL(file);
  }
  const row = { name, file, element, job: null, batch: null, state: "", words: "", progress: null };
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
  element.querySelector(".sizes").textContent = job ? sizes(job) : row.file ? bytes(row.file.size) : "";
  element.querySelector(".warn").textContent = job ? warnings(job).join(" ") : "";
  const actions = element.querySelector(".actions");
  actions.replaceChildren();
  if (row.state === "finished") {
    const name = job.input.filename;
    actions.append(
      button("Compare", () => handlers.compare(row), `Compare ${name}`),
      button("Download", () => download(job.links.result, name).catch(handlers.fail), `Download ${name}`),
    );
  } else if (row.state === "lost") {
    actions.append(button("Retry", () => handlers.retry(row), `Retry ${row.name}`));
  } else if (row.state === "failed" && row.file && job?.error && !FILE_FAULTS.has(job.error.code)) {
    // e.g. a size it cannot fit: change the options above, then send the file again.
    actions.append(button("Try again", () => handlers.again(row), `Try ${row.name} again with the options above`));
  }
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

export function adopt(row, job, batchId) {
  if (row.job) byJob.delete(row.job.id);
  row.batch = batchId;
  byJob.set(job.id, row);
  applyJob(job);
  remember();
}

// The live region: one summary for all rows, at most once a second.
let totalsAt = -Infinity;

// Say the next summary at once (after the rows were cleared).
export function resetTotals() {
  totalsAt = -Infinity;
}

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
  const working = rows.filter(isPending).length;
  if (working) parts.push(`${working} in progress`);
  if (done.length) parts.push(`${bytes(input)} → ${bytes(output)} (saved ${percent}%)`);
  $("totals").textContent = parts.join(" · ");
}

// Saved results this page could not read yet (they need an API key): kept as they were.
export const unread = [];

export function remember() {
  const shown = rows.filter((row) => row.job).map((row) => ({ id: row.job.id, batch: row.batch, name: row.name }));
  save([...unread, ...shown]);
}
