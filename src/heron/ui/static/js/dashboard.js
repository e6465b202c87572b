// Dashboard view: time range, auto-refresh, template variables, panels on Grafana's 24-column
// grid, folding rows, panel and JSON editing. Progress is exposed for tests and the benchmark:
// each panel gets data-state, and window.heronDashboard = {pending, drawnAt}.
import {h, $, clear, api, pageData, parseDuration, parseTime, stateBox, showFailure, shared} from './lib.js';
import {renderPanel, prefetch} from './panels.js';
import {resolveOptions, intervalFor, maxPointsFor, ALL} from './variables.js';
import {rangePicker} from './timepicker.js';

const {uid, model: embedded} = pageData();
const params = new URLSearchParams(location.search);
const REFRESH = ['', '5s', '10s', '30s', '1m', '5m', '15m', '1h'];
const SUPPORTED = new Set(['timeseries', 'stat', 'gauge', 'bargauge', 'table', 'text', 'piechart', 'heatmap', 'row']);
let model = null;
let vars = [];
let refreshTimer = null;
let generation = 0;
window.heronDashboard = {pending: -1, drawnAt: null, startedAt: performance.now()};

// "now" is read once per round of queries, so that the prefetch and the render agree.
let roundNow = null;
function timeRange() {
  const from = params.get('from') || model.time.from;
  const to = params.get('to') || model.time.to;
  if (roundNow === null) roundNow = Date.now() / 1000;
  const now = roundNow;
  return {start: parseTime(from, now), end: parseTime(to, now), from, to};
}

async function load() {
  // The page shell embeds the dashboard JSON: no round trip before the first panel query.
  const r = embedded ? {ok: true, data: embedded} : await api('/api/heron/dashboards/' + encodeURIComponent(uid));
  if (!r.ok) { showFailure($('#status'), r, 'Dashboard'); window.heronDashboard.pending = 0; return; }
  model = r.data;
  // Panels that use no template variable are queried right away, before variables resolve and
  // before any layout; renderAll() then picks up the same in-flight requests.
  const names = ((model.templating && model.templating.list) || []).map((v) => v.name).filter(Boolean);
  const usesVar = (p) => names.length && (p.targets || []).some((t) => names.some((n) => ['$' + n, '${' + n, '[[' + n]
    .some((form) => String(t.expr || '').includes(form) || String(t.legendFormat || '').includes(form))));
  const range = timeRange();
  for (const p of visiblePanels()) if (!usesVar(p)) prefetch(p, panelCtx(p, range));
  document.title = model.title + ' · Heron';
  $('#title').textContent = model.title;
  setupControls();
  await setupVariables();
  renderAll(false);
}

// Panels drawn now: rows themselves and panels under a collapsed row are not.
function visiblePanels() {
  const out = [];
  let hidden = false;
  for (const p of model.panels) {
    if (p.type === 'row') { hidden = !!p.collapsed; continue; }
    if (!hidden) out.push(p);
  }
  return out;
}

function viewportWidth() { return Math.max(400, Math.min(1600, document.documentElement.clientWidth || 1200) - 36); }

function panelCtx(p, range) {
  const intervalSec = intervalFor(range.end - range.start, maxPointsFor(p, viewportWidth()), p.interval);
  return {vars, range, intervalSec, onZoom: zoomTo};
}

// Drag-select on a chart: an absolute range, as in Grafana.
function zoomTo(a, b) {
  params.set('from', String(Math.floor(a * 1000))); params.set('to', String(Math.ceil(b * 1000)));
  syncUrl(); picker.update(params.get('from'), params.get('to')); renderAll();
}

