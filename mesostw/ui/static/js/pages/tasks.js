// Tasks: the table (filter by state, framework, agent and text; sort; pages) and a task's page.

import {fill, h, route, seg} from "../dom.js";
import {labelsText, resourceText, stateName, TASK_STATES, timestamp} from "../format.js";
import {isActive, taskKey} from "../cluster.js";
import {DataTable, matches} from "../table.js";
import {agentLink, badge, facts, frameworkLink, live, page, section, taskHref, when} from "../widgets.js";

// Which tasks a filter keeps: {state: "" | "active" | "inactive" | TASK_*, framework, agent, text}.
export function taskFilter({state = "", framework = "", agent = "", text = ""} = {}) {
  const fields = [(t) => t.id, (t) => t.name, (t) => t.state];
  return (t) => (!state || (state === "active" ? isActive(t) : state === "inactive" ? !isActive(t) : t.state === state))
    && (!framework || t.frameworkId === framework) && (!agent || t.agentId === agent) && matches(t, text, fields);
}

export function taskTable(app, {label = "tasks", hide = [], pageSize = 50} = {}) {
  const columns = [
    {key: "id", title: "ID", value: (t) => t.id, render: (t) => h("a", {href: taskHref(t.frameworkId, t.id), class: "task-link"}, t.id)},
    {key: "name", title: "Name", value: (t) => t.name, render: (t) => h("span", {class: "task-name"}, t.name)},
    {key: "state", title: "State", value: (t) => t.state, render: (t) => badge(t.state)},
    {key: "health", title: "Health", value: (t) => (t.healthy === undefined ? "" : t.healthy ? "healthy" : "unhealthy"),
      render: (t) => (t.healthy === undefined ? "" : badge(t.healthy ? "TASK_RUNNING" : "TASK_FAILED", t.healthy ? "healthy" : "unhealthy"))},
    {key: "framework", title: "Framework", value: (t) => t.frameworkId, render: (t) => frameworkLink(app, t.frameworkId)},
    {key: "agent", title: "Agent", value: (t) => t.agentId, render: (t) => agentLink(app, t.agentId)},
    {key: "updated", title: "Updated", value: (t) => t.updated, render: (t) => when(t.updated)},
  ].filter((c) => !hide.includes(c.key));
  return new DataTable({label, columns, pageSize, sort: columns.findIndex((c) => c.key === "updated"), direction: -1,
    empty: "No task matches", rowClass: (t) => (isActive(t) ? "active" : "done")});
}

function tasks({app, query}) {
  const filter = {state: query.state || "", framework: query.framework || "", agent: query.agent || "", text: query.q || ""};
  const table = taskTable(app, {label: "tasks"});
  const stateSelect = h("select", {name: "state", "aria-label": "State"},
    [["", "all states"], ["active", "active"], ["inactive", "completed"], ...TASK_STATES.map((s) => [s, stateName(s)])]
      .map(([value, text]) => h("option", {value, selected: value === filter.state}, text)));
  const frameworkSelect = h("select", {name: "framework", "aria-label": "Framework"});
  const agentSelect = h("select", {name: "agent", "aria-label": "Agent"});
  const text = h("input", {type: "search", name: "q", placeholder: "name or ID", value: filter.text, "aria-label": "Search"});
  const summary = h("span", {class: "muted"});
  let latest = null;
  const apply = () => {
    if (!latest) return;
    const keep = taskFilter(filter);
    const rows = [];
    for (const t of latest.tasks.values()) if (keep(t)) rows.push(t);
    table.setRows(rows);
    fill(summary, `${rows.length} of ${latest.tasks.size} tasks`);
  };
  const changed = () => {
    filter.state = stateSelect.value;
    filter.framework = frameworkSelect.value;
    filter.agent = agentSelect.value;
    filter.text = text.value;
    // Keep the filter in the address (without a new page), so that it can be shared or bookmarked.
    window.history.replaceState(null, "", route("/tasks", {state: filter.state, framework: filter.framework,
      agent: filter.agent, q: filter.text}));
    table.page = 0;
    apply();
  };
  for (const el of [stateSelect, frameworkSelect, agentSelect]) el.addEventListener("change", changed);
  text.addEventListener("input", changed);
  const options = (select, entries, current, all) => {
    const wanted = [["", all], ...entries];
    if (current && !entries.some(([v]) => v === current)) wanted.push([current, current]);
    if (select.options.length === wanted.length && [...select.options].every((o, i) => o.value === wanted[i][0])) return;
    fill(select, wanted.map(([value, label]) => h("option", {value, selected: value === current}, label)));
  };
  const dispose = live(app, (state) => {
    latest = state;
    options(frameworkSelect, [...state.frameworks.values(), ...state.completedFrameworks.values()]
      .map((f) => [f.id, `${f.name} (${f.id.slice(-6)})`]), filter.framework, "all frameworks");
    options(agentSelect, [...state.agents.values()].map((a) => [a.agent_info?.id?.value || "",
      `${a.agent_info?.hostname}:${a.agent_info?.port}`]), filter.agent, "all agents");
    apply();
  });
  return {node: page("Tasks", h("form", {class: "filters", onsubmit: (e) => e.preventDefault()},
    stateSelect, frameworkSelect, agentSelect, text, summary), table.node), dispose};
}

function task({app, params}) {
  const head = h("div");
  const history = new DataTable({label: "statuses", sort: 0, direction: -1, pageSize: 100, columns: [
    {title: "Time", value: (s) => Number(s.timestamp) || 0, render: (s) => h("span", {title: timestamp(s.timestamp)}, timestamp(s.timestamp))},
    {title: "State", value: (s) => s.state, render: (s) => badge(s.state)},
    {title: "Source", value: (s) => s.source || ""},
    {title: "Reason", value: (s) => s.reason || ""},
    {title: "Message", value: (s) => s.message || "", render: (s) => h("span", {class: "message"}, s.message || "")},
    {title: "Healthy", value: (s) => (s.healthy === undefined ? "" : String(s.healthy))},
  ]});
  const dispose = live(app, (state) => {
    const t = state.tasks.get(taskKey(params.framework, params.task));
    if (!t) {
      fill(head, h("p", {class: "error"}, "This task is not known to the master (it may have been forgotten)."));
      return;
    }
    fill(head, facts([
      ["ID", h("code", null, t.id)], ["Name", t.name], ["State", badge(t.state)],
      ["Health", t.healthy === undefined ? "" : t.healthy ? "healthy" : "unhealthy"],
      ["Framework", frameworkLink(app, t.frameworkId)], ["Agent", agentLink(app, t.agentId)],
      ["Executor", t.executorId ? h("code", null, t.executorId) : ""], ["Resources", resourceText(t.resources)],
      ["Labels", labelsText(t.labels)], ["User", t.raw.user || ""], ["Updated", when(t.updated)],
      ["Sandbox", t.agentId ? h("a", {href: `#/tasks/${seg(t.frameworkId)}/${seg(t.id)}/sandbox`, class: "sandbox-link"}, "browse the sandbox") : ""],
    ]));
    history.setRows(t.statuses);
  });
  return {node: page(`Task ${params.task}`, head, section("Status history", history.node)), dispose};
}

export const routes = [
  {pattern: "/tasks", render: tasks},
  {pattern: "/tasks/:framework/:task", render: task},
];
