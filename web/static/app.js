// Slipway's web UI: a single-page app with no build step, served by
// `slipway server` and talking only to its GraphQL API at /graphql.
//
// Layout of this file: DOM and formatting helpers, the API client, the log
// stream (followDeployment), the ANSI colour parser, the pages (project
// list, project, deployment) and the router.

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED", "SUPERSEDED"]);
const POLL_MS = 700; // how often a live log is polled
const LIST_POLL_MS = 2500; // how often lists of deployments are refreshed
const LOG_PAGE = 5000; // the API's largest page of log lines
const PHASES = ["queue", "wake", "fetch", "build", "push", "release"];

// ---------------------------------------------------------------------------
// DOM helpers

/**
 * h creates an element. props: class, text, dataset, style (an object),
 * on* listeners, and any other attribute; children are nodes, strings,
 * arrays or null.
 */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") Object.assign(el.style, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(t);
      reject(signal.reason);
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function isAbort(err) {
  return err?.name === "AbortError";
}

// ---------------------------------------------------------------------------
// Formatting

const STATUS_LABEL = {
  QUEUED: "Queued",
  BUILDING: "Building",
  SUCCEEDED: "Succeeded",
  FAILED: "Failed",
  CANCELLED: "Cancelled",
  SUPERSEDED: "Superseded",
};

function statusBadge(status, props = {}) {
  const s = String(status || "").toUpperCase();
  return h(
    "span",
    { class: `badge status-${s.toLowerCase()}`, dataset: { status: s.toLowerCase() }, ...props },
    h("span", { class: "badge-dot", "aria-hidden": "true" }),
    STATUS_LABEL[s] || s.toLowerCase(),
  );
}

const TRIGGER_LABEL = { webhook: "Push", manual: "Manual", demo: "Demo", rollback: "Rollback" };

function triggerLabel(t) {
  return TRIGGER_LABEL[t] || t;
}

function shortSHA(sha) {
  return (sha || "").slice(0, 7);
}

/** shortRef is a ref as people say it: main, not refs/heads/main. */
function shortRef(ref) {
  return (ref || "").replace(/^refs\/(heads|tags)\//, "");
}

function shortDigest(digest) {
  if (!digest) return "";
  const [algo, hex] = digest.includes(":") ? digest.split(":", 2) : ["", digest];
  return (algo ? algo + ":" : "") + hex.slice(0, 12);
}

/** fmtDuration formats milliseconds the way a person reads them. */
function fmtDuration(ms) {
  if (ms == null || !isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const relFmt = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const absFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

function fmtAgo(date) {
  const d = new Date(date);
  const sec = (d.getTime() - Date.now()) / 1000;
  const abs = Math.abs(sec);
  if (abs < 10) return "just now";
  if (abs < 60) return relFmt.format(Math.round(sec), "second");
  if (abs < 3600) return relFmt.format(Math.round(sec / 60), "minute");
  if (abs < 86400) return relFmt.format(Math.round(sec / 3600), "hour");
  if (abs < 86400 * 30) return relFmt.format(Math.round(sec / 86400), "day");
  return absFmt.format(d);
}

/** ago is a <time> that the ticker keeps up to date. */
function ago(date) {
  if (!date) return h("span", { class: "muted", text: "—" });
  return h("time", { datetime: date, title: absFmt.format(new Date(date)), dataset: { ago: date }, text: fmtAgo(date) });
}

function tickTimes() {
  for (const el of document.querySelectorAll("[data-ago]")) el.textContent = fmtAgo(el.dataset.ago);
}
setInterval(tickTimes, 10000);

/** deploymentDuration is a finished deployment's duration, or the time so far. */
function deploymentDuration(d) {
  if (d.durationMs != null) return d.durationMs;
  if (TERMINAL.has(d.status)) return null;
  return Date.now() - new Date(d.createdAt).getTime();
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Not a secure context: fall back to a hidden text area.
    const ta = h("textarea", { class: "offscreen", readonly: true });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    document.execCommand("copy");
    ta.remove();
  }
  if (button) {
    const was = button.textContent;
    button.textContent = "Copied";
    button.classList.add("copied");
    setTimeout(() => {
      button.textContent = was;
      button.classList.remove("copied");
    }, 1500);
  }
}

function copyButton(text, label = "Copy") {
  const b = h("button", { type: "button", class: "btn btn-small btn-ghost copy", title: "Copy to clipboard", text: label });
  b.addEventListener("click", (e) => {
    e.stopPropagation();
    copyText(text, b);
  });
  return b;
}

// ---------------------------------------------------------------------------
// Banners: errors with the server's message, and notices.

const banners = new Map(); // key → element

function showBanner(key, message, kind = "error") {
  const area = document.getElementById("banner");
  let el = banners.get(key);
  if (!el) {
    el = h("div", { class: `banner banner-${kind}`, role: kind === "error" ? "alert" : "status" });
    banners.set(key, el);
    area.append(el);
  }
  el.className = `banner banner-${kind}`;
  clear(el).append(
    h("span", { class: "banner-icon", "aria-hidden": "true", text: kind === "error" ? "!" : "i" }),
    h("span", { class: "banner-text", text: message }),
    h("button", { type: "button", class: "banner-close", "aria-label": "Dismiss", text: "×", onclick: () => hideBanner(key) }),
  );
}

function hideBanner(key) {
  banners.get(key)?.remove();
  banners.delete(key);
}

function hideAllBanners() {
  for (const key of [...banners.keys()]) hideBanner(key);
}

// ---------------------------------------------------------------------------
// API client

class APIError extends Error {
  constructor(message, code) {
    super(message);
    this.name = "APIError";
    this.code = code || "";
  }
}

// The API token lives in localStorage: the sign-in form puts it there.
const TOKEN_KEY = "slipway.token";

function apiToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

function setAPIToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lasts until the page is reloaded.
  }
  renderAuthNav();
}

function apiErrorOf(errors) {
  const messages = [...new Set(errors.map((e) => e.message))];
  return new APIError(messages.join("; "), errors[0].extensions?.code);
}

/**
 * signInNeeded shows the sign-in form in place of the page and returns an
 * AbortError for the caller to throw: the page's requests and loops stop
 * the way they stop when the user leaves the page.
 */
function signInNeeded(message) {
  showSignIn(message);
  return new DOMException("an API token is needed", "AbortError");
}

/** gql runs a GraphQL operation and returns its data or throws an APIError with the server's message. */
async function gql(query, variables = {}, signal) {
  let res;
  try {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const token = apiToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    res = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables }),
      signal,
    });
  } catch (err) {
    if (isAbort(err)) throw err;
    throw new APIError("Cannot reach the Slipway server. Is it running?", "unreachable");
  }
  let body = null;
  try {
    body = await res.json();
  } catch (err) {
    if (isAbort(err)) throw err;
  }
  if (body?.errors?.length) {
    const err = apiErrorOf(body.errors);
    if (err.code === "unauthorized") throw signInNeeded(err.message);
    throw err;
  }
  if (!res.ok || !body?.data) {
    throw new APIError(`The server answered ${res.status} ${res.statusText || ""}`.trim(), "http");
  }
  return body.data;
}

const DEPLOYMENT_FIELDS = `id project ref commit trigger status image digest error failedStep durationMs createdAt startedAt finishedAt`;
const PROGRESS_FIELDS = `progress { phase step stepsTotal stage stages instruction cachedSteps }`;
// The Dockerfile steps a finished build ran, for the deployment page.
const STEP_FIELDS = `steps { n instruction cached inRegistry durationMs why }`;
// What the deployment page shows beyond a list row: the log's state and
// where the build is.
const DETAIL_FIELDS = `${DEPLOYMENT_FIELDS} logPruned logComplete logCompleteAt logLines ${PROGRESS_FIELDS}`;

const Q_PROJECTS = `query Projects {
  projects { name repo branch createdAt deployments(first: 1) { id status commit createdAt finishedAt } }
}`;

const Q_PROJECT = `query Project($name: String!) {
  project(name: $name) {
    name repo branch dockerfile context webhookURL createdAt
    appStatus { state url lastWakeAt lastWakeMs release { id commit } }
    deployments(first: 50) { ${DEPLOYMENT_FIELDS} ${PROGRESS_FIELDS} }
  }
}`;

const Q_DEPLOYMENT = `query Deployment($id: ID!, $from: Int, $first: Int) {
  deployment(id: $id) {
    ${DETAIL_FIELDS}
    timings { phase ms }
    ${STEP_FIELDS}
    logs(from: $from, first: $first) { n time stream step text }
  }
}`;

const M_DEPLOY = `mutation Deploy($input: DeployInput!) { deploy(input: $input) { ${DEPLOYMENT_FIELDS} } }`;

const M_ADD_PROJECT = `mutation AddProject($input: AddProjectInput!) {
  addProject(input: $input) { project { name } webhookURL webhookSecret }
}`;

const S_DEPLOYMENT = `subscription DeploymentUpdated($id: ID!) {
  deploymentUpdated(id: $id) { ${DETAIL_FIELDS} timings { phase ms } ${STEP_FIELDS} }
}`;

const S_LOGS = `subscription DeploymentLogLines($id: ID!, $from: Int) {
  deploymentLogLines(id: $id, fromLine: $from, max: 2000) { n time stream step text }
}`;