let picker = null;
function setupControls() {
  picker = rangePicker($('#range-picker'), params.get('from') || model.time.from, params.get('to') || model.time.to, (from, to) => {
    params.set('from', from); params.set('to', to); syncUrl(); renderAll();
  });
  const refresh = $('#refresh');
  const curR = params.get('refresh') !== null ? params.get('refresh') : (model.refresh || '');
  const ropts = REFRESH.includes(curR) ? REFRESH : [...REFRESH, curR];
  for (const o of ropts) refresh.append(h('option', {value: o, selected: o === curR}, o || 'Off'));
  refresh.addEventListener('change', () => { params.set('refresh', refresh.value); syncUrl(); schedule(refresh.value); });
  schedule(curR);
  $('#reload').addEventListener('click', () => renderAll());
  $('#edit-json').addEventListener('click', editJson);
  $('#add-panel').addEventListener('click', () => {
    const y = Math.max(0, ...model.panels.map((p) => (p.gridPos ? p.gridPos.y + p.gridPos.h : 0)));
    model.panels.push({type: 'timeseries', title: 'New panel', gridPos: {x: 0, y, w: 12, h: 8}, targets: [{refId: 'A', expr: ''}]});
    const added = model.panels[model.panels.length - 1];
    editPanel(model.panels.length - 1, () => {  // cancelled: the new panel was never saved
      const k = model.panels.indexOf(added);
      if (k >= 0) model.panels.splice(k, 1);
    });
  });
}

function schedule(every) {
  if (refreshTimer) clearInterval(refreshTimer);
  refreshTimer = null;
  const sec = parseDuration(every || '');
  if (sec) refreshTimer = setInterval(() => { if (!document.hidden) renderAll(); }, Math.max(5, sec) * 1000);
}

function syncUrl() { history.replaceState(null, '', '?' + params); }

async function setupVariables() {
  const box = clear($('#variables'));
  vars = [];
  const range = timeRange();
  const defs = (model.templating && model.templating.list) || [];
  // Variables whose query names no other variable are fetched together, up front.
  const chained = (def) => defs.some((o) => o !== def && new RegExp('\\$\\{?' + o.name + '\\b|\\[\\[' + o.name + '\\b').test(def.query || ''));
  const base = {vars: [], range, intervalSec: intervalFor(range.end - range.start, 300)};
  const early = defs.map((def) => (def.heronUnsupported || chained(def) ? null : resolveOptions(def, range, base)));
  early.forEach((p) => p && p.catch(() => {}));
  for (const [k, def] of defs.entries()) {
    const x = {def, options: [], values: []};
    vars.push(x);
    if (def.heronUnsupported) { box.append(h('span', {class: 'muted'}, def.name + ': ' + def.heronUnsupported)); continue; }
    const ctx = {vars: vars.slice(0, -1), range, intervalSec: intervalFor(range.end - range.start, 300)};
    try { x.options = await (early[k] || resolveOptions(def, range, ctx)); } catch (e) {
      box.append(h('span', {class: 'error'}, def.name + ': ' + e.message)); continue;
    }
    const fromUrl = params.getAll('var-' + def.name);
    const cur = def.current && def.current.value !== undefined ? [].concat(def.current.value) : [];
    const all = def.includeAll ? [{text: 'All', value: ALL}] : [];
    const options = [...all, ...x.options];
    const valid = (list) => list.filter((v) => options.some((o) => o.value === v) || def.type === 'textbox');
    let chosen = valid(fromUrl).length ? valid(fromUrl) : valid(cur);
    if (!chosen.length) chosen = options.length ? [options[0].value] : [];
    x.values = chosen;
    if (def.hide === 2) continue;
    const changed = (values) => {
      x.values = values;
      params.delete('var-' + def.name);
      for (const v of x.values) params.append('var-' + def.name, v);
      syncUrl();
      // Variables whose query uses this one are resolved again (chained variables).
      const uses = new RegExp('\\$\\{?' + def.name + '\\b|\\[\\[' + def.name + '\\b');
      const later = vars.slice(vars.indexOf(x) + 1);
      if (later.some((o) => uses.test(o.def.query || ''))) setupVariables().then(renderAll);
      else renderAll();
    };
    const sel = def.multi ? multiSelect(def.name, options, chosen, changed)
      : h('select', {'data-var': def.name, on: {change: (e) => changed([e.target.value])}},
        options.map((o) => h('option', {value: o.value, selected: chosen.includes(o.value)}, o.text)));
    box.append(h('label', {}, (def.label || def.name) + ' ', sel));
  }
}

