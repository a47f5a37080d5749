// Talking to the daemon: requests with the user's credentials, and the two streams (RecordIO of the
// operator API's SUBSCRIBE, Server-Sent Events of the service API), read from fetch() bodies so that
// they carry an Authorization header too.

const KEY = "mesostw.authorization";

export class HTTPError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// Credentials live in the tab's sessionStorage only, as an "Authorization" value.
let authorization = sessionStorage.getItem(KEY) || "";
let loginPrompt = null; // set by the app: () => Promise<{user, password}>, rejecting on cancel
let pendingLogin = null;
const signInListeners = new Set();

// Runs `listener` whenever the user signs in.
export function onSignIn(listener) {
  signInListeners.add(listener);
}

export function setLoginPrompt(prompt) {
  loginPrompt = prompt;
}

export function signedIn() {
  return authorization !== "";
}

export function user() {
  if (!authorization) return "";
  try {
    return atob(authorization.slice(6)).split(":")[0];
  } catch {
    return "";
  }
}

export function signIn(name, password) {
  // btoa takes Latin-1: encode UTF-8 first so that any password works.
  const raw = new TextEncoder().encode(`${name}:${password}`);
  authorization = "Basic " + btoa(String.fromCharCode(...raw));
  sessionStorage.setItem(KEY, authorization);
  for (const listener of signInListeners) listener(name);
}

export function signOut() {
  authorization = "";
  sessionStorage.removeItem(KEY);
}

async function login() {
  if (!loginPrompt) throw new HTTPError(401, "Authentication required");
  if (!pendingLogin) {
    pendingLogin = loginPrompt().then(({name, password}) => signIn(name, password))
      .finally(() => { pendingLogin = null; });
  }
  return pendingLogin;
}

// A path relative to the page (so the UI also works below a path prefix) under `base`.
export function url(base, path) {
  const tail = String(path).replace(/^\/+/, "");
  return base ? `${String(base).replace(/\/+$/, "")}/${tail}` : tail;
}

// fetch() with the credentials; a 401 asks for credentials (once for all waiting calls) and retries.
// credentials: "omit" keeps the browser's own Basic prompt away: the page asks instead.
export async function request(target, {method = "GET", json, body, headers = {}, signal} = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const allHeaders = {...headers};
    if (authorization) allHeaders.Authorization = authorization;
    let payload = body;
    if (json !== undefined) {
      payload = JSON.stringify(json);
      allHeaders["Content-Type"] = "application/json";
    }
    const response = await fetch(target, {method, headers: allHeaders, body: payload, signal,
      credentials: "omit", cache: "no-store"});
    if (response.status === 401 && attempt < 3) {
      if (authorization) signOut();
      await login();
      continue;
    }
    return response;
  }
}

// The message of an error answer: {"message"} (our APIs, Marathon's), {"details"} (422) or the text.
export async function errorOf(response) {
  const text = await response.text();
  let body = null;
  let message = text || response.statusText;
  try {
    body = JSON.parse(text);
    if (body && typeof body === "object") message = body.message || body.error || message;
  } catch {
    // not JSON: the text is the message
  }
  return new HTTPError(response.status, `${response.status}: ${message}`, body);
}

export async function getJSON(target, options) {
  const response = await request(target, options);
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export async function send(target, method, json) {
  return getJSON(target, {method, json});
}

// A call of the master's v1 operator API: call("GET_AGENTS") -> its answer's get_agents.
export async function call(type, fields = {}) {
  const answer = await getJSON("api/v1", {method: "POST", json: {type, ...fields},
    headers: {Accept: "application/json"}});
  return answer ? answer[type.toLowerCase()] : null;
}

// Splits RecordIO ("<length>\n<bytes>" repeated) into records, across chunk boundaries.
export class RecordIOParser {
  constructor() {
    this.buffer = new Uint8Array(0);
    this.decoder = new TextDecoder();
  }

  // Takes a chunk of bytes; returns the complete records (as strings) it finished.
  push(chunk) {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    const records = [];
    let start = 0;
    for (;;) {
      const newline = joined.indexOf(10, start);
      if (newline < 0) break;
      const length = Number(this.decoder.decode(joined.subarray(start, newline)));
      if (!Number.isInteger(length) || length < 0) throw new Error("malformed RecordIO length");
      if (joined.length < newline + 1 + length) break;
      records.push(this.decoder.decode(joined.subarray(newline + 1, newline + 1 + length)));
      start = newline + 1 + length;
    }
    this.buffer = joined.slice(start);
    return records;
  }
}

// Splits Server-Sent Events into {event, data} messages, across chunk boundaries.
export class SSEParser {
  constructor() {
    this.text = "";
    this.decoder = new TextDecoder();
    this.event = "";
    this.data = [];
  }

  push(chunk) {
    this.text += typeof chunk === "string" ? chunk : this.decoder.decode(chunk, {stream: true});
    const out = [];
    let newline;
    while ((newline = this.text.search(/\r?\n/)) >= 0) {
      const line = this.text.slice(0, newline);
      this.text = this.text.slice(newline + (this.text[newline] === "\r" ? 2 : 1));
      if (line === "") {
        if (this.data.length) out.push({event: this.event || "message", data: this.data.join("\n")});
        this.event = "";
        this.data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") this.event = value;
        else if (field === "data") this.data.push(value);
      }
    }
    return out;
  }
}

// Follows a streamed answer until stop(): each record goes to onRecord; the stream is opened again
// (with a growing delay, at most 10 s) when it ends or fails. onState gets "connecting", "live",
// "down" (with the error).
export function follow({open, parser, onRecord, onState = () => {}}) {
  let stopped = false;
  let controller = null;
  let delay = 500;
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      onState("connecting");
      try {
        const response = await open(controller.signal);
        if (!response.ok) throw await errorOf(response);
        const reader = response.body.getReader();
        const split = parser();
        onState("live");
        delay = 500;
        for (;;) {
          const {value, done} = await reader.read();
          if (done || stopped) break;
          for (const record of split.push(value)) onRecord(record);
        }
        if (!stopped) onState("down", new Error("the stream ended"));
      } catch (error) {
        if (stopped) return;
        onState("down", error);
      }
      if (stopped) return;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
  run();
  return {stop() { stopped = true; if (controller) controller.abort(); }};
}
