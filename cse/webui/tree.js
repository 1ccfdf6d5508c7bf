// The resource tree: children loaded on demand (RETRIEVE rcn=8&lvl=1), the
// full resource on click, and the CREATE / UPDATE / DELETE / discovery forms.

import {children, only, typeName} from "./api.js";
import {fill, h, pretty} from "./dom.js";

const CHILD_LIMIT = 200;

const KEYS = {
  2: ["api", "aei", "poa"], 3: ["cni", "cbs", "mni"], 4: ["cnf", "cs"], 9: ["mt", "cnm"], 16: ["csi", "poa"],
  17: ["rs", "op", "tg"], 23: ["nu"], 9002: ["sst", "tep", "rqn"], 9003: ["aei", "rol"], 9004: ["csi", "nst"],
  9006: ["spt", "sch"], 5: ["csi", "cst"],
};

const TEMPLATES = {
  3: ["m2m:cnt", {}], 4: ["m2m:cin", {cnf: "text/plain:0", con: "hello"}], 2: ["m2m:ae", {api: "Nconsole", rr: false, srv: ["3"]}],
  23: ["m2m:sub", {nu: [], enc: {net: [1, 3]}}], 1: ["m2m:acp", {pv: {acr: [{acor: [], acop: 63}]}, pvs: {acr: [{acor: [], acop: 63}]}}],
  9: ["m2m:grp", {mid: [], mnm: 10}], 9002: ["m2m:sess", {tep: ""}], 9006: ["m2m:spo", {spt: 1}],
};

function keyText(res) {
  const out = [];
  for (const k of KEYS[res.ty] || []) {
    if (res[k] === undefined) continue;
    const v = typeof res[k] === "object" ? JSON.stringify(res[k]) : String(res[k]);
    out.push(`${k}=${v.length > 40 ? v.slice(0, 40) + "…" : v}`);
  }
  if (Array.isArray(res.lbl) && res.lbl.length) out.push(`lbl=${res.lbl.join(",").slice(0, 40)}`);
  return out.join(" ");
}

export class Tree {
  constructor(api, status, cseName) {
    this.api = api;
    this.status = status;
    this.cseName = cseName;
    this.root = document.getElementById("tree");
    this.selected = null; // {ri, path, res, li}
    this.deleteArmed = false;
    const sel = document.getElementById("create-ty");
    for (const ty of Object.keys(TEMPLATES)) sel.append(h("option", {value: ty}, `${typeName(Number(ty))} (${ty})`));
    sel.value = "3";
    sel.addEventListener("change", () => this.template());
    this.template();
    document.getElementById("create-form").addEventListener("submit", (e) => { e.preventDefault(); this.create(); });
    document.getElementById("update-form").addEventListener("submit", (e) => { e.preventDefault(); this.update(); });
    document.getElementById("discover-form").addEventListener("submit", (e) => { e.preventDefault(); this.discover(); });
    document.getElementById("delete-button").addEventListener("click", () => this.remove());
  }

  template() {
    const ty = Number(document.getElementById("create-ty").value);
    const [root, attrs] = TEMPLATES[ty];
    document.getElementById("create-body").value = JSON.stringify({[root]: attrs}, null, 2);
  }

  async load() {
    const as = this.api.who().origin;
    delete this.root.dataset.loadedAs;
    fill(this.root, h("p", {class: "muted"}, "loading…"));
    const r = await this.api.get(this.cseName);
    const [, res] = only(r.body);
    if (!res) {
      fill(this.root, h("p", {class: "error"}, `RETRIEVE ${this.cseName}: ${r.rsc} ${r.dbg}`));
      this.root.dataset.loadedAs = as;
      return;
    }
    const ul = h("ul", {class: "tree"});
    fill(this.root, ul);
    const li = this.node(res, this.cseName);
    ul.append(li);
    await this.expand(li);
    await this.select(li);
    this.root.dataset.loadedAs = as; // which originator the tree shows (the tests wait on it)
  }

  node(res, path) {
    const li = h("li", {"data-ri": res.ri, "data-ty": res.ty, "data-path": path});
    li._res = res;
    const toggle = h("button", {class: "toggle", title: "children", "aria-label": "show children"}, "+");
    toggle.addEventListener("click", (e) => { e.stopPropagation(); this.toggle(li); });
    const label = h("span", {class: "label", tabindex: 0},
      h("span", {class: "ty"}, typeName(res.ty)), " ", h("span", {class: "rn"}, res.rn ?? res.ri), " ",
      h("span", {class: "keys"}, keyText(res)));
    label.addEventListener("click", () => this.select(li));
    li.append(toggle, label);
    return li;
  }

  async toggle(li) {
    const open = li.querySelector(":scope > ul");
    if (open) { open.remove(); li.querySelector(":scope > .toggle").textContent = "+"; return; }
    await this.expand(li);
  }

