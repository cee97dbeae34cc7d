// Results that survive a reload: each drop's title, batches and rows (a row's job id, or what it
// said when it has none), kept in localStorage while the server keeps a job of the drop.

const KEY = "imgpress.results";

// [{title, groups, batches: [id], rows: [{name, id, batch, part} | {name, state, words}]}], oldest first.
export function saved() {
  try {
    const found = JSON.parse(localStorage.getItem(KEY) || "[]");
    if (!Array.isArray(found)) return [];
    // Saved by an earlier page: job ids only, shown as one drop with one ZIP button.
    if (found.some((entry) => typeof entry?.id === "string")) {
      const rows = found.filter((entry) => typeof entry?.id === "string");
      const batches = [...new Set(rows.map((entry) => entry.batch).filter(Boolean))];
      return [{ title: "Earlier results", groups: 1, batches, rows }];
    }
    return found.filter((drop) => Array.isArray(drop?.rows) && Array.isArray(drop.batches));
  } catch {
    return [];
  }
}

export function save(drops) {
  if (drops.length) localStorage.setItem(KEY, JSON.stringify(drops));
  else localStorage.removeItem(KEY);
}
