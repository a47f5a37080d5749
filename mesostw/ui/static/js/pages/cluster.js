// The cluster's pages: overview, agents, an agent, frameworks, a framework, roles, offers.

import {fill, h, route} from "../dom.js";
import {agentAddress, amount, attributesText, duration, id, resourceText, stateClass, stateName, sumResources,
  TASK_STATES} from "../format.js";
import {countByState, isActive, recentFailures, resourceTotals} from "../cluster.js";
import {DataTable} from "../table.js";
import {agentHref, agentLink, badge, bar, facts, frameworkHref, frameworkLink, live, page, section, shortId,
  taskHref, when} from "../widgets.js";
import {taskTable} from "./tasks.js";

function overview({app}) {
  const head = h("div");
  const agents = h("div");
  const resources = h("div", {class: "resources"});
  const tasks = h("div", {class: "counts"});
  const failures = new DataTable({label: "failures", pageSize: 10, sort: 0, direction: -1, empty: "No failed task",
    columns: [
      {title: "When", value: (f) => f.time, render: (f) => when(f.time)},
      {title: "Task", value: (f) => f.task.id, render: (f) => h("a", {href: taskHref(f.task.frameworkId, f.task.id)}, f.task.name || f.task.id)},
      {title: "State", value: (f) => f.task.state, render: (f) => badge(f.task.state)},
      {title: "Reason", value: (f) => f.reason, render: (f) => f.reason},
      {title: "Message", value: (f) => f.message, render: (f) => h("span", {class: "message"}, f.message)},
      {title: "Agent", value: (f) => f.task.agentId, render: (f) => agentLink(app, f.task.agentId)},
    ]});
  const node = page("Cluster", head,
    section("Agents", agents), section("Resources", resources), section("Tasks", tasks),
    section("Recent failures", failures.node));
  const dispose = live(app, (state) => {
    const m = state.metrics || {};
    const info = state.master?.master_info || {};
    fill(head, facts([
      ["Leader", info.pid || info.hostname || ""],
      ["Version", info.version || app.config.version],
      ["Uptime", m["master/uptime_secs"] !== undefined ? duration(m["master/uptime_secs"]) : ""],
      ["Frameworks", `${state.frameworks.size} registered, ${state.completedFrameworks.size} completed`],
      ["Events", app.feed.status.stream],
    ]));
    const list = [...state.agents.values()];
    const active = list.filter((a) => a.active).length;
    fill(agents, h("div", {class: "counts"},
      h("a", {class: "count ok", href: "#/agents", "data-count": "agents-active"}, h("strong", null, String(active)), " active"),
      h("a", {class: "count off", href: "#/agents", "data-count": "agents-inactive"},
        h("strong", null, String(m["master/slaves_inactive"] ?? list.length - active)), " inactive"),
      h("a", {class: "count bad", href: "#/agents", "data-count": "agents-unreachable"},
        h("strong", null, String(m["master/slaves_unreachable"] ?? 0)), " unreachable")),
    h("ul", {class: "inline agents-list"}, list.map((a) => h("li", null, agentLink(app, id(a.agent_info?.id))))));
    fill(resources, resourceTotals(list).map((r) => bar(r.kind, r)));
    const counts = countByState(state.tasks.values());
    fill(tasks, TASK_STATES.filter((s) => counts[s]).map((s) => h("a", {class: `count ${stateClass(s)}`,
      href: route("/tasks", {state: s}), "data-count": s}, h("strong", null, String(counts[s])), ` ${stateName(s)}`)),
    state.tasks.size ? null : h("p", {class: "muted"}, "No task yet."));
    failures.setRows(recentFailures(state.tasks.values(), 50));
  });
  return {node, dispose};
}

function agentRow(app, state) {
  const active = new Map();
  for (const task of state.tasks.values()) {
    if (isActive(task)) active.set(task.agentId, (active.get(task.agentId) || 0) + 1);
  }
  return [...state.agents.values()].map((agent) => {
    const total = sumResources(agent.total_resources || agent.agent_info?.resources);
    const used = sumResources(agent.allocated_resources);
    const agentId = id(agent.agent_info?.id);
    return {agent, id: agentId, host: agent.agent_info?.hostname || "", total, used, tasks: active.get(agentId) || 0,
      registered: Number(agent.registered_time?.nanoseconds || 0) / 1e9};
  });
}

const usage = (kind) => ({title: kind, value: (r) => r.used[kind] || 0,
  render: (r) => `${amount(kind, r.used[kind] || 0)} / ${amount(kind, r.total[kind] || 0)}`});

