// Building the page without ever parsing markup: every text, whatever a
// resource holds, goes in through textContent or an attribute value, so a
// name like "<script>" stays text (docs/webui.md "Security").

/** An element: h("td", {class: "x"}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace the children of el. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A table with a header row and rows of cells (text or nodes). */
export function table(headers, rows, cls = "grid") {
  return h("table", {class: cls},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

/** A copy of value with every session credential replaced: the console never shows a key. */
export function redact(value) {
  if (Array.isArray(value)) return value.map(redact);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = k === "scr" ? "(hidden)" : redact(v);
    return out;
  }
  return value;
}

/** Pretty JSON, credentials hidden. */
export function pretty(value) {
  return JSON.stringify(redact(value), null, 2);
}