  async expand(li) {
    const path = li.dataset.path;
    const r = await this.api.get(path, `rcn=8&lvl=1&lim=${CHILD_LIMIT}`);
    li.querySelector(":scope > .toggle").textContent = "−";
    const ul = h("ul", {});
    if (r.rsc !== 2000) {
      ul.append(h("li", {class: "error"}, `${r.rsc} ${r.dbg}`));
    } else {
      const kids = children(r.body);
      for (const c of kids) ul.append(this.node(c, `${path}/${c.rn}`));
      if (!kids.length) ul.append(h("li", {class: "muted"}, "no children"));
      if (kids.length >= CHILD_LIMIT) ul.append(h("li", {class: "muted"}, `first ${CHILD_LIMIT} shown`));
    }
    li.querySelector(":scope > ul")?.remove();
    li.append(ul);
  }

  async select(li) {
    for (const x of this.root.querySelectorAll(".selected")) x.classList.remove("selected");
    li.querySelector(":scope > .label").classList.add("selected");
    const path = li.dataset.path;
    const r = await this.api.get(path);
    const [root, res] = only(r.body);
    this.selected = {li, path, root, res};
    this.deleteArmed = false;
    document.getElementById("delete-button").textContent = "Delete…";
    fill(document.getElementById("detail-title"), `${typeName(Number(li.dataset.ty))} `, h("code", {}, path));
    document.getElementById("detail-json").textContent = r.rsc === 2000 ? pretty(r.body) : `${r.rsc} ${r.dbg}`;
    this.status.show(`RETRIEVE ${path}`, r);
    if (root && res) {
      const body = {[root]: {lbl: Array.isArray(res.lbl) ? res.lbl : []}};
      document.getElementById("update-body").value = JSON.stringify(body, null, 2);
    }
  }

  readBody(id) {
    try {
      return JSON.parse(document.getElementById(id).value || "{}");
    } catch (err) {
      this.status.error(`the body is not JSON: ${err.message}`);
      return null;
    }
  }

  async create() {
    if (!this.selected) return;
    const body = this.readBody("create-body");
    if (!body) return;
    const rn = document.getElementById("create-rn").value.trim();
    const [root] = Object.keys(body);
    if (rn && root && body[root] && typeof body[root] === "object") body[root].rn = rn;
    const ty = Number(document.getElementById("create-ty").value);
    const r = await this.api.send("POST", this.selected.path, {ty, body});
    this.status.show(`CREATE ${typeName(ty)} in ${this.selected.path}`, r);
    document.getElementById("detail-json").textContent = pretty(r.body);
    if (r.rsc === 2001) await this.expand(this.selected.li);
  }

  async update() {
    if (!this.selected) return;
    const body = this.readBody("update-body");
    if (!body) return;
    const r = await this.api.send("PUT", this.selected.path, {body});
    this.status.show(`UPDATE ${this.selected.path}`, r);
    document.getElementById("detail-json").textContent = pretty(r.body);
  }

  async remove() {
    if (!this.selected) return;
    const button = document.getElementById("delete-button");
    if (!this.deleteArmed) { // a second click confirms (no modal dialog)
      this.deleteArmed = true;
      button.textContent = `Really delete ${this.selected.path}?`;
      return;
    }
    const {path, li} = this.selected;
    const r = await this.api.send("DELETE", path);
    this.status.show(`DELETE ${path}`, r);
    this.deleteArmed = false;
    button.textContent = "Delete…";
    if (r.rsc === 2002) {
      const parent = li.parentElement?.closest("li");
      li.remove();
      if (parent) await this.select(parent);
      this.status.show(`DELETE ${path}`, r); // the outcome of the delete, not the parent's RETRIEVE, stays shown
    }
  }

  async discover() {
    if (!this.selected) return;
    const q = document.getElementById("discover-query").value.trim();
    const r = await this.api.get(this.selected.path, q);
    this.status.show(`discovery ${this.selected.path}?${q}`, r);
    const list = document.getElementById("discover-results");
    const uris = r.body && Array.isArray(r.body["m2m:uril"]) ? r.body["m2m:uril"] : [];
    fill(list, uris.map((u) => {
      const a = h("button", {class: "link"}, String(u));
      a.addEventListener("click", async () => {
        const one = await this.api.get(String(u));
        fill(document.getElementById("detail-title"), h("code", {}, String(u)));
        document.getElementById("detail-json").textContent = pretty(one.body);
        this.status.show(`RETRIEVE ${u}`, one);
      });
      return h("li", {}, a);
    }));
    if (r.rsc === 2000 && !uris.length) list.append(h("li", {class: "muted"}, "nothing found"));
  }
}
