// Small pieces the pages share: badges, bars, key-value lists, links between objects.

import {h, route, seg} from "./dom.js";
import {amount, percent, relative, stateClass, stateName, timestamp} from "./format.js";

export function badge(state, text) {
  return h("span", {class: `badge ${stateClass(state)}`, "data-state": state}, text ?? stateName(state));
}

// A bar of `used` (and `offered`) out of `total`, with the figures as text beside it.
export function bar(kind, {total, used, offered = 0, reserved = 0}) {
  const usedPct = percent(used, total);
  const offeredPct = Math.min(100 - usedPct, percent(offered, total));
  return h("div", {class: "resource", "data-kind": kind},
    h("div", {class: "resource-head"}, h("strong", null, kind),
      h("span", null, `${amount(kind, used)} used, ${amount(kind, offered)} offered, ${amount(kind, reserved)} reserved of ${amount(kind, total)}`)),
    h("div", {class: "bar", title: `${Math.round(usedPct)}% used`},
      h("span", {class: "used", style: {width: `${usedPct}%`}}),
      h("span", {class: "offered", style: {width: `${offeredPct}%`}})));
}

// A two-column list of [label, value] pairs (value: text or node); pairs with null values are left out.
export function facts(pairs) {
  return h("dl", {class: "facts"}, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

export function section(title, ...children) {
  return h("section", null, h("h2", null, title), ...children);
}

export function page(title, ...children) {
  return h("div", {class: "page"}, h("h1", null, title), ...children);
}

export function when(epochSeconds) {
  if (!epochSeconds) return "";
  return h("time", {title: timestamp(epochSeconds), datetime: new Date(epochSeconds * 1000).toISOString()},
    relative(epochSeconds));
}

export function errorBox(error) {
  const details = error?.body?.details;
  return h("div", {class: "error", role: "alert"}, h("p", null, String(error?.message || error)),
    Array.isArray(details) ? h("ul", null, details.map((d) => h("li", null,
      h("code", null, String(d.path ?? "")), " ", (d.errors || []).join("; ")))) : null);
}

export const agentHref = (agentId) => route(`/agents/${seg(agentId)}`);
export const frameworkHref = (frameworkId) => route(`/frameworks/${seg(frameworkId)}`);
export const taskHref = (frameworkId, taskId) => route(`/tasks/${seg(frameworkId)}/${seg(taskId)}`);

export function agentLink(app, agentId) {
  if (!agentId) return "";
  const agent = app.feed?.state.agents.get(agentId) || app.feed?.state.goneAgents.get(agentId);
  const host = agent?.agent_info?.hostname;
  return h("a", {href: agentHref(agentId), title: agentId}, host ? `${host} (${shortId(agentId)})` : shortId(agentId));
}

export function frameworkLink(app, frameworkId) {
  if (!frameworkId) return "";
  const state = app.feed?.state;
  const f = state?.frameworks.get(frameworkId) || state?.completedFrameworks.get(frameworkId);
  return h("a", {href: frameworkHref(frameworkId), title: frameworkId}, f?.name || shortId(frameworkId));
}

// The distinctive tail of a long Mesos ID: "…a905a-S0".
export function shortId(value) {
  const text = String(value ?? "");
  return text.length > 14 ? "…" + text.slice(-10) : text;
}

// Runs `update(state)` now and on each change of the cluster; returns the unsubscribe function.
export function live(app, update) {
  if (!app.feed) return () => {};
  update(app.feed.state);
  return app.feed.subscribe(update);
}

// Runs `load()` now and every `ms` while the page shows (for APIs without an event stream).
export function every(ms, load) {
  load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, ms);
  return () => clearInterval(timer);
}

// A button that runs `action` (async), disabled while it runs, reporting failures in `errors`.
export function action(text, run, {errors, confirm: question, primary = false, danger = false} = {}) {
  const button = h("button", {type: "button", class: [primary ? "primary" : "", danger ? "danger" : ""]}, text);
  button.addEventListener("click", async () => {
    if (question && !window.confirm(question)) return;
    button.disabled = true;
    try {
      await run();
      if (errors) errors.replaceChildren();
    } catch (error) {
      if (errors) errors.replaceChildren(errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}
