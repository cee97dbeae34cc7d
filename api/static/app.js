// The imgpress page: options, drop/pick/paste anywhere, drops split into batches of the server's
// size, one row per file paired with its job by position, live status over SSE that survives a
// lost server, results kept across reloads, downloads and the compare view.

import { ApiError, apiKey, follow, json, request, setApiKey, sleep, upload } from "./client.js";
import { openCompare } from "./compare.js";
import {
  adopt, applyJob, byJob, compactIf, forgetAll, handlers, isPending, makeDrop, makeRow, paint, remember,
  restoreDrop, rows, setState, unread,
} from "./rows.js";
import { saved } from "./store.js";
import { bytes, duration, formatName, megabytes } from "./words.js";

const $ = (id) => document.getElementById(id);
const alertBox = $("alert");
const FIRST_RETRY_MS = 1000;
const LAST_RETRY_MS = 8000;
const UPLOAD_ATTEMPTS = 6;
let limits = null;

function showAlert(message) {
  alertBox.textContent = message;
  alertBox.hidden = !message;
}

function fail(error) {
  showAlert(error instanceof ApiError ? error.message : String(error));
  if (error instanceof ApiError && error.status === 401) {
    $("key-box").open = true;
    $("api-key").focus();
  }
}

// --- the connection: said within seconds, retried with backoff ----------------------------

const connection = {
  down: false,
  streams: new AbortController(),
  lost(retryMs) {
    this.down = true;
    $("connection").hidden = false;
    $("connection").textContent =
      `Lost contact with the server. Retrying in ${Math.round(retryMs / 1000)} s; results so far are safe.`;
  },
  back() {
    if (!this.down) return;
    this.down = false;
    $("connection").hidden = true;
    $("connection").textContent = "";
  },
  // Break every open event stream so its watcher reads the state again.
  restartStreams() {
    this.streams.abort();
    this.streams = new AbortController();
  },
};

// A stream can hang without breaking (a frozen server, a dropped network): probe while work is pending.
// Every 1.5 s, allowed 2 s to answer: a silent server is said within 5 s.
async function probe() {
  for (;;) {
    await sleep(1500);
    if (!rows.some(isPending) || connection.down) continue;
    try {
      const response = await fetch("/healthz", { signal: AbortSignal.timeout(2000), cache: "no-store" });
      if (!response.ok) throw new Error(String(response.status));
    } catch {
      connection.lost(FIRST_RETRY_MS);
      connection.restartStreams();
    }
  }
}

// --- limits ----------------------------------------------------------------------------------

async function loadLimits() {
  let delay = FIRST_RETRY_MS;
  for (;;) {
    try {
      limits = await json("/v1/limits");
      break;
    } catch {
      $("limits").textContent = "This server's limits are not known yet (cannot reach it); retrying.";
      await sleep(delay);
      delay = Math.min(delay * 2, LAST_RETRY_MS);
    }
  }
  const types = limits.media_types.map(formatName).join(", ");
  const megapixels = Math.round(limits.max_pixels / 1e6);
  $("limits").textContent =
    `Up to ${megabytes(limits.max_upload_bytes)} and ${megapixels} megapixels per image · ${types} · ` +
    `results are kept ${duration(limits.retention_seconds)}.`;
}

// --- options ---------------------------------------------------------------------------------

function chosenOptions() {
  const options = {};
  if ($("format").value) options.format = $("format").value;
  if ($("quality-auto").checked) {
    options.quality = "auto";
    options.target = $("target").value;
  } else {
    options.quality = $("quality").value;
  }
  if ($("max-kb").value) options.max_bytes = String(Math.round(Number($("max-kb").value) * 1000));
  // width/height with the default fit (scale-down) are maximums: never enlarged.
  if ($("max-width").value) options.width = $("max-width").value;
  if ($("max-height").value) options.height = $("max-height").value;
  if (options.width || options.height) options.fit = $("fit").value;
  if ($("effort").value !== "balanced") options.effort = $("effort").value;
  if ($("keep-metadata").checked) options.metadata = "keep";
  return options;
}

