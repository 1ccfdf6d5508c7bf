// The CSE's own oneM2M HTTP API, from the browser, as the originator the
// user chose: the console has no other way in (docs/webui.md).

let counter = 0;

export class Api {
  constructor(who) {
    this.who = who; // () => {origin, token}
  }

  headers(extra = {}) {
    const {origin, token} = this.who();
    const hd = {"X-M2M-RI": `webui-${Date.now().toString(36)}-${++counter}`, "X-M2M-RVI": "3",
      "Accept": "application/json", ...extra};
    if (origin) hd["X-M2M-Origin"] = origin;
    if (token) hd["Authorization"] = `Bearer ${token}`;
    return hd;
  }

  /** {status, rsc, body, dbg}; path is CSE-relative ("cse-in/ae1") or "~/..." */
  async send(method, path, {ty, body, query} = {}) {
    const extra = {};
    if (ty !== undefined) extra["Content-Type"] = `application/json;ty=${ty}`;
    else if (body !== undefined) extra["Content-Type"] = "application/json";
    const url = "/" + path.replace(/^\/+/, "") + (query ? `?${query}` : "");
    let resp;
    try {
      resp = await fetch(url, {method, headers: this.headers(extra), cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body)});
    } catch (err) {
      return {status: 0, rsc: 0, body: null, dbg: `network error: ${err}`};
    }
    const text = await resp.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
    const rsc = Number(resp.headers.get("X-M2M-RSC") || 0);
    const dbg = parsed && typeof parsed === "object" && typeof parsed["m2m:dbg"] === "string" ? parsed["m2m:dbg"] : "";
    return {status: resp.status, rsc, body: parsed, dbg};
  }

  get(path, query) { return this.send("GET", path, {query}); }
}

/** The one resource in a oneM2M answer: [root name, object] or [null, null]. */
export function only(body) {
  if (!body || typeof body !== "object") return [null, null];
  const keys = Object.keys(body).filter((k) => k.startsWith("m2m:"));
  return keys.length === 1 && body[keys[0]] && typeof body[keys[0]] === "object" ? [keys[0], body[keys[0]]] : [null, null];
}

/** The direct children in an rcn=8 answer: a list of resource objects. */
export function children(body) {
  const [, res] = only(body);
  const out = [];
  if (!res) return out;
  for (const [k, v] of Object.entries(res)) {
    if (!k.startsWith("m2m:") || !Array.isArray(v)) continue;
    for (const c of v) if (c && typeof c === "object") out.push(c);
  }
  return out;
}

export const TYPES = {
  1: "accessControlPolicy", 2: "AE", 3: "container", 4: "contentInstance", 5: "CSEBase", 9: "group",
  13: "mgmtObj", 14: "node", 15: "pollingChannel", 16: "remoteCSE", 17: "request", 23: "subscription",
  28: "flexContainer", 9001: "sessions", 9002: "session", 9003: "sessionEndpoint", 9004: "nextHop",
  9005: "sessionPolicies", 9006: "sessionPolicy",
};

export function typeName(ty) {
  return TYPES[ty] || `ty ${ty}`;
}
