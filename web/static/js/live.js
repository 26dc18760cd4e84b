// The live model: what /api/events says, kept up to date: the keyed state,
// the server's per-second series (throughput, lateness; /api/series fills in
// the minutes before the page opened), and each actor's message rate.

import { api } from "./api.js";
import { follow } from "./stream.js";

/** The key of each kind of keyed event's items. */
const KEYS = { job: "id", schedule: "id", handler: "name", actor: "path" };

/** How long the charts look back (the server keeps 15 minutes), in ms. */
export const WINDOW_MS = 15 * 60 * 1000;
/** How often the page ticks (and samples the actors' counters), in ms. */
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
  /** The server's per-second samples (/api/series), by their seq. */
  series: new Map(),
  /** How far this browser's clock is ahead of the server's, in ms (from the
   * first summary's time): the samples' times are the server's. */
  skew: 0,
  skewRead: false,
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
    // When it was read: a handler's heartbeat ages from here until the next.
    if (kind === "handler") item.received_at = Date.now();
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

/** Keep the server's samples (from the stream or /api/series), each once. */
export function addSamples(samples) {
  for (const sample of samples) {
    // t: on the server's clock.
    if (!model.series.has(sample.seq)) model.series.set(sample.seq, { ...sample, t: Date.parse(sample.time) });
  }
  const oldest = Date.now() - model.skew - WINDOW_MS - RATE_SPAN * SAMPLE_MS;
  for (const [seq, sample] of model.series) if (sample.t < oldest) model.series.delete(seq);
}

/** The minutes before the page opened: asked once by the overview. */
export async function loadSeries() {
  const answer = await api("GET", "/api/series");
  addSamples(answer.samples);
}

function sample() {
  const now = Date.now();
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

/**
 * From the server's samples: throughput (jobs ended per second, over the last
 * RATE_SPAN seconds), and the p50 and p99 of fire lateness (s) of each second
 * with a fire (a second without one has no point). A missing sample (the
 * server was away) breaks the lines: a null point.
 */
export function series() {
  const samples = [...model.series.values()].sort((a, b) => a.seq - b.seq)
    .map((sample) => ({ ...sample, t: sample.t + model.skew }));
  const throughput = [];
  const p50 = [];
  const p99 = [];
  let recent = [];
  let before = null;
  for (const sample of samples) {
    if (before && sample.seq !== before.seq + 1) {
      const gap = { t: (before.t + sample.t) / 2, v: null };
      throughput.push(gap);
      p50.push(gap);
      p99.push(gap);
      recent = [];
    }
    recent.push(sample.finished);
    if (recent.length > RATE_SPAN) recent.shift();
    throughput.push({ t: sample.t, v: recent.reduce((n, v) => n + v, 0) / recent.length });
    if (sample.lateness_p99 !== null) {
      p50.push({ t: sample.t, v: sample.lateness_p50 });
      p99.push({ t: sample.t, v: sample.lateness_p99 });
    }
    before = sample;
  }
  return { throughput, lateness: p99, p50 };
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
      // Sent within an interval of its time: good to a second, which a chart
      // of fifteen minutes needs. Read once, so that the samples keep one base.
      if (!model.skewRead) {
        model.skew = Date.now() - Date.parse(data.time);
        model.skewRead = true;
      }
      changed("summary");
    },
    series(data) {
      addSamples(data.items);
      changed("series");
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