function showOptions() {
  const auto = $("quality-auto").checked;
  $("quality").disabled = auto;
  $("target").disabled = !auto;
  $("fit").disabled = !$("max-width").value && !$("max-height").value;
  const fields = Object.entries(chosenOptions()).map(([k, v]) => `${k}=${v}`);
  $("request-preview").textContent = fields.join(" ");
}

$("options").addEventListener("input", showOptions);
$("options").addEventListener("submit", (event) => event.preventDefault());
$("api-key").value = apiKey();
// Every keystroke counts: the next request uses what is typed now, not once the field loses focus.
$("api-key").addEventListener("input", () => setApiKey($("api-key").value.trim()));

// --- persistence -----------------------------------------------------------------------------

// Read what the server still keeps of the saved drops; while it cannot be reached, wait.
async function restore() {
  const drops = saved();
  if (!drops.length) return;
  // Kept in what is saved while the server is read: a drop made meanwhile must not replace them.
  unread.push(...drops);
  const jobs = new Map();
  const batches = new Map();
  const locked = new Set(); // read with another key (or none): kept for when the key is typed
  const entries = drops.flatMap((drop) => drop.rows).filter((entry) => entry.id);
  const batchIds = [...new Set([...drops.flatMap((drop) => drop.batches), ...entries.map((entry) => entry.batch)])];
  const read = async (id, path, take) => {
    let delay = FIRST_RETRY_MS;
    for (;;) {
      try {
        take(await json(path));
        return;
      } catch (error) {
        // With a key, a 404 is another key's job as likely as a gone one (gone reads 410).
        if (error instanceof ApiError && (error.status === 401 || (error.status === 404 && apiKey()))) {
          locked.add(id);
          return;
        }
        if (error instanceof ApiError && !error.retryable) return; // expired or deleted: forgotten
        connection.lost(delay);
        await sleep(delay);
        delay = Math.min(delay * 2, LAST_RETRY_MS);
      }
    }
  };
  const keep = (batch) => {
    batches.set(batch.id, batch);
    for (const job of batch.jobs) jobs.set(job.id, job);
  };
  await Promise.all([
    ...batchIds.filter(Boolean).map((id) => read(id, `/v1/batches/${id}`, keep)),
    ...entries.filter((entry) => !entry.batch).map((entry) => read(entry.id, `/v1/jobs/${entry.id}`, (job) => jobs.set(job.id, job))),
  ]);
  connection.back();
  const isLocked = (drop) =>
    drop.batches.some((id) => locked.has(id)) || drop.rows.some((entry) => locked.has(entry.batch || entry.id));
  for (const drop of drops.filter((drop) => !isLocked(drop))) {
    const at = unread.indexOf(drop);
    if (at >= 0) unread.splice(at, 1);
  }
  if (locked.size) showAlert("Some earlier results need the API key they were sent with: enter it and reload.");
  for (const drop of [...drops].reverse()) if (!isLocked(drop)) restoreDrop(drop, jobs);
  remember();
  for (const id of batches.keys()) watchBatch(id);
  for (const row of rows) if (!row.batch && isPending(row)) watchJob(row);
}

async function clearAll() {
  const jobs = rows.filter((row) => row.job).map((row) => row.job.id);
  $("clear").disabled = true;
  const queue = [...jobs];
  const deleteNext = async () => {
    while (queue.length) {
      const id = queue.shift();
      await request(`/v1/jobs/${id}`, { method: "DELETE" }).catch(() => {});
    }
  };
  await Promise.all([1, 2, 3, 4].map(deleteNext));
  forgetAll();
  $("clear").disabled = false;
}
$("clear").addEventListener("click", () => clearAll().catch(fail));

// --- following jobs --------------------------------------------------------------------------

function pendingIn(batchId) {
  return rows.some((row) => row.batch === batchId && isPending(row));
}

function loseBatch(batchId, words) {
  for (const row of rows) if (row.batch === batchId && isPending(row)) setState(row, "lost", words);
}

// A browser opens at most six connections to one server: streams keep room for uploads.
const MAX_STREAMS = 3;
let openStreams = 0;

