// Results that survive a reload: the job ids (and their batch) of this browser's rows, kept in
// localStorage for as long as the server keeps the jobs.

const KEY = "imgpress.results";

export function saved() {
  try {
    const entries = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(entries) ? entries.filter((entry) => entry && typeof entry.id === "string") : [];
  } catch {
    return [];
  }
}

// entries: [{id, batch, name}] in the order the rows are shown.
export function save(entries) {
  if (entries.length) localStorage.setItem(KEY, JSON.stringify(entries));
  else localStorage.removeItem(KEY);
}
