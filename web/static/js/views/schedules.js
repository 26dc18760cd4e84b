// Schedules: next and last run, paused and why, run now, bulk pause/resume,
// upcoming fire times, and a form to create one.

import { api } from "../api.js";
import { h, render, table, sortOnClick, badge, when, relative, toast } from "../dom.js";

/** How often the last runs are asked for again, at most, in ms: one request
 * (the schedules list, which holds each one's last run) whatever their number. */
const LAST_RUN_EVERY = 3000;

/** "seconds=30, hour=9" (commas or lines) as trigger fields. */
function parseFields(text) {
  const fields = {};
  for (const part of text.split(/[,\n]/)) {
    const item = part.trim();
    if (!item) continue;
    const [name, ...rest] = item.split("=");
    const raw = rest.join("=").trim();
    if (!name.trim() || !raw) throw new Error(`"${item}" is not name=value`);
    fields[name.trim()] = /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw;
  }
  return fields;
}

function createForm(ctx, created) {
  const message = h("p", { class: "form-message", role: "alert" });
  const tasks = h("datalist", { id: "task-names" });
  const form = h("form", { class: "create-form", "aria-label": "New schedule" },
    h("label", {}, "Id", h("input", { name: "id", placeholder: "optional", maxlength: 200 })),
    h("label", {}, "Task", h("input", { name: "task", required: true, list: "task-names", placeholder: "echo" })),
    h("label", {}, "Trigger", h("select", { name: "trigger" },
      h("option", { value: "interval" }, "interval"),
      h("option", { value: "cron" }, "cron"),
      h("option", { value: "date" }, "date"),
      h("option", { value: "crontab" }, "crontab string"))),
    h("label", { class: "grow" }, "Fields or crontab", h("input", { name: "fields", placeholder: "seconds=30  ·  hour=9, minute=30  ·  */5 * * * *" })),
    h("label", { class: "grow" }, "Arguments (JSON)", h("input", { name: "args", placeholder: '{"message": "hi"} or ["hi"]' })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "paused" }), "paused"),
    h("button", { type: "submit", class: "primary" }, "Create"),
    tasks, message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    const data = new FormData(form);
    const body = { task: data.get("task").trim() };
    try {
      const trigger = data.get("trigger");
      const fieldsText = data.get("fields").trim();
      if (trigger === "crontab") {
        if (!fieldsText) throw new Error("a crontab string is needed, such as */5 * * * *");
        body.trigger = fieldsText;
      } else {
        body.trigger = trigger;
        body.fields = parseFields(fieldsText);
      }
      const argsText = data.get("args").trim();
      if (argsText) {
        try {
          body.args = JSON.parse(argsText);
        } catch {
          throw new Error("the arguments are not JSON");
        }
      }
      if (data.get("id").trim()) body.id = data.get("id").trim();
      if (data.get("paused")) body.paused = true;
      const schedule = await api("POST", "/api/schedules", body);
      toast(`Schedule ${schedule.id} created.`);
      form.reset();
      created(schedule);
    } catch (error) {
      message.textContent = error.message;
    }
  });
  const fillTasks = () => {
    const names = new Set();
    for (const handler of ctx.model.handler.values()) for (const task of handler.tasks) names.add(task);
    render(tasks, h("datalist", { id: "task-names" }, [...names].sort().map((n) => h("option", { value: n }))));
  };
  return { form, fillTasks };
}

