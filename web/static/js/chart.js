// A small line chart in SVG: one series over a time window, a few grid lines.
// (runchart.js and trendchart.js draw the scenario pages' charts alike.)

import { s } from "./dom.js";

/** The charts' size in SVG units (they scale to their box) and margins. */
export const W = 600;
export const H = 160;
export const PAD = { left: 48, right: 10, top: 12, bottom: 22 };

/** A round number at or above `value`, for the top of the axis. */
export function niceTop(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

/**
 * An SVG chart of `points` ({t: ms, v: number or null}) over the last
 * `windowMs`, values shown by `format`. A null value breaks the line. `name`
 * (optional) is its data-chart; its data-from is its oldest point's time (ms).
 */
export function lineChart({ points, windowMs, format, label, name, now = Date.now() }) {
  const values = points.map((p) => p.v).filter((v) => v !== null && Number.isFinite(v));
  const top = niceTop(Math.max(0, ...values));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + plotW * (1 - (now - t) / windowMs);
  const y = (v) => PAD.top + plotH * (1 - v / top);

  const grid = [0, 0.5, 1].map((f) => [
    s("line", { class: "grid-line", x1: PAD.left, x2: W - PAD.right, y1: y(top * f), y2: y(top * f) }),
    s("text", { class: "axis", x: PAD.left - 6, y: y(top * f) + 4, "text-anchor": "end" }, format(top * f)),
  ]);
  // A tick a minute up to six minutes, every five past that.
  const step = windowMs > 6 * 60000 ? 5 : 1;
  const ticks = [];
  for (let minutes = 0; minutes * 60000 <= windowMs; minutes += step) {
    const t = now - minutes * 60000;
    ticks.push(s("text", { class: "axis", x: x(t), y: H - 6, "text-anchor": minutes * 60000 === windowMs ? "start" : "middle" }, minutes ? `-${minutes}m` : "now"));
  }

  // Runs of consecutive non-null points, each a polyline (and its area).
  const runs = [];
  let run = [];
  for (const point of points) {
    if (point.v === null || !Number.isFinite(point.v) || now - point.t > windowMs) {
      if (run.length) runs.push(run);
      run = [];
    } else {
      run.push(`${x(point.t).toFixed(1)},${y(point.v).toFixed(1)}`);
    }
  }
  if (run.length) runs.push(run);
  const lines = runs.map((r) => [
    s("polygon", { class: "area", points: `${r[0].split(",")[0]},${y(0)} ${r.join(" ")} ${r[r.length - 1].split(",")[0]},${y(0)}` }),
    s("polyline", { class: "line", points: r.join(" ") }),
  ]);
  const last = [...points].reverse().find((p) => p.v !== null && Number.isFinite(p.v));
  const first = points.find((p) => p.v !== null && Number.isFinite(p.v) && now - p.t <= windowMs);
  return s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label,
    "data-chart": name ?? null, "data-from": first ? Math.round(first.t) : null },
    s("title", {}, label),
    grid, ticks, lines,
    points.length === 0
      ? s("text", { class: "axis empty-chart", x: W / 2, y: H / 2, "text-anchor": "middle" }, "collecting samples…")
      : null,
    last ? s("circle", { class: "dot", cx: x(last.t), cy: y(last.v), r: 3 }) : null,
  );
}
