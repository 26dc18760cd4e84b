// History: every attempt, newest first, with filters and cursor paging; a
// job's timeline (accepted → waited → dispatched → started → finished or
// retried) with its traceback.

import { api, query } from "../api.js";
import { h, render, table, badge, duration, when, shortId, panel } from "../dom.js";

const OUTCOMES = ["success", "failure", "timeout", "no_healthy_handler", "abandoned", "missed", "coalesced", "rejected", "cancelled", "skipped"];
const FILTERS = ["task", "handler", "outcome", "schedule_id", "job_id"];
const PAGE = 50;

/** The steps of one attempt, in the order they happened. */
function steps(row, first) {
  const out = [];
  if (first) out.push({ what: "Accepted", at: row.scheduled_at, detail: row.schedule_id ? `fire of schedule ${row.schedule_id}` : "submitted" });
  else out.push({ what: `Attempt ${row.attempt}`, at: row.scheduled_at, detail: "queued again" });
  if (row.waited) out.push({ what: "Waited", detail: `${duration(row.waited)}${row.reason && row.final ? "" : ""} (${row.reason ?? "held back"})`, tone: "warn" });
  if (row.handler) out.push({ what: "Dispatched", detail: `to ${row.handler}` });
  if (row.started_at) out.push({ what: "Started", at: row.started_at });
  const ended = row.final ? "Finished" : "Retried";
  out.push({
    what: ended,
    at: row.finished_at,
    outcome: row.outcome,
    detail: [row.duration !== null ? `after ${duration(row.duration)}` : null, row.error, !row.final && row.reason ? `(${row.reason})` : null, row.note].filter(Boolean).join(" · "),
    tone: row.outcome === "success" ? "good" : "bad",
  });
  return out;
}

function timeline(jobId, rows) {
  if (!rows) return h("p", { class: "muted" }, "Loading…");
  if (!rows.length) return h("p", { class: "muted" }, "No attempt of this job is in the history (yet).");
  const ordered = [...rows].sort((a, b) => a.attempt - b.attempt);
  const last = ordered.at(-1);
  return h("div", { class: "timeline-box" },
    h("dl", { class: "facts" },
      h("dt", {}, "Job"), h("dd", { class: "mono" }, jobId),
      h("dt", {}, "Task"), h("dd", {}, last.task),
      h("dt", {}, "Outcome"), h("dd", {}, last.final ? badge(last.outcome) : badge("running")),
      h("dt", {}, "Arguments"), h("dd", { class: "mono" }, last.arguments ?? "–")),
    h("ol", { class: "timeline" }, ordered.flatMap((row, i) => steps(row, i === 0).map((step) =>
      h("li", { class: step.tone ? `tone-${step.tone}` : null },
        h("span", { class: "step" }, step.what),
        step.at ? when(step.at) : null,
        step.outcome ? [" ", badge(step.outcome)] : null,
        step.detail ? h("span", { class: "detail" }, step.detail) : null)))),
    ordered.filter((row) => row.traceback).map((row) =>
      h("details", { class: "traceback", open: true },
        h("summary", {}, `Traceback of attempt ${row.attempt}`),
        h("pre", {}, row.traceback))),
  );
}

