// Every session this CSE holds that the originator may see (docs/sessions.md
// "Who sees sessions": the admin sees all), with endpoints, next hops,
// policies and their next window, stored requests, and the history. The API
// never returns a session's credentials; the renderer hides "scr" anyway.

import {children, only} from "./api.js";
import {fill, h, table} from "./dom.js";
import {nextWindow} from "./schedule.js";

const MAX = 100; // sessions and requests read per refresh
const STATES = {1: "establishing", 2: "established", 3: "terminating"};
const REQ_STATES = {1: "completed", 2: "failed", 3: "pending", 4: "forwarded", 5: "partially completed"};
const OPS = {1: "CREATE", 2: "RETRIEVE", 3: "UPDATE", 4: "DELETE", 5: "NOTIFY"};
const OP_BITS = [[1, "C"], [2, "R"], [4, "U"], [8, "D"], [16, "N"], [32, "Disc"]];

const stem = (aei) => String(aei || "").split("/").pop();

function listOf(body, root) {
  const v = body && body[root];
  return Array.isArray(v) ? v : [];
}

export class Sessions {
  constructor(api, status, cseName) {
    this.api = api;
    this.status = status;
    this.cseName = cseName;
    this.root = document.getElementById("sessions");
    document.getElementById("sessions-refresh").addEventListener("click", () => this.load());
  }

  async load() {
    const found = await this.api.get(this.cseName, `fu=1&ty=9002&lim=${MAX}`);
    this.status.show("discover sessions", found);
    if (found.rsc !== 2000) {
      fill(this.root, h("p", {class: "error"}, `${found.rsc} ${found.dbg}`));
      return;
    }
    const uris = listOf(found.body, "m2m:uril");
    const requests = await this.requests();
    const cards = [];
    for (const uri of uris) {
      const r = await this.api.get(String(uri), "rcn=4");
      const [, s] = only(r.body);
      cards.push(s ? this.card(String(uri), s, requests) : h("p", {class: "error"}, `${uri}: ${r.rsc} ${r.dbg}`));
    }
    fill(this.root, cards.length ? cards : h("p", {class: "muted"}, "No session visible to this originator."));
  }

  async requests() {
    const found = await this.api.get(this.cseName, `fu=1&ty=17&lim=${MAX}`);
    const out = [];
    for (const uri of listOf(found.body, "m2m:uril")) {
      const [, req] = only((await this.api.get(String(uri))).body);
      if (req) out.push(req);
    }
    return out;
  }

  card(uri, s, requests) {
    const kids = children({"m2m:sess": s});
    const of = (ty) => kids.filter((c) => c.ty === ty);
    const policies = of(9005).flatMap((spc) => children({"m2m:spc": spc})).filter((c) => c.ty === 9006);
    const ends = new Set([stem(s.iep), stem(s.tep)]);
    const stored = requests.filter((q) => ends.has(stem(q.org)));
    const hst = Array.isArray(s.hst) ? s.hst.slice().reverse() : [];
    return h("article", {class: "session", "data-sid": s.sid},
      h("h3", {}, "Session ", h("code", {}, String(s.sid || "").slice(0, 16) + "…"), " ",
        h("span", {class: `state s${s.sst}`}, STATES[s.sst] || String(s.sst))),
      table(["resource", "initiator (iep)", "target (tep)", "security", "requests (rqn)", "expires"],
        [[uri, s.iep, s.tep, s.sec === 0 ? "session ID only" : "MAC", s.rqn ?? 0, s.et]]),
      h("h4", {}, "Endpoints"),
      table(["role", "AE", "CSE", "attributes (epa)"], of(9003).map((e) =>
        [e.rol === 1 ? "initiator" : "target", e.aei, e.csi, JSON.stringify(e.epa ?? {})])),
      h("h4", {}, "Next hops"),
      of(9004).length
        ? table(["CSE", "points of access", "endpoint reached", "state"], of(9004).map((n) =>
          [n.csi, (n.poa || []).join(" "), n.aei, n.nst === 2 ? "unreachable" : "reachable"]))
        : h("p", {class: "muted"}, "none (both endpoints are here, or none recorded)"),
      h("h4", {}, "Policies"),
      policies.length
        ? table(["name", "kind", "windows (sch, UTC)", "next window", "hop", "endpoint", "ops", "mbd", "mbr"],
          policies.map((p) => [p.rn, p.spt === 2 ? "store-and-forward" : "immediate", (p.sch || []).join(" | "),
            p.spt === 2 ? nextWindow(p.sch) : "", p.hop ?? "all", p.aep ?? "both",
            p.ops === undefined ? "all" : OP_BITS.filter(([b]) => p.ops & b).map(([, n]) => n).join(""),
            p.mbd ?? "", p.mbr ?? ""]))
        : h("p", {class: "muted"}, "none: delivery is immediate"),
      h("h4", {}, "Stored requests"),
      stored.length
        ? table(["request", "op", "target", "originator", "state", "result"], stored.map((q) =>
          [q.ri, OPS[q.op] || q.op, q.tg, q.org, REQ_STATES[q.rs] || q.rs, q.ors?.rsc ?? ""]))
        : h("p", {class: "muted"}, "none"),
      h("h4", {}, `History (hst, newest first, ${hst.length})`),
      hst.length
        ? table(["time", "op", "to", "rsc", "hop", "request ID"], hst.map((x) =>
          [x.ts, OPS[x.op] || x.op, x.to, x.rsc, x.hop, x.rqi]))
        : h("p", {class: "muted"}, "no exchange yet"));
  }
}
