// The cluster as the master's SUBSCRIBE stream tells it: a model kept up to date by `applyEvent`
// (pure, unit-tested), and `ClusterFeed`, which follows the stream and refreshes the few figures
// events do not carry (agents' allocated and offered resources, roles, metrics) with small calls.

import {call, follow, getJSON, request, RecordIOParser} from "./api.js";
import {addSums, FAILED, id, reserved, sumResources, TERMINAL} from "./format.js";

export function emptyState() {
  return {
    subscribed: false, version: 0, heartbeat: 0,
    agents: new Map(), goneAgents: new Map(),
    frameworks: new Map(), completedFrameworks: new Map(),
    tasks: new Map(), executors: [],
    master: null, metrics: {}, roles: [], weights: [],
  };
}

export function taskKey(frameworkId, taskId) {
  return `${frameworkId}\u0000${taskId}`;
}

// A v1 Task as the pages use it: flat fields for filtering and sorting, the rest kept in `raw`.
export function normalTask(task) {
  const statuses = Array.isArray(task.statuses) ? task.statuses.slice() : [];
  const last = statuses[statuses.length - 1] || {};
  const frameworkId = id(task.framework_id);
  const taskId = id(task.task_id);
  return {
    key: taskKey(frameworkId, taskId), id: taskId, name: String(task.name ?? ""), frameworkId,
    agentId: id(task.agent_id), executorId: id(task.executor_id), state: task.state || "TASK_STAGING",
    statuses, resources: task.resources || [], labels: task.labels?.labels || [],
    healthy: last.healthy, updated: Number(last.timestamp) || 0, raw: task,
  };
}

function addTask(state, task) {
  const normal = normalTask(task);
  const known = state.tasks.get(normal.key);
  if (known && known.statuses.length > normal.statuses.length) normal.statuses = known.statuses;
  state.tasks.set(normal.key, normal);
}

function framework(record) {
  const info = record.framework_info || {};
  return {...record, id: id(info.id), name: String(info.name ?? ""), info};
}

// Applies one operator event (SUBSCRIBED, TASK_ADDED, ...) to `state`; returns whether it changed.
export function applyEvent(state, event) {
  switch (event.type) {
    case "SUBSCRIBED": {
      const snapshot = event.subscribed?.get_state || {};
      const fresh = emptyState();
      for (const key of ["master", "metrics", "roles", "weights"]) fresh[key] = state[key];
      Object.assign(state, fresh, {subscribed: true});
      for (const agent of snapshot.get_agents?.agents || []) state.agents.set(id(agent.agent_info?.id), agent);
      for (const f of snapshot.get_frameworks?.frameworks || []) state.frameworks.set(id(f.framework_info?.id), framework(f));
      for (const f of snapshot.get_frameworks?.completed_frameworks || []) {
        state.completedFrameworks.set(id(f.framework_info?.id), framework(f));
      }
      const tasks = snapshot.get_tasks || {};
      for (const group of ["completed_tasks", "unreachable_tasks", "orphan_tasks", "pending_tasks", "tasks"]) {
        for (const task of tasks[group] || []) addTask(state, task);
      }
      state.executors = snapshot.get_executors?.executors || [];
      break;
    }
    case "TASK_ADDED":
      addTask(state, event.task_added.task);
      break;
    case "TASK_UPDATED": {
      const update = event.task_updated;
      const status = update.status || {};
      const key = taskKey(id(update.framework_id), id(status.task_id));
      let task = state.tasks.get(key);
      if (!task) {
        task = normalTask({task_id: status.task_id, framework_id: update.framework_id, agent_id: status.agent_id,
          name: id(status.task_id), state: update.state, statuses: []});
        state.tasks.set(key, task);
      }
      if (!status.uuid || !task.statuses.some((s) => s.uuid === status.uuid)) task.statuses.push(status);
      task.state = update.state || status.state || task.state;
      if (status.healthy !== undefined) task.healthy = status.healthy;
      task.updated = Number(status.timestamp) || task.updated;
      break;
    }
    case "AGENT_ADDED": {
      const agent = event.agent_added.agent;
      const agentId = id(agent.agent_info?.id);
      state.agents.set(agentId, agent);
      state.goneAgents.delete(agentId);
      break;
    }
    case "AGENT_REMOVED": {
      const agentId = id(event.agent_removed.agent_id);
      const agent = state.agents.get(agentId);
      if (agent) state.goneAgents.set(agentId, agent);
      state.agents.delete(agentId);
      break;
    }
    case "FRAMEWORK_ADDED":
    case "FRAMEWORK_UPDATED": {
      const body = event.framework_added || event.framework_updated;
      const record = framework(body.framework);
      const known = state.frameworks.get(record.id);
      // Events carry no resources or offers: keep those of the last refresh.
      state.frameworks.set(record.id, known ? {...known, ...record} : record);
      state.completedFrameworks.delete(record.id);
      break;
    }
    case "FRAMEWORK_REMOVED": {
      const info = event.framework_removed.framework_info || {};
      const frameworkId = id(info.id);
      const known = state.frameworks.get(frameworkId);
      state.frameworks.delete(frameworkId);
      state.completedFrameworks.set(frameworkId, {...(known || framework({framework_info: info})), active: false,
        connected: false});
      break;
    }
    case "HEARTBEAT":
      state.heartbeat = Date.now();
      return false;
    default:
      return false;
  }
  state.version += 1;
  return true;
}

