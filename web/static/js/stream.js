// Following one of the API's Server-Sent Events streams: each named event's
// JSON to its handler, the connection coming and going to callbacks, and a
// stream the browser gave up on (a refusal, not a dropped connection, which
// the browser retries by itself) to `onRefused`, which says whether to try
// again. /api/events and a scenario run's /api/tests/metrics/{id} use it.

/** How long to wait before opening a refused stream again, in ms. */
const RETRY_MS = 3000;

/**
 * Open `url` as an EventSource; `events` maps event names to handlers of
 * their parsed data. `onRefused()` may return a promise; a true value (the
 * default without it) opens the stream again after RETRY_MS. Returns
 * {close()}, after which no handler is called.
 */
export function follow(url, { events, onOpen, onDrop, onRefused }) {
  let source = null;
  let timer = null;
  let stopped = false;
  const open = () => {
    if (stopped) return;
    source = new EventSource(url);
    source.addEventListener("open", () => {
      if (!stopped) onOpen?.();
    });
    for (const [name, handle] of Object.entries(events)) {
      source.addEventListener(name, (event) => {
        if (!stopped) handle(JSON.parse(event.data), event);
      });
    }
    source.addEventListener("error", () => {
      if (stopped) return;
      onDrop?.();
      if (source.readyState !== EventSource.CLOSED) return;
      Promise.resolve()
        .then(() => (onRefused ? onRefused() : true))
        .catch(() => true)
        .then((again) => {
          if (again && !stopped) timer = setTimeout(open, RETRY_MS);
        });
    });
  };
  open();
  return {
    close() {
      stopped = true;
      clearTimeout(timer);
      source?.close();
    },
  };
}
