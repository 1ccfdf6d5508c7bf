// The console's entry point: the originator, the tabs, the status line.

import {Api, only} from "./api.js";
import {h, fill} from "./dom.js";
import {LiveLog} from "./log.js";
import {Remotes} from "./remotes.js";
import {Sessions} from "./sessions.js";
import {Tree} from "./tree.js";

const KEY = "cse-console-origin";

class Status {
  constructor() { this.el = document.getElementById("status"); }
  show(what, r) {
    const ok = r.rsc >= 2000 && r.rsc < 3000;
    this.el.className = ok ? "ok" : "error";
    fill(this.el, h("strong", {}, what), ` → ${r.rsc || r.status}`, r.dbg ? ` ${r.dbg}` : "");
  }
  error(text) {
    this.el.className = "error";
    this.el.textContent = text;
  }
}

async function main() {
  const origin = document.getElementById("origin");
  const token = document.getElementById("token");
  origin.value = sessionStorage.getItem(KEY) || "CAdmin";
  const api = new Api(() => ({origin: origin.value.trim(), token: token.value.trim()}));
  const status = new Status();
  const cfg = await (await fetch("config.json", {cache: "no-store"})).json();
  document.getElementById("cse-id").textContent = `${cfg.cseId} (${cfg.cseName})`;
  const tree = new Tree(api, status, cfg.cseName);
  const sessions = new Sessions(api, status, cfg.cseName);
  const remotes = new Remotes(api, status, cfg.cseName);
  new LiveLog(api);
  const loaders = {tree: () => tree.load(), sessions: () => sessions.load(), remotes: () => remotes.load()};
  let current = "tree";
  const show = (name) => {
    current = name;
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
    for (const s of document.querySelectorAll(".tab")) s.classList.toggle("active", s.id === `tab-${name}`);
    loaders[name]?.();
  };
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));
  document.getElementById("who").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, origin.value.trim());
    show(current);
  });
  await offerOrigins(api, cfg.cseName);
  show("tree");
}

/** The AEs this originator may discover, offered as originators to choose. */
async function offerOrigins(api, cseName) {
  const r = await api.get(cseName, "fu=1&ty=2&lim=20");
  const uris = r.body && Array.isArray(r.body["m2m:uril"]) ? r.body["m2m:uril"] : [];
  const options = [h("option", {value: "CAdmin"})];
  for (const uri of uris) {
    const [, ae] = only((await api.get(String(uri))).body);
    if (ae && ae.aei) options.push(h("option", {value: ae.aei}, ae.rn));
  }
  fill(document.getElementById("origins"), options);
}

main().catch((err) => {
  const el = document.getElementById("status");
  el.className = "error";
  el.textContent = `The console could not start: ${err}`;
});
