// The dashboard's entry: the nav, the summary bar, the router on location.hash,
// and the live model that re-renders the current view.

import { h, render, num, duration } from "./dom.js";
import { model, connect } from "./live.js";
import overview from "./views/overview.js";
import tree from "./views/tree.js";
import actors from "./views/actors.js";
import schedules from "./views/schedules.js";
import handlers from "./views/handlers.js";
import jobs from "./views/jobs.js";
import history from "./views/history.js";
import deadLetters from "./views/deadletters.js";
import scenarios from "./views/scenarios.js";
import scenario from "./views/scenario.js";
import run from "./views/run.js";
import runs from "./views/runs.js";

// A view with a `section` has no nav entry of its own: its section's is lit.
const VIEWS = [overview, tree, actors, schedules, handlers, jobs, history, deadLetters, scenarios, scenario, run, runs];
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content;

/** What every view is given. */
const ctx = {
  model,
  /** Whether the server lets the page kill and restart actors. */
  mutations: meta("sz-mutations") !== "off",
  params: new URLSearchParams(),
  /** Go to a view (with query parameters), as a link would. */
  go(view, params = {}) {
    const search = new URLSearchParams(params).toString();
    location.hash = `#/${view}${search ? `?${search}` : ""}`;
  },
};

let current = null; // {view, mounted}

function parseHash() {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const view = VIEWS.find((v) => v.id === path) ?? overview;
  return { view, params: new URLSearchParams(search ?? "") };
}

function route() {
  const { view, params } = parseHash();
  ctx.params = params;
  if (current?.view === view) {
    current.mounted.update?.("route");
  } else {
    current?.mounted.dispose?.();
    const root = document.getElementById("view");
    root.replaceChildren();
    root.dataset.view = view.id;
    document.title = `${view.title} · ScheduleZero`;
    current = { view, mounted: view.mount(root, ctx) };
    current.mounted.update?.("route");
  }
  renderNav();
}

function renderNav() {
  const active = current?.view.section ?? current?.view.id;
  render(document.getElementById("nav"), h("ul", {},
    VIEWS.filter((view) => !view.section).map((view) => h("li", {},
      h("a", { href: `#/${view.id}`, "aria-current": view.id === active ? "page" : null }, view.title)))));
}

function stat(key, label, value, { tone, title } = {}) {
  return h("div", { class: `stat${tone ? ` tone-${tone}` : ""}`, "data-stat": key, title },
    h("span", { class: "stat-label" }, label),
    h("span", { class: "stat-value" }, value));
}

function renderSummary() {
  const sm = model.summary;
  const root = document.getElementById("summary");
  if (!sm) {
    render(root, h("div", { class: "stats muted" }, "waiting for the server…"));
    return;
  }
  const lag = sm.loop_lag.latest;
  render(root, h("div", { class: "stats" },
    stat("processed", "Processed", num(sm.ended.total), { title: "Jobs ended since the server started" }),
    stat("failed", "Failed", num(sm.ended.failed), { tone: sm.ended.failed ? "bad" : null }),
    stat("running", "Running", num(sm.jobs.running)),
    stat("waiting", "Waiting", num(sm.jobs.waiting), { title: `${sm.jobs.held} held back by schedule` }),
    stat("retrying", "Retrying", num(sm.jobs.retrying), { tone: sm.jobs.retrying ? "warn" : null }),
    stat("next-hour", "Next hour", num(sm.schedules.due_within_hour), { title: "Schedules due within the hour" }),
    stat("dead-letters", "Dead letters", num(sm.dead_letters), { tone: sm.dead_letters ? "warn" : null }),
    stat("actors", "Actors", `${sm.actors.up}/${sm.actors.total}`, { tone: sm.actors.up < sm.actors.total ? "warn" : "good" }),
    stat("handlers", "Handlers", `${sm.handlers.up}/${sm.handlers.total}`, { tone: sm.handlers.up < sm.handlers.total ? "bad" : "good" }),
    stat("restarts", "Restarts 5m", num(sm.actors.restarts_5m), { tone: sm.actors.restarts_5m ? "warn" : null, title: `${sm.actors.restarts} since start` }),
    stat("lag", "Loop lag", duration(lag), {
      tone: lag > 0.1 ? "bad" : lag > 0.02 ? "warn" : null,
      title: `worst of the last minute: ${duration(sm.loop_lag.worst_last_minute)}`,
    }),
  ));
}

function renderConnection() {
  const conn = document.getElementById("conn");
  conn.dataset.state = model.connected ? "live" : "offline";
  conn.textContent = model.connected ? "live" : "reconnecting…";
}

function changed(kind) {
  if (kind === "summary" || kind === "tick") renderSummary();
  if (kind === "connection") renderConnection();
  current?.mounted.update?.(kind);
}

// Kept from load: a test (or a curious operator) can tell the page never reloaded.
window.szLoadedAt = Date.now();
if (meta("sz-login") === "on") document.getElementById("logout").hidden = false;
window.addEventListener("hashchange", route);
renderSummary();
route();
connect(changed);
