// A scenario run, live: its step, progress and elapsed time, a chart per
// metric with its faults overlaid as markers, Abort; at the end (or for a run
// that had ended), the final table with its exports.

import { api, apiText } from "../api.js";
import { h, render, panel, badge, when, duration, confirm, toast } from "../dom.js";
import { follow } from "../stream.js";
import { runChart } from "../runchart.js";
import { tabs } from "../scenarios/tabs.js";
import { resultPanel } from "../scenarios/result.js";
import { DASH, metricNumber, outcomeOf, between, parseSamples } from "../scenarios/format.js";

/** The latest faults listed under the charts (the charts mark them all). */
const SHOWN_FAULTS = 100;

/** The metrics charted first, in this order; the rest follow as they come. */
const KEY_METRICS = ["jobs_per_sec", "job_latency", "restarts"];

/** A fault's timeline event as a chart marker. */
function marker(event) {
  const { at, offset, event: kind, name, ...detail } = event;
  const said = Object.entries(detail)
    .map(([key, value]) => `${key}: ${Array.isArray(value) ? value.join(", ") : typeof value === "object" && value !== null ? JSON.stringify(value) : value}`)
    .join("; ");
  return { x: offset, name, said, title: `${name} at ${duration(offset)}${said ? ` — ${said}` : ""}`, at };
}

const faultsOf = (run) => (run.timeline ?? []).filter((e) => e.event === "fault").map(marker);

