// The cron framework's pages (Chronos's API): jobs, a job with its run history, the job form, and
// the dependency graph drawn as a graph. Chronos has no event stream: its small endpoints are read
// again every few seconds while a page shows.

import {getJSON, request, send, url} from "../api.js";
import {fill, h, route, seg} from "../dom.js";
import {amount, seconds} from "../format.js";
import {drawGraph, layout} from "../graph.js";
import {DataTable} from "../table.js";
import {action, agentLink, badge, errorBox, every, facts, page, section, when} from "../widgets.js";

const POLL_MS = 3000;
const api = (app, path) => url(app.cron.base, `v1/scheduler/${path}`);
const jobHref = (name) => route(`/jobs/${seg(name)}`);
const RUN_STATE = {success: "TASK_FINISHED", failure: "TASK_FAILED", fresh: "TASK_STAGING", running: "TASK_RUNNING"};

function statusBadge(summary) {
  if (!summary) return "";
  const text = summary.state && summary.state !== "idle" ? `${summary.status}, ${summary.state}` : summary.status;
  return badge(summary.state === "running" ? "TASK_RUNNING" : RUN_STATE[summary.status] || "TASK_STAGING", text);
}

function runNow(app, name, errors, reload) {
  return action("run now", () => send(api(app, `job/${seg(name)}`), "PUT").then(reload), {errors});
}

// The graph of jobs (from /jobs/summary's parents): nodes link to the jobs, classed by their status.
export function jobGraph(summaries) {
  const nodes = summaries.map((j) => ({id: j.name, status: j.status, state: j.state, disabled: j.disabled}));
  const edges = summaries.flatMap((j) => (j.parents || []).map((parent) => [parent, j.name]));
  return drawGraph(layout(nodes, edges), {
    href: (n) => jobHref(n.id),
    kind: (n) => (n.disabled ? "disabled" : n.state === "running" ? "running" : n.status || "fresh"),
    label: (n) => n.id,
  });
}

function jobs({app}) {
  const errors = h("div");
  const graph = h("div", {class: "graph-holder", "data-graph": "jobs"});
  let reload = () => {};
  const table = new DataTable({label: "jobs", columns: [
    {title: "Name", value: (j) => j.name, render: (j) => h("a", {href: jobHref(j.name), class: "job-link"}, j.name)},
    {title: "Status", value: (j) => j.summary?.status || "", render: (j) => statusBadge(j.summary)},
    {title: "Schedule", value: (j) => j.schedule || "", render: (j) => (j.schedule ? h("code", null, j.schedule)
      : ["after ", (j.parents || []).map((p, i) => [i ? ", " : "", h("a", {href: jobHref(p)}, p)])])},
    {title: "Next run", value: (j) => seconds(j.nextRun), render: (j) => when(seconds(j.nextRun))},
    {title: "Last success", value: (j) => seconds(j.lastSuccess), render: (j) => when(seconds(j.lastSuccess))},
    {title: "Last error", value: (j) => seconds(j.lastError), render: (j) => when(seconds(j.lastError))},
    {title: "Successes", value: (j) => j.successCount || 0},
    {title: "Errors", value: (j) => j.errorCount || 0},
    {title: "", render: (j) => runNow(app, j.name, errors, () => reload())},
  ]});
  reload = async () => {
    try {
      const [list, summary] = await Promise.all([getJSON(api(app, "jobs")), getJSON(api(app, "jobs/summary"))]);
      const byName = new Map((summary?.jobs || []).map((s) => [s.name, s]));
      table.setRows((list || []).map((j) => ({...j, summary: byName.get(j.name)})));
      fill(graph, (summary?.jobs || []).length ? jobGraph(summary.jobs) : h("p", {class: "muted"}, "No job yet."));
      errors.replaceChildren();
    } catch (error) {
      fill(errors, errorBox(error));
    }
  };
  const dispose = every(POLL_MS, reload);
  return {node: page("Jobs", h("div", {class: "toolbar"}, h("a", {class: "button primary", href: "#/jobs/new"}, "Add a job")),
    errors, table.node, section("Dependency graph", graph)), dispose};
}

