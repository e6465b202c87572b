// Panel renderers: timeseries, stat, gauge, bargauge, table, text (rows are handled by the page).
// Each returns a promise resolving to 'done' | 'empty' | 'error'; outside strings use textContent.
import {h, clear, api, sharedQuery, sharedRange, fmtValue, seriesName, labelPills, table, stateBox} from './lib.js';
import {drawTimeSeries, color} from './chart.js';
import {interpolate} from './variables.js';
import {renderPie, renderHeatmap} from './distribution.js';

function unitOf(panel) {
  const d = (panel.fieldConfig && panel.fieldConfig.defaults) || {};
  return d.unit || 'short';
}
const defaultsOf = (panel) => (panel.fieldConfig && panel.fieldConfig.defaults) || {};

// Grafana's named colours (the base hue for its dark-/semi-dark-/light- variants). Colours from
// dashboard JSON are only used when they are a name, #hex or rgb()/rgba(): nothing else reaches CSS.
const NAMED = {green: '#73bf69', red: '#f2495c', orange: '#ff9830', yellow: '#fade2a', blue: '#5794f2',
  purple: '#b877d9', white: '#ffffff', black: '#000000', transparent: 'transparent', text: 'inherit'};
export function safeColor(c) {
  if (typeof c !== 'string') return null;
  const s = c.trim().toLowerCase();
  const base = s.replace(/^(super-light|light|semi-dark|dark)-/, '');
  if (NAMED[base]) return NAMED[base];
  if (/^#[0-9a-f]{3,8}$/.test(s) || /^rgba?\(\s*[\d.]+%?\s*,\s*[\d.]+%?\s*,\s*[\d.]+%?\s*(,\s*[\d.]+%?\s*)?\)$/.test(s)) return s;
  return null;
}

function minMax(panel) {
  const d = defaultsOf(panel);
  const unit = unitOf(panel);
  const max = d.max !== undefined && d.max !== null ? d.max : (unit === 'percentunit' ? 1 : unit === 'percent' ? 100 : null);
  return [d.min !== undefined && d.min !== null ? d.min : 0, max];
}
function thresholdColor(panel, v, min, max) {
  const t = defaultsOf(panel).thresholds || {};
  const steps = t.steps || [];
  const x = t.mode === 'percentage' && max !== null && max !== undefined && max !== min ? (v - min) / (max - min) * 100 : v;
  let c = null;
  for (const s of steps) if (s.value === null || s.value === undefined || x >= s.value) c = s.color;
  return safeColor(c);
}

// Value mappings, Grafana 8+ ({type: value|range|regex|special, options}) and 7.x ({type: 1|2}).
export function mapValue(panel, v) {
  for (const m of defaultsOf(panel).mappings || []) {
    const o = m.options || {};
    let r = null;
    if (m.type === 'value' && o[String(v)]) r = o[String(v)];
    else if (m.type === 1 && String(m.value) === String(v)) r = {text: m.text};
    else if ((m.type === 'range' && v !== null) && (o.from === null || o.from === undefined || v >= o.from) &&
             (o.to === null || o.to === undefined || v <= o.to)) r = o.result;
    else if (m.type === 2 && v !== null && v >= Number(m.from) && v <= Number(m.to)) r = {text: m.text};
    else if (m.type === 'regex' && o.pattern) { try { if (new RegExp(o.pattern).test(String(v))) r = o.result; } catch { /* bad pattern */ } }
    else if (m.type === 'special' && ((o.match === 'null' || o.match === 'null+nan') && v === null ||
             (o.match === 'nan' || o.match === 'null+nan') && Number.isNaN(v))) r = o.result;
    if (r) return {text: r.text, color: safeColor(r.color)};
  }
  return null;
}

function targetsOf(panel) {
  return (panel.targets || []).filter((t) => !t.hide && typeof t.expr === 'string' && t.expr.trim());
}

class QueryError extends Error {}

// Grafana's reducers (the common ones); `values` are numbers or null (gaps).
const REDUCERS = {
  last: (xs) => (xs.length ? xs[xs.length - 1] : null),
  lastNotNull: (xs) => { for (let i = xs.length - 1; i >= 0; i--) if (xs[i] !== null && !Number.isNaN(xs[i])) return xs[i]; return null; },
  first: (xs) => (xs.length ? xs[0] : null),
  firstNotNull: (xs) => { for (const x of xs) if (x !== null && !Number.isNaN(x)) return x; return null; },
  mean: (xs) => { const ok = nn(xs); return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : null; },
  max: (xs) => { const ok = nn(xs); return ok.length ? Math.max(...ok) : null; },
  min: (xs) => { const ok = nn(xs); return ok.length ? Math.min(...ok) : null; },
  sum: (xs) => nn(xs).reduce((a, b) => a + b, 0),
  count: (xs) => nn(xs).length,
  range: (xs) => { const ok = nn(xs); return ok.length ? Math.max(...ok) - Math.min(...ok) : null; },
  diff: (xs) => { const ok = nn(xs); return ok.length ? ok[ok.length - 1] - ok[0] : null; },
};
const ALIASES = {current: 'lastNotNull', avg: 'mean', total: 'sum', delta: 'diff'};
const nn = (xs) => xs.filter((x) => x !== null && !Number.isNaN(x));
export function reducerOf(panel) {
  const calcs = (panel.options && panel.options.reduceOptions && panel.options.reduceOptions.calcs) || [];
  const c = ALIASES[calcs[0]] || calcs[0];
  return REDUCERS[c] ? c : 'lastNotNull';
}
const wantsSpark = (panel) => panel.type === 'stat' && !(panel.options && panel.options.graphMode === 'none');

// Stat, gauge and bar gauge reduce each series over the dashboard range, as Grafana does. Only
// "last" without a sparkline can use the cheaper instant query (at the step-aligned range end).
async function reducedSeries(panel, ctx) {
  const calc = reducerOf(panel);
  const step = ctx.intervalSec;
  const end = Math.floor(ctx.range.end / step) * step;
  const out = [];
  if ((calc === 'lastNotNull' || calc === 'last') && !wantsSpark(panel)) {
    for (const s of await instantSeries(panel, ctx, end)) out.push({...s, values: null});
    return out;
  }
  const start = Math.floor(ctx.range.start / step) * step;
  const results = await Promise.all(targetsOf(panel).map(async (t) => {
    const r = await sharedRange(interpolate(t.expr, ctx), start, end, step);
    if (!r.ok) throw new QueryError(r.missing ? 'Query API not available' : r.error);
    return {t, result: (r.data.data && r.data.data.result) || []};
  }));
  for (const {t, result} of results) {
    for (const s of result) {
      const ys = (s.values || []).map(([, v]) => (v === 'NaN' ? NaN : Number(v)));
      const name = seriesName(s.metric || {}, t.legendFormat && interpolate(t.legendFormat, ctx));
      out.push({name: name === '{}' ? '' : name, metric: s.metric || {}, value: REDUCERS[calc](ys), values: ys});
    }
  }
  return out;
}

async function instantSeries(panel, ctx, at) {
  const out = [];
  const time = at || Math.floor(ctx.range.end);
  const replies = await Promise.all(targetsOf(panel).map((t) => sharedQuery(interpolate(t.expr, ctx), time)));
  targetsOf(panel).forEach((t, k) => {
    const r = replies[k];
    if (!r.ok) throw new QueryError(r.missing ? 'Query API not available' : r.error);
    const d = r.data.data || {};
    const result = d.resultType === 'scalar' ? [{metric: {}, value: d.result}] : (d.result || []);
    for (const s of result) {
      const name = seriesName(s.metric || {}, t.legendFormat && interpolate(t.legendFormat, ctx));
      out.push({name: name === '{}' ? '' : name, metric: s.metric || {}, value: Number(s.value[1])});
    }
  });
  return out;
}

// The requests a panel will make, started now (the page calls this before laying panels out;
// renderPanel then gets the same shared promises).
export function prefetch(panel, ctx) {
  if (panel.type === 'timeseries' || panel.type === 'heatmap') { rangeOf(panel, ctx); return; }
  if (['stat', 'gauge', 'bargauge', 'table', 'piechart'].includes(panel.type)) {
    (panel.type === 'table' ? instantSeries(panel, ctx) : reducedSeries(panel, ctx)).catch(() => {});
  }
}

export async function renderPanel(panel, body, ctx) {
  try {
    switch (panel.type) {
      case 'timeseries': return await renderTimeSeries(panel, body, ctx);
      case 'stat': return renderStat(panel, body, await reducedSeries(panel, ctx));
      case 'gauge': return renderGauge(panel, body, await reducedSeries(panel, ctx));
      case 'bargauge': return renderBarGauge(panel, body, await reducedSeries(panel, ctx));
      case 'table': return renderTable(panel, body, await instantSeries(panel, ctx));
      case 'piechart': return renderPie(panel, body, await reducedSeries(panel, ctx), unitOf(panel));
      case 'heatmap': return await renderHeatmapPanel(panel, body, ctx);
      case 'text': return await renderText(panel, body, ctx);
      default: return 'error';
    }
  } catch (e) {
    clear(body).append(stateBox(e instanceof QueryError && /not available/.test(e.message) ? 'empty' : 'error', e.message));
    return 'error';
  }
}

function rangeOf(panel, ctx) {
  const step = ctx.intervalSec;
  const start = Math.floor(ctx.range.start / step) * step;
  const end = Math.floor(ctx.range.end / step) * step;
  return targetsOf(panel).map((t) => ({t, start, end, step, reply: sharedRange(interpolate(t.expr, ctx), start, end, step)}));
}

async function renderTimeSeries(panel, body, ctx) {
  const reqs = rangeOf(panel, ctx);
  const step = ctx.intervalSec;
  const start = Math.floor(ctx.range.start / step) * step;
  const end = Math.floor(ctx.range.end / step) * step;
  const results = await Promise.all(reqs.map(async ({t, reply}) => {
    const r = await reply;
    if (!r.ok) throw new QueryError(r.missing ? 'Query API not available' : r.error);
    return {series: (r.data.data && r.data.data.result) || [], legendFormat: t.legendFormat && interpolate(t.legendFormat, ctx),
      fallback: t.expr};
  }));
  const u = drawTimeSeries(body, results, {start, end, step, unit: unitOf(panel), height: body.clientHeight, fit: true,
    onZoom: ctx.onZoom, legend: !(panel.options && panel.options.legend && panel.options.legend.showLegend === false)});
  return u ? 'done' : 'empty';
}

async function renderHeatmapPanel(panel, body, ctx) {
  const reqs = rangeOf(panel, ctx);
  const results = await Promise.all(reqs.map(async ({reply}) => {
    const r = await reply;
    if (!r.ok) throw new QueryError(r.missing ? 'Query API not available' : r.error);
    return {series: (r.data.data && r.data.data.result) || []};
  }));
  const {start, end, step} = reqs.length ? reqs[0] : {start: ctx.range.start, end: ctx.range.end, step: ctx.intervalSec};
  return renderHeatmap(panel, body, results, {start, end, step});
}

// A filled sparkline (SVG, no markup from outside): nulls break the line.
function areaSpark(values, color) {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 200, H = 40;
  const ok = nn(values);
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`); svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'stat-spark');
  if (ok.length < 2) return svg;
  const lo = Math.min(...ok), hi = Math.max(...ok);
  const y = (v) => (H - 2 - ((v - lo) / ((hi - lo) || 1)) * (H - 4)).toFixed(1);
  const x = (i) => (i * W / (values.length - 1)).toFixed(1);
  let d = '', area = '', run = [];
  const close = () => {
    if (run.length > 1) area += `M${run[0][0]},${H} L` + run.map((p) => p.join(',')).join(' L') + ` L${run[run.length - 1][0]},${H} Z `;
    run = [];
  };
  values.forEach((v, i) => {
    if (v === null || Number.isNaN(v)) { close(); return; }
    d += (run.length ? ' L' : ' M') + x(i) + ',' + y(v);
    run.push([x(i), y(v)]);
  });
  close();
  const fill = document.createElementNS(NS, 'path');
  fill.setAttribute('d', area); fill.setAttribute('fill', color); fill.setAttribute('fill-opacity', '0.18');
  const line = document.createElementNS(NS, 'path');
  line.setAttribute('d', d.trim()); line.setAttribute('fill', 'none'); line.setAttribute('stroke', color);
  line.setAttribute('stroke-width', '1.5'); line.setAttribute('vector-effect', 'non-scaling-stroke');
  svg.append(fill, line);
  return svg;
}

// The text and colour a reduced value shows with: a value mapping wins over unit formatting and thresholds.
function display(panel, v) {
  const [min, max] = minMax(panel);
  const mapped = mapValue(panel, v);
  const text = mapped && mapped.text !== undefined && mapped.text !== '' ? String(mapped.text) : fmtValue(v, unitOf(panel));
  return {text, color: (mapped && mapped.color) || (v === null ? null : thresholdColor(panel, v, min, max))};
}

function renderStat(panel, body, series) {
  clear(body);
  if (!series.length) { body.append(stateBox('empty', 'No data')); return 'empty'; }
  const background = panel.options && panel.options.colorMode === 'background';
  const plain = panel.options && panel.options.colorMode === 'none';
  const spark = wantsSpark(panel);
  body.append(h('div', {class: 'stat-wrap'}, series.slice(0, 24).map((s) => {
    const {text, color} = display(panel, s.value);
    const item = h('div', {class: 'stat-item' + (spark && s.values ? ' with-spark' : ''), 'data-value': String(s.value),
      style: background && color ? {background: color, color: '#fff'} : {}},
      h('div', {class: 'stat-value', style: {color: !background && !plain && color ? color : 'inherit'}}, text),
      series.length > 1 ? h('div', {class: 'muted'}, s.name) : null);
    if (spark && s.values) item.append(areaSpark(s.values, background ? '#ffffff' : (color || 'var(--accent, #5794f2)')));
    return item;
  })));
  return 'done';
}

function renderGauge(panel, body, series) {
  clear(body);
  if (!series.length) { body.append(stateBox('empty', 'No data')); return 'empty'; }
  const [min, max0] = minMax(panel);
  const max = max0 === null ? Math.max(...series.map((s) => s.value), 1) : max0;
  const NS = 'http://www.w3.org/2000/svg';
  const wrap = h('div', {class: 'gauge-wrap'});
  for (const s of series.slice(0, 8)) {
    const frac = Math.max(0, Math.min(1, (s.value - min) / ((max - min) || 1)));
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 120 80'); svg.setAttribute('width', '150'); svg.setAttribute('height', '100');
    const arc = (f) => { const a = Math.PI * (1 - f); return [60 + 48 * Math.cos(a), 64 - 48 * Math.sin(a)]; };
    const path = (f, c, w) => {
      const [x, y] = arc(f);
      const p = document.createElementNS(NS, 'path');
      p.setAttribute('d', `M 12 64 A 48 48 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`);
      p.setAttribute('fill', 'none'); p.setAttribute('stroke', c); p.setAttribute('stroke-width', w);
      p.setAttribute('stroke-linecap', 'round');
      return p;
    };
    svg.append(path(0.9999, 'var(--code)', 10));
    const shown = display(panel, s.value);
    if (frac > 0) svg.append(path(frac, shown.color || 'var(--ok)', 10));
    const t = document.createElementNS(NS, 'text');
    t.setAttribute('x', '60'); t.setAttribute('y', '62'); t.setAttribute('text-anchor', 'middle');
    t.setAttribute('font-size', '16'); t.setAttribute('font-weight', '600'); t.setAttribute('fill', 'currentColor');
    t.textContent = shown.text;
    svg.append(t);
    wrap.append(h('div', {class: 'stat-item'}, svg, series.length > 1 ? h('div', {class: 'muted'}, s.name) : null));
  }
  body.append(wrap);
  return 'done';
}

function renderBarGauge(panel, body, series) {
  clear(body);
  if (!series.length) { body.append(stateBox('empty', 'No data')); return 'empty'; }
  const [min, max0] = minMax(panel);
  const max = max0 === null ? Math.max(...series.map((s) => s.value), 1) : max0;
  for (const [i, s] of series.slice(0, 50).entries()) {
    const frac = Math.max(0, Math.min(1, (s.value - min) / ((max - min) || 1)));
    const shown = display(panel, s.value);
    body.append(h('div', {class: 'bar-row'}, h('span', {class: 'muted', title: s.name}, s.name || panel.title),
      h('div', {class: 'bar'}, h('div', {style: {width: (frac * 100).toFixed(1) + '%', background: shown.color || color(i)}})),
      h('span', {class: 'mono'}, shown.text)));
  }
  return 'done';
}

function renderTable(panel, body, series) {
  clear(body);
  if (!series.length) { body.append(stateBox('empty', 'No data')); return 'empty'; }
  const keys = [...new Set(series.flatMap((s) => Object.keys(s.metric)))].filter((k) => k !== '__name__').sort();
  const legend = targetsOf(panel).some((t) => t.legendFormat);
  const headers = legend ? ['Series', {text: 'Value', class: 'num'}] : [...keys, {text: 'Value', class: 'num'}];
  const rows = series.map((s) => h('tr', {}, legend ? h('td', {}, s.name) : keys.map((k) => h('td', {}, s.metric[k] || '')),
    h('td', {class: 'num mono'}, fmtValue(s.value, unitOf(panel)))));
  body.append(table(headers, rows));
  return 'done';
}

// Markdown is rendered by the server (markdown-it, raw HTML disabled) into a tree of allowed
// tags and text, built here with h(): no HTML string from the dashboard ever reaches the DOM.
// Grafana's "html" mode is shown as text, "code" mode as a code block.
async function renderText(panel, body, ctx) {
  clear(body);
  const o = panel.options || {};
  const content = interpolate(o.content !== undefined ? String(o.content) : String(panel.content || ''), ctx);
  const mode = o.mode || panel.mode || 'markdown';
  if (mode === 'markdown' && content.trim()) {
    const r = await api('/api/heron/markdown', {method: 'POST', body: {text: content}});
    if (r.ok) { body.append(h('div', {class: 'text-panel markdown'}, buildTree(r.data.tree))); return 'done'; }
  }
  body.append(mode === 'code' ? h('pre', {class: 'text-panel'}, content) : h('div', {class: 'text-panel plain'}, content));
  return 'done';
}

const TAGS = new Set(['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'em', 'strong', 's', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li',
  'a', 'hr', 'br', 'table', 'thead', 'tbody', 'tr', 'th', 'td']);
function buildTree(nodes) {
  return (nodes || []).map((n) => {
    if (typeof n === 'string') return n;
    if (!n || !TAGS.has(n.tag)) return n && n.children ? buildTree(n.children) : null;
    const attrs = {};
    if (n.tag === 'a' && n.href) { attrs.href = n.href; attrs.rel = 'noopener noreferrer'; }
    if (n.tag === 'ol' && Number.isInteger(n.start)) attrs.start = n.start;
    if ((n.tag === 'td' || n.tag === 'th') && ['left', 'right', 'center'].includes(n.align)) attrs.style = {textAlign: n.align};
    return h(n.tag, attrs, buildTree(n.children));
  });
}

export {labelPills};