export default {
  id: "history",
  title: "History",
  mount(root, ctx) {
    let rows = [];
    let next = null;
    const cursors = []; // the cursors of the pages before this one
    let cursor = null;
    let filters = {};
    let error = null;
    let seenEnded = null;
    let loading = false;
    let jobRows = null;
    let jobShown = null;

    const form = h("form", { class: "filters", "aria-label": "Filters" },
      h("label", {}, "Task", h("input", { name: "task" })),
      h("label", {}, "Handler", h("input", { name: "handler" })),
      h("label", {}, "Outcome", h("select", { name: "outcome" }, h("option", { value: "" }, "any"), OUTCOMES.map((o) => h("option", { value: o }, o)))),
      h("label", {}, "Schedule", h("input", { name: "schedule_id" })),
      h("label", {}, "Job id", h("input", { name: "job_id" })),
      h("button", { type: "submit", class: "primary" }, "Filter"),
      h("button", { type: "reset" }, "Clear"));
    const live = h("div");
    const pager = h("div");
    const side = h("div", { class: "side" });
    root.append(
      h("div", { class: "view-head" }, h("h1", {}, "History"), h("p", { class: "muted" }, "One row per attempt, newest first. Click a row for the job's timeline.")),
      form,
      h("div", { class: "split" }, h("div", { class: "main-col" }, live, pager), side),
    );

    const load = async () => {
      if (loading) return;
      loading = true;
      try {
        const page = await api("GET", `/api/history${query({ ...filters, limit: PAGE, cursor })}`);
        rows = page.rows;
        next = page.next;
        error = null;
      } catch (e) {
        error = e.message;
      } finally {
        loading = false;
      }
      draw();
    };

    const loadJob = async (jobId) => {
      jobShown = jobId;
      jobRows = null;
      draw();
      try {
        const page = await api("GET", `/api/history${query({ job_id: jobId, limit: 100 })}`);
        if (jobShown === jobId) jobRows = page.rows;
      } catch (e) {
        if (jobShown === jobId) jobRows = [];
        error = e.message;
      }
      draw();
    };

    const applyFilters = () => {
      const data = new FormData(form);
      filters = Object.fromEntries(FILTERS.map((f) => [f, (data.get(f) ?? "").trim()]).filter(([, v]) => v));
      cursor = null;
      cursors.length = 0;
      load();
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      applyFilters();
    });
    form.addEventListener("reset", () => setTimeout(applyFilters));

    pager.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-page]");
      if (!button) return;
      if (button.dataset.page === "older" && next) {
        cursors.push(cursor);
        cursor = next;
      } else if (button.dataset.page === "newer" && cursors.length) {
        cursor = cursors.pop();
      } else if (button.dataset.page === "newest") {
        cursor = null;
        cursors.length = 0;
      }
      load();
    });
    live.addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-job]");
      if (!row || event.target.closest("a")) return;
      ctx.go("history", { job: row.dataset.job });
    });
    side.addEventListener("click", (event) => {
      if (event.target.closest("button[data-close]")) ctx.go("history");
    });

    const draw = () => {
      render(live, h("div", {},
        error ? h("p", { class: "error", role: "alert" }, error) : null,
        table({
          columns: [
            { key: "finished_at", label: "Finished", cell: (r) => when(r.finished_at) },
            { key: "job_id", label: "Job", cell: (r) => h("a", { class: "mono", href: `#/history?job=${encodeURIComponent(r.job_id)}`, title: r.job_id }, shortId(r.job_id)) },
            { key: "task", label: "Task" },
            { key: "schedule_id", label: "Schedule", cell: (r) => r.schedule_id ?? h("span", { class: "muted" }, "–") },
            { key: "handler", label: "Handler", cell: (r) => r.handler ?? h("span", { class: "muted" }, "–") },
            { key: "attempt", label: "Try", num: true, cell: (r) => (r.final ? String(r.attempt) : `${r.attempt} ↻`) },
            { key: "outcome", label: "Outcome", cell: (r) => badge(r.outcome) },
            { key: "duration", label: "Took", num: true, cell: (r) => duration(r.duration) },
            { key: "waited", label: "Waited", num: true, cell: (r) => (r.waited ? duration(r.waited) : h("span", { class: "muted" }, "–")) },
            { key: "reason", label: "Reason / error", cell: (r) => h("span", { class: "cause", title: r.error ?? "" }, r.error ?? r.reason ?? "") },
          ],
          rows,
          key: (r) => `${r.job_id}/${r.attempt}`,
          rowAttrs: (r) => ({ "data-job": r.job_id, class: `clickable${r.job_id === jobShown ? " selected" : ""}` }),
          empty: loading ? "Loading…" : "No row matches.",
        })));
      render(pager, h("div", { class: "pager" },
        h("button", { "data-page": "newest", disabled: !cursor }, "⇤ Newest"),
        h("button", { "data-page": "newer", disabled: !cursors.length }, "← Newer"),
        h("span", { class: "muted" }, `page ${cursors.length + 1}${cursor ? "" : " · live"}`),
        h("button", { "data-page": "older", disabled: !next }, "Older →")));
      render(side, jobShown
        ? panel("Timeline", h("button", { class: "small", "data-close": "" }, "Close"), timeline(jobShown, jobRows))
        : h("div", { class: "side-empty muted" }, "Select a job to see its timeline."));
    };

    return {
      update(kind) {
        if (kind === "route") {
          const job = ctx.params.get("job");
          if (job && job !== jobShown) loadJob(job);
          else if (!job) {
            jobShown = null;
            jobRows = null;
          }
          if (seenEnded === null) {
            seenEnded = ctx.model.summary?.ended.total ?? -1;
            load();
          }
        }
        // The first page follows new rows by itself; an older page stays put.
        const ended = ctx.model.summary?.ended.total ?? null;
        if (kind === "summary" && ended !== seenEnded) {
          seenEnded = ended;
          if (!cursor) load();
          if (jobShown && jobRows && !jobRows.some((r) => r.final)) loadJob(jobShown);
        }
        if (kind !== "tick") draw();
      },
    };
  },
};
