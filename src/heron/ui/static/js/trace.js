// One trace as a waterfall: spans in tree order (children under their parent, by start), each a
// bar placed on the trace's time axis; a click shows attributes, events and resource.
import {h, $, clear, api, pageData, stateBox, showFailure, fmtTime} from './lib.js';

export function fmtNs(ns) {
  if (ns >= 1e9) return (ns / 1e9).toFixed(ns >= 1e10 ? 1 : 2) + ' s';
  if (ns >= 1e6) return (ns / 1e6).toFixed(ns >= 1e7 ? 1 : 2) + ' ms';
  return (ns / 1e3).toFixed(0) + ' µs';
}

// Depth-first order from the roots; spans whose parent is missing are roots too.
export function treeOrder(spans) {
  const ids = new Set(spans.map((s) => s.span_id));
  const kids = new Map();
  for (const s of spans) {
    const p = s.parent_span_id && ids.has(s.parent_span_id) ? s.parent_span_id : '';
    if (!kids.has(p)) kids.set(p, []);
    kids.get(p).push(s);
  }
  const out = [];
  const walk = (parent, depth) => {
    for (const s of (kids.get(parent) || []).sort((a, b) => a.start_ns - b.start_ns)) {
      out.push({span: s, depth});
      if (out.length <= spans.length) walk(s.span_id, depth + 1);
    }
  };
  walk('', 0);
  return out;
}

async function load() {
  const {trace_id: id} = pageData();
  if (!id || !$('#waterfall')) return;
  $('#trace-logs').setAttribute('href', '/logs?query=' + encodeURIComponent(`{trace_id="${id}"}`) + '&from=now-7d');
  const r = await api('/api/heron/traces/' + encodeURIComponent(id));
  const box = clear($('#waterfall'));
  if (!r.ok) { showFailure($('#trace-status'), r, 'Trace'); document.body.dataset.trace = 'error'; return; }
  const spans = r.data.data || [];
  if (!spans.length) { box.append(stateBox('empty', 'No spans stored for trace ' + id)); document.body.dataset.trace = 'empty'; return; }
  const t0 = Math.min(...spans.map((s) => s.start_ns));
  const t1 = Math.max(...spans.map((s) => s.start_ns + s.duration_ns));
  const total = Math.max(1, t1 - t0);
  const rows = treeOrder(spans);
  const root = rows[0].span;
  $('#trace-title').textContent = `${root.service}: ${root.name}`;
  document.title = root.name + ' · Trace · Heron';
  const services = [...new Set(spans.map((s) => s.service))];
  $('#trace-summary').textContent = `${fmtTime(t0 / 1e9)} · ${fmtNs(total)} · ${spans.length} spans · ` +
    `${services.length} service${services.length > 1 ? 's' : ''} · ${id}`;
  const ticks = h('div', {class: 'wf-row wf-axis'}, h('div', {class: 'wf-name muted'}, 'Service: operation'),
    h('div', {class: 'wf-track'}, [0, 0.25, 0.5, 0.75, 1].map((f) => h('span', {class: 'wf-tick', style: {left: (f * 100) + '%'}}, fmtNs(total * f)))));
  box.append(ticks);
  for (const {span: s, depth} of rows) {
    const left = (s.start_ns - t0) / total * 100, width = Math.max(0.2, s.duration_ns / total * 100);
    const color = 'hsl(' + ((210 + services.indexOf(s.service) * 67) % 360) + ' 55% 52%)';
    const detail = h('div', {class: 'wf-detail hidden'}, details(s, t0));
    const row = h('div', {class: 'wf-row' + (s.status === 'error' ? ' wf-error' : ''), 'data-span': s.span_id, tabindex: 0},
      h('div', {class: 'wf-name', style: {paddingLeft: (depth * 14 + 4) + 'px'}, title: s.service + ': ' + s.name},
        h('span', {class: 'wf-svc', style: {borderColor: color}}, s.service), ' ', s.name),
      h('div', {class: 'wf-track'}, h('div', {class: 'wf-bar', style: {left: left.toFixed(3) + '%', width: width.toFixed(3) + '%', background: color}}),
        left + width > 80 ? h('span', {class: 'wf-dur mono inside', style: {left: left.toFixed(3) + '%'}}, fmtNs(s.duration_ns))
          : h('span', {class: 'wf-dur mono', style: {left: (left + width).toFixed(3) + '%'}}, fmtNs(s.duration_ns))));
    const toggle = () => detail.classList.toggle('hidden');
    row.addEventListener('click', toggle);
    row.addEventListener('keydown', (e) => { if (e.key === 'Enter') toggle(); });
    box.append(row, detail);
  }
  document.body.dataset.trace = 'done';
}

function details(s, t0) {
  const kv = (obj) => Object.keys(obj || {}).sort().map((k) => h('tr', {}, h('td', {class: 'mono muted'}, k), h('td', {class: 'mono'}, String(obj[k]))));
  return h('div', {},
    h('p', {}, h('b', {}, s.name), ' · ', s.kind, ' · status ', h('span', {class: 'badge ' + (s.status === 'error' ? 'error' : 'ok')}, s.status),
      s.status_message ? ' ' + s.status_message : '', ' · starts at +', fmtNs(s.start_ns - t0), ' · span ', h('span', {class: 'mono'}, s.span_id)),
    h('table', {class: 'data kv'}, h('tbody', {}, kv(s.attributes))),
    s.events && s.events.length ? h('div', {}, h('b', {}, 'Events'), h('ul', {}, s.events.map((e) => h('li', {},
      '+' + fmtNs(e.time_ns - t0) + ' ', h('b', {}, e.name), ' ', Object.entries(e.attributes || {}).map(([k, v]) => k + '=' + v).join(' '))))) : null,
    h('details', {}, h('summary', {}, 'Resource'), h('table', {class: 'data kv'}, h('tbody', {}, kv(s.resource)))));
}

load();
