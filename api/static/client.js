// Talking to the imgpress API: requests with the optional API key, and SSE over fetch
// (EventSource cannot send an Authorization header).

const KEY = "imgpress.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const UNREACHABLE = "Cannot reach the imgpress API. Check that it is running, then try again.";

export async function request(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (apiKey()) headers.set("Authorization", `Bearer ${apiKey()}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch {
    throw new ApiError(0, "unreachable", UNREACHABLE);
  }
  if (response.ok) return response;
  let code = "error";
  let message = `The server answered ${response.status}.`;
  try {
    const body = await response.json();
    code = body.error.code;
    message = body.error.message;
  } catch {
    /* not our JSON: keep the generic message */
  }
  if (response.status === 401) message = "This server needs an API key: enter it under “API key”.";
  throw new ApiError(response.status, code, message);
}

export async function json(path, options) {
  return (await request(path, options)).json();
}

// Call onEvent(name, data) for each server-sent event until the stream ends.
export async function follow(path, onEvent) {
  const response = await request(path, { headers: { Accept: "text/event-stream" } });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
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

// Fetch a file with the key and hand it to the browser as a download.
export async function download(path, fallbackName) {
  const response = await request(path);
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = match ? match[1] : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export async function objectUrl(path) {
  return URL.createObjectURL(await (await request(path)).blob());
}
