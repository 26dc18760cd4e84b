// Dead letters: messages no actor processed, newest first.

import { api } from "../api.js";
import { h, render, table, when, num } from "../dom.js";

export default {
  id: "dead-letters",
  title: "Dead letters",
  mount(root, ctx) {
    let letters = [];
    let total = null;
    let seen = null;
    let error = null;
    const live = h("div");
    root.append(
      h("div", { class: "view-head" }, h("h1", {}, "Dead letters"),
        h("p", { class: "muted" }, "Messages sent to an actor that had stopped, or dropped by a full mailbox: counted, and the latest kept.")),
      live,
    );
    const load = async () => {
      try {
        const answer = await api("GET", "/api/dead-letters?limit=200");
        letters = answer.letters;
        total = answer.total;
        error = null;
      } catch (e) {
        error = e.message;
      }
      draw();
    };
    const draw = () => {
      render(live, h("div", {},
        error ? h("p", { class: "error", role: "alert" }, error) : null,
        h("p", { class: "count" }, total === null ? "Loading…" : `${num(total)} dead letter${total === 1 ? "" : "s"} since the server started; the latest ${num(letters.length)} below.`),
        table({
          columns: [
            { key: "at", label: "At", cell: (d) => when(d.at) },
            { key: "path", label: "To", cell: (d) => h("span", { class: "mono" }, d.path) },
            { key: "reason", label: "Why" },
            { key: "message_type", label: "Type", cell: (d) => h("span", { class: "mono" }, d.message_type) },
            { key: "message", label: "Message", cell: (d) => h("span", { class: "mono message" }, d.message) },
          ],
          rows: letters,
          empty: "No dead letter: every message reached a live actor.",
        })));
    };
    return {
      update(kind) {
        const count = ctx.model.summary?.dead_letters ?? null;
        if (kind === "route" || count !== seen) {
          seen = count;
          load();
        }
      },
    };
  },
};
