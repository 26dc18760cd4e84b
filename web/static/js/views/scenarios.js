// Scenarios: the server's library (shipped and loaded), each opening its
// configure form, and a form that loads a scenario's YAML.

import { api } from "../api.js";
import { h, render, table, sortOnClick, badge, toast } from "../dom.js";
import { tabs } from "../scenarios/tabs.js";

function params(entry) {
  const entries = Object.entries(entry.parameters ?? {});
  if (!entries.length) return h("span", { class: "muted" }, "none");
  return h("span", { class: "params" }, entries.map(([name, value]) =>
    h("span", { class: "chip param", "data-param": name }, `${name} = ${value}`)));
}

function loadForm(ctx, loaded) {
  const message = h("p", { class: "form-message", role: "alert", "data-message": "load" });
  const text = h("textarea", { name: "yaml", rows: 14, spellcheck: "false", required: true,
    placeholder: "test:\n  name: my_scenario\n  steps:\n    - {type: sleep, duration: 1s}" });
  const source = h("input", { name: "source", placeholder: "<api>", maxlength: 200 });
  const file = h("input", { type: "file", name: "file", accept: ".yaml,.yml,text/yaml,application/yaml" });
  const form = h("form", { class: "load-form", "aria-label": "Load a scenario" },
    h("div", { class: "load-row" },
      h("label", {}, "From a file", file),
      h("label", {}, "File name in errors", source)),
    h("label", { class: "grow" }, "Scenario YAML", text),
    h("div", { class: "load-row" },
      h("button", { type: "submit", class: "primary", disabled: !ctx.mutations }, "Load"),
      ctx.mutations ? null : h("span", { class: "note" }, "Loading is turned off on this server (web.mutations).")),
    message);
  file.addEventListener("change", async () => {
    const chosen = file.files?.[0];
    if (!chosen) return;
    text.value = await chosen.text();
    source.value = chosen.name;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    const body = { yaml: text.value };
    if (source.value.trim()) body.source = source.value.trim();
    try {
      const entry = await api("POST", "/api/tests/load", body);
      toast(`Scenario ${entry.name} loaded as ${entry.id}.`);
      loaded(entry);
    } catch (error) {
      // The loader's own line: FILE:LINE:COL: what was expected.
      message.textContent = error.message;
    }
  });
  return form;
}

export default {
  id: "scenarios",
  title: "Scenarios",
  mount(root, ctx) {
    const sort = { key: "name", dir: "asc" };
    let entries = null;
    let error = null;
    let fresh = null; // the id just loaded, marked in the table
    const live = h("div");
    const form = loadForm(ctx, (entry) => {
      fresh = entry.id;
      load();
    });
    root.append(
      h("div", { class: "view-head" },
        h("h1", {}, "Scenarios"),
        h("p", { class: "muted" }, "YAML runs that load, break and check a fresh scheduler of their own, inside this server. Open one to set its parameters and run it."),
        tabs("scenarios")),
      live,
      h("details", { class: "panel create", "data-panel": "load" }, h("summary", {}, "Load YAML"), form),
    );
    sortOnClick(live, sort, () => draw());

    const load = async () => {
      try {
        entries = await api("GET", "/api/tests");
        error = null;
      } catch (e) {
        error = e.message;
      }
      draw();
    };

    const draw = () => {
      render(live, h("div", {},
        error ? h("p", { class: "error", role: "alert" }, error) : null,
        table({
          columns: [
            { key: "name", label: "Scenario", cell: (e) => h("a", { href: `#/scenario?id=${encodeURIComponent(e.id)}`, class: "strong", "data-open": e.id }, e.name) },
            { key: "description", label: "Description", sort: false, cell: (e) => e.description || h("span", { class: "muted" }, "—") },
            { key: "parameters", label: "Parameters (defaults)", sort: false, cell: params },
            { key: "source", label: "Source", cell: (e) => [badge(e.source), e.id === fresh ? h("span", { class: "chip" }, "new") : null] },
            { key: "id", label: "", sort: false, class: "actions", cell: (e) => h("a", { class: "button", href: `#/scenario?id=${encodeURIComponent(e.id)}` }, "Configure & run") },
          ],
          rows: entries ?? [],
          sort,
          onSort: true,
          key: (e) => e.id,
          rowAttrs: (e) => ({ "data-scenario": e.id, class: e.id === fresh ? "selected" : null }),
          empty: entries === null ? "Loading…" : "The library is empty.",
        })));
    };

    return {
      update(kind) {
        if (kind === "route") load();
      },
    };
  },
};
