// Pie chart and heatmap panels (Grafana's `piechart` and `heatmap`), drawn with SVG and canvas:
// no markup from outside ever becomes HTML (names go through textContent and attributes).
import {h, clear, fmtValue, stateBox} from './lib.js';
import {color} from './chart.js';

const NS = 'http://www.w3.org/2000/svg';
const svgEl = (tag, attrs) => {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
};
function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

// series: [{name, value}] already reduced (Grafana's reduceOptions). Slices for positive values only.
export function renderPie(panel, body, series, unit) {
  clear(body);
  const opts = panel.options || {};
  const slices = series.filter((s) => s.value !== null && Number.isFinite(s.value) && s.value > 0)
    .map((s, i) => ({...s, color: color(i)}));
  if (!slices.length) { body.append(stateBox('empty', 'No data')); return 'empty'; }
  slices.sort((a, b) => b.value - a.value);  // Grafana's pie chart: largest first
  const total = slices.reduce((a, s) => a + s.value, 0);
  const size = 200, r = 96, c = size / 2;
  const inner = opts.pieType === 'donut' ? r * 0.55 : 0;
  const svg = svgEl('svg', {viewBox: `0 0 ${size} ${size}`, class: 'pie', role: 'img'});
  let angle = -Math.PI / 2;
  const point = (rad, a) => [(c + rad * Math.cos(a)).toFixed(2), (c + rad * Math.sin(a)).toFixed(2)];
  for (const s of slices) {
    const frac = s.value / total;
    const a1 = angle + frac * 2 * Math.PI;
    let shape;
    if (frac >= 0.99999) {  // one slice: a full circle (an arc cannot start and end at one point)
      shape = svgEl('circle', {cx: c, cy: c, r: inner ? (r + inner) / 2 : r, fill: inner ? 'none' : s.color,
        stroke: inner ? s.color : 'none', 'stroke-width': inner ? r - inner : 0});
    } else {
      const large = frac > 0.5 ? 1 : 0;
      const [x0, y0] = point(r, angle), [x1, y1] = point(r, a1);
      let d = `M${inner ? point(inner, angle).join(',') : c + ',' + c} L${x0},${y0} A${r},${r} 0 ${large} 1 ${x1},${y1}`;
      d += inner ? ` L${point(inner, a1).join(',')} A${inner},${inner} 0 ${large} 0 ${point(inner, angle).join(',')} Z` : ' Z';
      shape = svgEl('path', {d, fill: s.color, stroke: 'var(--bg, #fff)', 'stroke-width': 1});
    }
    shape.setAttribute('class', 'pie-slice');
    shape.dataset.name = s.name;
    shape.dataset.value = String(s.value);
    const title = svgEl('title', {});
    title.textContent = `${s.name || panel.title}: ${fmtValue(s.value, unit)} (${(frac * 100).toFixed(1)}%)`;
    shape.append(title);
    svg.append(shape);
    angle = a1;
  }
  const values = (opts.legend && opts.legend.values) || ['value', 'percent'];
  const legend = h('div', {class: 'pie-legend'}, slices.map((s) => h('div', {class: 'pie-legend-row'},
    h('span', {class: 'swatch', style: {background: s.color}}), h('span', {class: 'name', title: s.name}, s.name || panel.title),
    values.includes('value') ? h('span', {class: 'mono'}, fmtValue(s.value, unit)) : null,
    values.includes('percent') ? h('span', {class: 'muted mono'}, (s.value / total * 100).toFixed(1) + '%') : null)));
  body.append(h('div', {class: 'pie-wrap'}, svg, opts.legend && opts.legend.showLegend === false ? null : legend));
  return 'done';
}

