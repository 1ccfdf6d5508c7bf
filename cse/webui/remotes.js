// The CSEs registered here (<remoteCSE>) and whether each answers now: a
// RETRIEVE of its CSEBase through this CSE, as the chosen originator.

import {only} from "./api.js";
import {fill, h, table} from "./dom.js";

const CST = {1: "IN", 2: "MN", 3: "ASN"};

function reach(r) {
  if (r.rsc === 2000) return "reachable";
  if ([4103, 4004].includes(r.rsc)) return `reachable (answered ${r.rsc})`;
  return `not reachable: ${r.rsc} ${r.dbg}`.trim();
}

export class Remotes {
  constructor(api, status, cseName) {
    this.api = api;
    this.status = status;
    this.cseName = cseName;
    this.root = document.getElementById("remotes");
    document.getElementById("remotes-refresh").addEventListener("click", () => this.load());
  }

  async load() {
    const found = await this.api.get(this.cseName, "fu=1&ty=16&lim=100");
    this.status.show("discover remote CSEs", found);
    const uris = found.body && Array.isArray(found.body["m2m:uril"]) ? found.body["m2m:uril"] : [];
    const rows = [];
    for (const uri of uris) {
      const [, c] = only((await this.api.get(String(uri))).body);
      if (!c) continue;
      const probe = c.cb ? await this.api.get(`~${c.cb}`) : {rsc: 0, dbg: "no cb"};
      rows.push([c.csi ?? "", c.rn ?? "", c.cb ?? "", CST[c.cst] ?? "", "registered", reach(probe),
        (c.poa || []).join(" "), (c.srv || []).join(","), (c.scp || []).join(",") || "none", c.rr ? "yes" : "no"]);
    }
    fill(this.root, found.rsc !== 2000 ? h("p", {class: "error"}, `${found.rsc} ${found.dbg}`)
      : rows.length ? table(["CSE-ID", "name", "CSEBase", "type", "registration", "now", "points of access",
        "releases (srv)", "capabilities (scp)", "request reachable"], rows)
        : h("p", {class: "muted"}, "No remote CSE registered here (or none visible to this originator)."));
  }
}
