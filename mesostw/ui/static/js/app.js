// The shell: what this daemon serves (/ui/config), the navigation, the sign-in dialog and the
// hash router (#/agents/ID) that mounts one page at a time.

import {getJSON, onSignIn, setLoginPrompt, signOut, user} from "./api.js";
import {ClusterFeed} from "./cluster.js";
import {fill, h} from "./dom.js";
import * as clusterPages from "./pages/cluster.js";
import * as taskPages from "./pages/tasks.js";
import * as sandboxPages from "./pages/sandbox.js";
import * as servicePages from "./pages/services.js";
import * as jobPages from "./pages/jobs.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const status = document.getElementById("status");
const account = document.getElementById("account");

// "/tasks/:framework/:task" against "/tasks/abc/def" -> {framework: "abc", task: "def"} or null.
export function matchRoute(pattern, path) {
  const want = pattern.split("/").filter(Boolean);
  const have = path.split("/").filter(Boolean);
  const params = {};
  for (let i = 0; i < want.length; i += 1) {
    if (want[i].endsWith("*")) {
      params[want[i].slice(1, -1)] = have.slice(i).map(decodeURIComponent).join("/");
      return params;
    }
    if (i >= have.length) return null;
    if (want[i].startsWith(":")) params[want[i].slice(1)] = decodeURIComponent(have[i]);
    else if (want[i] !== have[i]) return null;
  }
  return have.length === want.length ? params : null;
}

function loginDialog() {
  const dialog = document.getElementById("login");
  const form = dialog.querySelector("form");
  return () => new Promise((resolve, reject) => {
    form.reset();
    dialog.querySelector(".why").textContent = "This cluster requires credentials.";
    const done = (event) => {
      event.preventDefault();
      const data = new FormData(form);
      if (event.submitter?.value === "cancel") {
        dialog.close();
        reject(new Error("Sign-in cancelled"));
      } else {
        dialog.close();
        resolve({name: String(data.get("user")), password: String(data.get("password"))});
      }
      form.removeEventListener("submit", done);
    };
    form.addEventListener("submit", done);
    if (!dialog.open) dialog.showModal();
  });
}

function renderAccount() {
  const name = user();
  fill(account, name ? [h("span", null, `signed in as ${name} `),
    h("button", {type: "button", onclick: () => { signOut(); window.location.reload(); }}, "sign out")] : null);
}

async function start() {
  setLoginPrompt(loginDialog());
  onSignIn(renderAccount);
  renderAccount();
  let config;
  try {
    config = await getJSON("ui/config");
  } catch (error) {
    fill(main, h("p", {class: "error"}, `Cannot load the UI's configuration: ${error.message}`));
    return;
  }
  const frameworks = config.frameworks || {};
  const app = {config, feed: null, service: frameworks.service, cron: frameworks.cron};
  const routes = [];
  const links = [];
  if (config.cluster) {
    app.feed = new ClusterFeed();
    app.feed.start();
    app.feed.subscribe(() => renderStatus(app));
    routes.push(...clusterPages.routes, ...taskPages.routes, ...sandboxPages.routes);
    links.push(["#/", "Overview"], ["#/agents", "Agents"], ["#/frameworks", "Frameworks"], ["#/tasks", "Tasks"],
      ["#/roles", "Roles"], ["#/offers", "Offers"]);
  }
  if (app.service) {
    routes.push(...servicePages.routes);
    links.push(["#/services", "Services"]);
  }
  if (app.cron) {
    routes.push(...jobPages.routes);
    links.push(["#/jobs", "Jobs"]);
  }
  if (!config.cluster) {
    const home = app.service ? "/services" : "/jobs";
    routes.push({pattern: "/", render: (ctx) => { window.location.replace("#" + home); return {node: h("div")}; }});
  }
  fill(nav, links.map(([href, text]) => h("a", {href, "data-nav": text.toLowerCase()}, text)));
  document.title = config.cluster ? "mesostw" : `mesostw ${config.daemon}`;
  window.mesostw = app; // for the browser tests and the curious

  let current = null;
  const show = () => {
    const [rawPath, rawQuery] = (window.location.hash.slice(1) || "/").split("?");
    const query = Object.fromEntries(new URLSearchParams(rawQuery || ""));
    for (const a of nav.querySelectorAll("a")) {
      const target = a.getAttribute("href").slice(1);
      a.classList.toggle("current", target === "/" ? rawPath === "/" : rawPath.startsWith(target));
    }
    if (current?.dispose) current.dispose();
    current = null;
    for (const r of routes) {
      const params = matchRoute(r.pattern, rawPath);
      if (params === null) continue;
      try {
        current = r.render({app, params, query, navigate: (hash) => { window.location.hash = hash; }});
        fill(main, current.node);
      } catch (error) {
        fill(main, h("p", {class: "error"}, String(error.message || error)));
      }
      return;
    }
    fill(main, h("p", {class: "error"}, `No page at ${rawPath}`));
  };
  window.addEventListener("hashchange", show);
  show();
}

function renderStatus(app) {
  const {stream, error, refreshError} = app.feed.status;
  const label = stream === "live" ? "live" : stream === "connecting" ? "connecting…" : "disconnected";
  fill(status, h("span", {class: `dot ${stream}`, title: error || refreshError || ""}, label));
}

start();
