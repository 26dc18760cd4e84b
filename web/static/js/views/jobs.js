// Jobs: what waits (and why) and what runs, live.

import { h, render, table, sortOnClick, badge, panel, when, relative, shortId } from "../dom.js";

export default {
  id: "jobs",
  title: "Jobs",
  mount(root, ctx) {
    const waitSort = { key: "since", dir: "asc" };
    const runSort = { key: "since", dir: "asc" };
    const waiting = h("div");
    const running = h("div");
    const waitCount = h("span", { class: "muted" });
    const runCount = h("span", { class: "muted" });
    root.append(
      h("div", { class: "view-head" }, h("h1", {}, "Jobs"),
        h("p", { class: "muted" }, "Live jobs: accepted and not yet ended. Ended jobs are in the history.")),
      panel("Waiting", waitCount, waiting),
      panel("Running", runCount, running),
    );
    const job = (j) => h("a", { class: "mono", href: `#/history?job=${encodeURIComponent(j.id)}`, title: j.id }, shortId(j.id));
    const draw = () => {
      const jobs = [...ctx.model.job.values()];
      const runs = jobs.filter((j) => j.state === "running").length;
      waitCount.textContent = `${jobs.length - runs} job${jobs.length - runs === 1 ? "" : "s"}`;
      runCount.textContent = `${runs} job${runs === 1 ? "" : "s"}`;
      render(waiting, table({
        columns: [
          { key: "id", label: "Job", cell: job },
          { key: "task", label: "Task" },
          { key: "state", label: "State", cell: (j) => badge(j.state) },
          { key: "attempt", label: "Attempt", num: true, cell: (j) => j.attempt ?? "–" },
          { key: "schedule_id", label: "Schedule", cell: (j) => j.schedule_id ?? "–" },
          { key: "scheduled_at", label: "Due", cell: (j) => when(j.scheduled_at) },
          { key: "since", label: "Waiting for", cell: (j) => (j.since ? relative(j.since).replace(" ago", "") : "–") },
          { key: "why", label: "Why", cell: (j) => (j.why ? h("span", { class: "why" }, j.why) : h("span", { class: "muted" }, "–")) },
        ],
        rows: jobs.filter((j) => j.state !== "running"),
        sort: waitSort,
        onSort: true,
        key: (j) => j.id,
        empty: "Nothing waits.",
      }));
      render(running, table({
        columns: [
          { key: "id", label: "Job", cell: job },
          { key: "task", label: "Task" },
          { key: "handler", label: "Handler", cell: (j) => j.handler ?? "–" },
          { key: "attempt", label: "Attempt", num: true, cell: (j) => j.attempt ?? "–" },
          { key: "schedule_id", label: "Schedule", cell: (j) => j.schedule_id ?? "–" },
          { key: "since", label: "Running for", cell: (j) => (j.since ? relative(j.since).replace(" ago", "") : "–") },
        ],
        rows: jobs.filter((j) => j.state === "running"),
        sort: runSort,
        onSort: true,
        key: (j) => j.id,
        empty: "Nothing runs right now.",
      }));
    };
    sortOnClick(waiting, waitSort, draw);
    sortOnClick(running, runSort, draw);
    return { update: draw };
  },
};
