// Configure & run: one typed input per parameter of a library scenario (its
// default filled in), a seed, and Run, which starts the run and opens its page.

import { api } from "../api.js";
import { h, render, badge } from "../dom.js";
import { tabs } from "../scenarios/tabs.js";

/** The input of one parameter, typed by its default (which "Defaults" puts back). */
function field(name, value) {
  const attrs = { name, "data-param": name };
  if (typeof value === "boolean") {
    return h("label", { class: "check" }, h("input", { ...attrs, type: "checkbox", checked: value, "data-type": "boolean" }), name);
  }
  const input = typeof value === "number"
    ? h("input", { ...attrs, type: "number", required: true, step: Number.isInteger(value) ? "1" : "any", "data-type": "number" })
    : h("input", { ...attrs, "data-type": "text" });
  input.defaultValue = String(value ?? "");
  return h("label", {}, name, input);
}

/** The form's parameters, each as its default's type. */
function readParams(form) {
  const params = {};
  for (const input of form.querySelectorAll("input[data-param]")) {
    const name = input.dataset.param;
    if (input.dataset.type === "boolean") params[name] = input.checked;
    else if (input.dataset.type === "number") {
      if (input.value.trim() === "" || !Number.isFinite(Number(input.value))) throw new Error(`${name} must be a number`);
      params[name] = Number(input.value);
    } else params[name] = input.value;
  }
  return params;
}

function configureForm(ctx, entry) {
  const message = h("p", { class: "form-message", role: "alert", "data-message": "run" });
  const names = Object.keys(entry.parameters ?? {});
  const form = h("form", { class: "run-form", "aria-label": `Run ${entry.name}`, "data-scenario": entry.id },
    h("fieldset", {},
      h("legend", {}, "Parameters"),
      names.length
        ? h("div", { class: "param-grid" }, names.map((name) => field(name, entry.parameters[name])))
        : h("p", { class: "muted" }, "This scenario takes no parameters.")),
    h("div", { class: "run-row" },
      h("label", {}, "Seed", h("input", { name: "seed", type: "number", min: 0, step: 1, placeholder: "random", "data-field": "seed" })),
      h("button", { type: "submit", class: "primary", disabled: !ctx.mutations, "data-action": "run" }, "Run"),
      h("button", { type: "reset" }, "Defaults"),
      ctx.mutations ? null : h("span", { class: "note" }, "Runs are turned off on this server (web.mutations).")),
    message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    const button = form.querySelector('[data-action="run"]');
    try {
      const body = { id: entry.id, params: readParams(form) };
      const seed = form.elements.seed.value.trim();
      if (seed) body.seed = Number(seed);
      button.disabled = true;
      const run = await api("POST", "/api/tests/run", body);
      ctx.go("run", { id: run.run_id });
    } catch (error) {
      message.textContent = error.message;
    } finally {
      button.disabled = !ctx.mutations;
    }
  });
  return form;
}

export default {
  id: "scenario",
  title: "Run a scenario",
  section: "scenarios",
  mount(root, ctx) {
    const live = h("div");
    root.append(live);
    let shown = null; // the id whose form is on the page

    const show = async (id) => {
      shown = id;
      render(live, h("p", { class: "muted" }, "Loading…"));
      let entry;
      try {
        entry = (await api("GET", "/api/tests")).find((e) => e.id === id);
      } catch (error) {
        render(live, h("p", { class: "error", role: "alert" }, error.message));
        return;
      }
      if (shown !== id) return;
      if (!entry) {
        render(live, h("div", {}, tabs(null),
          h("p", { class: "error", role: "alert" }, `No scenario ${id} in this server's library.`)));
        return;
      }
      document.title = `${entry.name} · ScheduleZero`;
      live.replaceChildren(h("div", {},
        h("div", { class: "view-head" },
          tabs(null),
          h("h1", {}, entry.name, " ", badge(entry.source)),
          h("p", { class: "muted" }, entry.description || "—")),
        h("section", { class: "panel" }, configureForm(ctx, entry)),
        h("p", {}, h("a", { href: `#/runs?scenario=${encodeURIComponent(entry.id)}` }, "Earlier runs of this scenario and their trends →")),
        h("details", { class: "panel yaml" }, h("summary", {}, "Its YAML"), h("pre", { class: "yaml-text" }, entry.yaml ?? ""))));
    };

    return {
      update(kind) {
        if (kind !== "route") return;
        const id = ctx.params.get("id");
        if (id && id !== shown) show(id);
        else if (!id) ctx.go("scenarios");
      },
    };
  },
};
