// Building and updating the page's DOM. Every piece of data goes in as text
// (text nodes, attribute values), never as markup: task names, errors and
// tracebacks come from users' code.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "checked" || name === "value" || name === "disabled") {
      element[name] = value;
      if (name !== "value" && value) element.setAttribute(name, "");
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: h("td", {class: "num"}, "12"). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, as h() makes HTML ones. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/**
 * Make `from` (in the page) look like `to` (just built), touching only what
 * differs, so that a button or a checkbox under the pointer stays the same
 * element across live updates. Listeners are not carried over: live parts of
 * the page use delegated listeners (data-action attributes).
 */
export function morph(from, to) {
  if (
    from.nodeType !== to.nodeType ||
    from.nodeName !== to.nodeName ||
    (from.nodeType === 1 && from.getAttribute("data-key") !== to.getAttribute("data-key"))
  ) {
    from.replaceWith(to);
    return;
  }
  if (from.nodeType !== 1) {
    if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
    return;
  }
  for (const { name } of [...from.attributes]) {
    if (!to.hasAttribute(name)) from.removeAttribute(name);
  }
  for (const { name, value } of to.attributes) {
    if (from.getAttribute(name) !== value) from.setAttribute(name, value);
  }
  if (from instanceof HTMLInputElement) {
    from.checked = to.checked;
    from.disabled = to.disabled;
  } else if (from instanceof HTMLButtonElement) {
    from.disabled = to.disabled;
  }
  const old = [...from.childNodes];
  const fresh = [...to.childNodes];
  fresh.forEach((node, i) => (i < old.length ? morph(old[i], node) : from.append(node)));
  for (const node of old.slice(fresh.length)) node.remove();
}

/** Put `node` in `container`, morphing what is there already. */
export function render(container, node) {
  const current = container.firstChild;
  if (current && !current.nextSibling) morph(current, node);
  else container.replaceChildren(node);
}

// ---------------------------------------------------------------- formats

const numbers = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export function num(value) {
  return value === null || value === undefined ? "–" : numbers.format(value);
}

/** Seconds as a short duration: 850 µs, 12 ms, 3.4 s, 5 min, 2 h. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const abs = Math.abs(seconds);
  if (abs < 0.001) return `${Math.round(seconds * 1e6)} µs`;
  if (abs < 1) return `${numbers.format(seconds * 1000)} ms`;
  if (abs < 120) return `${numbers.format(seconds)} s`;
  if (abs < 7200) return `${Math.round(seconds / 60)} min`;
  if (abs < 172800) return `${numbers.format(seconds / 3600)} h`;
  return `${numbers.format(seconds / 86400)} d`;
}

/** An ISO time relative to now: "3 s ago", "in 2 min". */
export function relative(iso) {
  if (!iso) return "–";
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  if (Math.abs(seconds) < 0.5) return "now";
  return seconds > 0 ? `in ${duration(seconds)}` : `${duration(-seconds)} ago`;
}

const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});
const dateClock = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  second: "2-digit", hour12: false,
});

/** An ISO time as local wall-clock time (with the date if not today). */
export function time(iso) {
  if (!iso) return "–";
  const moment = new Date(iso);
  const today = moment.toDateString() === new Date().toDateString();
  return (today ? clock : dateClock).format(moment);
}

/** A time cell: the local time, the full ISO time on hover. */
export function when(iso, { rel = false } = {}) {
  if (!iso) return h("span", { class: "muted" }, "–");
  return h("time", { datetime: iso, title: iso }, rel ? relative(iso) : time(iso));
}

/** A long id shortened to its end: ids made by one process share a prefix. */
export function shortId(id) {
  return id && id.length > 12 ? `…${id.slice(-10)}` : id ?? "–";
}

/** A coloured state label. */
export function badge(state, title) {
  const word = state ?? "unknown";
  return h("span", { class: `badge state-${word.replace(/[^a-z_]/g, "")}`, title }, word.replaceAll("_", " "));
}

// ---------------------------------------------------------------- tables

/**
 * A table sortable by its headers. `sort` ({key, dir}) belongs to the view;
 * a header click changes it and calls `onSort`. Columns: {key, label, value
 * (row) => what to sort by, cell (row) => text or node, num, title}.
 */
export function table({ columns, rows, sort, onSort, key, empty, rowAttrs, caption }) {
  let sorted = rows;
  if (sort?.key) {
    const column = columns.find((c) => c.key === sort.key);
    const value = column?.value ?? ((row) => row[sort.key]);
    const sign = sort.dir === "asc" ? 1 : -1;
    sorted = [...rows].sort((a, b) => {
      const x = value(a);
      const y = value(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sign;
    });
  }
  const head = h("tr", {}, columns.map((column) => {
    const active = sort?.key === column.key;
    const label = [column.label, active ? (sort.dir === "asc" ? " ▲" : " ▼") : ""];
    const sortable = onSort && column.sort !== false;
    return h("th", {
      class: [column.num ? "num" : "", sortable ? "sortable" : "", column.class ?? ""].join(" ").trim() || null,
      title: column.title,
      "aria-sort": active ? (sort.dir === "asc" ? "ascending" : "descending") : null,
      "data-sort": sortable ? column.key : null,
    }, label);
  }));
  const body = sorted.length
    ? sorted.map((row) => h("tr", { "data-key": key ? key(row) : null, ...(rowAttrs?.(row) ?? {}) },
        columns.map((column) => h("td", { class: [column.num ? "num" : "", column.class ?? ""].join(" ").trim() || null },
          column.cell ? column.cell(row) : row[column.key] ?? "–"))))
    : [h("tr", { class: "empty" }, h("td", { colspan: columns.length }, empty ?? "Nothing here."))];
  const element = h("table", { class: "grid" }, caption ? h("caption", {}, caption) : null,
    h("thead", {}, head), h("tbody", {}, body));
  return element;
}

/** Make the headers of tables under `root` sort `sort` ({key, dir}). */
export function sortOnClick(root, sort, rerender, descending = []) {
  root.addEventListener("click", (event) => {
    const th = event.target.closest("th[data-sort]");
    if (!th || !root.contains(th)) return;
    const key = th.dataset.sort;
    if (sort.key === key) sort.dir = sort.dir === "asc" ? "desc" : "asc";
    else Object.assign(sort, { key, dir: descending.includes(key) ? "desc" : "asc" });
    rerender();
  });
}

// -------------------------------------------------------- dialog, toasts

/** Ask before doing something drastic; resolves true if confirmed. */
export function confirm(title, message, ok = "OK") {
  const dialog = document.getElementById("confirm");
  dialog.querySelector(".dialog-title").textContent = title;
  dialog.querySelector(".dialog-message").textContent = message;
  dialog.querySelector("#confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

/** A short note in the corner that goes away by itself. */
export function toast(message, kind = "info") {
  const note = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  document.getElementById("toasts").append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 4000);
}

/** A section with a heading and optional tools beside it. */
export function panel(title, tools, ...body) {
  return h("section", { class: "panel" },
    h("header", { class: "panel-head" }, h("h2", {}, title), tools ? h("div", { class: "tools" }, tools) : null),
    ...body);
}
