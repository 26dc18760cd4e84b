// How the scenario pages show a run's numbers: metric values in their units,
// outcomes, a check's details, and the CSV export read back into series.

/** What the pages show for a value the server did not give. */
export const DASH = "—";

const TIME = { us: 1e-6, ms: 1e-3, s: 1, sec: 1, m: 60, min: 60, h: 3600 };
const BYTES = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30 };
// A ratio (error_rate) arrives as a share of 1; "%" shows it in hundredths.
const RATIO = { "%": 0.01 };

/**
 * The base unit of the metrics the runner knows (sz.scenarios.catalog):
 * values arrive in it; a metric not listed is a count.
 */
const BASE = {
  scheduler_latency: "seconds",
  job_latency: "seconds",
  memory_usage: "bytes",
  jobs_per_sec: "rate",
  error_rate: "ratio",
  creation_rate: "rate",
  deletion_rate: "rate",
};

const short = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 3 });
const plain = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const precise = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 6 });

/**
 * One value of metric `name` (in its base unit) as text, in `unit` when the
 * scenario gives one (ms, MB, schedules/sec), else in the base unit's usual
 * form. Null or absent: the dash.
 */
export function metricNumber(name, value, unit) {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  if (unit) {
    const head = unit.split("/")[0];
    const scale = TIME[head] ?? BYTES[head] ?? RATIO[head];
    if (scale) return `${short.format(value / scale)} ${unit}`;
    return `${Math.abs(value) >= 100 ? plain.format(value) : short.format(value)} ${unit}`;
  }
  switch (BASE[name]) {
    case "seconds":
      return Math.abs(value) < 1 ? `${short.format(value * 1000)} ms` : `${short.format(value)} s`;
    case "bytes":
      return `${plain.format(value / 1e6)} MB`;
    case "rate":
      return `${plain.format(value)}/s`;
    case "ratio":
      return `${short.format(value * 100)} %`;
    default:
      return precise.format(value);
  }
}

/** A result's metric: a number, or the summary of its samples. */
export function metricValue(name, value, unit) {
  if (value === null || value === undefined) return DASH;
  if (typeof value !== "object") return metricNumber(name, value, unit);
  if (!value.count) return "no samples";
  const parts = ["p50", "p99", "max"]
    .filter((key) => key in value)
    .map((key) => `${key} ${metricNumber(name, value[key], unit)}`);
  if ("rate" in value) parts.push(`trend ${metricNumber(name, value.rate, unit)}/s`);
  parts.push(`n=${plain.format(value.count)}`);
  return parts.join("  ·  ");
}

/**
 * How a run came out: the `outcome` the server gives, else its `state` once
 * it is no longer running; null while it runs.
 */
export function outcomeOf(run) {
  if (run.outcome !== undefined) return run.outcome;
  return run.state && run.state !== "running" ? run.state : null;
}

/**
 * One entry of a check's nested detail: a number, a phase of the steady
 * state (`{passed, checked, violations}`) as its verdict, or its text.
 */
function innerValue(value) {
  if (typeof value === "number") return short.format(value);
  if (value && typeof value === "object") {
    if ("passed" in value) {
      const broken = Array.isArray(value.violations) ? value.violations.length : 0;
      if (value.passed) return "held";
      return broken ? `broken ${plain.format(broken)}×` : "broken";
    }
    return JSON.stringify(value);
  }
  return String(value);
}

/** A check's details (everything but `passed`) as one line. */
export function checkDetails(check) {
  const shown = [];
  for (const [key, value] of Object.entries(check)) {
    if (key === "passed" || value === null || value === undefined) continue;
    if (Array.isArray(value)) {
      if (!value.length) continue;
      shown.push(`${key}: ${value.slice(0, 3).join(", ")}${value.length > 3 ? ", …" : ""}`);
    } else if (typeof value === "object") {
      const inner = Object.entries(value).map(([k, v]) => `${k} ${innerValue(v)}`);
      if (inner.length) shown.push(`${key}: ${inner.join(", ")}`);
    } else {
      shown.push(`${key}: ${typeof value === "number" ? short.format(value) : value}`);
    }
  }
  return shown.join("; ");
}

/** Seconds between two ISO times; null if either is missing. */
export function between(startIso, endIso) {
  if (!startIso || !endIso) return null;
  return (Date.parse(endIso) - Date.parse(startIso)) / 1000;
}

/**
 * The CSV export (`offset,metric,value`, one row per sample) as a Map of
 * metric name to its points [{x: offset, v: value}], in time order.
 */
export function parseSamples(text) {
  const series = new Map();
  const lines = text.trim().split("\n").slice(1);
  for (const line of lines) {
    const [offset, metric, value] = line.split(",");
    const x = Number(offset);
    const v = Number(value);
    if (!metric || !Number.isFinite(x)) continue;
    if (!series.has(metric)) series.set(metric, []);
    series.get(metric).push({ x, v: Number.isFinite(v) ? v : null });
  }
  for (const points of series.values()) points.sort((a, b) => a.x - b.x);
  return series;
}