/**
 * followDeployment yields what is new about a deployment, as
 * { deployment, lines } batches: first its stored log from line `from` on,
 * then each new line as it arrives, until the deployment has ended and its
 * log is complete, or signal aborts. A failed poll yields { error } and is
 * retried.
 *
 * This is the one place the UI learns about a running deployment. It
 * subscribes to deploymentUpdated and deploymentLogLines (deploymentLogs in
 * batches) over one WebSocket
 * (graphql-transport-ws); if the WebSocket cannot be used, or breaks, it
 * polls deployment(id) { logs(from) } from the next line on instead.
 * document.documentElement.dataset.logTransport says which it uses.
 */
async function* followDeployment(id, from, signal) {
  let next = Math.max(from, 1);
  try {
    document.documentElement.dataset.logTransport = "websocket";
    for await (const ev of subscribeDeployment(id, next, signal)) {
      if (ev.lines.length) next = ev.lines[ev.lines.length - 1].n + 1;
      yield ev;
    }
    return;
  } catch (err) {
    if (isAbort(err) || err instanceof APIError) throw err;
    // The WebSocket failed (blocked by a proxy, server restarting): poll.
  }
  document.documentElement.dataset.logTransport = "polling";
  yield* pollDeployment(id, next, signal);
}

/** WSError means the WebSocket could not be used, or broke. */
class WSError extends Error {
  constructor(message) {
    super(message);
    this.name = "WSError";
  }
}

/**
 * subscribeDeployment runs the deploymentUpdated and deploymentLogs
 * subscriptions on one WebSocket and yields { deployment, lines } batches
 * (the latest deployment, and every line that came since the last batch)
 * until both complete. It throws an APIError for the server's errors and a
 * WSError when the socket fails.
 */
async function* subscribeDeployment(id, from, signal) {
  if (signal?.aborted) throw signal.reason;
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/graphql`;
  let ws;
  try {
    ws = new WebSocket(url, "graphql-transport-ws");
  } catch (err) {
    throw new WSError(String(err));
  }
  let deployment = null;
  let dirty = false; // deployment changed since the last batch
  let lines = [];
  const open = new Set(["d", "l"]);
  let failure = null;
  let wake = null;
  const poke = () => {
    wake?.();
    wake = null;
  };
  const fail = (err) => {
    failure ??= err;
    poke();
  };
  ws.onopen = () => {
    const token = apiToken();
    ws.send(JSON.stringify({ type: "connection_init", payload: token ? { Authorization: `Bearer ${token}` } : {} }));
  };
  ws.onmessage = (e) => {
    let m;
    try {
      m = JSON.parse(e.data);
    } catch {
      return fail(new WSError("the server sent something that is not JSON"));
    }
    switch (m.type) {
      case "connection_ack":
        ws.send(JSON.stringify({ id: "d", type: "subscribe", payload: { query: S_DEPLOYMENT, variables: { id } } }));
        ws.send(JSON.stringify({ id: "l", type: "subscribe", payload: { query: S_LOGS, variables: { id, from } } }));
        return;
      case "ping":
        ws.send(JSON.stringify({ type: "pong" }));
        return;
      case "next":
        if (m.payload?.errors?.length) return fail(apiErrorOf(m.payload.errors));
        if (m.id === "d") {
          deployment = m.payload.data.deploymentUpdated;
          dirty = true;
        } else if (m.id === "l") lines.push(...m.payload.data.deploymentLogLines);
        return poke();
      case "error":
        return fail(apiErrorOf(m.payload || [{ message: "the subscription failed" }]));
      case "complete":
        open.delete(m.id);
        return poke();
    }
  };
  ws.onclose = (e) => {
    if (e.code === 4403 || e.code === 4401) fail(new APIError("an API token is required", "unauthorized"));
    else if (open.size) fail(new WSError(`the WebSocket closed (${e.code})`));
  };
  const onAbort = () => fail(signal.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      if (failure) {
        if (failure instanceof APIError && failure.code === "unauthorized") throw signInNeeded(failure.message);
        if (failure.code === "not_found") throw new APIError(`There is no deployment ${id}.`, "not_found");
        throw failure;
      }
      if (deployment && (lines.length || dirty)) {
        const batch = lines;
        lines = [];
        dirty = false;
        yield { deployment, lines: batch };
        continue;
      }
      if (!open.size) return;
      await new Promise((resolve) => (wake = resolve));
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    ws.onclose = null;
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(1000);
  }
}

/** pollDeployment is followDeployment by polling deployment(id) { logs(from) }. */
async function* pollDeployment(id, from, signal) {
  let next = from;
  let quiet = 0; // polls without new lines since the deployment ended
  let failures = 0;
  for (;;) {
    let d;
    try {
      d = (await gql(Q_DEPLOYMENT, { id, from: next, first: LOG_PAGE }, signal)).deployment;
      failures = 0;
    } catch (err) {
      if (isAbort(err) || err.code !== "unreachable") throw err;
      yield { error: err };
      await sleep(Math.min(POLL_MS * 2 ** ++failures, 10000), signal);
      continue;
    }
    if (!d) throw new APIError(`There is no deployment ${id}.`, "not_found");
    const lines = d.logs;
    delete d.logs;
    if (lines.length) next = lines[lines.length - 1].n + 1;
    yield { deployment: d, lines };
    if (lines.length === LOG_PAGE) continue; // more is stored: read on at once
    if (TERMINAL.has(d.status)) {
      // The server records the end once the store has the whole log
      // (logComplete): nothing more will come.
      if (d.logPruned || (d.logComplete != null && next > d.logLines)) return;
      // Older servers: the log archiver can trail the result by a moment:
      // stop after a few quiet polls, or at once for a deployment that
      // ended a while ago.
      const endedLongAgo = d.finishedAt && Date.now() - new Date(d.finishedAt).getTime() > 15000;
      quiet = lines.length ? 0 : quiet + 1;
      if (endedLongAgo || quiet >= 3) return;
    }
    await sleep(POLL_MS, signal);
  }
}

// ---------------------------------------------------------------------------
// ANSI SGR colours

// The 16 basic colours are classes (themed in app.css); 256-colour and
// true-colour values become inline colours.
function xterm256(n) {
  if (n < 16) return { idx: n };
  if (n < 232) {
    const levels = [0, 95, 135, 175, 215, 255];
    n -= 16;
    return { rgb: rgb(levels[Math.floor(n / 36)], levels[Math.floor(n / 6) % 6], levels[n % 6]) };
  }
  const g = 8 + (n - 232) * 10;
  return { rgb: rgb(g, g, g) };
}

function rgb(r, g, b) {
  const c = (v) => Math.max(0, Math.min(255, v | 0)).toString(16).padStart(2, "0");
  return `#${c(r)}${c(g)}${c(b)}`;
}

// CSI sequences, OSC sequences (ended by BEL or ST) and other two-byte
// escapes; only CSI ... m (SGR) changes anything, the rest is dropped.
const ESCAPE_RE = /\x1b\[([0-9;:?<=>]*)[ -\/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -\/]*[0-~]?/g;
const CONTROL_RE = /[\x00-\x08\x0b-\x1f\x7f]/g;

/**
 * AnsiParser turns lines of terminal output into styled segments
 * { text, fg, bg, bold, dim, italic, underline, strike }, where fg and bg
 * are null (default), { idx: 0..15 } or { rgb: "#rrggbb" }. Like a
 * terminal, attributes carry over from one line to the next until reset;
 * keep one parser per output stream.
 */
class AnsiParser {
  constructor() {
    this.reset();
  }

  reset() {
    this.st = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false, strike: false };
  }

  parse(text) {
    // A carriage return rewinds the line: show the last part that has
    // visible text (a trailing \r, as in CRLF, leaves the line as it was),
    // but let every part's escapes change the state.
    let segs = [];
    for (const part of String(text).split("\r")) {
      const s = this.parsePart(part);
      if (s.length) segs = s;
    }
    return segs;
  }

  parsePart(text) {
    const segs = [];
    let last = 0;
    const emit = (t) => {
      t = t.replace(CONTROL_RE, "");
      if (!t) return;
      const st = this.st;
      let fg = st.fg;
      let bg = st.bg;
      if (st.inverse) [fg, bg] = [bg || { inv: "bg" }, fg || { inv: "fg" }];
      const seg = { text: t, fg, bg, bold: st.bold, dim: st.dim, italic: st.italic, underline: st.underline, strike: st.strike };
      const prev = segs[segs.length - 1];
      if (prev && sameStyle(prev, seg)) prev.text += t;
      else segs.push(seg);
    };
    ESCAPE_RE.lastIndex = 0;
    for (let m; (m = ESCAPE_RE.exec(text)); ) {
      emit(text.slice(last, m.index));
      last = ESCAPE_RE.lastIndex;
      if (m[2] === "m" && !/[?<=>]/.test(m[1] || "")) this.sgr(m[1] || "");
    }
    emit(text.slice(last));
    return segs;
  }

  sgr(params) {
    const ps = params === "" ? ["0"] : params.split(";");
    const st = this.st;
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i];
      if (p.includes(":")) {
        // ITU style: 38:5:n, 38:2:[colourspace:]r:g:b, 4:3 (curly underline)
        const sub = p.split(":").map((x) => (x === "" ? 0 : Number(x)));
        const which = sub[0];
        if (which === 38 || which === 48) {
          let c = null;
          if (sub[1] === 5) c = xterm256(sub[2] & 255);
          else if (sub[1] === 2 && sub.length >= 5) c = { rgb: rgb(...sub.slice(-3)) };
          if (c) st[which === 38 ? "fg" : "bg"] = c;
        } else if (which === 4) {
          st.underline = sub[1] !== 0;
        }
        continue;
      }
      const n = p === "" ? 0 : Number(p);
      if (n === 0) this.reset();
      else if (n === 1) st.bold = true;
      else if (n === 2) st.dim = true;
      else if (n === 3) st.italic = true;
      else if (n === 4 || n === 21) st.underline = true;
      else if (n === 7) st.inverse = true;
      else if (n === 9) st.strike = true;
      else if (n === 22) st.bold = st.dim = false;
      else if (n === 23) st.italic = false;
      else if (n === 24) st.underline = false;
      else if (n === 27) st.inverse = false;
      else if (n === 29) st.strike = false;
      else if (n >= 30 && n <= 37) st.fg = { idx: n - 30 };
      else if (n === 39) st.fg = null;
      else if (n >= 40 && n <= 47) st.bg = { idx: n - 40 };
      else if (n === 49) st.bg = null;
      else if (n >= 90 && n <= 97) st.fg = { idx: n - 90 + 8 };
      else if (n >= 100 && n <= 107) st.bg = { idx: n - 100 + 8 };
      else if (n === 38 || n === 48) {
        const key = n === 38 ? "fg" : "bg";
        if (ps[i + 1] === "5" && i + 2 < ps.length) {
          st[key] = xterm256(Number(ps[i + 2]) & 255);
          i += 2;
        } else if (ps[i + 1] === "2" && i + 4 < ps.length) {
          st[key] = { rgb: rgb(Number(ps[i + 2]), Number(ps[i + 3]), Number(ps[i + 4])) };
          i += 4;
        } else {
          break; // malformed: ignore the rest, as terminals do
        }
      }
    }
  }
}

