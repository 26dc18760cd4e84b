// Actors: every actor in one table, sortable by mailbox depth and message
// rate; actors that left the tree stay listed with the cause of their end;
// and the server's record of recent deaths (crashes and kills, restarted or
// not), which a page opened after the fact shows too.

import { api } from "../api.js";
import { h, render, table, sortOnClick, badge, num, when, panel } from "../dom.js";
import { actorRate } from "../live.js";

/** What became of an actor after a death, as a coloured label. */
function aftermath(death) {
  if (death.restarted) return h("span", { class: "badge state-running", title: "Restarted in place by its supervisor" }, "restarted");
  if (death.ended) return h("span", { class: "badge state-failed", title: "Stopped for good" }, "ended");
  return h("span", { class: "badge state-restarting", title: "A restart is still to come" }, "restarting");
}

export default {
  id: "actors",
  title: "Actors",
  mount(root, ctx) {
    const sort = { key: "mailbox_depth", dir: "desc" };
    const live = h("div");
    const deathsLive = h("div");
    let deaths = [];
    let asking = false;
    let again = false;
    let seen = null; // the failures and actors the deaths were asked for

    const deathsPanel = panel("Recent deaths", h("span", { class: "muted" }, "crashes and kills the server remembers, newest first"), deathsLive);
    deathsPanel.classList.add("deaths");
    root.append(
      h("div", { class: "view-head" }, h("h1", {}, "Actors"),
        h("p", { class: "muted" }, "Click a header to sort. Actors that ended stay listed, with their cause.")),
      live,
      deathsPanel,
    );

    /** Ask the server for its deaths; again after, if news came meanwhile. */
    const refreshDeaths = async () => {
      if (asking) {
        again = true;
        return;
      }
      asking = true;
      try {
        deaths = (await api("GET", "/api/deaths?limit=100")).deaths;
        drawDeaths();
      } catch {
        // The connection state shows in the header; asked again on news.
      } finally {
        asking = false;
        if (again) {
          again = false;
          refreshDeaths();
        }
      }
    };

    /** A death shows as a failure count going up, or an actor leaving; its
     * aftermath as a restart count going up. */
    const deathNews = () => {
      let failures = 0;
      let restarts = 0;
      for (const actor of ctx.model.actor.values()) {
        failures += actor.failures;
        restarts += actor.restarts;
      }
      const now = `${failures}/${restarts}/${ctx.model.actor.size}/${ctx.model.gone.size}`;
      const news = now !== seen;
      seen = now;
      return news;
    };

    const drawDeaths = () => {
      render(deathsLive, table({
        columns: [
          { key: "died_at", label: "When", cell: (d) => when(d.died_at) },
          { key: "path", label: "Path", cell: (d) => h("span", { class: "mono" }, d.path) },
          { key: "actor_class", label: "Class", cell: (d) => h("span", { class: "muted" }, d.actor_class) },
          { key: "cause", label: "Cause", cell: (d) => h("span", { class: "cause" }, d.cause) },
          { key: "after", label: "Then", cell: aftermath },
        ],
        rows: deaths,
        key: (d) => `${d.path}@${d.died_at}`,
        rowAttrs: (d) => ({ "data-path": d.path }),
        empty: "No actor died since the server started.",
      }));
    };

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
    drawDeaths();
    return {
      update(kind) {
        if (kind === "route" || (kind === "actor" && deathNews())) refreshDeaths();
        draw();
      },
    };
  },
};
