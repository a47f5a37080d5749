// Building DOM without markup: every piece of data becomes a text node or an attribute value,
// never HTML. `h` is the only way the pages make elements.

const SVG_NS = "http://www.w3.org/2000/svg";
const SAFE_PROTOCOLS = new Set(["http:", "https:", "blob:"]);

// A link target that cannot run script: fragments and relative paths as they are, absolute URLs
// only with http(s) or blob; anything else (javascript:, data:, ...) becomes "#".
export function safeHref(href) {
  const text = String(href ?? "");
  if (text.startsWith("#")) return text;
  try {
    const url = new URL(text, window.location.href);
    return SAFE_PROTOCOLS.has(url.protocol) ? url.href : "#";
  } catch {
    return "#";
  }
}

function append(parent, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const item of child) append(parent, item);
  } else if (child instanceof Node) {
    parent.appendChild(child);
  } else {
    parent.appendChild(document.createTextNode(String(child)));
  }
}

function setAttributes(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : String(value));
    } else if (name === "style" && typeof value === "object") {
      for (const [key, v] of Object.entries(value)) el.style.setProperty(key, String(v));
    } else if (name === "href" || name === "src") {
      el.setAttribute(name, safeHref(value));
    } else if (name === "value" && "value" in el) {
      el.value = String(value);
    } else if (name === "checked" || name === "disabled" || name === "selected") {
      el[name] = Boolean(value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

// h("a", {href: "#/agents", class: "x"}, "text", child, [more]) -> an element.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  append(el, children);
  return el;
}

// The same in SVG's namespace.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2).toLowerCase(), value);
    else if (name === "href") el.setAttribute(name, safeHref(value));
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

// Replace the children of `el` with `children`.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function link(href, ...children) {
  return h("a", {href}, ...children);
}

// "#/tasks?state=TASK_RUNNING" from a path and parameters (empty ones left out).
export function route(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return "#" + path + (text ? "?" + text : "");
}

// Path segments are encoded one by one: IDs may hold "/" (app IDs), "?" or "#".
export function seg(value) {
  return encodeURIComponent(String(value));
}