// Tasks by state: {TASK_RUNNING: 3, ...}.
export function countByState(tasks) {
  const out = {};
  for (const task of tasks) out[task.state] = (out[task.state] || 0) + 1;
  return out;
}

// Per resource kind: total, used (allocated), offered and reserved over the registered agents.
export function resourceTotals(agents) {
  let total = {};
  let used = {};
  let offered = {};
  let reservedSum = {};
  for (const agent of agents) {
    total = addSums(total, sumResources(agent.total_resources || agent.agent_info?.resources));
    used = addSums(used, sumResources(agent.allocated_resources));
    offered = addSums(offered, sumResources(agent.offered_resources));
    reservedSum = addSums(reservedSum, sumResources(agent.total_resources || agent.agent_info?.resources, reserved));
  }
  const kinds = Object.keys(total).filter((k) => k !== "ports" && (total[k] > 0 || k === "cpus" || k === "mem"));
  return kinds.map((kind) => ({kind, total: total[kind] || 0, used: used[kind] || 0, offered: offered[kind] || 0,
    reserved: reservedSum[kind] || 0}));
}

// The latest failed tasks, newest first, with the message and reason of their last status.
export function recentFailures(tasks, limit = 10) {
  const failed = [];
  for (const task of tasks) {
    if (!FAILED.has(task.state)) continue;
    const last = task.statuses[task.statuses.length - 1] || {};
    failed.push({task, time: Number(last.timestamp) || task.updated, message: last.message || "",
      reason: last.reason || "", source: last.source || ""});
  }
  failed.sort((a, b) => b.time - a.time);
  return failed.slice(0, limit);
}

export function isActive(task) {
  return !TERMINAL.has(task.state);
}

// Follows SUBSCRIBE and refreshes agents, frameworks, roles and metrics every `interval` ms while
// the page is visible; listeners run at most once per animation frame.
export class ClusterFeed {
  constructor({interval = 5000} = {}) {
    this.state = emptyState();
    this.interval = interval;
    this.listeners = new Set();
    this.status = {stream: "connecting", error: null};
    this.scheduled = false;
    this.stream = null;
    this.timer = null;
  }

  start() {
    this.stream = follow({
      open: (signal) => request("api/v1", {method: "POST", json: {type: "SUBSCRIBE"}, signal,
        headers: {Accept: "application/json"}}),
      parser: () => new RecordIOParser(),
      onRecord: (text) => {
        if (applyEvent(this.state, JSON.parse(text))) this.changed();
      },
      onState: (stream, error) => {
        this.status = {stream, error: error ? String(error.message || error) : null};
        this.changed();
        if (stream === "live") this.refresh();
      },
    });
    this.timer = setInterval(() => { if (!document.hidden) this.refresh(); }, this.interval);
  }

  stop() {
    if (this.stream) this.stream.stop();
    clearInterval(this.timer);
  }

  async refresh() {
    const state = this.state;
    const jobs = [
      call("GET_AGENTS").then((answer) => {
        for (const agent of answer?.agents || []) state.agents.set(id(agent.agent_info?.id), agent);
      }),
      call("GET_FRAMEWORKS").then((answer) => {
        for (const f of answer?.frameworks || []) {
          const record = framework(f);
          state.frameworks.set(record.id, {...(state.frameworks.get(record.id) || {}), ...record});
        }
      }),
      call("GET_ROLES").then((answer) => { state.roles = answer?.roles || []; }),
      call("GET_MASTER").then((answer) => { state.master = answer; }),
      getJSON("metrics/snapshot").then((metrics) => { state.metrics = metrics || {}; }),
    ];
    const results = await Promise.allSettled(jobs);
    const failed = results.find((r) => r.status === "rejected");
    this.status.refreshError = failed ? String(failed.reason?.message || failed.reason) : null;
    state.version += 1;
    this.changed();
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed() {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      for (const listener of [...this.listeners]) listener(this.state);
    };
    if (document.hidden) setTimeout(run, 250);
    else requestAnimationFrame(run);
  }
}
