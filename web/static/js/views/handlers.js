// Handlers: local and remote, health, heartbeat age, capacity and busy,
// effective rate; and the governors' limits. The handlers come from the live
// stream (each sign of life is news there; the page ages the heartbeat itself
// between two); the governors, which are not on it, and the handlers while
// the stream is down, are asked for every FALLBACK_MS.

import { api } from "../api.js";
import { h, render, table, sortOnClick, badge, num, duration, panel } from "../dom.js";

/** How often the governors (and, while the stream is down, the handlers) are
 * asked for, in ms. */
const FALLBACK_MS = 15000;

/** A reading of `seconds` at `at` (ms), aged to now; null stays null. */
function aged(seconds, at) {
  return seconds === null || seconds === undefined || !at ? seconds : seconds + Math.max(0, Date.now() - at) / 1000;
}

function load(busy, capacity) {
  const used = capacity ? Math.min(1, busy / capacity) : 0;
  return h("span", { class: "load", title: `${busy} busy of ${capacity ?? "∞"}` },
    h("span", { class: "bar" }, h("span", { class: `bar-fill${used >= 1 ? " full" : ""}`, "data-fill": Math.round(used * 100) })),
    h("span", { class: "num" }, `${busy}/${capacity ?? "∞"}`));
}

export default {
  id: "handlers",
  title: "Handlers",
  mount(root, ctx) {
    const sort = { key: "name", dir: "asc" };
    const govSort = { key: "name", dir: "asc" };
    let governors = [];
    const live = h("div");
    const govLive = h("div");
    root.append(
      h("div", { class: "view-head" }, h("h1", {}, "Handlers"),
        h("p", { class: "muted" }, "Local functions and remote workers, as the dispatcher sees them.")),
      live,
      panel("Governors", h("span", { class: "muted" }, "limits checked as each job is sent"), govLive),
    );

    const poll = async () => {
      try {
        const [handlers, govs] = await Promise.all([
          ctx.model.connected ? null : api("GET", "/api/handlers"),
          api("GET", "/api/governors"),
        ]);
        const now = Date.now();
        for (const handler of handlers ?? []) ctx.model.handler.set(handler.name, { ...handler, received_at: now });
        governors = govs;
        draw();
      } catch {
        // The connection state shows in the header.
      }
    };
    const timer = setInterval(poll, FALLBACK_MS);

    const draw = () => {
      const byName = new Map(governors.map((g) => [g.name, g]));
      const rows = [...ctx.model.handler.values()].map((hd) => ({
        ...hd,
        health: {
          ...hd.health,
          heartbeat_age: aged(hd.health.heartbeat_age, hd.received_at),
          uptime: hd.health.state === "dead" ? hd.health.uptime : aged(hd.health.uptime, hd.received_at),
        },
        effective: byName.get(`handler:${hd.name}`)?.effective_rate ?? null,
      }));
      render(live, table({
        columns: [
          { key: "name", label: "Handler", cell: (hd) => h("span", { class: "mono strong" }, hd.name) },
          { key: "kind", label: "Kind", cell: (hd) => h("span", { class: `kind kind-${hd.kind}` }, hd.kind) },
          { key: "tasks", label: "Tasks", value: (hd) => hd.tasks.join(","), cell: (hd) => hd.tasks.join(", ") },
          { key: "state", label: "Health", value: (hd) => hd.health.state,
            cell: (hd) => [badge(hd.health.state), hd.draining ? h("span", { class: "muted" }, " draining") : null, hd.health.trial ? h("span", { class: "muted" }, " trial") : null] },
          { key: "heartbeat", label: "Heartbeat", num: true, value: (hd) => hd.health.heartbeat_age, cell: (hd) => duration(hd.health.heartbeat_age) },
          { key: "uptime", label: "Up", num: true, value: (hd) => hd.health.uptime, cell: (hd) => duration(hd.health.uptime) },
          { key: "busy", label: "Busy / capacity", value: (hd) => hd.busy, cell: (hd) => load(hd.busy, hd.concurrency) },
          { key: "rate", label: "Rate limit", num: true, cell: (hd) => (hd.rate === null ? "none" : `${num(hd.rate)}/s`) },
          { key: "effective", label: "Effective rate", num: true, cell: (hd) => (hd.effective === null ? "–" : `${num(hd.effective)}/s`) },
          { key: "ok", label: "OK / failed", num: true, value: (hd) => hd.health.failures, cell: (hd) => `${num(hd.health.successes)} / ${num(hd.health.failures)}` },
          { key: "ratio", label: "Failure ratio", num: true, value: (hd) => hd.health.failure_ratio,
            cell: (hd) => (hd.health.failure_ratio === null ? "–" : `${num(hd.health.failure_ratio * 100)} %`) },
          { key: "avg", label: "Avg time", num: true, value: (hd) => hd.health.avg_duration, cell: (hd) => duration(hd.health.avg_duration) },
        ],
        rows,
        sort,
        onSort: true,
        key: (hd) => hd.name,
        rowAttrs: (hd) => ({ "data-name": hd.name }),
        empty: "No handler is registered.",
      }));
      render(govLive, table({
        columns: [
          { key: "name", label: "Limit", cell: (g) => h("span", { class: "mono" }, g.name) },
          { key: "rate", label: "Rate", num: true, cell: (g) => (g.rate === null ? "–" : `${num(g.rate)}/s`) },
          { key: "effective_rate", label: "Effective", num: true, cell: (g) => (g.effective_rate === null ? "–" : `${num(g.effective_rate)}/s`) },
          { key: "tokens", label: "Tokens", num: true, cell: (g) => num(g.tokens) },
          { key: "running", label: "Running", num: true, cell: (g) => `${num(g.running)}${g.max_running === null ? "" : ` / ${num(g.max_running)}`}` },
          { key: "waiting", label: "Waiting", num: true },
          { key: "limited", label: "Limited", num: true },
          { key: "rejected", label: "Rejected", num: true },
        ],
        rows: governors,
        sort: govSort,
        onSort: true,
        key: (g) => g.name,
        empty: "No limit is set.",
      }));
      for (const fill of root.querySelectorAll("[data-fill]")) fill.style.width = `${fill.dataset.fill}%`;
    };
    sortOnClick(live, sort, draw, ["heartbeat", "busy", "ratio", "avg"]);
    sortOnClick(govLive, govSort, draw);

    return {
      update(kind) {
        if (kind === "route") poll();
        // Each tick ages the heartbeats.
        if (kind === "route" || kind === "tick" || kind === "handler" || kind === "connection") draw();
      },
      dispose() {
        clearInterval(timer);
      },
    };
  },
};