function sameStyle(a, b) {
  const c = (x, y) => (x?.idx ?? x?.rgb ?? x?.inv) === (y?.idx ?? y?.rgb ?? y?.inv);
  return c(a.fg, b.fg) && c(a.bg, b.bg) && a.bold === b.bold && a.dim === b.dim && a.italic === b.italic && a.underline === b.underline && a.strike === b.strike;
}

/** stripAnsi returns a line's text as it reads, without escapes. */
function stripAnsi(text) {
  return new AnsiParser().parse(text).map((s) => s.text).join("");
}

/** segmentNode renders one styled segment, optionally with highlighted ranges [start, end) of its own text. */
function segmentNode(seg, text) {
  const cls = [];
  const style = {};
  const colour = (c, kind) => {
    if (!c) return;
    if (c.inv) cls.push(`ansi-${kind}-inv`);
    else if (c.idx != null) cls.push(`ansi-${kind}-${c.idx}`);
    else style[kind === "fg" ? "color" : "backgroundColor"] = c.rgb;
  };
  colour(seg.fg, "fg");
  colour(seg.bg, "bg");
  if (seg.bold) cls.push("ansi-bold");
  if (seg.dim) cls.push("ansi-dim");
  if (seg.italic) cls.push("ansi-italic");
  if (seg.underline) cls.push("ansi-underline");
  if (seg.strike) cls.push("ansi-strike");
  if (!cls.length && !Object.keys(style).length) return document.createTextNode(text);
  return h("span", { class: cls.join(" ") || null, style }, text);
}

/** renderSegments renders a line's segments, wrapping case-insensitive matches of query in <mark>. */
function renderSegments(segs, query) {
  const frag = document.createDocumentFragment();
  if (!query) {
    for (const s of segs) frag.append(segmentNode(s, s.text));
    return frag;
  }
  const plain = segs.map((s) => s.text).join("");
  const lower = plain.toLowerCase();
  const ranges = [];
  for (let i = lower.indexOf(query); i >= 0; i = lower.indexOf(query, i + query.length)) ranges.push([i, i + query.length]);
  let pos = 0;
  for (const s of segs) {
    const start = pos;
    const end = pos + s.text.length;
    pos = end;
    let cut = start;
    for (const [a, b] of ranges) {
      if (b <= start || a >= end) continue;
      const from = Math.max(a, start);
      const to = Math.min(b, end);
      if (from > cut) frag.append(segmentNode(s, plain.slice(cut, from)));
      const mark = h("mark", { class: "hit" });
      mark.append(segmentNode(s, plain.slice(from, to)));
      frag.append(mark);
      cut = to;
    }
    if (cut < end) frag.append(segmentNode(s, plain.slice(cut, end)));
  }
  return frag;
}

// ---------------------------------------------------------------------------
// Pages. Each page function fills `root` and stops its timers and requests
// when `signal` aborts (on navigation).

function pageHeader({ crumbs = [], title, badge, subtitle, actions }) {
  return h(
    "div",
    { class: "page-header" },
    crumbs.length
      ? h(
          "nav",
          { class: "crumbs", "aria-label": "Breadcrumb" },
          crumbs.map((c, i) => [i ? h("span", { class: "crumb-sep", "aria-hidden": "true", text: "/" }) : null, c.href ? h("a", { href: c.href, text: c.text }) : h("span", { text: c.text })]),
        )
      : null,
    h(
      "div",
      { class: "page-title-row" },
      h("div", { class: "page-title-block" }, h("h1", { class: "page-title" }, title, badge || null), subtitle ? h("div", { class: "page-subtitle" }, subtitle) : null),
      actions ? h("div", { class: "page-actions" }, actions) : null,
    ),
  );
}

function emptyState(title, text, ...extra) {
  return h("div", { class: "empty" }, h("div", { class: "empty-art", "aria-hidden": "true" }), h("h2", { text: title }), text ? h("p", {}, text) : null, extra);
}

function skeleton(lines = 3) {
  return h("div", { class: "card skeleton" }, Array.from({ length: lines }, () => h("div", { class: "skeleton-line" })));
}

/** poll calls load now and then every ms while the page is shown, skipping while the tab is hidden. */
async function poll(ms, signal, load) {
  for (;;) {
    if (!document.hidden) {
      try {
        await load();
      } catch (err) {
        if (isAbort(err)) return;
        showBanner("load", err.message);
      }
    }
    try {
      await sleep(ms, signal);
    } catch {
      return;
    }
  }
}

// --- Project list -----------------------------------------------------------

function projectsPage(root, _params, signal) {
  document.title = "Projects · Slipway";
  const list = h("div", { class: "project-list" }, skeleton(4));
  const formSlot = h("div", {});
  const addButton = h("button", { type: "button", class: "btn btn-primary", id: "add-project", text: "Add project" });
  addButton.addEventListener("click", () => openForm());
  root.append(pageHeader({ title: "Projects", subtitle: "Every repository Slipway builds, with its latest deployment.", actions: addButton }), formSlot, list);

  function openForm() {
    if (formSlot.firstChild) {
      formSlot.querySelector("input")?.focus();
      return;
    }
    formSlot.append(
      addProjectForm({
        onCancel: () => clear(formSlot),
        onAdded: () => refresh(),
      }),
    );
    formSlot.querySelector("input")?.focus();
  }

  let lastJSON = "";
  async function refresh() {
    const data = await gql(Q_PROJECTS, {}, signal);
    hideBanner("load");
    const json = JSON.stringify(data.projects);
    if (json === lastJSON) return;
    lastJSON = json;
    clear(list);
    if (!data.projects.length) {
      list.append(
        emptyState(
          "No projects yet",
          "Add a repository and Slipway builds every push to its branch into an image, on the project's own builder.",
          h("div", { class: "empty-actions" }, h("button", { type: "button", class: "btn btn-primary", text: "Add your first project", onclick: openForm })),
          h("p", { class: "muted small" }, "Or from a terminal: ", h("code", { text: "slipway project add NAME --repo URL" })),
        ),
      );
      return;
    }
    list.append(h("div", { class: "card table-card" }, projectsTable(data.projects)));
  }
  poll(LIST_POLL_MS * 2, signal, refresh);
}

function projectsTable(projects) {
  return h(
    "table",
    { class: "table projects-table" },
    h("thead", {}, h("tr", {}, h("th", { text: "Project" }), h("th", { text: "Repository" }), h("th", { text: "Branch" }), h("th", { text: "Last deployment" }), h("th", { class: "num", text: "When" }))),
    h(
      "tbody",
      {},
      projects.map((p) => {
        const d = p.deployments[0];
        const href = `/projects/${encodeURIComponent(p.name)}`;
        return h(
          "tr",
          { class: "row-link", dataset: { href, project: p.name } },
          h("td", {}, h("a", { class: "strong", href, text: p.name })),
          h("td", {}, h("span", { class: "mono truncate", title: p.repo, text: p.repo })),
          h("td", {}, h("span", { class: "chip mono", text: p.branch })),
          h("td", {}, d ? [statusBadge(d.status), " ", h("span", { class: "mono muted", text: shortSHA(d.commit) })] : h("span", { class: "muted", text: "Never deployed" })),
          h("td", { class: "num muted" }, d ? ago(d.createdAt) : null),
        );
      }),
    ),
  );
}

function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label", text: label }), input, hint ? h("span", { class: "field-hint", text: hint }) : null);
}

