// The scenario pages' own tabs: the library and the runs (history, trends).

import { h } from "../dom.js";

const TABS = [
  { id: "scenarios", label: "Library" },
  { id: "runs", label: "Runs & trends" },
];

/** The tabs, `active` (a view id) marked as the current page. */
export function tabs(active) {
  return h("nav", { class: "subnav", "aria-label": "Scenario pages" },
    TABS.map((tab) => h("a", { href: `#/${tab.id}`, "aria-current": tab.id === active ? "page" : null }, tab.label)));
}
