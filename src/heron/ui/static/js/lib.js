// Shared helpers for the UI's page modules. DOM is built with h(), which only ever sets
// textContent and attributes: strings from outside (labels, log lines, messages) stay inert.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k === 'href') el.setAttribute('href', safeHref(v));
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Only same-origin paths and http(s) links: never javascript: or data: URLs from outside.
export function safeHref(v) {
  const s = String(v);
  if (s.startsWith('/') && !s.startsWith('//')) return s;
  if (/^https?:\/\//i.test(s)) return s;
  if (s.startsWith('#') || s.startsWith('?')) return s;
  return '#';
}

export const $ = (sel, root) => (root || document).querySelector(sel);
export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
export function pageData() {
  try { return JSON.parse(document.getElementById('page-data').textContent || '{}'); } catch { return {}; }
}
export function csrf() { const m = document.querySelector('meta[name="csrf-token"]'); return m ? m.content : ''; }

// fetch JSON; never throws. Returns {ok, status, data, error, missing} where `missing` means the
// endpoint does not exist (yet) in this Heron build, so pages show an empty state, not an error.
export async function api(path, opts = {}) {
  const init = {method: opts.method || 'GET', credentials: 'same-origin', headers: {Accept: 'application/json'}};
  if (init.method !== 'GET') init.headers['X-CSRF-Token'] = csrf();
  if (opts.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  }
  let resp;
  try { resp = await fetch(path, init); } catch (e) {
    return {ok: false, status: 0, data: null, error: 'network error: ' + e.message, missing: false};
  }
  let data = null;
  const text = await resp.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (resp.ok) return {ok: true, status: resp.status, data};
  if (resp.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search); }
  const error = (data && typeof data === 'object' && (data.error || data.message || data.detail)) ||
    (typeof data === 'string' && data.length < 300 ? data : '') || ('HTTP ' + resp.status);
  return {ok: false, status: resp.status, data, error: String(error), missing: resp.status === 404 || resp.status === 405};
}

export function stateBox(kind, message) {
  return h('div', {class: 'state ' + kind, role: kind === 'error' ? 'alert' : 'status'}, message);
}

// Show the reply of a failed call: a missing API is an empty state, anything else an error.
export function showFailure(el, r, what) {
  clear(el).append(r.missing ? stateBox('empty', what + ' is not available in this Heron yet.')
                             : stateBox('error', what + ': ' + r.error));
}

// --- Prometheus API ---------------------------------------------------------------------------
export function promQuery(expr, time) {
  const p = new URLSearchParams({query: expr});
  if (time) p.set('time', String(time));
  return api('/api/v1/query?' + p);
}
export function promRange(expr, start, end, step) {
  const p = new URLSearchParams({query: expr, start: String(start), end: String(end), step: String(step)});
  return api('/api/v1/query_range?' + p);
}

// One request per distinct URL within a page load (or a dashboard refresh): panels that ask the
// same expr+range+step share the reply. `reset()` starts a new round (refresh, new range).
export const shared = {
  round: new Map(),
  get(path) {
    let p = this.round.get(path);
    if (!p) { p = api(path); this.round.set(path, p); }
    return p;
  },
  reset() { this.round = new Map(); },
};
export function sharedRange(expr, start, end, step) {
  const p = new URLSearchParams({query: expr, start: String(start), end: String(end), step: String(step)});
  return shared.get('/api/v1/query_range?' + p);
}
export function sharedQuery(expr, time) {
  const p = new URLSearchParams({query: expr});
  if (time) p.set('time', String(time));
  return shared.get('/api/v1/query?' + p);
}