function addProjectForm({ onCancel, onAdded }) {
  const name = h("input", { name: "name", required: true, autocomplete: "off", spellcheck: "false", placeholder: "my-app", pattern: "[a-z0-9]([a-z0-9\\-]{0,61}[a-z0-9])?", maxlength: 63 });
  const repo = h("input", { name: "repo", required: true, autocomplete: "off", spellcheck: "false", placeholder: "https://github.com/owner/repo.git" });
  const branch = h("input", { name: "branch", autocomplete: "off", spellcheck: "false", placeholder: "main" });
  const dockerfile = h("input", { name: "dockerfile", autocomplete: "off", spellcheck: "false", placeholder: "Dockerfile" });
  const context = h("input", { name: "context", autocomplete: "off", spellcheck: "false", placeholder: "." });
  const secret = h("input", { name: "webhookSecret", autocomplete: "off", spellcheck: "false", placeholder: "generated for you" });
  const error = h("div", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "btn btn-primary", text: "Add project" });
  const card = h("div", { class: "card form-card", id: "add-project-card" });
  const form = h(
    "form",
    { class: "form", novalidate: false },
    h("div", { class: "card-head" }, h("h2", { class: "card-title", text: "Add a project" }), h("p", { class: "muted", text: "A repository and the branch whose pushes Slipway builds." })),
    h("div", { class: "form-grid" }, field("Name", name, "Lowercase letters, digits and dashes."), field("Repository URL", repo, "Any git URL the builder can fetch: https://, ssh://, git@host:path or file://."), field("Branch", branch, "Only pushes to this branch deploy.")),
    h("details", { class: "advanced" }, h("summary", { text: "Build settings and webhook secret" }), h("div", { class: "form-grid" }, field("Dockerfile", dockerfile, "Path in the repository."), field("Build context", context, "Directory in the repository."), field("Webhook secret", secret, "Leave empty to generate one."))),
    error,
    h("div", { class: "form-actions" }, h("button", { type: "button", class: "btn", text: "Cancel", onclick: onCancel }), submit),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    submit.textContent = "Adding…";
    const opt = (el) => el.value.trim() || null;
    try {
      const input = { name: name.value.trim(), repo: repo.value.trim(), branch: opt(branch), dockerfile: opt(dockerfile), context: opt(context), webhookSecret: opt(secret) };
      const res = (await gql(M_ADD_PROJECT, { input })).addProject;
      clear(card).append(projectAdded(res, onCancel));
      onAdded();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      submit.disabled = false;
      submit.textContent = "Add project";
    }
  });
  card.append(form);
  return card;
}

function projectAdded(res, onClose) {
  const name = res.project.name;
  const secretRow = (label, value, id) => h("div", { class: "secret-row" }, h("div", { class: "secret-label", text: label }), h("code", { class: "secret-value", id, text: value }), copyButton(value));
  return h(
    "div",
    { class: "project-added", id: "project-added" },
    h("div", { class: "card-head" }, h("h2", { class: "card-title" }, h("span", { class: "check", "aria-hidden": "true", text: "✓" }), ` Project ${name} added`), h("p", { class: "muted", text: "Add a webhook in the repository's settings (GitHub, Gitea or Forgejo) so every push deploys:" })),
    secretRow("Payload URL", res.webhookURL, "webhook-url"),
    secretRow("Secret", res.webhookSecret, "webhook-secret"),
    secretRow("Content type", "application/json", "webhook-content-type"),
    h("p", { class: "note warn" }, h("strong", { text: "Copy the secret now: " }), "it is not shown again."),
    h("div", { class: "form-actions" }, h("button", { type: "button", class: "btn", text: "Done", onclick: onClose }), h("a", { class: "btn btn-primary", href: `/projects/${encodeURIComponent(name)}`, text: "Open project" })),
  );
}

// --- One project ------------------------------------------------------------

function projectPage(root, { name }, signal) {
  document.title = `${name} · Slipway`;
  const head = h("div", {}, pageHeader({ crumbs: [{ text: "Projects", href: "/" }, { text: name }], title: name }));
  const body = h("div", {}, skeleton(5));
  root.append(head, body);

  let lastJSON = "";
  let project = null;
  async function refresh() {
    const data = await gql(Q_PROJECT, { name }, signal);
    hideBanner("load");
    if (!data.project) {
      clear(head);
      clear(body).append(emptyState(`No project named ${name}`, "It may have been removed, or the link is mistyped.", h("div", { class: "empty-actions" }, h("a", { class: "btn", href: "/", text: "All projects" }))));
      return;
    }
    const json = JSON.stringify(data.project);
    if (json === lastJSON) return;
    lastJSON = json;
    const first = !project;
    project = data.project;
    if (first) {
      clear(head).append(projectHeader(project, signal));
    }
    clear(body).append(projectInfo(project), appCard(project), deploymentsSection(project));
  }
  poll(LIST_POLL_MS, signal, refresh);
}

function projectHeader(p, signal) {
  const refInput = h("input", { class: "input-ref mono", id: "deploy-ref", placeholder: p.branch, "aria-label": "Branch, ref or commit to deploy", spellcheck: "false", autocomplete: "off" });
  const button = h("button", { type: "submit", class: "btn btn-primary", id: "deploy-button" }, h("span", { class: "btn-icon", "aria-hidden": "true", text: "▶" }), "Deploy");
  const form = h("form", { class: "deploy-form", title: `Deploy the head of ${p.branch}, or another ref or commit` }, refInput, button);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    button.disabled = true;
    const v = refInput.value.trim();
    const input = { project: p.name };
    if (/^[0-9a-f]{40}$/.test(v)) input.commit = v;
    else if (v) input.ref = v;
    try {
      const d = (await gql(M_DEPLOY, { input }, signal)).deploy;
      navigate(`/deployments/${encodeURIComponent(d.id)}`);
    } catch (err) {
      if (isAbort(err)) return;
      showBanner("deploy", `Could not deploy ${p.name}: ${err.message}`);
      button.disabled = false;
    }
  });
  return pageHeader({
    crumbs: [{ text: "Projects", href: "/" }, { text: p.name }],
    title: p.name,
    subtitle: h("span", { class: "mono", text: p.repo }),
    actions: form,
  });
}

function projectInfo(p) {
  const item = (label, ...value) => h("div", { class: "kv" }, h("div", { class: "kv-label", text: label }), h("div", { class: "kv-value" }, value));
  return h(
    "div",
    { class: "card info-grid" },
    item("Branch", h("span", { class: "chip mono", text: p.branch })),
    item("Dockerfile", h("span", { class: "mono", text: p.context === "." ? p.dockerfile : `${p.dockerfile} (context ${p.context})` })),
    item("Webhook", h("span", { class: "mono truncate", title: p.webhookURL, text: p.webhookURL }), copyButton(p.webhookURL)),
    item("Added", ago(p.createdAt)),
  );
}

const APP_STATE_LABEL = { serving: "Serving", frozen: "Frozen", stopped: "Stopped", failed: "Failed", none: "Not deployed" };

/** appCard is the project's app: its URL, state, current release, last wake and a link to its output. */
function appCard(p) {
  const a = p.appStatus;
  const item = (label, ...value) => h("div", { class: "kv" }, h("div", { class: "kv-label", text: label }), h("div", { class: "kv-value" }, value));
  const url = a.url
    ? [h("a", { class: "mono truncate", id: "app-url", href: a.url, target: "_blank", rel: "noopener", title: a.url, text: a.url }), copyButton(a.url)]
    : h("span", { class: "muted", id: "app-url", text: "The server serves no apps" });
  const release = a.release
    ? h("a", { class: "mono", id: "app-release", href: `/deployments/${encodeURIComponent(a.release.id)}`, title: a.release.id, text: shortSHA(a.release.commit) })
    : h("span", { class: "muted", id: "app-release", text: "—" });
  const wake = a.lastWakeAt
    ? h("span", { id: "app-last-wake" }, ago(a.lastWakeAt), ` · took ${a.lastWakeMs < 10 ? `${a.lastWakeMs.toFixed(1)} ms` : fmtDuration(a.lastWakeMs)}`)
    : h("span", { class: "muted", id: "app-last-wake", text: "Not since the server started" });
  return h(
    "section",
    { class: "section", id: "app" },
    h(
      "div",
      { class: "section-head" },
      h("h2", { class: "section-title", text: "App" }),
      h("a", { class: "btn btn-small", id: "app-logs-link", href: `/projects/${encodeURIComponent(p.name)}/logs`, text: "App logs" }),
    ),
    h(
      "div",
      { class: "card info-grid app-grid" },
      item("State", h("span", { class: `badge app-state app-${a.state}`, id: "app-state", dataset: { state: a.state } }, h("span", { class: "badge-dot", "aria-hidden": "true" }), APP_STATE_LABEL[a.state] || a.state)),
      item("URL", url),
      item("Release", release),
      item("Last wake", wake),
    ),
  );
}

const Q_APP_LOGS = `query AppLogs($p: String!, $after: Int, $tail: Int) {
  project(name: $p) { name appStatus { state url release { id commit } } }
  appLogs(project: $p, after: $after, tail: $tail) { n release time stream text }
}`;

const Q_APP_STATE = `query AppState($p: String!) { project(name: $p) { appStatus { state url } } }`;

const S_APP_LOGS = `subscription AppLogs($p: String!, $after: Int) { appLogs(project: $p, after: $after) { n release time stream text } }`;

