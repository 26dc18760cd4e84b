// The live model: what /api/events says, kept up to date, and a few series
// sampled from it (throughput, lateness, each actor's message rate).

import { api } from "./api.js";
import { follow } from "./stream.js";

/** The key of each kind of keyed event's items. */
const KEYS = { job: "id", schedule: "id", handler: "name", actor: "path" };

/** How long the charts look back, and how often they sample, in ms. */
export const WINDOW_MS = 5 * 60 * 1000;
const SAMPLE_MS = 1000;
/** Rates are read over this many samples (seconds). */
const RATE_SPAN = 5;

export const model = {
  summary: null,
  job: new Map(),
  schedule: new Map(),
  handler: new Map(),
  actor: new Map(),
  /** Actors gone from the tree, by path: their last state and why. */
  gone: new Map(),
  /** When each actor was last seen to restart (ms), to show it happen. */
  restartedAt: new Map(),
  /** Summary samples: {t, ended, fires, late}. */
  samples: [],
  /** Per actor path: recent [t, processed] samples. */
  processed: new Map(),
  connected: false,
};

function applyKeyed(kind, data) {
  const items = model[kind];
  const key = KEYS[kind];
  if (data.full) {
    if (kind === "actor") for (const [path, old] of items) if (!data.items.some((i) => i.path === path)) bury(old);
    items.clear();
  }
  for (const item of data.items) {
    if (kind === "actor") {
      const before = items.get(item.path);
      if (before && item.restarts > before.restarts) model.restartedAt.set(item.path, Date.now());
      model.gone.delete(item.path);
    }
    items.set(item[key], item);
  }
  for (const removed of data.removed ?? []) {
    if (kind === "actor" && items.has(removed)) bury(items.get(removed));
    items.delete(removed);
  }
}

/** Keep an actor that left the tree, with the cause of its end. */
function bury(actor) {
  const ended = ["failed", "stopped"].includes(actor.state) ? actor.state : "stopped";
  model.gone.set(actor.path, { ...actor, state: ended, gone_at: new Date().toISOString() });
}

function sample() {
  const now = Date.now();
  const summary = model.summary;
  if (summary) {
    model.samples.push({
      t: now,
      ended: summary.ended.total,
      fires: summary.lateness?.fires ?? 0,
      late: summary.lateness?.sum ?? 0,
    });
    while (model.samples.length && model.samples[0].t < now - WINDOW_MS - RATE_SPAN * SAMPLE_MS) {
      model.samples.shift();
    }
  }
  for (const [path, actor] of model.actor) {
    const series = model.processed.get(path) ?? [];
    series.push([now, actor.processed]);
    if (series.length > RATE_SPAN + 1) series.shift();
    model.processed.set(path, series);
  }
  for (const path of model.processed.keys()) if (!model.actor.has(path)) model.processed.delete(path);
}

/** An actor's messages per second over the last few seconds; null at first. */
export function actorRate(path) {
  const series = model.processed.get(path);
  if (!series || series.length < 2) return null;
  const [t0, n0] = series[0];
  const [t1, n1] = series[series.length - 1];
  return t1 > t0 ? Math.max(0, ((n1 - n0) * 1000) / (t1 - t0)) : null;
}

/** Throughput (jobs ended per second) and mean fire lateness (s), per sample. */
export function series() {
  const samples = model.samples;
  const throughput = [];
  const lateness = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[Math.max(0, i - RATE_SPAN)];
    const b = samples[i];
    const seconds = (b.t - a.t) / 1000;
    throughput.push({ t: b.t, v: seconds > 0 ? (b.ended - a.ended) / seconds : 0 });
    const fires = b.fires - a.fires;
    lateness.push({ t: b.t, v: fires > 0 ? (b.late - a.late) / fires : null });
  }
  return { throughput, lateness };
}

/**
 * Follow /api/events, keeping `model` current; `changed(kind)` after each
 * event, `changed("tick")` every second, `changed("connection")` when the
 * stream comes or goes.
 */
export function connect(changed) {
  const events = {
    summary(data) {
      model.summary = data;
      changed("summary");
    },
  };
  for (const kind of Object.keys(KEYS)) {
    events[kind] = (data) => {
      applyKeyed(kind, data);
      changed(kind);
    };
  }
  follow("/api/events", {
    events,
    onOpen() {
      model.connected = true;
      changed("connection");
    },
    onDrop() {
      model.connected = false;
      changed("connection");
    },
    // Refused: a 401 sends the page to the login form, else try again.
    onRefused: () => api("GET", "/api/summary").then(() => true, () => true),
  });
  setInterval(() => {
    sample();
    changed("tick");
  }, SAMPLE_MS);
}