// Read a batch's state into its rows; false once the server no longer has it.
async function readBatch(batchId) {
  let batch;
  try {
    batch = await json(`/v1/batches/${batchId}`);
  } catch (error) {
    if (!(error instanceof ApiError) || ![404, 410].includes(error.status)) throw error;
    loseBatch(batchId, "Lost: the server no longer has this batch.");
    return false;
  }
  batch.jobs.forEach(applyJob);
  const known = new Set(batch.jobs.map((job) => job.id));
  for (const row of rows) {
    if (row.batch === batchId && row.job && !known.has(row.job.id) && isPending(row)) {
      setState(row, "lost", "Lost: the server no longer has this file.");
    }
  }
  connection.back();
  return true;
}

// Follow a batch's events (or read it now and then when enough streams are open); when the
// server cannot be reached, say so, back off, read the batch when it answers, carry on.
async function watchBatch(batchId) {
  let delay = FIRST_RETRY_MS;
  while (pendingIn(batchId)) {
    try {
      if (openStreams >= MAX_STREAMS) {
        await sleep(2000);
        if (!(await readBatch(batchId))) return;
        delay = FIRST_RETRY_MS;
        continue;
      }
      openStreams++;
      try {
        await follow(`/v1/batches/${batchId}/events`, (name, data) => {
          if (name === "job") applyJob(data);
        }, connection.streams.signal);
      } finally {
        openStreams--;
      }
      connection.back();
      if (!pendingIn(batchId)) return;
      // The stream ended with rows still pending: read the batch before following it again.
      await sleep(delay);
      if (!(await readBatch(batchId))) return;
      continue;
    } catch (error) {
      if (error instanceof ApiError && [401, 404, 410].includes(error.status)) {
        loseBatch(batchId, `Lost: ${error.message}`);
        if (error.status === 401) fail(error);
        return;
      }
    }
    connection.lost(delay);
    await sleep(delay);
    delay = Math.min(delay * 2, LAST_RETRY_MS);
    try {
      if (!(await readBatch(batchId))) return;
      delay = FIRST_RETRY_MS;
    } catch {
      /* still unreachable: the loop says so and waits longer */
    }
  }
}

// One job outside a batch (a kept variant): long-poll it until it ends.
async function watchJob(row) {
  let delay = FIRST_RETRY_MS;
  while (isPending(row) && row.job) {
    try {
      applyJob(await json(`/v1/jobs/${row.job.id}?wait=25`));
      connection.back();
      delay = FIRST_RETRY_MS;
    } catch (error) {
      if (error instanceof ApiError && [404, 410].includes(error.status)) {
        setState(row, "lost", "Lost: the server no longer has this file.");
        return;
      }
      connection.lost(delay);
      await sleep(delay);
      delay = Math.min(delay * 2, LAST_RETRY_MS);
    }
  }
}

// --- uploads ---------------------------------------------------------------------------------

let uploads = Promise.resolve();

// A file the server would refuse, refused here before any byte is sent; null if it may go.
function refusedHere(file) {
  if (file.size === 0) return null; // the server says why, per file
  if (limits && file.size > limits.max_upload_bytes) {
    return `Not sent: ${bytes(file.size)} is over this server's ${megabytes(limits.max_upload_bytes)} limit.`;
  }
  if (file.type && !file.type.startsWith("image/")) {
    return `Not sent: this is not an image (${file.type}).`;
  }
  return null;
}

function addFiles(files) {
  if (!files.length) return;
  showAlert("");
  const options = chosenOptions();
  const drop = makeDrop(`${files.length} file${files.length > 1 ? "s" : ""}`);
  const fragment = document.createDocumentFragment();
  const sendable = [];
  for (const file of files) {
    const row = makeRow(drop, file.name, file, limits ? limits.max_upload_bytes : Infinity);
    fragment.append(row.element);
    const refusal = refusedHere(file);
    if (refusal) setState(row, "failed", refusal);
    else {
      setState(row, "waiting", "Waiting to upload");
      sendable.push(row);
    }
  }
  drop.element.querySelector(".rows").append(fragment);
  compactIf(drop);
  const size = limits ? limits.max_batch_files : 50;
  drop.groups = Math.ceil(sendable.length / size);
  for (let start = 0; start < sendable.length; start += size) {
    const group = sendable.slice(start, start + size);
    for (const row of group) row.part = start / size;
    uploads = uploads.then(() => sendBatch(group, options, drop)).then(remember).catch(fail);
  }
}