function job({app, params}) {
  const name = params.name;
  const errors = h("div");
  const head = h("div");
  const controls = h("div", {class: "toolbar"});
  const history = new DataTable({label: "runs", sort: 1, direction: -1, empty: "No run yet", columns: [
    {title: "Status", value: (r) => r.status, render: (r) => badge(RUN_STATE[r.status] || "TASK_RUNNING", r.status || "running")},
    {title: "Due", value: (r) => seconds(r.due), render: (r) => when(seconds(r.due))},
    {title: "Started", value: (r) => seconds(r.started), render: (r) => when(seconds(r.started))},
    {title: "Finished", value: (r) => seconds(r.finished), render: (r) => when(seconds(r.finished))},
    {title: "Trigger", value: (r) => r.trigger || ""},
    {title: "Attempt", value: (r) => r.attempt ?? 0},
    {title: "Agent", value: (r) => r.agentId || "", render: (r) => (app.feed ? agentLink(app, r.agentId) : r.host || "")},
    {title: "Message", value: (r) => r.message || "", render: (r) => h("span", {class: "message"}, r.message || "")},
  ]});
  const load = async () => {
    try {
      const [j, runs] = await Promise.all([getJSON(api(app, `job/${seg(name)}`)), getJSON(api(app, `job/history/${seg(name)}`))]);
      fill(head, facts([
        ["Command", h("code", null, j.command)], ["Schedule", j.schedule || ""],
        ["Parents", (j.parents || []).map((p, i) => [i ? ", " : "", h("a", {href: jobHref(p)}, p)])],
        ["Next run", when(seconds(j.nextRun))], ["Last success", when(seconds(j.lastSuccess))],
        ["Last error", when(seconds(j.lastError))],
        ["Runs", `${j.successCount || 0} succeeded, ${j.errorCount || 0} failed, ${j.errorsSinceLastSuccess || 0} failures since the last success`],
        ["Resources", `cpus ${j.cpus}, mem ${amount("mem", j.mem)}, disk ${amount("disk", j.disk)}`],
        ["Owner", j.owner], ["Description", j.description], ["Retries", String(j.retries ?? "")],
        ["Disabled", j.disabled ? "yes" : "no"],
      ]));
      history.setRows([...(runs?.current || []), ...(runs?.runs || [])]);
      errors.replaceChildren();
    } catch (error) {
      fill(errors, errorBox(error));
    }
  };
  fill(controls, runNow(app, name, errors, load),
    h("a", {class: "button", href: route(`/jobs/edit/${seg(name)}`)}, "Edit"),
    action("Kill its tasks", () => request(api(app, `task/kill/${seg(name)}`), {method: "DELETE"}).then(load), {errors}),
    action("Delete", () => send(api(app, `job/${seg(name)}`), "DELETE").then(() => { window.location.hash = "#/jobs"; }),
      {errors, danger: true, confirm: `Delete the job ${name}?`}));
  const dispose = every(POLL_MS, load);
  return {node: page(`Job ${name}`, errors, head, controls, section("Run history", history.node)), dispose};
}

// The Chronos job a form holds, and the endpoint it goes to (iso8601 for scheduled, dependency for the rest).
export function jobFromForm(values) {
  const job = {name: String(values.name || "").trim(), command: values.command, owner: values.owner || "",
    description: values.description || "", disabled: values.disabled === "on"};
  for (const key of ["cpus", "mem", "disk", "retries"]) {
    if (String(values[key] ?? "").trim() !== "") job[key] = Number(values[key]);
  }
  const parents = String(values.parents || "").split(",").map((p) => p.trim()).filter(Boolean);
  if (parents.length) job.parents = parents;
  else job.schedule = String(values.schedule || "").trim();
  if (String(values.epsilon || "").trim()) job.epsilon = values.epsilon.trim();
  return {job, endpoint: parents.length ? "dependency" : "iso8601"};
}

function jobForm({app, params}) {
  const editing = params.name || null;
  const errors = h("div");
  const field = (name, label, attrs = {}) => h("label", {"data-field": name}, label,
    h("input", {name, type: attrs.type || "text", step: attrs.step, value: attrs.value, placeholder: attrs.placeholder || ""}));
  const form = h("form", {class: "form", novalidate: true},
    field("name", "Name", {placeholder: "nightly-report"}), field("command", "Command", {placeholder: "echo hello"}),
    field("schedule", "Schedule (ISO 8601: R/start/period)", {value: `R/${new Date().toISOString().replace(/\.\d+Z$/, "Z")}/PT1H`}),
    field("parents", "Or after these jobs (comma-separated)"),
    h("div", {class: "row"}, field("cpus", "CPUs", {type: "number", step: "0.01", value: "0.1"}),
      field("mem", "Memory (MB)", {type: "number", value: "32"}), field("disk", "Disk (MB)", {type: "number", value: "0"}),
      field("retries", "Retries", {type: "number", value: "2"})),
    field("owner", "Owner (e-mail)"), field("description", "Description"), field("epsilon", "Epsilon (ISO 8601 duration)", {placeholder: "PT60S"}),
    h("label", null, h("input", {type: "checkbox", name: "disabled"}), " disabled"),
    h("div", {class: "buttons"}, h("button", {type: "submit", class: "primary"}, editing ? "Save" : "Add")));
  if (editing) {
    getJSON(api(app, `job/${seg(editing)}`)).then((j) => {
      for (const key of ["name", "command", "schedule", "owner", "description", "cpus", "mem", "disk", "retries", "epsilon"]) {
        if (j[key] !== undefined) form.elements[key].value = j[key];
      }
      form.elements.name.readOnly = true;
      form.elements.parents.value = (j.parents || []).join(", ");
      form.elements.disabled.checked = Boolean(j.disabled);
    }).catch((error) => fill(errors, errorBox(error)));
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const {job: definition, endpoint} = jobFromForm(Object.fromEntries(new FormData(form)));
    try {
      await send(api(app, endpoint), "POST", definition);
      window.location.hash = jobHref(definition.name);
    } catch (error) {
      fill(errors, errorBox(error));
    }
  });
  return {node: page(editing ? `Edit ${editing}` : "Add a job", errors, form)};
}

function graphPage({app}) {
  const errors = h("div");
  const graph = h("div", {class: "graph-holder", "data-graph": "jobs"});
  const dispose = every(POLL_MS, () => getJSON(api(app, "jobs/summary"))
    .then((summary) => fill(graph, jobGraph(summary?.jobs || []))).catch((error) => fill(errors, errorBox(error))));
  return {node: page("Job dependencies", errors, graph), dispose};
}

export const routes = [
  {pattern: "/jobs", render: jobs},
  {pattern: "/jobs/new", render: jobForm},
  {pattern: "/jobs/graph", render: graphPage},
  {pattern: "/jobs/edit/:name", render: jobForm},
  {pattern: "/jobs/:name", render: job},
];
