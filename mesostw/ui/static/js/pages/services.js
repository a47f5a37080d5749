// The service framework's pages (Marathon's API): apps, an app (tasks, health, versions with diff
// and roll back, deployments and why they wait), the app form, deployments. Live through /v2/events.

import {errorOf, follow, getJSON, request, send, SSEParser, url} from "../api.js";
import {fill, h, route, seg} from "../dom.js";
import {amount, labelsText, seconds} from "../format.js";
import {canonical, diffLines} from "../diff.js";
import {DataTable} from "../table.js";
import {action, agentLink, badge, errorBox, facts, page, section, taskHref, when} from "../widgets.js";

const EMBED = "embed=apps.counts&embed=apps.deployments&embed=apps.lastTaskFailure&embed=apps.taskStats";
const appHref = (appId) => route(`/services/apps${appId.split("/").map(seg).join("/")}`);
const base = (app) => app.service.base;

// Runs `load` now and whenever the service framework publishes an event (at most every 300 ms).
function onEvents(app, load) {
  let timer = null;
  const soon = () => {
    if (!timer) timer = setTimeout(() => { timer = null; load(); }, 300);
  };
  load();
  const stream = follow({
    open: (signal) => request(url(base(app), "v2/events"), {headers: {Accept: "text/event-stream"}, signal}),
    parser: () => new SSEParser(),
    onRecord: (message) => { if (message.event !== "event_stream_attached") soon(); },
    onState: (state) => { if (state === "live") soon(); },
  });
  return () => { stream.stop(); clearTimeout(timer); };
}

// An app's status as Marathon's UI names it.
export function appStatus(app) {
  if ((app.deployments || []).length) return "Deploying";
  if (app.instances === 0 && !app.tasksRunning) return "Suspended";
  if ((app.tasksRunning || 0) < app.instances) return "Waiting";
  return "Running";
}

const STATUS_STATE = {Running: "TASK_RUNNING", Deploying: "TASK_STARTING", Waiting: "TASK_STAGING", Suspended: "TASK_KILLED"};

function apps({app}) {
  const errors = h("div");
  const table = new DataTable({label: "apps", columns: [
    {title: "ID", value: (a) => a.id, render: (a) => h("a", {href: appHref(a.id), class: "app-link"}, a.id)},
    {title: "Status", value: (a) => appStatus(a), render: (a) => badge(STATUS_STATE[appStatus(a)], appStatus(a))},
    {title: "Running", value: (a) => a.tasksRunning || 0, render: (a) => `${a.tasksRunning || 0} / ${a.instances}`},
    {title: "Healthy", value: (a) => a.tasksHealthy || 0, render: (a) => ((a.healthChecks || []).length ? String(a.tasksHealthy || 0) : "–")},
    {title: "Staged", value: (a) => a.tasksStaged || 0},
    {title: "Unhealthy", value: (a) => a.tasksUnhealthy || 0},
    {title: "CPUs", value: (a) => a.cpus},
    {title: "Mem", value: (a) => a.mem, render: (a) => amount("mem", a.mem)},
    {title: "Labels", value: (a) => labelsText(a.labels), render: (a) => h("span", {class: "labels"}, labelsText(a.labels))},
    {title: "Version", value: (a) => a.version, render: (a) => when(seconds(a.version))},
  ]});
  const dispose = onEvents(app, () => getJSON(url(base(app), `v2/apps?${EMBED}`))
    .then((answer) => { table.setRows(answer?.apps || []); errors.replaceChildren(); })
    .catch((error) => fill(errors, errorBox(error))));
  return {node: page("Services", h("div", {class: "toolbar"}, h("a", {class: "button primary", href: "#/services/new"}, "Create an app"),
    h("a", {class: "button", href: "#/services/deployments"}, "Deployments")), errors, table.node), dispose};
}

