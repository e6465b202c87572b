// Logs: a LogQL-shaped filter box over the logs store (service, level, text, time range), a
// volume histogram by level, newest records first. Log lines are text nodes only: a hostile
// line renders as the characters it holds.
import {h, $, clear, api, parseTime, stateBox, showFailure, fmtTime} from './lib.js';
import {rangePicker} from './timepicker.js';

const params = new URLSearchParams(location.search);
const state = {from: params.get('from') || 'now-1h', to: params.get('to') || 'now',
  query: params.get('query') || '', service: params.get('service') || '', level: params.get('level') || ''};
const LEVEL_CLASS = {error: 'error', fatal: 'error', critical: 'error', warn: 'warn', warning: 'warn', info: 'info', debug: 'info'};

rangePicker($('#range-picker'), state.from, state.to, (f, t) => { state.from = f; state.to = t; run(); });
$('#log-query').value = state.query;
$('#log-level').value = state.level;
$('#log-form').addEventListener('submit', (e) => { e.preventDefault(); run(); });
$('#log-service').addEventListener('change', run);
$('#log-level').addEventListener('change', run);

function syncUrl() {
  const p = new URLSearchParams();
  for (const k of ['query', 'service', 'level', 'from', 'to']) if (state[k]) p.set(k, state[k]);
  history.replaceState(null, '', '?' + p);
}

let seq = 0;
async function run() {
  const mine = ++seq;
  state.query = $('#log-query').value.trim();
  if ($('#log-service').options.length > 1) state.service = $('#log-service').value;
  state.level = $('#log-level').value;
  syncUrl();
  const now = Date.now() / 1000;
  const start = parseTime(state.from, now), end = parseTime(state.to, now);
  const p = new URLSearchParams({query: state.query, service: state.service, level: state.level,
    start: start.toFixed(3), end: end.toFixed(3), limit: '500'});
  const status = clear($('#log-status'));
  document.body.dataset.logs = 'loading';
  const r = await api('/api/heron/search/logs?' + p);
  if (mine !== seq) return;
  document.body.dataset.logs = r.ok ? 'done' : 'error';
  if (!r.ok) { clear($('#log-list')); clear($('#log-volume')); showFailure(status, r, 'Log search'); return; }
  const d = r.data.data;
  services(d.services);
  volume(d, start, end);
  $('#log-summary').textContent = d.logs.length >= 500 ? 'Newest 500 records' : `${d.logs.length} record${d.logs.length === 1 ? '' : 's'}`;
  const list = clear($('#log-list'));
  if (!d.logs.length) { list.append(stateBox('empty', 'No logs match in this range')); return; }
  for (const rec of d.logs) list.append(row(rec));
}

function services(names) {
  const sel = $('#log-service');
  const cur = state.service;
  const all = [...new Set([...(names || []), ...(cur ? [cur] : [])])].sort();
  clear(sel).append(h('option', {value: ''}, 'All'), ...all.map((s) => h('option', {value: s, selected: s === cur}, s)));
}

function volume(d, start, end) {
  const box = clear($('#log-volume'));
  const n = Math.max(1, Math.ceil((end - start) / d.bucket_s));
  const totals = new Array(n).fill(0), errors = new Array(n).fill(0);
  for (const x of d.histogram) {
    if (x.b < 0 || x.b >= n) continue;
    totals[x.b] += x.n;
    if (LEVEL_CLASS[x.level] === 'error') errors[x.b] += x.n;
  }
  const max = Math.max(1, ...totals);
  totals.forEach((t, i) => {
    const at = d.start_s + i * d.bucket_s;
    box.append(h('div', {class: 'vbar', title: `${fmtTime(at)}: ${t} record${t === 1 ? '' : 's'}` + (errors[i] ? `, ${errors[i]} error` : '')},
      h('div', {class: 'vbar-fill', style: {height: (t / max * 100).toFixed(1) + '%'}},
        errors[i] ? h('div', {class: 'vbar-err', style: {height: (errors[i] / t * 100).toFixed(1) + '%'}}) : null)));
  });
}

function row(rec) {
  const level = (rec.severity_text || '').toLowerCase();
  const t = rec.ts_ns / 1e9;
  const detail = h('div', {class: 'log-detail hidden'},
    kv('Attributes', rec.attributes), kv('Resource', rec.resource),
    rec.trace_id ? h('p', {}, 'Trace ', h('a', {href: '/traces/' + encodeURIComponent(rec.trace_id), class: 'mono'}, rec.trace_id)) : null);
  const line = h('div', {class: 'log-row', 'data-level': level},
    h('span', {class: 'log-time mono', title: new Date(rec.ts_ns / 1e6).toISOString()}, fmtTime(t)),
    h('span', {class: 'badge ' + (LEVEL_CLASS[level] || 'info')}, level || '—'),
    h('span', {class: 'log-service muted'}, rec.service || ''),
    h('span', {class: 'log-body mono'}, rec.body));
  line.addEventListener('click', () => detail.classList.toggle('hidden'));
  return h('div', {class: 'log-entry'}, line, detail);
}

function kv(title, obj) {
  const keys = Object.keys(obj || {}).sort();
  if (!keys.length) return null;
  return h('div', {}, h('b', {}, title), h('div', {class: 'labels'},
    keys.map((k) => h('span', {class: 'label-pill', title: k + '=' + obj[k]}, k + '=' + obj[k]))));
}

run();
