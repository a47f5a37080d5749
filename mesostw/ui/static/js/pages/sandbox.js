// The sandbox browser: a task's sandbox found through its agent's state, directories listed, files
// shown and followed (a live tail through /files/read with offsets), downloaded, all through the
// master's /agent/<id>/ forwarding (the agent checks the caller's credentials and ACLs).

import {errorOf, getJSON, request, url} from "../api.js";
import {fill, h, route, seg} from "../dom.js";
import {bytes, timestamp} from "../format.js";
import {taskKey} from "../cluster.js";
import {DataTable} from "../table.js";
import {agentLink, errorBox, page, taskHref} from "../widgets.js";

const CHUNK = 64 * 1024; // the most one /files/read answers
const FIRST = 4 * CHUNK; // how much of a file's end is shown at first
const KEEP = 2 * 1024 * 1024; // characters a view keeps (older ones are dropped)
const FOLLOW_MS = 1000;

const agentURL = (agentId, path, params) => `${url(`agent/${seg(agentId)}`, path)}?${new URLSearchParams(params)}`;

// The `directory` of the executor that runs (or ran) a task, from the agent's /slave(1)/state.
export function sandboxDirectory(agentState, frameworkId, taskId) {
  const found = [];
  const list = (obj, key) => (Array.isArray(obj?.[key]) ? obj[key] : []);
  for (const framework of [...list(agentState, "frameworks"), ...list(agentState, "completed_frameworks")]) {
    if (framework.id !== frameworkId) continue;
    for (const executor of [...list(framework, "executors"), ...list(framework, "completed_executors")]) {
      const running = ["tasks", "queued_tasks"].some((k) => list(executor, k).some((t) => t.id === taskId));
      const done = list(executor, "completed_tasks").some((t) => t.id === taskId);
      if ((running || done) && executor.directory) found.push({running, directory: String(executor.directory)});
    }
  }
  const active = found.filter((f) => f.running);
  return (active[0] || found[found.length - 1] || {}).directory || null;
}

// The reads that bring a view from `position` to `size`: [[offset, length], ...], none over `chunk`.
export function readPlan(position, size, chunk = CHUNK) {
  const plan = [];
  for (let offset = position; offset < size; offset += chunk) plan.push([offset, Math.min(chunk, size - offset)]);
  return plan;
}

function resolve({app, params, navigate}) {
  const node = page("Sandbox", h("p", {class: "loading"}, "Finding the sandbox…"));
  const t = app.feed?.state.tasks.get(taskKey(params.framework, params.task));
  const agentId = t?.agentId;
  (async () => {
    if (!agentId) throw new Error("The master does not know this task's agent.");
    const state = await getJSON(agentURL(agentId, "slave(1)/state", {}));
    const directory = sandboxDirectory(state, params.framework, params.task);
    if (!directory) throw new Error("The agent has no sandbox for this task (it may have been garbage-collected).");
    window.location.replace(route(`/sandbox/${seg(agentId)}`, {path: directory, root: directory,
      framework: params.framework, task: params.task}));
  })().catch((error) => fill(node, page("Sandbox", errorBox(error))));
  return {node};
}

function crumbs(agentId, root, path, query) {
  const base = root && path.startsWith(root) ? root : "";
  const rest = path.slice(base.length).split("/").filter(Boolean);
  const items = [h("a", {href: route(`/sandbox/${seg(agentId)}`, {...query, path: base || "/"})}, base ? "sandbox" : "/")];
  let at = base;
  for (const part of rest) {
    at = `${at.replace(/\/$/, "")}/${part}`;
    items.push(" / ", h("a", {href: route(`/sandbox/${seg(agentId)}`, {...query, path: at})}, part));
  }
  return h("nav", {class: "crumbs"}, items);
}