/** appLogsPage shows a project's app output: its last lines, then new ones live, in the build log's view. */
function appLogsPage(root, { name }, signal) {
  document.title = `${name} app logs · Slipway`;
  const crumbs = [{ text: "Projects", href: "/" }, { text: name, href: `/projects/${encodeURIComponent(name)}` }, { text: "App logs" }];
  const head = h("div", {}, pageHeader({ crumbs, title: "App logs" }));
  const log = new LogView({ title: "App output", id: "app-log", empty: "The app wrote nothing yet." });
  root.append(head, log.el);
  signal.addEventListener("abort", () => log.done());
  // A line's step marker names its release: where one release's output ends and the next begins.
  const show = (lines) => log.append(lines.map((l) => ({ ...l, step: `release ${l.release}` })));
  (async () => {
    try {
      const data = await gql(Q_APP_LOGS, { p: name, tail: 1000 }, signal);
      if (!data.project) {
        clear(root).append(emptyState(`No project named ${name}`, "It may have been removed, or the link is mistyped."));
        return;
      }
      let shown = "";
      const renderHead = (a) => {
        if (`${a.state} ${a.url}` === shown) return;
        shown = `${a.state} ${a.url}`;
        clear(head).append(
          pageHeader({
            crumbs,
            title: `${name} app logs`,
            badge: h("span", { class: `badge app-state app-${a.state}`, id: "app-state", dataset: { state: a.state } }, h("span", { class: "badge-dot", "aria-hidden": "true" }), APP_STATE_LABEL[a.state] || a.state),
            subtitle: a.url ? h("a", { class: "mono", href: a.url, target: "_blank", rel: "noopener", text: a.url }) : null,
          }),
        );
      };
      renderHead(data.project.appStatus);
      // The state changes while the page is open (a request wakes the app, idle freezes it).
      poll(LIST_POLL_MS, signal, async () => {
        const p = (await gql(Q_APP_STATE, { p: name }, signal)).project;
        if (p) renderHead(p.appStatus);
      });
      show(data.appLogs);
      let after = data.appLogs.length ? data.appLogs[data.appLogs.length - 1].n : 0;
      log.setLive(true);
      for await (const lines of followAppLogs(name, after, signal)) {
        if (lines.length) after = lines[lines.length - 1].n;
        show(lines);
      }
    } catch (err) {
      if (isAbort(err)) return;
      showBanner("follow", err.message);
      log.setLive(false, "Stopped: " + err.message);
    }
  })();
}

/**
 * followAppLogs yields batches of a project's new app lines (numbered above
 * after) through the appLogs subscription; if the WebSocket cannot be used
 * it polls appLogs(after) instead.
 */
async function* followAppLogs(project, after, signal) {
  try {
    for await (const lines of subscribeOne(S_APP_LOGS, { p: project, after }, "appLogs", signal)) {
      if (lines.length) after = lines[lines.length - 1].n;
      yield lines;
    }
    return;
  } catch (err) {
    if (isAbort(err) || err instanceof APIError) throw err;
  }
  for (;;) {
    await sleep(POLL_MS, signal);
    const lines = (await gql(Q_APP_LOGS, { p: project, after, tail: LOG_PAGE }, signal)).appLogs;
    if (lines.length) after = lines[lines.length - 1].n;
    yield lines;
  }
}

