// Traces: Jaeger-style search (service, operation, duration bounds, errors, time range); each
// result links to its waterfall. Names come from spans: inserted as text only.
import {h, $, clear, api, parseTime, stateBox, showFailure, fmtTime, table} from './lib.js';
import {rangePicker} from './timepicker.js';
import {fmtNs} from './trace.js';

const params = new URLSearchParams(location.search);
const state = {from: params.get('from') || 'now-1h', to: params.get('to') || 'now', service: params.get('service') || '',
  operation: params.get('operation') || '', min: params.get('min') || '', max: params.get('max') || '',
  errors: params.get('errors') === '1'};

rangePicker($('#range-picker'), state.from, state.to, (f, t) => { state.from = f; state.to = t; run(); });
$('#trace-min').value = state.min; $('#trace-max').value = state.max; $('#trace-errors').checked = state.errors;
$('#trace-form').addEventListener('submit', (e) => { e.preventDefault(); run(); });
$('#trace-service').addEventListener('change', () => { $('#trace-operation').value = ''; run(); });

let seq = 0;
async function run() {
  const mine = ++seq;
  if ($('#trace-service').options.length > 1) state.service = $('#trace-service').value;
  if ($('#trace-operation').options.length > 1) state.operation = $('#trace-operation').value;
  state.min = $('#trace-min').value.trim(); state.max = $('#trace-max').value.trim(); state.errors = $('#trace-errors').checked;
  const u = new URLSearchParams();
  for (const k of ['service', 'operation', 'min', 'max', 'from', 'to']) if (state[k]) u.set(k, state[k]);
  if (state.errors) u.set('errors', '1');
  history.replaceState(null, '', '?' + u);
  const now = Date.now() / 1000;
  const p = new URLSearchParams({service: state.service, operation: state.operation, min_duration: state.min,
    max_duration: state.max, errors: state.errors ? '1' : '', start: parseTime(state.from, now).toFixed(3),
    end: parseTime(state.to, now).toFixed(3), limit: '100'});
  const status = clear($('#trace-status'));
  document.body.dataset.traces = 'loading';
  const r = await api('/api/heron/search/traces?' + p);
  if (mine !== seq) return;
  document.body.dataset.traces = r.ok ? 'done' : 'error';
  const list = clear($('#trace-list'));
  if (!r.ok) { showFailure(status, r, 'Trace search'); return; }
  const d = r.data.data;
  options($('#trace-service'), d.services, state.service);
  options($('#trace-operation'), d.operations, state.operation);
  if (!d.traces.length) { list.append(stateBox('empty', 'No traces match in this range')); return; }
  const longest = Math.max(...d.traces.map((t) => t.duration_ns), 1);
  list.append(table(['Trace', 'Started', {text: 'Duration', class: 'num'}, '', {text: 'Spans', class: 'num'}, 'Services'],
    d.traces.map((t) => h('tr', {class: 'trace-row', 'data-trace': t.trace_id},
      h('td', {}, h('a', {href: '/traces/' + encodeURIComponent(t.trace_id)}, (t.root_service || '?') + ': ' + (t.root_name || '?')),
        ' ', h('span', {class: 'muted mono'}, t.trace_id.slice(0, 8)), t.errors ? h('span', {class: 'badge error'}, t.errors + ' error' + (t.errors > 1 ? 's' : '')) : null),
      h('td', {class: 'muted'}, fmtTime(t.start_ns / 1e9)),
      h('td', {class: 'num mono'}, fmtNs(t.duration_ns)),
      h('td', {class: 'dur-cell'}, h('div', {class: 'dur-bar', style: {width: Math.max(1, t.duration_ns / longest * 100).toFixed(1) + '%'}})),
      h('td', {class: 'num'}, String(t.spans)),
      h('td', {}, h('div', {class: 'labels'}, t.services.map((s) => h('span', {class: 'label-pill'}, s))))))));
}

function options(sel, names, cur) {
  const all = [...new Set([...(names || []), ...(cur ? [cur] : [])])].sort();
  clear(sel).append(h('option', {value: ''}, 'All'), ...all.map((s) => h('option', {value: s, selected: s === cur}, s)));
}

run();
