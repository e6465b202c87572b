// Dashboard template variables (Grafana semantics, the common subset): query (label_values,
// metrics, query_result), custom, interval, constant, textbox; and $__interval, $__rate_interval,
// $__range. Interpolation escapes regex metacharacters of multi-value selections.
import {api, promQuery, fmtDuration, parseDuration} from './lib.js';

export const ALL = '$__all';

// `ctx` (the variables resolved so far) lets a query use another variable: chained variables.
export async function resolveOptions(v, range, ctx) {
  const q = ctx ? interpolate((v.query || '').trim(), ctx) : (v.query || '').trim();
  switch (v.type) {
    case 'custom': return splitCustom(q);
    case 'interval': return splitCustom(q).map((o) => o.value === 'auto' ? {text: 'auto', value: 'auto'} : o);
    case 'constant': return [{text: q, value: q}];
    case 'textbox': return [{text: q, value: (v.current && v.current.value) || q}];
    case 'query': break;
    default: return [];
  }
  let values = [];
  let m;
  const p = new URLSearchParams({start: String(Math.floor(range.start)), end: String(Math.ceil(range.end))});
  if ((m = /^label_values\(\s*(.+?)\s*,\s*([A-Za-z_][\w]*)\s*\)$/.exec(q))) {
    p.append('match[]', m[1]);
    const r = await api(`/api/v1/label/${encodeURIComponent(m[2])}/values?` + p);
    if (!r.ok) throw new Error(r.error);
    values = r.data.data || [];
  } else if ((m = /^label_values\(\s*([A-Za-z_][\w]*)\s*\)$/.exec(q))) {
    const r = await api(`/api/v1/label/${encodeURIComponent(m[1])}/values?` + p);
    if (!r.ok) throw new Error(r.error);
    values = r.data.data || [];
  } else if ((m = /^metrics\((.*)\)$/.exec(q))) {
    const r = await api('/api/v1/label/__name__/values?' + p);
    if (!r.ok) throw new Error(r.error);
    const re = new RegExp(m[1] || '.*');
    values = (r.data.data || []).filter((n) => re.test(n));
  } else if ((m = /^query_result\((.+)\)$/.exec(q))) {
    const r = await promQuery(m[1], range.end);
    if (!r.ok) throw new Error(r.error);
    values = (r.data.data.result || []).map((s) => JSON.stringify(s.metric) + ' ' + s.value[1]);
  } else if (q) {
    throw new Error('unsupported variable query: ' + q);
  }
  if (v.regex) {
    const re = toRegex(v.regex);
    values = values.map((x) => { const mm = re.exec(x); return mm ? (mm[1] !== undefined ? mm[1] : x) : null; })
      .filter((x) => x !== null);
  }
  values = [...new Set(values)];
  if (v.sort) values.sort();
  return values.map((x) => ({text: x, value: x}));
}

function toRegex(s) {
  const m = /^\/(.*)\/([gimsuy]*)$/.exec(s);
  return m ? new RegExp(m[1], m[2].replace('g', '')) : new RegExp(s);
}

function splitCustom(q) {
  return q.split(/(?<!\\),/).map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^(.+?)\s*:\s*(.+)$/.exec(s);
    return m && !/^\d/.test(s) ? {text: m[1], value: m[2]} : {text: s.replace(/\\,/g, ','), value: s.replace(/\\,/g, ',')};
  });
}

const escapeRe = (s) => String(s).replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');

function formatValue(v, values, fmt, options) {
  const isAll = values.length === 1 && values[0] === ALL;
  if (isAll) {
    if (v.allValue) return v.allValue;
    values = options.map((o) => o.value);
    if (!fmt || fmt === 'regex') return values.length ? '(' + values.map(escapeRe).join('|') + ')' : '.*';
  }
  if (fmt === 'csv') return values.join(',');
  if (fmt === 'pipe') return values.join('|');
  if (fmt === 'raw' || fmt === 'text') return values.join(',');
  if (fmt === 'regex' || values.length > 1) return values.length === 1 ? escapeRe(values[0]) : '(' + values.map(escapeRe).join('|') + ')';
  return values[0] === undefined ? '' : String(values[0]);
}

// ctx: {vars: [{def, values, options}], range: {start, end}, intervalSec}
export function interpolate(expr, ctx) {
  const builtins = {
    __interval: fmtDuration(ctx.intervalSec),
    __interval_ms: String(Math.round(ctx.intervalSec * 1000)),
    __rate_interval: fmtDuration(Math.max(4 * (ctx.scrapeInterval || 15), ctx.intervalSec + (ctx.scrapeInterval || 15))),
    __range: fmtDuration(Math.max(1, Math.round(ctx.range.end - ctx.range.start))),
    __range_s: String(Math.round(ctx.range.end - ctx.range.start)),
  };
  const byName = Object.fromEntries(ctx.vars.map((x) => [x.def.name, x]));
  const sub = (name, fmt) => {
    if (name in builtins) return builtins[name];
    const x = byName[name];
    if (!x) return null;
    let values = x.values;
    if (x.def.type === 'interval' && values[0] === 'auto') values = [fmtDuration(ctx.intervalSec)];
    // Values land inside PromQL string literals ("..."): escape what would end or bend them.
    return formatValue(x.def, values, fmt, x.options).replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  };
  return expr.replace(/\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)/g, (all, a, af, b, bf, c) => {
    const out = sub(a || b || c, af || bf);
    return out === null ? all : out;
  });
}

// Grafana's $__interval: range / maxDataPoints, rounded up to a "nice" step (so a panel never
// gets more points than it asked for), at least the panel's min interval.
export function intervalFor(rangeSec, maxPoints, minInterval) {
  const min = minInterval ? (parseDuration(minInterval) || 1) : 1;
  const raw = rangeSec / (maxPoints || 300);
  for (const s of NICE) if (s >= raw) return Math.max(min, s);
  return Math.max(min, Math.ceil(raw));
}
const NICE = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

// maxDataPoints for a panel: Grafana uses one point per pixel; uPlot's lines look the same with
// one point per 2 px and the server evaluates half the steps. A panel's own maxDataPoints wins.
export function maxPointsFor(panel, viewportPx) {
  const cols = Math.min(24, (panel.gridPos && panel.gridPos.w) || 12);
  const px = Math.max(200, Math.round(viewportPx * cols / 24));
  const own = Number(panel.maxDataPoints);
  return own > 0 ? Math.min(own, px) : Math.max(100, Math.round(px / 2));
}
