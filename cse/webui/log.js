// The live request log: GET /webui/log as server-sent events, read with
// fetch (an EventSource cannot send X-M2M-Origin or a bearer token). Only
// the admin originator may open it (docs/webui.md "Live request log").

import {h} from "./dom.js";

const ROWS = 500; // rows kept on the page

export class LiveLog {
  constructor(api) {
    this.api = api;
    this.body = document.querySelector("#log-table tbody");
    this.state = document.getElementById("log-state");
    this.start = document.getElementById("log-start");
    this.stop = document.getElementById("log-stop");
    this.abort = null;
    this.start.addEventListener("click", () => this.open());
    this.stop.addEventListener("click", () => this.close("stopped"));
  }

  close(why) {
    this.abort?.abort();
    this.abort = null;
    this.start.disabled = false;
    this.stop.disabled = true;
    this.state.textContent = why;
  }

  async open() {
    this.abort = new AbortController();
    this.start.disabled = true;
    this.stop.disabled = false;
    this.state.textContent = "connecting…";
    let resp;
    try {
      resp = await fetch("/webui/log", {headers: this.api.headers({Accept: "text/event-stream"}),
        signal: this.abort.signal, cache: "no-store"});
    } catch (err) {
      this.close(`cannot connect: ${err}`);
      return;
    }
    if (!resp.ok) {
      let dbg = "";
      try { dbg = (await resp.json())["m2m:dbg"] || ""; } catch { /* not JSON */ }
      this.close(`refused (${resp.headers.get("X-M2M-RSC") || resp.status}): ${dbg}`);
      return;
    }
    this.state.textContent = "connected";
    this.state.dataset.connected = "yes";
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    try {
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          this.event(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
        }
      }
      if (this.abort) this.close(this.state.dataset.dropped ? this.state.textContent : "the CSE closed the log");
    } catch (err) {
      if (this.abort) this.close(`disconnected: ${err}`);
    } finally {
      delete this.state.dataset.connected;
    }
  }

  event(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trim());
    }
    if (!data.length) return;
    let e;
    try { e = JSON.parse(data.join("\n")); } catch { return; }
    if (name === "dropped") {
      this.state.dataset.dropped = "yes";
      this.state.textContent = `dropped by the CSE: ${e.reason}`;
      return;
    }
    if (name !== "message") return;
    const row = h("tr", {class: e.rsc >= 4000 ? "bad" : ""},
      h("td", {}, new Date().toISOString().slice(11, 23)), h("td", {}, e.method), h("td", {}, e.target),
      h("td", {}, e.origin), h("td", {}, e.rsc), h("td", {}, e.ms), h("td", {}, e.dbg ?? ""));
    this.body.prepend(row);
    while (this.body.rows.length > ROWS) this.body.lastElementChild.remove();
  }
}
