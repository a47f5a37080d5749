// Unit tests of the web UI's modules, run in the browser by tests/integration/test_ui_browser.py:
// the test passes this file's `main` to the page, which imports the modules as the UI does.
// main() resolves with the list of failures (empty when every check holds).

async function main() {
  const failures = [];
  const eq = (name, actual, expected) => {
    const a = JSON.stringify(actual);
    const e = JSON.stringify(expected);
    if (a !== e) failures.push(`${name}: expected ${e}, got ${a}`);
  };
  const ok = (name, value) => { if (!value) failures.push(`${name}: not true`); };
  const format = await import("./ui/js/format.js");
  const cluster = await import("./ui/js/cluster.js");
  const table = await import("./ui/js/table.js");
  const graph = await import("./ui/js/graph.js");
  const diff = await import("./ui/js/diff.js");
  const api = await import("./ui/js/api.js");
  const dom = await import("./ui/js/dom.js");
  const tasks = await import("./ui/js/pages/tasks.js");
  const sandbox = await import("./ui/js/pages/sandbox.js");
  const services = await import("./ui/js/pages/services.js");
  const jobs = await import("./ui/js/pages/jobs.js");
  const app = await import("./ui/js/app.js").catch(() => null);

  // format
  eq("megabytes", [format.megabytes(512), format.megabytes(23081), format.megabytes(2 * 1024 * 1024)], ["512 MB", "22.5 GB", "2.0 TB"]);
  eq("duration", [format.duration(0.25), format.duration(65), format.duration(90061)], ["250ms", "1m 5s", "1d 1h"]);
  eq("relative", [format.relative(100, 105), format.relative(200, 105)], ["5s ago", "in 1m 35s"]);
  eq("seconds", [format.seconds({nanoseconds: 1500000000}), format.seconds(3), format.seconds("1970-01-01T00:00:10Z")], [1.5, 3, 10]);
  const resources = [
    {name: "cpus", type: "SCALAR", scalar: {value: 1.5}, role: "*"},
    {name: "cpus", type: "SCALAR", scalar: {value: 0.5}, role: "web"},
    {name: "mem", type: "SCALAR", scalar: {value: 1024}},
    {name: "ports", type: "RANGES", ranges: {range: [{begin: 31000, end: 31009}]}},
  ];
  eq("sumResources", format.sumResources(resources), {cpus: 2, mem: 1024, ports: 10});
  eq("reserved", format.sumResources(resources, format.reserved), {cpus: 0.5});
  eq("resourceText", format.resourceText(resources), "cpus: 2; mem: 1.0 GB; ports: [31000-31009]");
  eq("stateClass", ["TASK_RUNNING", "TASK_FAILED", "TASK_STAGING", "TASK_KILLED"].map(format.stateClass), ["ok", "bad", "busy", "off"]);
  eq("labelsText", [format.labelsText({a: "1", b: ""}), format.labelsText([{key: "k", value: "v"}])], ["a=1, b", "k=v"]);

  // the cluster model from operator events
  const state = cluster.emptyState();
  cluster.applyEvent(state, {type: "SUBSCRIBED", subscribed: {get_state: {
    get_agents: {agents: [{agent_info: {id: {value: "S0"}, hostname: "h", port: 5051, resources},
      total_resources: resources, allocated_resources: [resources[0]], offered_resources: [resources[2]]}]},
    get_frameworks: {frameworks: [{framework_info: {id: {value: "F"}, name: "fw"}, active: true}], completed_frameworks: []},
    get_tasks: {tasks: [{task_id: {value: "t1"}, framework_id: {value: "F"}, agent_id: {value: "S0"}, name: "one",
      state: "TASK_RUNNING", statuses: [{state: "TASK_RUNNING", timestamp: 10, uuid: "u1"}]}]},
  }}});
  eq("subscribed", [state.agents.size, state.frameworks.size, state.tasks.size], [1, 1, 1]);
  cluster.applyEvent(state, {type: "TASK_ADDED", task_added: {task: {task_id: {value: "t2"}, framework_id: {value: "F"},
    agent_id: {value: "S0"}, name: "two", state: "TASK_STAGING"}}});
  cluster.applyEvent(state, {type: "TASK_UPDATED", task_updated: {framework_id: {value: "F"}, state: "TASK_FAILED",
    status: {task_id: {value: "t2"}, state: "TASK_FAILED", timestamp: 20, uuid: "u2", message: "boom", reason: "REASON_COMMAND_EXECUTOR_FAILED"}}});
  cluster.applyEvent(state, {type: "TASK_UPDATED", task_updated: {framework_id: {value: "F"}, state: "TASK_FAILED",
    status: {task_id: {value: "t2"}, state: "TASK_FAILED", timestamp: 20, uuid: "u2"}}});
  const t2 = state.tasks.get(cluster.taskKey("F", "t2"));
  eq("task updated once per uuid", [t2.state, t2.statuses.length], ["TASK_FAILED", 1]);
  eq("countByState", cluster.countByState(state.tasks.values()), {TASK_RUNNING: 1, TASK_FAILED: 1});
  const failed = cluster.recentFailures(state.tasks.values());
  eq("recentFailures", failed.map((f) => [f.task.id, f.message, f.reason]), [["t2", "boom", "REASON_COMMAND_EXECUTOR_FAILED"]]);
  eq("resourceTotals", cluster.resourceTotals(state.agents.values()).map((r) => [r.kind, r.total, r.used, r.offered, r.reserved]),
    [["cpus", 2, 1.5, 0, 0.5], ["mem", 1024, 0, 1024, 0]]);
  cluster.applyEvent(state, {type: "AGENT_REMOVED", agent_removed: {agent_id: {value: "S0"}}});
  eq("agent removed", [state.agents.size, state.goneAgents.has("S0")], [0, true]);
  cluster.applyEvent(state, {type: "FRAMEWORK_REMOVED", framework_removed: {framework_info: {id: {value: "F"}, name: "fw"}}});
  eq("framework removed", [state.frameworks.size, state.completedFrameworks.size], [0, 1]);
  ok("heartbeat changes nothing", !cluster.applyEvent(state, {type: "HEARTBEAT"}));

  // task filters, sorting and pages
  const rows = [...state.tasks.values()];
  eq("filter state", rows.filter(tasks.taskFilter({state: "active"})).map((t) => t.id), ["t1"]);
  eq("filter text", rows.filter(tasks.taskFilter({text: "TWO"})).map((t) => t.id), ["t2"]);
  eq("filter framework", rows.filter(tasks.taskFilter({framework: "G"})).length, 0);
  const many = Array.from({length: 120}, (_, i) => ({name: `t${i}`}));
  const view = table.sortAndPage(many, (r) => r.name, -1, 1, 50);
  eq("sortAndPage", [view.rows[0].name, view.rows.length, view.pages, view.total], ["t69", 50, 3, 120]);
  eq("natural order", ["t10", "t9", "t1"].sort(table.compare), ["t1", "t9", "t10"]);
  eq("page past the end", table.sortAndPage(many, null, 1, 9, 50).page, 2);

  // graph layout: parents above children, no two nodes of a layer overlap, cycles cut
  const laid = graph.layout([{id: "a"}, {id: "b"}, {id: "c"}, {id: "d"}], [["a", "b"], ["a", "c"], ["b", "d"], ["c", "d"], ["d", "a"]]);
  const at = Object.fromEntries(laid.nodes.map((n) => [n.id, n]));
  ok("layers follow edges", at.a.layer < at.b.layer && at.b.layer < at.d.layer && at.c.layer < at.d.layer);
  eq("edges drawn (the cycle's edge cut)", laid.edges.length, 4);
  ok("no overlap", Math.abs(at.b.x - at.c.x) >= at.b.width);
  eq("clip", graph.clip("a-very-long-job-name-indeed-and-longer", 100), "a-very-long…");

  // diff
  eq("diffLines", diff.diffLines("a\nb\nc", "a\nc\nd").map((d) => d.op + d.line), [" a", "-b", " c", "+d"]);
  eq("canonical", diff.canonical({b: 1, a: {d: 2, c: 3}, version: "x"}, ["version"]), '{\n  "a": {\n    "c": 3,\n    "d": 2\n  },\n  "b": 1\n}');

  // stream parsers, across chunk boundaries and with multi-byte characters
  const records = new api.RecordIOParser();
  const bytes = new TextEncoder().encode('10\n{"a":"é"}7\n{"b":2}');
  eq("recordio", [...records.push(bytes.slice(0, 5)), ...records.push(bytes.slice(5, 13)), ...records.push(bytes.slice(13))],
    ['{"a":"é"}', '{"b":2}']);
  const sse = new api.SSEParser();
  eq("sse", [...sse.push("event: a\ndata: 1\n"), ...sse.push("\n: comment\ndata: x\ndata: y\n\n")],
    [{event: "a", data: "1"}, {event: "message", data: "x\ny"}]);
  eq("url", [api.url("", "v2/apps"), api.url("service", "/v2/apps"), api.url("service/", "v2/apps")],
    ["v2/apps", "service/v2/apps", "service/v2/apps"]);

  // DOM building never makes markup of data, and links cannot run script
  const el = dom.h("div", {title: "<b>"}, "<img src=x onerror=window.__pwned=1>");
  eq("text stays text", [el.childNodes.length, el.firstChild.nodeType, el.querySelector("img")], [1, 3, null]);
  eq("safeHref", [dom.safeHref("javascript:alert(1)"), dom.safeHref("#/x"), dom.safeHref("data:text/html,x")], ["#", "#/x", "#"]);
  eq("route", dom.route("/tasks", {state: "TASK_RUNNING", q: "", agent: "a/b"}), "#/tasks?state=TASK_RUNNING&agent=a%2Fb");

  // the sandbox browser's pieces
  eq("readPlan", sandbox.readPlan(10, 150000, 65536), [[10, 65536], [65546, 65536], [131082, 18918]]);
  const agentState = {frameworks: [{id: "F", executors: [{directory: "/run", tasks: [{id: "t1"}]}],
    completed_executors: [{directory: "/old", completed_tasks: [{id: "t1"}, {id: "t0"}]}]}]};
  eq("sandboxDirectory", [sandbox.sandboxDirectory(agentState, "F", "t1"), sandbox.sandboxDirectory(agentState, "F", "t0"),
    sandbox.sandboxDirectory(agentState, "G", "t1")], ["/run", "/old", null]);

  // the app form and its checks
  const definition = services.appFromForm({id: "/web", cmd: "run", instances: "2", cpus: "0.5", mem: "64", disk: "",
    labels: "team=a\nflag", health: "HTTP", healthPath: "/ok", healthCommand: "", json: '{"env": {"A": "1"}}'});
  eq("appFromForm", [definition.instances, definition.cpus, definition.disk, definition.labels, definition.healthChecks[0].path,
    definition.env], [2, 0.5, undefined, {team: "a", flag: ""}, "/ok", {A: "1"}]);
  eq("validateApp", services.validateApp({id: "Bad_Name", cpus: 0, instances: -1}).map((p) => p.path), ["/id", "/", "/cpus", "/instances"]);
  eq("validateApp ok", services.validateApp({id: "/group/web-1", cmd: "x", cpus: 0.1}).length, 0);
  eq("appStatus", [services.appStatus({instances: 1, tasksRunning: 1}), services.appStatus({instances: 0}),
    services.appStatus({instances: 2, tasksRunning: 1}), services.appStatus({instances: 1, deployments: [{}]})],
  ["Running", "Suspended", "Waiting", "Deploying"]);

  // the job form
  eq("jobFromForm scheduled", jobs.jobFromForm({name: " a ", command: "x", schedule: "R/2020-01-01T00:00:00Z/PT1H", cpus: "0.1", parents: ""}),
    {job: {name: "a", command: "x", owner: "", description: "", disabled: false, cpus: 0.1, schedule: "R/2020-01-01T00:00:00Z/PT1H"}, endpoint: "iso8601"});
  eq("jobFromForm dependent", jobs.jobFromForm({name: "b", command: "y", parents: "a, c", disabled: "on"}).endpoint, "dependency");

  // the router's patterns
  if (app) {
    eq("matchRoute", [app.matchRoute("/tasks/:f/:t", "/tasks/a%2Fb/c"), app.matchRoute("/services/apps/:id*", "/services/apps/g/web"),
      app.matchRoute("/agents", "/agents/x")], [{f: "a/b", t: "c"}, {id: "g/web"}, null]);
  } else {
    failures.push("app.js could not be imported");
  }
  return failures;
}