export default {
  id: "run",
  title: "Scenario run",
  section: "scenarios",
  mount(root, ctx) {
    const live = h("div", { class: "run-page" });
    root.append(live);
    let runId = null;
    let state = null;

    const fresh = (id) => ({
      id,
      info: null, // the run as /api/tests/results/{id} shows it
      progress: null,
      series: new Map(), // metric -> [{x, v}]
      faults: [],
      result: null,
      stream: null,
      error: null,
      live: false, // whether this page watched it run
    });

    const ended = () => state.result !== null;

    const loadSamples = async (s) => {
      try {
        const text = await apiText(`/api/tests/results/${encodeURIComponent(s.id)}/csv`);
        const samples = parseSamples(text);
        if (samples.size && state === s) s.series = samples;
      } catch {
        // The live samples stay on the charts.
      }
      if (state === s) draw();
    };

    const finish = (s, run) => {
      s.stream?.close();
      s.stream = null;
      s.result = run;
      s.info = run;
      if (run.progress) s.progress = run.progress;
      s.faults = faultsOf(run);
      draw();
      loadSamples(s);
    };

    const onProgress = (s, progress) => {
      s.progress = progress;
      for (const [name, value] of Object.entries(progress.metrics ?? {})) {
        if (!s.series.has(name)) s.series.set(name, []);
        const points = s.series.get(name);
        const last = points.at(-1);
        if (last && last.x >= progress.elapsed) last.v = value;
        else points.push({ x: progress.elapsed, v: value });
      }
      draw();
    };

    const watch = (s) => {
      s.live = true;
      s.stream = follow(`/api/tests/metrics/${encodeURIComponent(s.id)}`, {
        events: {
          progress: (data) => onProgress(s, data),
          fault: (data) => {
            s.faults.push(marker(data));
            draw();
          },
          result: (data) => finish(s, data),
        },
        // Refused: ended meanwhile, gone, or a 401; look at the run itself.
        onRefused: async () => {
          try {
            const run = await api("GET", `/api/tests/results/${encodeURIComponent(s.id)}`);
            if (outcomeOf(run) === null) return true;
            finish(s, run);
          } catch (error) {
            s.error = error.message;
            draw();
          }
          return false;
        },
      });
    };

    const show = async (id) => {
      state?.stream?.close();
      const s = fresh(id);
      state = s;
      runId = id;
      draw();
      try {
        const run = await api("GET", `/api/tests/results/${encodeURIComponent(id)}`);
        if (state !== s) return;
        s.info = run;
        s.progress = run.progress ?? null;
        if (outcomeOf(run) !== null) finish(s, run);
        else watch(s);
      } catch (error) {
        if (state === s) s.error = error.message;
      }
      draw();
    };

    const abort = async () => {
      const s = state;
      const ok = await confirm(`Abort ${s.id}?`,
        "The run's actor is stopped, and with it its scheduler and worker processes; the run ends aborted, with its timeline so far.",
        "Abort");
      if (!ok) return;
      try {
        const run = await api("POST", `/api/tests/runs/${encodeURIComponent(s.id)}/abort`);
        if (state === s) finish(s, run);
        toast(`${s.id}: ${outcomeOf(run) ?? "aborted"}.`);
      } catch (error) {
        toast(`Abort ${s.id}: ${error.message}`, "error");
      }
    };
    live.addEventListener("click", (event) => {
      if (event.target.closest('button[data-action="abort"]')) abort();
    });

    const charts = (s) => {
      const names = [...KEY_METRICS.filter((n) => s.series.has(n)), ...[...s.series.keys()].filter((n) => !KEY_METRICS.includes(n))];
      if (!names.length && ended()) return [h("p", { class: "muted" }, "No metric was sampled over time.")];
      if (!names.length) names.push("jobs_per_sec");
      const units = s.info?.units ?? {};
      const xMax = ended()
        ? between(s.result.started_at, s.result.finished_at) ?? 0
        : s.progress?.elapsed ?? 0;
      return names.map((name) => {
        const points = s.series.get(name) ?? [];
        const latest = [...points].reverse().find((p) => p.v !== null);
        return panel(name, h("span", { class: "figure", "data-latest": name }, latest ? metricNumber(name, latest.v, units[name]) : DASH),
          h("div", { "data-chart": name }, runChart({
            points, xMax, markers: s.faults,
            format: (v) => metricNumber(name, v, units[name]),
            label: `${name} over the run, faults marked`,
          })));
      });
    };

    const faultList = (s) => (s.faults.length
      ? h("div", {},
          s.faults.length > SHOWN_FAULTS ? h("p", { class: "muted" }, `The latest ${SHOWN_FAULTS}; the ${s.faults.length - SHOWN_FAULTS} before are in the JSON export's timeline.`) : null,
          h("ol", { class: "fault-list", start: Math.max(1, s.faults.length - SHOWN_FAULTS + 1) },
            s.faults.slice(-SHOWN_FAULTS).map((f, i) => h("li", { "data-key": String(i) },
              h("span", { class: "mono offset" }, `+${duration(f.x)}`), " ",
              h("span", { class: "strong" }, f.name), " ",
              h("span", { class: "muted" }, f.said)))))
      : h("p", { class: "muted" }, ended() ? "No fault struck." : "No fault yet."));

    const progressBox = (s) => {
      const p = s.progress;
      const outcome = s.info ? outcomeOf(s.info) : null;
      const running = s.info !== null && outcome === null;
      const done = p ? (outcome !== null ? p.total : Math.max(0, p.index - 1)) : 0;
      const fill = p?.total ? Math.round((done / p.total) * 100) : 0;
      return h("section", { class: "panel run-progress" },
        h("div", { class: "progress-facts" },
          h("div", { class: "metric" }, h("span", { class: "metric-label" }, "state"), h("span", { "data-field": "state" }, badge(outcome ?? (s.info ? "running" : "loading")))),
          h("div", { class: "metric grow" }, h("span", { class: "metric-label" }, "step"), h("span", { class: "metric-value mono", "data-field": "step" }, p?.step || DASH)),
          h("div", { class: "metric" }, h("span", { class: "metric-label" }, "step of total"), h("span", { class: "metric-value", "data-field": "index" }, p ? `${p.index}/${p.total}` : DASH)),
          h("div", { class: "metric" }, h("span", { class: "metric-label" }, "elapsed"), h("span", { class: "metric-value", "data-field": "elapsed" }, p ? duration(p.elapsed) : DASH)),
          h("div", { class: "metric" }, h("span", { class: "metric-label" }, "faults"), h("span", { class: "metric-value", "data-field": "faults" }, String(s.faults.length))),
          h("button", { class: "danger", "data-action": "abort", disabled: !ctx.mutations || !running, title: ctx.mutations ? "Stop the run: it ends aborted" : "Aborting is turned off on this server (web.mutations)" }, "Abort")),
        h("span", { class: "bar progress-bar" }, h("span", { class: `bar-fill${outcome === "passed" ? " state-success" : outcome ? " state-failure" : ""}`, "data-fill": fill })),
        p && Object.keys(p.metrics ?? {}).length
          ? h("div", { class: "latest" }, Object.entries(p.metrics).map(([name, value]) =>
              h("span", { class: "chip", "data-key": name }, `${name} ${metricNumber(name, value, s.info?.units?.[name])}`)))
          : null);
    };

    const draw = () => {
      const s = state;
      if (!s) return;
      const info = s.info;
      const head = h("div", { class: "view-head" },
        tabs(null),
        h("h1", {}, "Run ", h("span", { class: "mono" }, s.id), info ? [" of ", h("a", { href: `#/scenario?id=${encodeURIComponent(info.scenario_id)}` }, info.name)] : null),
        info
          ? h("p", { class: "muted run-facts" },
              `seed ${info.seed} · started `, when(info.started_at),
              info.schedule_id ? ` · by schedule ${info.schedule_id}` : "",
              " · ", Object.entries(info.parameters ?? {}).map(([k, v]) => `${k}=${v}`).join(", ") || "no parameters")
          : null);
      if (s.error && !info) {
        render(live, h("div", {}, head, h("p", { class: "error", role: "alert" }, s.error)));
        return;
      }
      render(live, h("div", {},
        head,
        s.error ? h("p", { class: "error", role: "alert" }, s.error) : null,
        progressBox(s),
        h("div", { class: "run-charts" }, charts(s)),
        panel("Faults", h("span", { class: "muted" }, "as marked on the charts"), faultList(s)),
        s.result ? resultPanel(s.result) : null));
      for (const fill of live.querySelectorAll("[data-fill]")) fill.style.width = `${fill.dataset.fill}%`;
    };

    return {
      update(kind) {
        if (kind !== "route") return;
        const id = ctx.params.get("id");
        if (!id) ctx.go("runs");
        else if (id !== runId) show(id);
      },
      dispose() {
        state?.stream?.close();
      },
    };
  },
};