// A compact multi-value picker: a <details> dropdown of checkboxes ("All" clears the others).
function multiSelect(name, options, chosen, onChange) {
  const summary = h('summary', {class: 'btn'});
  const boxes = options.map((o) => h('input', {type: 'checkbox', value: o.value, checked: chosen.includes(o.value)}));
  const label = () => {
    const picked = options.filter((o, i) => boxes[i].checked).map((o) => o.text);
    summary.textContent = picked.length ? picked.join(', ') : 'None';
  };
  boxes.forEach((b, i) => b.addEventListener('change', () => {
    if (b.checked && b.value === ALL) boxes.forEach((o, j) => { if (j !== i) o.checked = false; });
    else if (b.checked) boxes.forEach((o) => { if (o.value === ALL) o.checked = false; });
    label();
    onChange(boxes.filter((o) => o.checked).map((o) => o.value));
  }));
  label();
  return h('details', {class: 'multi', 'data-var': name}, summary,
    h('div', {class: 'multi-menu'}, options.map((o, i) => h('label', {}, boxes[i], ' ', o.text))));
}

function gridStyle(p, shift) {
  const g = p.gridPos || {x: 0, y: 0, w: 12, h: 8};
  const y = Math.max(0, (g.y || 0) - (shift || 0));
  return {gridColumn: `${(g.x || 0) + 1} / span ${Math.min(24, g.w || 12)}`, gridRow: `${y + 1} / span ${g.h || 8}`};
}

// Height taken by the panels of the row at index i (up to the next row): what collapsing it frees.
function rowSpan(i) {
  const row = model.panels[i];
  const top = ((row.gridPos && row.gridPos.y) || 0) + 1;
  let bottom = top;
  for (let j = i + 1; j < model.panels.length && model.panels[j].type !== 'row'; j++) {
    const g = model.panels[j].gridPos || {};
    bottom = Math.max(bottom, (g.y || 0) + (g.h || 8));
  }
  return bottom - top;
}

// fresh: start a new round of queries (refresh, new range, new variable values); the first
// render after load reuses the requests prefetched by load().
function renderAll(fresh = true) {
  if (!model) return;
  if (fresh) { shared.reset(); roundNow = null; }
  const gen = ++generation;
  const range = timeRange();
  // Every panel's queries go out first, then the DOM is built.
  for (const p of visiblePanels()) if (SUPPORTED.has(p.type) && !p.heronUnsupported) prefetch(p, panelCtx(p, range));
  const grid = clear($('#panels'));
  let hidden = false;
  let shift = 0;  // rows freed by collapsed rows above: later panels move up, as in Grafana
  const jobs = [];
  const state = window.heronDashboard;
  state.startedAt = performance.now(); state.drawnAt = null;
  model.panels.forEach((p, i) => {
    if (p.type === 'row') {
      const el = h('div', {class: 'panel row-panel', style: gridStyle(p, shift), 'data-panel': i, 'data-state': 'done'},
        (p.collapsed ? '▸ ' : '▾ ') + (p.title || 'Row'));
      el.addEventListener('click', () => { p.collapsed = !p.collapsed; renderAll(false); });
      grid.append(el);
      hidden = !!p.collapsed;
      if (hidden) shift += rowSpan(i);
      return;
    }
    if (hidden) return;
    const body = h('div', {class: 'panel-body'});
    const unsupported = p.heronUnsupported || (!SUPPORTED.has(p.type) ? `panel type '${p.type}' is not supported` : '');
    const el = h('section', {class: 'panel' + (unsupported ? ' unsupported' : ''), style: gridStyle(p, shift),
      'data-panel': i, 'data-type': p.type, 'data-state': 'loading'},
      h('div', {class: 'panel-head'}, h('span', {class: 'panel-title', title: p.description || p.title}, p.title || ''),
        h('span', {class: 'panel-actions'}, h('button', {class: 'btn ghost small', title: 'Edit panel',
          on: {click: () => editPanel(i)}}, 'Edit'))),
      body);
    grid.append(el);
    if (unsupported) {
      body.append(h('div', {}, 'Unsupported panel: ' + unsupported));
      el.dataset.state = 'unsupported';
      return;
    }
    const ctx = panelCtx(p, range);
    jobs.push(renderPanel(p, body, ctx).then((s) => { if (gen === generation) el.dataset.state = s; }));
  });
  state.pending = jobs.length;
  jobs.forEach((j) => j.finally(() => { state.pending--; if (state.pending === 0 && gen === generation) state.drawnAt = performance.now(); }));
  if (!jobs.length) state.drawnAt = performance.now();
}