/** subscribeOne runs one subscription on a WebSocket of its own and yields the field of each event. */
async function* subscribeOne(query, variables, field, signal) {
  if (signal?.aborted) throw signal.reason;
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/graphql`;
  const ws = new WebSocket(url, "graphql-transport-ws");
  const queue = [];
  let failure = null;
  let done = false;
  let wake = null;
  const poke = () => {
    wake?.();
    wake = null;
  };
  ws.onopen = () => {
    const token = apiToken();
    ws.send(JSON.stringify({ type: "connection_init", payload: token ? { Authorization: `Bearer ${token}` } : {} }));
  };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "connection_ack") ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
    else if (m.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
    else if (m.type === "next" && m.payload?.errors?.length) failure ??= apiErrorOf(m.payload.errors);
    else if (m.type === "next") queue.push(m.payload.data[field]);
    else if (m.type === "error") failure ??= apiErrorOf(m.payload || [{ message: "the subscription failed" }]);
    else if (m.type === "complete") done = true;
    poke();
  };
  ws.onclose = (e) => {
    if (e.code === 4403 || e.code === 4401) failure ??= new APIError("an API token is required", "unauthorized");
    else if (!done) failure ??= new WSError(`the WebSocket closed (${e.code})`);
    poke();
  };
  const onAbort = () => {
    failure ??= signal.reason;
    poke();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      if (queue.length) {
        yield queue.shift();
        continue;
      }
      if (failure) {
        if (failure instanceof APIError && failure.code === "unauthorized") throw signInNeeded(failure.message);
        throw failure;
      }
      if (done) return;
      await new Promise((resolve) => (wake = resolve));
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    ws.onclose = null;
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(1000);
  }
}

function deploymentsSection(p) {
  const ds = p.deployments;
  const section = h("section", { class: "section" }, h("div", { class: "section-head" }, h("h2", { class: "section-title", text: "Deployments" }), ds.length ? h("span", { class: "muted", text: ds.length === 1 ? "1 deployment" : `${ds.length} most recent` }) : null));
  if (!ds.length) {
    section.append(
      emptyState(`No deployments yet — push to ${p.branch} or click Deploy`, "Each push to the branch is built on this project's own builder, and its log shows here live."),
    );
    return section;
  }
  section.append(h("div", { class: "card table-card" }, deploymentsTable(ds)));
  return section;
}

function deploymentsTable(ds) {
  return h(
    "table",
    { class: "table deployments-table" },
    h(
      "thead",
      {},
      h("tr", {}, h("th", { text: "Status" }), h("th", { text: "Commit" }), h("th", { text: "Trigger" }), h("th", { text: "Image" }), h("th", { class: "num", text: "Duration" }), h("th", { class: "num", text: "Started" })),
    ),
    h(
      "tbody",
      {},
      ds.map((d) => {
        const href = `/deployments/${encodeURIComponent(d.id)}`;
        const dur = deploymentDuration(d);
        return h(
          "tr",
          { class: `row-link row-${d.status.toLowerCase()}`, dataset: { href, deployment: d.id } },
          h("td", {}, h("a", { href, class: "row-anchor", "aria-label": `Deployment ${d.id}` }, statusBadge(d.status)), progressShort(d) ? h("div", { class: "row-progress small", text: progressShort(d) }) : null),
          h(
            "td",
            {},
            h("div", {}, h("span", { class: "mono strong", title: d.commit, text: shortSHA(d.commit) }), " ", h("span", { class: "chip mono", title: d.ref, text: shortRef(d.ref) })),
            d.status === "FAILED" && (d.failedStep || d.error) ? h("div", { class: "failed-step", title: d.error || "" }, h("span", { class: "failed-step-label", text: "Failed at " }), h("span", { class: "mono", text: d.failedStep || "unknown step" })) : null,
          ),
          h("td", {}, h("span", { class: `trigger trigger-${d.trigger}`, text: triggerLabel(d.trigger) })),
          h("td", { class: "mono small" }, d.digest ? h("span", { title: `${d.image}@${d.digest}`, text: shortDigest(d.digest) }) : h("span", { class: "muted", text: "—" })),
          h("td", { class: "num mono small", dataset: TERMINAL.has(d.status) ? {} : { since: d.createdAt } }, fmtDuration(dur)),
          h("td", { class: "num muted" }, ago(d.createdAt)),
        );
      }),
    ),
  );
}

// --- Build progress ---------------------------------------------------------

const PHASE_LABEL = {
  queue: "Queued",
  wake: "Waking the builder",
  fetch: "Fetching the source",
  build: "Building",
  push: "Pushing the image",
  done: "Finishing",
};

/** stepText is "Step 3 of 5" (with the stage of a multi-stage build), or "". */
function stepText(p) {
  if (!p?.stepsTotal) return "";
  const stage = p.stages ? `Stage ${p.stage} of ${p.stages} · ` : "";
  return `${stage}Step ${p.step} of ${p.stepsTotal}`;
}

/** progressShort is a running deployment's progress in a few words, for lists. */
function progressShort(d) {
  const p = d.progress;
  if (!p || TERMINAL.has(d.status)) return "";
  const phase = PHASE_LABEL[p.phase] || p.phase;
  if (p.phase === "build" && p.stepsTotal) return `${phase} · ${p.stages ? `[${p.stage}/${p.stages}] ` : ""}${p.step}/${p.stepsTotal}`;
  return phase;
}

/**
 * progressCard shows where a running deployment is: the phases as a
 * stepper, and during the build the Dockerfile step podman is on, how far
 * through the steps it is and how many the layer cache served.
 */
function progressCard(d) {
  const p = d.progress || { phase: d.status === "QUEUED" ? "queue" : "wake", step: 0, stepsTotal: 0, cachedSteps: 0 };
  const at = PHASES.indexOf(p.phase);
  const stepper = h(
    "ol",
    { class: "stepper" },
    PHASES.map((phase, i) => {
      const state = at < 0 || i < at ? "done" : i === at ? "now" : "next";
      return h("li", { class: `stepper-item stepper-${state}`, dataset: { phase, state } }, h("span", { class: "stepper-dot", "aria-hidden": "true" }), h("span", { class: "stepper-label", text: phase }));
    }),
  );
  const detail = [];
  if (p.stepsTotal) {
    const pct = Math.min(100, Math.round((100 * p.step) / p.stepsTotal));
    detail.push(
      h(
        "div",
        { class: "progress-steps" },
        h("span", { class: "progress-step strong", id: "progress-step", text: stepText(p) }),
        p.cachedSteps ? h("span", { class: "chip chip-cached", id: "progress-cached", text: `${p.cachedSteps} cached` }) : null,
      ),
      h("div", { class: "progress-track", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(p.stepsTotal), "aria-valuenow": String(p.step) }, h("div", { class: "progress-fill", style: { width: `${pct}%` } })),
      p.instruction ? h("div", { class: "progress-instruction mono truncate", title: p.instruction, text: p.instruction }) : null,
    );
  } else {
    detail.push(h("div", { class: "progress-steps muted", text: p.phase === "build" ? "Starting the build…" : at < PHASES.indexOf("build") ? "The build steps show here once podman starts." : "" }));
  }
  return h(
    "div",
    { class: "card progress-card", id: "progress", dataset: { phase: p.phase, step: String(p.step), stepsTotal: String(p.stepsTotal), cachedSteps: String(p.cachedSteps) } },
    h("div", { class: "card-head" }, h("h2", { class: "card-title" }, h("span", { class: "live-dot", "aria-hidden": "true" }), h("span", { id: "progress-phase", text: PHASE_LABEL[p.phase] || p.phase }))),
    stepper,
    detail,
  );
}

/** logSummary says what is known of a deployment's stored log. */
function logSummary(d) {
  if (d.logPruned) return h("span", { class: "chip chip-warn", text: "Pruned by retention" });
  if (!TERMINAL.has(d.status)) return h("span", { class: "muted", text: "Streaming…" });
  if (d.logComplete === true) return h("span", {}, "Complete", h("span", { class: "muted", text: ` · ${d.logLines} ${d.logLines === 1 ? "line" : "lines"}` }));
  if (d.logComplete === false) return h("span", { class: "chip chip-warn", title: "Not every line reached the server before the deployment ended", text: "Incomplete" });
  return h("span", { class: "muted", text: "—" });
}

// --- One deployment ---------------------------------------------------------

function deploymentPage(root, { id }, signal) {
  document.title = `Deployment ${id} · Slipway`;
  const head = h("div", {}, pageHeader({ crumbs: [{ text: "Projects", href: "/" }, { text: "…" }, { text: id }], title: "Deployment" }));
  const failure = h("div", {});
  const progress = h("div", {});
  const summary = h("div", { class: "card summary" }, skeleton(4));
  const timings = h("div", { class: "card timings", id: "timings" }, h("div", { class: "card-head" }, h("h2", { class: "card-title", text: "Phase timings" })));
  const steps = h("div", {});
  const log = new LogView();
  root.append(head, failure, progress, h("div", { class: "deploy-grid" }, summary, timings), steps, log.el);

  let current = null;
  const render = (d) => {
    const changed = JSON.stringify(d) !== JSON.stringify(current);
    current = d;
    if (!changed) return;
    document.title = `${STATUS_LABEL[d.status]} · ${d.project} ${shortSHA(d.commit)} · Slipway`;
    clear(head).append(
      pageHeader({
        crumbs: [{ text: "Projects", href: "/" }, { text: d.project, href: `/projects/${encodeURIComponent(d.project)}` }, { text: shortSHA(d.commit) }],
        title: [h("span", { class: "mono", text: shortSHA(d.commit) }), " ", h("span", { class: "title-ref", title: d.ref, text: `on ${shortRef(d.ref)}` })],
        badge: statusBadge(d.status, { id: "deployment-status" }),
        subtitle: [h("span", { class: "mono", text: d.id }), " · ", `${triggerLabel(d.trigger)} deployment`, " · ", ago(d.createdAt)],
      }),
    );
    clear(failure);
    if (d.status === "FAILED") failure.append(failureCard(d, () => log.jumpToFailure()));
    clear(progress);
    if (!TERMINAL.has(d.status)) progress.append(progressCard(d));
    append(clear(summary), summaryCard(d));
    renderTimings(timings, d, log.lastStep);
    clear(steps);
    if (d.steps?.length) steps.append(stepsCard(d.steps));
    shownStep = log.lastStep;
    log.setDeployment(d);
  };
  let shownStep;

  // Keep the running duration ticking between polls.
  const ticker = setInterval(() => {
    if (current && !TERMINAL.has(current.status)) {
      const el = summary.querySelector("[data-live-duration]");
      if (el) el.textContent = fmtDuration(deploymentDuration(current));
    }
  }, 1000);
  signal.addEventListener("abort", () => clearInterval(ticker));

  (async () => {
    let openedFailed; // opened on a deployment that had already failed
    try {
      for await (const ev of followDeployment(id, 0, signal)) {
        if (ev.error) {
          showBanner("follow", `${ev.error.message} Retrying…`);
          log.setLive(false, "Reconnecting…");
          continue;
        }
        hideBanner("follow");
        if (openedFailed === undefined) {
          openedFailed = ev.deployment.status === "FAILED";
          // A finished log opens at its top; a running one follows.
          if (TERMINAL.has(ev.deployment.status)) log.setFollow(false, false);
        }
        render(ev.deployment);
        log.append(ev.lines);
        if (log.lastStep !== shownStep && !TERMINAL.has(current.status)) {
          renderTimings(timings, current, log.lastStep);
          shownStep = log.lastStep;
        }
        log.setLive(!TERMINAL.has(ev.deployment.status));
      }
      log.setLive(false);
      log.done();
      // Someone opening a failed deployment came to see why: show the
      // failing step rather than the end of the log.
      if (openedFailed) log.jumpToFailure({ scrollPage: false });
    } catch (err) {
      if (isAbort(err)) return;
      if (err.code === "not_found") {
        clear(root).append(emptyState(`No deployment ${id}`, "The link may be mistyped, or the deployment was removed.", h("div", { class: "empty-actions" }, h("a", { class: "btn", href: "/", text: "All projects" }))));
        return;
      }
      showBanner("follow", err.message);
      log.setLive(false, "Stopped: " + err.message);
    }
  })();
}

function failureCard(d, jump) {
  return h(
    "div",
    { class: "card failure", id: "failure" },
    h(
      "div",
      { class: "failure-head" },
      h("div", {}, h("div", { class: "failure-title", text: "Build failed" }), d.failedStep ? h("div", { class: "failure-step" }, "at ", h("code", { text: d.failedStep })) : null),
      h("button", { type: "button", class: "btn btn-danger", id: "jump-to-failure-top", text: "Jump to failing step", onclick: jump }),
    ),
    d.error ? h("pre", { class: "failure-error" }, renderSegments(new AnsiParser().parse(d.error), "")) : null,
  );
}

function summaryCard(d) {
  const item = (label, cls, ...value) => h("div", { class: `kv ${cls}` }, h("div", { class: "kv-label", text: label }), h("div", { class: "kv-value" }, value));
  return [
    item("Commit", "span2", h("span", { class: "mono truncate", title: d.commit, text: d.commit }), copyButton(d.commit)),
    item("Ref", "", h("span", { class: "chip mono", title: d.ref, text: shortRef(d.ref) })),
    item("Duration", "", h("span", { class: "mono", dataset: TERMINAL.has(d.status) ? {} : { liveDuration: "" }, text: fmtDuration(deploymentDuration(d)) })),
    item("Image", "span2", d.image ? [h("span", { class: "mono truncate", id: "image", title: d.image, text: d.image }), copyButton(d.image)] : h("span", { class: "muted", text: TERMINAL.has(d.status) ? "Not pushed" : "Not pushed yet" })),
    item("Digest", "span2", d.digest ? [h("span", { class: "mono", id: "digest", title: d.digest, text: shortDigest(d.digest) }), copyButton(d.digest)] : h("span", { class: "muted", text: TERMINAL.has(d.status) ? "—" : "After the push" })),
    item("Trigger", "", triggerLabel(d.trigger)),
    item("Started", "", ago(d.startedAt || d.createdAt)),
    item("Finished", "", d.finishedAt ? ago(d.finishedAt) : h("span", { class: "muted", text: TERMINAL.has(d.status) ? "—" : "Running…" })),
    item("Log", "", h("span", { id: "log-summary" }, logSummary(d))),
  ];
}

/**
 * renderTimings draws the phase timings as a waterfall once the deployment
 * has them; while it runs, it shows which phase it is in (from its status
 * and the step of its latest log line).
 */
function renderTimings(card, d, logStep) {
  const byPhase = new Map(d.timings.map((t) => [t.phase, t.ms]));
  const running = !TERMINAL.has(d.status) && !d.timings.length;
  const head = h(
    "div",
    { class: "card-head" },
    h("h2", { class: "card-title", text: "Phase timings" }),
    byPhase.has("total") ? h("span", { class: "muted mono", text: fmtDuration(byPhase.get("total")) }) : running ? h("span", { class: "muted small", text: "In progress" }) : null,
  );
  clear(card).append(head);
  if (running) {
    let now = "wake";
    if (d.status === "QUEUED") now = "queue";
    else if (PHASES.includes(d.progress?.phase)) now = d.progress.phase;
    else if (PHASES.includes(logStep)) now = logStep;
    else if (logStep) now = "build"; // a Dockerfile step
    const at = PHASES.indexOf(now);
    card.append(
      h(
        "div",
        { class: "bars", role: "list" },
        PHASES.map((phase, i) => {
          const state = i < at ? "done" : i === at ? "now" : "next";
          return h(
            "div",
            { class: `bar-row progress-${state}`, role: "listitem", dataset: { phase, state } },
            h("div", { class: "bar-label", text: phase }),
            h("div", { class: "bar-track" }, state === "next" ? null : h("div", { class: `bar bar-${phase}` })),
            h("div", { class: "bar-value small", text: state === "done" ? "done" : state === "now" ? "running…" : "" }),
          );
        }),
      ),
    );
    return;
  }
  const phases = [...PHASES.filter((p) => byPhase.has(p)), ...d.timings.map((t) => t.phase).filter((p) => p !== "total" && !PHASES.includes(p))];
  if (!phases.length) {
    card.append(h("div", { class: "timings-empty muted", text: "No timings were recorded." }));
    return;
  }
  // A waterfall: the phases run one after another, so each bar starts where
  // the ones before it ended; the scale is the total (or their sum).
  const sum = phases.reduce((a, p) => a + byPhase.get(p), 0);
  const scale = Math.max(byPhase.get("total") || 0, sum, 1);
  const rows = h("div", { class: "bars", role: "list" });
  let offset = 0;
  const row = (phase, start, ms, cls) =>
    h(
      "div",
      { class: `bar-row ${cls || ""}`, role: "listitem", dataset: { phase, ms: String(ms) } },
      h("div", { class: "bar-label", text: phase }),
      h("div", { class: "bar-track" }, h("div", { class: `bar bar-${PHASES.includes(phase) || phase === "total" ? phase : "other"}`, style: { left: `${(100 * start) / scale}%`, width: `max(2px, ${(100 * ms) / scale}%)` } })),
      h("div", { class: "bar-value mono", text: fmtDuration(ms) }),
    );
  for (const p of phases) {
    rows.append(row(p, offset, byPhase.get(p)));
    offset += byPhase.get(p);
  }
  if (byPhase.has("total")) rows.append(row("total", 0, byPhase.get("total"), "bar-row-total"));
  card.append(rows);
}

/**
 * stepsCard lists the Dockerfile steps a finished build ran: each one's
 * duration (a bar on the scale of the slowest) and whether the layer cache
 * served it or it was applied to the image's config in the registry; a step
 * that cannot be reused from earlier builds says why in its tooltip.
 */
function stepsCard(steps) {
  const slowest = Math.max(1, ...steps.map((s) => s.durationMs));
  const cached = steps.filter((s) => s.cached).length;
  const inRegistry = steps.filter((s) => s.inRegistry).length;
  const summary = [`${steps.length} steps`, cached ? `${cached} cached` : "", inRegistry ? `${inRegistry} applied in the registry` : ""].filter(Boolean).join(" · ");
  return h(
    "div",
    { class: "card steps", id: "steps" },
    h("div", { class: "card-head" }, h("h2", { class: "card-title", text: "Build steps" }), h("span", { class: "muted small", text: summary })),
    h(
      "ol",
      { class: "step-list" },
      steps.map((s) => {
        const how = s.inRegistry ? "registry" : s.cached ? "cached" : "built";
        return h(
          "li",
          { class: `step-row step-${how}`, dataset: { n: String(s.n), how, ms: String(s.durationMs), why: s.why || "" } },
          h("span", { class: "step-n muted mono", text: String(s.n) }),
          h("span", { class: "step-text mono", title: s.why ? `${s.instruction}\nnot reused from earlier builds: ${s.why}` : s.instruction, text: s.instruction }),
          h("span", { class: `step-how small step-how-${how}`, text: how === "registry" ? "in registry" : how }),
          h("span", { class: "bar-track" }, h("span", { class: "bar bar-build", style: { left: "0", width: `max(2px, ${(100 * s.durationMs) / slowest}%)` } })),
          h("span", { class: "bar-value mono", text: fmtDuration(s.durationMs) }),
        );
      }),
    ),
  );
}

/**
 * LogView is the deployment log: numbered lines with ANSI colours, step
 * markers, a search box that filters and highlights, follow mode that keeps
 * the newest line in view, and a jump to the failing step.
 */
class LogView {
  constructor({ title = "Build log", id = "log", empty = "This deployment wrote no log lines." } = {}) {
    this.emptyLines = empty;
    this.lines = []; // { n, step, stream, segs, plain, lower, el, textEl }
    this.parsers = new Map(); // stream → AnsiParser
    this.query = "";
    this.follow = true;
    this.live = true;
    this.deployment = null;
    this.lastStep = undefined;
    this.failIndex = -1;
    this.hashLine = /^#L(\d+)$/.exec(location.hash)?.[1];

    this.search = h("input", { type: "search", class: "log-search", id: "log-search", placeholder: "Search the log", "aria-label": "Search the log", spellcheck: "false", autocomplete: "off" });
    this.count = h("span", { class: "log-count muted", id: "log-count" });
    this.followBtn = h("button", { type: "button", class: "btn btn-small toggle", id: "follow-toggle", "aria-pressed": "true", title: "Keep the newest line in view" }, h("span", { class: "toggle-dot", "aria-hidden": "true" }), "Follow");
    this.jumpBtn = h("button", { type: "button", class: "btn btn-small btn-danger", id: "jump-to-failure", hidden: true, text: "Jump to failing step" });
    this.downloadBtn = h("button", { type: "button", class: "btn btn-small btn-ghost", id: "log-download", text: "Download" });
    this.state = h("span", { class: "log-state", id: "log-state" });
    this.body = h("div", { class: "log-lines", id: "log-lines" });
    this.placeholder = h("div", { class: "log-placeholder", text: "Waiting for the first line…" });
    this.notice = h("div", { class: "log-notice", hidden: true });
    this.pane = h("div", { class: "log-pane", id: "log-pane", tabindex: "0" }, this.notice, this.placeholder, this.body);
    this.el = h(
      "section",
      { class: "card log-card", id },
      h(
        "div",
        { class: "log-toolbar" },
        h("div", { class: "log-heading" }, h("h2", { class: "card-title", text: title }), this.state),
        h("div", { class: "log-tools" }, h("div", { class: "search-box" }, this.search, this.count), this.jumpBtn, this.followBtn, this.downloadBtn),
      ),
      this.pane,
    );

    let timer;
    this.search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.setQuery(this.search.value), 120);
    });
    this.search.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        this.search.value = "";
        this.setQuery("");
      }
    });
    this.followBtn.addEventListener("click", () => this.setFollow(!this.follow));
    this.jumpBtn.addEventListener("click", () => this.jumpToFailure());
    this.downloadBtn.addEventListener("click", () => this.download());
    // Scrolling up stops following; scrolling back to the end of a live log
    // follows again.
    this.pane.addEventListener("scroll", () => {
      const atBottom = this.pane.scrollHeight - this.pane.scrollTop - this.pane.clientHeight < 8;
      if (atBottom !== this.follow) this.setFollow(atBottom && this.live, false);
    });
    this.keyHandler = (e) => {
      if (e.key === "/" && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName || "")) {
        e.preventDefault();
        this.search.focus();
      }
    };
    document.addEventListener("keydown", this.keyHandler);
    this.setFollow(true, false);
  }

  setDeployment(d) {
    this.deployment = d;
    this.updateFailure();
    this.updateNotice();
  }

  /** updateNotice says when the log shown is not the whole log: pruned by retention, or incomplete. */
  updateNotice() {
    const d = this.deployment;
    clear(this.notice);
    this.notice.hidden = true;
    this.notice.removeAttribute("id");
    if (d?.logPruned) {
      this.notice.id = "log-pruned";
      this.notice.append(h("strong", { text: "Log pruned" }), ` — project ${d.project}'s log retention deleted this deployment's log. Its record, timings and steps are kept.`);
      this.placeholder.textContent = "";
    } else if (d && TERMINAL.has(d.status) && d.logComplete === false) {
      this.notice.id = "log-incomplete";
      this.notice.append(h("strong", { text: "Log incomplete" }), ` — the build wrote ${d.logLines} lines, but not all of them reached the server before the deployment ended.`);
    } else return;
    this.notice.hidden = false;
  }

  setLive(live, text) {
    this.live = live;
    this.el.classList.toggle("is-live", live);
    let endState = "Complete";
    if (this.deployment?.logPruned) endState = "Pruned";
    else if (this.deployment?.logComplete === false) endState = "Incomplete";
    append(clear(this.state), [live ? h("span", { class: "live-dot", "aria-hidden": "true" }) : null, text || (live ? "Live" : endState)]);
    this.followBtn.hidden = !live;
    if (!live && !text && this.follow && !this.lines.length) this.placeholder.textContent = this.emptyText();
  }

  emptyText() {
    return this.deployment?.logPruned ? "" : this.emptyLines;
  }

  done() {
    document.removeEventListener("keydown", this.keyHandler);
    if (!this.lines.length) this.placeholder.textContent = this.emptyText();
  }

  append(batch) {
    if (!batch.length) return;
    this.placeholder.remove();
    const frag = document.createDocumentFragment();
    for (const l of batch) {
      if (this.lines.length && l.n <= this.lines[this.lines.length - 1].n) continue; // never twice
      const step = l.step || "";
      if (step !== this.lastStep) {
        if (step) frag.append(h("div", { class: "ln-step", dataset: { step } }, h("span", { text: step })));
        this.lastStep = step;
      }
      let parser = this.parsers.get(l.stream);
      if (!parser) this.parsers.set(l.stream, (parser = new AnsiParser()));
      const segs = parser.parse(l.text);
      const plain = segs.map((s) => s.text).join("");
      const textEl = h("span", { class: "ln-text" });
      const line = { n: l.n, step, stream: l.stream, time: l.time, segs, plain, lower: plain.toLowerCase(), textEl };
      line.el = h("div", { class: `ln ln-${l.stream}`, id: `L${l.n}`, dataset: { n: String(l.n), step } }, h("a", { class: "ln-n", href: `#L${l.n}`, tabindex: "-1", text: String(l.n) }), textEl);
      this.paintLine(line);
      this.lines.push(line);
      frag.append(line.el);
    }
    this.body.append(frag);
    this.updateCount();
    this.updateFailure();
    if (this.hashLine != null) {
      const el = document.getElementById(`L${this.hashLine}`);
      if (el) {
        this.hashLine = null;
        this.setFollow(false);
        this.scrollTo(el, "target");
        return;
      }
    }
    if (this.follow) this.scrollToBottom();
  }

  paintLine(line) {
    const match = !this.query || line.lower.includes(this.query);
    line.el.hidden = !match;
    clear(line.textEl).append(renderSegments(line.segs, match ? this.query : ""));
  }

  setQuery(q) {
    const query = q.trim().toLowerCase();
    if (query === this.query) return;
    this.query = query;
    this.el.classList.toggle("is-filtered", !!query);
    for (const line of this.lines) {
      const had = line.el.querySelector("mark") != null;
      const match = !query || line.lower.includes(query);
      if (had || match || line.el.hidden !== !match) this.paintLine(line);
    }
    this.updateCount();
    if (this.follow) this.scrollToBottom();
    else if (query) this.body.querySelector(".ln:not([hidden])")?.scrollIntoView({ block: "nearest" });
  }

  updateCount() {
    if (!this.query) {
      this.count.textContent = this.lines.length ? `${this.lines.length} lines` : "";
      return;
    }
    const n = this.lines.reduce((a, l) => a + (l.el.hidden ? 0 : 1), 0);
    this.count.textContent = n === 1 ? "1 match" : `${n} matches`;
    this.count.classList.toggle("none", n === 0);
  }

  setFollow(on, scroll = true) {
    this.follow = on;
    this.followBtn.setAttribute("aria-pressed", String(on));
    this.followBtn.classList.toggle("on", on);
    if (on && scroll) this.scrollToBottom();
  }

  scrollToBottom() {
    if (this.pane.scrollTop + this.pane.clientHeight >= this.pane.scrollHeight - 1) return;
    this.pane.scrollTop = this.pane.scrollHeight;
  }

  scrollTo(el, cls) {
    for (const old of this.body.querySelectorAll(".target")) old.classList.remove("target");
    el.classList.add(cls);
    this.pane.scrollTop = Math.max(0, el.offsetTop - this.pane.clientHeight / 3);
  }

  /** updateFailure marks the failing step's lines and shows the jump control on a failed deployment. */
  updateFailure() {
    const d = this.deployment;
    const failed = d?.status === "FAILED";
    this.jumpBtn.hidden = !failed;
    if (!failed || !this.lines.length) return;
    const i = failingLineIndex(this.lines, d.failedStep);
    if (i === this.failIndex) return;
    for (const l of this.lines) l.el.classList.remove("ln-fail", "ln-fail-start");
    this.failIndex = i;
    if (i < 0) return;
    this.lines[i].el.classList.add("ln-fail-start");
    // The failing step's output runs to the next step marker.
    for (let j = i; j < this.lines.length; j++) {
      if (j > i && (this.lines[j].step !== this.lines[i].step || /^(\S+ )?STEP \d+\/\d+: /.test(this.lines[j].plain))) break;
      this.lines[j].el.classList.add("ln-fail");
    }
  }

  jumpToFailure({ scrollPage = true } = {}) {
    this.setFollow(false);
    if (this.query) {
      this.search.value = "";
      this.setQuery("");
    }
    this.updateFailure();
    const target = this.failIndex >= 0 ? this.lines[this.failIndex] : this.lines[this.lines.length - 1];
    if (!target) return;
    this.scrollTo(target.el, "target");
    if (scrollPage) this.el.scrollIntoView({ block: "start", behavior: "smooth" });
  }

  download() {
    const text = this.lines.map((l) => l.plain).join("\n") + "\n";
    const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    const a = h("a", { href: url, download: `${this.deployment?.id || "deployment"}.log` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
}

/**
 * failingLineIndex finds where the failing step begins in the log: the
 * line that announces it (podman prints "STEP 2/5: RUN make" and the API's
 * failedStep is that text), else the first line tagged with that step
 * (phases such as fetch or push tag their lines), else -1.
 */
function failingLineIndex(lines, failedStep) {
  if (!failedStep) return -1;
  const want = stripAnsi(failedStep).trim();
  if (!want) return -1;
  let i = lines.findIndex((l) => l.plain.includes(want));
  if (i >= 0) return i;
  i = lines.findIndex((l) => l.step === want);
  if (i >= 0) return i;
  // "STEP 2/5: RUN make" where the lines say "[1/2] STEP 2/5: RUN make" or the text was cut.
  const instr = want.replace(/^.*?STEP \d+\/\d+:\s*/, "");
  if (instr && instr !== want) i = lines.findIndex((l) => /STEP \d+\/\d+:/.test(l.plain) && l.plain.includes(instr));
  return i;
}

// ---------------------------------------------------------------------------
// Router: / lists projects, /projects/NAME shows one, /deployments/ID shows
// one deployment. The server answers these paths with index.html.

const routes = [
  [/^\/$/, () => ({}), projectsPage, "projects"],
  [/^\/projects\/?$/, () => ({}), projectsPage, "projects"],
  [/^\/projects\/([^/]+)\/?$/, (m) => ({ name: decodeURIComponent(m[1]) }), projectPage, "projects"],
  [/^\/projects\/([^/]+)\/logs\/?$/, (m) => ({ name: decodeURIComponent(m[1]) }), appLogsPage, "projects"],
  [/^\/deployments\/([^/]+)\/?$/, (m) => ({ id: decodeURIComponent(m[1]) }), deploymentPage, "projects"],
];

function matchRoute(pathname) {
  for (const [re, params, page, nav] of routes) {
    const m = re.exec(pathname);
    if (m) return { params: params(m), page, nav };
  }
  return null;
}

let pageController = null;

// --- Sign-in ------------------------------------------------------------------

/**
 * showSignIn replaces the page with a form asking for an API token, which
 * is kept in localStorage; the page the user wanted then loads again.
 */
function showSignIn(message) {
  pageController?.abort();
  pageController = new AbortController();
  hideAllBanners();
  const hadToken = !!apiToken();
  if (hadToken) setAPIToken("");
  document.title = "Sign in · Slipway";
  const input = h("input", { type: "password", id: "token-input", name: "token", class: "mono", required: true, autocomplete: "current-password", spellcheck: "false", placeholder: "slw_…" });
  const error = h("div", { class: "form-error", id: "sign-in-error", role: "alert", hidden: !hadToken, text: hadToken ? message : "" });
  const form = h(
    "form",
    { class: "form card form-card sign-in", id: "sign-in" },
    h(
      "div",
      { class: "card-head" },
      h("h2", { class: "card-title", text: "Sign in to Slipway" }),
      h("p", { class: "muted" }, "Paste an API token. The server wrote its admin token to ", h("code", { text: "DATA-DIR/admin-token" }), " on its first start; ", h("code", { text: "slipway token create" }), " makes more."),
    ),
    field("API token", input, "Kept in this browser until you sign out."),
    error,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary", id: "sign-in-button", text: "Sign in" })),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    setAPIToken(token);
    render();
  });
  clear(document.getElementById("app")).append(h("div", { class: "sign-in-page" }, form));
  input.focus();
}

/** renderAuthNav shows "Sign out" in the top bar while a token is kept. */
function renderAuthNav() {
  const nav = document.querySelector(".topnav");
  if (!nav) return;
  nav.querySelector("#sign-out")?.remove();
  if (!apiToken()) return;
  nav.append(
    h("button", {
      type: "button",
      class: "topnav-button",
      id: "sign-out",
      text: "Sign out",
      onclick: () => {
        setAPIToken("");
        showSignIn("");
      },
    }),
  );
}

function render() {
  pageController?.abort();
  pageController = new AbortController();
  hideAllBanners();
  const root = clear(document.getElementById("app"));
  const route = matchRoute(location.pathname);
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === route?.nav);
  if (!route) {
    document.title = "Not found · Slipway";
    root.append(emptyState("Page not found", `Nothing lives at ${location.pathname}.`, h("div", { class: "empty-actions" }, h("a", { class: "btn", href: "/", text: "All projects" }))));
    return;
  }
  route.page(root, route.params, pageController.signal);
}

function navigate(path, { replace = false } = {}) {
  history[replace ? "replaceState" : "pushState"](null, "", path);
  window.scrollTo(0, 0);
  render();
}

document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest("a[href]");
  if (a) {
    if (a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !matchRoute(url.pathname)) return;
    if (url.pathname === location.pathname && url.hash) return; // an anchor on this page
    e.preventDefault();
    navigate(url.pathname + url.search + url.hash);
    return;
  }
  // A click anywhere on a linked table row opens it, unless it was on a control.
  const row = e.target.closest("tr[data-href]");
  if (row && !e.target.closest("button, input, a, code") && !window.getSelection()?.toString()) {
    navigate(row.dataset.href);
  }
});

window.addEventListener("popstate", render);
renderAuthNav();

// Durations of running deployments in lists tick every second.
setInterval(() => {
  for (const el of document.querySelectorAll("[data-since]")) el.textContent = fmtDuration(Date.now() - new Date(el.dataset.since).getTime());
}, 1000);

// A hook for tests and for poking at the UI from the browser's console.
window.Slipway = Object.freeze({ AnsiParser, stripAnsi, failingLineIndex, fmtDuration, followDeployment, pollDeployment });

render();
