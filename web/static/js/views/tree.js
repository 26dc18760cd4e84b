// Supervision tree (the Observer view): collapsible, each actor's state,
// strategy, restarts against its supervisor's intensity, mailbox and rate;
// kill and restart behind a confirmation.

import { api } from "../api.js";
import { h, render, badge, num, confirm, toast } from "../dom.js";
import { actorRate } from "../live.js";

/** How long a restart stays highlighted, in ms. */
const FLASH_MS = 4000;

/** A supervisor that never gives up has an intensity too large to mean a count. */
const unlimited = (sup) => sup.max_restarts >= 1e9;

const parentOf = (path) => path.slice(0, path.lastIndexOf("/")) || null;

export default {
  id: "tree",
  title: "Supervision tree",
  mount(root, ctx) {
    const collapsed = new Set();
    const live = h("div", { class: "tree-view" });
    root.append(
      h("div", { class: "view-head" },
        h("h1", {}, "Supervision tree"),
        h("p", { class: "muted" }, "Every actor under /user. A supervisor restarts a crashed child; beyond its intensity (restarts within its window) it either gives up, failing itself, or — as the scheduler's own supervisors do — restarts after a growing delay."),
        ctx.mutations ? null : h("p", { class: "note" }, "Kill and restart are turned off on this server (web.mutations).")),
      live,
    );

    const act = async (action, path) => {
      const verb = action === "kill" ? "Kill" : "Restart";
      const ok = await confirm(`${verb} ${path}?`,
        `${path} crashes at once (its current message is lost) and its supervisor restarts it, counting against its restart intensity.`,
        verb);
      if (!ok) return;
      try {
        await api("POST", `/api/actors/${path.slice(1).split("/").map(encodeURIComponent).join("/")}/${action}`);
        toast(`${path}: ${action === "kill" ? "killed" : "restarting"}; its supervisor restarts it.`);
      } catch (error) {
        toast(`${verb} ${path}: ${error.message}`, "error");
      }
    };

    live.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const { action, path } = button.dataset;
      if (action === "toggle") {
        if (collapsed.has(path)) collapsed.delete(path);
        else collapsed.add(path);
        draw();
      } else {
        act(action, path);
      }
    });

    const node = (actor, children, parent) => {
      const kids = children.get(actor.path) ?? [];
      const open = !collapsed.has(actor.path);
      const sup = actor.supervision;
      const intensity = parent?.supervision;
      const rate = actorRate(actor.path);
      const flashed = Date.now() - (ctx.model.restartedAt.get(actor.path) ?? 0) < FLASH_MS;
      const full = actor.mailbox_capacity && actor.mailbox_depth / actor.mailbox_capacity;
      return h("li", { "data-key": actor.path, "data-path": actor.path, class: flashed ? "restarted" : null },
        h("div", { class: `tree-row state-row-${actor.state}` },
          kids.length
            ? h("button", { class: "toggle", "data-action": "toggle", "data-path": actor.path, "aria-expanded": String(open), title: open ? "Collapse" : "Expand" }, open ? "▾" : "▸")
            : h("span", { class: "toggle-space" }),
          h("span", { class: "actor-name", title: actor.path }, actor.name),
          h("span", { class: "actor-class muted" }, actor.actor_class),
          badge(actor.state, actor.last_error ?? undefined),
          kids.length ? h("span", { class: "chip", title: unlimited(sup) ? "restarts its children without limit" : sup.past_intensity === "backoff" ? `restarts ${sup.max_restarts} within ${sup.within} s at once, then after a delay of ${sup.backoff_min}–${sup.backoff_max} s; never gives up` : `restarts ${sup.max_restarts} within ${sup.within} s, then gives up` },
            `${sup.strategy.replaceAll("_", " ")} · ${sup.window_restarts}/${unlimited(sup) ? "∞" : sup.max_restarts} in ${num(sup.within)}s${sup.past_intensity === "backoff" ? ", then backs off" : ""}`) : null,
          h("span", { class: "spacer" }),
          h("span", { class: "metric", "data-metric": "restarts", title: intensity ? `its supervisor allows ${intensity.max_restarts} restarts within ${intensity.within} s` : "restarts" },
            h("span", { class: "metric-label" }, "restarts"), h("span", { class: "metric-value" }, num(actor.restarts))),
          h("span", { class: `metric${full > 0.8 ? " tone-bad" : full > 0.5 ? " tone-warn" : ""}`, "data-metric": "mailbox", title: `capacity ${actor.mailbox_capacity}` },
            h("span", { class: "metric-label" }, "mailbox"), h("span", { class: "metric-value" }, `${num(actor.mailbox_depth)}/${num(actor.mailbox_capacity)}`)),
          h("span", { class: "metric", "data-metric": "rate", title: `${num(actor.processed)} messages processed` },
            h("span", { class: "metric-label" }, "msg/s"), h("span", { class: "metric-value" }, rate === null ? "–" : num(rate))),
          actor.path === "/user" ? h("span", { class: "actions" }) : h("span", { class: "actions" },
            h("button", { class: "small danger", "data-action": "kill", "data-path": actor.path, disabled: !ctx.mutations, title: "Crash it: its supervisor restarts it" }, "Kill"),
            h("button", { class: "small", "data-action": "restart", "data-path": actor.path, disabled: !ctx.mutations, title: "Restart it in place" }, "Restart")),
        ),
        kids.length && open ? h("ul", {}, kids.map((kid) => node(kid, children, actor))) : null,
      );
    };

    const draw = () => {
      const actors = [...ctx.model.actor.values()];
      const children = new Map();
      const roots = [];
      for (const actor of actors) {
        const parent = parentOf(actor.path);
        if (parent && ctx.model.actor.has(parent)) {
          if (!children.has(parent)) children.set(parent, []);
          children.get(parent).push(actor);
        } else {
          roots.push(actor);
        }
      }
      render(live, actors.length
        ? h("ul", { class: "tree" }, roots.map((a) => node(a, children, null)))
        : h("p", { class: "muted" }, "Waiting for the tree…"));
    };

    return { update: draw };
  },
};
