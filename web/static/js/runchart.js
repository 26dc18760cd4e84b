// A scenario run's chart: one metric over the run's seconds, with the run's
// faults overlaid as vertical markers (their name on hover).

import { s, duration } from "./dom.js";
import { W, H, PAD, niceTop } from "./chart.js";

/** A round step for about `count` ticks over `span`. */
function niceStep(span, count) {
  const raw = span / count;
  // Past a minute, steps of whole minutes (1, 2, 5, 10, 15, 30, 60...).
  if (raw > 60) {
    for (const minutes of [1, 2, 5, 10, 15, 30, 60, 120, 360, 720, 1440]) if (raw <= minutes * 60) return minutes * 60;
  }
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const step of [1, 2, 5, 10]) if (raw <= step * power) return step * power;
  return 10 * power;
}

/** More points than this are thinned to each column's lowest and highest. */
const MAX_POINTS = 1200;
/** Markers closer than this (in SVG units) are drawn as one. */
const MARKER_GAP = 3;

/** At most about MAX_POINTS of `points`, keeping each column's extremes. */
function thin(points, column) {
  if (points.length <= MAX_POINTS) return points;
  const kept = [];
  let at = null;
  let low = null;
  let high = null;
  const flush = () => {
    if (low && high && low !== high) kept.push(...(low.x <= high.x ? [low, high] : [high, low]));
    else if (low) kept.push(low);
  };
  for (const point of points) {
    if (point.v === null || !Number.isFinite(point.v)) continue;
    const here = Math.floor(column(point.x));
    if (here !== at) {
      flush();
      at = here;
      low = high = point;
    } else {
      if (point.v < low.v) low = point;
      if (point.v > high.v) high = point;
    }
  }
  flush();
  return kept;
}

/** An offset in the run as text ("0 s" at its start, not "0 µs"). */
const at = (seconds) => (seconds === 0 ? "0 s" : duration(seconds));

/** Markers grouped when they would overlap: {x, name, title, count}. */
function group(markers, column) {
  const groups = [];
  for (const marker of [...markers].sort((a, b) => a.x - b.x)) {
    const last = groups.at(-1);
    if (last && column(marker.x) - column(last[0].x) < MARKER_GAP) last.push(marker);
    else groups.push([marker]);
  }
  return groups.map((members) => {
    const [first] = members;
    if (members.length === 1) return { ...first, count: 1 };
    const names = [...new Set(members.map((m) => m.name))].join(", ");
    return {
      x: first.x,
      name: first.name,
      count: members.length,
      title: `${members.length} faults (${names}) from ${at(first.x)} to ${at(members.at(-1).x)}`,
    };
  });
}

/** An axis tick: seconds, or minutes once the steps are a minute or more. */
function offsetLabel(seconds, step) {
  return step >= 60 ? `${Number((seconds / 60).toFixed(1))}m` : `${Number(seconds.toFixed(3))}s`;
}

/**
 * An SVG chart of `points` ({x: seconds since the run began, v: value or
 * null}) from 0 to `xMax` seconds, values shown by `format`; `markers`
 * ({x, name, title}) are drawn as dashed vertical lines, each a
 * `g.fault-marker` whose SVG title is `title`. So that a long run (an hour's
 * soak, a thousand kills) stays light to draw four times a second, markers
 * that would overlap are one, titled with their count and span, and more
 * than MAX_POINTS points are thinned to each column's lowest and highest
 * (gaps then close).
 */
export function runChart({ points, xMax, markers = [], format, label }) {
  const values = points.map((p) => p.v).filter((v) => v !== null && Number.isFinite(v));
  const top = niceTop(Math.max(0, ...values));
  const span = Math.max(1, xMax, ...points.map((p) => p.x), ...markers.map((m) => m.x));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (seconds) => PAD.left + plotW * (seconds / span);
  const y = (v) => PAD.top + plotH * (1 - v / top);
  points = thin(points, x);

  const grid = [0, 0.5, 1].map((f) => [
    s("line", { class: "grid-line", x1: PAD.left, x2: W - PAD.right, y1: y(top * f), y2: y(top * f) }),
    s("text", { class: "axis", x: PAD.left - 6, y: y(top * f) + 4, "text-anchor": "end" }, format(top * f)),
  ]);
  const step = niceStep(span, 6);
  const ticks = [];
  for (let t = 0; t <= span + 1e-9; t += step) {
    ticks.push(s("text", { class: "axis", x: x(t), y: H - 6, "text-anchor": "middle" }, offsetLabel(t, step)));
  }

  const runs = [];
  let run = [];
  for (const point of points) {
    if (point.v === null || !Number.isFinite(point.v)) {
      if (run.length) runs.push(run);
      run = [];
    } else {
      run.push(`${x(point.x).toFixed(1)},${y(point.v).toFixed(1)}`);
    }
  }
  if (run.length) runs.push(run);
  const lines = runs.map((r) => [
    s("polygon", { class: "area", points: `${r[0].split(",")[0]},${y(0)} ${r.join(" ")} ${r[r.length - 1].split(",")[0]},${y(0)}` }),
    s("polyline", { class: "line", points: r.join(" ") }),
  ]);
  const faults = group(markers, x).map((marker) => s("g", { class: "fault-marker", "data-fault": marker.name, "data-count": marker.count },
    s("title", {}, marker.title),
    s("line", { x1: x(marker.x), x2: x(marker.x), y1: PAD.top, y2: H - PAD.bottom }),
    // A wider, invisible line: something to hover over.
    s("line", { class: "hit", x1: x(marker.x), x2: x(marker.x), y1: PAD.top, y2: H - PAD.bottom }),
    s("path", { d: `M${x(marker.x) - 4},${PAD.top - 8} h8 l-4,6 z` })));
  const last = [...points].reverse().find((p) => p.v !== null && Number.isFinite(p.v));
  return s("svg", { class: "chart run-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label },
    s("title", {}, label),
    grid, ticks, lines, faults,
    points.length === 0
      ? s("text", { class: "axis empty-chart", x: W / 2, y: H / 2, "text-anchor": "middle" }, "waiting for samples…")
      : null,
    last ? s("circle", { class: "dot", cx: x(last.x), cy: y(last.v), r: 3 }) : null,
  );
}
