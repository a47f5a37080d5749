// Formatting and resource arithmetic: pure functions, unit-tested in the browser tests.

export const TERMINAL = new Set(["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
  "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"]);
export const FAILED = new Set(["TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_GONE",
  "TASK_GONE_BY_OPERATOR"]);
export const TASK_STATES = ["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED",
  "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_UNREACHABLE", "TASK_GONE",
  "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"];

// "TASK_RUNNING" -> "running"
export function stateName(state) {
  return String(state || "").replace(/^TASK_/, "").toLowerCase().replace(/_/g, " ");
}

// A CSS class for a state: ok (running, finished, healthy), bad (failures), busy (on its way), off.
export function stateClass(state) {
  if (state === "TASK_RUNNING" || state === "TASK_FINISHED" || state === "success") return "ok";
  if (FAILED.has(state) || state === "failure" || state === "TASK_UNREACHABLE") return "bad";
  if (state === "TASK_KILLED" || state === "TASK_KILLING") return "off";
  return "busy";
}

// Megabytes (Mesos's unit for mem and disk) as "512 MB", "22.5 GB".
export function megabytes(mb) {
  const value = Number(mb) || 0;
  const units = ["MB", "GB", "TB", "PB"];
  let n = value;
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? round(n, 1) : round(n, 1).toFixed(1)} ${units[i]}`;
}

export function bytes(count) {
  const value = Number(count) || 0;
  if (value < 1024) return `${value} B`;
  return value < 1024 * 1024 ? `${(value / 1024).toFixed(1)} KB` : megabytes(value / (1024 * 1024));
}

export function round(value, digits = 2) {
  const factor = 10 ** digits;
  return Math.round((Number(value) || 0) * factor) / factor;
}

// One resource kind's amount in its unit.
export function amount(kind, value) {
  if (kind === "mem" || kind === "disk") return megabytes(value);
  return String(round(value, 2));
}

export function percent(part, whole) {
  return whole > 0 ? Math.max(0, Math.min(100, (100 * part) / whole)) : 0;
}

// Seconds as "2d 3h", "5m 2s", "800ms".
export function duration(seconds) {
  const s = Number(seconds);
  if (!Number.isFinite(s)) return "";
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  const parts = [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]];
  const out = [];
  let rest = Math.floor(s);
  for (const [size, unit] of parts) {
    if (rest >= size || (unit === "s" && out.length === 0)) {
      out.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    if (out.length === 2) break;
  }
  return out.join(" ");
}

// "5s ago" / "in 3m" from a time in seconds since the epoch.
export function relative(epochSeconds, now = Date.now() / 1000) {
  if (!epochSeconds) return "";
  const delta = now - epochSeconds;
  return delta >= 0 ? `${duration(delta)} ago` : `in ${duration(-delta)}`;
}

export function timestamp(epochSeconds) {
  if (!epochSeconds) return "";
  return new Date(epochSeconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// A v1 TimeInfo ({nanoseconds}) or a number of seconds, as seconds.
export function seconds(time) {
  if (time === null || time === undefined) return 0;
  if (typeof time === "number") return time;
  if (typeof time === "object" && "nanoseconds" in time) return Number(time.nanoseconds) / 1e9;
  const parsed = Date.parse(time);
  return Number.isNaN(parsed) ? 0 : parsed / 1000;
}

// Sum a v1 Resource list by kind: {cpus: 1.5, mem: 512, ports: 2001 (count), ...}; `filter` picks some.
export function sumResources(resources, filter) {
  const out = {};
  for (const r of resources || []) {
    if (filter && !filter(r)) continue;
    let value = 0;
    if (r.type === "SCALAR" || r.scalar) value = Number(r.scalar?.value) || 0;
    else if (r.type === "RANGES" || r.ranges) {
      for (const range of r.ranges?.range || []) value += Number(range.end) - Number(range.begin) + 1;
    } else if (r.type === "SET" || r.set) value = (r.set?.item || []).length;
    out[r.name] = round((out[r.name] || 0) + value, 4);
  }
  return out;
}

// Whether a v1 Resource is reserved (statically for a role, or dynamically).
export function reserved(resource) {
  if (Array.isArray(resource.reservations) && resource.reservations.length) return true;
  return Boolean(resource.role && resource.role !== "*") || Boolean(resource.reservation);
}

// Add resource sums: addSums({cpus: 1}, {cpus: 2, mem: 3}) -> {cpus: 3, mem: 3}.
export function addSums(...sums) {
  const out = {};
  for (const sum of sums) {
    for (const [kind, value] of Object.entries(sum || {})) out[kind] = round((out[kind] || 0) + value, 4);
  }
  return out;
}

// "cpus: 2; mem: 1.0 GB; ports: [31000-32000]" for a v1 Resource list.
export function resourceText(resources) {
  const parts = [];
  const sums = sumResources(resources);
  for (const [kind, value] of Object.entries(sums)) {
    if (kind === "ports") {
      const ranges = (resources || []).filter((r) => r.name === "ports")
        .flatMap((r) => (r.ranges?.range || []).map((x) => (x.begin === x.end ? `${x.begin}` : `${x.begin}-${x.end}`)));
      parts.push(`ports: [${ranges.join(",")}]`);
    } else {
      parts.push(`${kind}: ${amount(kind, value)}`);
    }
  }
  return parts.join("; ");
}

// The v1 {value: ...} wrapper of IDs, unwrapped.
export function id(wrapped) {
  if (wrapped === null || wrapped === undefined) return "";
  return typeof wrapped === "object" ? String(wrapped.value ?? "") : String(wrapped);
}

// An agent's "host:port" from its pid "slave(1)@host:port" or its info.
export function agentAddress(agent) {
  const info = agent?.agent_info || {};
  if (info.hostname && info.port) return `${info.hostname}:${info.port}`;
  const pid = String(agent?.pid || "");
  return pid.includes("@") ? pid.split("@")[1] : pid;
}

// Attributes of an AgentInfo as "rack: r1; zone: a".
export function attributesText(attributes) {
  return (attributes || []).map((a) => {
    let value = "";
    if (a.text) value = a.text.value;
    else if (a.scalar) value = String(a.scalar.value);
    else if (a.ranges) value = (a.ranges.range || []).map((r) => `${r.begin}-${r.end}`).join(",");
    else if (a.set) value = (a.set.item || []).join(",");
    return `${a.name}: ${value}`;
  }).join("; ");
}

// Text of a label list ([{key, value}]) or an object.
export function labelsText(labels) {
  const list = Array.isArray(labels) ? labels : Array.isArray(labels?.labels) ? labels.labels
    : Object.entries(labels || {}).map(([key, value]) => ({key, value}));
  return list.map((l) => (l.value === undefined || l.value === "" ? l.key : `${l.key}=${l.value}`)).join(", ");
}