async function download(agentId, path) {
  const response = await request(agentURL(agentId, "files/download", {path}));
  if (!response.ok) throw await errorOf(response);
  const blob = await response.blob();
  const link = h("a", {href: URL.createObjectURL(blob), download: path.split("/").pop() || "file"});
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

function sandbox({app, params, query}) {
  const agentId = params.agent;
  const path = query.path || "/";
  const keep = {root: query.root || "", framework: query.framework || "", task: query.task || ""};
  const errors = h("div");
  const body = h("div");
  const header = [crumbs(agentId, keep.root, path, keep),
    h("p", {class: "muted"}, "Agent ", agentLink(app, agentId),
      keep.task ? [" · task ", h("a", {href: taskHref(keep.framework, keep.task)}, keep.task)] : null), errors];
  const node = page("Sandbox", header, body);
  let stop = () => {};
  if (query.file) {
    stop = viewFile(agentId, path, body, errors, query.follow !== "0");
  } else {
    const table = new DataTable({label: "files", pageSize: 200, columns: [
      {title: "Name", value: (e) => e.name, render: (e) => h("a", {class: e.dir ? "dir" : "file",
        href: route(`/sandbox/${seg(agentId)}`, {...keep, path: e.path, file: e.dir ? "" : "1"})}, e.name + (e.dir ? "/" : ""))},
      {title: "Size", value: (e) => e.size, render: (e) => (e.dir ? "" : bytes(e.size))},
      {title: "Mode", value: (e) => e.mode, render: (e) => h("code", null, e.mode)},
      {title: "Modified", value: (e) => e.mtime, render: (e) => timestamp(e.mtime)},
      {title: "", render: (e) => (e.dir ? "" : h("button", {type: "button", class: "link", onclick: () =>
        download(agentId, e.path).catch((error) => fill(errors, errorBox(error)))}, "download"))},
    ]});
    fill(body, table.node);
    getJSON(agentURL(agentId, "files/browse", {path})).then((entries) => {
      table.setRows((entries || []).map((e) => ({...e, name: String(e.path).split("/").pop(),
        dir: String(e.mode || "").startsWith("d")})));
    }).catch((error) => fill(errors, errorBox(error)));
  }
  return {node, dispose: () => stop()};
}

// Shows the end of a file and, while `follow` is on, what is appended to it; returns the stop function.
function viewFile(agentId, path, holder, errors, followAtFirst) {
  const pre = h("pre", {class: "file", "data-file": path.split("/").pop()});
  const state = h("span", {class: "muted"});
  const followBox = h("input", {type: "checkbox", checked: followAtFirst});
  fill(holder, h("div", {class: "toolbar"},
    h("label", null, followBox, " follow"),
    h("button", {type: "button", onclick: () => download(agentId, path).catch((e) => fill(errors, errorBox(e)))}, "download"),
    state), pre);
  let position = null;
  let stopped = false;
  let timer = null;
  let busy = false;
  const read = async (offset, length) => {
    const answer = await getJSON(agentURL(agentId, "files/read", {path, offset, length}));
    return String(answer?.data ?? "");
  };
  const tick = async () => {
    if (busy || stopped) return;
    busy = true;
    try {
      const size = Number((await getJSON(agentURL(agentId, "files/read", {path, offset: -1})))?.offset) || 0;
      if (position === null || size < position) {
        position = Math.max(0, size - FIRST);
        pre.replaceChildren();
        if (position > 0) pre.append(`[… ${bytes(position)} not shown; download the file for all of it]\n`);
      }
      for (const [offset, length] of readPlan(position, size)) {
        if (stopped) return;
        pre.append(await read(offset, length));
        position = offset + length;
      }
      if (pre.textContent.length > KEEP) pre.textContent = pre.textContent.slice(-KEEP);
      if (followBox.checked) pre.scrollTop = pre.scrollHeight;
      fill(state, `${bytes(size)}${followBox.checked ? ", following" : ""}`);
      errors.replaceChildren();
    } catch (error) {
      fill(errors, errorBox(error));
    } finally {
      busy = false;
    }
  };
  const schedule = () => {
    clearInterval(timer);
    timer = followBox.checked ? setInterval(tick, FOLLOW_MS) : null;
  };
  followBox.addEventListener("change", () => { schedule(); tick(); });
  tick();
  schedule();
  return () => { stopped = true; clearInterval(timer); };
}

export const routes = [
  {pattern: "/tasks/:framework/:task/sandbox", render: resolve},
  {pattern: "/sandbox/:agent", render: sandbox},
];
