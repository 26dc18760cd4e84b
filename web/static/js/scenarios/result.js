// A finished run's final table: its outcome, metrics, checks and assertions,
// and links to its JSON and CSV exports (the run page shows it live at the
// end, and for a run that ended before the page was opened).

import { h, panel, badge, duration } from "../dom.js";
import { DASH, metricValue, checkDetails, outcomeOf, between } from "./format.js";

const mark = (passed) => badge(passed ? "passed" : "failed");

/** Why a table is empty: a run that ended early never got to it. */
const early = (run) => ["aborted", "error"].includes(outcomeOf(run));

function metricsTable(run) {
  const entries = Object.entries(run.metrics ?? {});
  if (!entries.length) return h("p", { class: "muted" }, early(run) ? "None: the run ended early." : "No metric was reported.");
  const units = run.units ?? {};
  return h("table", { class: "grid", "data-table": "metrics" },
    h("thead", {}, h("tr", {}, h("th", {}, "Metric"), h("th", {}, "Value"))),
    h("tbody", {}, entries.map(([name, value]) => h("tr", { "data-key": name },
      h("td", { class: "mono" }, name),
      h("td", { class: "mono" }, metricValue(name, value, units[name]))))));
}

function checksTable(run) {
  const entries = Object.entries(run.checks ?? {});
  if (!entries.length) return h("p", { class: "muted" }, early(run) ? "Not checked: the run ended early." : "No check was run.");
  return h("table", { class: "grid", "data-table": "checks" },
    h("thead", {}, h("tr", {}, h("th", {}, "Check"), h("th", {}, "Result"), h("th", {}, "Details"))),
    h("tbody", {}, entries.map(([name, check]) => h("tr", { "data-key": name, "data-passed": String(Boolean(check.passed)) },
      h("td", { class: "mono" }, name),
      h("td", {}, mark(check.passed)),
      h("td", { class: "details" }, checkDetails(check) || DASH)))));
}

function assertionsTable(run) {
  const assertions = run.assertions ?? [];
  if (!assertions.length) return h("p", { class: "muted" }, early(run) ? "Not evaluated: the run ended early." : "The scenario asserts nothing.");
  return h("table", { class: "grid", "data-table": "assertions" },
    h("thead", {}, h("tr", {}, h("th", {}, "Assertion"), h("th", {}, "Value"), h("th", {}, "Result"))),
    h("tbody", {}, assertions.map((a, i) => h("tr", { "data-key": String(i), "data-passed": String(Boolean(a.passed)) },
      h("td", { class: "mono" }, a.expression),
      h("td", { class: "mono" }, a.value === null || a.value === undefined ? "error" : String(a.value)),
      h("td", {}, mark(a.passed), a.error ? h("span", { class: "cause" }, ` ${a.error}`) : null)))));
}

/** The final table of `run` (/api/tests/results/{id} once ended). */
export function resultPanel(run) {
  const outcome = outcomeOf(run) ?? "running";
  const base = `/api/tests/results/${encodeURIComponent(run.run_id)}`;
  const took = between(run.started_at, run.finished_at);
  return h("div", { class: "result", "data-outcome": outcome },
    h("div", { class: `verdict verdict-${outcome}` },
      h("span", { class: "verdict-word" }, outcome.toUpperCase()),
      h("span", {}, `${run.name} · seed ${run.seed} · ${took === null ? DASH : duration(took)}`),
      run.error ? h("span", { class: "verdict-why" }, run.error) : null,
      h("span", { class: "spacer" }),
      h("a", { class: "export", href: base, download: `${run.run_id}.json`, "data-export": "json" }, "Export JSON"),
      h("a", { class: "export", href: `${base}/csv`, download: `${run.run_id}.csv`, "data-export": "csv" }, "Export CSV")),
    h("div", { class: "result-grid" },
      panel("Metrics", null, metricsTable(run)),
      panel("Checks", null, checksTable(run)),
      h("div", { class: "wide" }, panel("Assertions", null, assertionsTable(run)))));
}
