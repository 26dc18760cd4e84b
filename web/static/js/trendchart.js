// A metric's trend over a scenario's runs: one point per run, oldest to the
// left, green where the run passed and red where it did not.

import { s } from "./dom.js";
import { niceTop } from "./chart.js";

const W = 300;
const H = 90;
const PAD = { left: 44, right: 8, top: 8, bottom: 8 };

/**
 * An SVG chart of `points` ({v, passed, title}) in run order; `format`
 * shows the axis's values. Each point is a `circle.trend-point` whose SVG
 * title is its `title`.
 */
export function trendChart({ points, format, label }) {
  const values = points.map((p) => p.v);
  const top = niceTop(Math.max(0, ...values));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (points.length > 1 ? plotW * (i / (points.length - 1)) : plotW / 2);
  const y = (v) => PAD.top + plotH * (1 - v / top);
  const grid = [0, 1].map((f) => [
    s("line", { class: "grid-line", x1: PAD.left, x2: W - PAD.right, y1: y(top * f), y2: y(top * f) }),
    s("text", { class: "axis", x: PAD.left - 4, y: y(top * f) + 4, "text-anchor": "end" }, format(top * f)),
  ]);
  return s("svg", { class: "chart trend-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label },
    s("title", {}, label),
    grid,
    points.length > 1
      ? s("polyline", { class: "trend-line", points: points.map((p, i) => `${x(i).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ") })
      : null,
    points.map((p, i) => s("circle", {
      class: `trend-point ${p.passed === true ? "pass" : p.passed === false ? "fail" : "unknown"}`,
      cx: x(i).toFixed(1), cy: y(p.v).toFixed(1), r: 3.5,
    }, s("title", {}, p.title))),
  );
}
