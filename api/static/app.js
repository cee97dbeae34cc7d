// The imgpress page: options, drop/pick/paste, one batch per drop followed live over SSE,
// per-file rows, totals, downloads and the compare view.

import { ApiError, apiKey, download, follow, json, setApiKey } from "./client.js";
import { openCompare } from "./compare.js";

const $ = (id) => document.getElementById(id);
const alertBox = $("alert");
const rows = new Map(); // job id -> {job, element}
const STATUS_WORDS = { queued: "Waiting", started: "Compressing…", finished: "Done", failed: "Failed" };
const FORMAT_NAMES = { "image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/gif": "GIF" };

function bytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} KB`;
  return `${(count / 1024 / 1024).toFixed(2)} MB`;
}

function showAlert(message) {
  alertBox.textContent = message;
  alertBox.hidden = !message;
}

// --- options -----------------------------------------------------------------------------

function chosenOptions() {
  const options = {};
  if ($("format").value) options.format = $("format").value;
  if (!$("quality-auto").checked) options.quality = $("quality").value;
  // width/height with the default fit (scale-down) are maximums: never enlarged.
  if ($("max-width").value) options.width = $("max-width").value;
  if ($("max-height").value) options.height = $("max-height").value;
  if ($("keep-metadata").checked) options.metadata = "keep";
  return options;
}

function showOptions() {
  const auto = $("quality-auto").checked;
  $("quality").disabled = auto;
  $("quality-value").textContent = auto ? "auto" : $("quality").value;
  const fields = Object.entries(chosenOptions()).map(([k, v]) => `${k}=${v}`);
  $("request-preview").textContent = fields.length ? fields.join(" ") : "(server defaults)";
}

$("options").addEventListener("input", showOptions);
$("options").addEventListener("submit", (event) => event.preventDefault());
$("api-key").value = apiKey();
$("api-key").addEventListener("change", () => setApiKey($("api-key").value.trim()));

// --- rows --------------------------------------------------------------------------------

function makeRow(file) {
  const row = document.createElement("li");
  row.className = "row";
  row.innerHTML = `
    <img class="thumb" alt="">
    <div class="info">
      <span class="name"></span>
      <span class="status" role="status"></span>
      <span class="sizes"></span>
    </div>
    <div class="actions"></div>`;
  row.querySelector(".name").textContent = file.name;
  if (file.type.startsWith("image/")) {
    row.querySelector(".thumb").src = URL.createObjectURL(file);
  }
  setStatus(row, "uploading", "Uploading…");
  return row;
}

function setStatus(row, state, words) {
  row.dataset.state = state;
  row.querySelector(".status").textContent = words;
}

function describe(job) {
  if (!job.output) return `${bytes(job.input.bytes)}`;
  const percent = Math.round((job.saved_ratio || 0) * 100);
  return `${bytes(job.input.bytes)} → ${bytes(job.output.bytes)} (${percent}% saved)`;
}

function updateRow(job) {
  const entry = rows.get(job.id);
  if (!entry) return;
  entry.job = job;
  const row = entry.element;
  const words = job.status === "failed" ? `Failed: ${job.error.message}` : STATUS_WORDS[job.status];
  setStatus(row, job.status, words);
  const format = job.output ? ` · ${FORMAT_NAMES[job.output.media_type] || job.output.media_type}` : "";
  row.querySelector(".sizes").textContent = describe(job) + format;
  const actions = row.querySelector(".actions");
  if (job.status === "finished" && !actions.childElementCount) {
    const compare = button("Compare", () => openCompare(job, describe(job)).catch(fail));
    compare.setAttribute("aria-label", `Compare ${job.input.filename}`);
    const save = button("Download", () => download(job.links.result, job.input.filename).catch(fail));
    save.setAttribute("aria-label", `Download ${job.input.filename}`);
    actions.append(compare, save);
  }
  showTotals();
}

function button(label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.addEventListener("click", onClick);
  return element;
}

function fail(error) {
  showAlert(error instanceof ApiError ? error.message : String(error));
  if (error instanceof ApiError && error.status === 401) $("key-box").open = true;
}

function showTotals() {
  const jobs = [...rows.values()].map((entry) => entry.job).filter(Boolean);
  const done = jobs.filter((job) => job.output);
  if (!jobs.length) return;
  const input = done.reduce((sum, job) => sum + job.input.bytes, 0);
  const output = done.reduce((sum, job) => sum + job.output.bytes, 0);
  const percent = input ? Math.round(((input - output) / input) * 100) : 0;
  $("totals").textContent =
    `${done.length} of ${jobs.length} done · ${bytes(input)} → ${bytes(output)} · saved ${bytes(input - output)} (${percent}%)`;
}

// --- uploads -----------------------------------------------------------------------------

function ignoredOptions(sent, jobs) {
  if (!jobs.length) return [];
  const kept = jobs[0].options || {};
  return Object.keys(sent).filter((key) => !(key in kept));
}

async function upload(files) {
  if (!files.length) return;
  showAlert("");
  const options = chosenOptions();
  const section = document.createElement("section");
  section.className = "batch";
  section.innerHTML = `<div class="batch-head"><h3></h3><span class="notice"></span></div><ul class="rows"></ul>`;
  section.querySelector("h3").textContent = `${files.length} file${files.length > 1 ? "s" : ""}`;
  const list = section.querySelector(".rows");
  const pending = files.map((file) => {
    const element = makeRow(file);
    list.append(element);
    return { file, element };
  });
  $("batches").prepend(section);

  const form = new FormData();
  for (const { file } of pending) form.append("file", file, file.name);
  for (const [key, value] of Object.entries(options)) form.append(key, value);
  let batch;
  try {
    batch = await json("/v1/batches", { method: "POST", body: form });
  } catch (error) {
    for (const { element } of pending) setStatus(element, "failed", `Not accepted: ${error.message}`);
    fail(error);
    return;
  }
  // Jobs come back in upload order; the files the server refused are listed by name instead.
  const refused = new Map(batch.rejected.map((item) => [item.filename, item.error.message]));
  const queue = [...batch.jobs];
  for (const { file, element } of pending) {
    if (!queue.length || queue[0].input.filename !== file.name) {
      setStatus(element, "failed", `Not accepted: ${refused.get(file.name) || "the server refused this file."}`);
      continue;
    }
    const job = queue.shift();
    rows.set(job.id, { job, element });
    element.dataset.job = job.id;
    updateRow(job);
  }
  const ignored = ignoredOptions(options, batch.jobs);
  if (ignored.length) {
    section.querySelector(".notice").textContent =
      `This server does not support ${ignored.join(", ")} yet; those options were ignored.`;
  }
  if (batch.jobs.length) {
    const zip = button("Download all (ZIP)", () => download(batch.links.archive, "imgpress.zip").catch(fail));
    zip.disabled = true;
    section.querySelector(".batch-head").append(zip);
    try {
      await follow(batch.links.events, (name, data) => {
        if (name === "job" && data.status !== "deleted") updateRow(data);
        if (name === "batch") zip.disabled = data.counts.finished === 0;
      });
    } catch (error) {
      fail(error);
    }
  }
}

$("files").addEventListener("change", (event) => {
  upload([...event.target.files]);
  event.target.value = "";
});

const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  upload([...event.dataTransfer.files]);
});
document.addEventListener("paste", (event) => {
  const files = [...event.clipboardData.files];
  if (files.length) upload(files);
});

showOptions();
