// Talking to the imgpress API: requests with the optional API key, uploads with progress, and
// SSE over fetch (EventSource cannot send an Authorization header).

const KEY = "imgpress.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  // Worth trying again later: the server was unreachable, busy, or the upload timed out.
  get retryable() {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

export const UNREACHABLE = "Cannot reach the imgpress API. Check that it is running, then try again.";
const NEEDS_KEY = "This server needs an API key: enter it under “API key”.";
const WRONG_KEY = "The server refused this API key: check it under “API key”.";

function errorFrom(status, text) {
  let code = "error";
  let message = `The server answered ${status}.`;
  let details = {};
  try {
    const body = JSON.parse(text);
    ({ code, message, ...details } = body.error);
  } catch {
    /* not our JSON: keep the generic message */
  }
  if (status === 401) message = apiKey() ? WRONG_KEY : NEEDS_KEY;
  return new ApiError(status, code, message, details);
}

function withKey(headers = {}) {
  const result = new Headers(headers);
  if (apiKey()) result.set("Authorization", `Bearer ${apiKey()}`);
  return result;
}

export async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: withKey(options.headers) });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "unreachable", UNREACHABLE);
  }
  if (response.ok) return response;
  throw errorFrom(response.status, await response.text().catch(() => ""));
}

export async function json(path, options) {
  return (await request(path, options)).json();
}

// POST a form with upload progress (fetch cannot report it): onProgress(bytesSent, total).
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    if (apiKey()) xhr.setRequestHeader("Authorization", `Bearer ${apiKey()}`);
    xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded, event.total));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText));
      else reject(errorFrom(xhr.status, xhr.responseText));
    });
    for (const name of ["error", "abort", "timeout"]) {
      xhr.addEventListener(name, () => reject(new ApiError(0, "unreachable", UNREACHABLE)));
    }
    xhr.send(form);
  });
}

// Call onEvent(name, data) for each server-sent event until the stream ends; throws if it breaks.
export async function follow(path, onEvent, signal) {
  const response = await request(path, { headers: { Accept: "text/event-stream" }, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "unreachable", UNREACHABLE);
    }
    if (chunk.done) return;
    buffer += chunk.value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

// The file name a Content-Disposition gives: its UTF-8 form (filename*) if any, else the ASCII one.
export function attachmentName(disposition) {
  const encoded = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  if (encoded) {
    try {
      return decodeURIComponent(encoded[1]);
    } catch {
      // a malformed escape: the ASCII name below
    }
  }
  const plain = /filename="([^"]+)"/.exec(disposition);
  return plain ? plain[1] : "";
}

// Fetch a file with the key and hand it to the browser as a download. Always asked of the server
// (a copy kept for a thumbnail costs a 304): a file it deleted is not handed out as if it were there.
export async function download(path, fallbackName) {
  const response = await request(path, { cache: "no-cache" });
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = attachmentName(response.headers.get("Content-Disposition") || "") || fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export async function objectUrl(path) {
  return URL.createObjectURL(await (await request(path)).blob());
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
