// Scenario runs: every run the server keeps, newest first, as a sortable
// table, and per scenario a small trend chart of each metric over its runs
// (from each run's `metrics`, where the server gives them).

import { api, query } from "../api.js";
import { h, render, table, sortOnClick, badge, when, duration, panel, shortId } from "../dom.js";
import { trendChart } from "../trendchart.js";
import { tabs } from "../scenarios/tabs.js";
import { DASH, metricNumber, outcomeOf, between } from "../scenarios/format.js";

/** How often the list is asked for again: while a run goes on, and else (ms). */
const REFRESH_MS = 2000;
const IDLE_REFRESH_MS = 10000;

/** The trend charts of one scenario's runs (oldest first), or the dash. */
function trends(name, runs) {
  const measured = runs.filter((r) => r.metrics && typeof r.metrics === "object");
  if (!measured.length) {
    return h("p", { class: "muted", "data-trends": "none" }, DASH, " no per-run metrics from this server");
  }
  const names = [...new Set(measured.flatMap((r) => Object.keys(r.metrics)))];
  return h("div", { class: "trend-grid" }, names.map((metric) => {
    const points = measured
      .filter((r) => Number.isFinite(r.metrics[metric]))
      .map((r) => {
        const outcome = outcomeOf(r);
        return {
          v: r.metrics[metric],
          shown: metricNumber(metric, r.metrics[metric], r.units?.[metric]),
          passed: outcome === null ? null : outcome === "passed",
          title: `${r.run_id} · ${outcome ?? "running"} · ${metricNumber(metric, r.metrics[metric], r.units?.[metric])}`,
        };
      });
    return h("figure", { class: "trend", "data-trend": metric },
      h("figcaption", {}, h("span", { class: "mono" }, metric), " ",
        h("span", { class: "muted" }, points.length ? `latest ${points.at(-1).shown}` : DASH)),
      points.length
        ? trendChart({ points, format: (v) => metricNumber(metric, v, measured.at(-1).units?.[metric]), label: `${metric} of ${name} over its runs` })
        : h("p", { class: "muted" }, DASH));
  }));
}

export default {
  id: "runs",
  title: "Scenario runs",
  section: "scenarios",
  mount(root, ctx) {
    const sort = { key: "started_at", dir: "desc" };
    let runs = null;
    let error = null;
    let scenario = "";
    let asked = 0;
    let asking = false;
    const names = new Map(); // every scenario seen in a list: id -> name

    const picker = h("select", { name: "scenario", "aria-label": "Scenario" });
    const live = h("div");
    const trendBox = h("div");
    root.append(
      h("div", { class: "view-head" },
        h("h1", {}, "Scenario runs"),
        h("p", { class: "muted" }, "Every run this server keeps, newest first; click a run for its charts and final table. Below, each scenario's metrics over its runs."),
        tabs("runs")),
      h("form", { class: "filters", "aria-label": "Filter runs" }, h("label", {}, "Scenario", picker)),
      live, trendBox);
    sortOnClick(live, sort, () => draw(), ["started_at", "duration", "seed"]);
    picker.addEventListener("change", () => ctx.go("runs", picker.value ? { scenario: picker.value } : {}));

    const load = async () => {
      if (asking) return;
      asking = true;
      asked = Date.now();
      try {
        const all = await api("GET", `/api/tests/results${query({ scenario })}`);
        // A server without the filter lists every run: filter here too.
        runs = scenario ? all.filter((r) => r.scenario_id === scenario || r.name === scenario) : all;
        error = null;
      } catch (e) {
        error = e.message;
      } finally {
        asking = false;
      }
      draw();
    };

    const draw = () => {
      const rows = runs ?? [];
      for (const r of rows) names.set(r.scenario_id, r.name);
      const known = new Map(names);
      if (scenario && !known.has(scenario)) known.set(scenario, scenario);
      picker.replaceChildren(h("option", { value: "" }, "all"),
        ...[...known].sort((a, b) => a[1].localeCompare(b[1])).map(([id, name]) => h("option", { value: id }, name)));
      picker.value = scenario;
      render(live, h("div", {},
        error ? h("p", { class: "error", role: "alert" }, error) : null,
        table({
          columns: [
            { key: "name", label: "Scenario", cell: (r) => h("a", { href: `#/scenario?id=${encodeURIComponent(r.scenario_id)}` }, r.name) },
            { key: "run_id", label: "Run", cell: (r) => h("a", { class: "mono", href: `#/run?id=${encodeURIComponent(r.run_id)}`, "data-run": r.run_id }, shortId(r.run_id)) },
            { key: "started_at", label: "Started", cell: (r) => when(r.started_at) },
            { key: "duration", label: "Duration", num: true, value: (r) => between(r.started_at, r.finished_at),
              cell: (r) => (r.finished_at ? duration(between(r.started_at, r.finished_at)) : h("span", { class: "muted" }, "running")) },
            { key: "outcome", label: "Outcome", value: (r) => outcomeOf(r) ?? "running",
              cell: (r) => [badge(outcomeOf(r) ?? "running"), r.error ? h("span", { class: "cause", title: r.error }, ` ${r.error}`) : null] },
            { key: "seed", label: "Seed", num: true },
            { key: "schedule_id", label: "Schedule", cell: (r) => r.schedule_id ?? h("span", { class: "muted" }, DASH) },
          ],
          rows,
          sort,
          onSort: true,
          key: (r) => r.run_id,
          rowAttrs: (r) => ({ "data-run": r.run_id }),
          empty: runs === null ? "Loading…" : "No run yet: start one from the library.",
        })));
      const groups = new Map();
      for (const run of [...rows].reverse()) {
        if (!groups.has(run.scenario_id)) groups.set(run.scenario_id, []);
        groups.get(run.scenario_id).push(run);
      }
      render(trendBox, h("div", { class: "trends" },
        [...groups].map(([id, group]) => h("div", { "data-key": id, "data-scenario": id },
          panel(`Trends of ${group[0].name}`, h("span", { class: "muted" }, `${group.length} run${group.length > 1 ? "s" : ""}, oldest to newest`),
            trends(group[0].name, group))))));
    };

    return {
      update(kind) {
        if (kind === "route") {
          scenario = ctx.params.get("scenario") ?? "";
          load();
        } else if (kind === "tick" && runs !== null) {
          // Runs started elsewhere (another page, sz scenario run --url, a
          // schedule) show up by themselves.
          const every = runs.some((r) => outcomeOf(r) === null) ? REFRESH_MS : IDLE_REFRESH_MS;
          if (Date.now() - asked > every) load();
        }
      },
    };
  },
};