// Why a queued app waits: the queue's last offers' rejections, and the deployment's own words.
function waiting(queueEntry, deployments) {
  const out = [];
  for (const d of deployments) {
    for (const [appId, text] of Object.entries(d.status || {})) out.push(h("li", null, h("code", null, appId), " ", text));
  }
  const summary = queueEntry?.processedOffersSummary;
  if (queueEntry) {
    out.push(h("li", null, `${queueEntry.count} instance(s) to launch` + (queueEntry.delay?.timeLeftSeconds
      ? `, delayed ${Math.round(queueEntry.delay.timeLeftSeconds)}s after failures` : "")));
    const rejected = (summary?.rejectSummaryLastOffers || []).filter((r) => r.declined > 0);
    if (rejected.length) {
      out.push(h("li", null, `Of the last ${summary.processedOffersCount} offers: `,
        rejected.map((r) => `${r.reason} ×${r.declined}`).join(", ")));
    }
  }
  return out.length ? h("ul", {class: "reasons"}, out) : null;
}

function appPage({app, params}) {
  const appId = "/" + params.id;
  const errors = h("div");
  const head = h("div");
  const controls = h("div", {class: "toolbar"});
  const why = h("div");
  const versions = h("div");
  const info = {frameworkId: null};
  getJSON(url(base(app), "v2/info")).then((answer) => { info.frameworkId = answer?.frameworkId || null; }).catch(() => {});
  const tasks = new DataTable({label: "app-tasks", columns: [
    {title: "Task", value: (t) => t.id, render: (t) => (app.feed && info.frameworkId
      ? h("a", {href: taskHref(info.frameworkId, t.id)}, t.id) : h("code", null, t.id))},
    {title: "State", value: (t) => t.state, render: (t) => badge(t.state)},
    {title: "Health", value: (t) => healthText(t), render: (t) => health(t)},
    {title: "Host", value: (t) => t.host, render: (t) => (app.feed ? agentLink(app, t.slaveId) : t.host)},
    {title: "Ports", value: (t) => (t.ports || []).join(",")},
    {title: "Started", value: (t) => seconds(t.startedAt), render: (t) => when(seconds(t.startedAt))},
    {title: "Version", value: (t) => t.version, render: (t) => when(seconds(t.version))},
    {title: "", render: (t) => action("kill", () => request(url(base(app), `v2/apps${appId}/tasks/${seg(t.id)}`),
      {method: "DELETE"}).then(check), {errors, confirm: `Kill task ${t.id}? The app starts another one.`})},
  ]});
  const deployments = new DataTable({label: "app-deployments", empty: "No deployment in progress", columns: deploymentColumns(app, errors)});
  let current = null;
  const load = async () => {
    try {
      const [answer, queue, deploying] = await Promise.all([
        getJSON(url(base(app), `v2/apps${appId}?${EMBED}&embed=apps.readiness`)),
        getJSON(url(base(app), "v2/queue")),
        getJSON(url(base(app), "v2/deployments?embed=status")),
      ]);
      current = answer.app;
      const mine = (deploying || []).filter((d) => (d.affectedApps || []).includes(appId));
      renderHead(current);
      tasks.setRows(current.tasks || []);
      deployments.setRows(mine);
      const entry = (queue?.queue || []).find((q) => q.app?.id === appId);
      fill(why, (mine.length || entry) ? section("Why it waits", waiting(entry, mine)) : null);
      errors.replaceChildren();
    } catch (error) {
      fill(errors, errorBox(error));
    }
  };
  const renderHead = (a) => {
    const failure = a.lastTaskFailure;
    fill(head, facts([
      ["Status", badge(STATUS_STATE[appStatus(a)], appStatus(a))],
      ["Instances", `${a.tasksRunning || 0} running, ${a.tasksHealthy || 0} healthy, ${a.tasksStaged || 0} staged of ${a.instances}`],
      ["Command", a.cmd ? h("code", null, a.cmd) : (a.args || []).join(" ")],
      ["Resources", `cpus ${a.cpus}, mem ${amount("mem", a.mem)}, disk ${amount("disk", a.disk || 0)}`],
      ["Labels", labelsText(a.labels)], ["Constraints", (a.constraints || []).map((c) => c.join(" ")).join("; ")],
      ["Health checks", (a.healthChecks || []).map((c) => `${c.protocol} ${c.path || c.command?.value || ""}`.trim()).join("; ")],
      ["Version", a.version],
      ["Last failure", failure ? `${failure.state}: ${failure.message} (${failure.timestamp})` : ""],
    ]));
    const scale = h("input", {type: "number", min: 0, value: a.instances, class: "small", "aria-label": "Instances"});
    fill(controls,
      h("label", null, "instances ", scale),
      action("Scale", () => send(url(base(app), `v2/apps${appId}`), "PUT", {instances: Number(scale.value)}).then(load), {errors, primary: true}),
      action("Restart", () => send(url(base(app), `v2/apps${appId}/restart`), "POST", {}).then(load), {errors}),
      action("Suspend", () => send(url(base(app), `v2/apps${appId}`), "PUT", {instances: 0}).then(load), {errors}),
      h("a", {class: "button", href: route(`/services/edit${appId.split("/").map(seg).join("/")}`)}, "Edit"),
      action("Destroy", () => send(url(base(app), `v2/apps${appId}`), "DELETE").then(() => { window.location.hash = "#/services"; }),
        {errors, danger: true, confirm: `Destroy ${appId} and kill its tasks?`}));
  };
  loadVersions(app, appId, versions, errors, load);
  const dispose = onEvents(app, load);
  return {node: page(`App ${appId}`, errors, head, controls, why, section("Tasks", tasks.node),
    section("Deployments", deployments.node), section("Versions", versions)), dispose};
}