// --- editing ---------------------------------------------------------------------------------
async function save() {
  const r = await api('/api/heron/dashboards/' + encodeURIComponent(uid) + '?check_version=1', {method: 'PUT', body: model});
  const status = clear($('#status'));
  if (!r.ok) { status.append(stateBox('error', 'Save failed: ' + r.error)); return false; }
  model.version = r.data.version;
  status.append(stateBox('ok', 'Saved (version ' + r.data.version + ')'));
  setTimeout(() => clear(status), 2500);
  return true;
}

function dialog(title, content, onSave, onCancel) {
  const dlg = $('#editor-dialog');
  const form = clear($('#editor-form'));
  const err = h('div', {class: 'error'});
  form.append(h('h2', {}, title), content, err,
    h('p', {}, h('button', {class: 'btn primary', type: 'button', id: 'dialog-save', on: {click: async () => {
      clear(err);
      try { if (await onSave()) { saved = true; dlg.close(); } } catch (e) { err.textContent = e.message; }
    }}}, 'Save'), ' ', h('button', {class: 'btn ghost', value: 'cancel'}, 'Cancel')));
  let saved = false;
  dlg.addEventListener('close', () => { if (!saved && onCancel) onCancel(); }, {once: true});
  dlg.showModal();
}

function editPanel(i, onCancel) {
  const p = model.panels[i];
  const title = h('input', {value: p.title || '', id: 'panel-title'});
  const type = h('select', {id: 'panel-type'}, [...SUPPORTED].filter((t) => t !== 'row').map((t) => h('option', {value: t, selected: t === p.type}, t)));
  const unit = h('input', {value: ((p.fieldConfig || {}).defaults || {}).unit || '', placeholder: 'short, s, bytes, percentunit, reqps…'});
  const targets = h('div', {});
  const rows = [];
  const addTarget = (t) => {
    const expr = h('textarea', {rows: 2, class: 'panel-expr', spellcheck: 'false'}, t.expr || '');
    const legend = h('input', {value: t.legendFormat || '', placeholder: 'Legend, e.g. {{job}}'});
    rows.push({t, expr, legend});
    targets.append(h('div', {class: 'form-grid'}, h('label', {class: 'wide'}, 'Query ' + (t.refId || ''), expr), h('label', {}, 'Legend', legend)));
  };
  (p.targets && p.targets.length ? p.targets : [{refId: 'A', expr: ''}]).forEach(addTarget);
  const add = h('button', {class: 'btn ghost', type: 'button', on: {click: () => addTarget({refId: String.fromCharCode(65 + rows.length), expr: ''})}}, '+ query');
  const del = h('button', {class: 'btn danger', type: 'button', on: {click: async () => {
    model.panels.splice(i, 1); $('#editor-dialog').close(); if (await save()) renderAll();
  }}}, 'Delete panel');
  dialog('Edit panel', h('div', {}, h('div', {class: 'form-grid'}, h('label', {}, 'Title', title), h('label', {}, 'Type', type),
    h('label', {}, 'Unit', unit)), targets, h('p', {}, add, ' ', del)), async () => {
    p.title = title.value; p.type = type.value;
    p.fieldConfig = p.fieldConfig || {}; p.fieldConfig.defaults = p.fieldConfig.defaults || {};
    if (unit.value) p.fieldConfig.defaults.unit = unit.value;
    p.targets = rows.filter((r) => r.expr.value.trim()).map((r) => ({...r.t, expr: r.expr.value.trim(), legendFormat: r.legend.value}));
    delete p.heronUnsupported;
    if (await save()) { renderAll(); return true; }
    return false;
  }, onCancel);
}

function editJson() {
  const text = h('textarea', {rows: 28, spellcheck: 'false', id: 'dashboard-json'}, JSON.stringify(model, null, 2));
  dialog('Dashboard JSON', text, async () => {
    let next;
    try { next = JSON.parse(text.value); } catch (e) { throw new Error('Invalid JSON: ' + e.message); }
    next.uid = uid;
    const r = await api('/api/heron/dashboards/' + encodeURIComponent(uid) + '?check_version=1', {method: 'PUT', body: next});
    if (!r.ok) throw new Error(r.error);
    location.reload();
    return true;
  });
}

document.addEventListener('click', (e) => {
  for (const d of document.querySelectorAll('details.multi[open]')) if (!d.contains(e.target)) d.open = false;
});

load();