// Buckets of a heatmap from range results: Prometheus histogram buckets (an `le` label on every
// series: cumulative counts become per-bucket counts, as Grafana's "heatmap" format does), or
// else Grafana's "calculate": each step's values counted into buckets. `calc` is Grafana's
// options.calculation.yBuckets: {mode: 'count'|'size', value, scale: {type: 'linear'|'log', log: 2|10}}
// (default 16 equal-width buckets; on a log scale the buckets are equal in log space and values
// <= 0 are left out, as Grafana does).
export function heatmapBuckets(results, start, end, step, calc = {}) {
  const n = Math.floor((end - start) / step) + 1;
  const series = results.flatMap((r) => r.series);
  const col = (s) => {
    const ys = new Array(n).fill(null);
    for (const [t, v] of s.values || []) {
      const i = Math.round((t - start) / step);
      if (i >= 0 && i < n && v !== 'NaN') ys[i] = Number(v);
    }
    return ys;
  };
  if (series.length && series.every((s) => s.metric && s.metric.le !== undefined)) {
    const byLe = new Map();
    for (const s of series) {  // several series of one bound (e.g. no `sum by (le)`): added up
      const le = s.metric.le === '+Inf' ? Infinity : Number(s.metric.le);
      const ys = col(s);
      const acc = byLe.get(le);
      byLe.set(le, acc ? acc.map((v, i) => (v === null && ys[i] === null ? null : (v || 0) + (ys[i] || 0))) : ys);
    }
    const bounds = [...byLe.keys()].sort((a, b) => a - b);
    const cells = bounds.map((le, b) => byLe.get(le).map((v, i) => {
      if (v === null) return null;
      const below = b ? byLe.get(bounds[b - 1])[i] : 0;
      return Math.max(0, v - (below || 0));
    }));
    return {n, labels: bounds.map((le) => (le === Infinity ? '+Inf' : fmtValue(le, ''))), cells, kind: 'buckets', scale: 'linear'};
  }
  const scale = calc.scale && calc.scale.type === 'log' ? 'log' : 'linear';
  const base = scale === 'log' ? (Number(calc.scale.log) === 10 ? 10 : 2) : 1;
  const fwd = scale === 'log' ? (v) => Math.log(v) / Math.log(base) : (v) => v;
  const back = scale === 'log' ? (y) => base ** y : (y) => y;
  const keep = (v) => v !== null && Number.isFinite(v) && (scale !== 'log' || v > 0);
  const cols = series.map(col);
  const all = cols.flat().filter(keep).map(fwd);
  if (!all.length) return {n, labels: [], cells: [], kind: 'calculate', scale};
  let lo = Math.min(...all), hi = Math.max(...all);
  const value = Number(calc.value);
  let count = 16, width;
  if (calc.mode === 'size' && scale === 'linear' && value > 0) {
    lo = Math.floor(lo / value) * value;
    width = value;
    count = Math.min(200, Math.max(1, Math.floor((hi - lo) / value) + 1));
  } else {
    if (calc.mode !== 'size' && value >= 1) count = Math.min(200, Math.floor(value));
    if (hi === lo) hi = lo + 1;
    width = (hi - lo) / count;
  }
  const cells = Array.from({length: count}, () => new Array(n).fill(0));
  for (const ys of cols) {
    ys.forEach((v, i) => {
      if (!keep(v)) return;
      cells[Math.max(0, Math.min(count - 1, Math.floor((fwd(v) - lo) / width)))][i] += 1;
    });
  }
  return {n, labels: cells.map((_, b) => fmtValue(back(lo + (b + 1) * width), '')), cells, kind: 'calculate', scale};
}

