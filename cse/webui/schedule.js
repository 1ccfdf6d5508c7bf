// When a store-and-forward window (a policy's sch: scheduleEntry strings,
// docs/onem2m.md "Schedule entries", always UTC) next opens, for display.

const RANGES = [[0, 59], [0, 59], [0, 23], [1, 31], [1, 12], [0, 6], [2000, 9999]];

function field(text, [lo, hi]) {
  if (text === "*") return null; // any
  const set = new Set();
  for (const part of text.split(",")) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (!m) throw new Error(`bad field ${part}`);
    const a = m[1] === "*" ? lo : Number(m[2]);
    const b = m[1] === "*" ? hi : (m[3] !== undefined ? Number(m[3]) : (m[4] ? hi : a));
    const step = m[4] ? Number(m[4]) : 1;
    if (step < 1) throw new Error(`bad step ${part}`);
    for (let v = a; v <= b; v += step) set.add(v);
  }
  return set;
}

function parse(entry) {
  const parts = entry.trim().split(/\s+/);
  if (parts.length !== 7) throw new Error(`"${entry}" has ${parts.length} fields, not 7`);
  return parts.map((p, i) => field(p, RANGES[i]));
}

const has = (set, v) => set === null || set.has(v);

function dayMatches(f, d) {
  return has(f[6], d.getUTCFullYear()) && has(f[4], d.getUTCMonth() + 1) && has(f[3], d.getUTCDate())
    && has(f[5], d.getUTCDay());
}

function nextInEntry(f, from, horizonMs) {
  const end = from + horizonMs;
  let t = Math.floor(from / 1000) * 1000;
  while (t <= end) {
    const d = new Date(t);
    if (!dayMatches(f, d)) {
      t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
      continue;
    }
    if (!has(f[2], d.getUTCHours())) { t = Math.floor(t / 3600000) * 3600000 + 3600000; continue; }
    if (!has(f[1], d.getUTCMinutes())) { t = Math.floor(t / 60000) * 60000 + 60000; continue; }
    if (!has(f[0], d.getUTCSeconds())) {
      const s = d.getUTCSeconds();
      let n = -1;
      for (let v = s + 1; v <= 59; v++) if (f[0].has(v)) { n = v; break; }
      t = n < 0 ? Math.floor(t / 60000) * 60000 + 60000 : t + (n - s) * 1000;
      continue;
    }
    return t;
  }
  return null;
}

/** "open now", the next opening as an ISO string, "none within a year", or an error text. */
export function nextWindow(sch, now = Date.now()) {
  if (!Array.isArray(sch) || sch.length === 0) return "";
  let best = null;
  try {
    for (const e of sch) {
      const t = nextInEntry(parse(String(e)), now, 366 * 86400000);
      if (t !== null && (best === null || t < best)) best = t;
    }
  } catch (err) {
    return `cannot read: ${err.message}`;
  }
  if (best === null) return "none within a year";
  if (best <= now) return "open now";
  return new Date(best).toISOString().replace(".000", "");
}
