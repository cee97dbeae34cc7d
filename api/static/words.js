// How the page puts sizes, formats and job outcomes into words.

const FORMAT_NAMES = {
  "image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/gif": "GIF",
  "image/avif": "AVIF", "image/heic": "HEIC",
};
// Inputs that may carry transparency; JPEG output has none.
const ALPHA_TYPES = new Set(["image/png", "image/webp", "image/gif", "image/avif", "image/heic"]);
// Inputs often animated, and the outputs that keep one frame of an animation.
const ANIMATED_TYPES = new Set(["image/gif", "image/webp"]);
const STILL_OUTPUTS = new Set(["image/jpeg", "image/avif"]);

// Sizes in decimal units (1 kB = 1000 bytes), as the CLI and most systems show them.
export function bytes(count) {
  if (count < 1000) return `${count} B`;
  if (count < 1000 ** 2) return `${(count / 1000).toFixed(1)} kB`;
  if (count < 1000 ** 3) return `${(count / 1000 ** 2).toFixed(1)} MB`;
  return `${(count / 1000 ** 3).toFixed(1)} GB`;
}

export function megabytes(count) {
  const value = count / 1000 ** 2;
  return `${Number.isInteger(value) ? value : value.toFixed(1)} MB`;
}

export function formatName(mediaType) {
  return FORMAT_NAMES[mediaType] || mediaType || "?";
}

// "WebP q62" / "PNG lossless" / "JPEG (original kept)"
export function encoding(output) {
  const name = formatName(output.media_type);
  if (output.quality == null) return `${name}, original kept`;
  if (output.quality === 100 && output.format !== "jpeg") return `${name} lossless`;
  return `${name} q${output.quality}`;
}

export function sizes(job) {
  if (!job.output) return bytes(job.input.bytes);
  const change = Math.round((1 - job.output.bytes / job.input.bytes) * 100);
  const word = change >= 0 ? `${change}% smaller` : `${-change}% larger`;
  // The effort, when not the default, tells drops made with different ones apart.
  const effort = job.options?.effort && job.options.effort !== "balanced" ? `, effort ${job.options.effort}` : "";
  return `${bytes(job.input.bytes)} → ${bytes(job.output.bytes)} (${word}) · ${encoding(job.output)}${effort}`;
}

// What a user should know about a finished job beyond "done", in words.
export function warnings(job) {
  const found = [];
  if (!job.output) return found;
  if (job.output.bytes > job.input.bytes) found.push("Larger than the upload: keep the original instead.");
  if (job.output.quality == null) found.push("No smaller version found: the original was kept.");
  if (job.output.media_type === "image/jpeg" && ALPHA_TYPES.has(job.input.media_type)) {
    found.push("JPEG has no transparency: transparent areas, if any, were filled.");
  }
  if (STILL_OUTPUTS.has(job.output.media_type) && ANIMATED_TYPES.has(job.input.media_type)) {
    const name = formatName(job.output.media_type);
    found.push(`${name} holds one frame: if this was an animation, only its first frame was kept.`);
  }
  return found;
}

export function duration(seconds) {
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? "" : "s"}`;
  if (seconds % 60 === 0) return `${seconds / 60} minutes`;
  return `${seconds} seconds`;
}