export function renderHeatmap(panel, body, results, {start, end, step}) {
  clear(body);
  const opts = panel.options || {};
  const hm = heatmapBuckets(results, start, end, step, (opts.calculation && opts.calculation.yBuckets) || {});
  const max = Math.max(0, ...hm.cells.flat().filter((v) => v !== null));
  if (!hm.cells.length || max <= 0) { body.append(stateBox('empty', 'No data')); return 'empty'; }
  const showLegend = !(opts.legend && opts.legend.show === false);
  const width = Math.max(200, body.clientWidth || 600);
  const height = Math.max(80, (body.clientHeight || 200) - (showLegend ? 18 : 0));
  const left = 56, bottom = 18, plotW = width - left - 4, plotH = height - bottom - 4;
  const dpr = window.devicePixelRatio || 1;
  const canvas = h('canvas', {class: 'heatmap', width: Math.round(width * dpr), height: Math.round(height * dpr),
    style: {width: width + 'px', height: height + 'px'}});
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  const rows = hm.cells.length, cw = plotW / hm.n, ch = plotH / rows;
  const gapX = cw >= 4 ? cw - 1 : cw + 0.5;  // narrow cells: no seams between steps
  const scheme = (panel.options && panel.options.color && panel.options.color.scheme) || 'Oranges';
  const hue = {Oranges: 24, Reds: 0, Greens: 120, Blues: 210, Purples: 275, Spectral: 24}[scheme] ?? 24;
  for (let b = 0; b < rows; b++) {
    for (let i = 0; i < hm.n; i++) {
      const v = hm.cells[b][i];
      if (!v) continue;
      const f = Math.sqrt(v / max);  // sqrt: small buckets stay visible next to a large one
      g.fillStyle = `hsla(${hue}, 90%, ${70 - 40 * f}%, ${0.25 + 0.75 * f})`;
      g.fillRect(left + i * cw, 4 + (rows - 1 - b) * ch, gapX, Math.max(1, ch - 1));
    }
  }
  g.fillStyle = cssVar('--axis') || '#888';
  g.font = '11px system-ui, sans-serif';
  g.textAlign = 'right'; g.textBaseline = 'middle';
  const every = Math.max(1, Math.ceil(rows / Math.max(1, Math.floor(plotH / 14))));
  for (let b = 0; b < rows; b += every) g.fillText(hm.labels[b], left - 4, 4 + (rows - 1 - b + 0.5) * ch);
  g.textAlign = 'center'; g.textBaseline = 'top';
  const ticks = Math.max(2, Math.floor(plotW / 110));
  for (let k = 0; k <= ticks; k++) {
    const t = start + (end - start) * k / ticks;
    const d = new Date(t * 1000);
    g.fillText(String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0'),
      Math.min(width - 16, Math.max(left + 16, left + plotW * k / ticks)), height - bottom + 3);
  }
  const tip = h('div', {class: 'heatmap-tip hidden'});
  canvas.addEventListener('mousemove', (e) => {
    const rect = canvas.getBoundingClientRect();
    const i = Math.floor((e.clientX - rect.left - left) / cw), b = rows - 1 - Math.floor((e.clientY - rect.top - 4) / ch);
    if (i < 0 || i >= hm.n || b < 0 || b >= rows) { tip.classList.add('hidden'); return; }
    const v = hm.cells[b][i];
    tip.textContent = `${new Date((start + i * step) * 1000).toLocaleTimeString()} · ≤ ${hm.labels[b]} · ${v === null ? '–' : fmtValue(v, '')}`;
    tip.classList.remove('hidden');
  });
  canvas.addEventListener('mouseleave', () => tip.classList.add('hidden'));
  body.dataset.buckets = String(rows);
  body.dataset.max = String(max);
  body.dataset.scale = hm.scale;
  // Grafana's colour legend (options.legend.show, on by default): the scale from 0 to the maximum
  const legend = !showLegend ? null : h('div', {class: 'heatmap-legend'},
    h('span', {}, '0'),
    h('span', {class: 'heatmap-scale', style: {background: `linear-gradient(to right, hsla(${hue}, 90%, 70%, 0.25), hsla(${hue}, 90%, 30%, 1))`}}),
    h('span', {}, fmtValue(max, '')));
  body.append(h('div', {class: 'heatmap-wrap', style: {height: height + 'px'}}, canvas, tip));
  if (legend) body.append(legend);
  return 'done';
}
