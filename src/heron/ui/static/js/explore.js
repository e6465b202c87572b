// Explore: PromQL editor (codemirror-promql, completing against /api/v1), graph and table,
// instant/range, time picker, step; the URL holds the whole state so it can be shared.
import {h, $, clear, promQuery, promRange, parseDuration, parseTime, autoStep, labelPills,
  table, stateBox, showFailure, fmtDuration} from './lib.js';
import {drawTimeSeries} from './chart.js';
import {rangePicker} from './timepicker.js';

const params = new URLSearchParams(location.search);
// from/to as on dashboards; the older range=1h&end=<unix s> links still open.
const legacyEnd = params.get('end');
const state = {
  expr: params.get('q') || '',
  from: params.get('from') || (legacyEnd ? String((Number(legacyEnd) - (parseDuration(params.get('range') || '1h') || 3600)) * 1000)
    : 'now-' + (params.get('range') || '1h')),
  to: params.get('to') || (legacyEnd ? String(Number(legacyEnd) * 1000) : 'now'),
  step: params.get('step') || '',
  tab: params.get('tab') === 'table' ? 'table' : 'graph',
};
const picker = rangePicker($('#range-picker'), state.from, state.to, (f, t) => { state.from = f; state.to = t; run(); });
$('#step').value = state.step;

let editor;
const editorEl = $('#editor');
if (window.HeronPromQL) {
  editor = window.HeronPromQL.createPromQLEditor(editorEl, {value: state.expr, url: location.origin, onEnter: run});
} else {  // the bundle failed to load: a plain input still works
  const input = h('input', {class: 'mono', style: {width: '100%', border: 'none'}, value: state.expr});
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter') run(); });
  editorEl.append(input);
  editor = {get value() { return input.value; }, set value(v) { input.value = v; }, focus() { input.focus(); }};
}
editor.focus();

function setTab(tab) {
  state.tab = tab;
  $('#tab-graph').classList.toggle('active', tab === 'graph');
  $('#tab-table').classList.toggle('active', tab === 'table');
  $('#graph').classList.toggle('hidden', tab !== 'graph');
  $('#table').classList.toggle('hidden', tab !== 'table');
}
$('#tab-graph').addEventListener('click', () => { setTab('graph'); run(); });
$('#tab-table').addEventListener('click', () => { setTab('table'); run(); });
$('#run').addEventListener('click', run);
$('#share').addEventListener('click', async () => {
  syncUrl();
  try { await navigator.clipboard.writeText(location.href); $('#stats').textContent = 'Link copied'; } catch {
    $('#stats').textContent = 'Link in the address bar';
  }
});
setTab(state.tab);

function syncUrl() {
  const p = new URLSearchParams();
  if (state.expr) p.set('q', state.expr);
  p.set('from', state.from);
  p.set('to', state.to);
  if (state.step) p.set('step', state.step);
  p.set('tab', state.tab);
  history.replaceState(null, '', '?' + p);
}

async function run() {
  state.expr = editor.value.trim();
  state.step = $('#step').value.trim();
  syncUrl();
  const status = clear($('#status'));
  if (!state.expr) { status.append(stateBox('empty', 'Enter a PromQL expression, e.g. up')); return; }
  const now = Date.now() / 1000;
  const end = Math.floor(parseTime(state.to, now));
  const rangeSec = Math.max(1, end - Math.floor(parseTime(state.from, now)));
  const t0 = performance.now();
  if (state.tab === 'graph') {
    let step = state.step ? parseDuration(state.step) : autoStep(rangeSec, 300);
    if (!step) { status.append(stateBox('error', 'Invalid step: ' + state.step)); return; }
    const start = end - rangeSec;
    const r = await promRange(state.expr, start, end, step);
    if (!r.ok) { clear($('#graph')); showFailure(status, r, 'Range query'); return; }
    const data = r.data.data || {};
    if (data.resultType !== 'matrix') { status.append(stateBox('error', 'Expected a range vector, got ' + data.resultType)); return; }
    drawTimeSeries($('#graph'), [{series: data.result}], {start, end, step, height: 360,
      onZoom: (a, b) => { state.from = String(Math.floor(a * 1000)); state.to = String(Math.ceil(b * 1000));
        picker.update(state.from, state.to); run(); }});
    $('#stats').textContent = `${data.result.length} series · step ${fmtDuration(step)} · ${Math.round(performance.now() - t0)} ms`;
    warnings(status, r.data);
  } else {
    const r = await promQuery(state.expr, state.to === 'now' ? undefined : end);
    const out = clear($('#table'));
    if (!r.ok) { showFailure(status, r, 'Instant query'); return; }
    const data = r.data.data || {};
    out.append(renderInstant(data));
    const n = Array.isArray(data.result) ? data.result.length : 1;
    $('#stats').textContent = `${n} result${n === 1 ? '' : 's'} · ${Math.round(performance.now() - t0)} ms`;
    warnings(status, r.data);
  }
}

function warnings(status, body) {
  for (const w of (body && body.warnings) || []) status.append(stateBox('warn', 'Warning: ' + w));
}

export function renderInstant(data) {
  if (data.resultType === 'scalar' || data.resultType === 'string') {
    return table(['Value'], [h('tr', {}, h('td', {class: 'mono'}, String(data.result[1])))]);
  }
  if (!data.result || data.result.length === 0) return stateBox('empty', 'Empty query result');
  const rows = data.result.map((s) => h('tr', {},
    h('td', {}, h('span', {class: 'mono'}, (s.metric && s.metric.__name__) || ''), labelPills(s.metric, ['__name__'])),
    h('td', {class: 'num mono'}, s.value ? s.value[1] : (s.values || []).map((v) => v[1] + ' @' + v[0]).join('\n'))));
  return table(['Series', {text: 'Value', class: 'num'}], rows);
}

if (state.expr) run();
