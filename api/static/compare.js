// The before/after view: the compressed image over the original at the same scale, revealed by
// a slider; both zoom together and the view scrolls.

import { objectUrl } from "./client.js";

const dialog = document.getElementById("compare");
const before = document.getElementById("compare-before");
const after = document.getElementById("compare-after");
const split = document.getElementById("compare-split");
const zoom = document.getElementById("compare-zoom");
const stage = document.getElementById("compare-stage");
const line = document.getElementById("compare-line");
const sizes = document.getElementById("compare-sizes");

function apply() {
  after.style.clipPath = `inset(0 0 0 ${split.value}%)`;
  line.style.left = `${split.value}%`;
  stage.style.width = `${Number(zoom.value) * 100}%`;
}

split.addEventListener("input", apply);
zoom.addEventListener("input", apply);
document.getElementById("compare-close").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", () => {
  for (const image of [before, after]) {
    if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
    image.removeAttribute("src");
  }
});

export async function openCompare(job, describe) {
  document.getElementById("compare-title").textContent = `Compare: ${job.input.filename}`;
  sizes.textContent = describe;
  split.value = 50;
  zoom.value = 1;
  apply();
  const [original, result] = await Promise.all([objectUrl(job.links.input), objectUrl(job.links.result)]);
  before.src = original;
  after.src = result;
  dialog.showModal();
  split.focus();
}