// --- time -------------------------------------------------------------------------------------
const UNITS = {s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000};
export function parseDuration(s) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/g;
  let total = 0, m, matched = '';
  while ((m = re.exec(String(s))) !== null) { total += m[2] === 'ms' ? Number(m[1]) / 1000 : Number(m[1]) * UNITS[m[2]]; matched += m[0]; }
  return matched === String(s).trim() && total > 0 ? total : null;
}
export function fmtDuration(sec) {
  for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60]]) if (sec >= n && sec % n === 0) return (sec / n) + u;
  return sec >= 1 ? Math.round(sec) + 's' : Math.round(sec * 1000) + 'ms';
}
// "now", "now-6h", unix seconds, or ISO → unix seconds
export function parseTime(s, now) {
  now = now || Date.now() / 1000;
  if (s === undefined || s === null || s === '' || s === 'now') return now;
  const m = /^now-(.+)$/.exec(String(s));
  if (m) { const d = parseDuration(m[1]); return d ? now - d : now; }
  if (/^\d+(\.\d+)?$/.test(String(s))) { const n = Number(s); return n > 1e11 ? n / 1000 : n; }
  const t = Date.parse(s);
  return isNaN(t) ? now : t / 1000;
}
export const RANGES = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '24h', '2d', '7d', '30d'];
export function autoStep(rangeSec, points) {
  const raw = rangeSec / (points || 250);
  for (const s of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400]) if (s >= raw) return s;
  return Math.ceil(raw);
}
export function fmtTime(sec) {
  const d = new Date(sec * 1000);
  return isNaN(d) ? '' : d.toLocaleString();
}
export function ago(sec) {
  const s = Date.now() / 1000 - sec;
  if (!isFinite(s)) return '';
  if (s < 0) return 'in ' + fmtDuration(Math.round(-s));
  if (s < 60) return Math.round(s) + 's ago';
  if (s < 3600) return Math.round(s / 60) + 'm ago';
  if (s < 86400) return Math.round(s / 3600) + 'h ago';
  return Math.round(s / 86400) + 'd ago';
}
export function isoToSec(iso) { const t = Date.parse(iso); return isNaN(t) ? NaN : t / 1000; }

// --- values and units (a subset of Grafana's unit ids) ----------------------------------------
const SI = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
function short(v, suffix) {
  const a = Math.abs(v);
  for (const [n, p] of SI) if (a >= n) return trim(v / n) + ' ' + p + (suffix || '');
  return trim(v) + (suffix ? ' ' + suffix : '');
}
function trim(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  const d = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return Number(v.toFixed(a < 0.001 ? 6 : d)).toString();
}
function bytes(v, base) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0; let x = v;
  while (Math.abs(x) >= base && i < units.length - 1) { x /= base; i++; }
  return trim(x) + ' ' + units[i];
}
function seconds(v) {
  const a = Math.abs(v);
  if (a === 0) return '0 s';
  if (a < 1e-3) return trim(v * 1e6) + ' µs';
  if (a < 1) return trim(v * 1e3) + ' ms';
  if (a < 60) return trim(v) + ' s';
  if (a < 3600) return trim(v / 60) + ' min';
  if (a < 86400) return trim(v / 3600) + ' h';
  return trim(v / 86400) + ' d';
}
export function fmtValue(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  switch (unit) {
    case 'percentunit': return trim(v * 100) + '%';
    case 'percent': return trim(v) + '%';
    case 's': return seconds(v);
    case 'ms': return seconds(v / 1000);
    case 'bytes': case 'decbytes': return bytes(v, 1024);
    case 'Bps': case 'binBps': return bytes(v, 1024) + '/s';
    case 'reqps': return short(v, 'req/s');
    case 'ops': return short(v, 'ops/s');
    case 'currencyUSD': return '$' + trim(v);
    case 'none': return trim(v);
    default: return short(v, '');
  }
}

// {{label}} templates of Grafana legendFormat; else the Prometheus series notation.
export function seriesName(metric, legendFormat) {
  if (legendFormat && legendFormat !== '__auto') {
    return legendFormat.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, k) => metric[k] !== undefined ? metric[k] : '');
  }
  const name = metric.__name__ || '';
  const labels = Object.keys(metric).filter((k) => k !== '__name__').sort()
    .map((k) => k + '="' + metric[k] + '"');
  return labels.length ? name + '{' + labels.join(', ') + '}' : (name || '{}');
}

export function labelPills(labels, skip) {
  return h('div', {class: 'labels'}, Object.keys(labels || {}).filter((k) => !(skip || []).includes(k)).sort()
    .map((k) => h('span', {class: 'label-pill', title: k + '="' + labels[k] + '"'}, k + '="' + labels[k] + '"')));
}

export function table(headers, rows) {
  return h('table', {class: 'data'},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', typeof x === 'object' ? x : {text: x})))),
    h('tbody', {}, rows));
}

// A tiny inline sparkline as SVG elements (no innerHTML).
export function sparkline(values, width, height) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('width', width); svg.setAttribute('height', height); svg.setAttribute('class', 'spark');
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const pts = values.map((v, i) => (i * step).toFixed(1) + ',' + (height - 1 - (v / max) * (height - 2)).toFixed(1));
  const line = document.createElementNS(NS, 'polyline');
  line.setAttribute('points', pts.join(' ')); line.setAttribute('fill', 'none');
  line.setAttribute('stroke', 'currentColor'); line.setAttribute('stroke-width', '1.5');
  svg.append(line);
  return svg;
}