async function sendBatch(group, options, drop) {
  let delay = FIRST_RETRY_MS;
  for (let attempt = 1; ; attempt++) {
    const form = new FormData();
    for (const [key, value] of Object.entries(options)) form.append(key, value);
    for (const row of group) form.append("file", row.file, row.file.name);
    const fileBytes = group.reduce((sum, row) => sum + row.file.size, 0);
    for (const row of group) {
      row.progress = 0;
      setState(row, "uploading", "Uploading…");
    }
    let batch;
    try {
      batch = await upload("/v1/batches", form, (loaded, total) => showProgress(group, loaded - (total - fileBytes)));
    } catch (error) {
      for (const row of group) row.progress = null;
      const refusals = error instanceof ApiError ? error.details.rejected : null;
      if (refusals) {
        for (const item of refusals) setState(group[item.index], "failed", `Not accepted: ${item.error.message}`);
        return;
      }
      if (error instanceof ApiError && error.retryable && attempt < UPLOAD_ATTEMPTS) {
        connection.lost(delay);
        for (const row of group) setState(row, "waiting", `Waiting for the server (attempt ${attempt + 1})…`);
        await sleep(delay);
        delay = Math.min(delay * 2, LAST_RETRY_MS);
        continue;
      }
      const retryable = error instanceof ApiError && (error.retryable || error.status === 401);
      for (const row of group) setState(row, retryable ? "lost" : "failed", retryable ? `Lost: ${error.message}` : `Not accepted: ${error.message}`);
      fail(error);
      return;
    }
    connection.back();
    drop.batches.push(batch.id);
    for (const job of batch.jobs) adopt(group[job.index], job, batch.id);
    for (const item of batch.rejected) {
      group[item.index].progress = null;
      setState(group[item.index], "failed", `Not accepted: ${item.error.message}`);
    }
    watchBatch(batch.id);
    return;
  }
}

function showProgress(group, sent) {
  let offset = 0;
  for (const row of group) {
    row.progress = Math.max(0, Math.min(1, (sent - offset) / Math.max(row.file.size, 1)));
    offset += row.file.size;
    row.words = row.progress >= 1 ? "Uploaded, checking…" : `Uploading ${Math.round(row.progress * 100)}%`;
    paint(row);
  }
}

async function retry(row) {
  // The job may still be there (a key was missing, the server was away): follow it again.
  if (row.job) {
    try {
      adopt(row, await json(row.job.links.self), row.batch);
      if (isPending(row)) {
        if (row.batch) watchBatch(row.batch);
        else watchJob(row);
      }
      return;
    } catch (error) {
      if (!row.file) {
        setState(row, "lost", `Lost: ${error.message}`);
        return;
      }
    }
  }
  if (row.file) resend(row);
}

// Send a row's file again, with the options the form has now.
function resend(row) {
  if (row.job) byJob.delete(row.job.id);
  row.job = null;
  setState(row, "waiting", "Waiting to upload");
  uploads = uploads.then(() => sendBatch([row], chosenOptions(), row.drop)).then(remember).catch(fail);
}

// --- compare ---------------------------------------------------------------------------------

function compare(row) {
  const finished = rows.filter((item) => item.state === "finished");
  openCompare({
    jobs: finished.map((item) => item.job),
    start: finished.indexOf(row),
    keep: (index, job) => adopt(finished[index], job, null),
  }).catch(fail);
}

handlers.compare = compare;
handlers.retry = (row) => retry(row).catch(fail);
handlers.again = resend;
handlers.fail = fail;

// --- adding files: the whole window is the drop target ---------------------------------------

$("files").addEventListener("change", (event) => {
  addFiles([...event.target.files]);
  event.target.value = "";
});

let dragDepth = 0;
window.addEventListener("dragenter", (event) => {
  event.preventDefault();
  dragDepth++;
  document.body.classList.add("dragging");
});
window.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) document.body.classList.remove("dragging");
});
// Without these a file dropped outside the zone would replace the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  document.body.classList.remove("dragging");
  if ($("compare").open) return;
  addFiles([...(event.dataTransfer?.files || [])]);
});
document.addEventListener("paste", (event) => {
  const files = [...event.clipboardData.files];
  if (files.length) addFiles(files);
});

showOptions();
loadLimits();
restore().catch(fail);
probe();