function agents({app}) {
  const table = new DataTable({label: "agents", columns: [
    {title: "Host", value: (r) => r.host, render: (r) => h("a", {href: agentHref(r.id)}, agentAddress(r.agent))},
    {title: "ID", value: (r) => r.id, render: (r) => h("code", {title: r.id}, shortId(r.id))},
    usage("cpus"), usage("mem"), usage("disk"),
    {title: "Attributes", value: (r) => attributesText(r.agent.agent_info?.attributes)},
    {title: "Tasks", value: (r) => r.tasks, render: (r) => h("a", {href: route("/tasks", {agent: r.id, state: "active"})}, String(r.tasks))},
    {title: "Status", value: (r) => (r.agent.active ? 1 : 0), render: (r) => badge(r.agent.active ? "TASK_RUNNING" : "TASK_KILLED", r.agent.active ? "active" : "inactive")},
    {title: "Registered", value: (r) => r.registered, render: (r) => when(r.registered)},
  ]});
  const gone = h("div");
  const dispose = live(app, (state) => {
    table.setRows(agentRow(app, state));
    fill(gone, state.goneAgents.size ? section("Removed while you watched", h("ul", null,
      [...state.goneAgents.keys()].map((agentId) => h("li", null, h("code", null, agentId))))) : null);
  });
  return {node: page("Agents", table.node, gone), dispose};
}

function agent({app, params}) {
  const head = h("div");
  const bars = h("div", {class: "resources"});
  const executors = h("div");
  const tasks = taskTable(app, {label: "agent-tasks", hide: ["agent"]});
  const node = page(`Agent ${params.id}`, head, section("Resources", bars), section("Executors", executors),
    section("Tasks", tasks.node));
  const dispose = live(app, (state) => {
    const a = state.agents.get(params.id) || state.goneAgents.get(params.id);
    if (!a) {
      fill(head, h("p", {class: "error"}, "This agent is not registered."));
      return;
    }
    const info = a.agent_info || {};
    fill(head, facts([
      ["ID", h("code", null, params.id)], ["Address", agentAddress(a)], ["PID", a.pid],
      ["Status", state.agents.has(params.id) ? (a.active ? "active" : "inactive") : "removed"],
      ["Version", a.version], ["Registered", when(Number(a.registered_time?.nanoseconds || 0) / 1e9)],
      ["Attributes", attributesText(info.attributes)], ["Total", resourceText(a.total_resources || info.resources)],
      ["Allocated", resourceText(a.allocated_resources)], ["Offered", resourceText(a.offered_resources)],
    ]));
    fill(bars, resourceTotals([a]).map((r) => bar(r.kind, r)));
    const mine = [...state.tasks.values()].filter((t) => t.agentId === params.id);
    const byExecutor = new Map();
    for (const t of mine) {
      const key = `${t.frameworkId}\u0000${t.executorId || t.id}`;
      if (!byExecutor.has(key)) byExecutor.set(key, {frameworkId: t.frameworkId, executorId: t.executorId || t.id, tasks: []});
      byExecutor.get(key).tasks.push(t);
    }
    for (const e of state.executors) {
      if (id(e.agent_id) !== params.id) continue;
      const frameworkId = id(e.executor_info?.framework_id);
      const executorId = id(e.executor_info?.executor_id);
      const key = `${frameworkId}\u0000${executorId}`;
      if (!byExecutor.has(key)) byExecutor.set(key, {frameworkId, executorId, tasks: []});
    }
    const rows = [...byExecutor.values()].filter((e) => !e.tasks.length || e.tasks.some(isActive));
    fill(executors, rows.length ? h("table", {class: "data"}, h("thead", null, h("tr", null,
      h("th", null, "Executor"), h("th", null, "Framework"), h("th", null, "Tasks"))),
    h("tbody", null, rows.map((e) => h("tr", null, h("td", null, h("code", null, e.executorId)),
      h("td", null, frameworkLink(app, e.frameworkId)),
      h("td", null, e.tasks.filter(isActive).map((t) => [h("a", {href: taskHref(t.frameworkId, t.id)}, t.name || t.id), " "]))))))
      : h("p", {class: "muted"}, "No executor runs here."));
    tasks.setRows(mine);
  });
  return {node, dispose};
}

function frameworkRows(app, state, records) {
  const active = new Map();
  for (const task of state.tasks.values()) {
    if (isActive(task)) active.set(task.frameworkId, (active.get(task.frameworkId) || 0) + 1);
  }
  return records.map((f) => ({f, id: f.id, name: f.name, tasks: active.get(f.id) || 0,
    used: sumResources(f.allocated_resources), registered: Number(f.registered_time?.nanoseconds || 0) / 1e9}));
}

function roles(info) {
  return (info?.roles?.length ? info.roles : [info?.role || "*"]).join(", ");
}

function frameworkTable(label) {
  return new DataTable({label, columns: [
    {title: "Name", value: (r) => r.name, render: (r) => h("a", {href: frameworkHref(r.id)}, r.name || r.id)},
    {title: "ID", value: (r) => r.id, render: (r) => h("code", {title: r.id}, shortId(r.id))},
    {title: "Roles", value: (r) => roles(r.f.info)},
    {title: "Principal", value: (r) => r.f.info?.principal || ""},
    {title: "Tasks", value: (r) => r.tasks, render: (r) => h("a", {href: route("/tasks", {framework: r.id, state: "active"})}, String(r.tasks))},
    {title: "CPUs", value: (r) => r.used.cpus || 0, render: (r) => amount("cpus", r.used.cpus || 0)},
    {title: "Mem", value: (r) => r.used.mem || 0, render: (r) => amount("mem", r.used.mem || 0)},
    {title: "Registered", value: (r) => r.registered, render: (r) => when(r.registered)},
    {title: "Web UI", render: (r) => (r.f.info?.webui_url ? h("a", {href: r.f.info.webui_url, rel: "noopener noreferrer", target: "_blank"}, "open") : "")},
  ]});
}

