// Actors: every actor in one table, sortable by mailbox depth and message
// rate; actors that left the tree stay listed with the cause of their end.

import { h, render, table, sortOnClick, badge, num, when } from "../dom.js";
import { actorRate } from "../live.js";

export default {
  id: "actors",
  title: "Actors",
  mount(root, ctx) {
    const sort = { key: "mailbox_depth", dir: "desc" };
    const live = h("div");
    root.append(
      h("div", { class: "view-head" }, h("h1", {}, "Actors"),
        h("p", { class: "muted" }, "Click a header to sort. Actors that ended stay listed, with their cause.")),
      live,
    );
    const draw = () => {
      const { model } = ctx;
      const rows = [
        ...[...model.actor.values()].map((a) => ({ ...a, rate: actorRate(a.path), gone: false })),
        ...[...model.gone.values()].map((a) => ({ ...a, rate: null, gone: true })),
      ];
      render(live, table({
        columns: [
          { key: "path", label: "Path", cell: (a) => h("span", { class: "mono" }, a.path) },
          { key: "actor_class", label: "Class", cell: (a) => h("span", { class: "muted" }, a.actor_class) },
          { key: "state", label: "State", cell: (a) => badge(a.state) },
          { key: "mailbox_depth", label: "Mailbox", num: true, cell: (a) => `${num(a.mailbox_depth)} / ${num(a.mailbox_capacity)}` },
          { key: "rate", label: "Msg/s", num: true, cell: (a) => (a.rate === null ? "–" : num(a.rate)) },
          { key: "processed", label: "Processed", num: true, cell: (a) => num(a.processed) },
          { key: "failures", label: "Failures", num: true, cell: (a) => num(a.failures) },
          { key: "restarts", label: "Restarts", num: true, cell: (a) => num(a.restarts) },
          { key: "started_at", label: "Up since", cell: (a) => when(a.started_at) },
          { key: "cause", label: "Last error / cause", value: (a) => a.last_error ?? "",
            cell: (a) => (a.gone
              ? h("span", { class: "cause" }, a.last_error ?? "stopped normally", h("span", { class: "muted" }, " · gone ", when(a.gone_at, { rel: true })))
              : a.last_error ? h("span", { class: "cause" }, a.last_error) : h("span", { class: "muted" }, "–")) },
        ],
        rows,
        sort,
        onSort: true,
        key: (a) => a.path,
        rowAttrs: (a) => ({ class: a.gone ? "gone" : null }),
        empty: "Waiting for the tree…",
      }));
    };
    sortOnClick(live, sort, draw, ["mailbox_depth", "rate", "processed", "failures", "restarts"]);
    return { update: draw };
  },
};