function healthText(task) {
  const results = task.healthCheckResults || [];
  if (!results.length) return "";
  return results.every((r) => r.alive) ? "healthy" : "unhealthy";
}

function health(task) {
  const results = task.healthCheckResults || [];
  if (!results.length) return "";
  const alive = results.every((r) => r.alive);
  const cause = results.map((r) => r.lastFailureCause).filter(Boolean).join("; ");
  return h("span", {title: cause}, badge(alive ? "TASK_RUNNING" : "TASK_FAILED", alive ? "healthy" : "unhealthy"),
    cause ? h("span", {class: "message"}, " " + cause) : null);
}

async function check(response) {
  if (!response.ok) throw await errorOf(response);
}

async function loadVersions(app, appId, holder, errors, reload) {
  try {
    const list = (await getJSON(url(base(app), `v2/apps${appId}/versions`)))?.versions || [];
    const left = h("select", {"aria-label": "Older version"}, list.map((v, i) => h("option", {value: v, selected: i === Math.min(1, list.length - 1)}, v)));
    const right = h("select", {"aria-label": "Newer version"}, list.map((v, i) => h("option", {value: v, selected: i === 0}, v)));
    const out = h("div", {class: "diff"});
    const ignore = ["version", "versionInfo"];
    const show = async () => {
      const [a, b] = await Promise.all([left.value, right.value].map((v) => getJSON(url(base(app), `v2/apps${appId}/versions/${seg(v)}`))));
      fill(out, diffLines(canonical(a, ignore), canonical(b, ignore)).map((d) =>
        h("div", {class: d.op === "+" ? "add" : d.op === "-" ? "del" : "same"}, `${d.op} ${d.line}`)));
    };
    left.addEventListener("change", () => show().catch((e) => fill(errors, errorBox(e))));
    right.addEventListener("change", () => show().catch((e) => fill(errors, errorBox(e))));
    fill(holder, h("div", {class: "toolbar"}, "compare ", left, " with ", right,
      action("Roll back to the first", () => send(url(base(app), `v2/apps${appId}`), "PUT", {version: left.value}).then(reload),
        {errors, confirm: "Deploy this version of the app again?"})), out);
    if (list.length) await show();
  } catch (error) {
    fill(errors, errorBox(error));
  }
}