export default {
  id: "schedules",
  title: "Schedules",
  mount(root, ctx) {
    const sort = { key: "id", dir: "asc" };
    const selected = new Set();
    const expanded = new Set();
    const upcoming = new Map(); // id -> {next, times}
    const lastRuns = new Map(); // id -> its last run, as /api/schedules gives it
    let lastAsked = 0;
    let asking = false;
    let seenEnded = null;
    let pending = null; // a timer: asked again once the interval is over

    const live = h("div");
    const toolbar = h("div", { class: "toolbar" });
    const { form, fillTasks } = createForm(ctx, (schedule) => ctx.model.schedule.set(schedule.id, schedule));
    root.append(
      h("div", { class: "view-head" }, h("h1", {}, "Schedules")),
      h("details", { class: "panel create" }, h("summary", {}, "New schedule"), form),
      toolbar, live,
    );

    const refreshLastRuns = async () => {
      const wait = lastAsked + LAST_RUN_EVERY - Date.now();
      if (asking || wait > 0) {
        // Not lost: asked when the interval is over.
        pending ??= setTimeout(() => {
          pending = null;
          refreshLastRuns();
        }, Math.max(wait, 100));
        return;
      }
      asking = true;
      lastAsked = Date.now();
      try {
        const listed = await api("GET", "/api/schedules");
        lastRuns.clear();
        for (const schedule of listed) if (schedule.last_run) lastRuns.set(schedule.id, schedule.last_run);
        draw();
      } catch {
        // Shown again on the next try.
      } finally {
        asking = false;
      }
    };

    const loadUpcoming = async (id) => {
      const schedule = ctx.model.schedule.get(id);
      try {
        const answer = await api("GET", `/api/schedules/${encodeURIComponent(id)}/upcoming?n=5`);
        upcoming.set(id, { next: schedule?.next_fire_time, times: answer.fire_times });
      } catch (error) {
        upcoming.set(id, { next: schedule?.next_fire_time, error: error.message });
      }
      draw();
    };

    const bulk = async (pause) => {
      const ids = [...selected];
      const verb = pause ? "pause" : "resume";
      const results = await Promise.allSettled(ids.map((id) => api("POST", `/api/schedules/${encodeURIComponent(id)}/${verb}`)));
      results.forEach((result, i) => {
        if (result.status === "fulfilled") ctx.model.schedule.set(ids[i], result.value);
        else toast(`${verb} ${ids[i]}: ${result.reason.message}`, "error");
      });
      const done = results.filter((r) => r.status === "fulfilled").length;
      if (done) toast(`${done} schedule${done > 1 ? "s" : ""} ${pause ? "paused" : "resumed"}.`);
      selected.clear();
      draw();
    };

    const act = async (action, id) => {
      try {
        if (action === "run") {
          const { job_id } = await api("POST", `/api/schedules/${encodeURIComponent(id)}/run`);
          toast(`${id}: job …${job_id.slice(-10)} started.`);
        } else {
          const schedule = await api("POST", `/api/schedules/${encodeURIComponent(id)}/${action}`);
          ctx.model.schedule.set(id, schedule);
          draw();
        }
      } catch (error) {
        toast(`${action} ${id}: ${error.message}`, "error");
      }
    };

    toolbar.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-bulk]");
      if (button) bulk(button.dataset.bulk === "pause");
    });
    live.addEventListener("change", (event) => {
      const box = event.target.closest("input[data-select]");
      if (!box) return;
      const id = box.dataset.select;
      if (id === "*") {
        for (const key of ctx.model.schedule.keys()) if (box.checked) selected.add(key); else selected.delete(key);
      } else if (box.checked) selected.add(id);
      else selected.delete(id);
      draw();
    });
    live.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const { action, id } = button.dataset;
      if (action === "upcoming") {
        if (expanded.has(id)) expanded.delete(id);
        else {
          expanded.add(id);
          loadUpcoming(id);
        }
        draw();
      } else {
        act(action, id);
      }
    });
    sortOnClick(live, sort, () => draw());

    const draw = () => {
      const schedules = [...ctx.model.schedule.values()];
      for (const id of selected) if (!ctx.model.schedule.has(id)) selected.delete(id);
      for (const id of expanded) {
        const cached = upcoming.get(id);
        if (cached && cached.next !== ctx.model.schedule.get(id)?.next_fire_time) loadUpcoming(id);
      }
      render(toolbar, h("div", { class: "toolbar" },
        h("span", { class: "muted" }, selected.size ? `${selected.size} selected` : "Select schedules to pause or resume them together."),
        h("button", { "data-bulk": "pause", disabled: !selected.size }, "Pause selected"),
        h("button", { "data-bulk": "resume", disabled: !selected.size }, "Resume selected")));
      const all = schedules.length > 0 && schedules.every((sc) => selected.has(sc.id));
      const rows = table({
        columns: [
          { key: "select", label: h("input", { type: "checkbox", "data-select": "*", checked: all, "aria-label": "Select all" }), sort: false,
            cell: (sc) => h("input", { type: "checkbox", "data-select": sc.id, checked: selected.has(sc.id), "aria-label": `Select ${sc.id}` }) },
          { key: "id", label: "Id", cell: (sc) => h("span", { class: "mono strong" }, sc.id) },
          { key: "task", label: "Task" },
          { key: "trigger", label: "Trigger", cell: (sc) => h("span", { class: "trigger", title: sc.trigger }, sc.trigger) },
          { key: "state", label: "State", value: (sc) => (sc.paused ? 1 : 0),
            cell: (sc) => (sc.paused
              ? [badge("paused"), sc.paused_reason ? h("span", { class: "muted reason" }, ` ${sc.paused_reason.replaceAll("_", " ")}`) : null]
              : badge("active")) },
          { key: "next_fire_time", label: "Next run", value: (sc) => sc.next_fire_time ?? "",
            cell: (sc) => (sc.paused || !sc.next_fire_time ? h("span", { class: "muted" }, "–")
              : h("span", { title: sc.next_fire_time }, `${relative(sc.next_fire_time)}`)) },
          { key: "last", label: "Last run", value: (sc) => lastRuns.get(sc.id)?.finished_at ?? "",
            cell: (sc) => {
              const row = lastRuns.get(sc.id);
              return row ? [when(row.finished_at), " ", badge(row.outcome)] : h("span", { class: "muted" }, "never");
            } },
          { key: "actions", label: "", sort: false, class: "actions",
            cell: (sc) => [
              h("button", { class: "small", "data-action": "run", "data-id": sc.id, title: "A job of its task and arguments, now" }, "Run now"),
              h("button", { class: "small", "data-action": sc.paused ? "resume" : "pause", "data-id": sc.id }, sc.paused ? "Resume" : "Pause"),
              h("button", { class: "small", "data-action": "upcoming", "data-id": sc.id, "aria-expanded": String(expanded.has(sc.id)) }, "Upcoming"),
            ] },
        ],
        rows: schedules,
        sort,
        onSort: true,
        key: (sc) => sc.id,
        rowAttrs: (sc) => ({ class: sc.paused ? "paused" : null, "data-id": sc.id }),
        empty: "No schedule yet: create one above.",
      });
      // The upcoming fire times, as a row under their schedule's.
      for (const id of expanded) {
        const row = rows.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
        if (!row) continue;
        const found = upcoming.get(id);
        const content = !found ? "…"
          : found.error ? h("span", { class: "error" }, found.error)
          : found.times.length ? h("ol", { class: "fire-times" }, found.times.map((t) => h("li", {}, when(t), h("span", { class: "muted" }, ` (${relative(t)})`))))
          : h("span", { class: "muted" }, "It will not fire again.");
        row.after(h("tr", { class: "upcoming", "data-key": `${id}/upcoming` }, h("td", { colspan: 8 }, h("strong", {}, "Next fires: "), content)));
      }
      render(live, rows);
    };

    return {
      update(kind) {
        if (kind === "handler" || kind === "route") fillTasks();
        // A job's end is what changes a last run: the summary counts them.
        const ended = ctx.model.summary?.ended.total ?? null;
        if (kind === "route" || kind === "schedule" || (kind === "summary" && ended !== seenEnded)) {
          seenEnded = ended;
          refreshLastRuns();
        }
        draw();
      },
      dispose() {
        clearTimeout(pending);
      },
    };
  },
};
