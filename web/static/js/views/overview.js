// Overview: throughput and lateness charts, outcomes, recent jobs, next fires.

import { api } from "../api.js";
import { lineChart } from "../chart.js";
import { h, render, panel, table, badge, num, duration, when, relative, shortId } from "../dom.js";
import { WINDOW_MS, loadSeries, series } from "../live.js";

export default {
  id: "overview",
  title: "Overview",
  mount(root, ctx) {
    const live = h("div", { class: "overview" });
    root.append(live);
    let recent = [];
    let seenEnded = null;
    let fetching = false;

    const refreshRecent = async () => {
      if (fetching) return;
      fetching = true;
      try {
        recent = (await api("GET", "/api/history?final=true&limit=12")).rows;
        draw();
      } catch {
        // The summary bar shows that the server is away; the list waits.
      } finally {
        fetching = false;
      }
    };

    const draw = () => {
      const { model } = ctx;
      const { throughput, lateness, p50 } = series();
      const rate = [...throughput].reverse().find((p) => p.v !== null)?.v;
      const late = [...lateness].reverse().find((p) => p.v !== null)?.v;
      const median = [...p50].reverse().find((p) => p.v !== null)?.v;
      const outcomes = Object.entries(model.summary?.ended.by_outcome ?? {});
      const total = outcomes.reduce((n, [, count]) => n + count, 0);
      const upcoming = [...model.schedule.values()]
        .filter((sc) => !sc.paused && sc.next_fire_time)
        .sort((a, b) => a.next_fire_time.localeCompare(b.next_fire_time))
        .slice(0, 6);
      render(live, h("div", { class: "overview-grid" },
        panel("Throughput", h("span", { class: "figure", "data-figure": "throughput" }, rate === undefined ? "–" : `${num(rate)} jobs/s`),
          lineChart({ points: throughput, windowMs: WINDOW_MS, format: (v) => num(v), name: "throughput", label: "Jobs ended per second, last 15 minutes" })),
        panel("Fire lateness", h("span", { class: "figure", "data-figure": "lateness", title: "Of the fires of the latest second with one" },
          late === undefined ? "–" : `p50 ${duration(median)} · p99 ${duration(late)}`),
          lineChart({ points: lateness, windowMs: WINDOW_MS, format: (v) => duration(v), name: "lateness", label: "Fire lateness, p99 of each second, last 15 minutes" })),
        panel("Outcomes", h("span", { class: "muted" }, `${num(total)} jobs since start`),
          outcomes.length
            ? h("ul", { class: "bars" }, outcomes.map(([outcome, count]) => h("li", { "data-key": outcome },
                badge(outcome),
                h("span", { class: "bar" }, h("span", { class: `bar-fill state-${outcome}`, "data-fill": Math.round((count / total) * 100) })),
                h("span", { class: "num" }, num(count)))))
            : h("p", { class: "muted" }, "No job has ended yet.")),
        panel("Next fires", h("a", { href: "#/schedules" }, "All schedules"),
          table({
            columns: [
              { key: "id", label: "Schedule", cell: (sc) => h("a", { href: `#/schedules` }, sc.id) },
              { key: "task", label: "Task" },
              { key: "next", label: "Next", cell: (sc) => h("span", { title: sc.next_fire_time }, relative(sc.next_fire_time)) },
            ],
            rows: upcoming,
            key: (sc) => sc.id,
            empty: "No schedule is due.",
          })),
        h("div", { class: "wide recent" }, panel("Recent jobs", h("a", { href: "#/history" }, "History"),
          table({
            columns: [
              { key: "finished_at", label: "Finished", cell: (r) => when(r.finished_at) },
              { key: "job_id", label: "Job", cell: (r) => h("a", { href: `#/history?job=${encodeURIComponent(r.job_id)}`, class: "mono" }, shortId(r.job_id)) },
              { key: "task", label: "Task" },
              { key: "schedule_id", label: "Schedule", cell: (r) => r.schedule_id ?? h("span", { class: "muted" }, "–") },
              { key: "handler", label: "Handler", cell: (r) => r.handler ?? "–" },
              { key: "attempt", label: "Attempt", num: true },
              { key: "outcome", label: "Outcome", cell: (r) => badge(r.outcome) },
              { key: "duration", label: "Took", num: true, cell: (r) => duration(r.duration) },
            ],
            rows: recent,
            key: (r) => `${r.job_id}/${r.attempt}`,
            empty: "No job has ended yet.",
          }))),
      ));
      // Bar widths through the CSSOM: the policy allows no style attributes.
      for (const fill of live.querySelectorAll("[data-fill]")) fill.style.width = `${fill.dataset.fill}%`;
    };

    // The minutes before the page opened; the stream brings the rest.
    loadSeries().then(draw, () => {
      // The summary bar shows that the server is away; the charts fill live.
    });

    return {
      update(kind) {
        const ended = ctx.model.summary?.ended.total ?? null;
        if (kind === "route" || ended !== seenEnded) {
          seenEnded = ended;
          refreshRecent();
        }
        draw();
      },
    };
  },
};