function deploymentColumns(app, errors) {
  return [
    {title: "Deployment", value: (d) => d.id, render: (d) => h("code", null, d.id)},
    {title: "Apps", value: (d) => (d.affectedApps || []).join(" "), render: (d) => (d.affectedApps || []).map((a) => [h("a", {href: appHref(a)}, a), " "])},
    {title: "Step", value: (d) => d.currentStep, render: (d) => `${d.currentStep} of ${d.totalSteps}`},
    {title: "Actions", value: (d) => (d.currentActions || []).map((a) => a.action).join(", ")},
    {title: "Waiting for", render: (d) => h("ul", {class: "reasons"}, Object.entries(d.status || {}).map(([a, text]) => h("li", null, h("code", null, a), " ", text)))},
    {title: "Started", value: (d) => d.version, render: (d) => when(seconds(d.version))},
    {title: "", render: (d) => [
      action("roll back", () => send(url(base(app), `v2/deployments/${seg(d.id)}`), "DELETE"), {errors, confirm: "Roll this deployment back?"}),
      action("stop", () => send(url(base(app), `v2/deployments/${seg(d.id)}?force=true`), "DELETE"), {errors, confirm: "Stop this deployment where it is?"})]},
  ];
}

function deploymentsPage({app}) {
  const errors = h("div");
  const table = new DataTable({label: "deployments", empty: "No deployment in progress", columns: deploymentColumns(app, errors)});
  const dispose = onEvents(app, () => getJSON(url(base(app), "v2/deployments?embed=status"))
    .then((list) => { table.setRows(list || []); }).catch((error) => fill(errors, errorBox(error))));
  return {node: page("Deployments", errors, table.node), dispose};
}

// The app definition a form holds (fields, then the JSON of the advanced box merged over them).
export function appFromForm(values) {
  const app = {id: values.id.trim()};
  if (values.cmd.trim()) app.cmd = values.cmd;
  for (const key of ["instances", "cpus", "mem", "disk"]) {
    if (String(values[key]).trim() !== "") app[key] = Number(values[key]);
  }
  const labels = {};
  for (const line of String(values.labels || "").split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf("=");
    labels[(at < 0 ? line : line.slice(0, at)).trim()] = at < 0 ? "" : line.slice(at + 1).trim();
  }
  if (Object.keys(labels).length) app.labels = labels;
  if (values.health === "HTTP" || values.health === "TCP") {
    app.healthChecks = [{protocol: values.health, portIndex: 0, gracePeriodSeconds: 30, intervalSeconds: 5,
      ...(values.health === "HTTP" ? {path: values.healthPath || "/"} : {})}];
    app.portDefinitions = [{port: 0}];
  } else if (values.health === "COMMAND") {
    app.healthChecks = [{protocol: "COMMAND", command: {value: values.healthCommand}, gracePeriodSeconds: 30, intervalSeconds: 5}];
  }
  if (String(values.json || "").trim()) Object.assign(app, JSON.parse(values.json));
  return app;
}

// What the service API would refuse, in its words ({path, errors}), checked before sending.
export function validateApp(app) {
  const problems = [];
  const add = (path, error) => problems.push({path, errors: [error]});
  if (!app.id || !/^\/?(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])(\/(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9]))*$/.test(app.id)) {
    add("/id", "must fully match regular expression '^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$'");
  }
  if (!app.cmd && !(app.args || []).length && !app.container) {
    add("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.");
  }
  if (app.cpus !== undefined && !(app.cpus >= 0.001)) add("/cpus", `got ${app.cpus}, expected 0.001 or more`);
  if (app.mem !== undefined && !(app.mem >= 0)) add("/mem", `got ${app.mem}, expected 0.0 or more`);
  if (app.disk !== undefined && !(app.disk >= 0)) add("/disk", `got ${app.disk}, expected 0.0 or more`);
  if (app.instances !== undefined && !(Number.isInteger(app.instances) && app.instances >= 0)) add("/instances", `got ${app.instances}, expected 0 or more`);
  return problems;
}