function frameworks({app}) {
  const active = frameworkTable("frameworks-active");
  const inactive = frameworkTable("frameworks-inactive");
  const completed = frameworkTable("frameworks-completed");
  const dispose = live(app, (state) => {
    const all = [...state.frameworks.values()];
    active.setRows(frameworkRows(app, state, all.filter((f) => f.active)));
    inactive.setRows(frameworkRows(app, state, all.filter((f) => !f.active)));
    completed.setRows(frameworkRows(app, state, [...state.completedFrameworks.values()]));
  });
  return {node: page("Frameworks", section("Active", active.node), section("Inactive", inactive.node),
    section("Completed", completed.node)), dispose};
}

function framework({app, params}) {
  const head = h("div");
  const offers = h("div");
  const tasks = taskTable(app, {label: "framework-tasks", hide: ["framework"]});
  const dispose = live(app, (state) => {
    const f = state.frameworks.get(params.id) || state.completedFrameworks.get(params.id);
    if (!f) {
      fill(head, h("p", {class: "error"}, "No such framework."));
      return;
    }
    const info = f.info || {};
    fill(head, facts([
      ["Name", info.name], ["ID", h("code", null, params.id)], ["User", info.user], ["Roles", roles(info)],
      ["Principal", info.principal], ["Hostname", info.hostname],
      ["Status", state.completedFrameworks.has(params.id) ? "completed" : f.active ? "active" : "inactive"],
      ["Connected", f.connected ? "yes" : "no"], ["Checkpoint", info.checkpoint ? "yes" : "no"],
      ["Failover timeout", info.failover_timeout ? duration(info.failover_timeout) : ""],
      ["Registered", when(Number(f.registered_time?.nanoseconds || 0) / 1e9)],
      ["Allocated", resourceText(f.allocated_resources)], ["Offered", resourceText(f.offered_resources)],
      ["Web UI", info.webui_url ? h("a", {href: info.webui_url, rel: "noopener noreferrer", target: "_blank"}, info.webui_url) : ""],
    ]));
    fill(offers, offerTable(app, (f.offers || []).map((o) => ({offer: o, framework: f}))).node);
    tasks.setRows([...state.tasks.values()].filter((t) => t.frameworkId === params.id));
  });
  return {node: page(`Framework ${params.id}`, head, section("Offers", offers), section("Tasks", tasks.node)), dispose};
}

function offerTable(app, rows) {
  const table = new DataTable({label: "offers", empty: "No outstanding offer", columns: [
    {title: "Offer", value: (r) => id(r.offer.id), render: (r) => h("code", null, shortId(id(r.offer.id)))},
    {title: "Framework", value: (r) => r.framework.name, render: (r) => frameworkLink(app, r.framework.id)},
    {title: "Agent", value: (r) => id(r.offer.agent_id), render: (r) => agentLink(app, id(r.offer.agent_id))},
    {title: "Resources", value: (r) => resourceText(r.offer.resources)},
  ]});
  table.setRows(rows);
  return table;
}

function offers({app}) {
  const holder = h("div");
  const dispose = live(app, (state) => {
    const rows = [...state.frameworks.values()].flatMap((f) => (f.offers || []).map((o) => ({offer: o, framework: f})));
    fill(holder, offerTable(app, rows).node);
  });
  return {node: page("Outstanding offers", holder,
    h("p", {class: "muted"}, "Offers are refreshed every few seconds; frameworks usually answer them within one allocation interval.")), dispose};
}

function rolesPage({app}) {
  const table = new DataTable({label: "roles", columns: [
    {title: "Role", value: (r) => r.name},
    {title: "Weight", value: (r) => Number(r.weight ?? 1)},
    {title: "Frameworks", value: (r) => (r.frameworks || []).length,
      render: (r) => (r.frameworks || []).map((f) => [frameworkLink(app, id(f)), " "])},
    {title: "Allocated", value: (r) => sumResources(r.resources || r.allocated).cpus || 0, render: (r) => resourceText(r.resources || r.allocated)},
  ]});
  const dispose = live(app, (state) => table.setRows(state.roles || []));
  return {node: page("Roles and weights", table.node), dispose};
}

export const routes = [
  {pattern: "/", render: overview},
  {pattern: "/agents", render: agents},
  {pattern: "/agents/:id", render: agent},
  {pattern: "/frameworks", render: frameworks},
  {pattern: "/frameworks/:id", render: framework},
  {pattern: "/roles", render: rolesPage},
  {pattern: "/offers", render: offers},
];