function appForm({app, params}) {
  const editing = params.id ? "/" + params.id : null;
  const errors = h("div");
  const field = (name, label, attrs = {}) => h("label", {"data-field": name}, label,
    attrs.multiline ? h("textarea", {name, rows: attrs.rows || 3, placeholder: attrs.placeholder || ""})
      : h("input", {name, type: attrs.type || "text", step: attrs.step, placeholder: attrs.placeholder || "", value: attrs.value}));
  const form = h("form", {class: "form", novalidate: true},
    field("id", "ID", {placeholder: "/my-app"}),
    field("cmd", "Command", {placeholder: "python3 -m http.server $PORT0"}),
    h("div", {class: "row"}, field("instances", "Instances", {type: "number", value: "1"}),
      field("cpus", "CPUs", {type: "number", step: "0.01", value: "0.1"}), field("mem", "Memory (MB)", {type: "number", value: "32"}),
      field("disk", "Disk (MB)", {type: "number", value: "0"})),
    h("label", {"data-field": "health"}, "Health check ", h("select", {name: "health"},
      ["none", "HTTP", "TCP", "COMMAND"].map((v) => h("option", {value: v === "none" ? "" : v}, v)))),
    h("div", {class: "row"}, field("healthPath", "HTTP path", {placeholder: "/"}), field("healthCommand", "Health command")),
    field("labels", "Labels (key=value, one a line)", {multiline: true}),
    field("json", "More, as JSON (merged over the fields)", {multiline: true, rows: 5, placeholder: '{"env": {"A": "1"}}'}),
    h("div", {class: "buttons"}, h("button", {type: "submit", class: "primary"}, editing ? "Deploy the change" : "Create")));
  const mark = (problems) => {
    for (const el of form.querySelectorAll("[data-field]")) el.classList.remove("invalid");
    for (const p of problems) {
      const name = String(p.path || "").split("/")[1];
      const el = form.querySelector(`[data-field="${CSS.escape(name || "json")}"]`);
      if (el) el.classList.add("invalid");
    }
  };
  if (editing) {
    getJSON(url(base(app), `v2/apps${editing}`)).then(({app: a}) => {
      form.elements.id.value = a.id;
      form.elements.id.readOnly = true;
      form.elements.cmd.value = a.cmd || "";
      for (const key of ["instances", "cpus", "mem", "disk"]) form.elements[key].value = a[key];
      form.elements.labels.value = Object.entries(a.labels || {}).map(([k, v]) => `${k}=${v}`).join("\n");
      const rest = {};
      for (const key of ["args", "env", "constraints", "healthChecks", "portDefinitions", "upgradeStrategy", "fetch", "user"]) {
        if (a[key] !== undefined && !(Array.isArray(a[key]) && !a[key].length)) rest[key] = a[key];
      }
      form.elements.json.value = JSON.stringify(rest, null, 2);
    }).catch((error) => fill(errors, errorBox(error)));
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let definition;
    try {
      definition = appFromForm(Object.fromEntries(new FormData(form)));
    } catch (error) {
      fill(errors, errorBox(new Error(`The JSON box does not hold JSON: ${error.message}`)));
      mark([{path: "/json"}]);
      return;
    }
    const problems = validateApp(definition);
    mark(problems);
    if (problems.length) {
      fill(errors, errorBox({message: "Object is not valid", body: {details: problems}}));
      return;
    }
    try {
      const target = editing ? url(base(app), `v2/apps${editing}`) : url(base(app), "v2/apps");
      const answer = await send(target, editing ? "PUT" : "POST", editing ? {...definition, id: undefined} : definition);
      window.location.hash = appHref(answer?.id || definition.id.replace(/^\/?/, "/"));
    } catch (error) {
      mark(error.body?.details || []);
      fill(errors, errorBox(error));
    }
  });
  return {node: page(editing ? `Edit ${editing}` : "Create an app", errors, form)};
}

export const routes = [
  {pattern: "/services", render: apps},
  {pattern: "/services/new", render: appForm},
  {pattern: "/services/deployments", render: deploymentsPage},
  {pattern: "/services/edit/:id*", render: appForm},
  {pattern: "/services/apps/:id*", render: appPage},
];
